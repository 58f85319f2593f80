"""Email conversations exactly as docs/email.md describes them, with only those attributes, and values of
another DynamoDB type: decided with the contract's JSON answers, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.email import COMPANY_EMAIL, EMAIL_SECRET, KEY, USER_EMAIL, email_event

CONVERSATION_ID = f"ci-aaa-000#pi-aaa-000#0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0#{USER_EMAIL}"


def documented_item(**attributes: Any) -> dict[str, Any]:
    """A DynamoDB-typed email conversation holding only the attributes docs/email.md names as required."""
    item: dict[str, Any] = {
        "primary_channel": {"S": USER_EMAIL},
        "conversation_id": {"S": CONVERSATION_ID},
        "gsi_company_email_address": {"S": COMPANY_EMAIL},
        "gsi_recipient_email": {"S": USER_EMAIL},
        "channel_config": {"M": {"email_credentials_id": {"S": EMAIL_SECRET}}},
        "project_status": {"S": "active"},
        "allowed_channels": {"L": [{"S": "email"}]},
    }
    item.update(attributes)
    return item


def handle(world, lambda_handler, item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    world.dynamodb.put_item(TableName=world.resources.conversations_table, Item=item)
    world.secretsmanager.create_secret(
        Name=EMAIL_SECRET, SecretString=json.dumps({"sendgrid_webhook_public_key": KEY.public_key})
    )
    response = lambda_handler(email_event(), None)
    return response["statusCode"], json.loads(response["body"])


def test_an_item_with_only_the_documented_attributes_is_queued(world, lambda_handler, outcomes):
    assert handle(world, lambda_handler, documented_item()) == (200, {"status": "ok", "outcome": "QUEUED"})
    assert world.sent("email") == [({"conversation_id": CONVERSATION_ID, "primary_channel": USER_EMAIL}, 10)]


@pytest.mark.parametrize(
    "value", [{"M": {"email": {"BOOL": True}}}, {"N": "1"}, {"S": "email-disabled"}], ids=["map", "number", "text"]
)
def test_allowed_channels_of_another_type_is_refused_not_a_crash(world, lambda_handler, outcomes, value):
    status, body = handle(world, lambda_handler, documented_item(allowed_channels=value))

    assert (status, body["error_code"]) == (403, "CHANNEL_NOT_ALLOWED")
    assert outcomes() == [("CHANNEL_NOT_ALLOWED", "CHANNEL_NOT_ALLOWED")]
    assert world.all_sent() == {"whatsapp": [], "sms": [], "handoff": [], "email": []}
    assert world.stage_rows() == []
