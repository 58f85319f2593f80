"""The deployed function's environment gone wrong in ways the cold start can know: it refuses, naming what to fix."""

from __future__ import annotations

import json
import logging

import pytest

from engine.errors import ConfigError
from runtime import tracing
from tests.support.expect import ROOT, twiml_response
from tests.support.webhooks import TOKEN, USER, rest_event, whatsapp_params
from tests.support.world import WA_SECRET
from tools.localaws import to_dynamo

PIPELINE_LINES = (ROOT / "pipelines" / "twilio_inbound.yaml").read_text().splitlines()


@pytest.mark.parametrize(
    "url",
    [
        "https://sqs.eu-west-1.amazonaws.com/123456789012/whatsapp",
        "https://eu-west-1.queue.amazonaws.com/123456789012/whatsapp",
        "https://vpce-0a1b2c3d-4e5f6a7b.sqs.eu-west-1.vpce.amazonaws.com/123456789012/whatsapp",
    ],
)
def test_a_queue_url_in_another_region_than_the_functions_fails_the_cold_start(world, cold_start, url):
    """SQS answers a queue URL of another region than the client's endpoint `InvalidAddress`, a final error: every
    message would be answered 200 with QUEUE_ERROR (lost). The function's region is us-east-1 here."""
    with pytest.raises(ConfigError) as caught:
        cold_start(WHATSAPP_QUEUE_URL=url)
    [problem] = caught.value.problems
    assert problem.file.endswith("twilio_inbound.yaml")
    assert "${env:WHATSAPP_QUEUE_URL}" in PIPELINE_LINES[problem.line - 1]
    assert "eu-west-1" in problem.message and "us-east-1" in problem.message


@pytest.mark.parametrize(
    "url",
    [
        "https://queue.amazonaws.com/123456789012/whatsapp",  # the legacy form of us-east-1
        "https://us-east-1.queue.amazonaws.com/123456789012/whatsapp",
        "http://sqs.eu-west-1.localhost.localstack.cloud:4566/000000000000/whatsapp",  # an emulator's: not checked
    ],
)
def test_a_queue_url_in_the_functions_region_or_of_an_emulator_starts(world, cold_start, url):
    assert cold_start(WHATSAPP_QUEUE_URL=url).handler is not None


@pytest.fixture
def root_level():
    """The root logger's level, put back after the test (a cold start sets it from LOG_LEVEL)."""
    root = logging.getLogger()
    before = root.level
    yield root
    root.setLevel(before)


@pytest.mark.parametrize("value", ["verbose", "TRACE", "10"])
def test_a_log_level_that_is_no_level_is_info_and_said_at_the_cold_start(
    world, cold_start, json_logs, root_level, value
):
    """Before, an unknown LOG_LEVEL was INFO without a word: the operator who set it never learnt it was ignored."""
    cold_start(LOG_LEVEL=value)
    assert root_level.level == logging.INFO
    [line] = [line for line in json_logs(logging.ERROR) if "LOG_LEVEL" in line["message"]]
    assert repr(value) in line["message"] and "INFO" in line["message"]


def test_a_log_level_with_blanks_around_it_is_that_level(world, cold_start, json_logs, root_level):
    cold_start(LOG_LEVEL=" warning\n")
    assert root_level.level == logging.WARNING
    assert not [line for line in json_logs(logging.ERROR) if "LOG_LEVEL" in line["message"]]


@pytest.mark.parametrize("value", ["disabled", "enabled", "maybe"])
def test_a_tracing_setting_that_is_neither_true_nor_false_is_off_and_said(
    world, cold_start, json_logs, monkeypatch, value
):
    """docs/observability.md: tracing is on when TRACING_ENABLED is true, or when it is unset (in Lambda). Before, any
    other value counted as unset, so `TRACING_ENABLED=disabled` traced every invocation, without a word."""
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1")
    try:
        cold_start(TRACING_ENABLED=value)
        assert not tracing.enabled()
    finally:
        tracing.reset()
    [line] = [line for line in json_logs(logging.ERROR) if "TRACING_ENABLED" in line["message"]]
    assert repr(value) in line["message"]


