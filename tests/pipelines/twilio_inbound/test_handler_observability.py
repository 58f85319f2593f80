"""Logs, time bounds and deadlines: one JSON line per event at INFO (a line per step at DEBUG), no secrets or
personal data, bounded AWS clients, and a runner that stops starting AWS steps once the Lambda's time is spent."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
import yaml

from tests.support.clock import install_clock
from tests.support.expect import ROOT, raises_code, step_ids, steps_until, twiml_response
from tests.support.webhooks import COMPANY_SMS, COMPANY_WA, USER, rest_event, sms_params, whatsapp_params
from tests.support.world import SMS_SECRET, WA_SECRET

SECRET_TOKEN = "tok-9f8e7d6c5b4a-SECRET"
SECRET_KEY = "key-0a1b2c3d-SHARED"
BODY = "Body text that must not be logged: Zanzibar-quokka"
PIPELINE = yaml.safe_load((ROOT / "pipelines" / "twilio_inbound.yaml").read_text())
QUEUED_STEPS = step_ids()
# Members of a parallel group may end in any order.
PARALLEL = ("stage", "lock", "replay", "send", "sent")


@dataclass
class LambdaContext:
    remaining_ms: int = 6000
    aws_request_id: str = "8f5e-request-id"
    function_name: str = "inbound-webhook"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _secrets(world):
    value = json.dumps(
        {"twilio_account_sid": "AC0", "twilio_auth_token": SECRET_TOKEN, "twilio_webhook_key": SECRET_KEY}
    )
    world.create_secret(WA_SECRET, value)
    world.create_secret(SMS_SECRET, value)


def test_one_info_line_per_event_naming_every_step_and_its_status(world, lambda_handler, json_logs):
    item = world.add_conversation()
    _secrets(world)
    # The conversation id without its last segment, the user's number.
    event_conversation_id = item["conversation_id"].rsplit("#", 1)[0]

    lambda_handler(rest_event("whatsapp", whatsapp_params(body=BODY), token=SECRET_TOKEN), LambdaContext())

    lines = json_logs()
    assert [line for line in lines if line["message"] == "step"] == []  # per-step lines are DEBUG
    [event] = [line for line in lines if line["message"] == "event"]
    assert event["level"] == "INFO" and event["location"] == "runtime.app"
    assert event["outcome"] == "QUEUED" and "error_code" not in event
    assert event["conversation_id"] == event_conversation_id
    assert event["pipeline"] == "twilio_inbound" and event["status"] == 200
    assert event["function_request_id"] == "8f5e-request-id"
    assert event["timestamp"].endswith("Z")
    # Parallel members (stage, lock) may end in either order; everything else in pipeline order.
    assert sorted(event["steps"]) == sorted(QUEUED_STEPS)
    assert [s for s in event["steps"] if s not in PARALLEL] == [s for s in QUEUED_STEPS if s not in PARALLEL]
    assert event["steps"] == {step: "skipped" if step == "status_callback" else "ok" for step in QUEUED_STEPS}


def test_one_debug_line_per_step_with_status_and_duration(world, cold_start, json_logs):
    container = cold_start(LOG_LEVEL="DEBUG")
    item = world.add_conversation()
    _secrets(world)
    event_conversation_id = item["conversation_id"].rsplit("#", 1)[0]

    container.handler(rest_event("whatsapp", whatsapp_params(body=BODY), token=SECRET_TOKEN), LambdaContext())

    steps = [line for line in json_logs(logging.DEBUG) if line["message"] == "step"]
    assert sorted(line["step"] for line in steps) == sorted(QUEUED_STEPS)
    assert [s for s in (line["step"] for line in steps) if s not in PARALLEL] == [
        s for s in QUEUED_STEPS if s not in PARALLEL
    ]
    for line in steps:
        assert line["level"] == "DEBUG" and line["location"] == "engine.runner"
        assert isinstance(line["ms"], int | float) and line["ms"] >= 0
        assert line["function_request_id"] == "8f5e-request-id"  # parallel members too
        assert line["status"] == ("skipped" if line["step"] == "status_callback" else "ok")
        if line["step"] not in ("parse", "lookup"):
            assert line["conversation_id"] == event_conversation_id


def test_error_step_logs_its_code_and_later_steps_do_not_run(world, lambda_handler, json_logs):
    world.add_conversation(project_status="paused")
    _secrets(world)
    lambda_handler(rest_event("sms", sms_params(), token=SECRET_TOKEN), LambdaContext())
    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert event["outcome"] == event["error_code"] == "PROJECT_INACTIVE"
    assert list(event["steps"].items())[-1] == ("rules", "PROJECT_INACTIVE")
    assert list(event["steps"]) == steps_until("rules")


def _run_everything(world, handler):
    """Every kind of ending, so that every log line the pipeline writes is produced at least once."""
    sent = [
        rest_event("whatsapp", whatsapp_params(sid="SM" + "1" * 32, body=BODY), token=SECRET_TOKEN),  # QUEUED
        rest_event("whatsapp", whatsapp_params(sid="SM" + "2" * 32, body=BODY), token=SECRET_TOKEN),  # BATCHED
        rest_event("whatsapp", whatsapp_params(sid="SM" + "3" * 32, body=BODY), token="forged"),  # re-fetch, INVALID
        rest_event("whatsapp", whatsapp_params(body=BODY), signature=""),  # INVALID before AWS
        rest_event(
            "whatsapp",
            whatsapp_params(sid="SM" + "4" * 32, body=BODY),
            token=SECRET_KEY,
            algorithm="HMAC_SHA256",
            headers={"X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_SHA256"},
        ),
        rest_event("sms", sms_params(body=BODY), token=SECRET_TOKEN),  # handed off (sms conversation below)
        rest_event("email", whatsapp_params(body=BODY)),  # PARSING_ERROR JSON
    ]
    for event in sent:
        handler(event, LambdaContext())


def test_no_token_body_or_phone_number_in_info_logs(world, lambda_handler, json_logs):
    world.add_conversation()
    other = "+447700900777"
    world.add_conversation(primary_channel=other, gsi_recipient_tel=other, recipient_tel=other, hand_off_to_human=True)
    _secrets(world)
    _run_everything(world, lambda_handler)
    lambda_handler(rest_event("sms", sms_params(body=BODY, From=other), token=SECRET_TOKEN), LambdaContext())

    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in json_logs())
    assert text.count('"message": "event"') == 8
    for forbidden in (
        SECRET_TOKEN,
        SECRET_KEY,
        BODY,
        "Zanzibar-quokka",
        USER,
        USER[1:],
        USER[2:],
        other,
        other[1:],
        COMPANY_WA[1:],
        COMPANY_SMS[1:],
    ):
        assert forbidden not in text, forbidden


def test_no_token_in_any_log_line_even_at_debug(world, cold_start, json_logs):
    container = cold_start(LOG_LEVEL="DEBUG")
    assert logging.getLogger().level == logging.DEBUG
    world.add_conversation()
    _secrets(world)
    logging.getLogger("engine.test").debug("debug lines are captured")
    _run_everything(world, container.handler)
    lines = json_logs(logging.DEBUG)
    assert any(line["level"] == "DEBUG" for line in lines)
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    assert SECRET_TOKEN not in text and SECRET_KEY not in text


# A channel rule without the shipped one's to_array(): a number in allowed_channels makes it fail at run time.
_FRAGILE_CHANNEL_RULE = """ruleset: channel
kind: validation
rules:
  - id: channel_not_allowed
    when: "!contains(conversation.allowed_channels || `[]`, request.channel)"
    then: {error: CHANNEL_NOT_ALLOWED, message: the conversation does not allow this channel}
