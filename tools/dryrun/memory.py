"""An in-memory implementation of the engine's ports, for fast dry-runs (``--backend memory``).

It answers as the boto3 adapters answer over moto, the reference world: items go through boto3's
``TypeSerializer``/``TypeDeserializer`` on the way in, so reads return the same Python values
(numbers as ``Decimal``, sets, binary as ``bytes``); conditional writes follow ``engine.conditions``; index
queries skip items without the index's key attributes and sort as moto does; failures raise
``ServiceError`` with the codes moto gives (``ResourceNotFoundException``, ``ValidationException``,
``AWS.SimpleQueueService.NonExistentQueue``, ``InvalidParameterValue``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from engine.conditions import AllOf, AnyOf, AttributeEquals, AttributeNotExists, Condition
from engine.ports import ItemRequest, QueryPage, ServiceError
from runtime.aws import plain_value
from tools.dryrun.blueprint import IndexSchema, TableSchema

__all__ = [
    "ITEM_SIZE_LIMIT",
    "MemoryQueues",
    "MemorySecrets",
    "MemoryTables",
    "as_stored",
    "copy_item",
    "holds",
    "item_size",
]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def holds(condition: Condition, item: Mapping[str, Any] | None) -> bool:
    """Evaluate ``condition`` against the current ``item`` (None when there is no item)."""
    if isinstance(condition, AnyOf):
        return any(holds(part, item) for part in condition.conditions)
    if isinstance(condition, AllOf):
        return all(holds(part, item) for part in condition.conditions)
    present = item is not None and condition.name in item
    if isinstance(condition, AttributeNotExists):
        return not present
    if not present:
        return False
    assert item is not None
    current = item[condition.name]
    if isinstance(condition, AttributeEquals):
        return bool(current == condition.value)
    try:
        return bool(current < condition.value)
    except TypeError:
        return False


def copy_item(value: Any) -> Any:
    """A copy of a stored value, deep enough that a caller's changes cannot reach the store."""
    kind = type(value)
    if kind is dict:
        return {key: copy_item(item) if type(item) in _CONTAINERS else item for key, item in value.items()}
    if kind is list:
        return [copy_item(item) if type(item) in _CONTAINERS else item for item in value]
    if kind is set:
        return set(value)
    return value


_CONTAINERS = frozenset({dict, list, set})
_LARGEST_EXACT = 10**38  # DynamoDB numbers have 38 significant digits


