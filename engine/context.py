"""What a step sees while it runs: the event, the injected services and the context document.

``Context.doc`` is the document JMESPath conditions read: each step's output sits under the key the
step provides (``request``, ``conversation``, ``route``…), so nothing overwrites anything else.
``Context.private`` holds what must never reach a condition, a log or the dry-run output
(auth tokens, the raw form pairs, the signature).

Log fields (``bind_log_fields``) are the names and values every following log line of the invocation
carries (a conversation id, say); the host's log formatter reads them with ``log_fields``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from engine.clock import Clock
from engine.errors import PipelineError
from engine.ports import Queues, Tables
from engine.secrets import SecretCache

__all__ = [
    "Compensation",
    "Context",
    "RuleTrace",
    "Services",
    "StepResult",
    "Tracer",
    "bind_log_fields",
    "log_fields",
]

# The records a run passes around are NamedTuples (a tenth of a frozen dataclass's cost to define at cold
# start); a default shared by every RuleTrace must be read-only.
_NO_INPUTS: Mapping[str, Any] = MappingProxyType({})
_LOG_FIELDS: ContextVar[Mapping[str, str]] = ContextVar("log_fields", default=MappingProxyType({}))


def bind_log_fields(fields: Mapping[str, str], *, replace: bool = False) -> None:
    """Add ``fields`` to (or, with ``replace``, make them) the fields of every following log line."""
    _LOG_FIELDS.set(MappingProxyType(dict(fields) if replace else {**_LOG_FIELDS.get(), **fields}))


def log_fields() -> Mapping[str, str]:
    """The fields bound for this invocation's log lines."""
    return _LOG_FIELDS.get()


class Tracer(Protocol):
    """Records spans (one per step) when the host traces the invocation."""

    def active(self) -> bool:
        """Whether this invocation is traced (read once per run)."""
        ...

    def span(self, name: str) -> AbstractContextManager[object]:
        """A span around a step's work."""
        ...


def random_id() -> str:
    """A new id no other run will draw: 128 random bits, as 32 hex digits."""
    return os.urandom(16).hex()


@dataclass(frozen=True)
class Services:
    """Side effects, injected: the live Lambda, tests and the dry-run each pass their own.

    ``ids`` draws a new unique id per call (a run's claim on what it writes: ``replay.record``'s ``writer``).
    """

    tables: Tables
    queues: Queues
    secrets: SecretCache
    clock: Clock
    tracer: Tracer | None = None
    ids: Callable[[], str] = random_id


class StepResult(NamedTuple):
    """A step's normal end: its output, an optional outcome, and whether the pipeline stops here.

    ``log`` are fields every following log line of the invocation carries (never personal data).
    """

    output: Mapping[str, Any] | None = None
    outcome: str | None = None
    stop: bool = False
    decision: str | None = None
    log: Mapping[str, str] | None = None


class RuleTrace(NamedTuple):
    """One rule that was tried, and what its condition read."""

    ruleset: str
    rule: str
    matched: bool
    inputs: Mapping[str, Any] = _NO_INPUTS


class Compensation(NamedTuple):
    """An action a step registers after a side effect: an undo if the run fails, or a confirmation if it succeeds.

    ``rank`` is the registering step's place in its parallel group (0 outside one): the runner puts a group's
    undo actions in member order, so they run in a fixed order whichever member finished first. ``group`` (set by
    the runner) is the group's place in the pipeline, 0 outside one: a group's undo actions may run concurrently.
    """

    label: str
    action: Callable[[], None]
    rank: int = 0
    group: int = 0


# The place in its parallel group of the member step running in this thread (set by the runner).
STEP_RANK: ContextVar[int] = ContextVar("step_rank", default=0)


@dataclass
class Context:
    """Per-event state, created by the runner for one event and dropped afterwards."""

    event: Any
    services: Services
    deadline: float
    explain: bool = False
    doc: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)
    rules: list[RuleTrace] = field(default_factory=list)
    compensations: list[Compensation] = field(default_factory=list)
    confirmations: list[Compensation] = field(default_factory=list)
    # Why the run failed, set by the runner before the undo actions run: an action may depend on it.
    failure: PipelineError | None = None

    def on_failure(self, label: str, action: Callable[[], None]) -> None:
        """Register ``action`` to undo a side effect if the run ends in an error (``failure`` says which)."""
        self.compensations.append(Compensation(label, action, STEP_RANK.get()))

    def on_success(self, label: str, action: Callable[[], None]) -> None:
        """Register ``action`` to confirm a side effect once the run has ended without an error (best effort)."""
        self.confirmations.append(Compensation(label, action, STEP_RANK.get()))

    def time_left(self) -> float:
        """Seconds until the invocation's deadline."""
        return self.deadline - self.services.clock.monotonic()
