"""What a recorded webhook event may hold: credentials removed, personal data masked (standard library only).

``recordable(event, mask=…)`` is the copy that gets stored for replay:

- always: headers that carry credentials (``Authorization``, ``Cookie``, ``X-Amz-Security-Token``,
  ``X-Api-Key``…), payload 2.0's ``cookies`` list (its Cookie header) and ``requestContext.authorizer`` /
  ``identity`` are dropped. A webhook carries no auth token (Twilio sends an HMAC signature, never the
  token), so nothing else needs removing;
- ``mask="none"``: the body as it was sent. An authentication header is kept as its digest
  (``signature_digest``), from which it cannot be recovered, unless the steps declaring it say its signature
  expires (it signs a timestamp): a signature that never expires (Twilio's) is a request valid for ever, long
  after the replay record is gone. A replay with ``pipeline-dryrun`` still checks a digest
  (``steps.twilio.signature``), the webhook refuses it. Signatures that expire are kept as sent;
- ``mask="text"``: fail closed, by allow-lists. Every query-string value becomes ``[masked]`` (a URL may carry a
  credential, ``?key=…``; its names stay, listed as ``?name``). A form body (Twilio) keeps only
  ``FORM_KEPT_FIELDS`` (sids, numbers, counts, statuses, ``MessageType``, ``MediaContentType{N}``…): every other
  field (``Body``, ``ProfileName``, ``FlowData``, ``InteractiveData``, location fields, media URLs, any field
  Twilio adds later) becomes ``[masked]``. A kept field holding JSON (``ChannelMetadata``) keeps its structure
  only: every string in it becomes ``[masked]`` but under ``STRUCTURAL_JSON_KEYS`` (``json_text_masked``). A
  ``multipart/form-data`` body (an e-mail) keeps only ``MULTIPART_KEPT_FIELDS`` (spam score, SPF, DKIM,
  charsets, attachment count) and its address fields: every other field becomes ``[masked]`` and uploaded
  files lose their name and content (their part's header block is rebuilt); the display names of its address
  fields become ``masked`` (the addresses stay). A body that does not split exactly into its parts (a preamble,
  data after the closing delimiter, the boundary copied into a field) is replaced whole. The signature
  cannot match any more, so every authentication header becomes ``MASKED_SIGNATURE`` (replay with
  ``--skip-signature``);
- ``mask="all"``: as ``text``, and every phone number and e-mail address is replaced by a keyed
  pseudonym (``Pseudonyms``): the same value always gets the same pseudonym (a number keeps its length
  and never starts with 0), so a world put through ``Pseudonyms.document`` with the same key still
  matches the events. The display names of an e-mail's address fields (``from``, ``to``, ``cc``,
  ``envelope``) get keyed pseudonyms too, word by word.

The copy carries ``"recording": {"mask": …, "masked": [field names]}`` so that a replay can say when a
rule read a field the recording masked. Bodies are masked by media type (``BODY_MASKERS``):
``application/x-www-form-urlencoded`` field by field, ``multipart/form-data`` part by part (file parts
lose their content); any other body is replaced whole. A channel with its own format adds its masker
with ``register_body_masker``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

__all__ = [
    "BODY_MASKERS",
    "MASKED_SIGNATURE",
    "MASKED_TEXT",
    "MASK_MODES",
    "MAX_ADDRESS_LIST_CHARS",
    "MAX_ENVELOPE_CHARS",
    "MAX_NESTING",
    "MULTIPART_KEPT_FIELDS",
    "PERSONAL_TEXT_KEYS",
    "RECORDING_KEY",
    "SIGNATURE_DIGEST_PREFIX",
    "FORM_KEPT_FIELDS",
    "STRUCTURAL_JSON_KEYS",
    "ADDRESS_LIST_KEYS",
    "FORM_MEDIA_TYPE",
    "BodyMasker",
    "Masking",
    "Pseudonyms",
    "body_media_type",
    "embedded_json",
    "form_fields",
    "form_field_kept",
    "form_values",
    "display_names_masked",
    "free_text_masked",
    "json_text_masked",
    "multipart_fields",
    "recordable",
    "register_body_masker",
    "signature_digest",
    "too_deep",
    "withheld_values",
]

MASK_MODES = ("none", "text", "all")
MASKED_TEXT = "[masked]"
MASKED_SIGNATURE = "masked-recording"
# The media type of a form post (Twilio's webhooks).
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
RECORDING_KEY = "recording"
# Free text written by (or about) the end user; matched on a field's name (its last segment), case-insensitively.
PERSONAL_TEXT_KEYS = frozenset(
    {
        "body",
        "content",
        "text",
        "profilename",
        "buttontext",
        "buttonpayload",
        "address",
        "label",
        "latitude",
        "longitude",
        "listtitle",
        # e-mail (SendGrid Inbound Parse)
        "subject",
        "html",
        "headers",
        "attachment-info",
        "email",
        # an attachment's file name, the user's own words (often their name): a capture drops it too
        "filename",
        # JSON the user filled in under keys a form chooses (WhatsApp Flows, interactive replies, add-ons)
        "flowdata",
        "interactivedata",
        "addons",
    }
)
# The only fields of a form body (Twilio) recorded as they are by ``text`` (lower-cased names): ids, the numbers
# the pipeline matches conversations on (pseudonymized by ``all``), counts, statuses and types. Every other field
# is masked whole, whatever it is, and so is any field Twilio adds later. ``MediaContentType{N}`` is kept too.
FORM_KEPT_FIELDS = frozenset(
    {
        "accountsid",
        "messagesid",
        "smsmessagesid",
        "smssid",
        "messagingservicesid",
        "from",
        "to",
        "waid",
        "nummedia",
        "numsegments",
        "smsstatus",
        "messagestatus",
        "messagetype",
        "apiversion",
        "referralnummedia",
        "forwarded",
        "frequentlyforwarded",
        "buttontype",
        "optouttype",
        "eventtype",
        "errorcode",
        "channelprefix",
        "channelinstallsid",
        "channelmetadata",
    }
)
_FORM_KEPT_INDEXED = re.compile(r"mediacontenttype[0-9]+")
# An e-mail's address-list fields (SendGrid's ``from``, ``to``, ``cc``): their display names are personal, like
# ``ProfileName``; their addresses are what a replay finds conversations by.
ADDRESS_LIST_KEYS = frozenset({"from", "to", "cc"})
# Keys inside a kept field's JSON whose strings are structure, not text (``ChannelMetadata``'s ``type``, ``WaId``).
STRUCTURAL_JSON_KEYS = frozenset({"type", "waid"})
# The shape of a kept value: an id, number, address, code, status or media type (``audio/ogg; codecs=opus``).
# Anything else (a space between words, a line break, any letter beyond ASCII) is text, and is masked.
_STRUCTURAL_VALUE = re.compile(r"[A-Za-z0-9+:._/=,-]{1,100}(?:; ?[A-Za-z0-9+:._/=,-]{1,100}){0,4}")
# How a digested signature starts; ``steps.twilio.signature`` (which may not import this module) matches it.
SIGNATURE_DIGEST_PREFIX = "sha256:"
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-amz-security-token", "x-api-key", "x-amz-date"}
)
# Where a proxy event carries the query string (payload 1.0's two maps, payload 2.0's raw string).
_QUERY_KEYS = ("queryStringParameters", "multiValueQueryStringParameters", "rawQueryString")
# Top-level event keys that carry credentials: payload 2.0 moves the Cookie header into ``cookies``.
_CREDENTIAL_KEYS = frozenset({"cookies"})
_NUMBER = re.compile(r"(?<![0-9A-Za-z_+])(\+?)([0-9]{7,15})(?![0-9A-Za-z_])")
# An address's local part: a quoted string, or a run of RFC 5322's atext and dots with any letter (RFC 6531), so that
# no part of it (``o'brien``, ``tom&jerry``, ``k\u00edm``) is left as it was before the pseudonym. The whole run
# before the @ is replaced, however long: a link's ``…/lookup?source=x&contact=jane.doe`` is one run of such
# characters, longer than a local part may be, and a bounded run would leave its address as it was. Braces stay out:
# they enclose SendGrid's ``dkim`` results (``{@example.net : pass}``).
_LOCAL_CHAR = r"[\w.!#$%&'*+/=?^`|~-]"
_EMAIL = re.compile(rf'(?<!{_LOCAL_CHAR})("[^"\\\r\n]{{1,62}}"|{_LOCAL_CHAR}+)@([\w-]+(?:\.[\w-]+)+)')
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# In an address list: what stays (an address between angle brackets, never other text there, or a bare one: a run of
# anything but the list's delimiters around an @, as RFC 5322 allows ' & = … in a local part and an IDN domain), else
# a display-name word (an RFC 2047 encoded word whole, or a run of letters and digits).
_NAME_WORD = re.compile(
    r"(?P<kept><[^<>@\s]*@[^<>\s]*>|[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+)|=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=|[^\W_]+"
)


def _masked_word(match: re.Match[str]) -> str:
    """A display-name word masked (one plain word, so the address list still parses); an address kept."""
    return match.group(0) if match.group("kept") else "masked"


def display_names_masked(value: str) -> str:
    """An address list (``Kim Lee <kim@example.org>, …``) with each display-name word ``masked``, addresses kept."""
    return _NAME_WORD.sub(_masked_word, value)


class Pseudonyms:
    """Replaces phone numbers and e-mail local parts with keyed pseudonyms of the same length."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def _stream(self, kind: bytes, value: str) -> bytes:
        return hmac.new(self._key, kind + value.encode(), hashlib.sha256).digest()

    def _digits(self, match: re.Match[str]) -> str:
        """A number's pseudonym: as many digits, never a leading 0 (E.164 has none, and the parse steps refuse it).

        Keyed on the digits alone, so ``+14155550123``, ``whatsapp:+14155550123`` and a ``WaId`` of
        ``14155550123`` get the same digits.
        """
        sign, digits = match.group(1), match.group(2)
        stream = hmac.new(self._key, digits.encode(), hashlib.sha256).digest()
        first = stream[0] % 10 or 1 + stream[len(digits)] % 9
        return sign + str(first) + "".join(str(byte % 10) for byte in stream[1 : len(digits)])

    def _pseudonym(self, kind: bytes, value: str) -> str:
        stream = self._stream(kind, value.lower())
        return "".join(_ALPHABET[stream[i % len(stream)] % len(_ALPHABET)] for i in range(len(value)))

    def _address(self, match: re.Match[str]) -> str:
        return self._pseudonym(b"email:", match.group(1)) + "@" + match.group(2)

    def _name_word(self, match: re.Match[str]) -> str:
        return match.group(0) if match.group("kept") else self._pseudonym(b"name:", match.group(0))

    def text(self, value: str) -> str:
        """``value`` with every phone number and e-mail address replaced."""
        if "@" in value:
            value = _EMAIL.sub(self._address, value)
        return _NUMBER.sub(self._digits, value)

    def addresses(self, value: str) -> str:
        """An address list (``Kim Lee <kim@example.org>, …``) with its addresses and display names replaced.

        Quotes, commas and angle brackets stay, so the list still parses to the addresses' pseudonyms.
        """
        return _NAME_WORD.sub(self._name_word, self.text(value))

    def document(self, value: Any) -> Any:
        """A JSON document (a world, an item) with every phone number and address in its strings replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(name)): self.document(item) for name, item in value.items()}
        if isinstance(value, list):
            return [self.document(item) for item in value]
        return value


# The longest address list and envelope ``sendgrid.parse`` reads (``steps.sendgrid.message``): a longer one is
# masked whole, and not read by the capture's sampling either.
MAX_ADDRESS_LIST_CHARS = 16 * 1024
MAX_ENVELOPE_CHARS = 256 * 1024


@dataclass
class Masking:
    """How field values are masked for one recording, and the names of the fields it masked."""

    mode: str
    pseudonyms: Pseudonyms | None = None
    masked: set[str] = field(default_factory=set)

    def value(self, name: str, value: str) -> str:
        """A form field's value as recorded: masked unless ``form_field_kept``, pseudonymized with ``all``.

        A kept value holding a JSON object or array (Twilio's ``ChannelMetadata`` repeats ``ProfileName`` and
        the ``WaId`` inside one) keeps its structure only (``json_text_masked``), and is pseudonymized whole. Any
        other kept value without a structural shape (``_STRUCTURAL_VALUE``: a ``WaId`` of words or emoji) is masked.
        """
        if not value:
            return value
        if not form_field_kept(name):
            self.masked.add(name)
            return MASKED_TEXT
        document = embedded_json(value)
        if document is not None:
            hidden = json_text_masked(document)
            if hidden != document:
                self.masked.add(name)
                value = json.dumps(hidden, ensure_ascii=False, separators=(",", ":"))
        elif not _structural(value):
            self.masked.add(name)
            return MASKED_TEXT
        return self.kept(value)

    def kept(self, value: str) -> str:
        """A value recorded as it is but for its numbers and addresses (pseudonymized with ``all``)."""
        return self.pseudonyms.text(value) if self.pseudonyms is not None else value

    def addresses(self, name: str, value: str) -> str:
        """An e-mail address field (``from``, ``to``, ``cc``, ``envelope``) as recorded.

        With ``text`` the display names are masked (personal, like ``ProfileName``) and the addresses kept, which
        a replay matches conversations on; with ``all`` both get pseudonyms. A value longer than ``sendgrid.parse``
        reads (``MAX_ADDRESS_LIST_CHARS``, ``MAX_ENVELOPE_CHARS``), or an envelope too deep to read, is
        ``[masked]`` whole: the pipeline leaves it unread too, and masking 4 MB of it took seconds.
        """
        envelope = name.lower() == "envelope"
        longest = MAX_ENVELOPE_CHARS if envelope else MAX_ADDRESS_LIST_CHARS
        # ``text`` keeps an envelope as it is, without reading it.
        if len(value) > longest and not (envelope and self.mode == "text"):
            self.masked.add(name)
            return MASKED_TEXT
        if self.pseudonyms is None:
            if self.mode != "text" or name.lower() == "envelope":
                return value
            named = display_names_masked(value)
            if named != value:
                self.masked.add(name)
            return named
        if name.lower() != "envelope":
            return self.pseudonyms.addresses(value)
        try:
            document = json.loads(value)
        except ValueError:
            return self.pseudonyms.text(value)
        except RecursionError:
            self.masked.add(name)
            return MASKED_TEXT
        if too_deep(document):
            self.masked.add(name)
            return MASKED_TEXT
        return json.dumps(_envelope(document, self.pseudonyms), ensure_ascii=False)

    def whole(self, what: str) -> bytes:
        """A body that cannot be masked field by field: replaced whole."""
        self.masked.add(what)
        return MASKED_TEXT.encode()


# No JSON a webhook carries (or a recording, or a world file) nests lists and objects more than a few levels. Deeper
# JSON, which anyone may post in a field before any signature is checked, would exhaust the recursion of json.loads
# (past about 1000 levels) or of the walks that mask it (past a few hundred): it is read as text instead.
MAX_NESTING = 100


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` (JSON-like) nests lists and dicts more than ``limit`` levels deep; walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def embedded_json(value: str) -> dict[str, Any] | list[Any] | None:
    """The JSON object or array a string holds, or None when it holds anything else (or nests past MAX_NESTING)."""
    if value.lstrip()[:1] not in ("{", "["):
        return None
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, (dict, list)) and not too_deep(document) else None


def _structural(value: Any) -> bool:
    """Whether a kept field's value has a structural shape (``_STRUCTURAL_VALUE``); a number is one."""
    return not isinstance(value, str) or _STRUCTURAL_VALUE.fullmatch(value) is not None


