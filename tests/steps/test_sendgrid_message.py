"""An inbound email's identity from SendGrid's fields: id, sender, recipients, subject, text, attachments."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from steps.sendgrid.message import (
    ID_PATTERN,
    Attachment,
    InboundEmail,
    id_from_body,
    id_from_message_id,
    normalise_message_id,
    read_addressing,
    read_email,
)
from steps.sendgrid.multipart import MultipartForm, parse
from tools.sendgrid_events import (
    MESSAGE_ID,
    RECIPIENT,
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


@pytest.mark.parametrize(
    "sender",
    [
        "Jane " + "(" * 600 + "x" + ")" * 600 + " <jane@example.net>",  # RFC 5322 comments nest
        "Jane (" + "(a)" * 20 + ")" + "(" * 40 + ")" * 40 + " <jane@example.net>",
        "a:" * 2000 + "jane@example.net;",  # groups, nested
        "Jane <jane@example.net> " + "x" * 20000,
    ],
    ids=["nested-comments", "deep-comment", "nested-groups", "long"],
)
def test_a_from_header_too_deep_or_long_to_read_leaves_the_envelope_sender(sender: str) -> None:
    assert _email(Email(sender=sender)).sender == "bounces+jane@example.net"
    assert _email(Email(sender=sender, envelope_from="")).sender is None


@pytest.mark.parametrize(
    "sender", ['"Re: a: b" <jane@example.net>', "Jane (work (main)) <jane@example.net>", "Team: jane@example.net;"]
)
def test_comments_quoted_colons_and_a_group_in_from_are_read(sender: str) -> None:
    assert _email(Email(sender=sender, envelope_from="")).sender == "jane@example.net"


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


def _raw(mime: bytes) -> InboundEmail:
    body, content_type = encode_form([("email", mime), ("to", RECIPIENT), ("from", "a@example.net")])
    return read_email(parse(body, content_type), body)


def _nested(levels: int, leaf: bytes) -> bytes:
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(levels))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return b"From: a@example.net\r\nMessage-ID: <n@example.net>\r\n" + opening + leaf + closing


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_headers_are_read_from_the_first_256_kib_of_the_header_block(raw: bool) -> None:
    """The header parser takes time per line: 3.8 MB of header lines took it 1.3 s here, over 4 s on Lambda's third
    of a CPU (503 past the deadline, before the signature check). Mail's header blocks are a few dozen KiB."""
    filler = {f"X-Filler-{index}": "x" * 60 for index in range(4000)}
    late = _email(Email(extra_headers={**filler, "Auto-Submitted": "auto-replied"}), raw=raw)
    assert late.auto_submitted is False
    early = _email(Email(extra_headers={"Auto-Submitted": "auto-replied", **filler}), raw=raw)
    assert early.auto_submitted is True
    assert early.id_source == "message-id"


def test_a_raw_message_s_own_headers_past_the_first_256_kib_are_not_read_and_its_body_is() -> None:
    """The MIME parser took time per header line too (4 MB of them, 0.2 s here): it reads the same 256 KiB."""
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (index, b"x" * 60) for index in range(4000))
    head = b"From: a@example.net\r\nMessage-ID: <n@example.net>\r\n"
    late = _raw(head + filler + b"Content-Type: text/html\r\n\r\n<p>Hi</p>")
    assert (late.text, late.text_source) == ("<p>Hi</p>", "text")
    early = _raw(head + b"Content-Type: text/html\r\n" + filler + b"\r\n<p>Hi</p>")
    assert (early.text, early.text_source) == ("Hi", "html")
    assert early.message_id == late.message_id == id_from_message_id("n@example.net", RECIPIENT)


def test_a_leaf_whose_charset_is_an_rfc_2231_parameter_is_read() -> None:
    """Reading a leaf's payload undecoded looks its charset up, and an RFC 2231 one (a tuple) made decode() raise."""
    email = _raw(_nested(1, b"Content-Type: text/plain; charset*=utf-8''x\r\n\r\ncaf\xc3\xa9"))
    assert (email.text, email.text_source) == ("café", "text")


@pytest.mark.parametrize(("levels", "text"), [(64, "deep"), (65, ""), (900, ""), (3000, "")])
def test_parts_are_read_down_to_64_nested_multiparts_and_the_headers_always(levels: int, text: str) -> None:
    """The standard library parses and walks MIME recursively (RecursionError from a few hundred levels)."""
    email = _raw(_nested(levels, b"Content-Type: text/plain\r\n\r\ndeep"))
    assert email.text == text
    assert (email.id_source, email.sender, email.raw_mime) == ("message-id", "a@example.net", True)
    assert email.message_id == id_from_message_id("n@example.net", RECIPIENT)


