"""Who sent an inbound email, to whom, what it says, and a stable id for it, from SendGrid Inbound Parse fields.

Works on a ``MultipartForm`` in either of SendGrid's formats: the default one (``headers``, ``text``,
``html``, file parts) and ``send_raw`` (the whole MIME message in ``email``). The id is ``EM`` and 32
lowercase hex digits (128 bits of SHA-256): of the normalised ``Message-ID`` together with the recipient (the
parse address that selects the conversation) when the email has one, else of the raw request body (which holds
the envelope, so the recipient too). One email sent to two parse addresses is thus two messages, and SendGrid's
re-delivery of one post keeps its id. It is ASCII, fixed-length and safe as a DynamoDB sort key.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from html import unescape
from html.parser import HTMLParser
from typing import Any, Literal

from steps.sendgrid.multipart import MultipartForm, decode_text

__all__ = [
    "ID_PATTERN",
    "ID_PREFIX",
    "Attachment",
    "InboundEmail",
    "html_to_text",
    "id_from_body",
    "id_from_message_id",
    "normalise_message_id",
    "read_email",
]

ID_PREFIX = "EM"
ID_PATTERN = re.compile(r"EM[0-9a-f]{32}")
_BODY_DOMAIN = b"\x00sendgrid-inbound-body\x00"
_MAX_JSON_CHARS = 256 * 1024
_MAX_ADDRESS_CHARS = 320
_UNPRINTABLE = re.compile(r"[\x00-\x20\x7f]")
_ANGLED = re.compile(r"<([^<>]+)>")
_BLANK_LINES = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \xa0]+")
_WHITESPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
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
class InboundEmail:
    """An inbound email's identity, addresses (lower-cased), subject, text and attachment summary."""

    message_id: str
    id_source: IdSource
    sender: str | None
    recipients: tuple[str, ...]
    subject: str
    text: str
    text_source: TextSource
    attachments: tuple[Attachment, ...]
    spam_score: float | None
    raw_mime: bool


def normalise_message_id(value: str) -> str | None:
    """The id inside a ``Message-ID`` value: angle brackets, whitespace and controls dropped, domain lower-cased."""
    compact = _UNPRINTABLE.sub("", value)
    angled = _ANGLED.search(compact)
    core = angled.group(1) if angled else compact.strip("<>")
    if not core:
        return None
    left, at, right = core.rpartition("@")
    return f"{left}@{right.lower()}" if at and left else core


def id_from_message_id(normalised: str, recipient: str) -> str:
    """The email id of a normalised Message-ID as delivered to ``recipient`` (a bare lower-case address).

    A normalised Message-ID holds no control character, so the NUL separator keeps every pair distinct.
    """
    key = f"{normalised}\x00{recipient}"
    return ID_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def id_from_body(body: bytes) -> str:
    """The email id of a request body, for an email without a Message-ID (never equal to a Message-ID's)."""
    return ID_PREFIX + hashlib.sha256(_BODY_DOMAIN + body).hexdigest()[:32]


