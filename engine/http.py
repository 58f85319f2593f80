"""API Gateway proxy events (REST payload 1.0, HTTP API / Function URL payload 2.0) as one request shape.

``HttpRequest.public_url()`` rebuilds the URL the caller used: REST 1.0 takes
``{X-Forwarded-Proto or https}://{Host}{requestContext.path}`` (the public path, stage or custom-domain
base path included) plus ``multiValueQueryStringParameters`` re-encoded in the order given; 2.0 takes
``https://{host}{rawPath}`` plus ``?rawQueryString`` as sent.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

__all__ = ["EventError", "HttpRequest", "last_segment", "parse_http_event", "request_path"]


class EventError(ValueError):
    """The event is not a usable API Gateway proxy event.

    ``path`` is the request path when it could be read (a body that cannot be decoded still has a
    path, so the caller can tell which channel it was meant for and answer in that channel's format).
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class HttpRequest:
    """The parts of a proxy event a webhook pipeline needs."""

    version: str
    method: str | None
    path: str
    headers: Mapping[str, str]
    body: str
    query: str
    host: str | None
    scheme: str

    def header(self, name: str) -> str | None:
        """A header's value; names are case-insensitive."""
        return self.headers.get(name.lower())

    @property
    def last_segment(self) -> str:
        """The last non-empty path segment (``/prod/whatsapp`` → ``whatsapp``)."""
        return last_segment(self.path)

    def public_url(self) -> str:
        """The URL the caller requested, rebuilt from the event."""
        if not self.host:
            raise EventError("the event names no host (Host header or requestContext.domainName)")
        return f"{self.scheme}://{self.host}{self.path}" + (f"?{self.query}" if self.query else "")


def last_segment(path: str | None) -> str:
    """The last non-empty segment of ``path`` (``/prod/whatsapp`` → ``whatsapp``); empty when there is none."""
    parts = [part for part in (path or "").split("/") if part]
    return parts[-1] if parts else ""


def request_path(event: Any) -> str | None:
    """The public request path of a 1.0 or 2.0 proxy event, or None when it names none."""
    if not isinstance(event, Mapping):
        return None
    context = event.get("requestContext")
    context = context if isinstance(context, Mapping) else {}
    if event.get("version") == "2.0":
        http = context.get("http")
        path = event.get("rawPath") or (http.get("path") if isinstance(http, Mapping) else None)
    else:
        path = context.get("path") or event.get("path")
    return path if isinstance(path, str) and path else None


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    multi = event.get("multiValueHeaders")
    if isinstance(multi, Mapping):
        for name, values in multi.items():
            if isinstance(values, list) and values and isinstance(values[-1], str):
                headers[str(name).lower()] = values[-1]
    single = event.get("headers")
    if isinstance(single, Mapping):
        for name, value in single.items():
            if isinstance(value, str):
                headers[str(name).lower()] = value
    elif single is not None:
        raise EventError("headers must be an object or null")
    return headers


def _body(event: Mapping[str, Any], max_bytes: int) -> str:
    raw = event.get("body")
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise EventError("body must be a string")
    if len(raw) > max_bytes * 4 // 3 + 4:
        raise EventError(f"body exceeds {max_bytes} bytes")
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise EventError("body is marked base64 but is not valid base64") from None
    else:
        data = raw.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise EventError(f"body exceeds {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("body is not valid UTF-8") from None


def _v1_query(event: Mapping[str, Any], path: str) -> str:
    multi = event.get("multiValueQueryStringParameters")
    single = event.get("queryStringParameters")
    if isinstance(multi, Mapping) and multi:
        pairs = [(n, v) for n, values in multi.items() for v in (values if isinstance(values, list) else [values])]
    else:
        pairs = list(single.items()) if isinstance(single, Mapping) else []
    if not all(isinstance(value, str) for _, value in pairs):
        raise EventError("query string parameter values must be strings", path)
    return urlencode(pairs)


def parse_http_event(event: Any, *, max_body_bytes: int = 65536) -> HttpRequest:
    """Normalise a payload 1.0 or 2.0 proxy event; raise EventError when it cannot be read."""
    if not isinstance(event, Mapping):
        raise EventError("the event is not a JSON object")
    path = request_path(event)
    if path is None:
        raise EventError("the event has no request path")
    context = event.get("requestContext")
    context = context if isinstance(context, Mapping) else {}
    try:
        headers = _headers(event)
        body = _body(event, max_body_bytes)
    except EventError as exc:
        raise EventError(str(exc), path) from None
    if event.get("version") == "2.0":
        http_context = context.get("http")
        http: Mapping[str, Any] = http_context if isinstance(http_context, Mapping) else {}
        query = event.get("rawQueryString") or ""
        method = http.get("method")
        host = headers.get("host") or context.get("domainName")
        scheme = "https"
        version = "2.0"
    else:
        query = _v1_query(event, path)
        method = event.get("httpMethod") or context.get("httpMethod")
        host = headers.get("host") or context.get("domainName")
        scheme = headers.get("x-forwarded-proto") or "https"
        version = "1.0"
    if not isinstance(query, str):
        raise EventError("rawQueryString must be a string", path)
    return HttpRequest(
        version=version,
        method=method if isinstance(method, str) else None,
        path=path,
        headers=headers,
        body=body,
        query=query,
        host=host if isinstance(host, str) and host else None,
        scheme=scheme,
    )
