"""Port wrappers that record every write and send of a replayed event as the contract's actions.

- ``RecordingTables`` / ``RecordingQueues`` perform each call against the world (moto or memory) and
  record it; with ``keep_undo`` they remember the rows a write replaced, so ``--independent`` can put
  the world back as loaded after each event.
- ``PlanningTables`` / ``PlanningQueues`` (no world: the real account) never write or send. A
  conditional write is planned against a read of the current row, so the plan says whether it
  would apply, and planned rows are seen by later reads of the same replay (a burst batches).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine.conditions import Condition
from engine.ports import ItemRequest, QueryPage, Queues, ServiceError, Tables
from tools.dryrun.blueprint import TableSchema, queue_name
from tools.dryrun.memory import as_stored, holds

__all__ = [
    "Action",
    "Journal",
    "PlanningQueues",
    "PlanningTables",
    "ReadsPassedThrough",
    "RecordingQueues",
    "RecordingTables",
]

ActionType = Literal["put_item", "delete_item", "send_message"]


@dataclass(frozen=True)
class Action:
    """One write or send: ``target`` is the table or queue name, ``payload`` the item, key or body."""

    type: ActionType
    target: str
    payload: Any
    delay_seconds: int | None = None
    condition_failed: bool = False


class Journal:
    """The actions (and notes) of the event being replayed, and what to undo afterwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._actions: list[Action] = []
        self._undo: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        self.notes: list[str] = []

    def record(self, action: Action) -> None:
        """Add an action, in the order the calls were made."""
        with self._lock:
            self._actions.append(action)

    def note(self, text: str) -> None:
        """Add a note about the current event (once)."""
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    def remember(self, table: str, key: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """Keep the row a write is about to replace, for ``undo``."""
        with self._lock:
            self._undo.append((table, key, previous))

    def take(self) -> tuple[list[Action], list[str]]:
        """The event's actions and notes; the journal starts over."""
        with self._lock:
            actions, notes = self._actions, self.notes
            self._actions, self.notes = [], []
        return actions, notes

    def undo(self, tables: Tables) -> None:
        """Put back every row the event's writes replaced, newest first."""
        with self._lock:
            entries, self._undo = self._undo, []
        for table, key, previous in reversed(entries):
            if previous is None:
                tables.delete_item(table, key)
            else:
                tables.put_item(table, previous)


class _IndexReads:
    """Index queries answered by ``_inner`` as they are: no wrapper below records or plans a query."""

    _inner: Tables

    def query_pages(
        self, table: str, index: str, key: Mapping[str, str], attributes: Sequence[str] | None = None
    ) -> Iterator[QueryPage]:
        return self._inner.query_pages(table, index, key, attributes)


class ReadsPassedThrough(_IndexReads):
    """Every read (index queries, items, batches of items) answered by ``_inner`` as it is: a wrapper of writes."""

    def get_item(
        self, table: str, key: Mapping[str, str], *, consistent: bool = True, attributes: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        return self._inner.get_item(table, key, consistent=consistent, attributes=attributes)

    def get_items(self, requests: Sequence[ItemRequest]) -> list[dict[str, Any] | None]:
        return self._inner.get_items(requests)


class RecordingTables(ReadsPassedThrough):
    """Tables that performs every call on ``inner`` (a world) and records the writes."""

    def __init__(
        self, inner: Tables, journal: Journal, schemas: Mapping[str, TableSchema], *, keep_undo: bool = False
    ) -> None:
        self._inner = inner
        self._journal = journal
        self._schemas = schemas
        self.keep_undo = keep_undo

    def _remember(self, table: str, key: dict[str, Any]) -> None:
        if self.keep_undo:
            self._journal.remember(table, key, self._inner.get_item(table, key, consistent=True))

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        schema = self._schemas.get(table)
        if schema is not None:
            self._remember(table, schema.key_of(item))
        applied = self._inner.put_item(table, item, condition)
        self._journal.record(Action("put_item", table, dict(item), condition_failed=not applied))
        return applied

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        self._remember(table, dict(key))
        applied = self._inner.delete_item(table, key, condition)
        self._journal.record(Action("delete_item", table, dict(key), condition_failed=not applied))
        return applied


class RecordingQueues:
    """Queues that sends on ``inner`` (a world) and records each message."""

    def __init__(self, inner: Queues, journal: Journal) -> None:
        self._inner = inner
        self._journal = journal

    def send_message(self, queue_url: str, body: str, delay_seconds: int) -> str:
        message_id = self._inner.send_message(queue_url, body, delay_seconds)
        self._journal.record(Action("send_message", queue_name(queue_url), body, delay_seconds))
        return message_id


def _as_stored(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` as a read would return it after DynamoDB stored it (numbers as Decimal, binary as bytes)."""
    return {name: as_stored(value) for name, value in item.items()}


class PlanningTables(_IndexReads):
    """Tables that reads from ``inner`` (the real account) and only plans writes.

    ``describe`` gives a table's key schema (None when it cannot be read); without it a conditional
    write cannot be checked and is planned as applying, with a note.
    """

    def __init__(self, inner: Tables, journal: Journal, describe: Callable[[str], TableSchema | None]) -> None:
        self._inner = inner
        self._journal = journal
        self._describe = describe
        self._planned: dict[tuple[str, tuple[Any, ...]], dict[str, Any] | None] = {}

    def reset(self) -> None:
        """Forget the planned rows (``--independent``)."""
        self._planned.clear()

    def get_item(
        self, table: str, key: Mapping[str, str], *, consistent: bool = True, attributes: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        slot = self._slot(table, key)
        if slot is not None and slot in self._planned:
            planned = self._planned[slot]
            if planned is None:
                return None
            return {name: value for name, value in planned.items() if not attributes or name in attributes}
        return self._inner.get_item(table, key, consistent=consistent, attributes=attributes)

    def get_items(self, requests: Sequence[ItemRequest]) -> list[dict[str, Any] | None]:
        """Planned rows as planned; the others read from the account in one batch."""
        slots = [self._slot(request.table, request.key) for request in requests]
        unplanned = [request for request, slot in zip(requests, slots, strict=True) if slot not in self._planned]
        read = iter(self._inner.get_items(unplanned) if unplanned else [])
        return [
            next(read)
            if slot not in self._planned
            else self.get_item(request.table, request.key, attributes=request.attributes)
            for request, slot in zip(requests, slots, strict=True)
        ]

    def _slot(self, table: str, key: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]] | None:
        schema = self._describe(table)
        if schema is None or any(name not in key for name in schema.key_names):
            return None
        return table, tuple(key[name] for name in schema.key_names)

    def _would_apply(self, operation: str, table: str, key: Mapping[str, Any], condition: Condition | None) -> bool:
        if condition is None:
            return True
        schema = self._describe(table)
        if schema is None:
            self._journal.note(f"{operation} on {table}: condition not checked (the table's key schema is unknown)")
            return True
        try:
            current = self.get_item(table, schema.key_of(key), consistent=True)
        except ServiceError as exc:
            self._journal.note(f"{operation} on {table}: condition not checked (reading the row failed: {exc.code})")
            return True
        return holds(condition, current)

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        applies = self._would_apply("put_item", table, item, condition)
        self._journal.record(Action("put_item", table, dict(item), condition_failed=not applies))
        slot = self._slot(table, item)
        if applies and slot is not None:
            self._planned[slot] = _as_stored(item)
        return applies

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        applies = self._would_apply("delete_item", table, key, condition)
        self._journal.record(Action("delete_item", table, dict(key), condition_failed=not applies))
        slot = self._slot(table, key)
        if applies and slot is not None:
            self._planned[slot] = None
        return applies


class PlanningQueues:
    """Queues that only plans sends."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._count = 0

    def send_message(self, queue_url: str, body: str, delay_seconds: int) -> str:
        self._journal.record(Action("send_message", queue_name(queue_url), body, delay_seconds))
        self._count += 1
        return f"planned-{self._count}"
