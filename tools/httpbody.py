"""A request body as ``pipeline-serve`` reads it: the chunked transfer coding, and the requests refused unread.

As API Gateway answers: an unreadable ``Content-Length`` is ``400``, a body over the limit ``413``, a transfer coding
other than chunked ``501`` (the chunked coding wins over a ``Content-Length``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REFUSAL_MESSAGES", "BodyTooLong", "read_chunked", "refusal_status"]


class BodyTooLong(ValueError):
    """A chunked body longer than the limit read."""


# A chunk-size line: hex digits, then optional chunk extensions (``;name=value``), which are ignored.
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(;[^\r\n]*)?\r?\n")
_LINE_LIMIT = 8192


def read_chunked(stream: Any, limit: int) -> bytes:
    """A body in the chunked transfer coding (RFC 9112 §7.1) read from ``stream``, its trailer fields skipped.

    ValueError when it is not in that coding; BodyTooLong when it would exceed ``limit`` bytes.
    """
    body = bytearray()
    while True:
        line = stream.readline(_LINE_LIMIT + 1)
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise ValueError("malformed chunk size line")
        size = int(match[1], 16)
        if size == 0:
            break
        if len(body) + size > limit:
            raise BodyTooLong(f"chunked body over {limit} bytes")
        chunk = stream.read(size)
        if len(chunk) != size or stream.readline(3) not in (b"\r\n", b"\n"):
            raise ValueError("chunk shorter than its size, or not ended by CRLF")
        body += chunk
    for _ in range(100):  # the trailer section, up to its empty line
        line = stream.readline(_LINE_LIMIT + 1)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line or len(line) > _LINE_LIMIT:
            raise ValueError("unterminated trailer section")
    raise ValueError("too many trailer fields")


# API Gateway's messages for the requests it answers without reading their bodies.
REFUSAL_MESSAGES = {400: "Bad Request", 413: "Request Too Long", 501: "Not Implemented"}


def refusal_status(transfer_encoding: str | None, content_length: str | None, limit: int) -> int | None:
    """The status refusing a body not to be read (an unreadable length, over ``limit``, another coding), or None."""
    if transfer_encoding is not None:
        # Only the chunked coding is read (a tunnel's; API Gateway takes it too): it wins over a Content-Length.
        if [part.strip().lower() for part in transfer_encoding.split(",")] != ["chunked"]:
            return 501
        return None
    raw = (content_length or "0").strip()
    if not raw.isascii() or not raw.isdigit():
        return 400
    if int(raw) > limit:
        return 413
    return None
