"""A moto-backed AWS world for tests: the contract's tables, queues and secrets, plus readers."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from tests.support.webhooks import COMPANY_SMS, COMPANY_WA, TOKEN, USER
from tools.localaws import LocalResources, put_items, put_secrets, to_dynamo

WA_SECRET = "ai-multi-comms/whatsapp-credentials/acme/proj-1/twilio-test"
SMS_SECRET = "ai-multi-comms/sms-credentials/acme/proj-1/twilio-test"
_deserializer = TypeDeserializer()
ABSENT: Any = object()  # an override that removes the attribute from the item

# An attribute ``contract_item`` leaves out of the item.
ABSENT: Any = object()
CONTRACT_CONVERSATION_ID = f"ci-aaa-000#pi-aaa-000#0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0#{USER[1:]}"


def contract_item(**attributes: Any) -> dict[str, Any]:
    """A DynamoDB-typed conversation holding only what §2 promises (keys, GSI keys, credentials, status, channels),
    then ``attributes`` (already typed; ``ABSENT`` leaves one out)."""
    item: dict[str, Any] = {
        "primary_channel": {"S": USER},
        "conversation_id": {"S": CONTRACT_CONVERSATION_ID},
        "gsi_company_whatsapp_number": {"S": COMPANY_WA},
        "gsi_company_sms_number": {"S": COMPANY_SMS},
        "gsi_recipient_tel": {"S": USER},
        "channel_config": {"M": {"whatsapp_credentials_id": {"S": WA_SECRET}, "sms_credentials_id": {"S": SMS_SECRET}}},
        "project_status": {"S": "active"},
        "allowed_channels": {"L": [{"S": "whatsapp"}, {"S": "sms"}]},
    }
    item.update(attributes)
    return {name: value for name, value in item.items() if value is not ABSENT}


def conversation(**overrides: Any) -> dict[str, Any]:
    """A realistic conversation item (plain JSON), active and routed to its channel queue."""
    conversation_id = overrides.pop("conversation_id", f"ci-aaa-000#pi-aaa-000#{uuid.uuid4()}#{USER.lstrip('+')}")
    item: dict[str, Any] = {
        "primary_channel": USER,
        "conversation_id": conversation_id,
        "gsi_company_whatsapp_number": COMPANY_WA,
        "gsi_company_sms_number": COMPANY_SMS,
        "gsi_recipient_tel": USER,
        "recipient_tel": USER,
        "channel_config": {"whatsapp_credentials_id": WA_SECRET, "sms_credentials_id": SMS_SECRET},
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
        "messages": [{"role": "user", "content": "earlier", "timestamp": 1732100000}],
    }
    item.update(overrides)
    return {key: value for key, value in item.items() if value is not ABSENT}


@dataclass
class World:
    dynamodb: Any
    sqs: Any
    secretsmanager: Any
    resources: LocalResources

    def add_conversation(self, **overrides: Any) -> dict[str, Any]:
        item = conversation(**overrides)
        put_items(self.dynamodb, self.resources.conversations_table, [item])
        return item

    def add_user_conversation(self, user: str, prefix: str, **overrides: Any) -> dict[str, Any]:
        """Store a conversation of ``user`` (a phone number) alone, id ``{prefix}#pi-aaa-000#<uuid>#<number>``."""
        return self.add_conversation(
            conversation_id=f"{prefix}#pi-aaa-000#{uuid.uuid4()}#{user.lstrip('+')}",
            primary_channel=user,
            gsi_recipient_tel=user,
            recipient_tel=user,
            **overrides,
        )

    def add_default_secrets(self, token: str = TOKEN) -> None:
        put_secrets(
            self.secretsmanager,
            {
                WA_SECRET: {"twilio_account_sid": "AC00000000000000000000000000000000", "twilio_auth_token": token},
                SMS_SECRET: {"twilio_account_sid": "AC00000000000000000000000000000000", "twilio_auth_token": token},
            },
        )

    def set_secret(self, name: str, value: dict[str, Any]) -> None:
        self.secretsmanager.put_secret_value(SecretId=name, SecretString=json.dumps(value))

    def create_secret(self, name: str, text: str) -> None:
        """A secret with exactly this SecretString (which need not be JSON)."""
        self.secretsmanager.create_secret(Name=name, SecretString=text)

    def conversations(self) -> list[dict[str, Any]]:
        return self._scan(self.resources.conversations_table)

    def delete_conversation(self, primary_channel: str, conversation_id: str) -> None:
        key = {"primary_channel": primary_channel, "conversation_id": conversation_id}
        self.dynamodb.delete_item(TableName=self.resources.conversations_table, Key=to_dynamo(key))

    def delete_table(self, table: str) -> None:
        self.dynamodb.delete_table(TableName=table)

    def queue_url(self, name: str) -> str:
        return {
            "whatsapp": self.resources.whatsapp_queue_url,
            "sms": self.resources.sms_queue_url,
            "handoff": self.resources.handoff_queue_url,
            "email": self.resources.email_queue_url,
        }[name]

    def delete_queue(self, name: str) -> None:
        self.sqs.delete_queue(QueueUrl=self.queue_url(name))

    def all_sent(self) -> dict[str, list[tuple[dict[str, Any], int]]]:
        """Every queue's messages, by queue name."""
        return {name: self.sent(name) for name in ("whatsapp", "sms", "handoff", "email")}

    def _scan(self, table: str) -> list[dict[str, Any]]:
        items = self.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
        return [{k: _deserializer.deserialize(v) for k, v in item.items()} for item in items]

    def stage_rows(self) -> list[dict[str, Any]]:
        return self._scan(self.resources.stage_table)

    def lock_rows(self) -> list[dict[str, Any]]:
        return self._scan(self.resources.lock_table)

    def replay_rows(self) -> list[dict[str, Any]]:
        return self._scan(self.resources.replay_table)

    def put_lock(self, conversation_id: str, message_sid: str, expires_at: int) -> None:
        item = {"conversation_id": conversation_id, "message_sid": message_sid, "expires_at": expires_at}
        self.dynamodb.put_item(TableName=self.resources.lock_table, Item=to_dynamo(item))

    def sent(self, queue: str) -> list[tuple[dict[str, Any], int]]:
        """Every message in ``queue`` (delayed ones included) as (body, DelaySeconds)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[DEFAULT_ACCOUNT_ID][self.dynamodb.meta.region_name]
        found = backend.queues[queue]._messages
        return [
            (json.loads(m.body), round((m.delayed_until - m.sent_timestamp) / 1000) if m.delayed_until else 0)
            for m in found
        ]

    def sent_raw(self, queue: str) -> list[str]:
        """Every message body in ``queue``, exactly as sent."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[DEFAULT_ACCOUNT_ID][self.dynamodb.meta.region_name]
        return [m.body for m in backend.queues[queue]._messages]


def now() -> int:
    return int(time.time())
