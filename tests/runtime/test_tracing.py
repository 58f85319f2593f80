"""X-Ray: off unless asked; when on, real subsegment documents reach the daemon address over UDP."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import tracing
from tests.support.clock import install_clock
from tests.support.expect import step_ids
from tests.support.webhooks import rest_event, whatsapp_params

TRACE_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
LAMBDA_SEGMENT = "53995c3f42cd8ad8"
# Every step of a queued message but the status-callback exit, which is skipped (skipped steps are not traced).
STEPS = set(step_ids()) - {"status_callback"}


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    """A UDP socket standing in for the X-Ray daemon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.3)
    try:
        yield sock
    finally:
        sock.close()
        tracing.reset()


def received(sock: socket.socket) -> list[dict[str, Any]]:
    """Every document sent to the daemon so far."""
    documents = []
    while True:
        try:
            datagram = sock.recv(65535)
        except TimeoutError:
            return documents
        header, body = datagram.decode().split("\n", 1)
        assert json.loads(header) == {"format": "json", "version": 1}
        documents.append(json.loads(body))


def traced(cold_start, daemon: socket.socket, sampled: str = "1") -> Any:
    """A container started with active tracing, inside a sampled (or unsampled) invocation.

    Its deadline clock stands still: these tests are about what is traced, and a loaded machine must not spend the
    pipeline's time budget (a step refused for want of time traces, and answers, something else).
    """
    import handler

    container = cold_start(
        TRACING_ENABLED="true",
        AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{daemon.getsockname()[1]}",
        _X_AMZN_TRACE_ID=f"Root={TRACE_ROOT};Parent={LAMBDA_SEGMENT};Sampled={sampled}",
    )
    install_clock(handler._application)
    return container


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.2:2000"}, False),
        ({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.2:2000", "_X_AMZN_TRACE_ID": "Root=1-a-b"}, True),
        ({"AWS_XRAY_DAEMON_ADDRESS": "a:1", "_X_AMZN_TRACE_ID": "b", "TRACING_ENABLED": "false"}, False),
        ({"TRACING_ENABLED": "true"}, True),
        ({"TRACING_ENABLED": "1", "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.2:2000"}, True),
    ],
)
def test_tracing_is_wanted_only_when_asked(env: dict[str, str], expected: bool) -> None:
    assert tracing.wanted(env) is expected


def test_the_trace_header_and_the_daemon_address_are_read_as_lambda_sets_them() -> None:
    header = tracing.TraceHeader.parse(f"Root={TRACE_ROOT};Parent={LAMBDA_SEGMENT};Sampled=1;Lineage=a:1")
    assert header == tracing.TraceHeader(TRACE_ROOT, LAMBDA_SEGMENT, True)
    assert tracing.TraceHeader.parse(f"Root={TRACE_ROOT};Sampled=1") is None
    assert tracing.TraceHeader.parse(f"Root={TRACE_ROOT};Parent={LAMBDA_SEGMENT};Sampled=0").sampled is False
    assert tracing.daemon_address("169.254.79.129:2000") == ("169.254.79.129", 2000)
    assert tracing.daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001") == ("127.0.0.2", 2001)


def test_when_off_the_hook_is_one_shared_no_op() -> None:
    tracing.reset()
    first, second = tracing.subsegment("parse"), tracing.subsegment("signature")
    assert first is second
    with first as entered:
        assert entered is None
    with pytest.raises(KeyError), tracing.subsegment("x"):
        raise KeyError("errors pass through")


def test_a_traced_container_sends_step_and_aws_call_subsegments(world, cold_start, daemon) -> None:
    world.add_conversation()
    world.add_default_secrets()
    container = traced(cold_start, daemon)
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None)["statusCode"] == 200

    documents = received(daemon)
    assert all(d["trace_id"] == TRACE_ROOT and d["type"] == "subsegment" for d in documents)
    assert all(d["start_time"] <= d["end_time"] for d in documents)
    steps = {d["name"]: d for d in documents if d["namespace"] == "local"}
    # Every step that ran (the skipped status_callback did not), stage and lock from a worker thread too.
    assert set(steps) == STEPS
    assert {step["parent_id"] for step in steps.values()} == {LAMBDA_SEGMENT}
    calls = sorted(
        (
            d["name"],
            d["aws"]["operation"],
            d["aws"].get("table_name")
            or d["aws"].get("queue_url")
            or ",".join(d["aws"].get("table_names", []))
            or None,
            d["parent_id"],
        )
        for d in documents
        if d["namespace"] == "aws"
    )
    resources = world.resources
    assert calls == sorted(
        [
            ("dynamodb", "Query", resources.conversations_table, steps["lookup"]["id"]),
            ("secretsmanager", "GetSecretValue", None, steps["auth_token"]["id"]),
            (
                "dynamodb",
                "BatchGetItem",
                ",".join(sorted([resources.conversations_table, resources.replay_table])),
                steps["conversation"]["id"],
            ),
            ("dynamodb", "PutItem", resources.stage_table, steps["stage"]["id"]),
            ("dynamodb", "PutItem", resources.lock_table, steps["lock"]["id"]),
            ("dynamodb", "PutItem", resources.replay_table, steps["replay"]["id"]),
            ("sqs", "SendMessage", resources.whatsapp_queue_url, steps["send"]["id"]),
            ("dynamodb", "PutItem", resources.lock_table, steps["sent"]["id"]),
        ]
    )
    assert all(d["http"]["response"]["status"] == 200 for d in documents if d["namespace"] == "aws")
    assert not [d for d in documents if d.get("fault") or d.get("error")]