"""


def test_internal_error_logs_no_personal_data(world, task_root, json_logs):
    container = task_root({"rules/20_channel.yaml": _FRAGILE_CHANNEL_RULE})
    world.add_conversation(allowed_channels=7)
    _secrets(world)
    container.handler(rest_event("whatsapp", whatsapp_params(body=BODY), token=SECRET_TOKEN), LambdaContext())
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in json_logs())
    assert "INTERNAL_ERROR" in text
    for forbidden in (SECRET_TOKEN, BODY, USER, USER[1:]):
        assert forbidden not in text


# AWS clients: the bounds of pipelines/twilio_inbound.yaml `aws:`.
def _bounds(client):
    config = client.meta.config
    return config.connect_timeout, config.read_timeout, config.retries


def test_aws_clients_are_bounded_as_the_pipeline_says(world, lambda_handler, aws):
    bounds = PIPELINE["aws"]
    expected = (
        bounds["connect_timeout_seconds"],
        bounds["read_timeout_seconds"],
        # The pipeline's max_attempts counts the first try: botocore's total_max_attempts.
        {"mode": "standard", "total_max_attempts": bounds["max_attempts"]},
    )
    assert {name: _bounds(client) for name, client in aws.clients.items()} == dict.fromkeys(aws.clients, expected)


def test_aws_client_bounds_follow_the_configuration(world, task_root):
    text = (ROOT / "pipelines" / "twilio_inbound.yaml").read_text()
    edited = (
        text.replace("connect_timeout_seconds: 0.5", "connect_timeout_seconds: 0.25")
        .replace("read_timeout_seconds: 1.0", "read_timeout_seconds: 0.75")
        .replace("max_attempts: 2", "max_attempts: 3")
    )
    assert edited != text
    container = task_root({"pipelines/twilio_inbound.yaml": edited})
    for client in container.aws.clients.values():
        assert _bounds(client) == (0.25, 0.75, {"mode": "standard", "total_max_attempts": 3})


# Deadlines: the runner does not start an AWS step once the invocation's budget is spent. The application's
# clock is a stepped one, so the time a slow call takes is what the test says, whatever the machine's load.
def _application():
    import handler

    return handler._application


def test_no_time_left_means_the_first_aws_step_raises_before_calling(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    raises_code(
        "DB_TRANSIENT_ERROR", lambda: lambda_handler(rest_event("whatsapp", whatsapp_params()), LambdaContext(300))
    )
    assert aws.names() == []
    assert outcomes() == [("DB_TRANSIENT_ERROR", "DB_TRANSIENT_ERROR")]


@pytest.mark.parametrize(
    ("slow_call", "code", "calls_before"),
    [
        ("dynamodb.Query", "SECRET_FETCH_TRANSIENT_ERROR", ["dynamodb.Query"]),
        # The signature step may re-fetch the secret: it carries the secret's transient code.
        (
            "secretsmanager.GetSecretValue",
            "SECRET_FETCH_TRANSIENT_ERROR",
            ["dynamodb.Query", "secretsmanager.GetSecretValue"],
        ),
        (
            "dynamodb.BatchGetItem",
            "STAGE_WRITE_TRANSIENT_ERROR",
            ["dynamodb.Query", "secretsmanager.GetSecretValue", "dynamodb.BatchGetItem"],
        ),
    ],
)
def test_budget_spent_mid_run_raises_the_next_steps_transient_code(
    world, lambda_handler, aws, outcomes, slow_call, code, calls_before
):
    world.add_conversation()
    world.add_default_secrets()
    clock = install_clock(_application())
    aws.before(slow_call, lambda params: clock.advance(0.6))
    # 1000 ms left, 500 ms kept back for the answer: a 500 ms budget, spent by the slow call.
    raises_code(code, lambda: lambda_handler(rest_event("whatsapp", whatsapp_params()), LambdaContext(1000)))
    assert aws.names() == calls_before
    assert outcomes() == [(code, code)]
    assert world.stage_rows() == [] and world.lock_rows() == []


def test_budget_spent_before_the_send_releases_the_lock(world, lambda_handler, aws):
    world.add_conversation()
    world.add_default_secrets()
    clock = install_clock(_application())
    puts = []

    def spend_after_both_writes_started(params):
        # Stage, lock and replay record are issued together; once all are under way, the budget runs out.
        puts.append(params["TableName"])
        if len(puts) == 3:
            clock.advance(0.6)

    aws.before("dynamodb.PutItem", spend_after_both_writes_started)
    raises_code(
        "QUEUE_TRANSIENT_ERROR", lambda: lambda_handler(rest_event("whatsapp", whatsapp_params()), LambdaContext(1000))
    )
    assert aws.count("sqs.SendMessage") == 0
    assert world.lock_rows() == [] and world.replay_rows() == []  # taken, then released
    assert len(world.stage_rows()) == 1
    assert world.sent("whatsapp") == []


def test_just_enough_budget_runs_to_the_end(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    clock = install_clock(_application())
    aws.before("dynamodb.BatchGetItem", lambda params: clock.advance(0.45))
    lambda_handler(rest_event("whatsapp", whatsapp_params()), LambdaContext(1000))
    assert outcomes() == [("QUEUED", None)]


def test_pipeline_deadline_caps_a_generous_lambda_budget(world, task_root):
    text = (ROOT / "pipelines" / "twilio_inbound.yaml").read_text()
    container = task_root(
        {"pipelines/twilio_inbound.yaml": text.replace("deadline_seconds: 4", "deadline_seconds: 0.5")}
    )
    world.add_conversation()
    world.add_default_secrets()
    clock = install_clock(_application())
    container.aws.before("dynamodb.BatchGetItem", lambda params: clock.advance(0.6))
    raises_code(
        "STAGE_WRITE_TRANSIENT_ERROR",
        lambda: container.handler(rest_event("whatsapp", whatsapp_params()), LambdaContext(900_000)),
    )


def test_enough_time_left_runs_normally(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), LambdaContext(5000)) == twiml_response()
    assert outcomes() == [("QUEUED", None)]


def test_a_losing_error_logs_the_aws_cause_and_powertools_keys(world, lambda_handler, aws, json_logs, monkeypatch):
    # Issue 15 (6): STAGE_WRITE_ERROR answers 200; on-call must tell AccessDenied from a missing table.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-67891233-abcdef012345678912345678;Parent=1;Sampled=0")
    world.add_conversation()
    world.add_default_secrets()
    aws.fail("dynamodb.PutItem", "AccessDeniedException", 400, where=lambda p: "expires_at" in p.get("Item", {}))
    lambda_handler(rest_event("whatsapp", whatsapp_params()), LambdaContext())
    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert (event["error_code"], event["error_cause"]) == ("STAGE_WRITE_ERROR", "AccessDeniedException")
    assert {"timestamp", "level", "location", "service", "cold_start", "function_request_id"} <= set(event)
    assert event["xray_trace_id"] == "1-67891233-abcdef012345678912345678"
    assert event["function_request_id"] == "8f5e-request-id" and isinstance(event["cold_start"], bool)


@pytest.mark.parametrize(("env", "level"), [({}, logging.INFO), ({"LOG_LEVEL": "WARNING"}, logging.WARNING)])
def test_log_level_defaults_to_info(world, cold_start, env, level):
    """LOG_LEVEL (contract §1) sets the root logger's level; unset, it is INFO."""
    root = logging.getLogger()
    before = root.level
    try:
        root.setLevel(logging.DEBUG)
        cold_start(**env)
        assert root.level == level
    finally:
        root.setLevel(before)


def test_every_line_of_an_event_after_its_parse_names_its_message(world, cold_start, json_logs):
    # The WARNING of a failed undo (a trigger lock left held by a message that sent nothing) is the line on-call
    # reads first; without the message's id it points at no message to replay.
    world.add_conversation()
    _secrets(world)
    container = cold_start()
    sid = "SM" + "5" * 32
    lock_table = world.resources.lock_table
    container.aws.fail("sqs.SendMessage", "AccessDenied", 403, times=1)
    container.aws.fail("dynamodb.DeleteItem", "ThrottlingException", where=lambda call: call["TableName"] == lock_table)
    raises_code(
        "TRIGGER_LOCK_TRANSIENT_ERROR",
        lambda: container.handler(
            rest_event("whatsapp", whatsapp_params(sid=sid, body=BODY), token=SECRET_TOKEN), LambdaContext()
        ),
    )

    lines = json_logs()
    assert any(line["message"].startswith("compensation") and line["level"] == "WARNING" for line in lines)
    assert [line["message"] for line in lines if line.get("message_sid") != sid] == []
