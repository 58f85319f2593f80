"""API Gateway proxy events (REST payload 1.0, HTTP API / Function URL payload 2.0) in and out.

``http_request(event)`` gives the pipeline's ``engine.http.HttpRequest``: REST 1.0 takes the public path
from ``requestContext.path`` (stage or custom-domain base path included), the scheme from
``X-Forwarded-Proto`` (``forwarded_scheme``: http or https, else https) and the query from
``multiValueQueryStringParameters`` re-encoded in the order given; 2.0 takes ``rawPath``, https and
``rawQueryString`` as sent. A body that cannot be read (bad base64, over the size limit) leaves the request
``unreadable`` with the reason; an event that has no path at all is an ``EventError``. ``proxy_response``
renders an answer the way the integration expects.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from engine.http import HttpRequest
from engine.responses import Answer

__all__ = ["MAX_BODY_BYTES", "EventError", "forwarded_scheme", "http_request", "proxy_response", "request_path"]

# API Gateway refuses larger payloads itself.
MAX_BODY_BYTES = 10 * 1024 * 1024


class EventError(ValueError):
    """The event is not an API Gateway proxy event with a request path."""


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


def forwarded_scheme(value: str | None) -> str:
    """The scheme an ``X-Forwarded-Proto`` value names: its first element when that is http or https, else https.

    The client writes this header, and the scheme starts the URL whose signature is checked: any other text
    (``https://other.example/x?``) could move the URL's boundaries. API Gateway itself is always https.
    """
    first = (value or "").split(",", 1)[0].strip().lower()
    return first if first in ("http", "https") else "https"


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
        raise ValueError("headers must be an object or null")
    return headers


def _body(event: Mapping[str, Any], max_bytes: int) -> bytes:
    raw = event.get("body")
    if raw is None:
        return b""
    if not isinstance(raw, str):
        raise ValueError("body must be a string")
    if len(raw) > max_bytes * 4 // 3 + 4:
        raise ValueError(f"body exceeds {max_bytes} bytes")
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("body is marked base64 but is not valid base64") from None
    else:
        data = raw.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise ValueError(f"body exceeds {max_bytes} bytes")
    return data


def _v1_query(event: Mapping[str, Any]) -> str:
    multi = event.get("multiValueQueryStringParameters")
    single = event.get("queryStringParameters")
    if isinstance(multi, Mapping) and multi:
        pairs = [(n, v) for n, values in multi.items() for v in (values if isinstance(values, list) else [values])]
    else:
        pairs = list(single.items()) if isinstance(single, Mapping) else []
    if not all(isinstance(value, str) for _, value in pairs):
        raise ValueError("query string parameter values must be strings")
    return urlencode(pairs)


def http_request(event: Any, *, max_body_bytes: int = MAX_BODY_BYTES) -> HttpRequest:
    """The request a payload 1.0 or 2.0 proxy event carries; EventError when it names no path."""
    if not isinstance(event, Mapping):
        raise EventError("the event is not a JSON object")
    path = request_path(event)
    if path is None:
        raise EventError("the event has no request path")
    context = event.get("requestContext")
    context = context if isinstance(context, Mapping) else {}
    domain = context.get("domainName")
    domain = domain if isinstance(domain, str) and domain else None
    version2 = event.get("version") == "2.0"
    http_context = context.get("http") if version2 else None
    method = http_context.get("method") if isinstance(http_context, Mapping) else None
    if not version2:
        method = event.get("httpMethod") or context.get("httpMethod")
    method = method if isinstance(method, str) else None
    try:
        headers = _headers(event)
        body = _body(event, max_body_bytes)
        query = event.get("rawQueryString") or "" if version2 else _v1_query(event)
        if not isinstance(query, str):
            raise ValueError("rawQueryString must be a string")
    except ValueError as exc:
        return HttpRequest(method=method, path=path, domain=domain, unreadable=str(exc))
    host = headers.get("host") or domain
    return HttpRequest(
        method=method,
        path=path,
        headers=headers,
        body=body,
        query=query,
        host=host or None,
        domain=domain,
        scheme="https" if version2 else forwarded_scheme(headers.get("x-forwarded-proto")),
    )


def proxy_response(answer: Answer) -> dict[str, Any]:
    """The dict API Gateway expects back from a Lambda proxy integration."""
    return {
        "statusCode": answer.status,
        "headers": dict(answer.headers),
        "body": answer.body,
        "isBase64Encoded": False,
    }
