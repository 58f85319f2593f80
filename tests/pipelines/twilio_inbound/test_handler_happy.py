"""Accepted messages end to end through ``handler.handler``: trigger, stage row, lock row, batching,
media, status callbacks, recorded API Gateway events (contract §2, §3, §4 outcomes)."""

from __future__ import annotations

import pytest

from tests.support.expect import clock_window, parse_received_at, twiml_response
from tests.support.webhooks import (
    COMPANY_SMS,
    COMPANY_WA,
    USER,
    recorded_event,
    rest_event,
    sms_params,
    status_params,
    whatsapp_params,
)

CHANNELS = [pytest.param("whatsapp", whatsapp_params, id="whatsapp"), pytest.param("sms", sms_params, id="sms")]
OTHER_QUEUE = {"whatsapp": "sms", "sms": "whatsapp"}


@pytest.mark.parametrize(("channel", "params"), CHANNELS)
def test_message_is_staged_locked_and_triggered(world, lambda_handler, aws, outcomes, channel, params):
    item = world.add_conversation()
    world.add_default_secrets()
    form = params()

    with clock_window() as window:
        response = lambda_handler(rest_event(channel, form), None)

    assert response == twiml_response()
    assert outcomes() == [("QUEUED", None)]
    trigger = {"conversation_id": item["conversation_id"], "primary_channel": USER}
    assert world.sent(channel) == [(trigger, 10)]
    assert world.sent(OTHER_QUEUE[channel]) == [] and world.sent("handoff") == []
    [send] = aws.of("sqs.SendMessage")
    assert send["QueueUrl"] == world.queue_url(channel)
    assert send["DelaySeconds"] == 10

    [row] = world.stage_rows()
    received = parse_received_at(row.pop("received_at"))
    assert window[0] <= received <= window[1]
    expires = row.pop("expires_at")
    assert window[0] + 86400 <= expires <= window[1] + 86400
    assert row == {
        "conversation_id": item["conversation_id"],
        "message_sid": form["MessageSid"],
        "primary_channel": USER,
        "channel_type": channel,
        "body": form["Body"],
        "num_media": 0,
    }

    [lock] = world.lock_rows()
    assert lock["conversation_id"] == item["conversation_id"]
    assert lock["message_sid"] == form["MessageSid"]
    assert window[0] + 10 + 60 <= lock["expires_at"] <= window[1] + 10 + 60
    assert set(lock) == {"conversation_id", "message_sid", "expires_at", "taken_at", "trigger_due_at"}
    assert window[0] <= lock["taken_at"] <= window[1]
    assert window[0] + 10 <= lock["trigger_due_at"] <= window[1] + 10


@pytest.mark.parametrize(("channel", "params"), CHANNELS)
def test_the_trigger_is_exactly_the_contracts_text_and_nothing_else(world, lambda_handler, aws, channel, params):
    # CONTRACT §2: body exactly `{"conversation_id": "...", "primary_channel": "<user number>"}` (a consumer may
    # compare the text, not only the parsed JSON), with no message attributes.
    item = world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event(channel, params()), None)
    expected = f'{{"conversation_id": "{item["conversation_id"]}", "primary_channel": "{USER}"}}'
    assert world.sent_raw(channel) == [expected]
    [send] = aws.of("sqs.SendMessage")
    assert set(send) == {"QueueUrl", "MessageBody", "DelaySeconds"}


def test_window_buffer_and_stage_ttl_come_from_the_environment(world, cold_start):
    container = cold_start(BATCH_WINDOW_SECONDS="25", TTL_BUFFER_SECONDS="7", STAGE_TTL_SECONDS="3600")
    item = world.add_conversation()
    world.add_default_secrets()
    with clock_window() as window:
        container.handler(rest_event("sms", sms_params()), None)
    assert world.sent("sms") == [({"conversation_id": item["conversation_id"], "primary_channel": USER}, 25)]
    assert container.aws.of("sqs.SendMessage")[0]["DelaySeconds"] == 25
    [lock] = world.lock_rows()
    assert window[0] + 32 <= lock["expires_at"] <= window[1] + 32
    [row] = world.stage_rows()
    assert window[0] + 3600 <= row["expires_at"] <= window[1] + 3600


