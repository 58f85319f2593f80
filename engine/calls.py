"""Bounds on every call a pipeline makes to an outside service (the pipeline file's ``aws:`` block)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CallLimits"]


class CallLimits(NamedTuple):
    """Time bounds for each call (seconds) and the attempt count (first try included)."""

    connect_timeout: float = 0.5
    read_timeout: float = 1.0
    max_attempts: int = 2
