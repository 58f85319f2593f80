"""A monotonic clock the test moves by hand, injected into an application's services (its deadline clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class SteppedClock:
    """Wall time is real; monotonic time stands still until ``advance`` moves it (deadlines, not load, decide)."""

    def __init__(self) -> None:
        self.at = 1000.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


def install_clock(application: Any) -> SteppedClock:
    """Give ``application`` a stepped clock for its runs (the secret cache keeps its own)."""
    clock = SteppedClock()
    application.replace_services(clock=clock)
    return clock
