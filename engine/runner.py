"""The step runner: ordered steps, ``when`` conditions, parallel groups, timing, trace and compensation.

A step ends in one of four ways, never mixed: a ``StepResult`` (its output is stored under the key it
provides), a ``StepFailure`` (final business error), a ``TransientFault`` (retryable) or any other
exception (a bug: wrapped in ``InternalError`` with the step id). On any error the compensations
registered so far run in reverse order before the run ends (a parallel group's together, as they were made).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from math import inf
from time import perf_counter
from typing import Any, NamedTuple

from engine.context import (
    STEP_RANK,
    Compensation,
    Context,
    RuleTrace,
    Services,
    StepResult,
    Tracer,
    bind_log_fields,
)
from engine.errors import InternalError, PipelineError, TransientFault
from engine.expressions import Expression, ExpressionError
from engine.registry import Step

__all__ = ["ParallelGroup", "Pipeline", "PlannedStep", "RunResult", "TraceEntry"]

logger = logging.getLogger("engine.runner")


@dataclass(frozen=True)
class PlannedStep:
    """A built step in its place in the pipeline, and the ``with:`` parameters it was built from."""

    id: str
    uses: str
    step: Step
    provides: str | None
    when: Expression | None = None
    deadline_code: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParallelGroup:
    """Independent steps, issued concurrently while that saves time; the group ends when all of them have."""

    members: tuple[PlannedStep, ...]


class TraceEntry(NamedTuple):
    """One step's record: status is ok, skipped, stopped or the error code it ended with."""

    step: str
    status: str
    ms: float
    decision: str | None = None


class _Trace(list[TraceEntry]):
    """A run's trace, with the switches read once per run that decide what each step's end records."""

    __slots__ = ("debug", "tracer")

    def __init__(self, *, debug: bool, tracer: Tracer | None) -> None:
        super().__init__()
        self.debug = debug
        # The host's tracer when this invocation is traced, else None.
        self.tracer = tracer

    def end(self, step_id: str, status: str, started: float, decision: str | None = None) -> None:
        """Record a step's end (its milliseconds since ``started``, to the microsecond); with DEBUG on, also log it.

        The event's INFO line carries every step's status.
        """
        entry = TraceEntry(step_id, status, int((perf_counter() - started) * 1_000_000) / 1000, decision)
        self.append(entry)
        if self.debug:
            logger.debug("step", extra={"step": step_id, "status": status, "ms": entry.ms, "decision": decision})


@dataclass
class RunResult:
    """The end of one run: the outcome (a success outcome or an error code) and how it got there."""

    outcome: str
    error: PipelineError | None
    doc: dict[str, Any]
    trace: list[TraceEntry] = field(default_factory=list)
    rules: list[RuleTrace] = field(default_factory=list)

    @property
    def error_code(self) -> str | None:
        """The error code, or None on success."""
        return self.error.code if self.error else None

    @property
    def transient(self) -> bool:
        """True when the run ended in a retryable fault."""
        return isinstance(self.error, TransientFault)


class _Stop(Exception):
    def __init__(self, outcome: str | None) -> None:
        self.outcome = outcome


Node = PlannedStep | ParallelGroup

# Handing a member to a worker thread and waiting for it costs tens of microseconds (about 60 us on a
# shared 2-core VM): a group runs concurrently only while its shorter members take longer than this.
CONCURRENCY_PAYS_SECONDS = 0.001
# Weight of the newest duration in a member's running estimate.
_RECENT_WEIGHT = 0.2