@pytest.mark.parametrize("prefix", ["\ufeff", "\ufeff\n  "])
def test_a_secret_saved_with_a_byte_order_mark_is_read(world, lambda_handler, outcomes, prefix):
    """A secret written from a file an editor saved with a UTF-8 byte order mark (`--secret-string file://…`) starts
    with U+FEFF, which RFC 8259 lets a reader ignore. Before, every message of that tenant was SECRET_FETCH_FAILED."""
    world.add_conversation()
    world.create_secret(
        WA_SECRET, prefix + json.dumps({"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": TOKEN})
    )
    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert outcomes() == [("QUEUED", None)]
    assert len(world.sent("whatsapp")) == 1


def test_a_lock_row_without_expires_at_is_no_lease(world, lambda_handler, outcomes):
    """A lock row another writer left without `expires_at` (the contract's lease end, DynamoDB's TTL attribute) was
    held for ever: TTL never deletes it, so every later message of the conversation was BATCHED behind it and none
    ever triggered, a success outcome no alarm watches."""
    item = world.add_conversation()
    world.add_default_secrets()
    row = {"conversation_id": item["conversation_id"], "message_sid": "SM" + "e" * 32}
    world.dynamodb.put_item(TableName=world.resources.lock_table, Item=to_dynamo(row))

    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)

    assert outcomes() == [("QUEUED", None)]
    assert world.sent("whatsapp") == [({"conversation_id": item["conversation_id"], "primary_channel": USER}, 10)]
    [lock] = world.lock_rows()
    assert lock["message_sid"] == whatsapp_params()["MessageSid"] and "expires_at" in lock


@pytest.mark.parametrize("address", ["169.254.79.129", "169.254.79.129:abc", "127.0.0.1:70000"])
def test_a_daemon_address_that_is_no_udp_address_leaves_tracing_off_and_said(
    world, cold_start, json_logs, outcomes, monkeypatch, address
):
    """Before, a daemon address without a port failed the cold start with `invalid literal for int()` (no variable
    named: every message answered 502), and a port above 65535 failed every sampled invocation as it was traced."""
    world.add_conversation()
    world.add_default_secrets()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1")
    try:
        container = cold_start(TRACING_ENABLED="true", AWS_XRAY_DAEMON_ADDRESS=address)
        assert not tracing.enabled()
        assert container.handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    finally:
        tracing.reset()
    assert outcomes() == [("QUEUED", None)]
    [line] = [line for line in json_logs(logging.ERROR) if "AWS_XRAY_DAEMON_ADDRESS" in line["message"]]
    assert repr(address) in line["message"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STAGE_TABLE_NAME", "conversations/stage"),  # DynamoDB answers ValidationException to every write
        ("LOCK_TABLE_NAME", "lk"),  # shorter than DynamoDB's 3 characters
        ("CONVERSATIONS_TABLE_NAME", "conversations:prod"),
        ("STAGE_TABLE_NAME", "arn:aws:dynamodb:us-east-1:123456789012:stage"),  # an ARN without table/
    ],
)
def test_a_table_name_dynamodb_refuses_fails_the_cold_start(world, cold_start, variable, value):
    """Each passed the cold start, then every message was answered 200 with a final error (ValidationException)."""
    with pytest.raises(ConfigError) as caught:
        cold_start(**{variable: value})
    problems = [p for p in caught.value.problems if p.file.endswith("twilio_inbound.yaml")]
    assert [f"${{env:{variable}}}" in PIPELINE_LINES[p.line - 1] for p in problems] == [True]
    assert "is not a table name" in problems[0].message


def test_a_table_arn_is_a_table_name(world, cold_start):
    """DynamoDB takes a table's ARN wherever it takes its name."""
    assert cold_start(STAGE_TABLE_NAME="arn:aws:dynamodb:us-east-1:123456789012:table/conversations-stage").handler


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
def test_a_handoff_queue_that_is_a_channel_queue_fails_the_cold_start(world, cold_start, channel):
    """HANDOFF_QUEUE_URL set to a channel queue's URL started, and every handoff (a conversation a human must take)
    went, as the full context, to the queue whose consumer answers automatically, each message answered 200."""
    with pytest.raises(ConfigError) as caught:
        cold_start(HANDOFF_QUEUE_URL=world.queue_url(channel))
    [problem] = [p for p in caught.value.problems if p.file.endswith("twilio_inbound.yaml")]
    assert "${env:HANDOFF_QUEUE_URL}" in PIPELINE_LINES[problem.line - 1]
    assert "handoff" in problem.message and channel in problem.message
