"""Per-event time on moto in this process: 300 messages for one conversation, engine against raw boto3.

The engine runs the handler path (the first message is QUEUED, the rest BATCHED behind its lock). Its
AWS calls are recorded with their parameters; the baseline issues exactly those calls, in order,
with plain boto3 clients against an identical fresh world: the AWS work without the engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from time import perf_counter
from typing import Any

import boto3
from botocore import xform_name
from botocore.exceptions import ClientError

from bench.awscalls import AwsCall, CallRecorder
from bench.events import Tenant, conversation, whatsapp_event
from bench.model import Figure, Sizes, median
from bench.world import MotoWorld, moto_world
from engine.aws import AwsSettings

__all__ = ["measure"]

TARGET_RATIO = 1.2
HISTORY_ENTRIES = 20


def _seed(world: MotoWorld, tenant: Tenant) -> None:
    world.add([conversation(0, tenant, entries=HISTORY_ENTRIES), conversation(1, tenant)], tenant)


def _engine(messages: int) -> tuple[float, list[AwsCall], list[AwsCall], Counter[str]]:
    tenant = Tenant()
    with moto_world() as world:
        _seed(world, tenant)
        recorder = CallRecorder()
        app = world.application(recorder)
        app.handle(whatsapp_event(1, tenant), None)
        warmup = recorder.take()
        events = [whatsapp_event(0, tenant, message) for message in range(messages)]
        outcomes: Counter[str] = Counter()
        started = perf_counter()
        for event in events:
            outcomes[app.process(event).result.outcome] += 1
        elapsed = perf_counter() - started
        return elapsed / messages, warmup, recorder.take(), outcomes


def _replay(clients: dict[str, Any], calls: Sequence[AwsCall]) -> None:
    for call in calls:
        service, operation = call.operation.split(".", 1)
        try:
            getattr(clients[service], xform_name(operation))(**call.params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


def _direct(messages: int, warmup: Sequence[AwsCall], calls: Sequence[AwsCall]) -> float:
    tenant = Tenant()
    with moto_world() as world:
        _seed(world, tenant)
        session = boto3.session.Session()
        config = AwsSettings().botocore_config()
        clients = {name: session.client(name, config=config) for name in ("dynamodb", "sqs", "secretsmanager")}
        _replay(clients, warmup)
        started = perf_counter()
        _replay(clients, calls)
        return (perf_counter() - started) / messages


def measure(sizes: Sizes) -> list[Figure]:
    """The per-event figure."""
    engine_times: list[float] = []
    direct_times: list[float] = []
    ratios: list[float] = []
    outcomes: Counter[str] = Counter()
    operations: Counter[str] = Counter()
    for _ in range(sizes.moto_repeats):
        engine_s, warmup, calls, outcomes = _engine(sizes.moto_messages)
        direct_s = _direct(sizes.moto_messages, warmup, calls)
        engine_times.append(engine_s)
        direct_times.append(direct_s)
        ratios.append(engine_s / direct_s)
        operations = Counter(call.operation for call in calls)
    ratio = median(ratios)
    return [
        Figure(
            key="moto_per_event",
            title=f"per-event time on moto in-process, {sizes.moto_messages} messages, one conversation",
            unit="ms/event",
            measured=round(median(engine_times) * 1000, 3),
            baseline_label="the same AWS calls issued directly with boto3",
            baseline=round(median(direct_times) * 1000, 3),
            ratio=round(ratio, 3),
            target=f"<= {TARGET_RATIO}x",
            passed=ratio <= TARGET_RATIO,
            note=f"median of {sizes.moto_repeats} paired runs; conversation with {HISTORY_ENTRIES} history entries",
            details={"outcomes": dict(outcomes), "calls": dict(operations)},
        )
    ]
