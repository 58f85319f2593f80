"""The ports through which steps reach the outside world.

Steps depend on these protocols only. The runtime implements them with boto3 (live Lambda, tests
against moto); the dry-run wraps them to record or plan writes. Items are plain Python values (numbers
as ``Decimal``, binary as ``bytes``); ``steps.support.json_safe`` turns them into JSON values. Adapters raise
``ServiceError`` for every failure, classified by whether a retry can help and whether the request may
have been applied anyway (a write whose outcome is unknown).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from engine.conditions import Condition

__all__ = ["ErrorKind", "ItemRequest", "QueryPage", "Queues", "SecretStore", "ServiceError", "Tables"]

ErrorKind = Literal["transient", "not_found", "denied", "invalid", "permanent"]


@dataclass
class ServiceError(Exception):
    """A call to an outside service failed. ``kind`` says whether a retry can help; ``code`` is the service's own.

    ``outcome_unknown``: the service may have applied the request all the same (a timeout, a lost or 5xx answer,
    on the last attempt or an earlier one the client retried). An error answer alone (throttling, a refusal)
    means that nothing was applied.
    """

    kind: ErrorKind
    code: str
    operation: str
    outcome_unknown: bool = False

    def __str__(self) -> str:
        return f"{self.operation} failed: {self.code} ({self.kind})"

    @property
    def transient(self) -> bool:
        """True when retrying the same call later can succeed."""
        return self.kind == "transient"


class QueryPage(NamedTuple):
    """One page of a query: its items, and whether another page follows."""

    items: list[dict[str, Any]]
    more: bool


class ItemRequest(NamedTuple):
    """One item to read in a batch: its table and key, and how to read it."""

    table: str
    key: Mapping[str, Any]
    consistent: bool = True
    attributes: Sequence[str] | None = None


class Tables(Protocol):
    """Key-value tables (DynamoDB)."""

    def query_pages(
        self,
        table: str,
        index: str,
        key: Mapping[str, str],
        attributes: Sequence[str] | None = None,
    ) -> Iterator[QueryPage]:
        """Every item of ``index`` whose key attributes equal ``key``, a page at a time (read as the iterator advances).

        DynamoDB reads at most 1 MB of items per page (before any projection), so a caller can stop between pages.
        """
        ...

    def get_item(
        self,
        table: str,
        key: Mapping[str, str],
        *,
        consistent: bool = True,
        attributes: Sequence[str] | None = None,
    ) -> dict[str, Any] | None:
        """The item with ``key``, or None."""
        ...

    def get_items(self, requests: Sequence[ItemRequest]) -> list[dict[str, Any] | None]:
        """Several items in one round trip (BatchGetItem), each as ``get_item`` answers it, in request order.

        Requests for one table must share their ``consistent`` and ``attributes``.
        """
        ...

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        """Write ``item``; False (and nothing written) when ``condition`` does not hold.

        An item there that is exactly ``item`` is True: a retried put whose first attempt landed wrote it.
        """
        ...

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        """Delete the item; False (and nothing deleted) when ``condition`` does not hold."""
        ...


class Queues(Protocol):
    """Message queues (SQS)."""

    def send_message(self, queue_url: str, body: str, delay_seconds: int) -> str:
        """Send ``body``; return the message id."""
        ...


class SecretStore(Protocol):
    """Secrets (Secrets Manager)."""

    def get_secret_string(self, name: str) -> str:
        """The current ``SecretString`` of secret ``name``."""
        ...
