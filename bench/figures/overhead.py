"""Engine overhead per event: the whole handler path against the same steps called directly.

AWS calls are answered instantly from memory (``bench.instant``), so what remains is the work itself
(parse, signature, rules, routing, building the messages and the response) plus whatever the engine
adds: the runner, ``when`` conditions, the parallel group's scheduling, trace records and the
bookkeeping around them.

The judged baseline is a hand-written handler built from the same functions that produces the same
outputs: each step's ``run(ctx)`` in a plain loop with the same context, timed by hand, then the same
response, the same event log line (with each step's status, the rule each rule set decided with and the
rules version) and the same EMF document (with each step's latency and the rules version).
Informational variants show the ratio against thinner baselines (log line and metrics with totals only;
neither), with quieter logs, and with the parallel group always handing a member to its worker thread.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import engine.runner
from bench.env import lambda_environment
from bench.events import Tenant, conversation, whatsapp_event
from bench.instant import instant_services
from bench.model import Figure, Sizes, median
from bench.world import discard, load_app_config
from engine.context import Context, bind_log_fields, log_fields
from engine.rules import decided_rules
from engine.runner import PlannedStep, RunResult, TraceEntry
from runtime.apigateway import http_request, proxy_response
from runtime.app import Application
from runtime.app import logger as event_logger
from runtime.metrics import EmfMetrics
from steps.conversations import loggable_conversation_id

__all__ = ["alternating", "direct_runner", "measure"]

TARGET_RATIO = 1.10
_OBSERVED_LABEL: dict[str, str] = {
    "same": ", event log line and EMF document, steps timed by hand",
    "totals": ", event log line and EMF document with totals only",
    "none": "",
}
EVENT_VARIETY = 50
# The two sides take turns every this many events (a few milliseconds).
CHUNK_EVENTS = 10


Observed = Literal["same", "totals", "none"]


def direct_runner(
    app: Application, sample: Mapping[str, Any], *, observed: Observed = "same"
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A plain loop over the steps the engine runs for events like ``sample``, answering as the engine does.

    ``observed`` is what it writes besides the response: the engine's event log line and metrics
    document (``same``: with every step's status and latency), the two with totals only, or nothing.
    """
    config = app.configs[0]
    result = config.pipeline.run(http_request(sample), app.services)
    ran = {entry.step for entry in result.trace if entry.status != "skipped"}
    plan: list[PlannedStep] = [step for step in config.pipeline.steps() if step.id in ran]
    outcome, channel = result.outcome, result.doc["request"]["channel"]
    services, responses, metrics = app.services, config.responses, app.metrics
    budget, pipeline, version = config.pipeline.deadline_seconds, config.pipeline.name, config.version
    per_step = observed == "same"

    def run(event: Mapping[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        ctx = Context(event=http_request(event), services=services, deadline=time.monotonic() + budget)
        trace: list[TraceEntry] = []
        for planned in plan:
            step_started = time.perf_counter()
            output = planned.step.run(ctx).output
            if output is not None and planned.provides:
                ctx.doc[planned.provides] = output
            if per_step:
                trace.append(TraceEntry(planned.id, "ok", int((time.perf_counter() - step_started) * 1_000_000) / 1000))
        response = proxy_response(responses.respond(RunResult(outcome, None, ctx.doc, trace), channel))
        if observed != "none":
            bind_log_fields({"conversation_id": loggable_conversation_id(ctx.doc["credential"]["conversation_id"])})
            ms = round((time.perf_counter() - started) * 1000, 3)
            status = response["statusCode"]
            fields: dict[str, Any] = {"pipeline": pipeline, "outcome": outcome, "ms": ms, "status": status}
            if per_step:
                fields["steps"] = {entry.step: entry.status for entry in trace}
                fields["target"] = ctx.doc["route"]["target"]
                fields["rules"] = decided_rules(ctx.rules)
                fields["rules_version"] = version
            event_logger.info("event", extra=fields)
            if metrics is not None:
                properties = {**log_fields(), "RulesVersion": version} if per_step else log_fields()
                metrics.record(pipeline, outcome, None, ms=ms, trace=trace, properties=properties)
            bind_log_fields({}, replace=True)
        return response

    return run


def _timed_chunk(function: Callable[[Mapping[str, Any]], object], events: list[dict[str, Any]], start: int) -> float:
    started = time.perf_counter()
    for index in range(start, start + CHUNK_EVENTS):
        function(events[index % len(events)])
    return time.perf_counter() - started


def _compare(
    app: Application, events: list[dict[str, Any]], sizes: Sizes, *, observed: Observed
) -> tuple[float, float, float]:
    """Per-event seconds of the engine and of the baseline, and the median of the repeats' ratios."""
    return alternating(app.handle, direct_runner(app, events[0], observed=observed), events, sizes)


def alternating(
    engine: Callable[[Mapping[str, Any]], object],
    direct: Callable[[Mapping[str, Any]], object],
    events: list[dict[str, Any]],
    sizes: Sizes,
) -> tuple[float, float, float]:
    """Per-event seconds of two sides over ``events``, and the median of the repeats' ratios.

    Each repeat alternates the two sides every ``CHUNK_EVENTS`` events (in turn first), so that the
    machine's load, which moves on a scale of tenths of a second here, falls on both alike.
    """
    for function in (engine, direct):
        for event in events:
            function(event)
    chunks = max(1, sizes.overhead_events // CHUNK_EVENTS)
    engine_times: list[float] = []
    direct_times: list[float] = []
    for _ in range(sizes.overhead_repeats):
        gc.collect()
        engine_s = direct_s = 0.0
        for chunk in range(chunks):
            start = chunk * CHUNK_EVENTS
            if chunk % 2 == 0:
                engine_s += _timed_chunk(engine, events, start)
                direct_s += _timed_chunk(direct, events, start)
            else:
                direct_s += _timed_chunk(direct, events, start)
                engine_s += _timed_chunk(engine, events, start)
        engine_times.append(engine_s / (chunks * CHUNK_EVENTS))
        direct_times.append(direct_s / (chunks * CHUNK_EVENTS))
    ratios = [engine_s / direct_s for engine_s, direct_s in zip(engine_times, direct_times, strict=True)]
    return median(engine_times), median(direct_times), median(ratios)


def measure(sizes: Sizes) -> list[Figure]:
    """The overhead figure as deployed, and the same with fewer log lines (informational)."""
    tenant = Tenant()
    items = [conversation(index, tenant) for index in range(EVENT_VARIETY)]
    services = instant_services(items, {tenant.secret_name: tenant.secret_value()})
    app = Application([load_app_config(lambda_environment())], services, EmfMetrics(write=discard))
    events = [whatsapp_event(index, tenant) for index in range(EVENT_VARIETY)]
    outcome = app.process(events[0]).result.outcome
    if outcome != "QUEUED":
        raise RuntimeError(f"overhead benchmark event ended {outcome}, expected QUEUED")
    root = logging.getLogger()
    level, pays = root.level, engine.runner.CONCURRENCY_PAYS_SECONDS
    variants: tuple[tuple[str, str, Observed, float, str], ...] = (
        ("engine_overhead", "INFO", "same", pays, "as deployed (LOG_LEVEL=INFO, EMF metrics)"),
        (
            "engine_overhead_totals_baseline",
            "INFO",
            "totals",
            pays,
            "as deployed; baseline logs and counts totals only",
        ),
        ("engine_overhead_bare_baseline", "INFO", "none", pays, "as deployed; baseline writes no log line or metrics"),
        ("engine_overhead_warning", "WARNING", "same", pays, "LOG_LEVEL=WARNING (no INFO lines)"),
        (
            "engine_overhead_threads",
            "INFO",
            "same",
            0.0,
            "as deployed, but the stage/lock group always uses its thread",
        ),
    )
    figures: list[Figure] = []
    try:
        for key, log_level, observed, threshold, title in variants:
            root.setLevel(log_level)
            engine.runner.CONCURRENCY_PAYS_SECONDS = threshold
            engine_s, direct_s, ratio = _compare(app, events, sizes, observed=observed)
            judged = key == "engine_overhead"
            baseline = "the same steps' run(ctx) in a plain loop + the same response" + _OBSERVED_LABEL[observed]
            figures.append(
                Figure(
                    key=key,
                    title=f"engine overhead per event, AWS answered instantly; {title}",
                    unit="us/event",
                    measured=round(engine_s * 1e6, 1),
                    baseline_label=baseline,
                    baseline=round(direct_s * 1e6, 1),
                    ratio=round(ratio, 3),
                    target=f"<= {TARGET_RATIO}x" if judged else "(informational)",
                    passed=ratio <= TARGET_RATIO if judged else None,
                    note=(
                        f"median of {sizes.overhead_repeats} repeats of {sizes.overhead_events} events a side, "
                        f"the sides taking turns every {CHUNK_EVENTS} events"
                    ),
                )
            )
    finally:
        root.setLevel(level)
        engine.runner.CONCURRENCY_PAYS_SECONDS = pays
    return figures
