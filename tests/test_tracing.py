"""X-Ray: off unless asked (nothing imported), and when on, real subsegments reach the daemon address over UDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import tracing

ROOT = Path(__file__).resolve().parent.parent
TRACE_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
LAMBDA_SEGMENT = "53995c3f42cd8ad8"

# A Lambda container in a fresh interpreter: moto in-process, one WhatsApp message through handler.handler.
CONTAINER = r"""
import os, sys, boto3
from moto import mock_aws
from engine.localaws import provision
from tests.support.world import World
from tests.support.webhooks import rest_event, whatsapp_params
with mock_aws():
    clients = [boto3.client(name) for name in ("dynamodb", "sqs", "secretsmanager")]
    resources = provision(clients[0], clients[1])
    os.environ.update(resources.environment())
    world = World(*clients, resources)
    world.add_conversation()
    world.add_default_secrets()
    import handler
    from engine import tracing
    answer = handler.handler(rest_event("whatsapp", whatsapp_params()), None)
    print("RESULT", answer["statusCode"], tracing.enabled(), "aws_xray_sdk" in sys.modules, flush=True)
"""


def container_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "_X_AMZN", "TRACING"))}
    env.pop("LAMBDA_TASK_ROOT", None)
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        METRICS_ENABLED="false",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def run_container(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CONTAINER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return next(line for line in done.stdout.splitlines() if line.startswith("RESULT")).split()[1:]


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    """A UDP socket standing in for the X-Ray daemon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    try:
        yield sock
    finally:
        sock.close()


def received(sock: socket.socket) -> list[dict[str, Any]]:
    """Every entity sent to the daemon, nested subsegments flattened (each with its parent's id)."""
    entities: list[dict[str, Any]] = []

    def walk(entity: dict[str, Any], parent: str | None) -> None:
        entities.append({**entity, "parent_id": entity.get("parent_id", parent)})
        for child in entity.get("subsegments", []):
            walk(child, entity["id"])

    while True:
        try:
            datagram = sock.recv(65535)
        except TimeoutError:
            return entities
        header, body = datagram.decode().split("\n", 1)
        assert json.loads(header) == {"format": "json", "version": 1}
        walk(json.loads(body), None)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.2:2000"}, False),
        ({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.2:2000", "_X_AMZN_TRACE_ID": "Root=1-a-b"}, True),
        ({"AWS_XRAY_DAEMON_ADDRESS": "a", "_X_AMZN_TRACE_ID": "b", "TRACING_ENABLED": "false"}, False),
        ({"TRACING_ENABLED": "true"}, True),
        ({"TRACING_ENABLED": "1"}, True),
    ],
)
def test_tracing_is_wanted_only_when_asked(env: dict[str, str], expected: bool) -> None:
    assert tracing.wanted(env) is expected


def test_when_off_the_hook_is_one_shared_no_op() -> None:
    tracing.reset()
    first, second = tracing.subsegment("parse"), tracing.subsegment("signature")
    assert first is second
    with first as entered:
        assert entered is None
    with pytest.raises(KeyError), tracing.subsegment("x"):
        raise KeyError("errors pass through")


def test_asked_for_without_the_sdk_it_stays_off(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "aws_xray_sdk", None)
    monkeypatch.setitem(sys.modules, "aws_xray_sdk.core", None)
    assert tracing.configure({"TRACING_ENABLED": "true"}) is False
    assert not tracing.enabled()
    assert "aws_xray_sdk is not installed" in caplog.text


def test_a_container_without_tracing_never_imports_the_sdk() -> None:
    status, enabled, imported = run_container(container_env(AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:9"))
    assert (status, enabled, imported) == ("200", "False", "False")


def test_a_traced_container_sends_step_and_aws_call_subsegments(daemon: socket.socket) -> None:
    port = daemon.getsockname()[1]
    env = container_env(
        TRACING_ENABLED="true",
        LAMBDA_TASK_ROOT=str(ROOT),
        AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{port}",
        _X_AMZN_TRACE_ID=f"Root={TRACE_ROOT};Parent={LAMBDA_SEGMENT};Sampled=1",
    )
    assert run_container(env) == ["200", "True", "True"]
    entities = received(daemon)
    steps = {e["name"]: e for e in entities if e.get("namespace") == "local"}
    # Every step that ran (the skipped status_callback step did not), stage and lock from the worker thread too.
    ran = {"parse", "lookup", "auth_token", "signature", "conversation", "rules", "route", "stage", "lock", "send"}
    assert set(steps) == ran
    assert all(e["trace_id"] == TRACE_ROOT for e in entities if "trace_id" in e)
    assert all(step["parent_id"] == LAMBDA_SEGMENT for step in steps.values())
    calls = [(e["name"], e["aws"]["operation"], e["parent_id"]) for e in entities if e.get("namespace") == "aws"]
    assert sorted(calls) == sorted(
        [
            ("dynamodb", "Query", steps["lookup"]["id"]),
            ("secretsmanager", "GetSecretValue", steps["auth_token"]["id"]),
            ("dynamodb", "GetItem", steps["conversation"]["id"]),
            ("dynamodb", "PutItem", steps["stage"]["id"]),
            ("dynamodb", "PutItem", steps["lock"]["id"]),
            ("sqs", "SendMessage", steps["send"]["id"]),
        ]
    )
    assert not [e for e in entities if e.get("fault") or e.get("error")]
