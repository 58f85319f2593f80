"""API Gateway proxy events built from an HTTP request, as API Gateway itself builds them.

The one builder of events for the tools and the tests: ``rest_event`` (REST API, payload 1.0: ``path``
without the stage, ``requestContext.path`` with it, headers as sent plus ``multiValueHeaders``, the query
decoded into ``(multiValue)QueryStringParameters``) and ``http_api_event`` (HTTP API / Function URL, payload
2.0: lower-case headers, ``rawPath`` with the stage, ``rawQueryString`` as sent, the body base64-encoded as
API Gateway does for form posts). Bodies are text or bytes; bytes that are not UTF-8 are always base64.
``stage_name`` gives the stage of a public base path such as ``/prod``.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Headers", "http_api_event", "rest_event", "stage_name"]

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


def stage_name(base_path: str) -> str:
    """The stage of an API whose public base path is ``base_path`` (its last segment; ``$default`` for none)."""
    return base_path.strip("/").split("/")[-1] or "$default"


def _pairs(headers: Headers | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _body(body: bytes | str | None, base64_body: bool) -> tuple[str | None, bool]:
    if body is None or body == b"" or body == "":
        return (None if body is None else "", False)
    data = body.encode("utf-8") if isinstance(body, str) else body
    if not base64_body:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), True


def rest_event(
    method: str,
    public_path: str,
    *,
    host: str | None,
    headers: Headers | None = None,
    body: bytes | str | None = None,
    stage: str = "prod",
    query: Sequence[tuple[str, str]] = (),
    base64_body: bool = False,
    source_ip: str | None = "127.0.0.1",
    request_id: str | None = None,
    request_time_ms: int | None = None,
) -> dict[str, Any]:
    """A REST API (payload 1.0) event for ``method`` on ``public_path`` (the path the client used, stage included).

    The path is ``public_path`` without its first segment when that segment is ``stage``; the resource (the
    route's template) is that path without a trailing slash, as API Gateway matches ``/whatsapp/`` to ``/whatsapp``. The
    request id is random unless given; the request time is ``request_time_ms``, else now when the id is random, else
    absent (an event given only its id is reproducible: the corpus's examples).
    """
    prefix = f"/{stage}"
    resource = public_path
    if public_path == prefix or public_path.startswith(prefix + "/"):
        resource = public_path[len(prefix) :] or "/"
    path = resource
    resource = resource.rstrip("/") or "/"
    header_map = _grouped(_pairs(headers))
    text, encoded = _body(body, base64_body)
    queries = _grouped(list(query))
    context: dict[str, Any] = {
        "resourcePath": resource,
        "httpMethod": method,
        "path": public_path,
        "stage": stage,
        "requestId": request_id or str(uuid.uuid4()),
        "domainName": host,
        "protocol": "HTTP/1.1",
    }
    if source_ip is not None:
        context["identity"] = {"sourceIp": source_ip}
    if request_id is None or request_time_ms is not None:
        context["requestTimeEpoch"] = request_time_ms if request_time_ms is not None else int(time.time() * 1000)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in header_map.items()},
        "multiValueHeaders": header_map,
        "queryStringParameters": {name: values[-1] for name, values in queries.items()} or None,
        "multiValueQueryStringParameters": queries or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": context,
        "body": text,
        "isBase64Encoded": encoded,
    }


def http_api_event(
    method: str,
    raw_path: str,
    *,
    host: str,
    headers: Headers | None = None,
    body: bytes | str | None = None,
    raw_query: str = "",
    stage: str = "prod",
    source_ip: str = "127.0.0.1",
    request_time_ms: int | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event for ``method`` on ``raw_path`` (stage included); the body base64.

    The request time (``timeEpoch``) is ``request_time_ms``; absent when not given.
    """
    header_map: dict[str, str] = {}
    for name, value in _pairs(headers):
        lowered = name.lower()
        header_map[lowered] = f"{header_map[lowered]},{value}" if lowered in header_map else value
    header_map.setdefault("host", host)
    text, encoded = _body(body, True)
    context: dict[str, Any] = {
        "domainName": host,
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip},
        "stage": stage,
    }
    if request_time_ms is not None:
        context["timeEpoch"] = request_time_ms
    return {
        "version": "2.0",
        "routeKey": f"{method} {raw_path}",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": context,
        "body": text,
        "isBase64Encoded": encoded,
    }
