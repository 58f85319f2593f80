"""EMF metrics: the document's shape (as CloudWatch validates it) and what the handler emits per event."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from engine.runner import TraceEntry
from runtime.logs import JsonFormatter
from runtime.metrics import DEFAULT_NAMESPACE, EmfMetrics
from tests.support.expect import emf_document_of
from tests.support.webhooks import USER, rest_event, sms_params, whatsapp_params
from tests.support.world import WA_SECRET

TRACE = [
    TraceEntry("parse", "ok", 0.2),
    TraceEntry("status_callback", "skipped", 0.01),
    TraceEntry("signature", "INVALID_SIGNATURE", 0.4),
]


def assert_valid_emf(doc: dict[str, Any]) -> None:
    """The rules CloudWatch applies before it extracts metrics from a log line (EMF specification)."""
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    assert meta["CloudWatchMetrics"]
    for directive in meta["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
        assert 0 < len(directive["Metrics"]) <= 100
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(doc[name], str) and doc[name], f"dimension {name} has no string value"
        for metric in directive["Metrics"]:
            assert metric["Unit"] in {"Count", "Milliseconds"}
            value = doc[metric["Name"]]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), metric["Name"]


def metrics_of(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Metric name -> its dimension names, over every directive."""
    found: dict[str, list[str]] = {}
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for metric in directive["Metrics"]:
            found[metric["Name"]] = sorted({name for dims in directive["Dimensions"] for name in dims})
    return found


def test_an_error_document_counts_the_outcome_and_the_error_code_and_times_the_steps_that_ran() -> None:
    doc = emf_document_of(
        "NS",
        "twilio_inbound",
        "INVALID_SIGNATURE",
        "INVALID_SIGNATURE",
        ms=1.5,
        trace=TRACE,
        cold_start=False,
        timestamp_ms=1_795_000_000_000,
        properties={"function_request_id": "req-1", "conversation_id": "ci-1#pi-1#u"},
    )
    assert_valid_emf(doc)
    assert metrics_of(doc) == {
        "Invocations": ["Outcome", "Pipeline"],
        "Latency": ["Pipeline"],
        "StepLatency.parse": ["Pipeline"],
        "StepLatency.signature": ["Pipeline"],
        "Errors": ["ErrorCode", "Pipeline"],
    }
    assert (doc["Pipeline"], doc["Outcome"], doc["ErrorCode"]) == (
        "twilio_inbound",
        "INVALID_SIGNATURE",
        "INVALID_SIGNATURE",
    )
    assert (doc["Invocations"], doc["Errors"], doc["Latency"], doc["StepLatency.signature"]) == (1, 1, 1.5, 0.4)
    assert (doc["function_request_id"], doc["conversation_id"]) == ("req-1", "ci-1#pi-1#u")
    assert {d["Namespace"] for d in doc["_aws"]["CloudWatchMetrics"]} == {"NS"}
    assert "ColdStart" not in doc and "StepLatency.status_callback" not in doc


def test_errors_are_one_total_series_and_one_per_code_and_the_stack_is_a_dimension() -> None:
    doc = emf_document_of(
        "NS",
        "p",
        "QUEUE_ERROR",
        "QUEUE_ERROR",
        ms=1.0,
        trace=[],
        cold_start=False,
        timestamp_ms=1_795_000_000_000,
        stack="hooks-prod",
    )
    assert_valid_emf(doc)
    [errors] = [d for d in doc["_aws"]["CloudWatchMetrics"] if d["Metrics"][0]["Name"] == "Errors"]
    assert errors["Dimensions"] == [["Stack", "Pipeline"], ["Stack", "Pipeline", "ErrorCode"]]
    assert all(dims[0] == "Stack" for d in doc["_aws"]["CloudWatchMetrics"] for dims in d["Dimensions"])
    assert doc["Stack"] == "hooks-prod"
    assert EmfMetrics.from_env({"STACK_NAME": "hooks-prod"}).stack == "hooks-prod"  # type: ignore[union-attr]


def test_a_success_document_has_no_error_dimension() -> None:
    doc = emf_document_of("NS", "p", "QUEUED", None, ms=3.0, trace=[], cold_start=True, timestamp_ms=1_795_000_000_000)
    assert_valid_emf(doc)
    assert set(metrics_of(doc)) == {"Invocations", "Latency", "ColdStart"}
    assert "ErrorCode" not in doc and "Errors" not in doc and "request_id" not in doc


def test_only_the_first_invocation_of_a_container_is_a_cold_start() -> None:
    lines: list[str] = []
    metrics = EmfMetrics("NS", lines.append, clock=lambda: 1_795_000_000.25)
    first = json.loads(metrics.record("p", "QUEUED", None, ms=1.0, trace=[]))
    second = json.loads(metrics.record("p", "BATCHED", None, ms=1.0, trace=[]))
    assert [json.loads(line) for line in lines] == [first, second]
    assert first["ColdStart"] == 1 and "ColdStart" not in second
    assert first["_aws"]["Timestamp"] == 1_795_000_000_250
    assert "\n" not in lines[0]


