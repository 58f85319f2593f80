"""Email conversations and signed SendGrid Inbound Parse events for the email pipeline's tests.

The conversation item shape the email pipeline assumes (docs/email.md): ``primary_channel`` is the user's
address (lower case), the email GSI ``company-email-address-recipient-email-index`` is keyed by
``gsi_company_email_address`` (the parse address mail is sent to) and ``gsi_recipient_email`` (the user),
and ``channel_config.email_credentials_id`` names the secret holding ``sendgrid_webhook_public_key``.
"""

from __future__ import annotations

import email.parser
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support.world import World
from tools.sendgrid_events import RECIPIENT, Email, KeyPair, inbound_parse_body, inbound_parse_event, signed

USER_EMAIL = "jane.sender@example.net"
COMPANY_EMAIL = RECIPIENT
EMAIL_SECRET = "ai-multi-comms/email-credentials/acme/proj-1/sendgrid-test"
HOST = "hooks.example.com"
KEY = KeyPair()


def email_conversation(**overrides: Any) -> dict[str, Any]:
    """A realistic email conversation item (plain JSON), active and routed to the email queue."""
    item: dict[str, Any] = {
        "primary_channel": USER_EMAIL,
        "conversation_id": f"ci-aaa-000#pi-aaa-000#{uuid.uuid4()}#{USER_EMAIL}",
        "gsi_company_email_address": COMPANY_EMAIL,
        "gsi_recipient_email": USER_EMAIL,
        "recipient_email": USER_EMAIL,
        "channel_config": {"email_credentials_id": EMAIL_SECRET},
        "project_status": "active",
        "allowed_channels": ["email"],
        "conversation_status": "open",
        "hand_off_to_human": False,
        "auto_queue_reply_message": False,
        "created_at": "2026-11-20T10:00:00Z",
        "task_complete": 0,
        "messages": [{"role": "user", "content": "earlier", "timestamp": 1732100000}],
    }
    item.update(overrides)
    return item


def add_email_world(world: World, key: KeyPair = KEY, **overrides: Any) -> dict[str, Any]:
    """Store an email conversation and its tenant's SendGrid key; the item."""
    item = email_conversation(**overrides)
    from tools.localaws import put_items

    put_items(world.dynamodb, world.resources.conversations_table, [item])
    world.secretsmanager.create_secret(
        Name=EMAIL_SECRET, SecretString='{"sendgrid_webhook_public_key": "' + key.public_key + '"}'
    )
    return item


def add_user_conversation(world: World, user: str, prefix: str) -> dict[str, Any]:
    """Store a conversation of ``user`` alone (id ``{prefix}#pi-aaa-000#<uuid>#{user}``); the item."""
    from tools.localaws import put_items

    item = email_conversation(
        conversation_id=f"{prefix}#pi-aaa-000#{uuid.uuid4()}#{user}",
        primary_channel=user,
        gsi_recipient_email=user,
        recipient_email=user,
    )
    put_items(world.dynamodb, world.resources.conversations_table, [item])
    return item


def email_event(
    email: Email | None = None,
    *,
    key: KeyPair = KEY,
    timestamp: int | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/prod/email",
) -> dict[str, Any]:
    """A REST API event carrying ``email`` as SendGrid posts it, signed with ``key`` (now, by default)."""
    data, content_type = inbound_parse_body(email or Email())
    request = signed(key, data, content_type, timestamp=int(time.time()) if timestamp is None else timestamp)
    return inbound_parse_event(request, host=HOST, path=path, headers=headers, body=body)


def posted(data: bytes, content_type: str) -> dict[str, Any]:
    """The API Gateway event of a signed Inbound Parse body (``data`` as ``raw_mime_body`` or a test writes it)."""
    return inbound_parse_event(signed(KEY, data, content_type), host=HOST)


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The status and the JSON body of the function's response."""
    return response["statusCode"], json.loads(response["body"])


@contextmanager
def header_blocks_read() -> Iterator[list[bytes]]:
    """Every header block ``email.parser.BytesHeaderParser`` parses inside the ``with`` block, in a list that grows:
    what reading a multipart body's parts costs (each block takes the standard library tens of microseconds)."""
    read: list[bytes] = []
    parse = email.parser.BytesHeaderParser.parsebytes

    def counted(self: email.parser.BytesHeaderParser, text: bytes, headersonly: bool = False) -> Any:
        read.append(text)
        return parse(self, text, headersonly)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(email.parser.BytesHeaderParser, "parsebytes", counted)
        yield read
