"""What ``--check`` accepts, the handler runs: a routing rule and a conversation of any shape the contract allows
are decided alike by the handler on moto and by ``pipeline-dryrun``, and never crash.

A condition that fails on the data (a type error the rules guide documents) ends the event with INTERNAL_ERROR
naming its rule; any other end that is neither a decision nor that is a defect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.dynamowire import from_wire, to_wire
from steps.support import json_safe
from tests.support.rulefuzz import (
    Decided,
    check,
    dryrun_decision,
    handler_decision,
    message_event,
    project,
    routing_rules,
    wire_item,
)


def decided_both_ways(world: Any, session: Any, root: Path, when: str, **attributes: Any) -> tuple[Decided, Decided]:
    """The event decided by the handler and by the dry-run, the conversation holding ``attributes`` (plain JSON)."""
    project(root, routing_rules(when))
    assert check(root).errors == []
    event = message_event()
    item = wire_item({name: to_wire(value) for name, value in attributes.items()})
    plain = {name: json_safe(from_wire(value)) for name, value in item.items()}
    return handler_decision(world, session, root, item, event), dryrun_decision(root, plain, event)


def test_a_rule_reading_an_attribute_with_an_empty_name_reads_null(world, boto_session, tmp_path):
    handled, dry = decided_both_ways(world, boto_session, tmp_path, 'conversation."" == `1`')

    assert handled.outcome == dry.outcome == "QUEUED"
    assert handled.decided_by == dry.decided_by
    assert handled.decided_by["routing"] == "channel_queue"
