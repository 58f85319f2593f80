"""What the template derives from the deployed pipeline files, a rules bundle may not change.

The role may send to the queues the packaged pipelines' ``targets:`` name (``QueueSend``), and the function's
timeout (13 s) is above the bound their ``deadline_seconds`` and ``aws:`` give (12 s). A bundle carrying a pipeline
file (``publish --with-pipeline``) that routes to another queue, or outlasts the timeout, must be refused as any
bundle that changes what is the code's: else every message routed there is denied (``QUEUE_ERROR``), or Lambda
kills an invocation before the engine releases its lock and writes its log line and metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.runtime.test_rule_bundles import (  # noqa: F401 - the fixtures of the bundle tests
    Container,
    Logs,
    container,
    ops,
    refused_at_cold_start,
)
from tests.support.bundles import PIPELINE_FILE, Ops

WHATSAPP_TARGET = "    queue_url: ${env:WHATSAPP_QUEUE_URL}\n"
ELSEWHERE = "https://sqs.us-east-1.amazonaws.com/123456789012/elsewhere"


def test_a_bundle_routing_a_channel_to_a_queue_the_role_may_not_send_to_is_refused(
    ops: Ops,  # noqa: F811
    container: Callable[..., Container],  # noqa: F811
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world.sqs.create_queue(QueueName="elsewhere")
    elsewhere = PIPELINE_FILE.replace(WHATSAPP_TARGET, f"    queue_url: {ELSEWHERE}\n", 1)
    assert elsewhere != PIPELINE_FILE
    started, sneaked, error, deciding = refused_at_cold_start(ops, container, json_logs, capsys, elsewhere, live=True)
    assert error["bundle"] == sneaked
    (problem,) = error["problems"]
    assert "targets: whatsapp.queue_url" in problem and "code deploy" in problem
    item = world.add_conversation()
    line = started.message(json_logs)
    assert (line["outcome"], line["rules_source"]) == ("QUEUED", deciding)
    assert [body for body, _ in world.sent("whatsapp")] == [
        {"conversation_id": item["conversation_id"], "primary_channel": item["primary_channel"]}
    ]
    assert world.sent("elsewhere") == []


@pytest.mark.parametrize(
    ("deployed", "carried", "setting"),
    [
        ("deadline_seconds: 4\n", "deadline_seconds: 10\n", "deadline_seconds"),
        ("  read_timeout_seconds: 1.0\n", "  read_timeout_seconds: 10.0\n", "aws: read_timeout_seconds"),
        ("  max_attempts: 2\n", "  max_attempts: 5\n", "aws: max_attempts"),
    ],
    ids=["deadline", "read_timeout", "attempts"],
)
def test_a_bundle_whose_time_bounds_outlast_the_function_timeout_is_refused(
    ops: Ops,  # noqa: F811
    container: Callable[..., Container],  # noqa: F811
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    deployed: str,
    carried: str,
    setting: str,
) -> None:
    slower = PIPELINE_FILE.replace(deployed, carried, 1)
    assert slower != PIPELINE_FILE
    started, sneaked, error, deciding = refused_at_cold_start(ops, container, json_logs, capsys, slower, live=True)
    assert error["bundle"] == sneaked
    (problem,) = error["problems"]
    assert f"{setting} is" in problem and "code deploy" in problem
    world.add_conversation()
    line = started.message(json_logs)
    assert (line["outcome"], line["rules_source"]) == ("QUEUED", deciding)
