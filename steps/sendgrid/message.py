"""Who sent an inbound email, to whom, what it says, and a stable id for it, from SendGrid Inbound Parse fields.

Works on a ``MultipartForm`` in either of SendGrid's formats: the default one (``headers``, ``text``,
``html``, file parts) and ``send_raw`` (the whole MIME message in ``email``). The id is ``EM`` and 32
lowercase hex digits (128 bits of SHA-256): of the normalised ``Message-ID`` together with the recipient (the
parse address that selects the conversation, without a ``+tag``) when the email has one, else of the raw
request body (which holds the envelope, so the recipient too). One email sent to two parse addresses is thus
two messages (to ``support@`` and ``support+tag@``, one), and SendGrid's re-delivery of one post keeps its id.
It is ASCII, fixed-length and safe as a DynamoDB sort key.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.feedparser import BytesFeedParser
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.quoprimime import header_decode
from email.utils import getaddresses, parseaddr
from typing import Any, Literal

from steps.sendgrid import automatic
from steps.sendgrid.html_text import html_to_text
from steps.sendgrid.multipart import MultipartForm, decode_text, param_text
from steps.sendgrid.senderauth import DKIM_FIELD, SPF_FIELD, sender_authenticated

__all__ = [
    "DEFAULT_MAX_HTML_CHARS",
    "ID_PATTERN",
    "ID_PREFIX",
    "Addressing",
    "Attachment",
    "InboundEmail",
    "id_from_body",
    "id_from_message_id",
    "normalise_message_id",
    "read_addressing",
    "read_content",
    "read_email",
    "without_subaddress",
]

ID_PREFIX = "EM"
ID_PATTERN = re.compile(r"EM[0-9a-f]{32}")
_BODY_DOMAIN = b"\x00sendgrid-inbound-body\x00"
_MAX_JSON_CHARS = 256 * 1024
_MAX_ADDRESS_CHARS = 320
# The HTML an HTML-only email's text is read from is cut to this (sendgrid.parse: 4 x max_text_bytes).
DEFAULT_MAX_HTML_CHARS = 512 * 1024
# An address header longer, or nested deeper, than this is not read (its sender falls back to the envelope's):
# the standard library parses comments and groups recursively, a frame or two per level, and raises
# RecursionError on a header of a few hundred levels.
_MAX_ADDRESS_LIST_CHARS = 16 * 1024
_MAX_ADDRESS_NESTING = 32
_NESTING = re.compile(r"[():]")
# How deep in nested multiparts a raw MIME message's parts are read (mailers nest a handful of levels), and about
# how many parts are parsed at most (fed in chunks of _MIME_CHUNK_BYTES; media lists the first 128 anyway).
_MAX_MIME_DEPTH = 64
# How much of an email's header block is read (mail's are a few dozen KiB; Received and DKIM lines come first).
_MAX_HEADER_CHARS = 256 * 1024
_MAX_MIME_PARTS = 1024
_MIME_CHUNK_BYTES = 4 * 1024
# The parser compares each line it reads with the boundary of every multipart enclosing it, and compiles a pattern
# per boundary: reading stops once about this many (line, boundary) comparisons are made, a line counting as
# _LINE_COST of them besides (so a 5 MB attachment's 70000 base64 lines, a few levels down, are read), and before
# a multipart past the _MAX_MIME_MULTIPARTS-th or deeper than _MAX_MIME_DEPTH (64 nested over 3 MB of short lines
# took 9 s; 1000 nested, 1.6 s; 1000 sibling multiparts, 0.3 s).
_MAX_MIME_LINE_CHECKS = 1_000_000
_LINE_COST = 6
_MAX_MIME_MULTIPARTS = 128
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# An encoded word's charset (without an RFC 2231 ``*language``), encoding and text.
_ENCODED_WORD_PARTS = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
_UNPRINTABLE = re.compile(r"[\x00-\x20\x7f]")
_ANGLED = re.compile(r"<([^<>]+)>")
_STDLIB_ERRORS = (LookupError, ValueError, TypeError, IndexError, AttributeError, AssertionError)

IdSource = Literal["message-id", "body"]
TextSource = Literal["text", "html", "none"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment, summarised: its bytes are not kept."""

    field: str
    filename: str
    content_type: str
    size: int
    content_id: str | None


