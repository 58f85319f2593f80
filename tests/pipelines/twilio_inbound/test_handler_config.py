"""Configuration-driven outcomes end to end: ROUTING_ERROR from rule sets and targets, rules reading
DynamoDB numbers, the JSON response family's status codes, and cold starts with broken configuration."""

from __future__ import annotations

import json
import logging

import pytest

from engine.errors import ConfigError, InternalError, RetryableFailure, StepFailure, TransientFault
from engine.runner import RunResult
from runtime.apigateway import proxy_response
from tests.support.clock import install_clock, slow_machine
from tests.support.expect import CONTRACT_CODES, CONTRACT_TRANSIENT_CODES, ROOT, twiml_response
from tests.support.webhooks import EMPTY_TWIML, rest_event, sms_params, whatsapp_params

ROUTING = (ROOT / "rules" / "40_routing.yaml").read_text()
PIPELINE = (ROOT / "pipelines" / "twilio_inbound.yaml").read_text()
ROUTING_NO_CHANNEL_RULE = ROUTING.split("  - id: channel_queue")[0] + "tests: []\n"
ROUTING_TO_EMAIL = ROUTING.replace("then: {target_from: request.channel}", "then: {target: email}")
PIPELINE_WITH_EMAIL = PIPELINE.replace(
    "targets:\n",
    "targets:\n  email:\n    queue_url: ${env:EXTRA_QUEUE_URL:-}\n    delay_seconds: 0\n    lock: false\n"
    "    message: trigger\n",
)
ROUTING_FROM_ITEM = ROUTING.replace(
    "then: {target_from: request.channel}", "then: {target_from: conversation.route_to}"
)


def _without_tests(text: str) -> str:
    return text.split("\ntests:")[0] + "\ntests: []\n"


@pytest.mark.parametrize(
    ("case", "files", "conversation"),
    [
        ("no_rule_matches_and_no_default", {"rules/40_routing.yaml": ROUTING_NO_CHANNEL_RULE}, {}),
        (
            "target_has_no_queue",
            {
                "rules/40_routing.yaml": _without_tests(ROUTING_TO_EMAIL),
                "pipelines/twilio_inbound.yaml": PIPELINE_WITH_EMAIL,
            },
            {},
        ),
        (
            "computed_target_is_unknown",
            {"rules/40_routing.yaml": _without_tests(ROUTING_FROM_ITEM)},
            {"route_to": "nowhere"},
        ),
        (
            "computed_target_is_not_a_string",
            {"rules/40_routing.yaml": _without_tests(ROUTING_FROM_ITEM)},
            {"route_to": 5},
        ),
    ],
)
def test_routing_error(world, task_root, outcomes, case, files, conversation):
    container = task_root(files)
    world.add_conversation(**conversation)
    world.add_default_secrets()
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert outcomes() == [("ROUTING_ERROR", "ROUTING_ERROR")]
    assert world.stage_rows() == [] and world.lock_rows() == []
    assert not any(world.all_sent().values())


@pytest.mark.parametrize(
    ("files", "conversation", "cause"),
    [
        ({"rules/40_routing.yaml": ROUTING_NO_CHANNEL_RULE}, {}, "routing:no-match"),
        (
            {
                "rules/40_routing.yaml": _without_tests(ROUTING_TO_EMAIL),
                "pipelines/twilio_inbound.yaml": PIPELINE_WITH_EMAIL,
            },
            {},
            "routing:no-queue",
        ),
        ({"rules/40_routing.yaml": _without_tests(ROUTING_FROM_ITEM)}, {"route_to": "nowhere"}, "routing:not-a-target"),
        ({"rules/40_routing.yaml": _without_tests(ROUTING_FROM_ITEM)}, {"route_to": 5}, "routing:not-a-target"),
    ],
    ids=["no rule matches", "target has no queue", "computed target unknown", "computed target not text"],
)
def test_a_routing_errors_event_line_names_what_to_repair(world, task_root, json_logs, files, conversation, cause):
    """The event line's ``error_cause`` for each ROUTING_ERROR, as docs/deploy.md and observability.md name them
    (only ``no-match`` was played end to end in tests/runtime/test_oncall_runbook.py), never the value at fault."""
    container = task_root(files)
    world.add_conversation(**conversation)
    world.add_default_secrets()
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    (line,) = [line for line in json_logs() if line["message"] == "event"]
    assert (line["error_code"], line.get("error_cause")) == ("ROUTING_ERROR", cause)
    assert "nowhere" not in json.dumps(line)


