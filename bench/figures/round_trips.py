"""Sequential AWS round trips and warm latency of a routed message when every AWS call takes 20 ms.

Every event is a warm container's routed WhatsApp message that takes its lock (a distinct conversation
each, one shared tenant secret, so the auth token comes from the cache).

- Round trips: moto answers in this process, a ``before-send`` hook sleeps 20 ms first; call intervals
  are recorded and overlapping ones count once.
- Latency (judged): the same messages answered by ``bench.canned``, moto's recorded HTTP responses
  after 20 ms, so the figure is the design's waits plus the engine's and boto3's own time. A 20 ms
  ``time.sleep`` lasts a little longer (the timer's slack, measured in the same run); that excess,
  once per sequential wait, is the instrument's and is taken off (the raw p50 is in the details).
- Latency floor (reported): the same recorded calls issued by plain boto3 clients, with the same overlap
  and the same canned answers, alternating with the engine's events: what boto3 alone costs on this
  machine, so the engine's own share (p50 less floor) can be read off.
- Latency on moto (reported): moto's in-process processing adds its own milliseconds on top, shown
  with the same run undelayed, so the two can be told apart.
"""

from __future__ import annotations

from collections import Counter
from time import perf_counter, sleep
from typing import Any

import boto3

from bench.awscalls import AwsCall, CallRecorder, busy_time, sequential_round_trips
from bench.canned import CannedAws
from bench.events import Tenant, conversation, whatsapp_event
from bench.model import Figure, Sizes, median, percentile
from bench.replay import Boto3Replay, concurrent_groups
from bench.world import Instrument, application, moto_world
from runtime.app import Application

__all__ = ["DELAY", "measure"]

DELAY = 0.020
DESIGN_ROUND_TRIPS = 6
TARGET_ROUND_TRIPS = 4
TARGET_MARGIN = 0.005


def timer_slack(delay: float, samples: int = 30) -> float:
    """How much longer than ``delay`` a ``time.sleep(delay)`` lasts here (median, seconds)."""
    excess: list[float] = []
    for _ in range(samples):
        started = perf_counter()
        sleep(delay)
        excess.append(perf_counter() - started - delay)
    return max(0.0, median(excess))


def _operations(calls: list[AwsCall]) -> list[str]:
    return [call.operation for call in sorted(calls, key=lambda call: call.start)]


class _MotoRun:
    """Routed messages on moto with every call delayed: latencies, round trips, the calls of the last one."""

    def __init__(self, count: int, delay: float) -> None:
        tenant = Tenant()
        self.latencies: list[float] = []
        self.trips: list[int] = []
        self.outcomes: Counter[str] = Counter()
        with moto_world() as world:
            self.environment = world.environment
            world.add([conversation(index, tenant) for index in range(count + 1)], tenant)
            recorder = CallRecorder(delay=delay)
            app = world.application(recorder)
            self.cold_outcome = app.process(whatsapp_event(0, tenant)).result.outcome
            self.cold_calls = recorder.take()
            self.warm_calls: list[AwsCall] = []
            for index in range(1, count + 1):
                started = perf_counter()
                handled = app.process(whatsapp_event(index, tenant))
                self.latencies.append(perf_counter() - started)
                self.warm_calls = recorder.take()
                self.trips.append(sequential_round_trips(self.warm_calls))
                self.outcomes[handled.result.outcome] += 1
        self.last_index = count


def _canned_container(run: _MotoRun, delay: float, *instruments: Instrument) -> tuple[Application, dict[str, Any]]:
    """A fresh container answered by canned responses, warmed on the last moto message, and that message."""
    app = application(run.environment, CannedAws([*run.cold_calls, *run.warm_calls], delay), *instruments)
    event = whatsapp_event(run.last_index, Tenant())
    app.handle(event, None)
    return app, event