@dataclass(frozen=True, slots=True)
class Addressing:
    """What is read of an email before its signature is checked: its id, addresses (lower-cased) and header block.

    ``headers`` and ``envelope`` are kept for ``read_content``, which reads the rest once the post is authentic.
    """

    message_id: str
    id_source: IdSource
    sender: str | None
    recipients: tuple[str, ...]
    raw_mime: bool
    headers: Message
    envelope: dict[str, Any]

    @property
    def company_address(self) -> str:
        """The parse address the email was delivered to, without its subaddress: what the lookup and the id use."""
        return without_subaddress(self.recipients[0]) if self.recipients else ""


@dataclass(frozen=True, slots=True)
class InboundEmail:
    """An inbound email's identity, addresses (lower-cased), subject, text and attachment summary.

    ``text_cut`` says the text is that of the HTML's first ``max_html_chars`` characters only;
    ``auto_submitted`` that its headers mark it as sent by a program (``steps.sendgrid.automatic``);
    ``sender_authenticated`` whether SPF or DKIM vouch for the sender's domain (``steps.sendgrid.senderauth``).
    """

    message_id: str
    id_source: IdSource
    sender: str | None
    recipients: tuple[str, ...]
    subject: str
    text: str
    text_source: TextSource
    text_cut: bool
    attachments: tuple[Attachment, ...]
    spam_score: float | None
    raw_mime: bool
    auto_submitted: bool
    sender_authenticated: bool | None

    @property
    def company_address(self) -> str:
        """The parse address the email was delivered to, without its subaddress: what the lookup and the id use."""
        return without_subaddress(self.recipients[0]) if self.recipients else ""


def normalise_message_id(value: str) -> str | None:
    """The id inside a ``Message-ID`` value: angle brackets, whitespace and controls dropped, domain lower-cased."""
    compact = _UNPRINTABLE.sub("", value)
    angled = _ANGLED.search(compact)
    core = angled.group(1) if angled else compact.strip("<>")
    if not core:
        return None
    left, at, right = core.rpartition("@")
    return f"{left}@{right.lower()}" if at and left else core


def without_subaddress(address: str) -> str:
    """``address`` without the ``+tag`` of its local part (RFC 5233): ``support+order-1042@x`` is ``support@x``.

    A local part that starts with ``+`` (no mailbox before the tag) is kept whole.
    """
    local, at, domain = address.rpartition("@")
    mailbox, plus, _ = local.partition("+")
    return f"{mailbox}@{domain}" if at and plus and mailbox else address


def id_from_message_id(normalised: str, recipient: str) -> str:
    """The email id of a normalised Message-ID as delivered to ``recipient`` (a bare lower-case address).

    A normalised Message-ID holds no control character, so the NUL separator keeps every pair distinct.
    """
    key = f"{normalised}\x00{recipient}"
    return ID_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def id_from_body(body: bytes) -> str:
    """The email id of a request body, for an email without a Message-ID (never equal to a Message-ID's)."""
    return ID_PREFIX + hashlib.sha256(_BODY_DOMAIN + body).hexdigest()[:32]


def read_addressing(form: MultipartForm, body: bytes) -> Addressing:
    """Who sent the email in a parsed Inbound Parse form, to whom, and its id; ``body`` is the raw request body.

    Only the header block (for the ``Message-ID``), the address fields and the envelope are read: what the lookup
    and the event's log line need before the signature is checked. The text, HTML and attachments are not.
    """
    raw = form.raw.get("email", ())
    raw_mode = bool(raw) and form.first("headers") is None
    headers = _parse_headers(_header_block(raw[0]) if raw_mode else form.first("headers") or "")
    message_ids = [found for value in _values(headers, "Message-ID") if (found := normalise_message_id(value))]
    envelope = _json_object(form.first("envelope"))
    # The author (From), not the envelope's return path (often a bounce address of the sender's mail system).
    sender = next(iter(_addresses(form.first("from"))), None) or _address(envelope.get("from"))
    recipients = _unique(_address(to) for to in _as_list(envelope.get("to"))) or _addresses(form.first("to"))
    company = without_subaddress(recipients[0]) if recipients else ""
    return Addressing(
        message_id=id_from_message_id(message_ids[0], company) if message_ids else id_from_body(body),
        id_source="message-id" if message_ids else "body",
        sender=sender,
        recipients=recipients,
        raw_mime=raw_mode,
        headers=headers,
        envelope=envelope,
    )


