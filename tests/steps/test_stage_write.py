"""``stage.write``: a row past its ``expires_at`` (DynamoDB's TTL deletes it at any moment) is written afresh, and so
is one written more than a minute ago: it could expire before the trigger this delivery relies on is read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.context import Context, Services
from engine.registry import BuildInfo
from engine.secrets import SecretCache
from runtime.aws import DynamoTables
from steps.stage import StageWrite
from tests.support.timeline import FixedClock
from tools.dryrun.blueprint import blueprint
from tools.dryrun.memory import MemoryQueues, MemorySecrets, MemoryTables

SID = "SM" + "a" * 32
CONVERSATION = "ci-0#pi-0#uuid-0"
NOW = 1_796_000_000
_, SCHEMAS = blueprint()


def _write(tables: Any, stage_table: str, at: float) -> Any:
    clock = FixedClock(datetime.fromtimestamp(at, UTC))
    services = Services(tables, MemoryQueues(()), SecretCache(MemorySecrets({}), clock), clock)
    step = StageWrite(
        {"table": "stage", "ttl_seconds": 86400}, BuildInfo(rulesets={}, tables={"stage": stage_table}, targets={})
    )
    doc = {
        "credential": {"conversation_id": CONVERSATION, "primary_channel": "+14155550123"},
        "request": {
            "message_sid": SID,
            "channel": "whatsapp",
            "body": "new",
            "num_media": 0,
            "media": [],
            "received_at": "2026-12-01T00:00:00.400Z",
        },
    }
    return step.run(Context(None, services, deadline=float("inf"), doc=doc))


@pytest.mark.parametrize("backend", ["moto", "memory"])
@pytest.mark.parametrize(
    ("expires_in", "rewritten"),
    [(-1, True), (0, True), (1, True), (86340, True), (86341, False), (86400, False)],
    ids=["ended", "ended_this_second", "ends_before_its_trigger", "written_a_minute_ago", "written_by_a_copy", "same"],
)
def test_a_row_is_kept_only_when_a_copy_wrote_it_a_moment_ago(world, boto_session, backend, expires_in, rewritten):
    """At NOW + 0.4 s a row expiring at NOW has expired (contract §2: expires_at is a TTL in epoch seconds); one
    expiring at NOW + 1 would be gone before a trigger due in W = 10 s is read (before: kept, and the message lost).
    A row is left as it is while it was written at most 60 s ago (ttl_seconds 86400): Twilio's retries, copies."""
    stage_table = world.resources.stage_table
    tables = DynamoTables(boto_session.client("dynamodb")) if backend == "moto" else MemoryTables(SCHEMAS)
    old = {"conversation_id": CONVERSATION, "message_sid": SID, "body": "old", "expires_at": NOW + expires_in}
    tables.put_item(stage_table, old)

    result = _write(tables, stage_table, NOW + 0.4)

    assert result.output == {"duplicate": not rewritten}
    [row] = world.stage_rows() if backend == "moto" else tables.items(stage_table)
    assert (row["body"], row["expires_at"]) == (("new", NOW + 86400) if rewritten else ("old", NOW + expires_in))
