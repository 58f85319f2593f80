"""One routing rule through ``--check``, the real handler on moto and ``pipeline-dryrun``, for the rule-file fuzz tests.

A project is a copy of the shipped pipelines and rules whose ``routing`` set starts with the rule under test
(``then: {target: handoff}``) above the shipped channel-queue rule. The conversation is written DynamoDB-typed,
so each case says exactly what the table holds (other services write it), and read back by both paths.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from engine.rules import decided_rules
from runtime.app import Application
from tests.support.dryrun import run_dryrun
from tests.support.expect import ROOT
from tests.support.timeline import FixedClock
from tests.support.webhooks import TOKEN, USER, rest_event, whatsapp_params
from tests.support.world import SMS_SECRET, WA_SECRET, World, contract_item
from tools.check import CheckReport, check_config
from tools.dryrun.events import arrival_time
from tools.localaws import put_secrets

__all__ = [
    "Decided",
    "check",
    "dryrun_decision",
    "emptied",
    "handler_decision",
    "project",
    "routing_rules",
    "validation_rules",
    "wire_item",
]

PIPELINE = "pipelines/twilio_inbound.yaml"
TWILIO_SECRETS = {
    name: {"twilio_account_sid": "AC00000000000000000000000000000000", "twilio_auth_token": TOKEN}
    for name in (WA_SECRET, SMS_SECRET)
}
_CHANNEL_QUEUE = """  - id: channel_queue
    when: 'contains(`["whatsapp", "sms"]`, request.channel)'
    then: {target_from: request.channel}
"""


class Decided(NamedTuple):
    """What an event ended as: its outcome, the rule that decided each set, and whether the handler raised."""

    outcome: str
    decided_by: dict[str, str | None]
    raised: bool


def routing_rules(when: str) -> str:
    """The routing set: the rule ``fuzz`` (``when``, to handoff) above the shipped channel-queue rule."""
    return (
        "ruleset: routing\nkind: routing\npipelines: [twilio_inbound]\nrules:\n"
        f"  - id: fuzz\n    when: {json.dumps(when)}\n    then: {{target: handoff}}\n{_CHANNEL_QUEUE}"
    )


def validation_rules(when: str) -> str:
    """The project_status set with the one rule ``fuzz`` (``when``): a match refuses the message, PROJECT_INACTIVE."""
    return (
        "ruleset: project_status\nkind: validation\nrules:\n"
        f"  - id: fuzz\n    when: {json.dumps(when)}\n    then: {{error: PROJECT_INACTIVE, message: refused}}\n"
    )


def project(root: Path, rules_text: str, file: str = "40_routing.yaml") -> Path:
    """``root`` made a project: the shipped pipelines, plugins and rules, with ``rules_text`` as rules/``file``."""
    if not (root / "pipelines").exists():
        shutil.copytree(ROOT / "pipelines", root / "pipelines")
        shutil.copytree(ROOT / "rules", root / "rules")
        shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "rules" / file).write_text(rules_text)
    return root


def check(root: Path, pipeline: str = PIPELINE) -> CheckReport:
    """``pipeline-dryrun --check`` of the project's ``pipeline`` (Twilio's), in this process's environment."""
    return check_config([root / pipeline], root / "rules", dict(os.environ))


def wire_item(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB-typed conversation of its own: the contract's keys and credentials, then ``attributes`` (typed)."""
    conversation_id = {"S": f"ci-aaa-000#pi-aaa-000#{uuid.uuid4()}#{USER[1:]}"}
    return contract_item(**{"conversation_id": conversation_id, **attributes})


def emptied(world: World) -> None:
    """Every table of the world emptied: each example starts from no conversation, lock, stage row or record."""
    for table in (
        world.resources.conversations_table,
        world.resources.lock_table,
        world.resources.stage_table,
        world.resources.replay_table,
    ):
        description = world.dynamodb.describe_table(TableName=table)["Table"]
        keys = [part["AttributeName"] for part in description["KeySchema"]]
        for item in world.dynamodb.scan(TableName=table)["Items"]:
            world.dynamodb.delete_item(TableName=table, Key={key: item[key] for key in keys})


def handler_decision(
    world: World,
    session: Any,
    root: Path,
    item: dict[str, Any],
    event: dict[str, Any],
    secrets: Mapping[str, Any] = TWILIO_SECRETS,
) -> Decided:
    """``event`` through a new container of the project at ``root``, with ``item`` the only conversation."""
    emptied(world)
    put_secrets(world.secretsmanager, secrets)
    world.dynamodb.put_item(TableName=world.resources.conversations_table, Item=item)
    application = Application.from_root(root, session=session)
    # At the event's arrival, as the dry-run replays it: time conditions read the same instant.
    application.replace_services(clock=FixedClock(arrival_time(event) or datetime.now(UTC)))
    handled = application.process(event)
    result = handled.result
    return Decided(result.outcome, decided_rules(result.rules, result.error), handled.raised is not None)


def dryrun_decision(
    root: Path,
    item: Mapping[str, Any],
    event: dict[str, Any],
    secrets: Mapping[str, Any] = TWILIO_SECRETS,
    pipeline: str = PIPELINE,
) -> Decided:
    """``event`` through ``pipeline-dryrun --json`` on the project at ``root``, ``item`` (plain JSON) its world."""
    world = {"secrets": dict(secrets), "conversations": [dict(item)]}
    world_file, events_file = root / "world.json", root / "event.json"
    world_file.write_text(json.dumps(world))
    events_file.write_text(json.dumps(event))
    # The memory world (equal to moto's: tests/tools/test_dryrun_backends.py): moto is active here, the handler's.
    output = run_dryrun(
        "--pipeline",
        root / pipeline,
        "--rules",
        root / "rules",
        "--world",
        world_file,
        "--backend",
        "memory",
        "--json",
        events_file,
    )
    (record,) = [json.loads(line) for line in output.splitlines()]
    return Decided(record["outcome"], record["decided_by"], bool(record["raised"]))


def message_event(body: str = "Hello") -> dict[str, Any]:
    """A signed WhatsApp message saying ``body``, with a message id of its own."""
    return rest_event("whatsapp", whatsapp_params("SM" + uuid.uuid4().hex, body))
