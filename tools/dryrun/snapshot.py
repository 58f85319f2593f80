"""World snapshots: the live rows a set of events needs (or a user's conversations), as a world file.

``snapshot_world`` replays the events read-only against the account (``account_lane``, signatures
skipped so every event gets as far as it can) through ``ReadLog``, which notes the key of every row a
read returned: the conversations the lookups found (every candidate, so the pick replays the same), the
replay records read with them (so a replay of an accepted message is refused offline too), the lock and
stage rows the writes were checked against. Each noted row is then read whole (the pipeline
reads only the attributes its rules need), and each conversation's current lock row with it. ``users``
adds every conversation of a user number (a query on the table's partition key). The secrets the
conversations name are read too, to be redacted (or kept, on request) by ``shareable_world``. Events recorded
with ``mask=all`` find no row (their numbers are pseudonyms): the snapshot notes their files.

Only read operations are called (``tools.dryrun.live``); the result is masked or pseudonymized as the
capture does (``tools.dryrun.capture.shareable_world``), so events and world can be shared together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.conditions import Condition
from engine.config import AppConfig
from engine.ports import ItemRequest, QueryPage, ServiceError, Tables
from runtime.aws import MALFORMED_ANSWER, DynamoTables, error_code
from runtime.dynamowire import from_wire
from steps.sendgrid.parse import STALE_SIGNATURE
from steps.support import json_safe
from tools.dryrun.blueprint import TableSchema
from tools.dryrun.events import RecordedEvent, arrival_time
from tools.dryrun.lanes import ReplayClock, TableDescriber, account_lane
from tools.dryrun.live import pseudonymized_files
from tools.dryrun.mask import Scrubber

__all__ = ["BINARY_SECRET", "SECTION_TABLES", "ReadLog", "Snapshot", "UnreadableAccount", "snapshot_world"]

# World section -> the environment variable naming its table (as the Lambda's environment does).
SECTION_TABLES = {
    "conversations": "CONVERSATIONS_TABLE_NAME",
    "locks": "LOCK_TABLE_NAME",
    "stage": "STAGE_TABLE_NAME",
    "replay": "REPLAY_TABLE_NAME",
}


# What is wrong with a secret stored as SecretBinary, which the function cannot read its credentials from.
BINARY_SECRET = (
    "holds no SecretString (it is stored as binary): store the credentials as a JSON SecretString, as the function "
    "reads them"
)


class UnreadableAccount(Exception):
    """A read the events needed failed (``operation: code``, each once): a world without its rows would mislead."""


class ReadLog:
    """Tables that reads through ``inner`` and notes the key of every row a read returned; it never writes."""

    def __init__(self, inner: Tables, describe: Callable[[str], TableSchema | None]) -> None:
        self._inner = inner
        self._describe = describe
        self.keys: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}

    def note(self, table: str, item: Mapping[str, Any]) -> None:
        """Remember the key of ``item``, a row of ``table``."""
        schema = self._describe(table)
        if schema is not None and all(name in item for name in schema.key_names):
            key = schema.key_of(item)
            self.keys.setdefault(table, {})[tuple(key[name] for name in schema.key_names)] = key

    def query_pages(
        self, table: str, index: str, key: Mapping[str, str], attributes: Sequence[str] | None = None
    ) -> Iterator[QueryPage]:
        for page in self._inner.query_pages(table, index, key, attributes):
            for item in page.items:
                self.note(table, item)
            yield page

    def get_item(
        self, table: str, key: Mapping[str, str], *, consistent: bool = True, attributes: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        item = self._inner.get_item(table, key, consistent=consistent, attributes=attributes)
        if item is not None:
            self.note(table, {**item, **key})
        return item

    def get_items(self, requests: Sequence[ItemRequest]) -> list[dict[str, Any] | None]:
        items = self._inner.get_items(requests)
        for request, item in zip(requests, items, strict=True):
            if item is not None:
                self.note(request.table, {**item, **request.key})
        return items

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        raise RuntimeError("a snapshot never writes")

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        raise RuntimeError("a snapshot never writes")


@dataclass
class Snapshot:
    """The rows and secrets read, as a world-file document, and notes on what could not be read."""

    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _whole(tables: DynamoTables, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The row of ``table`` at ``key``, read whole through the runtime's port (which tells a garbled answer)."""
    try:
        return tables.get_item(table, key, consistent=True)
    except ServiceError as exc:
        raise UnreadableAccount(f"{exc.operation}: {exc.code}") from None


