"""Parse a ``multipart/form-data`` body (RFC 7578) as SendGrid Inbound Parse posts it.

Parts are delimited exactly as RFC 2046 says (CRLF, ``--``, the boundary). The boundary comes from the
Content-Type header, which SendGrid does not sign, while the body is signed; so the body must read only one way:
it starts with the boundary's delimiter line (no preamble: a header naming another string found in the body is
refused), it ends with the closing delimiter (no epilogue), and no part holds the boundary at the start of a line
(after CR or LF, where a lenient reader would cut). A text field is decoded with its part's own ``charset``, else
the one SendGrid's ``charsets`` field names for it, else UTF-8 (charset names mail uses that Python does not
know are mapped to its codecs: ``decode_text``); bytes that do not decode are replaced. A file part is
summarised (field, filename, type, size) and its bytes are not copied. Every failure is a ``MultipartError``
whose message says what is wrong and, at most, which part: never a header or a field value, so it is safe to log.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = [
    "CHARSETS_FIELD",
    "CHARSET_ALIASES",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_PARTS",
    "MAX_PART_HEADER_BYTES",
    "AmbiguousBody",
    "BadBoundary",
    "BodyTooLarge",
    "FilePart",
    "MalformedPart",
    "MultipartError",
    "MultipartForm",
    "NotFormData",
    "TooManyParts",
    "TruncatedBody",
    "boundary_of",
    "decode_text",
    "param_text",
    "parse",
]

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_PARTS = 256
MAX_PART_HEADER_BYTES = 8 * 1024
CHARSETS_FIELD = "charsets"
_MAX_CHARSETS_BYTES = 4 * 1024
# Python text codecs that are no charset: punycode decodes in quadratic time (200 KB: 4.7 s), the others rewrite text.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_CHARSETS = frozenset({"punycode", "idna", "unicode-escape", "raw-unicode-escape"})
_BCHARS = r"0-9A-Za-z'()+_,\-./:=?"
_BOUNDARY = re.compile(rf"[{_BCHARS} ]{{0,69}}[{_BCHARS}]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_END = re.compile(rb"[ \t]*\r\n")
_PARTIAL_LINE_END = re.compile(rb"[ \t]*\r?")
_CLOSE_END = re.compile(rb"[ \t]*(?:\r\n)?")
_HEADER_ERRORS = (LookupError, ValueError, TypeError, IndexError)
# Charset labels mail carries that Python's codecs do not know, each with the codec that reads it; and two that
# Python knows as a subset of what mail so labelled holds (Outlook's euc-kr / ks_c_5601-1987 mail is Windows-949,
# gb2312 mail is GBK), as the WHATWG Encoding Standard maps them. Keys are lower case with "-" for "_".
CHARSET_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "windows-874": "cp874",
        "windows-31j": "cp932",
        "cswindows31j": "cp932",
        "x-sjis": "cp932",
        "ms-cp932": "cp932",
        "euc-kr": "cp949",
        "ks-c-5601-1987": "cp949",
        "ks-c-5601": "cp949",
        "windows-949": "cp949",
        "gb2312": "gbk",
        "csgb2312": "gbk",
        "mac-ce": "mac_latin2",
        "mac-centraleurroman": "mac_latin2",
        "mac-icelandic": "mac_iceland",
        "unicode-1-1-utf-8": "utf-8",
        "unicode-2-0-utf-8": "utf-8",
        "unicode20utf8": "utf-8",
    }
)
# Labels that mail (Outlook, older mailers) puts on Windows-1252 text: browsers and mail clients read them as
# Windows-1252 (WHATWG Encoding Standard), whose 0x80-0x9F bytes are quotes, dashes and the euro sign where
# ISO-8859-1 has invisible C1 controls (and ASCII has none). The five bytes Windows-1252 leaves undefined stay C1.
_WINDOWS_1252_LABELS = frozenset(
    {"iso-8859-1", "iso8859-1", "iso88591", "iso-8859-1:1987", "iso-ir-100", "latin1", "latin-1", "l1"}
    | {"cp819", "ibm819", "csisolatin1", "us-ascii", "ascii", "us", "ansi-x3.4-1968", "iso-ir-6", "csascii"}
)
_C1_AS_WINDOWS_1252 = {
    code: bytes([code]).decode("cp1252", "replace").replace("\ufffd", chr(code)) for code in range(0x80, 0xA0)
}
# Generic spellings: a Windows code page by number, and ISO-8859-6/-8's "-i"/"-e" (implicit/explicit
# directionality: the same bytes as the plain charset).
_CODE_PAGE = re.compile(r"(?:windows|win|dos|ibm|ms|cp)-?([0-9]{3,5})")
_ISO_VARIANT = re.compile(r"(iso-?8859-[0-9]{1,2})-[ie]")


class MultipartError(ValueError):
    """The body is not a well-formed form within the limits; ``str()`` carries no request content."""

    code: ClassVar[str] = "MULTIPART_INVALID"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{self.code}: {reason}")
        self.reason = reason


class NotFormData(MultipartError):
    """The Content-Type is not ``multipart/form-data``."""

    code = "MULTIPART_NOT_FORM_DATA"


class BadBoundary(MultipartError):
    """The boundary is missing, not RFC 2046 shaped, or not the body's first line."""

    code = "MULTIPART_BAD_BOUNDARY"


