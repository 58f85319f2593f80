"""What a benchmark figure is: a measurement, its same-run baseline, the ratio and the target it is judged by."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Figure", "Sizes", "median", "percentile"]


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does: the full suite, or tiny sizes that only keep the harness alive."""

    smoke: bool
    cold_start_runs: int
    overhead_events: int
    overhead_repeats: int
    latency_events: int
    moto_messages: int
    moto_repeats: int
    history_entries: int
    dryrun_events: int
    dryrun_conversations: int
    memory_events: int

    @classmethod
    def full(cls) -> Sizes:
        """The sizes the issue specifies."""
        return cls(False, 15, 600, 7, 40, 300, 3, 300, 10_000, 1_000, 200)

    @classmethod
    def tiny(cls) -> Sizes:
        """Enough to run every code path once or twice, in seconds."""
        return cls(True, 1, 20, 2, 2, 3, 1, 300, 20, 5, 5)


@dataclass
class Figure:
    """One row of the table. ``passed`` is None for figures that are reported, not judged."""

    key: str
    title: str
    unit: str
    measured: float
    baseline_label: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    return float(statistics.median(values)) if values else 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile by nearest rank (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return float(ordered[rank])
