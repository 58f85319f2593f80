"""An HTTP request as webhook pipelines see it, whatever host received it.

The host (the Lambda runtime's API Gateway adapter, a test) builds one ``HttpRequest`` per event and the
pipeline's steps read it as ``ctx.event``. A request whose body the host could not read still has its
path (so the request's channel can answer in its own format) and says why in ``unreadable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["HttpRequest", "last_segment"]


def last_segment(path: str | None) -> str:
    """The last non-empty segment of ``path`` (``/prod/whatsapp`` → ``whatsapp``); empty when there is none."""
    parts = [part for part in (path or "").split("/") if part]
    return parts[-1] if parts else ""


@dataclass(frozen=True)
class HttpRequest:
    """A webhook request: method, public path, lower-cased headers, raw body, query and where it was sent.

    ``host`` is the ``Host`` header as the client sent it; ``domain`` is the name the platform itself says
    the request arrived on (None when it does not say); ``scheme`` is the one the URL is rebuilt with.
    """

    method: str | None
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    query: str = ""
    host: str | None = None
    domain: str | None = None
    scheme: str = "https"
    unreadable: str | None = None

    def header(self, name: str) -> str | None:
        """A header's value; names are case-insensitive."""
        return self.headers.get(name.lower())

    @property
    def channel(self) -> str:
        """The last non-empty path segment, which names the webhook's channel."""
        return last_segment(self.path)

    def text(self) -> str:
        """The body as UTF-8 text; ValueError when it is not."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("body is not valid UTF-8") from None