@pytest.mark.parametrize(("channel", "params"), CHANNELS)
def test_second_message_in_the_window_is_batched(world, lambda_handler, outcomes, channel, params):
    item = world.add_conversation()
    world.add_default_secrets()
    first, second = params(sid="SM" + "a" * 32, body="first"), params(sid="SM" + "b" * 32, body="second")

    assert lambda_handler(rest_event(channel, first), None) == twiml_response()
    assert lambda_handler(rest_event(channel, second), None) == twiml_response()

    assert outcomes() == [("QUEUED", None), ("BATCHED", None)]
    assert world.sent(channel) == [({"conversation_id": item["conversation_id"], "primary_channel": USER}, 10)]
    rows = sorted(world.stage_rows(), key=lambda row: row["message_sid"])
    assert [(row["message_sid"], row["body"]) for row in rows] == [
        (first["MessageSid"], "first"),
        (second["MessageSid"], "second"),
    ]
    [lock] = world.lock_rows()
    assert lock["message_sid"] == first["MessageSid"]


def test_media_only_message_stages_its_media(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    media = {
        "Body": "",
        "NumMedia": "2",
        "MessageType": "image",
        "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME0",
        "MediaContentType0": "image/jpeg",
        "MediaUrl1": "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME1",
        "MediaContentType1": "application/pdf",
    }
    response = lambda_handler(rest_event("whatsapp", whatsapp_params(**media)), None)
    assert response == twiml_response()
    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["body"] == ""
    assert row["num_media"] == 2
    assert row["media"] == [
        {"url": media["MediaUrl0"], "content_type": "image/jpeg"},
        {"url": media["MediaUrl1"], "content_type": "application/pdf"},
    ]


def test_message_without_body_field_is_accepted(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    form = whatsapp_params(MessageType="location", Latitude="51.5", Longitude="-0.12")
    del form["Body"]
    assert lambda_handler(rest_event("whatsapp", form), None) == twiml_response()
    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["body"] == ""
    assert "media" not in row


@pytest.mark.parametrize(
    ("channel", "company"),
    [pytest.param("whatsapp", COMPANY_WA, id="whatsapp"), pytest.param("sms", COMPANY_SMS, id="sms")],
)
def test_status_callback_is_acknowledged_and_nothing_is_written(world, lambda_handler, aws, outcomes, channel, company):
    world.add_conversation()
    world.add_default_secrets()
    response = lambda_handler(rest_event(channel, status_params(channel=channel)), None)

    assert response == twiml_response()
    assert outcomes() == [("STATUS_CALLBACK", None)]
    # From (the company) and To (the user) are swapped for the credential lookup.
    [query] = aws.of("dynamodb.Query")
    assert sorted(query["ExpressionAttributeValues"].values(), key=str) == sorted(
        [{"S": company}, {"S": USER}], key=str
    )
    names = dict(zip(query["ExpressionAttributeNames"].values(), query["ExpressionAttributeNames"].keys(), strict=True))
    values = query["ExpressionAttributeValues"]
    assert values[query["KeyConditionExpression"].split(f"{names['gsi_recipient_tel']} = ")[1].split()[0]] == {
        "S": USER
    }
    assert aws.names() == ["dynamodb.Query", "secretsmanager.GetSecretValue"]
    assert world.stage_rows() == [] and world.lock_rows() == []
    assert not any(world.all_sent().values())


@pytest.mark.parametrize(
    "overrides",
    [{"conversation_status": "processing_reply"}, {"project_status": "paused"}, {"hand_off_to_human": True}],
    ids=["locked", "inactive", "handed_off"],
)
def test_a_status_callback_is_acknowledged_whatever_the_rules_would_decide(
    world, lambda_handler, aws, outcomes, overrides
):
    # CONTRACT §3: once its signature is checked a status callback is acknowledged (200, empty TwiML) and nothing is
    # written: never the locked conversation's <Message>, a refusal, or a handoff.
    world.add_conversation(**overrides)
    world.add_default_secrets()

    assert lambda_handler(rest_event("whatsapp", status_params()), None) == twiml_response()

    assert outcomes() == [("STATUS_CALLBACK", None)]
    assert aws.names() == ["dynamodb.Query", "secretsmanager.GetSecretValue"]
    assert world.stage_rows() == [] and world.lock_rows() == [] and world.replay_rows() == []
    assert not any(world.all_sent().values())


def test_status_callback_with_a_bad_signature_is_rejected(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    response = lambda_handler(rest_event("whatsapp", status_params(), token="not-the-token"), None)
    assert response == twiml_response()
    assert outcomes() == [("INVALID_SIGNATURE", "INVALID_SIGNATURE")]


RECORDED = [
    ("rest-v1-execute-api-whatsapp.json", "https://abc123.execute-api.us-east-1.amazonaws.com/prod/whatsapp", "QUEUED"),
    ("rest-v1-custom-domain-sms.json", "https://hooks.example.com/twilio/sms", "QUEUED"),
    (
        "rest-v1-status-callback-whatsapp.json",
        "https://abc123.execute-api.us-east-1.amazonaws.com/prod/whatsapp",
        "STATUS_CALLBACK",
    ),
    ("http-v2-whatsapp.json", "https://abc123.execute-api.us-east-1.amazonaws.com/prod/whatsapp", "QUEUED"),
    ("function-url-v2-sms.json", "https://abcdefghijklmnopqrstuvwxyz0123.lambda-url.us-east-1.on.aws/sms", "QUEUED"),
]


@pytest.mark.parametrize(("name", "signed_url", "outcome"), RECORDED, ids=[row[0] for row in RECORDED])
def test_recorded_api_gateway_events(world, lambda_handler, outcomes, name, signed_url, outcome):
    world.add_conversation()
    world.add_default_secrets()
    assert lambda_handler(recorded_event(name, signed_url), None) == twiml_response()
    assert outcomes() == [(outcome, None)]


@pytest.mark.parametrize(("name", "signed_url", "outcome"), RECORDED[:2], ids=[row[0] for row in RECORDED[:2]])
def test_recorded_event_signed_over_another_url_is_rejected(world, lambda_handler, outcomes, name, signed_url, outcome):
    world.add_conversation()
    world.add_default_secrets()
    # The path without the stage / base path: what a naive rebuild from `path` would sign.
    wrong = signed_url.replace("/prod/", "/").replace("/twilio/", "/")
    assert lambda_handler(recorded_event(name, wrong), None) == twiml_response()
    assert outcomes() == [("INVALID_SIGNATURE", "INVALID_SIGNATURE")]


@pytest.mark.parametrize(("channel", "params"), CHANNELS)
def test_rows_have_the_contracts_dynamodb_types(world, lambda_handler, channel, params):
    """Contract §2 as DynamoDB holds it: keys and text are S, counts and epochs N in whole seconds, media L of M."""
    world.add_conversation()
    world.add_default_secrets()
    media = {"NumMedia": "1", "MediaUrl0": "https://api.twilio.com/m/ME0", "MediaContentType0": "image/png"}
    lambda_handler(rest_event(channel, params(**media)), None)

    [stage] = world.dynamodb.scan(TableName=world.resources.stage_table, ConsistentRead=True)["Items"]
    types = {name: next(iter(value)) for name, value in stage.items()}
    assert types == {
        "conversation_id": "S",
        "message_sid": "S",
        "primary_channel": "S",
        "channel_type": "S",
        "body": "S",
        "num_media": "N",
        "media": "L",
        "received_at": "S",
        "expires_at": "N",
    }
    assert stage["num_media"] == {"N": "1"}
    assert stage["media"] == {"L": [{"M": {"url": {"S": media["MediaUrl0"]}, "content_type": {"S": "image/png"}}}]}
    assert stage["expires_at"]["N"].isdigit()

    [lock] = world.dynamodb.scan(TableName=world.resources.lock_table, ConsistentRead=True)["Items"]
    assert {name: next(iter(lock[name])) for name in ("conversation_id", "message_sid", "expires_at")} == {
        "conversation_id": "S",
        "message_sid": "S",
        "expires_at": "N",
    }
    assert lock["expires_at"]["N"].isdigit()


@pytest.mark.parametrize("window", [0, 900])
def test_the_batch_windows_bounds_are_accepted_and_used(world, cold_start, window):
    """BATCH_WINDOW_SECONDS is 0 to 900 inclusive: both bounds start the container and delay the trigger by W."""
    container = cold_start(BATCH_WINDOW_SECONDS=str(window))
    item = world.add_conversation()
    world.add_default_secrets()
    with clock_window() as span:
        response = container.handler(rest_event("whatsapp", whatsapp_params()), None)
    assert response == twiml_response()
    assert container.aws.of("sqs.SendMessage")[0]["DelaySeconds"] == window
    assert world.sent("whatsapp") == [({"conversation_id": item["conversation_id"], "primary_channel": USER}, window)]
    [lock] = world.lock_rows()
    assert span[0] + window + 60 <= lock["expires_at"] <= span[1] + window + 60
