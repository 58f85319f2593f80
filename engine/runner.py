"""The step runner: ordered steps, ``when`` conditions, parallel groups, timing, trace and compensation.

A step ends in one of four ways, never mixed: a ``StepResult`` (its output is stored under the key it
provides), a ``StepFailure`` (final business error), a ``TransientFault`` (retryable) or any other
exception (a bug: wrapped in ``InternalError`` with the step id). On any error the compensations
registered so far run in reverse order before the run ends.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from engine import tracing
from engine.context import Context, RuleTrace, Services, StepResult
from engine.errors import InternalError, PipelineError, TransientFault
from engine.expressions import Expression, ExpressionError
from engine.logs import bind, loggable_conversation_id
from engine.registry import Step

__all__ = ["ParallelGroup", "Pipeline", "PlannedStep", "RunResult", "TraceEntry"]

logger = logging.getLogger("engine.runner")


@dataclass(frozen=True)
class PlannedStep:
    """A built step in its place in the pipeline."""

    id: str
    uses: str
    step: Step
    provides: str | None
    when: Expression | None = None
    deadline_code: str | None = None


@dataclass(frozen=True)
class ParallelGroup:
    """Steps issued concurrently; the group ends when all of them have."""

    members: tuple[PlannedStep, ...]


@dataclass(frozen=True)
class TraceEntry:
    """One step's record: status is ok, skipped, stopped or the error code it ended with."""

    step: str
    status: str
    ms: float
    decision: str | None = None


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