def _queued_latency(app: Application, event: dict[str, Any]) -> float:
    """Seconds the container takes for ``event``, which must end QUEUED."""
    started = perf_counter()
    outcome = app.process(event).result.outcome
    elapsed = perf_counter() - started
    if outcome != "QUEUED":
        raise RuntimeError(f"canned replay ended {outcome}, expected QUEUED")
    return elapsed


def _canned_latencies(
    run: _MotoRun, count: int, delay: float, recorder: CallRecorder | None = None
) -> tuple[list[float], list[float]]:
    """The last moto message replayed ``count`` times on a fresh container answered by canned responses.

    Returns the latencies and, with a ``recorder``, each event's time outside AWS calls (the engine's).
    """
    app, event = _canned_container(run, delay, *([recorder] if recorder else []))
    latencies: list[float] = []
    outside: list[float] = []
    for _ in range(count):
        if recorder is not None:
            recorder.take()
        latencies.append(_queued_latency(app, event))
        if recorder is not None:
            outside.append(latencies[-1] - busy_time(recorder.take()))
    return latencies, outside


def _engine_and_floor(
    run: _MotoRun, count: int, delay: float, groups: list[list[AwsCall]]
) -> tuple[list[float], list[float]]:
    """``_canned_latencies`` alternating with plain boto3 issuing the same calls (``groups``, with their overlap).

    Returns the engine's latencies and the floor's, each event's pair taken back to back (in turn
    first), so load on the machine falls on both alike.
    """
    app, event = _canned_container(run, delay)
    session = boto3.session.Session()
    CannedAws([*run.cold_calls, *run.warm_calls], delay).attach(session)
    floor = Boto3Replay(session)
    engine_latencies: list[float] = []
    floor_latencies: list[float] = []

    def floor_once() -> None:
        started = perf_counter()
        floor.with_overlap(groups)
        floor_latencies.append(perf_counter() - started)

    def engine_once() -> None:
        engine_latencies.append(_queued_latency(app, event))

    try:
        floor.with_overlap(groups)
        for index in range(count):
            for side in (engine_once, floor_once) if index % 2 == 0 else (floor_once, engine_once):
                side()
    finally:
        floor.close()
    return engine_latencies, floor_latencies


def _latency_figure(
    *, key: str, title: str, seconds: float, target: str, note: str, details: dict[str, Any], passed: bool | None = None
) -> Figure:
    """A p50 latency row, in ms against the design's 6 sequential waits."""
    baseline = DESIGN_ROUND_TRIPS * DELAY
    return Figure(
        key=key,
        title=title,
        unit="ms",
        measured=round(seconds * 1000, 2),
        baseline_label=f"{DESIGN_ROUND_TRIPS} x {DELAY * 1000:.0f} ms",
        baseline=round(baseline * 1000, 2),
        ratio=round(seconds / baseline, 3),
        target=target,
        passed=passed,
        note=note,
        details=details,
    )