class Pipeline:
    """An ordered list of built steps; immutable after construction, safe to run for every event."""

    def __init__(
        self,
        name: str,
        nodes: Sequence[Node],
        *,
        deadline_seconds: float,
        concurrent: bool = True,
    ) -> None:
        """Build the pipeline; ``concurrent=False`` runs parallel groups without threads.

        Members then run one after another (the dry-run: same decisions and trace, a deterministic
        order); each still runs to its end and errors are raised in member order, as with threads.
        """
        self.name = name
        self.nodes = tuple(nodes)
        self.deadline_seconds = deadline_seconds
        needs_pool = concurrent and any(isinstance(node, ParallelGroup) for node in self.nodes)
        width = max((len(n.members) for n in self.nodes if isinstance(n, ParallelGroup)), default=1)
        self._pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="step") if needs_pool else None
        # Running estimate of each group member's duration (seconds), by step id: none yet means "remote, slow".
        self._recent: dict[str, float] = {}

    def steps(self) -> list[PlannedStep]:
        """Every step, parallel members flattened, in pipeline order."""
        flat: list[PlannedStep] = []
        for node in self.nodes:
            flat.extend(node.members if isinstance(node, ParallelGroup) else (node,))
        return flat

    def run(
        self,
        event: Any,
        services: Services,
        *,
        time_budget: float | None = None,
        explain: bool = False,
    ) -> RunResult:
        """Run every step for ``event``; never raises for pipeline errors (they are in the result).

        ``explain`` records the values each rule's condition read (dry-run explanations).
        """
        budget = self.deadline_seconds if time_budget is None else min(time_budget, self.deadline_seconds)
        ctx = Context(event=event, services=services, deadline=services.clock.monotonic() + budget, explain=explain)
        tracer = services.tracer
        trace = _Trace(
            debug=logger.isEnabledFor(logging.DEBUG), tracer=tracer if tracer is not None and tracer.active() else None
        )
        outcome: str | None = None
        error: PipelineError | None = None
        try:
            for position, node in enumerate(self.nodes, 1):
                if type(node) is ParallelGroup:
                    outcome = self._run_group(node, ctx, trace, position) or outcome
                    continue
                result = self._execute(node, ctx, trace)  # type: ignore[arg-type]
                if result is not None:
                    outcome = result.outcome or outcome
                    if result.stop:
                        break
        except _Stop as stop:
            outcome = stop.outcome or outcome
        except PipelineError as exc:
            error = self._compensate(ctx, exc)
        if error is None and ctx.confirmations:
            self._confirm(ctx)
        final = error.code if error else (outcome or "COMPLETED")
        return RunResult(final, error, ctx.doc, trace, ctx.rules)

    def _run_group(self, group: ParallelGroup, ctx: Context, trace: _Trace, position: int) -> str | None:
        members = group.members
        undo_from, mark = len(ctx.compensations), len(trace)
        wanted: list[bool] = []
        estimates: list[float] = []  # the wanted members' durations; one not run yet counts as remote (slow)
        for member in members:  # every condition before any member runs (a failing one ends the group here)
            wanted.append(member.when is None or self._wanted(member, ctx, trace))
            if wanted[-1]:
                estimates.append(self._recent.get(member.id, inf))
        skips = iter(trace[mark:])  # the skipped members' entries, put back in member order below
        del trace[mark:]
        results: list[StepResult | Exception | None] = []
        # In threads only while that can save time (see CONCURRENCY_PAYS_SECONDS).
        slow = len(estimates) > 1 and (min(estimates) >= CONCURRENCY_PAYS_SECONDS or inf in estimates)
        if slow and self._pool is not None:
            results = self._in_threads(members, wanted, ctx, trace, skips)
        else:  # inline, in member order: each member's entries go straight into the trace
            for member, go in zip(members, wanted, strict=True):
                if go:
                    results.append(self._timed(member, ctx, trace))
                else:
                    trace.append(next(skips))
        if len(ctx.compensations) - undo_from > 1:
            for index in range(undo_from, len(ctx.compensations)):
                ctx.compensations[index] = Compensation(*ctx.compensations[index][:3], position)
        for item in results:
            if isinstance(item, Exception):
                raise item
        outcome: str | None = None
        for item in results:
            if isinstance(item, StepResult):
                if item.stop:
                    raise _Stop(item.outcome)
                outcome = item.outcome or outcome
        return outcome

    def _in_threads(
        self,
        members: tuple[PlannedStep, ...],
        wanted: list[bool],
        ctx: Context,
        trace: _Trace,
        skips: Iterator[TraceEntry],
    ) -> list[StepResult | Exception | None]:
        """The wanted members' results (in member order), the last run in this thread and the others in the pool's."""
        assert self._pool is not None
        undo_from, confirm_from = len(ctx.compensations), len(ctx.confirmations)
        records = {index: _Trace(debug=trace.debug, tracer=trace.tracer) for index, go in enumerate(wanted) if go}
        *others, last = records
        futures = [
            # In a copy of this context, so that the members' log lines carry the invocation's ids.
            (
                index,
                self._pool.submit(
                    contextvars.copy_context().run, self._ranked, members[index], ctx, records[index], index
                ),
            )
            for index in others
        ]
        results = {last: self._ranked(members[last], ctx, records[last], last)}
        for index, future in futures:
            results[index] = future.result()
        for index in range(len(members)):
            trace.extend(records[index] if index in records else (next(skips),))
        # Undo and confirmation actions in member order, whichever member finished first (the sort is stable).
        for registered, start in ((ctx.compensations, undo_from), (ctx.confirmations, confirm_from)):
            if len(registered) - start > 1:
                registered[start:] = sorted(registered[start:], key=lambda action: action.rank)
        return [results[index] for index in records]

    def _ranked(
        self, planned: PlannedStep, ctx: Context, trace: _Trace, position: int
    ) -> StepResult | Exception | None:
        """``_timed``, with the member's ``position`` given to the undo actions it registers (concurrent runs)."""
        rank = STEP_RANK.set(position)
        try:
            return self._timed(planned, ctx, trace)
        finally:
            STEP_RANK.reset(rank)

    def _timed(self, planned: PlannedStep, ctx: Context, trace: _Trace) -> StepResult | Exception | None:
        """Run a group member, updating its duration estimate; errors are returned, not raised."""
        started = perf_counter()
        try:
            return self._execute(planned, ctx, trace, tested=True)
        except Exception as exc:  # noqa: BLE001 - returned to the group, which re-raises in member order
            return exc
        finally:
            if self._pool is not None:  # without threads (the dry-run) there is nothing to decide
                elapsed = perf_counter() - started
                previous = self._recent.get(planned.id, elapsed)  # the first duration is the estimate
                self._recent[planned.id] = previous + _RECENT_WEIGHT * (elapsed - previous)

    def _wanted(self, planned: PlannedStep, ctx: Context, trace: _Trace) -> bool:
        """Whether the step's ``when`` holds; a skipped step is traced, a failing condition is a bug."""
        if planned.when is None:
            return True
        started = perf_counter()
        try:
            wanted = planned.when.test(ctx.doc)
        except ExpressionError as exc:
            trace.end(planned.id, "INTERNAL_ERROR", started)
            logger.error("step %s: %s", planned.id, exc)
            raise InternalError(planned.id, exc, str(exc)) from exc
        if not wanted:
            trace.end(planned.id, "skipped", started)
        return wanted

    def _execute(self, planned: PlannedStep, ctx: Context, trace: _Trace, *, tested: bool = False) -> StepResult | None:
        if planned.when is not None and not tested and not self._wanted(planned, ctx, trace):
            return None
        started = perf_counter()
        try:
            if planned.deadline_code and ctx.services.clock.monotonic() >= ctx.deadline:
                raise TransientFault(planned.deadline_code, f"time budget spent before step {planned.id!r}")
            if trace.tracer is not None:
                with trace.tracer.span(planned.id):
                    result = planned.step.run(ctx)
            else:
                result = planned.step.run(ctx)
        except PipelineError as exc:
            trace.end(planned.id, exc.code, started)
            raise
        except ExpressionError as exc:
            trace.end(planned.id, "INTERNAL_ERROR", started)
            logger.error("step %s: %s", planned.id, exc)
            raise InternalError(planned.id, exc, str(exc)) from exc
        except Exception as exc:
            trace.end(planned.id, "INTERNAL_ERROR", started)
            logger.exception("step %s raised %s", planned.id, type(exc).__name__)
            raise InternalError(planned.id, exc) from exc
        output = result.output
        if output is not None and planned.provides:
            ctx.doc[planned.provides] = output if type(output) is dict else dict(output)
        if result.log:
            # From here on, every log line of the invocation carries these fields.
            bind_log_fields(result.log)
        trace.end(planned.id, "stopped" if result.stop else "ok", started, result.decision)
        return result

    def _compensate(self, ctx: Context, error: PipelineError) -> PipelineError:
        """Undo what was done; the run's error, made retryable when an undo that must happen failed.

        Undo actions run in reverse order; those of one parallel group's members run concurrently (when the
        pipeline uses threads), as their side effects were made, so undoing costs one call's time, not one per
        member. An undo raises ``TransientFault`` when its failure leaves state only a retry of the event can
        clean up (a lock held by a message that sent nothing, say): a final error then becomes that fault, so
        the caller retries instead of taking the answer as final.
        """
        ctx.failure = error
        pending = list(reversed(ctx.compensations))
        while pending:
            batch = [pending.pop(0)]
            while batch[0].group and pending and pending[0].group == batch[0].group:
                batch.append(pending.pop(0))
            for compensation, failure in zip(batch, self._undo(batch), strict=True):
                if isinstance(failure, TransientFault):
                    logger.warning("compensation %s failed after %s: %s", compensation.label, error.code, failure.code)
                    if not isinstance(error, TransientFault):
                        error = failure
                elif failure is not None:
                    logger.warning("compensation %s failed: %s", compensation.label, type(failure).__name__)
        ctx.compensations.clear()
        return error

    def _undo(self, batch: list[Compensation]) -> list[Exception | None]:
        """Run the undo actions of ``batch`` (concurrently when there are several and threads); their failures."""
        if self._pool is None or len(batch) < 2:
            return [_attempt(compensation.action) for compensation in batch]
        *others, last = batch
        futures = [self._pool.submit(contextvars.copy_context().run, _attempt, undo.action) for undo in others]
        final = _attempt(last.action)
        return [*(future.result() for future in futures), final]

    @staticmethod
    def _confirm(ctx: Context) -> None:
        """Run the confirmations of a successful run in step order; one that fails is logged, the success stands.

        A confirmation records that work already done is complete (a replay record, say): its failure leaves
        that record as it was, which the step that registered it must make safe.
        """
        for confirmation in ctx.confirmations:
            if (failure := _attempt(confirmation.action)) is not None:
                code = getattr(failure, "code", type(failure).__name__)
                logger.warning("confirmation %s failed: %s", confirmation.label, code)
        ctx.confirmations.clear()


def _attempt(action: Callable[[], None]) -> Exception | None:
    """Run an undo or confirmation action; what it raised, if anything (raised, it would hide how the run ended)."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - returned to the caller, which logs it and decides what it changes
        return exc
    return None
