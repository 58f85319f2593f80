"""The dry-run against production: the same world and events through ``pipeline-dryrun`` and the real handler.

Production is ``handler`` on moto in this process (a new container, the world loaded into the Lambda's own
tables and secrets, its wall clock at the time the dry-run runs each event); the dry-run is the command's
``--json --show-data`` output. Each event is reduced to what it decided and did: outcome and error code, target,
the rule that decided each rule set and the rules version, the response (status, content type and body, or that it
raised), and its effects, the rows each table holds and the messages (with their delays) each queue received once it
ran. The replay records' ``writer`` (a run's random id) is
left out; nothing else differs between runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from engine.rules import decided_rules
from runtime.aws import DynamoTables
from tests.support.dryrun import run_dryrun
from tests.support.timeline import FixedClock
from tests.support.world import World
from tools.dryrun.backends import populate
from tools.dryrun.blueprint import blueprint
from tools.dryrun.events import arrival_time, load_events
from tools.dryrun.memory import as_stored
from tools.dryrun.world import SECTIONS, load_world
from tools.localaws import LocalResources, dynamo_safe, put_secrets

__all__ = ["Decision", "dryrun_decisions", "production_decisions", "table_sections"]

Decision = dict[str, Any]
_deserializer = TypeDeserializer()
# The world file's section of each built-in table role; another role (a new step's table) is compared under its name.
_SECTION_OF_ROLE = {attribute.removesuffix("_table"): section for section, (attribute, _) in SECTIONS.items()}
_QUEUES = ("whatsapp", "sms", "handoff", "email")


def _plain(value: Any) -> Any:
    """A stored value as plain JSON-comparable data (numbers as int or float, sets as sorted lists)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if key != "writer"}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, set):
        return sorted(_plain(item) for item in value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _rows(items: Sequence[Mapping[str, Any]]) -> list[Any]:
    return sorted((_plain(dict(item)) for item in items), key=lambda row: json.dumps(row, sort_keys=True))


def production_decisions(world: World, world_file: Path, events_file: Path, session: Any) -> list[Decision]:
    """Each event of ``events_file`` handled by the real handler on ``world`` loaded with ``world_file``."""
    import handler

    spec = load_world(world_file)
    populate(spec, DynamoTables(world.dynamodb), world.resources)
    put_secrets(
        world.secretsmanager,
        {name: json.loads(value) if value.startswith("{") else value for name, value in spec.secrets.items()},
    )
    application = handler.reload(session)
    tables = {section: table for table, section in table_sections(world.resources).items()}
    decisions = []
    for recorded in load_events([events_file]):
        at = spec.now or arrival_time(recorded.event) or datetime.now(UTC)
        application.replace_services(clock=FixedClock(at))
        handled = application.process(recorded.event)
        result = handled.result
        route = result.doc.get("route")
        response = handled.response
        decisions.append(
            {
                "source": recorded.source,
                "outcome": result.outcome,
                "error_code": result.error_code,
                "target": route.get("target") if isinstance(route, dict) else None,
                "decided_by": decided_rules(result.rules, result.error),
                "rules_version": application.pipeline(handled.pipeline).version if handled.pipeline else None,
                "raised": handled.raised is not None,
                "status_code": response["statusCode"] if response else None,
                "content_type": response["headers"].get("Content-Type") if response else None,
                "body": response["body"] if response else None,
                "tables": {name: _rows(world._scan(table)) for name, table in sorted(tables.items())},
                "sent": {name: sorted(_sent(world, name)) for name in _QUEUES},
            }
        )
    return decisions


def dryrun_decisions(world_file: Path, events_file: Path, *options: str) -> list[Decision]:
    """The same reduction of ``pipeline-dryrun --world world_file --json --show-data OPTIONS events_file``."""
    spec = load_world(world_file)
    resources, schemas = blueprint()
    by_table = table_sections(resources)
    keys_of = {section: schemas[table].key_names for table, section in by_table.items()}
    state: dict[str, dict[tuple[Any, ...], Any]] = {section: {} for section in keys_of}
    for section, (_, keys) in SECTIONS.items():
        state[section] = {
            tuple(row[key] for key in keys): as_stored(dynamo_safe(dict(row))) for row in spec.rows[section]
        }
    sent: dict[str, list[tuple[str, int]]] = {name: [] for name in _QUEUES}
    output = run_dryrun("--world", world_file, "--json", "--show-data", *options, events_file)
    decisions = []
    for line in output.splitlines():
        record = json.loads(line)
        for action in record["actions"]:
            if action.get("condition_failed"):
                continue
            if action["type"] == "send_message":
                sent[_queue(action["queue"])].append((action["body"], action["delay_seconds"]))
                continue
            section = by_table[_local(action["table"], by_table)]
            keys = keys_of[section]
            if action["type"] == "put_item":
                item = action["item"]
                state[section][tuple(item[key] for key in keys)] = as_stored(dynamo_safe(item))
            else:
                state[section].pop(tuple(action["key"][key] for key in keys), None)
        response = record["response"]
        decisions.append(
            {
                "source": record["source"],
                "outcome": record["outcome"],
                "error_code": record["error_code"],
                "target": record["target"],
                "decided_by": record["decided_by"],
                "rules_version": record["rules_version"],
                "raised": record["raised"],
                "status_code": record["status_code"],
                "content_type": response["content_type"] if response else None,
                "body": response["body"] if response else None,
                "tables": {name: _rows(list(rows.values())) for name, rows in sorted(state.items())},
                "sent": {name: sorted(bodies) for name, bodies in sent.items()},
            }
        )
    return decisions


def table_sections(resources: LocalResources) -> dict[str, str]:
    """Each table of ``resources`` (every role the pipelines keep) and the name its rows are compared under."""
    return {table: _SECTION_OF_ROLE.get(role, role) for role, table in resources.tables.items()}


def _local(table: str, tables: Mapping[str, str]) -> str:
    """The table of ``tables`` that ``table`` (as the dry-run names it, perhaps prefixed) is."""
    found = [name for name in tables if table.endswith(name)]
    assert found, f"unknown table {table}"
    return max(found, key=len)


def _queue(name: str) -> str:
    for queue in _QUEUES:
        if queue in name:
            return queue
    raise AssertionError(f"unknown queue {name}")


def _sent(world: World, queue: str) -> list[tuple[str, int]]:
    """Every message in ``queue`` exactly as sent, with its DelaySeconds."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[DEFAULT_ACCOUNT_ID][world.dynamodb.meta.region_name]
    return [
        (m.body, round((m.delayed_until - m.sent_timestamp) / 1000) if m.delayed_until else 0)
        for m in backend.queues[queue]._messages
    ]
