"""What the email pipeline reads from an email end to end: HTML-only text, charsets, senders, filenames, auto-replies.

Each case is an email a mailer really sends that was lost, garbled, answered or failed before: an HTML-only
email that stalled the function past its deadline (503 on every SendGrid retry) or lost its text, charset names
Python does not know, a From header that crashed the parse (500), raw-mode UTF-8 filenames, and automatic
replies queued for an answer (a mail loop).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from steps.sendgrid.message import id_from_message_id
from tests.support.email import USER_EMAIL, add_email_world, answer, email_event, posted
from tests.support.logscan import forbid
from tools.sendgrid_events import (
    RECIPIENT,
    Attachment,
    Email,
    encode_form,
    inbound_parse_fields,
    raw_mime_body,
)


def declared_as(email: Email, encoding: str, label: str) -> dict[str, Any]:
    """The event of ``email`` whose text fields are encoded in ``encoding`` and declared ``label`` in ``charsets``."""
    fields, files = inbound_parse_fields(email)
    out: list[tuple[str, str | bytes]] = []
    for name, value in fields:
        if name == "charsets":
            value = json.dumps(dict.fromkeys(json.loads(value), label))
        elif name in ("text", "subject", "from", "to"):
            value = (value.decode("utf-8") if isinstance(value, bytes) else value).encode(encoding)
        out.append((name, value))
    return posted(*encode_form(out, files))


@pytest.mark.real_deadline  # queued within the pipeline's deadline, on the real clock
def test_a_small_html_only_email_of_unclosed_tags_is_queued_within_the_deadline(world, lambda_handler, outcomes):
    """24 KB of '<a ': the standard library's parser took over the 4 s deadline on it (503 on every retry)."""
    add_email_world(world)
    status, body = answer(lambda_handler(email_event(Email(text=None, html="<a " * 8000)), None))
    assert (status, body) == (200, {"status": "ok", "outcome": "QUEUED"})
    [row] = world.stage_rows()
    assert row["body"] == "" and "body_truncated" not in row


def test_an_html_only_email_without_the_optional_head_end_tag_keeps_its_text(world, lambda_handler, outcomes):
    add_email_world(world)
    html = '<html><head><meta charset="utf-8"><title>Order</title><body><p>Hi, my order never arrived.</p></body>'
    status, _ = answer(lambda_handler(email_event(Email(text=None, html=html)), None))
    assert status == 200
    [row] = world.stage_rows()
    assert row["body"] == "Hi, my order never arrived."