def read_email(form: MultipartForm, body: bytes) -> InboundEmail:
    """The ``InboundEmail`` in a parsed Inbound Parse form; ``body`` is the raw request body it came from."""
    raw = form.raw.get("email", ())
    mime = _parse_mime(raw[0]) if raw and form.first("headers") is None else None
    headers = _header_block(raw[0]) if mime is not None else form.first("headers") or ""
    message_ids = [found for value in _header_values(headers, "Message-ID") if (found := normalise_message_id(value))]
    envelope = _json_object(form.first("envelope"))
    # The author (From), not the envelope's return path (often a bounce address of the sender's mail system).
    sender = next(iter(_addresses(form.first("from"))), None) or _address(envelope.get("from"))
    recipients = _unique(_address(to) for to in _as_list(envelope.get("to"))) or _addresses(form.first("to"))
    if mime is not None:
        plain, html, attachments = _mime_parts(mime)
    else:
        plain, html, attachments = form.first("text"), form.first("html"), _form_attachments(form)
    text, text_source = _text(plain, html)
    return InboundEmail(
        message_id=id_from_message_id(message_ids[0], recipients[0] if recipients else "")
        if message_ids
        else id_from_body(body),
        id_source="message-id" if message_ids else "body",
        sender=sender,
        recipients=recipients,
        subject=" ".join((form.first("subject") or "").split()),
        text=text,
        text_source=text_source,
        attachments=attachments,
        spam_score=_score(form.first("spam_score")),
        raw_mime=mime is not None,
    )


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: tags dropped (and script, style, head, title content), entities decoded.

    Source line breaks are spaces, as a browser shows them; block elements (p, div, br, li...) break lines.
    """
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = "".join(extractor.parts)
    except _STDLIB_ERRORS:
        text = _WHITESPACE.sub(" ", unescape(_TAG.sub(" ", html)))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
    _LINE = frozenset({"br", "li", "tr", "dt", "dd"})
    _BLOCK = frozenset(
        {"p", "div", "table", "ul", "ol", "hr", "pre", "blockquote", "section", "article", "header", "footer"}
        | {"h1", "h2", "h3", "h4", "h5", "h6"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._LINE or tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(_WHITESPACE.sub(" ", data))


def _text(plain: str | None, html: str | None) -> tuple[str, TextSource]:
    if plain and plain.strip():
        return plain.replace("\r\n", "\n").strip(), "text"
    if html and html.strip():
        return html_to_text(html), "html"
    return "", "none"


def _header_values(headers: str, name: str) -> list[str]:
    """Every value of header ``name`` in a raw header block (folded lines joined)."""
    try:
        parsed = HeaderParser(policy=compat32).parsestr(headers, headersonly=True)
        return [str(value) for value in parsed.get_all(name, [])]
    except _STDLIB_ERRORS:
        return []


def _header_block(mime: bytes) -> str:
    """The header section of a raw MIME message, as text."""
    end = min((i for i in (mime.find(b"\r\n\r\n"), mime.find(b"\n\n")) if i >= 0), default=len(mime))
    return mime[:end].decode("utf-8", "replace")


def _address(value: object) -> str | None:
    """A bare address (``a@b``) lower-cased, or None when ``value`` holds no plausible one."""
    if not isinstance(value, str):
        return None
    try:
        address = parseaddr(value)[1].strip().lower()
    except _STDLIB_ERRORS:
        return None
    if "@" not in address or len(address) > _MAX_ADDRESS_CHARS or _UNPRINTABLE.search(address):
        return None
    return address


def _addresses(value: str | None) -> tuple[str, ...]:
    """The plausible addresses in an address-list header value, lower-cased, first occurrence kept."""
    if not value:
        return ()
    try:
        pairs = getaddresses([value])
    except _STDLIB_ERRORS:
        return ()
    return _unique(_address(address) for _, address in pairs)


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
    """The file parts, with the ``content-id`` SendGrid gives for each in ``attachment-info``/``content-ids``."""
    info = _json_object(form.first("attachment-info"))
    by_field = {field: cid for cid, field in _json_object(form.first("content-ids")).items() if isinstance(field, str)}
    attachments = []
    for part in form.files:
        meta = info.get(part.name)
        cid = meta.get("content-id") if isinstance(meta, dict) else None
        cid = cid if isinstance(cid, str) and cid else by_field.get(part.name)
        attachments.append(Attachment(part.name, part.filename, part.content_type, part.size, cid or None))
    return tuple(attachments)


def _parse_mime(raw: bytes) -> Message | None:
    try:
        return BytesParser(policy=compat32).parsebytes(raw)
    except _STDLIB_ERRORS:
        return None


def _mime_parts(mime: Message) -> tuple[str | None, str | None, tuple[Attachment, ...]]:
    """The first text/plain and text/html bodies of a MIME message, and its attachments."""
    plain: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for index, part in enumerate(mime.walk()):
        try:
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            content_type = part.get_content_type()
            if filename is not None or part.get_content_disposition() == "attachment":
                cid = str(part.get("Content-ID", "")).strip().strip("<>") or None
                attachments.append(Attachment(f"part{index}", filename or "", content_type, len(data), cid))
            elif content_type == "text/plain" and plain is None:
                plain = decode_text(data, part.get_content_charset())
            elif content_type == "text/html" and html is None:
                html = decode_text(data, part.get_content_charset())
        except _STDLIB_ERRORS:
            continue
    return plain, html, tuple(attachments)
