"""Every AWS call a boto3 session makes: its wall-clock interval, its parameters and the bytes it read.

Handlers on the session's botocore events record each API call from ``before-parameter-build`` to
``after-call``; an optional delay sleeps in ``before-send`` (registered first, so it runs before an
in-process emulator answers), which stands for the network round trip of the real service.
Overlapping intervals are one sequential round trip: calls issued concurrently cost one wait.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AwsCall", "CallRecorder", "busy_time", "sequential_round_trips"]


@dataclass(frozen=True)
class AwsCall:
    """One API call: ``service.Operation``, its interval (perf_counter seconds), parameters and what it read.

    ``body``, ``status`` and ``headers`` are the HTTP response; ``attributes`` the item attribute names
    a DynamoDB read returned (every item's, for a query).
    """

    operation: str
    start: float
    end: float
    params: dict[str, Any]
    status: int
    headers: dict[str, str]
    body: bytes
    attributes: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """The operation without its service, e.g. ``GetItem``."""
        return self.operation.split(".", 1)[1]

    @property
    def response_bytes(self) -> int:
        """The length of the HTTP response body."""
        return len(self.body)


def busy_time(calls: Sequence[AwsCall]) -> float:
    """Seconds during which at least one call was in flight (the union of the intervals)."""
    total, horizon = 0.0, float("-inf")
    for call in sorted(calls, key=lambda c: c.start):
        start = max(call.start, horizon)
        if call.end > start:
            total += call.end - start
        horizon = max(horizon, call.end)
    return total


def sequential_round_trips(calls: Sequence[AwsCall]) -> int:
    """How many waits the calls cost in sequence: overlapping intervals merge into one."""
    count = 0
    horizon = float("-inf")
    for call in sorted(calls, key=lambda c: c.start):
        if call.start >= horizon:
            count += 1
            horizon = call.end
        else:
            horizon = max(horizon, call.end)
    return count


def _attributes(parsed: dict[str, Any]) -> frozenset[str]:
    items = list(parsed.get("Items") or [])
    if isinstance(parsed.get("Item"), dict):
        items.append(parsed["Item"])
    for batch in (parsed.get("Responses") or {}).values():  # BatchGetItem: items by table
        items.extend(batch)
    return frozenset(name for item in items for name in item)


@dataclass
class CallRecorder:
    """Attach to a boto3 session before its clients are created; ``calls`` then fills as they run."""

    delay: float = 0.0
    keep_params: bool = True
    calls: list[AwsCall] = field(default_factory=list)
    _open: dict[int, tuple[str, float, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, session: Any) -> None:
        """Register the handlers on ``session`` (a ``boto3.session.Session``)."""
        events = session.events
        events.register("before-parameter-build", self._started)
        events.register("after-call", self._ended)
        events.register_first("before-send", self._send)

    def take(self) -> list[AwsCall]:
        """The calls recorded so far, and forget them."""
        with self._lock:
            taken, self.calls = self.calls, []
        return taken

    def _started(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        operation = f"{model.service_model.service_name}.{model.name}"
        self._open[id(context)] = (operation, time.perf_counter(), copy.deepcopy(params) if self.keep_params else {})

    def _send(self, **_: Any) -> None:
        if self.delay:
            time.sleep(self.delay)

    def _ended(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        end = time.perf_counter()
        opened = self._open.pop(id(context), None)
        if opened is None:
            return
        operation, start, params = opened
        content = bytes(getattr(http_response, "content", b"") or b"")
        status = int(getattr(http_response, "status_code", 0))
        headers = {str(key): str(value) for key, value in dict(getattr(http_response, "headers", {}) or {}).items()}
        call = AwsCall(operation, start, end, params, status, headers, content, _attributes(parsed))
        with self._lock:
            self.calls.append(call)
