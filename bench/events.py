"""Signed Twilio webhooks (API Gateway REST events) and conversation items, for a benchmark world."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

__all__ = ["TOKEN", "Tenant", "conversation", "history", "whatsapp_event"]

TOKEN = "bench-auth-token-0123456789abcdef"
HOST = "hooks.example.com"
STAGE = "prod"
ACCOUNT = "AC" + "0" * 32


@dataclass(frozen=True)
class Tenant:
    """One company WhatsApp number and the secret that holds its auth token."""

    company_number: str = "+14155238886"
    secret_name: str = "ai-multi-comms/whatsapp-credentials/acme/proj-1/twilio-bench"

    def secret_value(self) -> dict[str, str]:
        """The secret's JSON value."""
        return {"twilio_account_sid": ACCOUNT, "twilio_auth_token": TOKEN}


def user_number(index: int) -> str:
    """A distinct E.164 user number per index."""
    return f"+4475{index:08d}"


def history(entries: int) -> list[dict[str, Any]]:
    """A ``messages`` history of ``entries`` realistic turns (about 300 bytes each)."""
    text = "Thanks, could you tell me more about the opening hours and the parking options nearby? " * 3
    return [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"{n}: {text}", "timestamp": 1732100000 + n}
        for n in range(entries)
    ]


def conversation(index: int, tenant: Tenant, *, entries: int = 1, **overrides: Any) -> dict[str, Any]:
    """An active conversation item (plain JSON) for user ``index``, routed to its channel queue."""
    user = user_number(index)
    item: dict[str, Any] = {
        "primary_channel": user,
        "conversation_id": f"ci-aaa-000#pi-aaa-000#bench-{index:06d}#{user.lstrip('+')}",
        "gsi_company_whatsapp_number": tenant.company_number,
        "gsi_company_sms_number": "+15005550006",
        "gsi_recipient_tel": user,
        "recipient_tel": user,
        "channel_config": {"whatsapp_credentials_id": tenant.secret_name, "sms_credentials_id": tenant.secret_name},
        "project_status": "active",
        "allowed_channels": ["whatsapp", "sms"],
        "conversation_status": "open",
        "hand_off_to_human": False,
        "auto_queue_reply_message": False,
        "auto_queue_reply_message_from_number": None,
        "created_at": "2026-11-20T10:00:00Z",
        "task_complete": 0,
        "ai_config": {"assistant_id": "asst_1", "temperature": 0.2, "max_tokens": 512},
        "company_rep": {"name": "Sam", "role": "agent"},
        "messages": history(entries),
    }
    item.update(overrides)
    return item


def whatsapp_event(index: int, tenant: Tenant, message: int = 0) -> dict[str, Any]:
    """A signed WhatsApp message from user ``index`` (``message`` makes the MessageSid distinct)."""
    user = user_number(index)
    sid = f"SM{index:016d}{message:016d}"
    params = {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Jane Doe",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": user.lstrip("+"),
        "SmsStatus": "received",
        "Body": f"Hello, message {message}",
        "To": f"whatsapp:{tenant.company_number}",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": f"whatsapp:{user}",
        "ApiVersion": "2010-04-01",
    }
    path = f"/{STAGE}/whatsapp"
    signature = RequestValidator(TOKEN).compute_signature(f"https://{HOST}{path}", params)
    headers = {
        "Host": HOST,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-Proto": "https",
        "X-Twilio-Signature": signature,
    }
    return {
        "resource": "/whatsapp",
        "path": "/whatsapp",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {"path": path, "stage": STAGE, "domainName": HOST, "httpMethod": "POST"},
        "body": urlencode(list(params.items())),
        "isBase64Encoded": False,
    }
