"""A monotonic clock the test moves by hand, injected into an application's services (its deadline clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.clock import SystemClock


class SteppedClock:
    """Monotonic time stands still until ``advance`` moves it (deadlines, not load, decide).

    Wall time is real, or, given ``wall``, fixed there and moved on by ``advance`` too: times the test writes
    (a lease's end, say) and the times the application reads are then one clock's, however long the run takes.
    """

    def __init__(self, wall: datetime | None = None) -> None:
        self.at = 1000.0
        self._wall = wall

    def now(self) -> datetime:
        return datetime.now(UTC) if self._wall is None else self._wall

    def epoch(self) -> int:
        """The wall clock's whole seconds since the epoch, as a lease's ``expires_at`` is written."""
        return int(self.now().timestamp())

    def monotonic(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds
        if self._wall is not None:
            self._wall += timedelta(seconds=seconds)


def install_clock(application: Any, wall: datetime | None = None) -> SteppedClock:
    """Give ``application`` a stepped clock for its runs (the secret cache keeps its own).

    Its time budget is then spent only by ``advance``: a test that is not about deadlines cannot see the pipeline's
    deadline expire however loaded the machine is (the budget is measured in benchmarks, not in tests).
    """
    clock = SteppedClock(wall)
    application.replace_services(clock=clock)
    return clock


def slow_machine(monkeypatch: pytest.MonkeyPatch, seconds_per_read: float) -> None:
    """The real deadline clock (``SystemClock.monotonic``) moves ``seconds_per_read`` on at every read.

    It stands in for a machine so loaded that each step takes that long: a container whose deadline clock is real
    spends its budget within a few steps, one on a ``SteppedClock`` never does.
    """
    real = SystemClock.monotonic
    reads = iter(range(1, 1 << 62))
    monkeypatch.setattr(SystemClock, "monotonic", lambda self: real(self) + next(reads) * seconds_per_read)
