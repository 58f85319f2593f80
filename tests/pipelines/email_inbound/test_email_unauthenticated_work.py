"""What an unauthenticated post costs: the email's text, HTML and attachments are read only once it is signed.

Anyone can post to ``…/email``, and SendGrid's signature (over the timestamp and the raw body) is checked after the
lookup; so before it only the addresses the lookup is keyed by and the email's id (which the event's log line
names) are read. A post with a wrong signature, or from a sender with no conversation, never has its HTML turned
into text, its raw MIME message parsed or its attachments listed; a signed one is read exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from steps.sendgrid import message
from tests.support.email import KEY, add_email_world, email_event
from tools.sendgrid_events import Attachment, Email, KeyPair, raw_mime_body, signed

# The readers whose cost grows with the email's size (each visited once per read).
READERS = ("html_to_text", "_parse_mime", "_mime_parts", "_form_attachments")
HTML = "<div>" + "<p>a paragraph of an <b>HTML-only</b> email</p>" * 4000 + "</div>"
ATTACHMENTS = tuple(Attachment(f"scan-{n}.png", "image/png", b"\x89PNG" * 64) for n in range(300))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each of ``READERS`` ran."""
    counted: Counter[str] = Counter()

    def counting(name: str, reader: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return reader(*args, **kwargs)

        return run

    for name in READERS:
        monkeypatch.setattr(message, name, counting(name, getattr(message, name)))
    return counted


def raw_event(email: Email, key: KeyPair = KEY) -> dict[str, Any]:
    """``email`` posted in the ``send_raw`` format, signed with ``key``."""
    data, content_type = raw_mime_body(email)
    event = email_event(body=data)
    request = signed(key, data, content_type)
    event["headers"].update(request.headers)
    event["multiValueHeaders"].update({name: [value] for name, value in request.headers.items()})
    return event


POSTS: dict[str, Callable[[KeyPair], dict[str, Any]]] = {
    "html_only": lambda key: email_event(Email(text=None, html=HTML), key=key),
    "attachments": lambda key: email_event(Email(attachments=ATTACHMENTS), key=key),
    "raw_mime": lambda key: raw_event(Email(text=None, html=HTML, attachments=ATTACHMENTS[:20]), key),
}


def answer(response: dict[str, Any]) -> tuple[int, str]:
    body = json.loads(response["body"])
    return response["statusCode"], body.get("error_code") or body["outcome"]


@pytest.mark.parametrize("post", POSTS)
def test_a_post_with_a_wrong_signature_is_refused_without_reading_the_email(world, lambda_handler, calls, post):
    add_email_world(world)
    assert answer(lambda_handler(POSTS[post](KeyPair()), None)) == (403, "INVALID_SIGNATURE")
    assert calls == Counter()
    assert world.stage_rows() == []


@pytest.mark.parametrize("post", POSTS)
def test_a_post_from_a_sender_without_a_conversation_is_refused_without_reading_the_email(
    world, lambda_handler, calls, post
):
    assert answer(lambda_handler(POSTS[post](KEY), None)) == (404, "CONVERSATION_NOT_FOUND")
    assert calls == Counter()


@pytest.mark.parametrize(
    ("post", "read"),
    [
        ("html_only", {"html_to_text": 1, "_form_attachments": 1}),
        ("attachments", {"_form_attachments": 1}),
        ("raw_mime", {"html_to_text": 1, "_parse_mime": 1, "_mime_parts": 1}),
    ],
)
def test_a_signed_post_is_read_once_and_staged_as_it_reads(world, lambda_handler, calls, post, read):
    add_email_world(world)
    assert answer(lambda_handler(POSTS[post](KEY), None)) == (200, "QUEUED")
    assert calls == Counter(read)
    [row] = world.stage_rows()
    if post != "attachments":
        assert row["body"].startswith("a paragraph of an HTML-only email\n\na paragraph")
    assert row["num_media"] == {"html_only": 0, "attachments": 300, "raw_mime": 20}[post]
    assert len(row.get("media", [])) == min(row["num_media"], 128)