@pytest.mark.parametrize(
    ("env", "namespace"),
    [
        ({}, DEFAULT_NAMESPACE),
        ({"POWERTOOLS_METRICS_NAMESPACE": "Tools"}, "Tools"),
        ({"METRICS_NAMESPACE": "Mine", "POWERTOOLS_METRICS_NAMESPACE": "Tools"}, "Mine"),
        ({"METRICS_ENABLED": "false", "METRICS_NAMESPACE": "Mine"}, None),
    ],
)
def test_the_namespace_and_the_switch_come_from_the_environment(env: dict[str, str], namespace: str | None) -> None:
    metrics = EmfMetrics.from_env(env)
    assert (metrics.namespace if metrics else None) == namespace


def emitted(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The EMF documents the handler wrote to stdout since the last call."""
    docs = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def context(request_id: str) -> SimpleNamespace:
    return SimpleNamespace(aws_request_id=request_id, get_remaining_time_in_millis=lambda: 6000)


def test_the_handler_writes_one_document_per_event(world, lambda_handler, capsys) -> None:
    item = world.add_conversation()
    world.add_default_secrets()
    capsys.readouterr()

    lambda_handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "a" * 32)), context("req-queued"))
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "b" * 32)), context("req-batched"))
    lambda_handler(rest_event("sms", sms_params(), signature="forged"), context("req-forged"))
    queued, batched, forged = emitted(capsys)

    for doc in (queued, batched, forged):
        assert_valid_emf(doc)
    assert (queued["Outcome"], queued["function_request_id"], queued["ColdStart"]) == ("QUEUED", "req-queued", 1)
    assert (batched["Outcome"], "ColdStart" in batched) == ("BATCHED", False)
    assert (forged["Outcome"], forged["ErrorCode"], forged["Errors"]) == ("INVALID_SIGNATURE", "INVALID_SIGNATURE", 1)
    # The conversation is named, without the user's number its id ends with.
    assert queued["conversation_id"] == item["conversation_id"].rsplit("#", 1)[0]
    assert {"StepLatency.parse", "StepLatency.lookup", "StepLatency.send"} <= set(metrics_of(queued))
    assert "StepLatency.send" not in batched and "StepLatency.status_callback" not in queued


def test_a_missing_secret_is_counted_as_secret_fetch_failed(world, lambda_handler, capsys) -> None:
    world.add_conversation()
    capsys.readouterr()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), context("req-1"))
    (doc,) = emitted(capsys)
    assert_valid_emf(doc)
    assert (doc["ErrorCode"], doc["Errors"], doc["Pipeline"]) == ("SECRET_FETCH_FAILED", 1, "twilio_inbound")


@pytest.fixture
def every_line() -> Iterator[list[str]]:
    """Every log record of every logger, DEBUG included, as the Lambda would print it."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def test_no_log_line_or_metrics_document_carries_the_token(world, lambda_handler, capsys, every_line) -> None:
    token = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    rotated = token[::-1]
    world.add_conversation()
    world.add_default_secrets(token=token)
    capsys.readouterr()
    lambda_handler(rest_event("whatsapp", whatsapp_params(), token=token), context("r1"))
    # Rotation: the cached token fails, the re-fetched one passes.
    world.set_secret(WA_SECRET, {"twilio_account_sid": "AC0", "twilio_auth_token": rotated})
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "c" * 32), token=rotated), context("r2"))
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "d" * 32), token="wrong"), context("r3"))
    out = capsys.readouterr()
    docs = [json.loads(line) for line in out.out.splitlines() if '"_aws"' in line]
    assert [doc["Outcome"] for doc in docs] == ["QUEUED", "BATCHED", "INVALID_SIGNATURE"]
    assert any('"decision": "valid after re-fetch"' in line for line in every_line)
    lines = every_line + out.out.splitlines() + out.err.splitlines()
    for secret in (token, rotated):
        assert not [line for line in lines if secret in line]
    info = [line for line in every_line if '"level": "DEBUG"' not in line]
    assert not [line for line in info if USER in line or "Hello there" in line]


def test_an_event_the_handler_raises_for_still_writes_its_document(world, lambda_handler, aws, capsys) -> None:
    world.add_conversation()
    world.add_default_secrets()
    aws.fail("sqs.SendMessage", "ThrottlingException", 400)
    capsys.readouterr()
    with pytest.raises(Exception, match="QUEUE_TRANSIENT_ERROR"):
        lambda_handler(rest_event("whatsapp", whatsapp_params()), context("req-raised"))
    (doc,) = emitted(capsys)
    assert_valid_emf(doc)
    assert (doc["Outcome"], doc["ErrorCode"], doc["function_request_id"]) == ("QUEUE_TRANSIENT_ERROR",) * 2 + (
        "req-raised",
    )
