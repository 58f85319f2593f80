"""Ports answered instantly from memory: a benchmark instrument that takes AWS out of the measurement.

Reads return items held in memory (projected like DynamoDB when attributes are given); writes and
sends always succeed and keep nothing, so every event is a fresh routed message that takes its lock.
An optional ``delay`` sleeps before each call (the sleep releases the GIL, like a network wait).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from engine.clock import SystemClock
from engine.conditions import Condition
from engine.context import Services
from engine.ports import ItemRequest, QueryPage
from engine.secrets import SecretCache

__all__ = ["InstantQueues", "InstantSecrets", "InstantTables", "instant_services"]


def _project(item: Mapping[str, Any], attributes: Sequence[str] | None) -> dict[str, Any]:
    if not attributes:
        return dict(item)
    return {name: item[name] for name in attributes if name in item}


class InstantTables:
    """The Tables port over a list of conversation items; writes succeed and are dropped."""

    def __init__(self, items: Iterable[Mapping[str, Any]], delay: float = 0.0) -> None:
        self._by_key = {(item["primary_channel"], item["conversation_id"]): item for item in items}
        self._by_pair: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for item in self._by_key.values():
            pair = (str(item["gsi_company_whatsapp_number"]), str(item["gsi_recipient_tel"]))
            self._by_pair.setdefault(pair, []).append(item)
        self._delay = delay

    def _wait(self) -> None:
        if self._delay:
            time.sleep(self._delay)

    def query_pages(
        self, table: str, index: str, key: Mapping[str, str], attributes: Sequence[str] | None = None
    ) -> Iterator[QueryPage]:
        self._wait()
        company, user = (str(value) for value in key.values())
        yield QueryPage([_project(item, attributes) for item in self._by_pair.get((company, user), [])], more=False)

    def get_item(
        self, table: str, key: Mapping[str, str], *, consistent: bool = True, attributes: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        self._wait()
        item = self._by_key.get((key["primary_channel"], key["conversation_id"]))
        return None if item is None else _project(item, attributes)

    def get_items(self, requests: Sequence[ItemRequest]) -> list[dict[str, Any] | None]:
        self._wait()
        found: list[dict[str, Any] | None] = []
        for request in requests:
            item = self._by_key.get((request.key.get("primary_channel"), request.key.get("conversation_id")))
            found.append(None if item is None else _project(item, request.attributes))
        return found

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        self._wait()
        return True

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        self._wait()
        return True


class InstantQueues:
    """The Queues port; every send succeeds."""

    def __init__(self, delay: float = 0.0) -> None:
        self._delay = delay
        self.sent = 0

    def send_message(self, queue_url: str, body: str, delay_seconds: int) -> str:
        if self._delay:
            time.sleep(self._delay)
        self.sent += 1
        return f"message-{self.sent}"


class InstantSecrets:
    """The SecretStore port over a dict of secret name to JSON value."""

    def __init__(self, secrets: Mapping[str, Any], delay: float = 0.0) -> None:
        self._secrets = {name: json.dumps(value) for name, value in secrets.items()}
        self._delay = delay

    def get_secret_string(self, name: str) -> str:
        if self._delay:
            time.sleep(self._delay)
        return self._secrets[name]


def instant_services(items: Iterable[Mapping[str, Any]], secrets: Mapping[str, Any], delay: float = 0.0) -> Services:
    """Services whose every AWS call is answered from memory (after ``delay`` seconds)."""
    clock = SystemClock()
    return Services(
        tables=InstantTables(items, delay),
        queues=InstantQueues(delay),
        secrets=SecretCache(InstantSecrets(secrets, delay), clock),
        clock=clock,
    )