def test_a_target_gets_its_queue_from_the_environment(world, task_root, outcomes):
    files = {
        "rules/40_routing.yaml": _without_tests(ROUTING_TO_EMAIL),
        "pipelines/twilio_inbound.yaml": PIPELINE_WITH_EMAIL,
    }
    container = task_root(files, EXTRA_QUEUE_URL=world.queue_url("sms"))
    item = world.add_conversation()
    world.add_default_secrets()
    container.handler(rest_event("whatsapp", whatsapp_params()), None)
    assert outcomes() == [("QUEUED", None)]
    assert world.sent("sms") == [
        ({"conversation_id": item["conversation_id"], "primary_channel": item["primary_channel"]}, 0)
    ]
    assert world.lock_rows() == []


def test_rules_see_dynamodb_numbers_as_json_numbers(world, task_root, outcomes):
    # JMESPath functions reject Decimal ("unknown" type); rules see what their inline tests give them.
    rule = (
        "  - id: big_budget\n"
        "    when: \"to_string(conversation.ai_config.max_tokens) == '512' && max(conversation.scores) > `4`"
        " && type(conversation.task_complete) == 'number'\"\n"
        "    then: {target: handoff}\n"
    )
    routing = _without_tests(ROUTING).replace("rules:\n", "rules:\n" + rule, 1)
    container = task_root({"rules/40_routing.yaml": routing})
    world.add_conversation(scores=[1, 4.5, 3])
    world.add_default_secrets()
    container.handler(rest_event("sms", sms_params()), None)
    assert outcomes() == [("HANDED_OFF", None)]


def test_a_rule_that_fails_at_run_time_is_an_internal_error(world, task_root, outcomes):
    rule = '  - id: broken\n    when: "abs(conversation.project_status) > `1`"\n    then: {target: handoff}\n'
    container = task_root({"rules/40_routing.yaml": _without_tests(ROUTING).replace("rules:\n", "rules:\n" + rule, 1)})
    world.add_conversation()
    world.add_default_secrets()
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert outcomes() == [("INTERNAL_ERROR", "INTERNAL_ERROR")]
    assert not any(world.all_sent().values())


@pytest.mark.parametrize(
    ("unset", "variable"),
    [("CONVERSATIONS_TABLE_NAME", "CONVERSATIONS_TABLE_NAME"), ("HANDOFF_QUEUE_URL", "HANDOFF_QUEUE_URL")],
)
def test_missing_environment_fails_the_cold_start_naming_file_and_line(world, monkeypatch, cold_start, unset, variable):
    monkeypatch.delenv(unset)
    with pytest.raises(ConfigError) as caught:
        cold_start()
    [problem] = [p for p in caught.value.problems if variable in p.message and p.file.endswith("twilio_inbound.yaml")]
    assert problem.line > 1


@pytest.mark.parametrize(
    ("window", "says"),
    [
        ("-1", "-1 is out of range: it must be at least 0"),
        ("901", "901 is out of range: it must be at most 900"),
        ("ten", "expected integer, got string 'ten'"),
    ],
)
def test_batch_window_outside_0_to_900_fails_the_cold_start(world, cold_start, window, says):
    with pytest.raises(ConfigError) as caught:
        cold_start(BATCH_WINDOW_SECONDS=window)
    # Both channel targets take their delay from the window: each is refused where it is written, and for the window.
    lines = enumerate(PIPELINE.splitlines(), 1)
    written = [n for n, line in lines if "delay_seconds: ${env:BATCH_WINDOW_SECONDS" in line]
    problems = [p for p in caught.value.problems if p.file.endswith("twilio_inbound.yaml")]
    assert [(p.line, p.message.split(": ", 1)[0]) for p in problems] == list(
        zip(written, ["targets.whatsapp.delay_seconds", "targets.sms.delay_seconds"], strict=True)
    )
    assert all(says in p.message for p in problems), [p.message for p in problems]


