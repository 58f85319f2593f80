"""``trigger.lock``: when a held lock is taken over, on moto and on the dry-run's memory tables alike.

BATCHED must mean a trigger is pending that will find the message's stage row. A lock whose holder never marked it
sent (the mark is best effort) may still have had its trigger sent when it was taken: that trigger is due at
``taken_at + W`` at the earliest, so once that is within the margin the lock is taken over.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.context import Context, Services
from engine.registry import BuildInfo
from engine.secrets import SecretCache
from runtime.aws import DynamoTables
from steps.trigger import TriggerLock
from tests.support.timeline import FixedClock
from tools.dryrun.blueprint import blueprint
from tools.dryrun.memory import MemoryQueues, MemorySecrets, MemoryTables

HOLDER, LATER = "SM" + "a" * 32, "SM" + "b" * 32
CONVERSATION = "ci-0#pi-0#uuid-0"
NOW = 1_796_000_000
_, SCHEMAS = blueprint()
PARAMS = {"table": "lock", "ttl_buffer_seconds": 60, "due_margin_seconds": 5, "orphan_after_seconds": 15}

# id, W, the held lock (seconds relative to now), whether the later message takes it
CASES = [
    ("unmarked_its_trigger_fired", 10, {"taken_at": -12}, True),
    ("unmarked_its_trigger_due_within_the_margin", 10, {"taken_at": -6}, True),
    ("unmarked_its_trigger_due_just_after_the_margin", 10, {"taken_at": -5}, False),
    ("unmarked_holder_still_running", 10, {"taken_at": -2}, False),
    ("unmarked_long_window_trigger_pending", 60, {"taken_at": -12}, False),
    ("unmarked_long_window_holder_died", 60, {"taken_at": -16}, True),
    ("unmarked_window_equal_to_the_margin", 5, {"taken_at": -1}, True),
    ("unmarked_window_equal_to_the_margin_same_second", 5, {"taken_at": 0}, False),
    ("marked_trigger_pending", 10, {"taken_at": -12, "trigger_due_at": 8}, False),
    ("marked_trigger_due_within_the_margin", 10, {"taken_at": -8, "trigger_due_at": 2}, True),
    ("expired", 10, {"taken_at": -2, "expires_at": -1}, True),
    # A window shorter than the margin: no trigger of this version's is batched behind, however fresh.
    ("short_window_unmarked_just_taken", 3, {"taken_at": 0}, True),
    ("short_window_marked_pending", 3, {"taken_at": 0, "trigger_due_at": 3}, True),
    ("no_window_unmarked_just_taken", 0, {"taken_at": 0}, True),
]


def _services(tables: Any, at: float = NOW) -> Services:
    clock = FixedClock(datetime.fromtimestamp(at, UTC))
    return Services(tables, MemoryQueues(()), SecretCache(MemorySecrets({}), clock), clock)


def _take(tables: Any, lock_table: str, window: int, at: float = NOW) -> Any:
    step = TriggerLock(PARAMS, BuildInfo(rulesets={}, tables={"lock": lock_table}, targets={}))
    doc = {
        "credential": {"conversation_id": CONVERSATION},
        "request": {"message_sid": LATER},
        "route": {"delay_seconds": window},
    }
    return step.run(Context(None, _services(tables, at), deadline=float("inf"), doc=doc))


def _tables(backend: str, boto_session: Any) -> Any:
    return DynamoTables(boto_session.client("dynamodb")) if backend == "moto" else MemoryTables(SCHEMAS)


@pytest.mark.parametrize("backend", ["moto", "memory"])
@pytest.mark.parametrize(("case", "window", "held", "taken"), CASES, ids=[row[0] for row in CASES])
def test_a_held_lock_is_taken_over_unless_a_trigger_is_safely_pending(
    world, boto_session, backend, case, window, held, taken
):
    lock_table = world.resources.lock_table
    tables = _tables(backend, boto_session)
    row = {
        "conversation_id": CONVERSATION,
        "message_sid": HOLDER,
        "expires_at": NOW + 70,
        **{name: NOW + offset for name, offset in held.items()},
    }
    tables.put_item(lock_table, row)

    result = _take(tables, lock_table, window)

    assert result.output["acquired"] is taken
    assert result.outcome == (None if taken else "BATCHED")
    [lock] = world.lock_rows() if backend == "moto" else tables.items(lock_table)
    assert lock["message_sid"] == (LATER if taken else HOLDER)
    assert lock["taken_at"] == (NOW if taken else row["taken_at"])


# id, W, the contract's lock row (seconds relative to now), whether the later message takes it
CONTRACT_ROWS = [
    ("held", 10, {"message_sid": HOLDER, "expires_at": 30}, False),
    ("held_short_window", 3, {"message_sid": HOLDER, "expires_at": 30}, False),
    ("held_no_window", 0, {"message_sid": HOLDER, "expires_at": 30}, False),
    ("expired_not_yet_deleted", 0, {"message_sid": HOLDER, "expires_at": -1}, True),
    ("held_by_this_message", 0, {"message_sid": LATER, "expires_at": 30}, True),
]


@pytest.mark.parametrize("backend", ["moto", "memory"])
@pytest.mark.parametrize(("case", "window", "held", "taken"), CONTRACT_ROWS, ids=[row[0] for row in CONTRACT_ROWS])
def test_a_lock_in_the_contracts_shape_is_a_lease_whatever_the_window(
    world, boto_session, backend, case, window, held, taken
):
    """Only conversation_id, message_sid and expires_at (an older version's row): held until it expires (§2)."""
    lock_table = world.resources.lock_table
    tables = _tables(backend, boto_session)
    row = {"conversation_id": CONVERSATION, "message_sid": held["message_sid"], "expires_at": NOW + held["expires_at"]}
    tables.put_item(lock_table, row)

    result = _take(tables, lock_table, window)

    assert result.output["acquired"] is taken
    assert result.outcome == (None if taken else "BATCHED")
    [lock] = world.lock_rows() if backend == "moto" else tables.items(lock_table)
    assert lock == (row if not taken else {**lock, "message_sid": LATER, "taken_at": NOW})


@pytest.mark.parametrize("backend", ["moto", "memory"])
def test_a_lease_that_ended_within_the_current_second_is_over(world, boto_session, backend):
    """§2: taken when expires_at is in the past. At NOW + 0.4 s a lease ending at NOW has ended, although the
    epoch second is still NOW."""
    lock_table = world.resources.lock_table
    tables = _tables(backend, boto_session)
    tables.put_item(lock_table, {"conversation_id": CONVERSATION, "message_sid": HOLDER, "expires_at": NOW})

    result = _take(tables, lock_table, 10, at=NOW + 0.4)

    assert result.output["acquired"] is True
    [lock] = world.lock_rows() if backend == "moto" else tables.items(lock_table)
    assert (lock["message_sid"], lock["taken_at"], lock["expires_at"]) == (LATER, NOW, NOW + 70)


# id, the held lock (seconds relative to NOW), whether a message at NOW + 0.5 s (W = 10, margin 5) takes it
WITHIN_THE_SECOND = [
    ("marked_due_4_5_s_after_it", {"taken_at": -5, "trigger_due_at": 5}, True),
    ("unmarked_due_4_5_s_after_it_at_the_earliest", {"taken_at": -5}, True),
    ("marked_due_5_5_s_after_it", {"taken_at": -4, "trigger_due_at": 6}, False),
    ("unmarked_due_5_5_s_after_it_at_the_earliest", {"taken_at": -4}, False),
]


@pytest.mark.parametrize("backend", ["moto", "memory"])
@pytest.mark.parametrize(("case", "held", "taken"), WITHIN_THE_SECOND, ids=[row[0] for row in WITHIN_THE_SECOND])
def test_a_trigger_due_within_the_margin_counts_from_the_exact_moment(world, boto_session, backend, case, held, taken):
    """The margin counted from the current whole second: half a second into it, a trigger due 4.5 s later (within
    the 5 s margin, so it may be read before this message's stage row lands) left the message BATCHED behind it."""
    lock_table = world.resources.lock_table
    tables = _tables(backend, boto_session)
    row = {"conversation_id": CONVERSATION, "message_sid": HOLDER, "expires_at": NOW + 70}
    tables.put_item(lock_table, {**row, **{name: NOW + offset for name, offset in held.items()}})

    result = _take(tables, lock_table, 10, at=NOW + 0.5)

    assert result.output["acquired"] is taken
    assert result.outcome == (None if taken else "BATCHED")
    [lock] = world.lock_rows() if backend == "moto" else tables.items(lock_table)
    assert lock["message_sid"] == (LATER if taken else HOLDER)