def read_content(
    form: MultipartForm, addressing: Addressing, *, max_html_chars: int = DEFAULT_MAX_HTML_CHARS
) -> InboundEmail:
    """The ``InboundEmail`` of a form whose addressing was read: its text, subject, attachments and header signs.

    The text of an HTML-only email is read from the HTML's first ``max_html_chars`` characters.
    """
    if addressing.raw_mime:
        mime = _parse_mime(form.raw["email"][0])
        # A message the parser could not read (nested too deep) has no parts to read; its headers still name it.
        plain, html, attachments = _mime_parts(mime) if mime is not None else (None, None, ())
    else:
        plain, html, attachments = form.first("text"), form.first("html"), _form_attachments(form)
    text, text_source, text_cut = _text(plain, html, max_html_chars)
    headers, envelope, sender = addressing.headers, addressing.envelope, addressing.sender
    return InboundEmail(
        message_id=addressing.message_id,
        id_source=addressing.id_source,
        sender=sender,
        recipients=addressing.recipients,
        subject=" ".join(_decoded_words(form.first("subject") or "").split()),
        text=text,
        text_source=text_source,
        text_cut=text_cut,
        attachments=attachments,
        spam_score=_score(form.first("spam_score")),
        raw_mime=addressing.raw_mime,
        auto_submitted=automatic.is_automatic({name: _values(headers, name) for name in automatic.HEADERS})
        or automatic.is_null_reverse_path(envelope),
        sender_authenticated=sender_authenticated(
            sender, _address(envelope.get("from")), form.first(SPF_FIELD), form.first(DKIM_FIELD)
        ),
    )


def read_email(form: MultipartForm, body: bytes, *, max_html_chars: int = DEFAULT_MAX_HTML_CHARS) -> InboundEmail:
    """The ``InboundEmail`` in a parsed Inbound Parse form (``read_addressing``, then ``read_content``)."""
    return read_content(form, read_addressing(form, body), max_html_chars=max_html_chars)


def _text(plain: str | None, html: str | None, max_html_chars: int) -> tuple[str, TextSource, bool]:
    """The text, where it came from, and whether it is that of the HTML's start only."""
    if plain and plain.strip():
        return plain.replace("\r\n", "\n").strip(), "text", False
    if html and html.strip():
        return html_to_text(html, max_html_chars), "html", len(html) > max_html_chars
    return "", "none", False


def _decoded_words(value: str) -> str:
    """``value`` with its RFC 2047 encoded words (``=?UTF-8?B?...?=``) decoded, as a mail reader shows a subject.

    Mailers write a subject that is not ASCII so, and the ``subject`` field can carry it as written. Whitespace
    between two adjacent encoded words is dropped (RFC 2047 §6.2). A word's charset is read as a text field's is
    (``multipart.decode_text``: a name no codec reads is UTF-8); a word whose base64 does not decode stays as written.
    """
    if not _ENCODED_WORD.search(value):
        return value
    pieces: list[str] = []
    end, after_word = 0, False
    for match in _ENCODED_WORD_PARTS.finditer(value):
        charset, encoding, text = match.groups()
        try:
            if encoding in "bB":
                # Strict: a lenient read drops what is no base64 (a word of it read as nothing) and goes on.
                data = binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
            else:
                data = header_decode(text).encode("latin-1")
        except (binascii.Error, ValueError):
            continue
        between = value[end : match.start()]
        if not (after_word and (between.isspace() or not between)):
            pieces.append(between)
        pieces.append(decode_text(data, charset))
        end, after_word = match.end(), True
    pieces.append(value[end:])
    return "".join(pieces)