URL = "is not an http(s) URL of a standard queue"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        # Each of these cold-started, then answered every message 200 with a final error: every message lost.
        ("WHATSAPP_QUEUE_URL", "whatsapp-queue", URL),  # the queue's name, not its URL
        ("WHATSAPP_QUEUE_URL", "arn:aws:sqs:us-east-1:123456789012:whatsapp", URL),
        ("HANDOFF_QUEUE_URL", " ", URL),
        # SQS refuses every trigger sent to a FIFO queue (no MessageGroupId): QUEUE_ERROR for every message.
        ("SMS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/sms.fifo", "not .fifo"),
        ("LOCK_TABLE_NAME", " ", "is not a table name"),
        ("STAGE_TABLE_NAME", "conversations stage", "is not a table name"),
    ],
)
def test_a_malformed_table_name_or_queue_url_fails_the_cold_start(world, cold_start, variable, value, expected):
    with pytest.raises(ConfigError) as caught:
        cold_start(**{variable: value})
    pipeline = (ROOT / "pipelines" / "twilio_inbound.yaml").read_text().splitlines()
    [problem] = [p for p in caught.value.problems if p.file.endswith("twilio_inbound.yaml")]
    assert expected in problem.message
    assert f"${{env:{variable}}}" in pipeline[problem.line - 1]  # the line that reads the variable


def test_handler_finds_its_configuration_whatever_the_working_directory(world, tmp_path, monkeypatch, cold_start):
    monkeypatch.chdir(tmp_path)
    container = cold_start()
    world.add_conversation()
    world.add_default_secrets()
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()


# The response families, as configured: every code, for a Twilio channel and for a non-Twilio path.
JSON_STATUS = {
    "PARSING_ERROR": 400,
    "INVALID_SIGNATURE": 403,
    "PROJECT_INACTIVE": 403,
    "CHANNEL_NOT_ALLOWED": 403,
    "CONVERSATION_NOT_FOUND": 404,
    "CONVERSATION_LOCKED": 409,
    **dict.fromkeys(CONTRACT_TRANSIENT_CODES, 503),
}


def _result(code: str) -> RunResult:
    if code in CONTRACT_TRANSIENT_CODES:
        error: StepFailure | TransientFault | InternalError = TransientFault(code, "a fault")
    elif code == "INTERNAL_ERROR":
        error = InternalError("step", RuntimeError())
    else:
        error = StepFailure(code, "a failure", "wait please" if code == "CONVERSATION_LOCKED" else None)
    return RunResult(code, error, {})


@pytest.mark.parametrize("code", sorted(CONTRACT_CODES))
def test_json_family_answers_every_code_with_its_status(lambda_handler, code):
    import handler

    response = proxy_response(handler._application.pipeline("twilio_inbound").responses.respond(_result(code), None))
    assert response["statusCode"] == JSON_STATUS.get(code, 500)
    assert response["headers"] == {"Content-Type": "application/json"}
    body = json.loads(response["body"])
    assert body["status"] == "error" and body["error_code"] == code and isinstance(body["message"], str)


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
@pytest.mark.parametrize("code", sorted(CONTRACT_CODES))
def test_twiml_family_answers_or_raises_every_code(lambda_handler, channel, code):
    import handler

    policy = handler._application.pipeline("twilio_inbound").responses
    if code in CONTRACT_TRANSIENT_CODES:
        with pytest.raises(RetryableFailure, match=code):
            policy.respond(_result(code), channel)
        return
    response = proxy_response(policy.respond(_result(code), channel))
    expected = EMPTY_TWIML
    if code == "CONVERSATION_LOCKED":
        expected = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>wait please</Message></Response>'
    assert response == twiml_response(expected)


def test_the_twilio_pipeline_knows_exactly_the_contract_codes(lambda_handler):
    import handler

    errors = handler._application.pipeline("twilio_inbound").errors
    assert set(errors) == CONTRACT_CODES
    assert {code for code, spec in errors.items() if spec.transient} == CONTRACT_TRANSIENT_CODES