@pytest.mark.parametrize(
    ("encoding", "label", "text"),
    [
        ("cp874", "windows-874", "สวัสดีครับ ผมมีคำถามเกี่ยวกับคำสั่งซื้อ"),  # Thai, Outlook's name
        ("iso-8859-8", "iso-8859-8-i", "שלום, ההזמנה שלי לא הגיעה"),  # Hebrew, Outlook's "logical" name
        ("cp932", "Windows-31J", "注文がまだ届いていません"),  # Japanese, Java mailers' name for cp932
        ("gbk", "x-gbk", "我的订单还没到"),
    ],
    ids=["windows-874", "iso-8859-8-i", "Windows-31J", "x-gbk"],
)
def test_charset_names_python_lacks_are_staged_as_written(world, lambda_handler, outcomes, encoding, label, text):
    add_email_world(world)
    status, body = answer(lambda_handler(declared_as(Email(text=text, html=None), encoding, label), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert row["body"] == text


NESTED = "Jane " + "(" * 600 + "x" + ")" * 600 + " <jane.sender@example.net>"


def test_a_from_header_nested_too_deep_leaves_the_envelope_sender(world, lambda_handler, outcomes):
    """It raised RecursionError: 500 INTERNAL_ERROR, retried by SendGrid for three days."""
    add_email_world(world)
    status, body = answer(lambda_handler(email_event(Email(sender=NESTED, envelope_from=USER_EMAIL)), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert row["primary_channel"] == USER_EMAIL


def test_a_from_header_nested_too_deep_without_an_envelope_sender_is_a_parsing_error(
    world, lambda_handler, aws, outcomes
):
    add_email_world(world)
    status, body = answer(lambda_handler(email_event(Email(sender=NESTED, envelope_from="")), None))
    assert (status, body["error_code"]) == (400, "PARSING_ERROR")
    assert aws.names() == [] and world.stage_rows() == []


def test_a_raw_mime_attachment_with_a_utf8_filename_is_staged_with_it(world, lambda_handler, outcomes):
    add_email_world(world)
    mime = (
        b"From: Jane Sender <jane.sender@example.net>\r\nTo: support@parse.example.com\r\nSubject: Invoice\r\n"
        b"Message-ID: <raw-utf8@mail.example.net>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the invoice attached.\r\n"
        b'--b1\r\nContent-Type: application/pdf; name="Rechnung M\xc3\xa4rz.pdf"\r\n'
        b'Content-Disposition: attachment; filename="Rechnung M\xc3\xa4rz.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    )
    envelope = json.dumps({"to": [RECIPIENT], "from": USER_EMAIL})
    fields = [("email", mime), ("to", RECIPIENT), ("from", "Jane Sender <jane.sender@example.net>")]
    status, body = answer(lambda_handler(posted(*encode_form([*fields, ("envelope", envelope)])), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert row["media"] == [{"filename": "Rechnung März.pdf", "content_type": "application/pdf", "size": 9}]


@pytest.mark.parametrize(
    ("disposition", "staged"),
    [
        # RFC 2231's charset is the sender's to name: UTF-7's "+3AA-" decodes to a lone surrogate (U+DC00).
        (b"attachment; filename*=utf-7''%2B3AA-scan.pdf", "\ufffdscan.pdf"),
        # So is an encoded word's (not standard in a parameter, but read as mailers write it).
        (b'attachment; filename="=?utf-7?Q?+2D0-scan.pdf?="', "\ufffdscan.pdf"),
    ],
    ids=["rfc2231_utf7", "encoded_word_utf7"],
)
def test_a_raw_mime_attachment_name_decoding_to_a_lone_surrogate_is_staged_with_a_replacement_character(
    world, lambda_handler, aws, outcomes, disposition, staged
):
    """A lone surrogate has no UTF-8 form, and DynamoDB's strings are UTF-8: the stage row could not be stored as
    written (moto raises), and the email was answered 500 on every SendGrid retry for three days, then dropped."""
    add_email_world(world)
    mime = (
        b"From: Jane Sender <jane.sender@example.net>\r\nTo: support@parse.example.com\r\nSubject: Scan\r\n"
        b"Message-ID: <raw-utf7@mail.example.net>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe scan, attached.\r\n"
        b"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: " + disposition + b"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    )
    envelope = json.dumps({"to": [RECIPIENT], "from": USER_EMAIL})
    fields = [("email", mime), ("to", RECIPIENT), ("from", "Jane Sender <jane.sender@example.net>")]

    status, body = answer(lambda_handler(posted(*encode_form([*fields, ("envelope", envelope)])), None))

    for put in aws.of("dynamodb.PutItem"):
        json.dumps(put, ensure_ascii=False).encode("utf-8")  # what DynamoDB receives is text UTF-8 can carry
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert row["media"] == [{"filename": staged, "content_type": "application/pdf", "size": 9}]


def nested_mime(levels: int) -> bytes:
    """A raw MIME message whose text sits inside ``levels`` multiparts nested one in another."""
    head = (
        b"From: Jane Sender <jane.sender@example.net>\r\nTo: support@parse.example.com\r\nSubject: Nested\r\n"
        b"Message-ID: <nested@mail.example.net>\r\nMIME-Version: 1.0\r\n"
    )
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(levels))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nDeep inside.\r\n" + closing


@pytest.mark.parametrize("levels", [900, 3000])
def test_a_raw_mime_email_nested_too_deep_is_queued_under_its_message_id(world, lambda_handler, outcomes, levels):
    """The standard library parses and walks MIME recursively: RecursionError, 500 INTERNAL_ERROR on every
    SendGrid retry for three days (and before the signature was checked, so for anyone who posted one).

    The headers still name the email (its Message-ID, so a retry is the same message); parts nested deeper than
    the reader goes are not read.
    """
    add_email_world(world)
    envelope = json.dumps({"to": [RECIPIENT], "from": USER_EMAIL})
    fields = [("email", nested_mime(levels)), ("to", RECIPIENT), ("from", USER_EMAIL), ("envelope", envelope)]
    status, body = answer(lambda_handler(posted(*encode_form(fields)), None))
    assert (status, body) == (200, {"status": "ok", "outcome": "QUEUED"})
    [row] = world.stage_rows()
    assert row["message_sid"] == id_from_message_id("nested@mail.example.net", RECIPIENT)
    assert row["primary_channel"] == USER_EMAIL


@pytest.mark.real_deadline  # queued within the pipeline's deadline, on the real clock
def test_a_raw_mime_email_of_a_quarter_million_empty_parts_is_queued_within_the_deadline(
    world, lambda_handler, outcomes
):
    """2.7 MB of ``--b`` lines took the standard library's parser 6 s here (Lambda's 512 MB has a third of a CPU):
    past the 4 s deadline, 503 on every SendGrid retry for three days, and before the signature was checked, so
    anyone could make the function (which serves /whatsapp and /sms too) spin for its whole timeout.

    The message is read up to its first parts (about 1024, fed in chunks); the text before them is kept, followed
    by the text of the parts read (a part without headers is text/plain: its text is the email's too).
    """
    add_email_world(world)
    head = (
        b"From: Jane Sender <jane.sender@example.net>\r\nMessage-ID: <many@mail.example.net>\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe text.\r\n"
    )
    mime = head + b"--b\r\n\r\nx\r\n" * 250_000 + b"--b--\r\n"
    envelope = json.dumps({"to": [RECIPIENT], "from": USER_EMAIL})
    fields = [("email", mime), ("to", RECIPIENT), ("from", USER_EMAIL), ("envelope", envelope)]
    status, body = answer(lambda_handler(posted(*encode_form(fields)), None))
    assert (status, body) == (200, {"status": "ok", "outcome": "QUEUED"})
    [row] = world.stage_rows()
    first, *read = row["body"].split("\n")
    assert first == "The text." and set(read) == {"x"} and 1000 < len(read) < 2048


AUTOMATIC = [
    {"Auto-Submitted": "auto-replied"},  # RFC 3834 out-of-office / vacation reply (Exchange, Gmail)
    {"Auto-Submitted": "auto-generated", "Precedence": "bulk"},  # a helpdesk's acknowledgement
    {"X-Autoreply": "yes"},  # vacation(1)
    {"Precedence": "auto_reply"},
]


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
@pytest.mark.parametrize("headers", AUTOMATIC, ids=["out-of-office", "auto-ack", "x-autoreply", "precedence"])
def test_an_automatic_reply_is_refused_and_never_answered(world, lambda_handler, outcomes, headers, raw):
    """Answering a responder by email invites a mail loop; refused like a bounce: 422, not retried."""
    add_email_world(world)
    email = Email(
        subject="Automatic reply: Order #1042", text="I am out of the office until Monday.", extra_headers=headers
    )
    event = posted(*raw_mime_body(email)) if raw else email_event(email)
    status, body = answer(lambda_handler(event, None))
    assert (status, body["error_code"]) == (422, "EMAIL_REJECTED")
    assert body["message"] == "the email was sent automatically, not by a person"
    assert world.stage_rows() == [] and world.lock_rows() == [] and world.sent("email") == []


@pytest.mark.parametrize("headers", [{"Auto-Submitted": "no"}, {"Precedence": "list"}], ids=["no", "list"])
def test_an_email_a_person_sent_through_a_list_or_marked_not_automatic_is_queued(
    world, lambda_handler, outcomes, headers
):
    add_email_world(world)
    status, body = answer(lambda_handler(email_event(Email(extra_headers=headers)), None))
    assert (status, body["outcome"]) == (200, "QUEUED")


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_an_email_to_a_plus_tagged_parse_address_finds_the_conversation_and_is_deduplicated(
    world, lambda_handler, outcomes, raw
):
    """``support+order-1042@`` is the parse address with a subaddress (RFC 5233): SendGrid delivers it to the same
    Parse Setting, yet the lookup asked the GSI for the tagged address and answered 404 (SendGrid drops a 4xx: the
    email was lost). The same email posted again for the untagged address is the same message of that conversation.
    """
    item = add_email_world(world)
    tagged = "Support+Order-1042@Parse.Example.com"
    forbid(tagged, tagged.lower())
    first = Email(to=tagged, envelope_to=(tagged,))
    event = posted(*raw_mime_body(first)) if raw else email_event(first)
    status, body = answer(lambda_handler(event, None))
    assert (status, body) == (200, {"status": "ok", "outcome": "QUEUED"})
    assert world.sent("email") == [({"conversation_id": item["conversation_id"], "primary_channel": USER_EMAIL}, 10)]
    [row] = world.stage_rows()
    assert row["message_sid"] == id_from_message_id("CAF=1a2b3c.4d5e@mail.example.net", RECIPIENT)

    again = Email(cc=tagged)  # the same Message-ID, delivered to the untagged address too
    status, body = answer(lambda_handler(posted(*raw_mime_body(again)) if raw else email_event(again), None))
    assert (status, body) == (200, {"status": "ok", "outcome": "REPLAY"})
    assert len(world.stage_rows()) == 1 and len(world.sent("email")) == 1


def test_an_html_only_email_laid_out_in_a_table_keeps_its_words_apart(world, lambda_handler, outcomes):
    """Mailers lay out order forms, signatures and quoted headers in tables: each cell's text was glued to the
    next one's ("Order number1042"), so the staged text said something else."""
    add_email_world(world)
    html = (
        "<table><tr><th>Order number</th><th>Status</th></tr><tr><td>1042</td><td>not delivered</td></tr></table>"
        "<center>Jane</center><center>Customer since 2019</center>"
    )
    status, _ = answer(lambda_handler(email_event(Email(text=None, html=html)), None))
    assert status == 200
    [row] = world.stage_rows()
    assert row["body"] == "Order number Status\n1042 not delivered\n\nJane\n\nCustomer since 2019"


def raw_posted(mime: bytes) -> dict[str, Any]:
    """The event of a raw-format (``send_raw``) post of ``mime``, sent by the conversation's user."""
    envelope = json.dumps({"to": [RECIPIENT], "from": USER_EMAIL})
    return posted(*encode_form([("email", mime), ("to", RECIPIENT), ("from", USER_EMAIL), ("envelope", envelope)]))


RAW_HEAD = (
    b"From: Jane Sender <jane.sender@example.net>\r\nTo: support@parse.example.com\r\nSubject: Broken lamp\r\n"
    b"Message-ID: <split@mail.example.net>\r\nMIME-Version: 1.0\r\n"
)


def test_a_raw_email_whose_text_an_attachment_splits_keeps_all_of_its_text(world, lambda_handler, outcomes):
    """Apple Mail writes a photo placed mid-text as text, image, text parts: only the first text was staged, and
    what the user wrote after the photo was lost."""
    add_email_world(world)
    mime = RAW_HEAD + (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe lamp arrived broken, see:\r\n"
        b'--m\r\nContent-Type: image/jpeg; name="lamp.jpg"\r\nContent-Disposition: inline; filename="lamp.jpg"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n"
        b"--m\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPlease send a new one to my home address.\r\n"
        b"--m--\r\n"
    )
    status, body = answer(lambda_handler(raw_posted(mime), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert row["body"] == "The lamp arrived broken, see:\nPlease send a new one to my home address."
    assert row["media"] == [{"filename": "lamp.jpg", "content_type": "image/jpeg", "size": 6}]


def test_a_raw_html_email_forwarding_an_email_stages_its_own_text_and_lists_the_forwarded_one(
    world, lambda_handler, outcomes
):
    """An HTML-only email with an email attached (message/rfc822): the attached email's text was staged as what the
    user wrote, and the attachment was not listed (its own attachments were)."""
    add_email_world(world)
    forwarded = (
        b"From: Shop <orders@shop.example>\r\nSubject: Your order\r\nContent-Type: multipart/mixed; boundary=f\r\n\r\n"
        b"--f\r\nContent-Type: text/plain\r\n\r\nYour order 1042 has shipped.\r\n"
        b'--f\r\nContent-Type: application/pdf; name="invoice.pdf"\r\nContent-Disposition: attachment; '
        b'filename="invoice.pdf"\r\n\r\n%PDF\r\n--f--\r\n'
    )
    mime = RAW_HEAD + (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>It never arrived, see below.</p>\r\n"
        b'--m\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="order.eml"\r\n\r\n'
        + forwarded
        + b"\r\n--m--\r\n"
    )
    status, body = answer(lambda_handler(raw_posted(mime), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert row["body"] == "It never arrived, see below."
    assert [(m["filename"], m["content_type"]) for m in row["media"]] == [("order.eml", "message/rfc822")]
    assert row["num_media"] == 1


LABELLED_LATIN1 = "I don\u2019t want the \u20ac49 lamp \u2013 please refund \u201cOrder 1042\u201d\u2026"


@pytest.mark.parametrize("label", ["iso-8859-1", "us-ascii"])
def test_windows_1252_text_labelled_latin1_or_ascii_keeps_its_quotes_dashes_and_euro_signs(
    world, lambda_handler, outcomes, label
):
    """Outlook and older mailers label Windows-1252 text iso-8859-1 (or us-ascii): its curly quotes, dashes and euro
    signs became invisible C1 control characters (``don\\x92t``, ``\\x8049``) or U+FFFD. Browsers and mail clients
    read these labels as Windows-1252 (WHATWG Encoding Standard); so does the pipeline now."""
    add_email_world(world)
    status, body = answer(lambda_handler(declared_as(Email(text=LABELLED_LATIN1, html=None), "cp1252", label), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    mime = RAW_HEAD + (
        f"Content-Type: text/plain; charset={label}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode()
        + LABELLED_LATIN1.encode("cp1252")
        + b"\r\n"
    )
    status, body = answer(lambda_handler(raw_posted(mime), None))
    assert (status, body["outcome"]) == (200, "BATCHED")  # another email of the same conversation
    assert [row["body"] for row in world.stage_rows()] == [LABELLED_LATIN1, LABELLED_LATIN1]


READ_RECEIPT = (
    b'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\r\n\r\n'
    b"--r\r\nContent-Type: text/plain\r\n\r\nYour message was read on 3 June 2025 09:12.\r\n"
    b"--r\r\nContent-Type: message/disposition-notification\r\n\r\n"
    b"Final-Recipient: rfc822;jane.sender@example.net\r\nDisposition: automatic-action/MDN-sent-automatically; "
    b"displayed\r\n--r--\r\n"
)


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_a_read_receipt_is_refused_and_never_answered(world, lambda_handler, outcomes, raw):
    """A read receipt (RFC 8098) comes From the user, often without Auto-Submitted (Outlook's do not carry it): it
    was queued, and the assistant answered it, whose reading sent another receipt. A ``multipart/report`` (receipts,
    delivery reports: RFC 6522) is written by a program."""
    add_email_world(world)
    if raw:
        event = raw_posted(RAW_HEAD.replace(b"Broken lamp", b"Read: Order #1042") + READ_RECEIPT)
    else:
        fields, files = inbound_parse_fields(
            Email(subject="Read: Order #1042", text="Your message was read on 3 June 2025 09:12.", html=None)
        )
        report = 'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"'
        fields = [
            (name, value.replace('Content-Type: multipart/alternative; boundary="000000000000a1b2c3"', report))
            if name == "headers" and isinstance(value, str)
            else (name, value)
            for name, value in fields
        ]
        event = posted(*encode_form(fields, files))
    status, body = answer(lambda_handler(event, None))
    assert (status, body["error_code"]) == (422, "EMAIL_REJECTED")
    assert body["message"] == "the email was sent automatically, not by a person"
    assert world.stage_rows() == [] and world.sent("email") == []


def test_a_raw_email_offering_two_plain_text_alternatives_stages_the_first_only(world, lambda_handler, outcomes):
    """Alternatives say the same thing twice: joining every text part must not stage both."""
    add_email_world(world)
    mime = RAW_HEAD + (
        b'Content-Type: multipart/alternative; boundary="a"\r\n\r\n'
        b"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe lamp arrived broken.\r\n"
        b"--a\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\r\nThe lamp arrived broken.\r\n"
        b"--a\r\nContent-Type: text/html\r\n\r\n<p>The lamp arrived broken.</p>\r\n--a--\r\n"
    )
    status, body = answer(lambda_handler(raw_posted(mime), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert row["body"] == "The lamp arrived broken."


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
@pytest.mark.parametrize("null_path", ["", "<>"], ids=["empty", "angle-brackets"])
def test_an_email_with_a_null_envelope_sender_is_refused_and_never_answered(
    world, lambda_handler, outcomes, raw, null_path
):
    """A null reverse-path (``MAIL FROM:<>``) marks mail a system sent: a delivery report, a notice, a Sieve
    vacation reply (RFC 5321 §4.5.5, RFC 3834 §2: no response to it may be sent). Such an email From the user
    without the headers (an old responder) was queued and answered: a mail loop with the user's responder."""
    add_email_world(world)
    email = Email(subject="Re: Order #1042", text="I am away until Monday.", html=None, envelope_from=null_path)
    status, body = answer(lambda_handler(posted(*raw_mime_body(email)) if raw else email_event(email), None))
    assert (status, body["error_code"]) == (422, "EMAIL_REJECTED")
    assert body["message"] == "the email was sent automatically, not by a person"
    assert world.stage_rows() == [] and world.lock_rows() == [] and world.sent("email") == []


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_an_email_written_in_its_subject_alone_is_staged_with_its_subject(world, lambda_handler, outcomes, raw):
    """People write a short email in the subject line and leave the text empty (phones often do): the stage row,
    which the email queue's consumer reads, held an empty body and no subject, so the customer's words were lost."""
    add_email_world(world)
    email = Email(subject="Please cancel order #1042", text=None, html=None)
    status, body = answer(lambda_handler(posted(*raw_mime_body(email)) if raw else email_event(email), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert (row["body"], row["subject"]) == ("", "Please cancel order #1042")


def test_an_email_with_text_is_staged_with_its_subject_beside_the_text(world, lambda_handler, outcomes):
    add_email_world(world)
    status, _ = answer(lambda_handler(email_event(Email(subject="Order  #1042:\r\n where is it?")), None))
    assert status == 200
    [row] = world.stage_rows()
    assert (row["body"], row["subject"]) == (Email().text, "Order #1042: where is it?")


ENCODED_SUBJECTS = [
    # Mailers write a non-ASCII subject as RFC 2047 encoded words. SendGrid documents decoding the subject field;
    # a word it leaves encoded (a charset it does not know) or a relay posting the header as written reaches us so.
    ("=?UTF-8?B?w4dhIHZhID8g4pyTIPCfmIA=?=", "Ça va ? ✓ 😀"),
    ("=?ISO-8859-1?Q?Gr=FC=DFe?= aus =?UTF-8?Q?K=C3=B6ln?=", "Grüße aus Köln"),
    # Whitespace between two adjacent encoded words is not text (RFC 2047 §6.2): a long subject goes on.
    ("=?UTF-8?Q?Bestellung_Nr.?= =?UTF-8?Q?_1042_=E2=80=93_wo_ist_sie=3F?=", "Bestellung Nr. 1042 \u2013 wo ist sie?"),
    # A word split inside a word, as mailers fold a long subject: no space is read between its halves.
    ("=?UTF-8?Q?Caf?= =?UTF-8?B?w6kgb3V2ZXJ0?=", "Caf\u00e9 ouvert"),
    # A word whose base64 does not decode (one character past a multiple of 4) stays as written.
    ("Re: =?UTF-8?B?A?= ok", "Re: =?UTF-8?B?A?= ok"),
    # So does one holding what is no base64 at all: it is not read as the base64 left once that is dropped (nothing).
    ("Re: =?UTF-8?B?@@@@?= ok", "Re: =?UTF-8?B?@@@@?= ok"),
    ("Re: =?UTF-8?B?SGk@?= ok", "Re: =?UTF-8?B?SGk@?= ok"),
    ("=?Windows-1252?Q?=93Urgent=94_=96_=8010?=", "\u201cUrgent\u201d \u2013 \u20ac10"),
    ("=?Shift_JIS?B?ko2VtoLMjI+WvA==?=", "注文の件名"),
    ("=?x-bogus?B?UmU6IGhlbGxv?=", "Re: hello"),  # a charset no codec reads: read as UTF-8, as text fields are
    ("Re: =?utf-8*en?q?caf=C3=A9?= ok", "Re: café ok"),  # RFC 2231 language suffix
]


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
@pytest.mark.parametrize(("written", "subject"), ENCODED_SUBJECTS)
def test_a_subject_of_encoded_words_is_staged_decoded(world, lambda_handler, outcomes, raw, written, subject):
    """A subject field still in encoded words was staged so (``=?UTF-8?B?...?=``), unreadable to its consumer."""
    add_email_world(world)
    email = Email(subject=written)
    status, body = answer(lambda_handler(posted(*raw_mime_body(email)) if raw else email_event(email), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert (row["body"], row["subject"]) == (email.text, subject)


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_an_attachment_named_in_encoded_words_is_staged_with_its_name_in_either_format(
    world, lambda_handler, outcomes, raw
):
    """Mailers write a name that is not ASCII as a quoted encoded word; the raw format's was decoded, the parsed
    format's file part staged ``=?UTF-8?B?...?=``: one email, two names, by the Parse Setting's send_raw flag."""
    add_email_world(world)
    names = [
        ("=?UTF-8?B?w5xiZXJzaWNodCBNw6RyeiDinJMucGRm?=", "Übersicht März ✓.pdf"),
        ("=?ISO-8859-1?Q?K=F6ln.txt?=", "Köln.txt"),
        # A charset label naming a codec that is no charset (punycode: quadratic, 100 KB took 1.2 s) is read as
        # UTF-8, as a text part's is (multipart.decode_text), in both formats.
        ("=?punycode?B?LTk5OTk5OS5wZGY=?=", "-999999.pdf"),
    ]
    email = Email(attachments=tuple(Attachment(written, "application/pdf", b"%PDF-1.4") for written, _ in names))
    status, body = answer(lambda_handler(posted(*raw_mime_body(email)) if raw else email_event(email), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert [item["filename"] for item in row["media"]] == [name for _, name in names]