def _parse_headers(block: str) -> Message:
    """A raw header block parsed (folded lines joined) up to ``_MAX_HEADER_CHARS``; no headers when unreadable.

    The parser takes time per line: megabytes of header lines took it seconds. The block is cut at a line end.
    """
    if len(block) > _MAX_HEADER_CHARS:
        block = block[: block.rfind("\n", 0, _MAX_HEADER_CHARS) + 1]
    try:
        return HeaderParser(policy=compat32).parsestr(block, headersonly=True)
    except _STDLIB_ERRORS:
        return Message()


def _values(headers: Message, name: str) -> list[str]:
    """Every value of header ``name``."""
    try:
        return [str(value) for value in headers.get_all(name, [])]
    except _STDLIB_ERRORS:
        return []


def _header_end(mime: bytes) -> int:
    """Where the header section of a raw MIME message ends (at its blank line; none: the message's end)."""
    return min((i for i in (mime.find(b"\r\n\r\n"), mime.find(b"\n\n")) if i >= 0), default=len(mime))


def _header_block(mime: bytes) -> str:
    """The header section of a raw MIME message, as text."""
    return mime[: _header_end(mime)].decode("utf-8", "replace")


def _bounded_headers(mime: bytes) -> bytes:
    """``mime`` with its header section cut at a line end to about ``_MAX_HEADER_CHARS``, as ``_parse_headers`` cuts it.

    The body is kept. A header section of one line so long has no line end to cut at, and is left whole.
    """
    end = _header_end(mime)
    cut = mime.rfind(b"\n", 0, _MAX_HEADER_CHARS)
    if end <= _MAX_HEADER_CHARS or cut < 0:
        return mime
    return mime[:cut].removesuffix(b"\r") + mime[end:]


def _address(value: object) -> str | None:
    """A bare address (``a@b``) lower-cased, or None when ``value`` holds no plausible one."""
    if not isinstance(value, str) or not _parseable(value):
        return None
    try:
        address = parseaddr(value)[1].strip().lower()
    except (*_STDLIB_ERRORS, RecursionError):
        return None
    if "@" not in address or len(address) > _MAX_ADDRESS_CHARS or _UNPRINTABLE.search(address):
        return None
    return address


def _addresses(value: str | None) -> tuple[str, ...]:
    """The plausible addresses in an address-list header value, lower-cased, first occurrence kept."""
    if not value or not _parseable(value):
        return ()
    try:
        pairs = getaddresses([value])
    except (*_STDLIB_ERRORS, RecursionError):
        return ()
    return _unique(_address(address) for _, address in pairs)


def _parseable(value: str) -> bool:
    """True when an address header is short and shallow enough for the standard library's recursive parser.

    Its depth is bounded by the deepest comment nesting plus the number of colons (groups nest; a colon in a
    quoted name is counted too, which only makes the bound stricter).
    """
    if len(value) > _MAX_ADDRESS_LIST_CHARS:
        return False
    depth = deepest = colons = 0
    for found in _NESTING.finditer(value):
        mark = found.group()
        if mark == ":":
            colons += 1
        elif mark == "(":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest + colons <= _MAX_ADDRESS_NESTING


def _unique(addresses: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(address for address in addresses if address))


def _as_list(value: object) -> list[object]:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, str) else []


