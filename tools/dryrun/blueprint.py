"""The pipelines' resources as data: names, queue URLs and key schemas, from ``tools.localaws.provision``.

``provision`` is the one definition of the tables and queues. ``blueprint`` runs it against a stand-in
client that records each ``create_table`` request instead of sending it, so the in-memory world, the
moto world and the undo journal all share that definition: same names, same keys, same indexes, and
queue URLs in moto's format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tools.localaws import LocalResources, provision
from tools.needs import Needs

__all__ = ["ACCOUNT_ID", "REGION", "IndexSchema", "TableSchema", "blueprint", "queue_name"]

REGION = "us-east-1"
# moto's default account: queue URLs look the same whichever backend holds the world.
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class IndexSchema:
    """A global secondary index: its key attributes (projection ALL)."""

    name: str
    hash_key: str
    range_key: str | None


@dataclass(frozen=True)
class TableSchema:
    """A table's key attributes, their DynamoDB types (``S``, ``N``, ``B``) and its indexes."""

    name: str
    hash_key: str
    range_key: str | None
    indexes: Mapping[str, IndexSchema]
    attribute_types: Mapping[str, str]

    @property
    def key_names(self) -> tuple[str, ...]:
        """The primary key's attribute names, hash first."""
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    def key_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The primary key of ``item`` (the attributes that are present)."""
        return {name: item[name] for name in self.key_names if name in item}


def _key(schema: list[Mapping[str, str]]) -> tuple[str, str | None]:
    hash_key = next(part["AttributeName"] for part in schema if part["KeyType"] == "HASH")
    range_key = next((part["AttributeName"] for part in schema if part["KeyType"] == "RANGE"), None)
    return hash_key, range_key


def table_schema(request: Mapping[str, Any]) -> TableSchema:
    """The schema of a ``CreateTable`` request."""
    hash_key, range_key = _key(request["KeySchema"])
    indexes = {}
    for index in request.get("GlobalSecondaryIndexes", []):
        index_hash, index_range = _key(index["KeySchema"])
        indexes[index["IndexName"]] = IndexSchema(index["IndexName"], index_hash, index_range)
    types = {part["AttributeName"]: part["AttributeType"] for part in request.get("AttributeDefinitions", [])}
    return TableSchema(request["TableName"], hash_key, range_key, indexes, types)


def queue_name(queue_url: str) -> str:
    """The queue's name: the last segment of its URL."""
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


class _DefinitionRecorder:
    """Stands in for the DynamoDB and SQS clients: records table definitions, names queue URLs."""

    def __init__(self, region: str, account: str) -> None:
        self.region = region
        self.account = account
        self.tables: dict[str, TableSchema] = {}

    def create_table(self, **request: Any) -> dict[str, Any]:
        schema = table_schema(request)
        self.tables[schema.name] = schema
        return {}

    def update_time_to_live(self, **request: Any) -> dict[str, Any]:
        return {}

    def create_queue(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": f"https://sqs.{self.region}.amazonaws.com/{self.account}/{QueueName}"}


def blueprint(prefix: str = "", needs: Needs | None = None) -> tuple[LocalResources, dict[str, TableSchema]]:
    """The resources ``provision(…, prefix, needs)`` creates, and every table's schema, without creating anything."""
    recorder = _DefinitionRecorder(REGION, ACCOUNT_ID)
    resources = provision(recorder, recorder, prefix, needs)
    return resources, recorder.tables
