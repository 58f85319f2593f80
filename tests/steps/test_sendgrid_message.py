"""An inbound email's identity from SendGrid's fields: id, sender, recipients, subject, text, attachments."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from steps.sendgrid.message import (
    ID_PATTERN,
    Attachment,
    InboundEmail,
    html_to_text,
    id_from_body,
    id_from_message_id,
    normalise_message_id,
    read_email,
)
from steps.sendgrid.multipart import MultipartForm, parse
from tools.sendgrid_events import (
    MESSAGE_ID,
    Email,
    encode_form,
    inbound_parse_body,
    raw_mime_body,
)
from tools.sendgrid_events import Attachment as File

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
FILES = (File("logo.png", "image/png", PNG, content_id="ii_logo"), File("invoice.pdf", "application/pdf", b"%PDF" * 50))


def _read(email: Email, *, raw: bool = False) -> tuple[MultipartForm, bytes]:
    body, content_type = raw_mime_body(email) if raw else inbound_parse_body(email)
    return parse(body, content_type), body


def _email(email: Email, *, raw: bool = False) -> InboundEmail:
    form, body = _read(email, raw=raw)
    return read_email(form, body)


@pytest.mark.parametrize("raw", [False, True])
def test_a_sendgrid_post_reads_as_one_email(raw: bool) -> None:
    email = _email(Email(attachments=FILES, cc="Ops <ops@example.com>"), raw=raw)
    assert email.message_id == id_from_message_id("CAF=1a2b3c.4d5e@mail.example.net", "support@parse.example.com")
    assert email.id_source == "message-id"
    assert email.sender == "jane.sender@example.net"
    assert email.recipients == ("support@parse.example.com",)
    assert email.subject == "Order #1042: where is it?"
    assert email.text == "Hello,\nmy order has not arrived yet.\nJane"
    assert email.text_source == "text"
    assert email.spam_score == pytest.approx(0.012)
    assert email.raw_mime is raw
    assert [(a.filename, a.content_type, a.size, a.content_id) for a in email.attachments] == [
        ("logo.png", "image/png", len(PNG), "ii_logo"),
        ("invoice.pdf", "application/pdf", 200, None),
    ]


def test_default_format_attachments_keep_their_field_names() -> None:
    email = _email(Email(attachments=FILES))
    assert email.attachments == (
        Attachment("attachment1", "logo.png", "image/png", len(PNG), "ii_logo"),
        Attachment("attachment2", "invoice.pdf", "application/pdf", 200, None),
    )


def test_the_id_is_em_and_32_lowercase_hex_of_the_sha256_of_the_message_id_and_the_recipient() -> None:
    email = _email(Email())
    assert ID_PATTERN.fullmatch(email.message_id)
    digest = hashlib.sha256(b"CAF=1a2b3c.4d5e@mail.example.net\x00support@parse.example.com").hexdigest()
    assert email.message_id == "EM" + digest[:32]


def test_one_email_delivered_to_two_parse_addresses_has_two_ids() -> None:
    to = "support@parse.example.com, sales@parse.other.example"
    first = _email(Email(to=to, envelope_to=("support@parse.example.com",)))
    second = _email(Email(to=to, envelope_to=("sales@parse.other.example",)))
    assert first.message_id != second.message_id
    assert ID_PATTERN.fullmatch(second.message_id)
    assert _email(Email(to=to, envelope_to=("Sales@Parse.Other.Example",))).message_id == second.message_id


@pytest.mark.parametrize(
    "header",
    [
        MESSAGE_ID,
        "<CAF=1a2b3c.4d5e@mail.example.net>",
        "  <CAF=1a2b3c.4d5e@MAIL.EXAMPLE.NET>  ",
        "<CAF=1a2b3c.4d5e@Mail.Example.NET> (a comment)",
        "CAF=1a2b3c.4d5e@mail.example.net",
        "<CAF=1a2b3c.4d5e\n @Mail.Example.NET>",
    ],
)
def test_spellings_of_one_message_id_give_one_id(header: str) -> None:
    assert _email(Email(message_id=header)).message_id == _email(Email()).message_id


def test_a_folded_message_id_header_is_read() -> None:
    headers = "From: a@example.com\nMessage-ID:\n <CAF=1a2b3c.4d5e@Mail.Example.NET>\nSubject: x\n"
    body, content_type = encode_form([("headers", headers)])
    assert read_email(parse(body, content_type), body).message_id == id_from_message_id(
        "CAF=1a2b3c.4d5e@mail.example.net", ""
    )


def test_the_local_part_keeps_its_case() -> None:
    assert normalise_message_id("<ABC@Example.COM>") == "ABC@example.com"
    assert _email(Email(message_id="<abc@x>")).message_id != _email(Email(message_id="<ABC@x>")).message_id


@pytest.mark.parametrize("value", ["", "   ", "<>", "\r\n", "< >"])
def test_an_empty_message_id_is_none(value: str) -> None:
    assert normalise_message_id(value) is None


@pytest.mark.parametrize("message_id", [None, "<>", ""])
def test_without_a_message_id_the_id_is_a_digest_of_the_body(message_id: str | None) -> None:
    form, body = _read(Email(message_id=message_id))
    email = read_email(form, body)
    assert email.id_source == "body"
    assert email.message_id == id_from_body(body)
    assert ID_PATTERN.fullmatch(email.message_id)
    assert read_email(form, body + b"x").message_id != email.message_id


def test_a_body_id_never_equals_a_message_id_id() -> None:
    assert id_from_body(b"abc@example.com") != id_from_message_id("abc@example.com", "")


def test_the_first_of_two_message_ids_is_used() -> None:
    headers = "Message-ID: <first@example.com>\nMessage-ID: <second@example.com>\n"
    body, content_type = encode_form([("headers", headers)])
    assert read_email(parse(body, content_type), body).message_id == id_from_message_id("first@example.com", "")


def test_the_sender_is_the_author_else_the_envelope_return_path() -> None:
    assert _email(Email(envelope_from="")).sender == "jane.sender@example.net"
    assert _email(Email(sender="nobody")).sender == "bounces+jane@example.net"
    assert _email(Email(envelope_from="not an address", sender="nobody")).sender is None


def test_the_sender_is_read_from_a_from_header_with_a_display_name() -> None:
    assert _email(Email(sender="Jane <JANE@EXAMPLE.NET>")).sender == "jane@example.net"


def test_recipients_come_from_the_envelope_in_order_without_repeats() -> None:
    email = _email(Email(envelope_to=("B@x.example", "a@x.example", "b@X.example", "junk")))
    assert email.recipients == ("b@x.example", "a@x.example")


@pytest.mark.parametrize("envelope", ["", "not json", "[]", '{"to": 5}', '{"to": "Solo@X.example"}', "[" * 3000])
def test_a_broken_envelope_falls_back_to_the_headers(envelope: str) -> None:
    body, content_type = encode_form(
        [("envelope", envelope), ("from", "Jane <Jane@Example.NET>"), ("to", "A <A@x.example>, b@x.example")]
    )
    email = read_email(parse(body, content_type), body)
    assert email.sender == "jane@example.net"
    if envelope == '{"to": "Solo@X.example"}':
        assert email.recipients == ("solo@x.example",)
    else:
        assert email.recipients == ("a@x.example", "b@x.example")


def test_html_is_used_only_when_there_is_no_text() -> None:
    html = "<html><head><style>p {color: red}</style></head><body><p>Hi &amp; bye</p><script>x()</script></body></html>"
    assert _email(Email(text=None, html=html)).text == "Hi & bye"
    assert _email(Email(text=" \n ", html=html)).text_source == "html"
    assert _email(Email(text="plain", html=html)).text == "plain"
    nothing = _email(Email(text=None, html=None))
    assert (nothing.text, nothing.text_source) == ("", "none")


def test_raw_mime_html_only_is_read() -> None:
    email = _email(Email(text=None, html="<p>Only <i>html</i></p>"), raw=True)
    assert (email.text, email.text_source) == ("Only html", "html")


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("Line<br>break<br/>again", "Line\nbreak\nagain"),
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
        ("a\n   b\t\tc", "a b c"),
        ("&lt;tag&gt; &eacute; &#8364;", "<tag> \u00e9 \u20ac"),
        ("<![foo[ x ]]>after", "after"),
        ("<title>T</title><noscript>n</noscript><template>t</template>body", "body"),
        ("<div>unclosed <b>bold", "unclosed bold"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_the_subject_is_on_one_line() -> None:
    body, content_type = encode_form([("subject", "  Re:\r\n  folded\tsubject ")])
    assert read_email(parse(body, content_type), body).subject == "Re: folded subject"


@pytest.mark.parametrize(
    ("score", "expected"), [("0.012", 0.012), ("-1.5", -1.5), (" 3 ", 3.0), ("nan", None), ("inf", None), ("x", None)]
)
def test_the_spam_score_is_a_float_or_none(score: str, expected: float | None) -> None:
    assert _email(Email(spam_score=score)).spam_score == expected


def test_no_spam_score_without_spam_checking() -> None:
    assert _email(Email(spam_score=None)).spam_score is None


def test_content_ids_fall_back_to_the_content_ids_field() -> None:
    info = json.dumps({"attachment1": {"filename": "a.png", "type": "image/png"}})
    body, content_type = encode_form(
        [("attachment-info", info), ("content-ids", '{"cid-1": "attachment1"}')],
        [("attachment1", File("a.png", "image/png", b"x"))],
    )
    (attachment,) = read_email(parse(body, content_type), body).attachments
    assert attachment.content_id == "cid-1"


def test_a_non_utf8_charset_is_decoded_before_reading() -> None:
    email = _email(Email(subject="Caf\u00e9", text="D\u00e9j\u00e0 vu", charset="iso-8859-1"))
    assert (email.subject, email.text) == ("Caf\u00e9", "D\u00e9j\u00e0 vu")


field_names = st.sampled_from(
    ["headers", "envelope", "from", "to", "text", "html", "subject", "spam_score", "attachment-info", "content-ids"]
)
field_values = st.text(max_size=60) | st.sampled_from(
    ['{"to": ["a@b"], "from": "c@d"}', '{"attachment1": 5}', "Message-ID: <x@y>\n", "<![x[", "[[[["]
)


@FUZZ
@given(
    fields=st.lists(st.tuples(field_names, field_values), max_size=8),
    email=st.binary(max_size=300) | st.none(),
)
@example(fields=[("html", "<![foo[ x ]]>")], email=None)
@example(
    fields=[],
    email=b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=idna\n\nx\n--b--",
)
@example(fields=[], email=b"Content-Disposition: attachment; filename*=idna''x\n\ndata")
def test_any_form_reads_as_an_email_without_raising(fields: list[tuple[str, str]], email: bytes | None) -> None:
    pairs: list[tuple[str, str | bytes]] = list(fields)
    if email is not None:
        pairs.append(("email", email))
    body, content_type = encode_form(pairs)
    assume(body.count(b"\r\n--xYzZY") == len(pairs))
    assume(body.count(b"--xYzZY") == len(pairs) + 1)  # nor the boundary elsewhere in a value (refused)
    result = read_email(parse(body, content_type), body)
    assert ID_PATTERN.fullmatch(result.message_id)
    assert all("@" in address and address == address.lower() for address in result.recipients)