def test_refusals_are_errors_and_throttled_calls_are_faults_of_their_step(world, cold_start, daemon) -> None:
    world.add_conversation()
    world.add_default_secrets()
    container = traced(cold_start, daemon)
    container.handler(rest_event("whatsapp", whatsapp_params(), signature="forged"), None)
    (signature,) = [d for d in received(daemon) if d["name"] == "signature"]
    assert signature["error"] is True and "fault" not in signature
    assert signature["cause"]["exceptions"][0]["message"] == "INVALID_SIGNATURE"

    container.aws.fail("sqs.SendMessage", "ThrottlingException", 400)
    with pytest.raises(Exception, match="QUEUE_TRANSIENT_ERROR"):
        container.handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "9" * 32)), None)
    documents = received(daemon)
    (send,) = [d for d in documents if d["name"] == "send"]
    (call,) = [d for d in documents if d["name"] == "sqs"]
    assert (call["throttle"], call["error"], call["parent_id"]) == (True, True, send["id"])
    assert send["fault"] is True and send["cause"]["exceptions"][0]["message"] == "QUEUE_TRANSIENT_ERROR"


def test_an_unsampled_invocation_sends_nothing(world, cold_start, daemon) -> None:
    world.add_conversation()
    world.add_default_secrets()
    container = traced(cold_start, daemon, sampled="0")
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None)["statusCode"] == 200
    assert tracing.enabled() and tracing.subsegment("x") is tracing.subsegment("y")
    assert received(daemon) == []


def test_a_container_without_tracing_sends_nothing(world, cold_start, daemon, monkeypatch) -> None:
    import handler

    world.add_conversation()
    world.add_default_secrets()
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", f"127.0.0.1:{daemon.getsockname()[1]}")
    container = cold_start(TRACING_ENABLED="false", _X_AMZN_TRACE_ID=f"Root={TRACE_ROOT};Parent=ab;Sampled=1")
    install_clock(handler._application)  # its deadline clock stands still, as in ``traced``
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None)["statusCode"] == 200
    assert not tracing.enabled()
    assert received(daemon) == []


@pytest.mark.parametrize(
    ("operation", "code", "outcome"),
    [
        ("dynamodb.Query", "ProvisionedThroughputExceededException", "DB_TRANSIENT_ERROR"),
        ("dynamodb.Query", "RequestLimitExceeded", "DB_TRANSIENT_ERROR"),
        ("secretsmanager.GetSecretValue", "ThrottlingException", "SECRET_FETCH_TRANSIENT_ERROR"),
    ],
)
def test_every_throttling_answer_marks_its_call_throttled(
    world, cold_start, daemon, operation: str, code: str, outcome: str
) -> None:
    """DynamoDB answers throttling with 400 and its own codes: X-Ray must still show a throttle, not a bad request."""
    world.add_conversation()
    world.add_default_secrets()
    container = traced(cold_start, daemon)
    container.aws.fail(operation, code, 400)
    with pytest.raises(Exception, match=outcome):
        container.handler(rest_event("whatsapp", whatsapp_params()), None)
    service = operation.split(".")[0]
    calls = [d for d in received(daemon) if d["namespace"] == "aws" and d["name"] == service]
    assert calls and all(call.get("throttle") is True and call.get("error") is True for call in calls)
    assert not any(call.get("fault") for call in calls)


def test_the_undo_calls_of_a_failed_event_are_traced_under_what_they_undo(world, cold_start, daemon) -> None:
    # The runner undoes the lock and the replay record after their steps' subsegments have ended: their DeleteItem
    # calls hung off the function's segment, under no step, as if made by nothing.
    world.add_conversation()
    world.add_default_secrets()
    container = traced(cold_start, daemon)
    container.aws.fail("sqs.SendMessage", "AccessDenied", 403)
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None)["statusCode"] == 200
    assert world.lock_rows() == []  # released

    documents = received(daemon)
    local = {d["id"]: d["name"] for d in documents if d["namespace"] == "local"}
    resources = world.resources
    deletes = sorted(
        (d["aws"]["table_name"], local.get(d["parent_id"], d["parent_id"]))
        for d in documents
        if d["namespace"] == "aws" and d["aws"]["operation"] == "DeleteItem"
    )
    assert deletes == sorted(
        [(resources.lock_table, "release trigger lock"), (resources.replay_table, "release replay record")]
    )
    assert all(d["parent_id"] in local for d in documents if d["namespace"] == "aws")
