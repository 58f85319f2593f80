"""Bytes read from DynamoDB per routed message, for a conversation item with a long ``messages`` history.

Measured on moto in this process: the HTTP response bodies of every Query, GetItem and BatchGetItem (the
conversation with the message's replay record) a message causes. Baseline: reading the whole item once (a GetItem
without projection). The rules decide what a routed message needs: the conversation attributes their conditions
read (``Expression.paths``) and the item's key; a handoff carries the whole conversation, so it reads the whole item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import boto3

from bench.awscalls import AwsCall, CallRecorder
from bench.events import Tenant, conversation, whatsapp_event
from bench.model import Figure, Sizes
from bench.world import MotoWorld, moto_world
from engine.config import AppConfig
from engine.expressions import Expression

__all__ = ["measure", "needed_attributes"]

KEY = frozenset({"primary_channel", "conversation_id"})
READS = frozenset({"Query", "GetItem", "BatchGetItem"})


def _expressions(config: AppConfig) -> Iterable[Expression]:
    for ruleset in config.rulesets.values():
        for rule in ruleset.rules:
            yield rule.when
            if rule.then.target_from is not None:
                yield rule.then.target_from
    for step in config.pipeline.steps():
        if step.when is not None:
            yield step.when


def needed_attributes(config: AppConfig) -> frozenset[str] | None:
    """The conversation attributes the configured conditions read (None: the whole item)."""
    names = set(KEY)
    for expression in _expressions(config):
        for path in expression.paths:
            if path[0] != "conversation":
                continue
            if len(path) == 1:
                return None
            names.add(path[1])
    return frozenset(names)


def _read(calls: Iterable[AwsCall]) -> tuple[int, frozenset[str]]:
    reads = [call for call in calls if call.name in READS]
    get = [call for call in reads if call.name in ("GetItem", "BatchGetItem")]
    return sum(call.response_bytes for call in reads), frozenset().union(*(call.attributes for call in get))


def measure(sizes: Sizes) -> list[Figure]:
    """The bytes-read figure for a routed message, with the handoff path in its details."""
    tenant = Tenant()
    entries = sizes.history_entries
    with moto_world() as world:
        routed = conversation(0, tenant, entries=entries)
        handoff = conversation(1, tenant, entries=entries, hand_off_to_human=True)
        world.add([routed, handoff, conversation(2, tenant)], tenant)
        recorder = CallRecorder()
        app = world.application(recorder)
        app.handle(whatsapp_event(2, tenant), None)
        recorder.take()
        routed_outcome = app.process(whatsapp_event(0, tenant)).result.outcome
        routed_bytes, routed_attributes = _read(recorder.take())
        handoff_outcome = app.process(whatsapp_event(1, tenant)).result.outcome
        handoff_bytes, handoff_attributes = _read(recorder.take())
        whole = _whole_item(world, routed)
        needed = needed_attributes(app.configs[0])
    whole_bytes, whole_attributes = whole.response_bytes, whole.attributes
    extra = sorted(routed_attributes - (needed if needed is not None else whole_attributes))
    passed = routed_outcome == "QUEUED" and not extra and handoff_attributes >= whole_attributes
    return [
        Figure(
            key="bytes_read",
            title=f"DynamoDB bytes read per routed message ({entries}-entry history)",
            unit="bytes",
            measured=routed_bytes,
            baseline_label="the whole item (GetItem, no projection)",
            baseline=whole_bytes,
            ratio=round(routed_bytes / whole_bytes, 3),
            target="only the attributes rules and steps read; whole item only for handoff",
            passed=passed,
            note=f"handoff message read {handoff_bytes} bytes ({handoff_outcome})",
            details={
                "routed_outcome": routed_outcome,
                "routed_get_attributes": sorted(routed_attributes),
                "attributes_not_needed": extra,
                "needed_attributes": sorted(needed) if needed is not None else "whole item",
                "handoff_bytes": handoff_bytes,
                "handoff_reads_whole_item": handoff_attributes >= whole_attributes,
                "item_attributes": len(whole_attributes),
            },
        )
    ]


def _whole_item(world: MotoWorld, item: Mapping[str, Any]) -> AwsCall:
    """The recorded GetItem of the whole item, without projection."""
    recorder = CallRecorder()
    session = boto3.session.Session()
    recorder.attach(session)
    key = {name: {"S": str(item[name])} for name in sorted(KEY)}
    client = session.client("dynamodb")
    client.get_item(TableName=world.resources.conversations_table, Key=key, ConsistentRead=True)
    return recorder.take()[0]
