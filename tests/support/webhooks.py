"""Twilio webhooks for the tests: form parameters, and API Gateway events (``tools.events``) signed with twilio."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from steps.twilio.signature import sign as twilio_sign
from tools import events

TOKEN = "12345"
WEBHOOK_KEY = "shared-key-secret-0123456789"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
HOST = "hooks.example.com"
STAGE = "prod"
COMPANY_WA = "+14155238886"
COMPANY_SMS = "+15005550006"
USER = "+14155550123"
ACCOUNT = "AC00000000000000000000000000000000"


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
    """The X-Twilio-Signature of ``params`` posted to ``url`` (twilio's own computation, ``steps.twilio``)."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    return twilio_sign(url, pairs, token, algorithm)


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
    """A REST API (payload 1.0) event (``tools.events``), signed over https://{host}{public_path} or ``signed_url``."""
    path = public_path or f"/{STAGE}/{channel}"
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    query_pairs = [(name, value) for name, values in (query or {}).items() for value in values]
    url = f"https://{host}{path}" + (f"?{urlencode(query_pairs)}" if query_pairs else "")
    sig = signature if signature is not None else sign(signed_url or url, pairs, token, algorithm)
    all_headers = {
        "Host": host,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-Proto": "https",
        "X-Twilio-Signature": sig,
        "I-Twilio-Idempotency-Token": "idem-1",
    }
    all_headers.update(headers or {})
    return events.rest_event(
        method,
        path,
        host=host,
        headers=all_headers,
        body=body if body is not None else urlencode(pairs),
        stage=STAGE,
        query=query_pairs,
        base64_body=base64_body,
        source_ip=None,
        request_id="req-1",
    )


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
    """An HTTP API (payload 2.0) event (``tools.events``): lower-case headers, base64 form body."""
    path = raw_path or f"/{STAGE}/{channel}"
    url = signed_url or f"https://{host}{path}" + (f"?{raw_query}" if raw_query else "")
    headers = {
        "host": host,
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": sign(url, dict(params), token),
    }
    body = urlencode(list(params.items()))
    return events.http_api_event("POST", path, host=host, headers=headers, body=body, raw_query=raw_query, stage=STAGE)


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