def measure(sizes: Sizes) -> list[Figure]:
    """The round-trip figure, the judged 20 ms latency figure, the plain-boto3 floor and the latency on moto."""
    count = sizes.latency_events
    delayed = _MotoRun(count, DELAY)
    if set(delayed.outcomes) != {"QUEUED"}:
        raise RuntimeError(f"warm routed messages ended {dict(delayed.outcomes)}, expected QUEUED")
    undelayed = _MotoRun(count, 0.0)
    groups = concurrent_groups(delayed.warm_calls)
    canned, floor = _engine_and_floor(delayed, count, DELAY, groups)
    slack = timer_slack(DELAY, samples=10 if sizes.smoke else 30)
    canned_instant, _ = _canned_latencies(delayed, count, 0.0)
    _, engine_time = _canned_latencies(delayed, count, DELAY, CallRecorder(keep_params=False))
    worst = max(delayed.trips)
    target = TARGET_ROUND_TRIPS * DELAY + TARGET_MARGIN
    raw_p50, moto_p50 = median(canned), median(delayed.latencies)
    p50 = raw_p50 - TARGET_ROUND_TRIPS * slack
    floor_p50 = median(floor) - TARGET_ROUND_TRIPS * slack
    ms = 1000
    return [
        Figure(
            key="round_trips",
            title="sequential AWS round trips, warm routed message",
            unit="round trips",
            measured=worst,
            baseline_label="the design's 6 (query, secret, get, stage, lock, send)",
            baseline=DESIGN_ROUND_TRIPS,
            ratio=round(worst / DESIGN_ROUND_TRIPS, 3),
            target=f"<= {TARGET_ROUND_TRIPS}",
            passed=worst <= TARGET_ROUND_TRIPS,
            note=f"worst of {count} messages on moto, calls +{DELAY * ms:.0f} ms; overlapping calls count once",
            details={
                "per_message": delayed.trips,
                "warm_operations": _operations(delayed.warm_calls),
                "cold_outcome": delayed.cold_outcome,
                "cold_round_trips": sequential_round_trips(delayed.cold_calls),
                "cold_operations": _operations(delayed.cold_calls),
            },
        ),
        _latency_figure(
            key="latency_p50_delayed",
            title=f"warm p50 latency, every AWS call answered in {DELAY * ms:.0f} ms",
            seconds=p50,
            target=f"<= {target * ms:.0f} ms (4 x 20 ms + 5 ms)",
            passed=p50 <= target,
            note=(
                f"{count} warm messages; botocore answered with recorded moto responses after {DELAY * ms:.0f} ms; "
                f"{median(engine_time) * ms:.1f} ms of it outside the AWS calls; raw p50 {raw_p50 * ms:.2f} ms less "
                f"{TARGET_ROUND_TRIPS} x {slack * ms:.2f} ms of timer slack; plain boto3 issuing the same calls: "
                f"{floor_p50 * ms:.2f} ms (latency_p50_boto3_floor)"
            ),
            details={
                "raw_p50_ms": round(raw_p50 * ms, 2),
                "boto3_floor_p50_ms": round(floor_p50 * ms, 2),
                "engine_share_ms": round((p50 - floor_p50) * ms, 2),
                "target_reachable_with_boto3": floor_p50 <= target,
                "timer_slack_ms": round(slack * ms, 3),
                "p90_ms": round(percentile(canned, 0.9) * ms, 2),
                "undelayed_p50_ms": round(median(canned_instant) * ms, 2),
                "waits_ms": round(TARGET_ROUND_TRIPS * DELAY * ms, 2),
                "outside_aws_calls_p50_ms": round(median(engine_time) * ms, 2),
                "latencies_ms": [round(value * ms, 2) for value in canned],
            },
        ),
        _latency_figure(
            key="latency_p50_boto3_floor",
            title=f"warm p50 latency of the same AWS calls from plain boto3, {DELAY * ms:.0f} ms each",
            seconds=floor_p50,
            target="(informational: no engine; the least any boto3 handler of this design takes here)",
            note=(
                f"{' -> '.join('+'.join(call.name for call in group) for group in groups)}, "
                f"alternating with the engine's events; the engine adds {(p50 - floor_p50) * ms:.2f} ms"
            ),
            details={
                "raw_p50_ms": round(median(floor) * ms, 2),
                "p90_ms": round(percentile(floor, 0.9) * ms, 2),
                "latencies_ms": [round(value * ms, 2) for value in floor],
            },
        ),
        _latency_figure(
            key="latency_p50_moto",
            title=f"warm p50 latency on moto in-process, every AWS call +{DELAY * ms:.0f} ms",
            seconds=moto_p50,
            target="(informational: includes moto's own processing)",
            note=f"moto undelayed p50 {median(undelayed.latencies) * ms:.1f} ms is emulator time, not AWS latency",
            details={
                "undelayed_p50_ms": round(median(undelayed.latencies) * ms, 2),
                "p90_ms": round(percentile(delayed.latencies, 0.9) * ms, 2),
            },
        ),
    ]