def form_field_kept(name: str) -> bool:
    """Whether a form field is recorded by ``text`` (``FORM_KEPT_FIELDS``, ``MediaContentType{N}``)."""
    lowered = name.lower()
    return lowered in FORM_KEPT_FIELDS or _FORM_KEPT_INDEXED.fullmatch(lowered) is not None


def _json_text(value: str) -> str:
    """A string found inside JSON: its own JSON's structure if it holds some, else ``[masked]`` (when not empty)."""
    document = embedded_json(value)
    if document is None:
        return MASKED_TEXT if value else value
    return json.dumps(json_text_masked(document), ensure_ascii=False, separators=(",", ":"))


def json_text_masked(value: Any, key: str | None = None) -> Any:
    """A JSON value with its structure kept and every string and number in it ``[masked]`` (fail closed).

    Only values of a structural shape under ``STRUCTURAL_JSON_KEYS`` stay (and booleans and nulls): WhatsApp Flows
    answers and the like sit under keys a form chooses, so no list of personal keys can name them. ``key`` is the
    key ``value`` is under.
    """
    if isinstance(value, dict):
        return {name: json_text_masked(item, str(name)) for name, item in value.items()}
    if isinstance(value, list):
        return [json_text_masked(item, key) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if key is not None and key.lower() in STRUCTURAL_JSON_KEYS and _structural(value):
        return value
    if isinstance(value, str):
        return _json_text(value)
    return MASKED_TEXT


def free_text_masked(value: Any, key: str | None = None) -> Any:
    """A JSON value with its free-text keys' values (``PERSONAL_TEXT_KEYS``, at any depth) ``[masked]``.

    A string holding JSON keeps its structure only (``json_text_masked``); ``key`` is the key ``value`` is under.
    """
    if key is not None and key.lower() in PERSONAL_TEXT_KEYS and value not in (None, ""):
        return MASKED_TEXT
    if isinstance(value, dict):
        return {name: free_text_masked(item, str(name)) for name, item in value.items()}
    if isinstance(value, list):
        return [free_text_masked(item, key) for item in value]
    if isinstance(value, str):
        document = embedded_json(value)
        if document is not None:
            hidden = json_text_masked(document)
            if hidden != document:
                return json.dumps(hidden, ensure_ascii=False, separators=(",", ":"))
    return value


def _envelope(value: Any, pseudonyms: Pseudonyms) -> Any:
    """SendGrid's ``envelope`` (``{"to": [...], "from": "..."}``) with every address string replaced."""
    if isinstance(value, str):
        return pseudonyms.addresses(value)
    if isinstance(value, list):
        return [_envelope(item, pseudonyms) for item in value]
    if isinstance(value, dict):
        return {key: _envelope(item, pseudonyms) for key, item in value.items()}
    return value


# (body, Content-Type header value, masking) -> the masked body.
BodyMasker = Callable[[bytes, str, Masking], bytes]


# A form body larger, or of more pairs, than ``twilio.parse`` reads at its largest ``max_body_bytes`` and
# ``max_params`` is masked whole: it arrives before any check, and parsing it pair by pair took 420 MB (6 MB of empty
# fields) or 488 MB (6 MB of ``%41`` escapes) on a 512 MB function.
MAX_MASKED_FORM_BYTES = 1024 * 1024
MAX_MASKED_FORM_PAIRS = 10000


def _form_recorded(body: bytes, masking: Masking) -> list[tuple[str, str, str]] | None:
    """Each pair of a form body: its name, its value and the value as recorded; None when it is recorded whole."""
    if len(body) > MAX_MASKED_FORM_BYTES or body.count(b"&") >= MAX_MASKED_FORM_PAIRS:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return [(name, value, masking.value(name, value)) for name, value in parse_qsl(text, keep_blank_values=True)]


def _form(body: bytes, content_type: str, masking: Masking) -> bytes:
    recorded = _form_recorded(body, masking)
    if recorded is None:
        return masking.whole("body")
    return urlencode([(name, shown) for name, _, shown in recorded]).encode()


# Fields holding e-mail addresses with their display names (SendGrid Inbound Parse, both modes).
_ADDRESS_FIELDS = frozenset({"from", "to", "cc", "envelope"})
# The only other fields of a multipart body recorded as they are (lower-cased names; SendGrid Inbound Parse): results
# and counts about the email that hold none of its words. Every other field is masked whole, whatever it is: the text,
# html, headers, subject, raw ``email``, ``spam_report`` (SpamAssassin quotes the message's opening lines in it),
# ``attachment-info`` and ``content-ids`` (file names), ``sender_ip``, and any field SendGrid adds later.
MULTIPART_KEPT_FIELDS = frozenset({"spam_score", "spf", "dkim", "charsets", "attachments"})
# The end of a delimiter line (RFC 2046's transport padding, CRLF), and what may follow the closing delimiter's "--".
_LINE_END = re.compile(rb"[ \t]*\r\n")
_CLOSING = re.compile(rb"--[ \t]*(?:\r\n)?")
# A field name that can be written back between double quotes.
_QUOTABLE = re.compile(r'[^"\\\r\n]*')


def _param(headers: Message, name: str, field: str = "Content-Disposition") -> str | None:
    """A header parameter as ``steps.sendgrid.multipart`` reads it (a token or quoted, RFC 2231's ``name*`` forms).

    Runtime may not import steps, so the same lines are here as well: ``get_param`` has unquoted the value already,
    so only an RFC 2231 value in a charset a text codec reads is decoded (``collapse_rfc2231_value`` would unquote
    a plain one, or one in another charset, again, ``<`` and ``>`` taken for quotes).
    tests/runtime/test_masking_params.py feeds both copies the same headers.
    """
    value = headers.get_param(name, header=field)
    if not isinstance(value, tuple):
        return None if value is None else str(value)
    charset, _, text = value
    try:
        return str(bytes(text, "raw-unicode-escape"), "us-ascii" if charset is None else charset, "replace")
    except LookupError:
        return str(text)


def _boundary(content_type: str) -> bytes | None:
    """The ``boundary`` of a Content-Type value as the pipeline reads it; None when there is no ASCII one."""
    header = Message()
    header["Content-Type"] = content_type
    try:
        boundary = _param(header, "boundary", "Content-Type")
    except (LookupError, ValueError, TypeError, IndexError):
        return None
    return boundary.encode("ascii") if boundary and boundary.isascii() else None


def _file_head(name: str, headers: Message) -> bytes:
    """A file part's header block, rebuilt: its field name, a masked filename and its media type, nothing else."""
    if not _QUOTABLE.fullmatch(name):
        raise ValueError("a file part's field name cannot be written back quoted")
    head = f'Content-Disposition: form-data; name="{name}"; filename="{MASKED_TEXT}"'
    if "Content-Type" in headers:
        head += f"\r\nContent-Type: {headers.get_content_type()}"
    return head.encode()


def _part(part: bytes, masking: Masking) -> bytes:
    """One part (its header block, a blank line, its content, CRLF): a file loses its content, a field is masked.

    Its parameters are read as ``email.message`` reads them, as the pipeline does; a file part's header block is
    rebuilt (its filename may hide in any form of the parameter, or in its Content-Type's ``name``).
    """
    head, separator, content = part.partition(b"\r\n\r\n")
    if not separator or not content.endswith(b"\r\n"):
        raise ValueError("a part is not a header block, a blank line and content")
    content = content[:-2]
    headers = BytesHeaderParser().parsebytes(head + separator)
    if len(headers.get_all("Content-Disposition", [])) != 1:
        raise ValueError("a part needs exactly one Content-Disposition")
    name = _param(headers, "name") or ""
    address = name.lower() in _ADDRESS_FIELDS
    if _param(headers, "filename") is not None:
        masking.masked.add(name or "file")
        head, content = _file_head(name, headers), b""
    elif address or name.lower() in MULTIPART_KEPT_FIELDS:
        value = content.decode("utf-8", "replace")
        masked = masking.addresses(name, value) if address else masking.kept(value)
        content = masked.encode() if masked != value else content
    elif content:
        masking.masked.add(name or "field")
        content = MASKED_TEXT.encode()
    return head + b"\r\n\r\n" + content + b"\r\n"


def _multipart(body: bytes, content_type: str, masking: Masking) -> bytes:
    """Each part masked; a body that does not split exactly into parts is replaced whole (fail closed).

    Exactly: no preamble, each delimiter line ends with optional blanks (RFC 2046's transport padding) and CRLF, and
    the closing delimiter ends the body. Anything else (a copy of the boundary inside the text, data around the
    parts) would otherwise be kept as sent.
    A body of more parts than ``sendgrid.parse`` reads (``MAX_MULTIPART_FIELDS_PARTS``) is replaced whole too.
    """
    boundary = _boundary(content_type)
    if boundary is None:
        return masking.whole("body")
    delimiter = b"--" + boundary
    if body.count(delimiter) > MAX_MULTIPART_FIELDS_PARTS + 1:
        return masking.whole("body")  # more parts than sendgrid.parse reads: none is parsed (100000 took 2.7 s)
    chunks = body.split(delimiter)
    if len(chunks) < 3 or chunks[0] or not _CLOSING.fullmatch(chunks[-1]):
        return masking.whole("body")
    parts = []
    for chunk in chunks[1:-1]:
        line_end = _LINE_END.match(chunk)
        if line_end is None:
            return masking.whole("body")
        try:
            parts.append(chunk[: line_end.end()] + _part(chunk[line_end.end() :], masking))
        except ValueError:
            return masking.whole("body")
    return delimiter.join([b"", *parts, chunks[-1]])


BODY_MASKERS: dict[str, BodyMasker] = {
    FORM_MEDIA_TYPE: _form,
    "multipart/form-data": _multipart,
}


def register_body_masker(media_type: str, masker: BodyMasker) -> None:
    """Mask bodies of ``media_type`` (e.g. a channel's own format) with ``masker`` from now on."""
    BODY_MASKERS[media_type.lower()] = masker


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() != name:
            continue
        if isinstance(value, list):
            value = value[-1] if value else None
        return value if isinstance(value, str) else None
    return None


def _decoded(event: Mapping[str, Any]) -> bytes | None:
    raw = event.get("body")
    if not isinstance(raw, str) or not raw:
        return None
    if not event.get("isBase64Encoded"):
        return raw.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None


def _content_type(event: Mapping[str, Any]) -> str | None:
    return _header(event.get("headers"), "content-type") or _header(event.get("multiValueHeaders"), "content-type")


def body_media_type(event: Mapping[str, Any]) -> str:
    """The media type an event's body is read as (lower case, no parameters): its ``Content-Type``'s, else a form's.

    Twilio always names its form type; an event written by hand may not.
    """
    return _media_type(_content_type(event))


def _media_type(content_type: str | None) -> str:
    return (content_type or FORM_MEDIA_TYPE).split(";", 1)[0].strip().lower()


def _masked_body(event: Mapping[str, Any], masking: Masking) -> str | None:
    body = _decoded(event)
    if body is None:
        return None if event.get("body") in (None, "") else masking.whole("body").decode()
    content_type = _content_type(event)
    masker = BODY_MASKERS.get(_media_type(content_type))
    masked = masker(body, content_type or "", masking) if masker is not None else masking.whole("body")
    if event.get("isBase64Encoded"):
        return base64.b64encode(masked).decode("ascii")
    return masked.decode("utf-8", "surrogatepass")


def _masked_query(copy: dict[str, Any], masking: Masking) -> None:
    """The query string's values ``[masked]`` in place (a URL may carry a credential, ``?key=…``); names kept."""

    def hidden(name: Any, value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return value
        masking.masked.add(f"?{name}")
        return MASKED_TEXT

    single, multi, raw = (copy.get(key) for key in _QUERY_KEYS)
    if isinstance(single, Mapping):
        copy["queryStringParameters"] = {name: hidden(name, value) for name, value in single.items()}
    if isinstance(multi, Mapping):
        copy["multiValueQueryStringParameters"] = {
            name: [hidden(name, value) for value in values] if isinstance(values, list) else hidden(name, values)
            for name, values in multi.items()
        }
    if isinstance(raw, str) and raw:
        pairs = parse_qsl(raw, keep_blank_values=True)
        copy["rawQueryString"] = urlencode([(name, hidden(name, value)) for name, value in pairs])


def _without_credentials(headers: Any) -> Any:
    if not isinstance(headers, Mapping):
        return headers
    return {name: value for name, value in headers.items() if str(name).lower() not in _CREDENTIAL_HEADERS}


def signature_digest(signature: str) -> str:
    """What a recording keeps of a signature that never expires: its SHA-256, which cannot be posted again.

    A digest is kept as it is (no Twilio signature holds ``:``), so a recording masked again still checks.
    """
    if signature.startswith(SIGNATURE_DIGEST_PREFIX):
        return signature
    return SIGNATURE_DIGEST_PREFIX + hashlib.sha256(signature.encode("utf-8", "surrogatepass")).hexdigest()


def _marked(headers: Any, auth: frozenset[str], digest: bool = False) -> Any:
    """``headers`` with each header named in ``auth`` (lower case) masked, or with ``digest`` kept as its digest."""
    if not isinstance(headers, Mapping):
        return headers
    marked = {}
    for name, value in headers.items():
        if str(name).lower() not in auth:
            marked[name] = value
        elif digest and isinstance(value, list):
            marked[name] = [signature_digest(item) if isinstance(item, str) else MASKED_SIGNATURE for item in value]
        elif digest and isinstance(value, str):
            marked[name] = signature_digest(value)
        else:
            marked[name] = [MASKED_SIGNATURE] if isinstance(value, list) else MASKED_SIGNATURE
    return marked


def form_fields(event: Mapping[str, Any]) -> dict[str, str]:
    """The form fields of a form-encoded event body (last value of a repeated key); empty when there are none."""
    body = _decoded(event)
    if body is None:
        return {}
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return {}


# The longest value (as sent, percent escapes and all) ``form_values`` reads: Twilio's identity fields (numbers,
# SIDs) are a few dozen characters.
_MAX_FORM_VALUE_CHARS = 256
# The most parts ``multipart_fields`` reads: ``sendgrid.parse`` refuses a form of more (its largest ``max_parts``).
MAX_MULTIPART_FIELDS_PARTS = 1024


def form_values(event: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The last value of each of ``names`` in a form-encoded event body, as ``form_fields`` reads it, in one scan.

    Only pairs whose name is written as is and whose value is at most ``_MAX_FORM_VALUE_CHARS`` characters as sent
    are read (a value that is not UTF-8 is left out): the body arrives before any check, so no other pair is split
    or unescaped (a whole form of 6 MB of ``%41`` took ``parse_qsl`` 488 MB).
    """
    body = _decoded(event)
    if body is None or not names:
        return {}
    alternatives = b"|".join(re.escape(name.encode()) for name in names)
    # Led by a literal "&" (the body is given one), the pattern is searched for, not tried at every byte.
    pair = re.compile(rb"&(" + alternatives + rb")=([^&]{0,%d})(?=&|$)" % _MAX_FORM_VALUE_CHARS)
    values: dict[str, str] = {}
    for match in pair.finditer(b"&" + body):
        try:
            values[match.group(1).decode()] = unquote_plus(match.group(2).decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return values


def multipart_fields(event: Mapping[str, Any], max_parts: int = MAX_MULTIPART_FIELDS_PARTS) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` event body (an e-mail: first value of each, files left out).

    Empty when the body is not one; a part that does not read as a field is skipped. Only the first ``max_parts``
    parts are read: the body arrives before any check, and each part's header block takes the standard library's
    parser tens of microseconds (100000 empty parts, 6 MB, took 4.5 s).
    """
    content_type = _header(event.get("headers"), "content-type") or ""
    boundary = _boundary(content_type) if content_type.lower().startswith("multipart/form-data") else None
    body = _decoded(event) if boundary is not None else None  # a form-encoded body is not decoded for nothing
    if body is None or boundary is None:
        return {}
    fields: dict[str, str] = {}
    for chunk in _chunks(body, b"--" + boundary, max_parts):
        line_end = _LINE_END.match(chunk)
        head, separator, content = chunk[line_end.end() if line_end else 0 :].partition(b"\r\n\r\n")
        try:
            headers = BytesHeaderParser().parsebytes(head + separator)
            name, file = _param(headers, "name"), _param(headers, "filename")
        except (LookupError, ValueError, TypeError, IndexError):
            continue
        if separator and name is not None and file is None:
            fields.setdefault(name, content.removesuffix(b"\r\n").decode("utf-8", "replace"))
    return fields


def _chunks(body: bytes, dash: bytes, limit: int) -> Iterator[bytes]:
    """``body.split(dash)[1:-1]``, the first ``limit`` of them, without splitting the rest."""
    start = body.find(dash)
    for _ in range(limit):
        end = body.find(dash, start + len(dash)) if start >= 0 else -1
        if end < 0:
            return
        yield body[start + len(dash) : end]
        start = end


def recordable(
    event: Mapping[str, Any],
    *,
    mask: str = "none",
    pseudonyms: Pseudonyms | None = None,
    auth_headers: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """A copy of ``event`` fit to store for replay (see the module docstring for ``mask``).

    ``auth_headers`` are the headers that authenticate the request, each with whether its signature expires (the
    pipelines' steps declare both); a masked recording replaces their values. An event that is a recording already
    is masked at least as it was (its ``recording`` stamp kept, its masked fields added to), and a ``mask=all`` one
    gets no second pseudonyms.
    """
    if mask not in MASK_MODES:
        raise ValueError(f"mask must be one of {', '.join(MASK_MODES)}")
    if mask == "all" and pseudonyms is None:
        raise ValueError('mask="all" needs pseudonyms (a key) so that numbers still match the world')
    previous = _recording(event)
    was = previous.get("mask", "none")
    # Masked again (a capture put through ``pipeline-event mask``): never less than it was, and numbers that are
    # pseudonyms already are not pseudonymized twice (they would match no world pseudonymized once).
    stamp = max(mask, was, key=MASK_MODES.index)
    mask = "text" if was == "all" else stamp
    copy = {key: value for key, value in event.items() if key != RECORDING_KEY and key not in _CREDENTIAL_KEYS}
    for section in ("headers", "multiValueHeaders"):
        copy[section] = _without_credentials(copy.get(section))
    context = copy.get("requestContext")
    if isinstance(context, Mapping):
        copy["requestContext"] = {k: v for k, v in context.items() if k not in ("authorizer", "identity")}
    if mask == "none":
        digested = frozenset(name.lower() for name, expires in (auth_headers or {}).items() if not expires)
        for section in ("headers", "multiValueHeaders"):
            copy[section] = _marked(copy.get(section), digested, digest=True)
        copy[RECORDING_KEY] = {**previous, "mask": stamp, "masked": previous.get("masked", [])}
        return copy
    masking = Masking(mask, pseudonyms if mask == "all" else None)
    body = _masked_body(copy, masking)
    if body is not None:
        copy["body"] = body
    _masked_query(copy, masking)
    auth = frozenset(name.lower() for name in auth_headers or ())
    for section in ("headers", "multiValueHeaders"):
        copy[section] = _marked(copy.get(section), auth)
    copy[RECORDING_KEY] = {
        **previous,
        "mask": stamp,
        "masked": sorted(masking.masked.union(previous.get("masked", []))),
    }
    return copy


def withheld_values(event: Mapping[str, Any]) -> frozenset[str]:
    """The values of ``event``'s body fields that a ``mask="text"`` recording replaces whole with ``[masked]``.

    A tool showing what a pipeline made of the event (``pipeline-dryrun``) hides each of them wherever it meets one,
    so that it shows no field the capture would not keep (``FORM_KEPT_FIELDS``, ``MULTIPART_KEPT_FIELDS``), whatever
    field Twilio or SendGrid adds later. A value a kept field holds too is shown there anyway: it is not withheld.
    When the recording replaced the body whole (one that does not split into its fields), every value is withheld.
    """
    if body_media_type(event) == FORM_MEDIA_TYPE:
        body = _decoded(event)
        if body is None:
            return frozenset()
        recorded = _form_recorded(body, Masking("text"))
        if recorded is None:
            return frozenset(value for _, value in _form_pairs(body) if value and value != MASKED_TEXT)
        return _withheld([(value, shown) for _, value, shown in recorded])
    before = list(multipart_fields(event).items())
    copy = recordable(event, mask="text")
    masked = multipart_fields(copy)
    if "body" in copy[RECORDING_KEY]["masked"]:
        return frozenset(value for _, value in before if value and value != MASKED_TEXT)
    return _withheld([(value, masked.get(name, MASKED_TEXT)) for name, value in before])


def _withheld(recorded: list[tuple[str, str]]) -> frozenset[str]:
    """The values recorded as ``[masked]``, but for those that some pair records as they are."""
    hidden = {value for value, shown in recorded if value and shown == MASKED_TEXT}
    kept = {value for value, shown in recorded if value == shown}
    return frozenset(hidden - kept - {MASKED_TEXT})


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    """Every pair of a form-encoded body, in order (none when it is not UTF-8 text)."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return []


def _recording(event: Mapping[str, Any]) -> dict[str, Any]:
    """The ``recording`` stamp ``event`` already carries (its mask and masked fields checked), else an empty one."""
    recording = event.get(RECORDING_KEY)
    if not isinstance(recording, Mapping) or recording.get("mask") not in MASK_MODES:
        return {}
    masked = recording.get("masked")
    names = [name for name in masked if isinstance(name, str)] if isinstance(masked, list) else []
    return {**recording, "masked": names}
