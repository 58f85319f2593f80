"""Engine overhead per event: the whole handler path against the same steps called directly.

AWS calls are answered instantly from memory (``bench.instant``), so what remains is the work itself
(parse, signature, rules, routing, building the messages) plus whatever the engine adds: the runner,
``when`` conditions, the parallel group's thread hand-off, trace and step logs, the response policy.
The baseline calls each step's ``run(ctx)`` in a plain loop with the same context and returns the
same response, which is what a hand-written handler built from those functions would do.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bench.env import lambda_environment
from bench.events import Tenant, conversation, whatsapp_event
from bench.instant import instant_services
from bench.model import Figure, Sizes, median
from bench.world import discard, load_app_config
from engine.app import Application
from engine.context import Context
from engine.metrics import EmfMetrics
from engine.runner import PlannedStep

__all__ = ["direct_runner", "measure"]

TARGET_RATIO = 1.10
EVENT_VARIETY = 50


def direct_runner(app: Application, sample: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A plain loop over the steps the engine runs for events like ``sample``, answering as the engine does."""
    result = app.config.pipeline.run(sample, app.services)
    ran = {entry.step for entry in result.trace if entry.status != "skipped"}
    plan: list[PlannedStep] = [step for step in app.config.pipeline.steps() if step.id in ran]
    response = app.config.responses.respond(result, result.doc["request"]["channel"]).to_lambda()
    services = app.services
    budget = app.config.pipeline.deadline_seconds

    def run(event: Mapping[str, Any]) -> dict[str, Any]:
        ctx = Context(event=event, services=services, deadline=time.monotonic() + budget)
        for planned in plan:
            output = planned.step.run(ctx).output
            if output is not None and planned.provides:
                ctx.doc[planned.provides] = output
        return {**response, "headers": dict(response["headers"])}

    return run


def _batch(function: Callable[[Mapping[str, Any]], object], events: list[dict[str, Any]], count: int) -> float:
    gc.collect()
    started = time.perf_counter()
    for index in range(count):
        function(events[index % len(events)])
    return (time.perf_counter() - started) / count


def _compare(app: Application, events: list[dict[str, Any]], sizes: Sizes) -> tuple[float, float, float]:
    direct = direct_runner(app, events[0])
    engine: Callable[[Mapping[str, Any]], object] = app.handle
    for function in (engine, direct):
        _batch(function, events, len(events))
    engine_times: list[float] = []
    direct_times: list[float] = []
    ratios: list[float] = []
    for repeat in range(sizes.overhead_repeats):
        order = [(engine, engine_times), (direct, direct_times)]
        for function, times in order if repeat % 2 == 0 else reversed(order):
            times.append(_batch(function, events, sizes.overhead_events))
        ratios.append(engine_times[-1] / direct_times[-1])
    return median(engine_times), median(direct_times), median(ratios)


def measure(sizes: Sizes) -> list[Figure]:
    """The overhead figure as deployed, and the same with fewer log lines (informational)."""
    tenant = Tenant()
    items = [conversation(index, tenant) for index in range(EVENT_VARIETY)]
    services = instant_services(items, {tenant.secret_name: tenant.secret_value()})
    app = Application(load_app_config(lambda_environment()), services, EmfMetrics(write=discard))
    events = [whatsapp_event(index, tenant) for index in range(EVENT_VARIETY)]
    outcome = app.process(events[0]).result.outcome
    if outcome != "QUEUED":
        raise RuntimeError(f"overhead benchmark event ended {outcome}, expected QUEUED")
    root, steps = logging.getLogger(), logging.getLogger("engine.runner")
    levels = root.level, steps.level
    variants = (
        ("engine_overhead", "INFO", logging.NOTSET, "as deployed: LOG_LEVEL=INFO, a log line per step, EMF metrics"),
        ("engine_overhead_warning", "WARNING", logging.NOTSET, "LOG_LEVEL=WARNING (no INFO lines), EMF metrics"),
        ("engine_overhead_no_step_lines", "INFO", logging.WARNING, "LOG_LEVEL=INFO without the per-step lines"),
    )
    figures: list[Figure] = []
    try:
        for key, level, step_level, title in variants:
            root.setLevel(level)
            steps.setLevel(step_level)
            engine_s, direct_s, ratio = _compare(app, events, sizes)
            judged = key == "engine_overhead"
            figures.append(
                Figure(
                    key=key,
                    title=f"engine overhead per event, AWS answered instantly; {title}",
                    unit="us/event",
                    measured=round(engine_s * 1e6, 1),
                    baseline_label="the same steps' run(ctx) in a plain loop",
                    baseline=round(direct_s * 1e6, 1),
                    ratio=round(ratio, 3),
                    target=f"<= {TARGET_RATIO}x" if judged else "(informational)",
                    passed=ratio <= TARGET_RATIO if judged else None,
                    note=f"median of {sizes.overhead_repeats} paired batches of {sizes.overhead_events} events",
                )
            )
    finally:
        root.setLevel(levels[0])
        steps.setLevel(levels[1])
    return figures