def _json_object(value: str | None) -> dict[str, Any]:
    """A JSON object field (``envelope``, ``attachment-info``), or {} when absent or not an object."""
    if not value or len(value) > _MAX_JSON_CHARS:
        return {}
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _score(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        score = float(value.strip())
    except ValueError:
        return None
    return score if math.isfinite(score) else None


def _form_attachments(form: MultipartForm) -> tuple[Attachment, ...]:
    """The file parts, with the ``content-id`` SendGrid gives for each in ``attachment-info``/``content-ids``.

    A filename written as encoded words (as many mailers write one that is not ASCII) is decoded, as ``_filename``
    decodes a raw MIME part's: one email's attachment has one name whichever format the Parse Setting posts.
    """
    info = _json_object(form.first("attachment-info"))
    by_field = {field: cid for cid, field in _json_object(form.first("content-ids")).items() if isinstance(field, str)}
    attachments = []
    for part in form.files:
        meta = info.get(part.name)
        cid = meta.get("content-id") if isinstance(meta, dict) else None
        cid = cid if isinstance(cid, str) and cid else by_field.get(part.name)
        filename = _decoded_words(part.filename)
        attachments.append(Attachment(part.name, filename, part.content_type, part.size, cid or None))
    return tuple(attachments)


def _parse_mime(raw: bytes) -> Message | None:
    """The raw MIME message parsed up to its first ``_MAX_MIME_PARTS`` parts (about); None when it cannot be.

    The parser takes time per part (2.7 MB of empty parts took it 6 s), so it is fed a chunk at a time and
    stopped once it has made that many; what it has read by then is the message. Its headers are read from the
    first ``_MAX_HEADER_CHARS`` of the header section, as ``_parse_headers`` reads them. It recurses once per nested
    multipart: a few hundred levels raise RecursionError, and such a message is None.
    """
    raw = _bounded_headers(raw)
    made: list[Message] = []
    multiparts = 0
    parser: BytesFeedParser | None = None

    def counted(*args: Any, **kwargs: Any) -> Message:
        nonlocal multiparts
        if parser is None:  # the parser's own trial call, as it is built
            return Message(*args, **kwargs)
        # The message made last has its headers by now (this one is its part, or comes after it).
        multiparts += bool(made) and made[-1].get_content_maintype() == "multipart"
        if multiparts > _MAX_MIME_MULTIPARTS or len(_open_messages(parser)) > _MAX_MIME_DEPTH:
            raise _ReadEnough
        made.append(Message(*args, **kwargs))
        return made[-1]

    checks = 0
    try:
        parser = BytesFeedParser(_factory=counted, policy=compat32)
        for start in range(0, len(raw), _MIME_CHUNK_BYTES):
            chunk = raw[start : start + _MIME_CHUNK_BYTES]
            parser.feed(chunk)
            lines = chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            checks += lines * (_LINE_COST + len(_open_messages(parser)))
            if len(made) > _MAX_MIME_PARTS or checks > _MAX_MIME_LINE_CHECKS:
                break
        return parser.close()
    except _ReadEnough:
        # A message the parse was inside of may have no payload yet, which get_payload(decode=True) cannot decode.
        for message in made:
            if message.get_payload() is None:
                message.set_payload([] if message.get_content_maintype() == "multipart" else "")
        return made[0] if made else None
    except (*_STDLIB_ERRORS, RecursionError):
        return None


class _ReadEnough(Exception):
    """Raised by the parser's message factory to stop the parse; what it made so far is the message."""


def _open_messages(parser: BytesFeedParser) -> list[Message]:
    """The messages the parser is inside of, outermost first (empty where the standard library keeps no such list)."""
    stack = getattr(parser, "_msgstack", None)
    return stack if isinstance(stack, list) else []


def _walk(mime: Message, *, into_messages: bool = True) -> Iterator[Message]:
    """Every part of ``mime`` in ``Message.walk()``'s order, without recursion, down to ``_MAX_MIME_DEPTH`` levels.

    ``walk()`` recurses once per nested multipart, so a message of a few hundred levels raised RecursionError.
    Without ``into_messages`` an email attached to ``mime`` (a ``message/*`` part) is yielded, not entered.
    """
    pending: list[tuple[Message, int]] = [(mime, 0)]
    while pending:
        part, depth = pending.pop()
        yield part
        if not into_messages and depth and _is_attached_message(part):
            continue
        if part.is_multipart() and depth < _MAX_MIME_DEPTH:
            # A multipart's payload is its list of parts (a leaf's would be decoded, which can raise).
            children = part.get_payload()
            if isinstance(children, list):
                pending.extend((child, depth + 1) for child in reversed(children) if isinstance(child, Message))


def _is_attached_message(part: Message) -> bool:
    """True for a ``message/*`` part (a forwarded email, a delivery report): an attachment, not the email's text."""
    return part.get_content_maintype() == "message"


def _attached_message_size(part: Message) -> int:
    """The decoded size of the leaves of an attached email (about its size: its headers are not counted)."""
    size = 0
    for leaf in _walk(part):
        if not leaf.is_multipart():
            payload = leaf.get_payload(decode=True)
            size += len(payload) if isinstance(payload, bytes) else 0
    return size


def _mime_parts(mime: Message) -> tuple[str | None, str | None, tuple[Attachment, ...]]:
    """The text/plain and text/html bodies of a MIME message, and its attachments.

    The parts of a kind are joined by a line break: every body part counts, as mailers split a text around an
    image placed in it (text, image, text), but the first of a kind among alternatives stands for the others.
    An email attached to this one (``message/rfc822``, forwarded as an attachment) is an attachment: its text is
    not this email's.
    """
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    other_alternatives: set[int] = set()  # ids of parts an earlier alternative of their kind stands for
    for index, part in enumerate(_walk(mime, into_messages=False)):
        try:
            if id(part) in other_alternatives:
                continue
            if part is not mime and _is_attached_message(part):
                filename = _filename(part)
                cid = str(part.get("Content-ID", "")).strip().strip("<>") or None
                size = _attached_message_size(part)
                attachments.append(Attachment(f"part{index}", filename or "", part.get_content_type(), size, cid))
                continue
            if part.is_multipart():
                if part.get_content_type() == "multipart/alternative":
                    other_alternatives.update(id(later) for later in _later_alternatives(part))
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = _filename(part)
            content_type = part.get_content_type()
            if filename is not None or part.get_content_disposition() == "attachment":
                cid = str(part.get("Content-ID", "")).strip().strip("<>") or None
                attachments.append(Attachment(f"part{index}", filename or "", content_type, len(data), cid))
            elif content_type == "text/plain":
                plain.append(decode_text(data, part.get_content_charset()))
            elif content_type == "text/html":
                html.append(decode_text(data, part.get_content_charset()))
        except _STDLIB_ERRORS:
            continue
    return _joined(plain), _joined(html), tuple(attachments)


def _later_alternatives(alternative: Message) -> Iterator[Message]:
    """The text/plain and text/html parts of a multipart/alternative after the first of their kind."""
    children = alternative.get_payload()
    seen: set[str] = set()
    for child in children if isinstance(children, list) else ():
        if isinstance(child, Message) and (kind := child.get_content_type()) in ("text/plain", "text/html"):
            if kind in seen:
                yield child
            seen.add(kind)


def _joined(bodies: list[str]) -> str | None:
    """Body parts of one kind as one text (each part's surrounding blank lines dropped), or None when none."""
    kept = [body.strip("\r\n") for body in bodies if body.strip()]
    return "\n".join(kept) if kept else (bodies[0] if bodies else None)


def _filename(part: Message) -> str | None:
    """A MIME part's filename, read as mailers write it.

    The compat32 parser keeps a header's non-ASCII bytes as surrogates, and reads them back as U+FFFD: they are
    UTF-8 (RFC 6532), so the two headers a filename comes from are decoded so first (bytes that are not UTF-8
    become U+FFFD). A quoted RFC 2047 encoded word (``"=?UTF-8?B?...?="``, not standard in a parameter but what
    many mailers write) is decoded too, as the parsed format's file part name is (``_decoded_words``).
    """
    header = Message()
    for name, value in part.raw_items():
        if name.lower() in ("content-disposition", "content-type"):
            header[name] = _utf8(value) if isinstance(value, str) else value
    # Not get_filename(): it unquotes the value get_param has unquoted, ``<`` and ``>`` taken for quotes.
    found = header.get_param("filename", header="content-disposition")
    if found is None:
        found = header.get_param("name", header="content-type")
    return None if found is None else _decoded_words(param_text(found).strip())


def _utf8(value: str) -> str:
    """A header value whose undecoded bytes (surrogates) are read as UTF-8."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte: not UTF-8 either
        return value.encode("utf-8", "replace").decode("utf-8")
