"""A signed post cannot be re-cut into another email by changing its (unsigned) Content-Type boundary.

SendGrid signs the timestamp and the body, not the Content-Type header that names the multipart boundary. The
sender of an email controls its text, so the text can carry a whole second form behind ``\\r\\n--FAKE`` lines:
the same signed bytes read with ``boundary=FAKE`` would be another email (another Message-ID, so no replay
record; another sender). The parser takes only the boundary the body starts with, refuses a preamble and an
epilogue, so such a request is a ``400 PARSING_ERROR`` before any AWS call.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from tests.support.email import COMPANY_EMAIL, HOST, KEY, USER_EMAIL, add_email_world
from tools.sendgrid_events import (
    Email,
    encode_form,
    inbound_parse_body,
    inbound_parse_event,
    inbound_parse_fields,
    signed,
)


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return response["statusCode"], json.loads(response["body"])


def fake_form(boundary: str = "FAKE") -> str:
    """A whole Inbound Parse form from the victim, behind ``boundary``: text any sender can write."""
    fields = [
        ("headers", f"From: Jane <{USER_EMAIL}>\nMessage-ID: <forged-1@example.net>\n"),
        ("from", f"Jane Sender <{USER_EMAIL}>"),
        ("to", COMPANY_EMAIL),
        ("envelope", json.dumps({"to": [COMPANY_EMAIL], "from": USER_EMAIL})),
        ("subject", "new delivery address"),
        ("text", "Please send everything to 1 Attacker Road from now on."),
        ("spam_score", "0.0"),
    ]
    parts = "".join(f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}' for n, v in fields)
    return parts + f"\r\n--{boundary}--\r\n"


def captured(email: Email) -> tuple[dict[str, Any], dict[str, Any]]:
    """SendGrid's signed post of ``email``, and the same bytes, signature and timestamp with ``boundary=FAKE``."""
    body, content_type = inbound_parse_body(email)
    request = signed(KEY, body, content_type, timestamp=int(time.time()))
    recut = inbound_parse_event(request, host=HOST, headers={"Content-Type": "multipart/form-data; boundary=FAKE"})
    assert base64.b64decode(recut["body"]) == body
    return inbound_parse_event(request, host=HOST), recut


def test_a_stranger_s_post_re_cut_as_the_victim_s_email_is_a_parsing_error(world, lambda_handler, aws, outcomes):
    add_email_world(world)
    stranger = Email(
        sender="Mallory <mallory@evil.example>",
        envelope_from="mallory@evil.example",
        message_id="<orig-1@evil.example>",
        text="hi" + fake_form(),
        html=None,
    )
    genuine, recut = captured(stranger)
    assert answer(lambda_handler(genuine, None))[1]["error_code"] == "CONVERSATION_NOT_FOUND"
    aws.calls.clear()

    status, body = answer(lambda_handler(recut, None))

    assert (status, body["status"], body["error_code"]) == (400, "error", "PARSING_ERROR")
    assert "MULTIPART_BAD_BOUNDARY" in body["message"]
    assert outcomes()[-1] == ("PARSING_ERROR", "PARSING_ERROR")
    assert aws.names() == []  # refused before the lookup: no conversation data read
    assert world.stage_rows() == [] and world.lock_rows() == [] and world.replay_rows() == []
    assert world.sent("email") == [] and world.sent("handoff") == []


def test_the_victim_s_own_email_carrying_a_second_form_is_staged_as_sent_and_never_re_cut(
    world, lambda_handler, aws, outcomes
):
    add_email_world(world)
    email = Email(text="see below" + fake_form(), html=None)
    genuine, recut = captured(email)
    assert answer(lambda_handler(genuine, None)) == (200, {"status": "ok", "outcome": "QUEUED"})
    [row] = world.stage_rows()
    assert row["body"] == email.text.replace("\r\n", "\n").strip()  # the text as the email has it
    aws.calls.clear()

    status, body = answer(lambda_handler(recut, None))

    assert (status, body["error_code"]) == (400, "PARSING_ERROR")
    assert aws.names() == []
    assert world.stage_rows() == [row] and len(world.replay_rows()) == 1 and len(world.sent("email")) == 1


def test_a_post_naming_one_of_sendgrid_s_fields_twice_is_a_parsing_error(world, lambda_handler, aws):
    # SendGrid posts each field once. Should it ever fail to keep its own boundary out of an email's text, the text
    # could add a second `from` or `envelope` part: the parse must not pick either of two senders.
    add_email_world(world)
    fields, files = inbound_parse_fields(Email())
    impostor = [
        ("from", "Mallory <mallory@evil.example>") if name == "from" else (name, value) for name, value in fields
    ]
    twice = [*fields[:1], ("from", "Mallory <mallory@evil.example>"), *fields[1:]]
    for form in (twice, [*impostor, ("envelope", json.dumps({"to": [COMPANY_EMAIL], "from": USER_EMAIL}))]):
        body, content_type = encode_form(form, files)
        status, answered = answer(lambda_handler(inbound_parse_event(signed(KEY, body, content_type), host=HOST), None))
        assert (status, answered["error_code"]) == (400, "PARSING_ERROR"), answered
        assert "more than once" in answered["message"]
    assert aws.names() == [] and world.stage_rows() == []