def test_the_contracts_environment_alone_runs_the_pipeline_without_replay_records(
    world, cold_start, monkeypatch, caplog
):
    """REPLAY_TABLE_NAME is beyond the contract: without it the function starts, says the replay table has no name,
    and handles messages as the contract states (no replay records; the conversation read is a consistent GetItem)."""
    world.add_conversation()
    world.add_default_secrets()
    monkeypatch.delenv("REPLAY_TABLE_NAME", raising=False)
    caplog.set_level(logging.WARNING)
    container = cold_start()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "pipeline twilio_inbound: tables.replay has no name: what needs it is off" in warnings

    assert container.handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert len(world.stage_rows()) == 1 and len(world.sent("whatsapp")) == 1
    assert world.replay_rows() == []
    [read] = container.aws.of("dynamodb.GetItem")
    assert read["ConsistentRead"] is True
    assert "dynamodb.BatchGetItem" not in container.aws.names()
    # A re-delivery is still one stage row (the contract's only promise here), and no replay table is ever named.
    container.handler(rest_event("whatsapp", whatsapp_params()), None)
    assert len(world.stage_rows()) == 1


def test_a_table_a_step_needs_declared_without_a_name_fails_the_cold_start(world, task_root):
    pipeline = PIPELINE.replace("  lock: ${env:LOCK_TABLE_NAME}", '  lock: ""')
    with pytest.raises(ConfigError) as caught:
        task_root({"pipelines/twilio_inbound.yaml": pipeline})
    messages = [p.message for p in caught.value.problems if p.file.endswith("twilio_inbound.yaml")]
    assert messages and all("table 'lock' has no name" in message for message in messages), messages


def test_a_copied_pipeline_file_that_keeps_its_pipeline_name_fails_the_cold_start(world, task_root):
    # Loaded by name, the copy would replace the original: POST …/whatsapp would run the copy.
    copy = PIPELINE.replace("channels: [whatsapp, sms]", "channels: [letters]")
    with pytest.raises(ConfigError) as caught:
        task_root({"pipelines/zz_letters_inbound.yaml": copy})
    (copied,) = [p for p in caught.value.problems if p.file.endswith("zz_letters_inbound.yaml")]
    assert (copied.line, copied.column) == (2, 11)
    assert copied.message.startswith("pipeline 'twilio_inbound' is also declared by ")
    assert copied.message.endswith("pipelines/twilio_inbound.yaml:2:11; give each pipeline file its own name")


def test_a_channel_two_pipeline_files_serve_is_refused_at_the_line_of_each_claim(world, task_root):
    """Defect: the cold start placed the clash at FILE:1:1; the check and the build name the channels: entry."""
    letters = (
        ROOT / "tests" / "fixtures" / "broken" / "shared_channel" / "pipelines" / "letters_inbound.yaml"
    ).read_text()
    with pytest.raises(ConfigError) as caught:
        task_root({"pipelines/letters_inbound.yaml": letters})
    found = {(p.file.rsplit("/", 2)[-1], p.line, p.column): p.message for p in caught.value.problems}
    assert sorted(found) == [("email_inbound.yaml", 8, 12), ("letters_inbound.yaml", 4, 21)], found
    assert found["letters_inbound.yaml", 4, 21].startswith("channel 'email' is also served by pipeline email_inbound (")


def test_aws_region_alone_names_the_region(world, monkeypatch, tmp_path):
    """CONTRACT §1 names `AWS_REGION` as the region's variable: without AWS_DEFAULT_REGION (which boto3 reads; Lambda
    sets both) or any AWS config, the function still starts in that region and handles messages."""
    import handler

    world.add_conversation()
    world.add_default_secrets()
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    slow_machine(monkeypatch, 1.0)  # about the region, not time: a loaded machine must not spend the deadline
    application = handler.reload()
    install_clock(application)  # the deadline clock stands still, as the conftest's containers' does
    assert application.services.queues.client.meta.region_name == "us-east-1"
    assert handler.handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert len(world.stage_rows()) == 1 and len(world.sent("whatsapp")) == 1


def test_a_task_root_without_its_rules_directory_fails_the_cold_start_in_the_functions_own_terms(
    world, task_root, tmp_path
):
    """Defect: the cold start of a package built without rules/ said "pass the directory holding the rules/*.yaml
    files with --rules DIR", an option of the command-line tools that a Lambda function has no way to be given."""
    import shutil

    shutil.rmtree(tmp_path / "task-root" / "rules")  # the fixture's task root, as a package built without it
    with pytest.raises(ConfigError) as caught:
        task_root({})
    (missing,) = [p for p in caught.value.problems if p.file.endswith("rules")]
    assert (missing.line, missing.column) == (1, 1)
    assert missing.message.startswith("rules directory not found; ")
    assert "--rules" not in missing.message and "DIR" not in missing.message