@pytest.mark.parametrize("raw", [False, True])
def test_an_html_only_email_without_the_optional_head_end_tag_keeps_its_text(raw: bool) -> None:
    html = '<html><head><meta charset="utf-8"><title>Order</title><body><p>My order never arrived.</p></body></html>'
    email = _email(Email(text=None, html=html), raw=raw)
    assert (email.text, email.text_source, email.text_cut) == ("My order never arrived.", "html", False)


def test_the_text_of_a_long_html_only_email_is_read_from_its_start_and_marked_cut() -> None:
    html = "<p>" + "word " * 1000 + "</p>"
    form, body = _read(Email(text=None, html=html))
    email = read_email(form, body, max_html_chars=103)
    assert (email.text, email.text_cut) == (("word " * 20).strip(), True)
    whole = read_email(form, body, max_html_chars=len(html))
    assert (whole.text, whole.text_cut) == (("word " * 1000).strip(), False)
    plain = read_email(*_read(Email(text="word " * 1000, html=html)), max_html_chars=103)
    assert (plain.text_source, plain.text_cut) == ("text", False)


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


def _raw_with_attachment_headers(*headers: bytes) -> InboundEmail:
    mime = (
        b"From: Jane <jane@example.net>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
        b"--b1\r\n" + b"".join(line + b"\r\n" for line in headers) + b"\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    )
    body, content_type = encode_form([("email", mime), ("to", RECIPIENT), ("from", "jane@example.net")])
    return read_email(parse(body, content_type), body)


@pytest.mark.parametrize(
    ("headers", "filename"),
    [
        (
            [
                b'Content-Type: application/pdf; name="Rechnung M\xc3\xa4rz.pdf"',
                b'Content-Disposition: attachment; filename="Rechnung M\xc3\xa4rz.pdf"',
            ],
            "Rechnung M\u00e4rz.pdf",
        ),
        ([b'Content-Type: application/pdf; name="\xe6\xb3\xa8\xe6\x96\x87.pdf"'], "\u6ce8\u6587.pdf"),
        (
            [b'Content-Disposition: attachment; filename="=?UTF-8?B?UmVjaG51bmcgTcOkcnoucGRm?="'],
            "Rechnung M\u00e4rz.pdf",
        ),
        ([b"Content-Disposition: attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf"], "Rechnung M\u00e4rz.pdf"),
        ([b'Content-Disposition: attachment; filename="Caf\xe9.pdf"'], "Caf\ufffd.pdf"),  # Latin-1: not UTF-8
        ([b'Content-Disposition: attachment; filename="<scan>"'], "<scan>"),  # was read as "scan"
        ([b'Content-Type: application/pdf; name="<scan>"'], "<scan>"),
    ],
    ids=["utf8", "utf8-name-only", "rfc2047", "rfc2231", "not-utf8", "angle-brackets", "angle-brackets-name-only"],
)
def test_raw_mime_attachment_filenames_are_read_as_mailers_write_them(headers: list[bytes], filename: str) -> None:
    (attachment,) = _raw_with_attachment_headers(*headers).attachments
    assert attachment.filename == filename


@pytest.mark.parametrize(
    ("headers", "automatic"),
    [
        ({}, False),
        ({"Auto-Submitted": "auto-replied"}, True),
        ({"Auto-Submitted": "Auto-Generated (helpdesk)"}, True),
        ({"Auto-Submitted": "auto-notified; owner-email=x@example.net"}, True),
        ({"Auto-Submitted": "no"}, False),
        ({"Auto-Submitted": "No (a person wrote this)"}, False),
        ({"Precedence": "bulk"}, True),
        ({"Precedence": "junk"}, True),
        ({"Precedence": "auto_reply"}, True),
        ({"Precedence": "list"}, False),
        ({"X-Autoreply": "yes"}, True),
        ({"X-Autorespond": "Vacation"}, True),
        ({"X-Autoreply": "no"}, False),
        ({"X-Auto-Response-Suppress": "All"}, False),
    ],
)
@pytest.mark.parametrize("raw", [False, True])
def test_the_headers_say_whether_a_program_sent_the_email(headers: dict[str, str], automatic: bool, raw: bool) -> None:
    assert _email(Email(extra_headers=headers), raw=raw).auto_submitted is automatic


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


def _boundary_checks(mime: bytes) -> tuple[InboundEmail, int]:
    """The email, and how many (line, enclosing boundary) comparisons the standard library's MIME parser made."""
    import email.feedparser

    checks = 0
    readline = email.feedparser.BufferedSubFile.readline

    def counted(self: email.feedparser.BufferedSubFile) -> Any:
        nonlocal checks
        checks += max(1, len(self._eofstack))  # type: ignore[attr-defined]
        return readline(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(email.feedparser.BufferedSubFile, "readline", counted)
        return _raw(mime), checks


def test_the_raw_message_parser_stops_within_a_bound_on_its_boundary_checks() -> None:
    """Defect: the MIME parser compares every line it reads with the boundary of every multipart it is nested in.
    64 nested multiparts over 3 MB of short lines took it 9 s here (about 27 s on Lambda's third of a CPU, past the
    13 s timeout), and 1000 nested ones 1.6 s, for a post anyone can send: it is read before the signature check.
    Reading stops once about a million such comparisons are made (a 5 MB attachment in base64 takes some 70000
    lines), keeping what was read."""
    lines = b"x\r\n" * (1024 * 1024)
    _, checks = _boundary_checks(_nested(64, b"Content-Type: text/plain\r\n\r\n" + lines))
    assert checks < 2_000_000, "before: 67 million"
    _, checks = _boundary_checks(_nested(1000, b"Content-Type: text/plain\r\n\r\ndeep"))
    assert checks < 2_000_000
    text_first = (
        b"From: a@example.net\r\nContent-Type: multipart/mixed; boundary=top\r\n\r\n--top\r\n"
        b"Content-Type: text/plain\r\n\r\nhello\r\n--top\r\nContent-Type: text/csv\r\n"
        b"Content-Disposition: attachment; filename=a.csv\r\n\r\n" + lines + b"\r\n--top--\r\n"
    )
    kept, checks = _boundary_checks(text_first)
    assert checks < 2_000_000 and kept.text == "hello"


def test_a_raw_message_of_many_multiparts_is_read_up_to_128_of_them() -> None:
    """Defect: the MIME parser compiles a pattern for each multipart's boundary (the standard library caches 512):
    1024 parts of sibling multiparts took it 0.3 s, before the signature check. At most 128 are read."""
    siblings = b"".join(
        b"--top\r\nContent-Type: multipart/alternative; boundary=s%d\r\n\r\n--s%d\r\nContent-Type: text/plain\r\n\r\n"
        b"x\r\n--s%d--\r\n" % (n, n, n)
        for n in range(1000)
    )
    mime = b"From: a@example.net\r\nContent-Type: multipart/mixed; boundary=top\r\n\r\n" + siblings + b"--top--\r\n"
    email = _raw(mime)
    assert email.text == "\n".join(["x"] * 127)


@pytest.mark.parametrize("encoding", [b"quoted-printable", b"base64", b"7bit"])
def test_a_multipart_the_parse_stopped_in_reads_as_one_without_parts(encoding: bytes) -> None:
    """The parse stops as the part past the bounds is made: its multipart, whose parts had not begun, reads as one
    without parts (an unfinished message has no payload, which the standard library cannot decode)."""
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\nContent-Transfer-Encoding: %s\r\n\r\n--b%d\r\n"
        % (i, encoding, i)
        for i in range(70)
    )
    email = _raw(
        b"From: a@example.net\r\nMessage-ID: <n@example.net>\r\n" + opening + b"Content-Type: text/plain\r\n\r\nx"
    )
    assert (email.text, email.attachments, email.sender) == ("", (), "a@example.net")


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize(
    "email",
    [
        Email(attachments=FILES),
        Email(message_id=None, to="Support <support+order-7@parse.example.com>"),
        Email(sender="Jane <" + "j" * 17000 + "@example.net>"),
        Email(envelope_to=("Support+tag@Parse.Example.com", "other@parse.example.com")),
    ],
    ids=["attachments", "no_message_id", "unreadable_from", "two_recipients"],
)
def test_the_addressing_read_before_the_signature_is_the_emails(email: Email, raw: bool) -> None:
    form, body = _read(email, raw=raw)
    addressing, whole = read_addressing(form, body), read_email(form, body)
    assert (addressing.message_id, addressing.id_source, addressing.sender, addressing.recipients) == (
        whole.message_id,
        whole.id_source,
        whole.sender,
        whole.recipients,
    )
    assert (addressing.company_address, addressing.raw_mime) == (whole.company_address, whole.raw_mime)
