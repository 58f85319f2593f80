"""The runner's parallel groups: threads while the members are slow, inline once they prove fast.

The steps here are small recording steps (the runner is the unit under test); the services are the
in-memory ones the dry-run uses, and no member ever touches them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from engine import runner
from engine.clock import SystemClock
from engine.context import Context, Services, StepResult
from engine.errors import StepFailure, TransientFault
from engine.expressions import compile_expression
from engine.runner import ParallelGroup, Pipeline, PlannedStep
from engine.secrets import SecretCache
from tools.dryrun.memory import MemoryQueues, MemorySecrets, MemoryTables


@dataclass
class Recording:
    """A step that sleeps, notes the thread it ran on, and optionally fails."""

    seconds: float = 0.0
    fail: str | None = None
    threads: list[str] = field(default_factory=list)

    def run(self, ctx: Context) -> StepResult:
        self.threads.append(threading.current_thread().name)
        if self.seconds:
            time.sleep(self.seconds)
        if self.fail:
            raise StepFailure(self.fail, "refused")
        return StepResult(output={"ran": True})


def _services() -> Services:
    clock = SystemClock()
    return Services(MemoryTables({}), MemoryQueues(()), SecretCache(MemorySecrets({}), clock), clock)


def _group(stage: Recording, lock: Recording, *, lock_when: str | None = None, concurrent: bool = True) -> Pipeline:
    when = compile_expression(lock_when) if lock_when else None
    members = (
        PlannedStep("stage", "test.stage", stage, "stage"),
        PlannedStep("lock", "test.lock", lock, "lock", when),
    )
    return Pipeline("test", [ParallelGroup(members)], deadline_seconds=4, concurrent=concurrent)


def _main_thread_share(step: Recording) -> list[bool]:
    return [name == threading.current_thread().name for name in step.threads]


def test_slow_members_run_in_a_worker_thread_every_time() -> None:
    stage, lock = Recording(seconds=0.005), Recording(seconds=0.005)
    pipeline = _group(stage, lock)
    for _ in range(4):
        result = pipeline.run({}, _services())
        assert result.error is None and [entry.step for entry in result.trace] == ["stage", "lock"]
    # The first member goes to the worker, the last stays in the calling thread.
    assert _main_thread_share(stage) == [False] * 4
    assert _main_thread_share(lock) == [True] * 4


def test_fast_members_run_inline_once_they_are_known_to_be_fast() -> None:
    stage, lock = Recording(), Recording()
    pipeline = _group(stage, lock)
    for _ in range(12):
        pipeline.run({}, _services())
    # Nothing is known before the first run: it uses the thread; then a hand-off would cost more than it saves
    # (a run slowed down by the machine may keep the thread for a few more runs, never for good).
    assert _main_thread_share(stage)[0] is False
    assert _main_thread_share(stage)[-3:] == [True, True, True]
    assert _main_thread_share(lock) == [True] * 12


def test_members_that_turn_slow_go_back_to_the_thread() -> None:
    stage, lock = Recording(), Recording()
    pipeline = _group(stage, lock)
    for _ in range(3):
        pipeline.run({}, _services())
    stage.seconds = lock.seconds = 4 * runner.CONCURRENCY_PAYS_SECONDS
    for _ in range(4):
        pipeline.run({}, _services())
    assert _main_thread_share(stage)[1:3] == [True, True]
    assert _main_thread_share(stage)[-1] is False


def test_a_group_with_one_active_member_runs_it_inline_and_traces_the_skip_in_member_order() -> None:
    stage, lock = Recording(seconds=0.005), Recording()
    pipeline = _group(stage, lock, lock_when="request.lock")
    result = pipeline.run({}, _services())
    assert _main_thread_share(stage) == [True] and lock.threads == []
    assert [(entry.step, entry.status) for entry in result.trace] == [("stage", "ok"), ("lock", "skipped")]


@pytest.mark.parametrize("warm_runs", [0, 3])
def test_every_member_runs_to_its_end_and_the_first_error_in_member_order_wins(warm_runs: int) -> None:
    stage, lock = Recording(), Recording()
    pipeline = _group(stage, lock)
    for _ in range(warm_runs):
        pipeline.run({}, _services())
    stage.fail, lock.fail = "STAGE_WRITE_ERROR", "TRIGGER_LOCK_WRITE_ERROR"
    result = pipeline.run({}, _services())
    assert result.error_code == "STAGE_WRITE_ERROR"
    assert len(stage.threads) == len(lock.threads) == warm_runs + 1
    assert [(entry.step, entry.status) for entry in result.trace] == [
        ("stage", "STAGE_WRITE_ERROR"),
        ("lock", "TRIGGER_LOCK_WRITE_ERROR"),
    ]


def test_a_pipeline_built_without_concurrency_never_uses_a_thread() -> None:
    stage, lock = Recording(seconds=0.005), Recording(seconds=0.005)
    pipeline = _group(stage, lock, concurrent=False)
    for _ in range(2):
        pipeline.run({}, _services())
    assert _main_thread_share(stage) == _main_thread_share(lock) == [True, True]


def test_a_member_condition_that_fails_is_traced_and_nothing_runs() -> None:
    stage, lock = Recording(), Recording()
    pipeline = _group(stage, lock, lock_when="length(request.lock)")
    result = pipeline.run({"request": {"lock": 7}}, _services())
    assert result.error_code == "INTERNAL_ERROR"
    assert [(entry.step, entry.status) for entry in result.trace] == [("lock", "INTERNAL_ERROR")]
    assert stage.threads == lock.threads == []


@dataclass
class Confirming:
    """A step that registers an undo and a confirmation (noted in ``log``), then ends as told."""

    name: str
    log: list[str]
    fail: str | None = None
    outcome: str | None = None
    stop: bool = False
    confirmation_fails: bool = False
    seconds_first: float = 0.0

    def run(self, ctx: Context) -> StepResult:
        ctx.on_failure(f"undo {self.name}", lambda: self.log.append(f"undo {self.name}"))
        ctx.on_success(f"confirm {self.name}", self._confirm)
        if self.seconds_first:
            time.sleep(self.seconds_first)
        if self.fail:
            raise StepFailure(self.fail, "refused")
        return StepResult(output={"ran": True}, outcome=self.outcome, stop=self.stop)

    def _confirm(self) -> None:
        if self.confirmation_fails:
            raise RuntimeError("the confirmation's write failed")
        self.log.append(f"confirm {self.name}")


def _confirming(*steps: Confirming, parallel: bool = False) -> Pipeline:
    planned = tuple(PlannedStep(step.name, f"test.{step.name}", step, step.name) for step in steps)
    nodes: list[PlannedStep | ParallelGroup] = [ParallelGroup(planned)] if parallel else list(planned)
    return Pipeline("test", nodes, deadline_seconds=4)


def test_confirmations_run_after_a_success_in_step_order_and_never_after_a_failure() -> None:
    log: list[str] = []
    # The first member finishes last: confirmations still run in member order.
    first, second = Confirming("a", log, seconds_first=0.05), Confirming("b", log)
    result = _confirming(first, second, parallel=True).run({}, _services())
    assert result.error is None and log == ["confirm a", "confirm b"]

    log.clear()
    result = _confirming(Confirming("a", log), Confirming("b", log, fail="REFUSED")).run({}, _services())
    assert result.error_code == "REFUSED" and log == ["undo b", "undo a"]


def test_a_run_stopped_with_an_outcome_is_a_success_and_is_confirmed() -> None:
    log: list[str] = []
    pipeline = _confirming(Confirming("a", log, outcome="BATCHED", stop=True), Confirming("b", log))
    result = pipeline.run({}, _services())
    assert (result.outcome, result.error) == ("BATCHED", None) and log == ["confirm a"]


def test_a_failed_confirmation_is_logged_and_the_success_stands(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    pipeline = _confirming(Confirming("a", log, confirmation_fails=True), Confirming("b", log, outcome="QUEUED"))
    result = pipeline.run({}, _services())
    assert (result.outcome, result.error) == ("QUEUED", None)
    assert log == ["confirm b"]
    assert "confirmation confirm a failed: RuntimeError" in caplog.text


class Undoing:
    """A step that registers an undo meeting the other undos at ``meeting`` (it waits for them), then succeeds."""

    def __init__(self, name: str, meeting: threading.Barrier, log: list[str], *, transient: bool = False) -> None:
        self.name, self.meeting, self.log, self.transient = name, meeting, log, transient

    def run(self, ctx: Context) -> StepResult:
        ctx.on_failure(f"undo {self.name}", self._undo)
        return StepResult(output={"ran": True})

    def _undo(self) -> None:
        try:
            self.meeting.wait()
        except threading.BrokenBarrierError:
            self.log.append(f"{self.name} waited alone")
        else:
            self.log.append(f"{self.name} met the others")
        if self.transient:
            raise TransientFault("LOCK_TRANSIENT_ERROR", "the release did not answer")


def _undoing_group(members: list[Undoing], *, concurrent: bool = True) -> Pipeline:
    planned = tuple(PlannedStep(step.name, f"test.{step.name}", step, step.name) for step in members)
    failing = PlannedStep("send", "test.send", Recording(fail="QUEUE_ERROR"), None)
    return Pipeline("test", [ParallelGroup(planned), failing], deadline_seconds=4, concurrent=concurrent)


def test_a_groups_undo_actions_run_concurrently_so_undoing_costs_one_call_not_one_per_member() -> None:
    log: list[str] = []
    meeting = threading.Barrier(2, timeout=30)  # met as soon as both undos run; only undos one after another wait
    members = [Undoing("lock", meeting, log, transient=True), Undoing("replay", meeting, log)]
    result = _undoing_group(members).run({}, _services())
    assert sorted(log) == ["lock met the others", "replay met the others"]
    # A failed undo that must happen still makes the run's final error retryable.
    assert result.transient and result.error_code == "LOCK_TRANSIENT_ERROR"


def test_without_threads_a_groups_undo_actions_run_one_after_another_in_reverse_member_order() -> None:
    log: list[str] = []
    meeting = threading.Barrier(2, timeout=0.05)
    result = _undoing_group([Undoing("lock", meeting, log), Undoing("replay", meeting, log)], concurrent=False).run(
        {}, _services()
    )
    assert result.error_code == "QUEUE_ERROR"
    assert log == ["replay waited alone", "lock waited alone"]
