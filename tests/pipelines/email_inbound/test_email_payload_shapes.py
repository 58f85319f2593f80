"""Inbound Parse posts as SendGrid really sends them, end to end through ``handler.handler``: several binary
attachments, text in the charsets ``charsets`` declares, a long header block, an envelope naming several parse
addresses. Each is staged as written (text, subject, attachment summaries), in either format, and none of its
text reaches a log line at INFO."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest

from steps.sendgrid.message import id_from_message_id, normalise_message_id
from tests.support.email import USER_EMAIL, add_email_world, answer, email_conversation, email_event, posted
from tests.support.logscan import forbid
from tools.localaws import put_items
from tools.sendgrid_events import (
    MESSAGE_ID,
    RECIPIENT,
    Attachment,
    Email,
    encode_form,
    inbound_parse_fields,
    raw_mime_body,
)

QUEUED = (200, {"status": "ok", "outcome": "QUEUED"})


def event_of(email: Email, raw: bool) -> dict[str, Any]:
    return posted(*raw_mime_body(email)) if raw else email_event(email)


_NOISE = random.Random(7)
BINARY = bytes(_NOISE.randrange(256) for _ in range(1_200_000))
ATTACHMENTS = (
    Attachment("Rechnung März.pdf", "application/pdf", b"%PDF-1.4\r\n" + BINARY[:400_000]),
    # Bytes that look like the form's delimiter but are not it (--xYzZY is), CRLFs and NULs inside a file.
    Attachment("photo.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + BINARY[400_000:] + b"\r\n--xYzZ\r\n\x00"),
    Attachment("empty.bin", "application/octet-stream", b""),
    Attachment("logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(2048), content_id="ii_logo01"),
)


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_several_binary_attachments_are_summarised_exactly(world, lambda_handler, outcomes, raw):
    add_email_world(world)
    email = Email(attachments=ATTACHMENTS)
    forbid(*(attachment.filename for attachment in ATTACHMENTS))

    assert answer(lambda_handler(event_of(email, raw), None)) == QUEUED

    [row] = world.stage_rows()
    assert (row["body"], row["subject"], row["num_media"]) == (email.text, email.subject, len(ATTACHMENTS))
    assert row["media"] == [
        {"filename": item.filename, "content_type": item.content_type, "size": len(item.data)} for item in ATTACHMENTS
    ]


def text_declared_as(email: Email, encoding: str, label: str) -> dict[str, Any]:
    """``email``'s post with its text and HTML in ``encoding``, declared ``label`` in ``charsets``; the headers UTF-8,
    as SendGrid says it converts them."""
    fields, files = inbound_parse_fields(email)
    out: list[tuple[str, str | bytes]] = []
    for name, value in fields:
        if name == "charsets":
            value = json.dumps({field: label if field in ("text", "html") else "UTF-8" for field in json.loads(value)})
        elif name in ("text", "html"):
            value = (value.decode("utf-8") if isinstance(value, bytes) else value).encode(encoding)
        out.append((name, value))
    return posted(*encode_form(out, files))


CHARSETS = [
    ("iso-8859-1", "ISO-8859-1", "Grüße aus Köln, ça va? ½ ©"),
    ("shift_jis", "Shift_JIS", "注文がまだ届いていません。よろしくお願いします。"),
    ("iso-2022-jp", "ISO-2022-JP", "注文がまだ届いていません"),
    ("koi8-r", "KOI8-R", "Мой заказ ещё не пришёл"),
    ("iso-8859-15", "iso-8859-15", "Prix : 5 € pour l'œuvre"),
    # A name no codec knows, or none: the bytes are read as UTF-8.
    ("utf-8", "x-no-such-charset", "Plain text ✓ still readable"),
    ("utf-8", "", "Plain text ✓ still readable"),
]


@pytest.mark.parametrize(("encoding", "label", "text"), CHARSETS, ids=[row[1] or "empty" for row in CHARSETS])
def test_text_in_the_charset_sendgrid_declares_is_staged_as_written(
    world, lambda_handler, outcomes, encoding, label, text
):
    add_email_world(world)
    forbid(text)

    assert answer(lambda_handler(text_declared_as(Email(text=text, html=None), encoding, label), None)) == QUEUED

    [row] = world.stage_rows()
    assert row["body"] == text


@pytest.mark.parametrize(("encoding", "label"), [("iso-8859-1", "ISO-8859-1"), ("shift_jis", "Shift_JIS")])
def test_an_html_only_email_in_a_declared_charset_is_staged_as_its_text(
    world, lambda_handler, outcomes, encoding, label
):
    add_email_world(world)
    words = {"iso-8859-1": "Grüße, café ½", "shift_jis": "注文の件です"}[encoding]
    email = Email(text=None, html=f"<html><body><p>{words}</p><p>&amp; <b>thanks</b></p></body></html>")

    assert answer(lambda_handler(text_declared_as(email, encoding, label), None)) == QUEUED

    [row] = world.stage_rows()
    assert row["body"] == f"{words}\n\n& thanks"


RECEIVED = "".join(
    f"Received: from relay{index}.example.net (relay{index}.example.net [192.0.2.{index % 250}]) by "
    f"mx{index}.example.org with ESMTPS id {index:08x}\n"
    for index in range(1200)
)


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_a_long_header_block_keeps_the_message_id_written_after_it(world, lambda_handler, outcomes, raw):
    """About 140 KB of Received lines (a long relay chain) before the Message-ID: the email keeps its id."""
    add_email_world(world)
    email = Email()
    if raw:
        data, content_type = raw_mime_body(email)
        start = data.index(b'name="email"\r\n\r\n') + len(b'name="email"\r\n\r\n')
        data = data[:start] + RECEIVED.replace("\n", "\r\n").encode() + data[start:]
    else:
        fields, files = inbound_parse_fields(email)
        data, content_type = encode_form(
            [(name, RECEIVED + value if name == "headers" else value) for name, value in fields], files
        )
    assert len(RECEIVED) > 128 * 1024

    assert answer(lambda_handler(posted(data, content_type), None)) == QUEUED

    [row] = world.stage_rows()
    assert row["message_sid"] == id_from_message_id(str(normalise_message_id(MESSAGE_ID)), RECIPIENT)
    assert (row["body"], row["subject"]) == (email.text, email.subject)


SALES = "sales@parse.example.com"


@pytest.mark.parametrize("first", [RECIPIENT, SALES])
def test_an_envelope_naming_several_parse_addresses_goes_to_the_first_ones_conversation(
    world, lambda_handler, outcomes, first
):
    """docs/email.md: the recipient is the envelope's first address (SendGrid documents one per post, and posts an
    email sent to two parse addresses once per address); one post naming two is staged once, for the first's."""
    support = add_email_world(world)
    sales = email_conversation(
        conversation_id=f"ci-bbb-000#pi-bbb-000#{uuid.uuid4()}#{USER_EMAIL}", gsi_company_email_address=SALES
    )
    put_items(world.dynamodb, world.resources.conversations_table, [sales])
    envelope = (first, *({RECIPIENT, SALES} - {first}))
    email = Email(envelope_to=envelope, to=", ".join(envelope))

    assert answer(lambda_handler(email_event(email), None)) == QUEUED

    [row] = world.stage_rows()
    expected = support if first == RECIPIENT else sales
    assert row["conversation_id"] == expected["conversation_id"]
    assert row["message_sid"] == id_from_message_id(str(normalise_message_id(MESSAGE_ID)), first)
