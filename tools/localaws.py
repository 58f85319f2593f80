"""The contract's AWS resources, created in an emulator (moto in-process or its server).

Used by the tests, the dry-run's in-memory world and ``pipeline-serve``: one definition of the
conversations table (with its WhatsApp, SMS and email GSIs), the stage, lock and replay-record tables and
the four queues.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer

__all__ = ["LocalResources", "dynamo_safe", "provision", "put_items", "put_secrets", "to_dynamo"]

# (index, hash key, range key) of the conversations table's GSIs (projection ALL).
_CONVERSATION_INDEXES = (
    ("company-whatsapp-number-recipient-tel-index", "gsi_company_whatsapp_number", "gsi_recipient_tel"),
    ("company-sms-number-recipient-tel-index", "gsi_company_sms_number", "gsi_recipient_tel"),
    ("company-email-address-recipient-email-index", "gsi_company_email_address", "gsi_recipient_email"),
)
_QUEUES = ("whatsapp", "sms", "handoff", "email")


@dataclass(frozen=True)
class LocalResources:
    """Names and URLs of the provisioned resources, as the Lambda's environment would carry them."""

    conversations_table: str
    stage_table: str
    lock_table: str
    whatsapp_queue_url: str
    sms_queue_url: str
    handoff_queue_url: str
    email_queue_url: str
    replay_table: str

    def environment(self) -> dict[str, str]:
        """The contract's environment variables pointing at these resources."""
        return {
            "CONVERSATIONS_TABLE_NAME": self.conversations_table,
            "STAGE_TABLE_NAME": self.stage_table,
            "LOCK_TABLE_NAME": self.lock_table,
            "WHATSAPP_QUEUE_URL": self.whatsapp_queue_url,
            "SMS_QUEUE_URL": self.sms_queue_url,
            "HANDOFF_QUEUE_URL": self.handoff_queue_url,
            "EMAIL_QUEUE_URL": self.email_queue_url,
            "REPLAY_TABLE_NAME": self.replay_table,
        }


def _create_table(dynamodb: Any, **request: Any) -> bool:
    """Create a table; False when it already exists (provisioning again is harmless)."""
    try:
        dynamodb.create_table(**request)
    except Exception as exc:
        if _error_code(exc) != "ResourceInUseException":
            raise
        return False
    return True


def _create_keyed_table(dynamodb: Any, name: str, *key: str) -> bool:
    """Create an on-demand table keyed by the string attributes ``key`` (hash, then range); as ``_create_table``."""
    return _create_table(
        dynamodb,
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": attribute, "AttributeType": "S"} for attribute in key],
        KeySchema=[
            {"AttributeName": attribute, "KeyType": kind}
            for attribute, kind in zip(key, ("HASH", "RANGE"), strict=False)
        ],
    )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def provision(dynamodb: Any, sqs: Any, prefix: str = "") -> LocalResources:
    """Create the tables and queues (in an emulator; those that exist are kept) and return their names."""
    conversations = f"{prefix}conversations"
    _create_table(
        dynamodb,
        TableName=conversations,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in dict.fromkeys(
                ["primary_channel", "conversation_id", *(key for _, h, r in _CONVERSATION_INDEXES for key in (h, r))]
            )
        ],
        KeySchema=[
            {"AttributeName": "primary_channel", "KeyType": "HASH"},
            {"AttributeName": "conversation_id", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, hash_key, range_key in _CONVERSATION_INDEXES
        ],
    )
    stage, lock = f"{prefix}conversations-stage", f"{prefix}conversations-trigger-lock"
    new_stage = _create_keyed_table(dynamodb, stage, "conversation_id", "message_sid")
    new_lock = _create_keyed_table(dynamodb, lock, "conversation_id")
    replay = f"{prefix}conversations-replay"
    new_replay = _create_keyed_table(dynamodb, replay, "message_sid")
    for table, new in ((stage, new_stage), (lock, new_lock), (replay, new_replay)):
        if not new:
            continue
        dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    whatsapp, sms, handoff, email = (sqs.create_queue(QueueName=f"{prefix}{name}")["QueueUrl"] for name in _QUEUES)
    return LocalResources(conversations, stage, lock, whatsapp, sms, handoff, email, replay)


def dynamo_safe(value: Any) -> Any:
    """Plain JSON values as DynamoDB takes them: floats become Decimal (through their text), at any depth."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: dynamo_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [dynamo_safe(item) for item in value]
    return value


def to_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain JSON item in DynamoDB's typed form."""
    serializer = TypeSerializer()
    return {key: serializer.serialize(dynamo_safe(value)) for key, value in item.items()}


def put_items(dynamodb: Any, table: str, items: Iterable[Mapping[str, Any]]) -> int:
    """Write plain JSON items; return how many."""
    count = 0
    for item in items:
        dynamodb.put_item(TableName=table, Item=to_dynamo(item))
        count += 1
    return count


def put_secrets(secretsmanager: Any, secrets: Mapping[str, Any]) -> None:
    """Create each secret with its JSON value as SecretString (an existing one gets it as its new value)."""
    for name, value in secrets.items():
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            secretsmanager.create_secret(Name=name, SecretString=text)
        except Exception as exc:
            if _error_code(exc) != "ResourceExistsException":
                raise
            secretsmanager.put_secret_value(SecretId=name, SecretString=text)
