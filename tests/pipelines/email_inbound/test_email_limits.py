"""Size bounds: an email ``sendgrid.parse`` accepts (a body up to 5 MiB) is always staged and triggered or handed off.

DynamoDB refuses items over 400 KB and the handoff message must stay within 256 KiB, both final errors that
SendGrid would retry for three days before dropping the email. So the text is cut (``max_text_bytes``, at a
character boundary, marked ``body_truncated`` with the whole size in ``body_bytes``), the kept fields and the
attachment summaries are clipped, and a handoff still too large has its text cut further.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from steps.sendgrid.html_text import html_to_text
from steps.sendgrid.parse import HTML_CHARS_PER_TEXT_BYTE
from tests.support.email import KEY, USER_EMAIL, add_email_world, email_event
from tests.support.logscan import forbid
from tools.sendgrid_events import Attachment, Email, raw_mime_body, signed

MAX_TEXT = 128 * 1024  # pipelines/email_inbound.yaml
SQS_LIMIT = 256 * 1024
# Three-byte characters, so that the cut falls inside one unless it is made at a character boundary.
QUOTED = "> quoted line of a long thread, the kind mail clients keep appending: 10 € ≈ 11 $\n"


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return response["statusCode"], json.loads(response["body"])


def raw_event(email: Email) -> dict[str, Any]:
    """The event of ``email`` posted in SendGrid's ``send_raw`` format (the whole MIME message)."""
    data, content_type = raw_mime_body(email)
    event = email_event(body=data)
    request = signed(KEY, data, content_type)
    event["headers"].update(request.headers)
    event["multiValueHeaders"].update({name: [value] for name, value in request.headers.items()})
    return event


@pytest.mark.parametrize(
    "email",
    [
        Email(text=QUOTED * 5600, html=None),
        Email(text=None, html="<div><p>" + "</p><p>".join([QUOTED.strip()] * 5600) + "</p></div>"),
        # Over 4 x max_text_bytes characters of HTML: the text is read from that much of it only.
        Email(text=None, html="<div><p>" + "</p><p>".join([QUOTED.strip()] * 12000) + "</p></div>"),
    ],
    ids=["text_470_kb", "html_only_600_kb", "html_only_1300_kb"],
)
def test_a_long_text_is_staged_cut_at_a_character_boundary_and_triggered(
    world, lambda_handler, outcomes, caplog, email
):
    item = add_email_world(world)
    forbid(QUOTED.strip())
    event = email_event(email)

    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "QUEUED"})

    [row] = world.stage_rows()
    staged = row["body"].encode()
    assert MAX_TEXT - 3 <= len(staged) <= MAX_TEXT
    whole = email.text.strip() if email.text else html_to_text(email.html or "", HTML_CHARS_PER_TEXT_BYTE * MAX_TEXT)
    assert whole.startswith(row["body"])
    assert row["body_truncated"] is True and row["body_bytes"] == len(whole.encode())
    assert world.sent("email") == [({"conversation_id": item["conversation_id"], "primary_channel": USER_EMAIL}, 10)]
    [logged] = [record for record in caplog.records if record.getMessage() == "email text truncated"]
    assert logged.levelno == logging.INFO and f"{row['body_bytes']} bytes" in logged.decision
    # SendGrid's re-delivery of that post is the same message.
    assert answer(lambda_handler(event, None))[1]["outcome"] == "REPLAY"
    assert len(world.stage_rows()) == 1


def test_a_text_within_the_bound_is_staged_whole_and_unmarked(world, lambda_handler, outcomes):
    add_email_world(world)
    text = QUOTED * 1500  # 127 KB: under the bound
    assert answer(lambda_handler(email_event(Email(text=text, html=None)), None))[1]["outcome"] == "QUEUED"
    [row] = world.stage_rows()
    assert row["body"] == text.strip()
    assert "body_truncated" not in row and "body_bytes" not in row


def test_many_attachments_with_long_names_are_staged_with_clipped_summaries(world, lambda_handler, outcomes):
    add_email_world(world)
    files = tuple(
        Attachment(f"{index:03}-" + "n" * 7000 + ".pdf", "application/pdf", b"%PDF-1.4") for index in range(100)
    )
    email = Email(attachments=files)  # 700 KB of names alone

    assert answer(lambda_handler(email_event(email), None))[1]["outcome"] == "QUEUED"

    [row] = world.stage_rows()
    assert row["num_media"] == 100 and len(row["media"]) == 100
    assert all(len(entry["filename"].encode()) == 255 for entry in row["media"])
    assert [entry["filename"][:4] for entry in row["media"][:2]] == ["000-", "001-"]
    assert row["media"][0]["content_type"] == "application/pdf" and row["media"][0]["size"] == 8


def test_a_raw_mime_email_lists_at_most_128_attachments_and_counts_them_all(world, lambda_handler, outcomes):
    add_email_world(world)
    files = tuple(Attachment(f"scan-{index}.png", "image/png", b"\x89PNG") for index in range(300))
    assert answer(lambda_handler(raw_event(Email(attachments=files)), None))[1]["outcome"] == "QUEUED"
    [row] = world.stage_rows()
    assert row["num_media"] == 300 and len(row["media"]) == 128
    assert row["media"][127]["filename"] == "scan-127.png"


