"""The ``sendgrid.parse``, ``sendgrid.signature`` and ``sendgrid.read`` steps on their own: what they read, and how
they refuse."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from engine.context import Context, Services
from engine.errors import StepFailure
from engine.http import HttpRequest
from engine.registry import BuildInfo, get
from engine.secrets import Redacted
from steps.secrets import SigningKey
from steps.sendgrid import message
from steps.sendgrid.parse import ADDRESSED_FIELDS, DEFAULT_MAX_AGE_SECONDS, SendGridParse
from steps.sendgrid.read import SendGridRead
from steps.sendgrid.signature import SendGridSignature
from tests.support.timeline import FixedClock
from tools.sendgrid_events import Attachment, Email, KeyPair, inbound_parse_body, raw_mime_body, signed

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = KeyPair()
INFO = BuildInfo(rulesets={}, tables={}, targets={}, channels=("email",))


def request(email: Email | None = None, *, timestamp: int | None = None, **changes: Any) -> HttpRequest:
    body, content_type = inbound_parse_body(email or Email())
    signed_request = signed(KEY, body, content_type, timestamp=int(NOW.timestamp()) if timestamp is None else timestamp)
    headers = {name.lower(): value for name, value in signed_request.headers.items()}
    fields: dict[str, Any] = {"method": "POST", "path": "/prod/email", "headers": headers, "body": body}
    fields.update(changes)
    return HttpRequest(**fields)


def context(event: HttpRequest) -> Context:
    services = Services(tables=cast(Any, None), queues=cast(Any, None), secrets=cast(Any, None), clock=FixedClock(NOW))
    return Context(event=event, services=services, deadline=time.monotonic() + 5)


def addressed(event: HttpRequest, **params: Any) -> tuple[Context, dict[str, Any]]:
    """The context and request after ``sendgrid.parse`` alone (what is read before the signature)."""
    ctx = context(event)
    result = SendGridParse({"defer_content": True, **params}, INFO).run(ctx)
    assert result.output is not None
    ctx.doc["request"] = dict(result.output)
    return ctx, ctx.doc["request"]


def parse(event: HttpRequest, **params: Any) -> tuple[Context, dict[str, Any]]:
    """The context and the whole request: ``sendgrid.parse``, then ``sendgrid.read`` (the signature's in between)."""
    ctx, _ = addressed(event, **params)
    result = SendGridRead({}, INFO).run(ctx)
    assert result.output is not None
    return ctx, dict(result.output)


def test_the_request_document_names_the_email_and_its_people() -> None:
    email = Email(attachments=(Attachment("a.png", "image/png", b"\x89PNG"),), spam_score="1.5")
    ctx, doc = parse(request(email))
    assert doc["channel"] == "email" and doc["kind"] == "message"
    assert doc["message_sid"].startswith("EM") and doc["message_id_source"] == "message-id"
    assert (doc["user_address"], doc["company_address"]) == ("jane.sender@example.net", "support@parse.example.com")
    assert doc["body"] == email.text and doc["subject"] == email.subject and doc["spam_score"] == 1.5
    assert doc["num_media"] == 1 and doc["media"] == [{"filename": "a.png", "content_type": "image/png", "size": 4}]
    assert set(doc["fields"]) <= {"to", "from", "cc", "subject", "envelope", "spam_score", "SPF", "dkim", "attachments"}
    assert doc["received_at"] == "2026-11-25T12:00:00.000Z"
    assert (doc["body_truncated"], doc["body_bytes"]) == (False, len(email.text.encode()))
    signature, timestamp, body = ctx.private["signed"]
    assert timestamp == str(int(NOW.timestamp())) and body == ctx.event.body and signature


def test_the_same_email_always_gets_the_same_id_and_another_email_another() -> None:
    first, second = parse(request())[1], parse(request(timestamp=int(NOW.timestamp()) - 30))[1]
    other = parse(request(Email(message_id="<other@example.net>")))[1]
    assert first["message_sid"] == second["message_sid"] != other["message_sid"]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"headers": {"content-type": "application/x-www-form-urlencoded"}}, "missing"),
        ({"unreadable": "body is marked base64 but is not valid base64", "body": b""}, "not valid base64"),
        ({"method": "GET"}, "method GET"),
    ],
)
def test_what_cannot_be_read_is_a_parsing_error_or_unsigned(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(StepFailure) as caught:
        parse(request(**changes))
    assert caught.value.code in ("PARSING_ERROR", "INVALID_SIGNATURE") and fragment in caught.value.message


def test_a_body_that_is_not_multipart_is_a_parsing_error() -> None:
    event = request()
    headers = {**event.headers, "content-type": "application/json"}
    with pytest.raises(StepFailure) as caught:
        parse(HttpRequest(method="POST", path="/prod/email", headers=headers, body=b"{}"))
    assert caught.value.code == "PARSING_ERROR"


def test_a_body_over_the_limit_is_refused() -> None:
    big = Email(attachments=(Attachment("big.bin", "application/octet-stream", b"x" * 4096),))
    with pytest.raises(StepFailure) as caught:
        parse(request(big), max_body_bytes=2048)
    assert caught.value.code == "PARSING_ERROR"


@pytest.mark.parametrize("offset", [-DEFAULT_MAX_AGE_SECONDS - 1, 61, None])
def test_a_signature_outside_the_window_is_refused_before_anything_else(offset: int | None) -> None:
    event = request(timestamp=int(NOW.timestamp()) + offset) if offset is not None else request()
    if offset is None:
        event = HttpRequest(method="POST", path="/prod/email", headers={}, body=event.body)
    with pytest.raises(StepFailure) as caught:
        parse(event)
    assert caught.value.code == "INVALID_SIGNATURE"


def verify(ctx: Context, public_key: str) -> dict[str, Any]:
    ctx.private["signing_key"] = SigningKey("secret", "sendgrid_webhook_public_key", Redacted(public_key), False)
    result = SendGridSignature({}, INFO).run(ctx)
    assert result.output is not None
    return dict(result.output)


def test_the_signature_verifies_with_the_tenants_key_and_no_other() -> None:
    ctx, _ = parse(request())
    assert verify(ctx, KEY.public_key) == {"valid": True, "refetched": False}
    with pytest.raises(StepFailure) as caught:
        verify(ctx, KeyPair().public_key)
    assert caught.value.code == "INVALID_SIGNATURE"


def test_both_steps_declare_what_tools_need() -> None:
    parse_spec, signature_spec = get("sendgrid.parse"), get("sendgrid.signature")
    assert parse_spec is not None and signature_spec is not None
    assert {error.code for error in parse_spec.errors} == {"PARSING_ERROR", "INVALID_SIGNATURE"}
    assert signature_spec.authenticates and not parse_spec.authenticates
    # A masked capture replaces the signature; the signed timestamp stays, so its replay keeps the window.
    assert parse_spec.auth_headers == signature_spec.auth_headers == ("X-Twilio-Email-Event-Webhook-Signature",)
    assert [action for grant in signature_spec.iam for action in grant.actions] == ["secretsmanager:GetSecretValue"]


@pytest.mark.parametrize(("limit", "kept"), [(1024, 341), (1025, 341), (1026, 342)])
def test_a_text_over_max_text_bytes_is_cut_at_a_character_boundary(limit: int, kept: int) -> None:
    _, doc = parse(request(Email(text="€" * 1000, html=None)), max_text_bytes=limit)
    assert doc["body"] == "€" * kept
    assert (doc["body_truncated"], doc["body_bytes"]) == (True, 3000)


def test_kept_fields_and_the_subject_are_clipped_to_2_kib() -> None:
    _, doc = parse(request(Email(subject="é" * 5000, cc="x" * 9000 + "@example.org")))
    assert doc["subject"] == "é" * 1024
    assert doc["fields"]["subject"] == "é" * 1024 and doc["fields"]["cc"] == "x" * 2048


@pytest.mark.parametrize(("headers", "automatic"), [({}, False), ({"Auto-Submitted": "auto-replied"}, True)])
def test_the_request_says_whether_a_program_sent_the_email(headers: dict[str, str], automatic: bool) -> None:
    assert parse(request(Email(extra_headers=headers)))[1]["auto_submitted"] is automatic


def test_an_html_only_text_is_read_from_four_times_max_text_bytes_of_html_and_marked_cut() -> None:
    html = "<p>" + "x" * 4093 + "</p><p>" + "y" * 10 + "</p>"  # 4096 characters before the second paragraph
    _, doc = parse(request(Email(text=None, html=html)), max_text_bytes=1024)
    assert doc["body"] == "x" * 1024
    assert (doc["body_truncated"], doc["body_bytes"]) == (True, 4093)
    _, whole = parse(request(Email(text=None, html=html[:4096])), max_text_bytes=1024)
    assert (whole["body_truncated"], whole["body_bytes"]) == (True, 4093)  # cut only to max_text_bytes
    _, short = parse(request(Email(text=None, html="<p>" + "x" * 1000 + "</p>")), max_text_bytes=1024)
    assert (short["body_truncated"], short["body_bytes"]) == (False, 1000)


def test_an_unreadable_from_falls_back_to_the_envelope_and_without_one_is_a_parsing_error() -> None:
    nested = "Jane " + "(" * 600 + "x" + ")" * 600 + " <jane@example.net>"
    assert parse(request(Email(sender=nested)))[1]["user_address"] == "bounces+jane@example.net"
    with pytest.raises(StepFailure) as caught:
        parse(request(Email(sender=nested, envelope_from="")))
    assert (caught.value.code, caught.value.message) == ("PARSING_ERROR", "the email names no sender or no recipient")


def counted(monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]) -> list[str]:
    """The names of the ``steps.sendgrid.message`` readers called from now on, one entry a call."""
    calls: list[str] = []

    def wrap(name: str, reader: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return reader(*args, **kwargs)

        return run

    for name in names:
        monkeypatch.setattr(message, name, wrap(name, getattr(message, name)))
    return calls


def test_before_the_signature_only_the_addresses_and_the_id_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counted(monkeypatch, ("html_to_text", "_form_attachments", "_parse_mime", "_text"))
    html_only = Email(
        text=None, html="<p>" + "x" * 5000 + "</p>", attachments=(Attachment("a.png", "image/png", b"x"),)
    )
    ctx, doc = addressed(request(html_only))
    assert set(doc) == ADDRESSED_FIELDS and calls == []
    assert (doc["user_address"], doc["company_address"]) == ("jane.sender@example.net", "support@parse.example.com")
    whole = dict(SendGridRead({}, INFO).run(ctx).output or {})
    assert sorted(calls) == ["_form_attachments", "_text", "html_to_text"]
    assert whole["body"] == "x" * 5000 and whole["num_media"] == 1
    assert {name: whole[name] for name in ADDRESSED_FIELDS} == doc
    assert whole == parse(request(html_only))[1]


def raw_request(email: Email) -> HttpRequest:
    """``email`` posted in the ``send_raw`` format, signed."""
    body, content_type = raw_mime_body(email)
    posted = signed(KEY, body, content_type, timestamp=int(NOW.timestamp()))
    headers = {name.lower(): value for name, value in posted.headers.items()}
    return HttpRequest(method="POST", path="/prod/email", headers=headers, body=body)


ODD_EMAILS: dict[str, Callable[[], HttpRequest]] = {
    "plain": lambda: request(),
    "latin1": lambda: request(Email(text="Caf\u00e9 cr\u00e8me", html=None, charset="ISO-8859-1")),
    "html_only_cut": lambda: request(Email(text=None, html="<p>" + "mot " * 200000 + "</p>")),
    "text_cut": lambda: request(Email(text="\u00e9" * 5000)),
    "no_text": lambda: request(Email(text=None, html=None)),
    "only_attachments": lambda: request(Email(text=None, html=None, attachments=(Attachment("a.pdf", "x/y", b"%"),))),
    "raw_mime": lambda: raw_request(Email(text=None, attachments=(Attachment("b.png", "image/png", b"\x89"),))),
}


@pytest.mark.parametrize("name", sorted(ODD_EMAILS))
def test_without_defer_content_parse_alone_reads_the_request_parse_and_read_do(name: str) -> None:
    event = ODD_EMAILS[name]()
    params = {"max_text_bytes": 1024} if name == "text_cut" else {}
    alone = SendGridParse(params, INFO).run(context(event))
    _, whole = parse(event, **params)
    assert alone.output is not None
    assert json.dumps(alone.output) == json.dumps(whole)
    assert set(alone.output) == SendGridParse(params, INFO).request_fields
    assert SendGridRead({}, INFO).run(context(event)).output is None