def as_stored(value: Any) -> Any:
    """``value`` as a read returns it once DynamoDB holds it (boto3's serializer, then its deserializer).

    Strings, booleans, None, ints, lists and maps take a direct path with the same result; anything
    else (Decimal, float, bytes, sets, tuples) goes through boto3's own types.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int and -_LARGEST_EXACT < value < _LARGEST_EXACT:
        return Decimal(value)
    if kind is dict and all(type(key) is str for key in value):
        return {key: as_stored(item) for key, item in value.items()}
    if kind is list:
        return [as_stored(item) for item in value]
    return plain_value(_deserializer.deserialize(_serializer.serialize(value)))


# DynamoDB refuses an item over 400 KB; moto (the reference world) at more than this many bytes as it counts them.
ITEM_SIZE_LIMIT = 405_000


def item_size(item: Mapping[str, Any]) -> int:
    """A stored item's size as moto counts it: UTF-8 names and values, a number its digits' half plus one.

    Containers add nothing of their own, booleans and nulls one byte each.
    """
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def _value_size(value: Any) -> int:
    kind = type(value)
    if kind is str:
        return len(value.encode("utf-8"))
    if kind is dict:
        return item_size(value)
    if kind is list or kind is set:
        return sum(_value_size(item) for item in value)
    if kind is Decimal:
        digits = str(value).lstrip("+-").replace(".", "", 1).strip("0")  # moto's count, over the text it was sent
        return -(-max(len(digits), 1) // 2) + 1
    if isinstance(value, bytes):
        return len(value)
    return 1


def _has_empty_set(value: Any) -> bool:
    kind = type(value)
    if kind is set:
        return not value
    if kind is dict:
        return any(_has_empty_set(item) for item in value.values() if type(item) in _CONTAINERS)
    if kind is list:
        return any(_has_empty_set(item) for item in value if type(item) in _CONTAINERS)
    return False


def _is_key_value(value: Any, attribute_type: str) -> bool:
    """True when ``value`` (as stored) is a usable key of DynamoDB type ``attribute_type``."""
    if attribute_type == "S":
        return type(value) is str and value != ""
    if attribute_type == "N":
        return type(value) is Decimal
    return isinstance(value, bytes) and value != b""


class MemoryTables:
    """The Tables port over dicts, one per table, with the tables' global secondary indexes."""

    def __init__(self, schemas: Mapping[str, TableSchema]) -> None:
        self._schemas = dict(schemas)
        self._rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {name: {} for name in schemas}
        # Per (table, index): (hash,) and (hash, range) -> items in query order; dropped when the table changes.
        self._index_cache: dict[tuple[str, str], dict[tuple[Any, ...], list[dict[str, Any]]]] = {}

    def _schema(self, table: str, operation: str) -> TableSchema:
        schema = self._schemas.get(table)
        if schema is None:
            raise ServiceError("not_found", "ResourceNotFoundException", operation)
        return schema

    @staticmethod
    def _key(schema: TableSchema, key: Mapping[str, Any], operation: str) -> tuple[Any, ...]:
        if set(key) != set(schema.key_names):
            raise ServiceError("invalid", "ValidationException", operation)
        return tuple(key[name] for name in schema.key_names)

    @staticmethod
    def _index_keys(schema: TableSchema) -> set[str]:
        return {name for index in schema.indexes.values() for name in (index.hash_key, index.range_key) if name}

    def _stored(self, schema: TableSchema, item: Mapping[str, Any], operation: str) -> dict[str, Any]:
        """``item`` as DynamoDB stores and returns it; ValidationException where moto refuses it."""
        stored = {name: as_stored(value) for name, value in item.items()}
        for name in schema.key_names:
            if not _is_key_value(stored.get(name), schema.attribute_types.get(name, "S")):
                raise ServiceError("invalid", "ValidationException", operation)
        for name in self._index_keys(schema):
            if name in stored and stored[name] in (None, "", b""):
                raise ServiceError("invalid", "ValidationException", operation)
        if any(_has_empty_set(value) for value in stored.values() if type(value) in _CONTAINERS):
            raise ServiceError("invalid", "ValidationException", operation)
        if item_size(stored) > ITEM_SIZE_LIMIT:
            raise ServiceError("invalid", "ValidationException", operation)
        return stored

    @staticmethod
    def _project(item: Mapping[str, Any], attributes: Sequence[str] | None) -> dict[str, Any]:
        if not attributes:
            return copy_item(item)  # type: ignore[no-any-return]
        return {name: copy_item(item[name]) for name in attributes if name in item}

    def _index(self, schema: TableSchema, index: IndexSchema) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
        """Items by (hash) and by (hash, range) value, in the order moto returns them."""
        cached = self._index_cache.get((schema.name, index.name))
        if cached is not None:
            return cached
        required = [index.hash_key, *([index.range_key] if index.range_key else [])]
        order = [*required, *schema.key_names]
        items = [item for item in self._rows[schema.name].values() if all(name in item for name in required)]
        items.sort(key=lambda item: tuple(item[name] for name in order))
        buckets: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for item in items:
            buckets.setdefault((item[index.hash_key],), []).append(item)
            if index.range_key:
                buckets.setdefault((item[index.hash_key], item[index.range_key]), []).append(item)
        self._index_cache[(schema.name, index.name)] = buckets
        return buckets

    def _changed(self, table: str) -> None:
        for cached in [entry for entry in self._index_cache if entry[0] == table]:
            del self._index_cache[cached]

    def query_pages(
        self,
        table: str,
        index: str,
        key: Mapping[str, str],
        attributes: Sequence[str] | None = None,
    ) -> Iterator[QueryPage]:
        """Every match as one page (memory has no 1 MB page limit)."""
        operation = "dynamodb.Query"
        schema = self._schema(table, operation)
        spec = schema.indexes.get(index)
        if spec is None:
            raise ServiceError("not_found", "ResourceNotFoundException", operation)
        allowed = {spec.hash_key, spec.range_key}
        if spec.hash_key not in key or not set(key) <= allowed or any(value == "" for value in key.values()):
            raise ServiceError("invalid", "ValidationException", operation)
        wanted: tuple[Any, ...] = (key[spec.hash_key],)
        if spec.range_key is not None and spec.range_key in key:
            wanted = (*wanted, key[spec.range_key])
        found = self._index(schema, spec).get(wanted, [])
        yield QueryPage([self._project(item, attributes) for item in found], more=False)

    def get_item(
        self,
        table: str,
        key: Mapping[str, str],
        *,
        consistent: bool = True,
        attributes: Sequence[str] | None = None,
    ) -> dict[str, Any] | None:
        operation = "dynamodb.GetItem"
        schema = self._schema(table, operation)
        if any(value in ("", b"") for value in key.values()):
            raise ServiceError("invalid", "ValidationException", operation)
        item = self._rows[table].get(self._key(schema, key, operation))
        return None if item is None else self._project(item, attributes)

    def get_items(self, requests: Sequence[ItemRequest]) -> list[dict[str, Any] | None]:
        operation = "dynamodb.BatchGetItem"
        for request in requests:
            self._schema(request.table, operation)
        return [
            self.get_item(request.table, request.key, consistent=request.consistent, attributes=request.attributes)
            for request in requests
        ]

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        operation = "dynamodb.PutItem"
        schema = self._schema(table, operation)
        stored = self._stored(schema, item, operation)
        key = tuple(stored[name] for name in schema.key_names)
        rows = self._rows[table]
        if condition is not None and not holds(condition, rows.get(key)):
            return rows.get(key) == stored  # the identical item is this put's own, as DynamoTables reads it
        rows[key] = stored
        self._changed(table)
        return True

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        operation = "dynamodb.DeleteItem"
        schema = self._schema(table, operation)
        stored_key = self._key(schema, key, operation)
        rows = self._rows[table]
        if condition is not None and not holds(condition, rows.get(stored_key)):
            return False
        if rows.pop(stored_key, None) is not None:
            self._changed(table)
        return True

    def items(self, table: str) -> list[dict[str, Any]]:
        """Every item of ``table``, in key order (for tests and inspection)."""
        rows = self._rows[self._schema(table, "dynamodb.Scan").name]
        return [copy_item(rows[key]) for key in sorted(rows)]


class MemoryQueues:
    """The Queues port over lists: what was sent to each queue, with its delay."""

    def __init__(self, queue_urls: Sequence[str]) -> None:
        self.sent: dict[str, list[tuple[str, int]]] = {url: [] for url in queue_urls}

    def send_message(self, queue_url: str, body: str, delay_seconds: int) -> str:
        operation = "sqs.SendMessage"
        messages = self.sent.get(queue_url)
        if messages is None:
            raise ServiceError("not_found", "AWS.SimpleQueueService.NonExistentQueue", operation)
        if not 0 <= delay_seconds <= 900:
            raise ServiceError("invalid", "InvalidParameterValue", operation)
        messages.append((body, delay_seconds))
        return str(uuid.uuid4())


class MemorySecrets:
    """The SecretStore port over a dict of secret name → SecretString."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = dict(secrets)

    def get_secret_string(self, name: str) -> str:
        value = self._secrets.get(name)
        if value is None:
            raise ServiceError("not_found", "ResourceNotFoundException", "secretsmanager.GetSecretValue")
        return value