def test_an_email_with_hundreds_of_inline_images_is_staged_in_the_parsed_format_too(world, lambda_handler, outcomes):
    """A long Outlook thread carries every quoted signature's logos inline (image001.png…): SendGrid's parsed format
    posts one form part per image, and a form of more than 128 parts was refused (400 PARSING_ERROR, which SendGrid
    drops), while the same email in the raw format was staged."""
    add_email_world(world)
    images = tuple(
        Attachment(f"image{index:03}.png", "image/png", b"\x89PNG", content_id=f"image{index:03}.png@01D9")
        for index in range(300)
    )
    assert answer(lambda_handler(email_event(Email(attachments=images)), None)) == (
        200,
        {"status": "ok", "outcome": "QUEUED"},
    )
    [row] = world.stage_rows()
    assert row["num_media"] == 300 and len(row["media"]) == 128
    assert row["media"][127] == {"filename": "image127.png", "content_type": "image/png", "size": 4}


def test_a_handoff_of_a_long_text_with_a_long_history_stays_within_256_kib(world, lambda_handler, outcomes):
    history = [
        {"role": "user", "content": f"{index} " + "h" * 1000, "timestamp": 1732100000 + index} for index in range(200)
    ]
    add_email_world(world, hand_off_to_human=True, messages=history)
    text = QUOTED * 5600

    assert answer(lambda_handler(email_event(Email(text=text, html=None)), None))[1]["outcome"] == "HANDED_OFF"

    [raw] = world.sent_raw("handoff")
    assert len(raw.encode()) <= SQS_LIMIT
    message = json.loads(raw)
    [row] = world.stage_rows()
    assert message["body"] == row["body"] and len(message["body"].encode()) > MAX_TEXT - 4
    assert (message["body_truncated"], message["body_bytes"]) == (True, row["body_bytes"])
    kept = message["conversation"]["messages"]
    assert 0 < len(kept) < len(history) and kept[-1] == history[-1]  # the oldest history went first


@pytest.mark.parametrize(
    ("email", "whole"),
    [
        # Every '"' is two bytes in JSON: the text at its bound alone is over 256 KiB once encoded.
        (Email(text='"' * 140_000, html=None), 140_000),
        (Email(subject="Re: " * 80_000, cc=", ".join(f"p{index}@example.org" for index in range(20_000))), None),
    ],
    ids=["text_of_json_escapes", "huge_subject_and_cc"],
)
def test_a_handoff_that_is_still_too_large_without_history_is_cut_not_refused(
    world, lambda_handler, outcomes, email, whole
):
    add_email_world(world, hand_off_to_human=True)

    assert answer(lambda_handler(email_event(email), None))[1]["outcome"] == "HANDED_OFF"

    [raw] = world.sent_raw("handoff")
    assert len(raw.encode()) <= SQS_LIMIT
    message = json.loads(raw)
    assert all(len(value.encode()) <= 2048 for value in message["request"].values())
    if whole is not None:
        assert message["body_truncated"] is True and message["body_bytes"] == whole
        assert 100_000 < len(message["body"]) < MAX_TEXT and set(message["body"]) == {'"'}
    else:
        assert message["request"]["subject"].startswith("Re: Re: ") and "body_truncated" not in message


# DynamoDB's key limits (a GSI's too): a partition key value of at most 2048 bytes, a sort key value of at most
# 1024, neither empty. A Query naming a longer one is refused with ValidationException (moto answers it: no items).
PARTITION_KEY_BYTES, SORT_KEY_BYTES = 2048, 1024


@pytest.mark.parametrize(
    "sender",
    [
        "\U0001d51e" * 270 + "@example.net",  # 270 characters of 4 bytes: 1092 bytes, within the 320 characters read
        "j\u00e9r\u00f4me." + "\U0001f600" * 300 + "@example.net",
    ],
    ids=["math_letters", "emoji"],
)
def test_a_sender_address_longer_than_a_sort_key_is_not_found_without_a_query(
    world, lambda_handler, aws, outcomes, json_logs, sender
):
    """The sender's address is the email GSI's sort key: one over 1024 bytes of UTF-8 (a From anyone can write,
    inside the 320 characters an address may have) made a Query DynamoDB refuses (ValidationException), so the
    email was DB_QUERY_ERROR, 500, which SendGrid retried for three days, tripping MessageLossAlarm each time. No
    conversation can hold such a key (DynamoDB refuses the item's write): the answer is CONVERSATION_NOT_FOUND."""
    add_email_world(world)
    assert len(sender.encode()) > SORT_KEY_BYTES

    status, body = answer(lambda_handler(email_event(Email(sender=sender, envelope_from=sender)), None))

    for query in aws.of("dynamodb.Query"):
        company, user = (value["S"] for value in query["ExpressionAttributeValues"].values())
        assert 0 < len(company.encode()) <= PARTITION_KEY_BYTES
        assert 0 < len(user.encode()) <= SORT_KEY_BYTES, "a Query DynamoDB refuses"
    assert (status, body["error_code"]) == (404, "CONVERSATION_NOT_FOUND")
    assert outcomes() == [("CONVERSATION_NOT_FOUND", "CONVERSATION_NOT_FOUND")]
    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert event["error_cause"] == "gsi_recipient_email:over-1024-bytes"  # the bound, never the address
    assert world.stage_rows() == [] and not any(world.all_sent().values())