class AmbiguousBody(MultipartError):
    """The body has data after its closing boundary, or a part holds the boundary at a line start."""

    code = "MULTIPART_AMBIGUOUS"


class BodyTooLarge(MultipartError):
    """The body is over the byte limit."""

    code = "MULTIPART_TOO_LARGE"


class TooManyParts(MultipartError):
    """The body has more parts than the limit."""

    code = "MULTIPART_TOO_MANY_PARTS"


class MalformedPart(MultipartError):
    """A part's headers (or a boundary line) are malformed."""

    code = "MULTIPART_MALFORMED_PART"


class TruncatedBody(MultipartError):
    """The body ends before the closing boundary."""

    code = "MULTIPART_TRUNCATED"


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file part, summarised: its content is not kept."""

    name: str
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MultipartForm:
    """The parsed form: text values by field name (in order), file summaries, and raw bytes of chosen fields."""

    fields: Mapping[str, tuple[str, ...]]
    files: tuple[FilePart, ...]
    raw: Mapping[str, tuple[bytes, ...]]

    def first(self, name: str) -> str | None:
        """The first value of a text field, or None."""
        values = self.fields.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class _Text:
    name: str
    start: int
    end: int
    charset: str | None


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type value, checked against RFC 2046."""
    header = Message()
    header["Content-Type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        raise NotFormData("the content type is not multipart/form-data")
    try:
        boundary = _param(header, "boundary", "Content-Type")
    except _HEADER_ERRORS as exc:
        raise BadBoundary("the boundary parameter cannot be read") from exc
    if boundary is None:
        raise BadBoundary("the content type has no boundary")
    if not _BOUNDARY.fullmatch(boundary):
        raise BadBoundary("the boundary is not 1-70 RFC 2046 characters")
    return boundary.encode("ascii")


def decode_text(data: bytes, charset: str | None) -> str:
    """``data`` decoded with ``charset`` when a Python text codec reads it, else as UTF-8; never raises.

    A charset name Python does not know is looked up in ``CHARSET_ALIASES``, then without an ``x-`` prefix,
    then as a Windows code page or an ISO-8859 variant (``windows-1258`` is ``cp1258``, ``iso-8859-8-i`` is
    ``iso-8859-8``). ISO-8859-1 and ASCII labels are read as Windows-1252, as browsers read them. The result
    always encodes as UTF-8: each lone surrogate a codec makes (UTF-7 can) becomes one U+FFFD. A codec that is no
    charset (punycode, idna, the escape codecs) is not used: anyone can post a part so labelled, before its signature.
    """
    if _label(charset or "") in _WINDOWS_1252_LABELS:
        return data.decode("latin-1").translate(_C1_AS_WINDOWS_1252)
    for codec in _codec_names(charset or ""):
        try:
            if codecs.lookup(codec).name in _NOT_CHARSETS:
                continue
            text = data.decode(codec, "replace")
        except (LookupError, ValueError, TypeError):
            continue
        return _LONE_SURROGATE.sub("\ufffd", text)
    return data.decode("utf-8", "replace")


def _label(charset: str) -> str:
    """A charset label as compared: unquoted, lower case, ``_`` read as ``-``."""
    return charset.strip().strip("\"'").lower().replace("_", "-")


def _codec_names(charset: str) -> Iterator[str]:
    """The codec names to try for a charset label, most specific first (none for an empty label)."""
    label = _label(charset)
    if not label:
        return
    bare = label
    while bare.startswith("x-"):
        bare = bare[2:]
    for name in dict.fromkeys((label, bare)):
        if name in CHARSET_ALIASES:
            yield CHARSET_ALIASES[name]
        yield name
    if (page := _CODE_PAGE.fullmatch(bare)) is not None:
        yield f"cp{page.group(1)}"
    elif (variant := _ISO_VARIANT.fullmatch(bare)) is not None:
        yield variant.group(1)


def parse(
    body: bytes,
    content_type: str,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_parts: int = DEFAULT_MAX_PARTS,
    keep_bytes: Collection[str] = ("email",),
) -> MultipartForm:
    """Parse ``body``; the fields named in ``keep_bytes`` also keep their undecoded bytes (e.g. raw MIME)."""
    if len(body) > max_body_bytes:
        raise BodyTooLarge(f"the body is over {max_body_bytes} bytes")
    boundary = boundary_of(content_type)
    texts: list[_Text] = []
    files: list[FilePart] = []
    for index, (start, end) in enumerate(_spans(body, boundary, max_parts), start=1):
        head_end, content = _split_head(body, start, end, index)
        header = _headers(body[start:head_end], index)
        try:
            name, filename, declared, charset = _describe(header, index)
        except MultipartError:
            raise
        except _HEADER_ERRORS as exc:
            raise MalformedPart(f"part {index} has unreadable headers") from exc
        if filename is None:
            texts.append(_Text(name, content, end, charset))
        else:
            files.append(FilePart(name, filename, declared or "application/octet-stream", end - content))
    charsets = _charsets(next((body[t.start : t.end] for t in texts if t.name == CHARSETS_FIELD), None))
    fields: dict[str, list[str]] = {}
    raw: dict[str, list[bytes]] = {}
    for text in texts:
        data = body[text.start : text.end]
        fields.setdefault(text.name, []).append(decode_text(data, text.charset or charsets.get(text.name)))
        if text.name in keep_bytes:
            raw.setdefault(text.name, []).append(data)
    return MultipartForm(
        fields=MappingProxyType({name: tuple(values) for name, values in fields.items()}),
        files=tuple(files),
        raw=MappingProxyType({name: tuple(values) for name, values in raw.items()}),
    )


def _spans(body: bytes, boundary: bytes, max_parts: int) -> Iterator[tuple[int, int]]:
    """Each part's (start, end) offsets: after its delimiter line, up to the CRLF before the next delimiter."""
    dash = b"--" + boundary
    delimiter = b"\r\n" + dash
    if not body.startswith(dash):
        if body and dash.startswith(body):
            raise TruncatedBody("the body ends inside boundary line 1")
        raise BadBoundary("the body's first line is not the boundary's delimiter")
    pos = len(dash)
    count = 0
    while not body.startswith(b"--", pos):
        count += 1
        line_end = _LINE_END.match(body, pos)
        if line_end is None:
            if _PARTIAL_LINE_END.fullmatch(body, pos):
                raise TruncatedBody(f"the body ends inside boundary line {count}")
            if count == 1:
                raise BadBoundary("the body's first line is not the boundary's delimiter")
            raise MalformedPart(f"boundary line {count} has trailing characters")
        if count > max_parts:
            raise TooManyParts(f"the body has more than {max_parts} parts")
        start = line_end.end()
        found = body.find(delimiter, start)
        if found < 0:
            raise TruncatedBody(f"part {count} has no closing boundary")
        if _holds_boundary(body, dash, start, found):
            raise AmbiguousBody(f"part {count} holds the boundary at the start of a line")
        yield start, found
        pos = found + len(delimiter)
    if not _CLOSE_END.fullmatch(body, pos + 2):
        raise AmbiguousBody("the body has data after the closing boundary")


def _holds_boundary(body: bytes, dash: bytes, start: int, end: int) -> bool:
    """True when ``--boundary`` starts a line (after CR or LF, or at ``start``) in ``body[start:end]``."""
    found = body.find(dash, start, end)
    while found >= 0:
        if found == start or body[found - 1] in b"\r\n":
            return True
        found = body.find(dash, found + 1, end)
    return False


def _split_head(body: bytes, start: int, end: int, index: int) -> tuple[int, int]:
    """Where a part's header block ends and its content starts."""
    if body.startswith(b"\r\n", start):
        return start, start + 2
    limit = min(end, start + MAX_PART_HEADER_BYTES + 4)
    found = body.find(b"\r\n\r\n", start, limit)
    if found < 0:
        if limit < end:
            raise MalformedPart(f"part {index} has headers over {MAX_PART_HEADER_BYTES} bytes")
        raise MalformedPart(f"part {index} has no blank line after its headers")
    return found, found + 4


def _headers(block: bytes, index: int) -> Message:
    """A part's header lines (folded lines joined), each checked to be ``token: value``."""
    header = Message()
    lines: list[list[str]] = []
    for line in block.decode("utf-8", "replace").split("\r\n") if block else ():
        if "\r" in line or "\n" in line:
            raise MalformedPart(f"part {index} has a bare line break in its headers")
        if line[:1] in (" ", "\t") and lines:
            lines[-1][1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise MalformedPart(f"part {index} has a malformed header line")
        lines.append([name, value.strip()])
    for name, value in lines:
        header[name] = value
    return header


def _describe(header: Message, index: int) -> tuple[str, str | None, str | None, str | None]:
    """A part's field name, filename (None for a text field), declared content type and charset."""
    if len(header.get_all("Content-Disposition", [])) != 1:
        raise MalformedPart(f"part {index} needs exactly one Content-Disposition")
    if header.get_content_disposition() != "form-data":
        raise MalformedPart(f"part {index} is not form-data")
    # Parsed once for both names (each get_param parses them all again); a file's charset is never read.
    params = header.get_params(header="Content-Disposition")
    name = _named(params, "name")
    if name is None:
        raise MalformedPart(f"part {index} has no field name")
    filename = _named(params, "filename")
    declared = header.get_content_type() if "Content-Type" in header else None
    return name, filename, declared, header.get_content_charset() if filename is None else None


def _param(header: Message, name: str, field: str = "Content-Disposition") -> str | None:
    value = header.get_param(name, header=field)
    return None if value is None else param_text(value)


def param_text(value: Any) -> str:
    """A parameter's value as ``get_params`` gives it (already unquoted), an RFC 2231 one decoded.

    ``collapse_rfc2231_value`` without its second unquoting: of a plain value, or of one whose charset no text codec
    reads (its fallback), taking ``<`` and ``>`` for quotes. Such an RFC 2231 value's text is taken as it is.
    """
    if not isinstance(value, tuple):
        return str(value)
    charset, _, text = value
    try:
        return str(bytes(text, "raw-unicode-escape"), "us-ascii" if charset is None else charset, "replace")
    except LookupError:
        return str(text)


def _named(params: list[tuple[str, Any]] | None, name: str) -> str | None:
    """The first parameter ``name`` among a header's (``get_params``), as ``_param`` reads it from the header."""
    for key, value in params or ():
        if key.lower() == name:
            return param_text(value)
    return None


def _charsets(raw: bytes | None) -> dict[str, str]:
    """SendGrid's ``charsets`` field: field name -> charset; empty when absent or not a JSON object."""
    if raw is None or len(raw) > _MAX_CHARSETS_BYTES:
        return {}
    try:
        parsed = json.loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {name: value for name, value in parsed.items() if isinstance(value, str)}
