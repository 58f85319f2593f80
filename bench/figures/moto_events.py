"""Per-event time on moto in this process: 300 messages for one conversation, engine against raw boto3.

The engine runs the handler path (the first message is QUEUED, the rest BATCHED behind its lock). Each
event's AWS calls are recorded with their parameters and, straight after, issued again in order by
plain boto3 clients against twin resources (same items, prefixed names) in the same moto world: the
AWS work without the engine. Pairing event by event keeps the two sides under the same machine load;
the world is frozen out of the garbage collector first (``gc.freeze``), so a full collection of the
emulator's heap does not land on one side at random.
The engine's side carries the recorder's own cost, so the ratio errs against the engine.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Mapping
from time import perf_counter
from typing import Any

import boto3

from bench.awscalls import CallRecorder
from bench.events import Tenant, conversation, whatsapp_event
from bench.model import Figure, Sizes, median
from bench.replay import Boto3Replay
from bench.world import moto_world
from runtime.app import Application
from tools.localaws import provision, put_items

__all__ = ["measure"]

TARGET_RATIO = 1.2
HISTORY_ENTRIES = 20
TWIN_PREFIX = "twin-"


class _PairedRun:
    """One world, the engine on its resources and the replay on their twins, timed event by event."""

    def __init__(self, messages: int) -> None:
        tenant = Tenant()
        self.engine_seconds: list[float] = []
        self.direct_seconds: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        with moto_world() as world:
            twin = provision(world.dynamodb, world.sqs, prefix=TWIN_PREFIX)
            conversations = [conversation(0, tenant, entries=HISTORY_ENTRIES), conversation(1, tenant)]
            world.add(conversations, tenant)
            put_items(world.dynamodb, twin.conversations_table, conversations)
            own, twins = world.resources.environment(), twin.environment()
            replay = Boto3Replay(boto3.session.Session(), {own[key]: twins[key] for key in own})
            recorder = CallRecorder()
            app = world.application(recorder)
            app.handle(whatsapp_event(1, tenant), None)
            replay.in_order(recorder.take())
            events = [whatsapp_event(0, tenant, message) for message in range(messages)]
            gc.collect()
            gc.freeze()
            try:
                for event in events:
                    self._pair(app, replay, recorder, event)
            finally:
                gc.unfreeze()

    @property
    def ratio(self) -> float:
        """The median of the events' engine-to-direct time ratios (robust to a pause landing on one side)."""
        pairs = zip(self.engine_seconds, self.direct_seconds, strict=True)
        return median([engine / direct for engine, direct in pairs])

    def _pair(self, app: Application, replay: Boto3Replay, recorder: CallRecorder, event: Mapping[str, Any]) -> None:
        started = perf_counter()
        outcome = app.process(event).result.outcome
        self.engine_seconds.append(perf_counter() - started)
        calls = recorder.take()
        started = perf_counter()
        replay.in_order(calls)
        self.direct_seconds.append(perf_counter() - started)
        self.outcomes[outcome] += 1
        self.operations.update(call.operation for call in calls)


def measure(sizes: Sizes) -> list[Figure]:
    """The per-event figure: the median over runs of each run's median per-event ratio."""
    runs = [_PairedRun(sizes.moto_messages) for _ in range(sizes.moto_repeats)]
    messages = sizes.moto_messages
    ratio = median([run.ratio for run in runs])
    return [
        Figure(
            key="moto_per_event",
            title=f"per-event time on moto in-process, {messages} messages, one conversation",
            unit="ms/event",
            measured=round(median([sum(run.engine_seconds) for run in runs]) / messages * 1000, 3),
            baseline_label="the same AWS calls issued directly with boto3",
            baseline=round(median([sum(run.direct_seconds) for run in runs]) / messages * 1000, 3),
            ratio=round(ratio, 3),
            target=f"<= {TARGET_RATIO}x",
            passed=ratio <= TARGET_RATIO,
            note=(
                f"median per-event ratio, median of {sizes.moto_repeats} runs; each event paired with its calls "
                f"replayed on twin resources; conversation with {HISTORY_ENTRIES} history entries"
            ),
            details={
                "outcomes": dict(runs[-1].outcomes),
                "calls": dict(runs[-1].operations),
                "ratios": [round(run.ratio, 3) for run in runs],
                "total_time_ratios": [round(sum(run.engine_seconds) / sum(run.direct_seconds), 3) for run in runs],
            },
        )
    ]