class Pipeline:
    """An ordered list of built steps; immutable after construction, safe to run for every event."""

    def __init__(
        self,
        name: str,
        nodes: Sequence[Node],
        *,
        deadline_seconds: float,
        default_outcome: str = "COMPLETED",
        concurrent: bool = True,
    ) -> None:
        """Build the pipeline; ``concurrent=False`` runs parallel groups without threads.

        Members then run one after another (the dry-run: same decisions and trace, a deterministic
        order); each still runs to its end and errors are raised in member order, as with threads.
        """
        self.name = name
        self.nodes = tuple(nodes)
        self.deadline_seconds = deadline_seconds
        self.default_outcome = default_outcome
        needs_pool = concurrent and any(isinstance(node, ParallelGroup) for node in self.nodes)
        width = max((len(n.members) for n in self.nodes if isinstance(n, ParallelGroup)), default=1)
        self._pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="step") if needs_pool else None

    def steps(self) -> list[PlannedStep]:
        """Every step, parallel members flattened, in pipeline order."""
        flat: list[PlannedStep] = []
        for node in self.nodes:
            flat.extend(node.members if isinstance(node, ParallelGroup) else (node,))
        return flat

    def run(
        self,
        event: Mapping[str, Any],
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
        trace: list[TraceEntry] = []
        outcome: str | None = None
        error: PipelineError | None = None
        try:
            for node in self.nodes:
                if isinstance(node, ParallelGroup):
                    outcome = self._run_group(node, ctx, trace) or outcome
                else:
                    outcome = self._run_step(node, ctx, trace) or outcome
        except _Stop as stop:
            outcome = stop.outcome or outcome
        except PipelineError as exc:
            error = self._compensate(ctx, exc)
        final = error.code if error else (outcome or self.default_outcome)
        return RunResult(final, error, ctx.doc, trace, ctx.rules)

    def _run_step(self, planned: PlannedStep, ctx: Context, trace: list[TraceEntry]) -> str | None:
        result = self._execute(planned, ctx, trace)
        if result is None:
            return None
        if result.stop:
            raise _Stop(result.outcome)
        return result.outcome

    def _run_group(self, group: ParallelGroup, ctx: Context, trace: list[TraceEntry]) -> str | None:
        records: list[list[TraceEntry]] = [[] for _ in group.members]
        if self._pool is None:
            return self._group_outcome(
                [self._capture(member, ctx, records[index]) for index, member in enumerate(group.members)],
                records,
                trace,
            )
        futures = [
            # In a copy of this context, so that the members' log lines carry the invocation's ids.
            self._pool.submit(contextvars.copy_context().run, self._capture, member, ctx, records[index])
            for index, member in enumerate(group.members[:-1])
        ]
        last = self._capture(group.members[-1], ctx, records[-1])
        return self._group_outcome([future.result() for future in futures] + [last], records, trace)

    @staticmethod
    def _group_outcome(
        results: list[StepResult | Exception | None], records: list[list[TraceEntry]], trace: list[TraceEntry]
    ) -> str | None:
        for record in records:
            trace.extend(record)
        for item in results:
            if isinstance(item, Exception):
                raise item
        outcome: str | None = None
        for item in results:
            if isinstance(item, StepResult) and item.stop:
                raise _Stop(item.outcome)
            if isinstance(item, StepResult) and item.outcome:
                outcome = item.outcome
        return outcome

    def _capture(self, planned: PlannedStep, ctx: Context, trace: list[TraceEntry]) -> StepResult | Exception | None:
        try:
            return self._execute(planned, ctx, trace)
        except Exception as exc:  # noqa: BLE001 - returned to the group, which re-raises in member order
            return exc

    def _execute(self, planned: PlannedStep, ctx: Context, trace: list[TraceEntry]) -> StepResult | None:
        started = perf_counter()
        try:
            if planned.when is not None and not planned.when.test(ctx.doc):
                trace.append(TraceEntry(planned.id, "skipped", _ms(started)))
                _log_step(planned.id, "skipped", started)
                return None
            if planned.deadline_code and ctx.time_left() <= 0:
                raise TransientFault(planned.deadline_code, f"time budget spent before step {planned.id!r}")
            with tracing.subsegment(planned.id):
                result = planned.step.run(ctx)
        except PipelineError as exc:
            trace.append(TraceEntry(planned.id, exc.code, _ms(started)))
            _log_step(planned.id, exc.code, started)
            raise
        except ExpressionError as exc:
            trace.append(TraceEntry(planned.id, "INTERNAL_ERROR", _ms(started)))
            logger.error("step %s: %s", planned.id, exc)
            raise InternalError(planned.id, exc, str(exc)) from exc
        except Exception as exc:
            trace.append(TraceEntry(planned.id, "INTERNAL_ERROR", _ms(started)))
            logger.exception("step %s raised %s", planned.id, type(exc).__name__)
            raise InternalError(planned.id, exc) from exc
        if result.output is not None and planned.provides:
            ctx.doc[planned.provides] = dict(result.output)
            if "conversation_id" in result.output:
                # From here on, every log line of the invocation names the conversation.
                bind(conversation_id=loggable_conversation_id(result.output["conversation_id"]))
        status = "stopped" if result.stop else "ok"
        trace.append(TraceEntry(planned.id, status, _ms(started), result.decision))
        _log_step(planned.id, status, started, result.decision)
        return result

    @staticmethod
    def _compensate(ctx: Context, error: PipelineError) -> PipelineError:
        """Undo what was done; the run's error, made retryable when an undo that must happen failed.

        An undo raises ``TransientFault`` when its failure leaves state only a retry of the event can
        clean up (e.g. a trigger lock held by a message that sent nothing): a final error then becomes
        that fault, so the caller retries instead of taking the answer as final.
        """
        for compensation in reversed(ctx.compensations):
            try:
                compensation.action()
            except TransientFault as exc:
                logger.warning("compensation %s failed after %s: %s", compensation.label, error.code, exc.code)
                if not isinstance(error, TransientFault):
                    error = exc
            except Exception as exc:  # noqa: BLE001 - a failed undo must not hide the original error
                logger.warning("compensation %s failed: %s", compensation.label, type(exc).__name__)
        ctx.compensations.clear()
        return error


def _ms(started: float) -> float:
    return round((perf_counter() - started) * 1000, 3)


def _log_step(step_id: str, status: str, started: float, decision: str | None = None) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "step",
            extra={"step": step_id, "status": status, "ms": _ms(started), "decision": decision},
        )
