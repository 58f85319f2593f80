"""Build API Gateway events carrying Twilio webhooks, signed with the twilio library itself."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from twilio.request_validator import RequestValidator

TOKEN = "12345"
WEBHOOK_KEY = "shared-key-secret-0123456789"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
HOST = "hooks.example.com"
STAGE = "prod"
COMPANY_WA = "+14155238886"
COMPANY_SMS = "+15005550006"
USER = "+14155550123"
ACCOUNT = "AC00000000000000000000000000000000"


class MultiDict:
    """The minimal multi-dict the validator reads (``getall``), for repeated form keys."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = list(pairs)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(dict.fromkeys(name for name, _ in self._pairs))

    def __len__(self) -> int:
        return len(self._pairs)

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


def whatsapp_params(sid: str = "SM" + "1" * 32, body: str = "Hello there! 👋", **extra: str) -> dict[str, str]:
    params = {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Jane Doe",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": USER.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": f"whatsapp:{COMPANY_WA}",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": f"whatsapp:{USER}",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def sms_params(sid: str = "SM" + "2" * 32, body: str = "Hi, is this open?", **extra: str) -> dict[str, str]:
    params = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "94105",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": COMPANY_SMS,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": USER,
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def sign(
    url: str, params: Mapping[str, str] | list[tuple[str, str]], token: str = TOKEN, algorithm: str | None = None
) -> str:
    data: Any = MultiDict(params) if isinstance(params, list) else dict(params)
    return str(RequestValidator(token).compute_signature(url, data, algorithm))


def status_params(sid: str = "SM" + "3" * 32, status: str = "delivered", channel: str = "whatsapp") -> dict[str, str]:
    """A status callback: From is the company's number, To the user's."""
    prefix = "whatsapp:" if channel == "whatsapp" else ""
    company = COMPANY_WA if channel == "whatsapp" else COMPANY_SMS
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": ACCOUNT,
        "From": f"{prefix}{company}",
        "To": f"{prefix}{USER}",
        "ApiVersion": "2010-04-01",
    }


def rest_event(
    channel: str,
    params: Mapping[str, str] | list[tuple[str, str]],
    *,
    token: str = TOKEN,
    signature: str | None = None,
    host: str = HOST,
    public_path: str | None = None,
    base64_body: bool = False,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, list[str]] | None = None,
    body: str | None = None,
    signed_url: str | None = None,
    algorithm: str | None = None,
    method: str = "POST",
) -> dict[str, Any]:
    """A REST API (payload 1.0) event, signed over https://{host}{public_path} (or ``signed_url``)."""
    path = public_path or f"/{STAGE}/{channel}"
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    form = body if body is not None else urlencode(pairs)
    url = f"https://{host}{path}"
    if query:
        url += "?" + urlencode([(k, v) for k, values in query.items() for v in values])
    url = signed_url or url
    signed: Any = params if isinstance(params, list) else dict(params)
    sig = signature if signature is not None else sign(url, signed, token, algorithm)
    all_headers = {
        "Host": host,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-Proto": "https",
        "X-Twilio-Signature": sig,
        "I-Twilio-Idempotency-Token": "idem-1",
    }
    all_headers.update(headers or {})
    return {
        "resource": f"/{channel}",
        "path": f"/{channel}",
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": dict(query) if query else None,
        "requestContext": {"path": path, "stage": STAGE, "domainName": host, "httpMethod": method},
        "body": base64.b64encode(form.encode()).decode() if base64_body else form,
        "isBase64Encoded": base64_body,
    }


def http_api_event(
    channel: str,
    params: Mapping[str, str],
    *,
    token: str = TOKEN,
    host: str = "abc123.execute-api.us-east-1.amazonaws.com",
    raw_path: str | None = None,
    raw_query: str = "",
    signed_url: str | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event: lower-case headers, base64 form body."""
    path = raw_path or f"/{STAGE}/{channel}"
    url = signed_url or f"https://{host}{path}" + (f"?{raw_query}" if raw_query else "")
    form = urlencode(list(params.items()))
    return {
        "version": "2.0",
        "routeKey": f"POST /{channel}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {
            "host": host,
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": sign(url, dict(params), token),
        },
        "requestContext": {"domainName": host, "http": {"method": "POST", "path": path}, "stage": STAGE},
        "body": base64.b64encode(form.encode()).decode(),
        "isBase64Encoded": True,
    }


EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"


def event_form(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The form pairs carried by an event's body."""
    body = event["body"] or ""
    text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    return parse_qsl(text, keep_blank_values=True)


def recorded_event(name: str, signed_url: str, token: str = TOKEN) -> dict[str, Any]:
    """A recorded event from ``tests/events/``, its signature recomputed over ``signed_url``."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    signature = sign(signed_url, event_form(event), token)
    for key in ("headers", "multiValueHeaders"):
        for header in event.get(key) or {}:
            if header.lower() == "x-twilio-signature":
                event[key][header] = [signature] if key == "multiValueHeaders" else signature
    return event
