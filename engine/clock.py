"""Clocks: the wall clock for timestamps and a monotonic clock for durations and deadlines."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock", "iso_millis"]


class Clock(Protocol):
    """What steps and the runner read time from."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def iso_millis(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` suffix, e.g. ``2026-11-25T12:00:00.123Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