def _partition(client: Any, table: str, name: str, value: str) -> list[dict[str, Any]]:
    """Every item of ``table`` whose partition key ``name`` is ``value`` (all pages)."""
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#k = :v",
        "ExpressionAttributeNames": {"#k": name},
        "ExpressionAttributeValues": {":v": {"S": value}},
    }
    items: list[dict[str, Any]] = []
    while True:
        page = client.query(**request)
        if "Items" not in page:  # a 200 answer that is no Query answer (a proxy's page): not "no rows"
            raise UnreadableAccount(f"dynamodb.Query: {MALFORMED_ANSWER}")
        items += [{k: from_wire(v) for k, v in item.items()} for item in page["Items"]]
        if not page.get("LastEvaluatedKey"):
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _secret_names(conversations: Sequence[Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for item in conversations:
        config = item.get("channel_config")
        if isinstance(config, Mapping):
            names.update(dict.fromkeys(str(v) for k, v in config.items() if str(k).endswith("_credentials_id") and v))
    return sorted(names)


def _unread_note(recorded: RecordedEvent, message: str, clock: ReplayClock, now: datetime | None) -> str:
    """Why an event refused before any read (signatures are skipped: a stale email's timestamp) has no rows.

    Without ``now`` an event that carries its arrival time was refused then, as production refused it: it needs no
    row, and no other time would replay it as production decided it.
    """
    arrived = arrival_time(recorded.event) if now is None else None
    if arrived is not None and message == STALE_SIGNATURE:
        return (
            f"{recorded.source}: INVALID_SIGNATURE at its arrival time, {arrived.isoformat(timespec='seconds')} "
            f"({message}): refused on arrival, as production refused it, so it needs no row"
        )
    note = f"{recorded.source}: INVALID_SIGNATURE at {clock.describe()} ({message}), so no row was read for it"
    if message != STALE_SIGNATURE:
        return note
    if now is None:
        return f"{note}; it carries no arrival time (requestTimeEpoch): snapshot it with --now at its time"
    return f"{note}; snapshot it without --now, or with --now at its time"


def _secrets(secretsmanager: Any, names: Sequence[str], notes: list[str]) -> dict[str, Any]:
    """The secrets ``names``, each as its JSON value (else its text); one that cannot be read is left out, noted."""
    secrets: dict[str, Any] = {}
    for name in names:
        try:
            text = secretsmanager.get_secret_value(SecretId=name).get("SecretString")
        except Exception as exc:  # noqa: BLE001 - a missing or unreadable secret is left out, and said
            code = error_code(exc) or type(exc).__name__
            notes.append(f"secret {name} could not be read ({code}); its events replay with --skip-signature")
            continue
        if not isinstance(text, str):
            notes.append(f"secret {name} {BINARY_SECRET}; its events replay with --skip-signature")
            continue
        try:
            secrets[name] = json.loads(text)
        except ValueError:
            secrets[name] = text
    return secrets


def snapshot_world(
    events: Sequence[RecordedEvent],
    configs: Sequence[AppConfig],
    clients: tuple[Any, Any, Any],
    tables: Mapping[str, str],
    *,
    clock: ReplayClock,
    users: Sequence[str] = (),
    now: datetime | None,
) -> Snapshot:
    """The live rows ``events`` (and ``users``' conversations) need, whole, with their secrets (unredacted).

    ``now`` is the world's time (None: none, so that its replays run each event at its arrival time).

    Raises ``UnreadableAccount`` when a read of the tables failed (denied, throttled, a table the account lacks, an
    answer that is none: ``MalformedAnswer``).
    """
    dynamodb, _, secretsmanager = clients
    describe = TableDescriber(dynamodb)
    # A row read is noted by its table's key: without the key schemas the world would come out empty.
    undescribed = [describe.failures[table] for table in tables.values() if describe(table) is None]
    if undescribed:
        raise UnreadableAccount(", ".join(f"dynamodb.DescribeTable: {code}" for code in dict.fromkeys(undescribed)))
    logs: list[ReadLog] = []

    def reads(inner: Tables) -> Tables:
        logs.append(ReadLog(inner, describe))
        return logs[-1]

    notes = [
        f"{name}: recorded with mask=all: its numbers and addresses are pseudonyms, which no row of the account has "
        "(snapshot a mask=none or mask=text capture of them, or --user NUMBER; --mask all --key-env NAME then "
        "pseudonymizes the world with the capture's key)"
        for name in pseudonymized_files(events)
    ]
    lane = account_lane(
        configs, clients, clock=clock, scrubber=Scrubber(), independent=False, skip_signature=True, reads=reads
    )
    failed: dict[str, None] = {}
    for recorded in events:
        result = lane.run(recorded.event, []).handled.result
        failed.update(dict.fromkeys(lane.read_failures or ()))
        if result.error is not None and result.error_code == "INVALID_SIGNATURE":
            notes.append(_unread_note(recorded, result.error.message, clock, now))
    if failed:
        raise UnreadableAccount(", ".join(failed))
    (log,) = logs
    conversations_table = tables["conversations"]
    schema = describe(conversations_table)
    for user in users:
        for row in _partition(dynamodb, conversations_table, schema.hash_key if schema else "primary_channel", user):
            log.note(conversations_table, row)
    rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {section: {} for section in SECTION_TABLES}
    account = DynamoTables(dynamodb)
    for section, table in tables.items():
        for slot, key in sorted(log.keys.get(table, {}).items()):
            item = _whole(account, table, key)
            if item is not None:
                rows[section][slot] = item
    for conversation in list(rows["conversations"].values()):
        lock = _whole(account, tables["locks"], {"conversation_id": conversation["conversation_id"]})
        if lock is not None:
            rows["locks"][(conversation["conversation_id"],)] = lock
    secrets = _secrets(secretsmanager, _secret_names(list(rows["conversations"].values())), notes)
    document: dict[str, Any] = {} if now is None else {"now": now.isoformat().replace("+00:00", "Z")}
    for section in SECTION_TABLES:
        document[section] = [json_safe(item) for _, item in sorted(rows[section].items())]
    document["secrets"] = secrets
    return Snapshot(document, notes)
