"""Issue 15 (5): BATCHED means a trigger is pending that will find the message's stage row.

The holder marks its lock sent (``trigger_due_at``) alongside its send. A message takes the lock over when the
holder's trigger is due within the margin (a consumer may drain the batch before this row lands), or when the lock
is unmarked and either a trigger sent when it was taken would be due within the margin (the mark failed) or it was
taken longer ago than any invocation runs (the holder died; its retry may never come).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.clock import SteppedClock, install_clock
from tests.support.faults import Fault, SimulatedCrash, new_container
from tests.support.webhooks import USER, rest_event, whatsapp_params
from tools.localaws import to_dynamo

HOLDER, LATER = "SM" + "a" * 32, "SM" + "b" * 32


def steady(application) -> SteppedClock:
    """``application``'s clock, now a stepped one with a fixed wall clock: the lock's times, written by the test
    relative to it, are as far from the lock step's "now" as the test says however long the run takes, and load
    cannot spend the time budget."""
    return install_clock(application, datetime.now(UTC).replace(microsecond=0))


def put_lock(world, conversation_id: str, **attributes: int) -> None:
    item = {"conversation_id": conversation_id, "message_sid": HOLDER, **attributes}
    world.dynamodb.put_item(TableName=world.resources.lock_table, Item=to_dynamo(item))


@pytest.mark.parametrize(
    ("taken_ago", "due_in", "outcome"),
    [
        (20, None, "QUEUED"),  # the holder died after taking the lock and never sent: taken over
        (2, None, "BATCHED"),  # the holder is still running: its trigger will come
        (12, None, "QUEUED"),  # unmarked, but a trigger sent when it was taken fired 2 s ago: taken over
        (8, 2, "QUEUED"),  # the holder's trigger is due in 2 s: the batch may be drained before this row lands
        (1, 9, "BATCHED"),  # a trigger is pending for 9 more seconds: batched
    ],
)
def test_a_lock_is_taken_over_unless_a_trigger_is_pending(world, lambda_handler, outcomes, taken_ago, due_in, outcome):
    import handler

    item = world.add_conversation()
    world.add_default_secrets()
    now = steady(handler._application).epoch()
    due = {} if due_in is None else {"trigger_due_at": now + due_in}
    put_lock(world, item["conversation_id"], taken_at=now - taken_ago, expires_at=now + 50, **due)

    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=LATER)), None)

    assert outcomes() == [(outcome, None)]
    [lock] = world.lock_rows()
    assert lock["message_sid"] == (LATER if outcome == "QUEUED" else HOLDER)
    expected = [({"conversation_id": item["conversation_id"], "primary_channel": USER}, 10)]
    assert world.sent("whatsapp") == (expected if outcome == "QUEUED" else [])


def test_a_holder_that_died_after_its_lock_write_does_not_strand_the_batch(world, monkeypatch):
    world.add_conversation()
    world.add_default_secrets()
    application, injector = new_container(world.resources)
    clock = steady(application)
    injector.inject("lock_put", Fault("crash", times=1))
    with pytest.raises(SimulatedCrash):
        application.process(rest_event("whatsapp", whatsapp_params(sid=HOLDER)), None)
    injector.wait_idle()
    # Twilio's retry of the holder never comes. Inside an invocation's time a message batches behind it...
    second, _ = new_container(world.resources)
    second.replace_services(clock=clock)
    assert second.process(rest_event("whatsapp", whatsapp_params(sid=LATER)), None).result.outcome == "BATCHED"
    assert world.sent("whatsapp") == []
    # ...once the holder has been silent longer than any invocation runs, the next message triggers the batch.
    [lock] = world.lock_rows()
    world.dynamodb.update_item(
        TableName=world.resources.lock_table,
        Key=to_dynamo({"conversation_id": lock["conversation_id"]}),
        UpdateExpression="SET taken_at = taken_at - :d",
        ExpressionAttributeValues={":d": {"N": "16"}},
    )
    third = rest_event("whatsapp", whatsapp_params(sid="SM" + "c" * 32))
    assert second.process(third, None).result.outcome == "QUEUED"
    assert len(world.sent("whatsapp")) == 1
    assert len(world.stage_rows()) == 3


def test_a_stage_write_near_the_trigger_sends_its_own(world, lambda_handler, outcomes):
    # The holder's trigger becomes visible in 3 s; this message's stage write may take up to one bounded call
    # (4 s): a consumer could drain the batch first, so the message does not count on that trigger. The margin
    # (due_margin_seconds: 5) decides, not how long this write happens to take, so none is simulated.
    import handler

    item = world.add_conversation()
    world.add_default_secrets()
    now = steady(handler._application).epoch()
    put_lock(world, item["conversation_id"], taken_at=now - 7, expires_at=now + 63, trigger_due_at=now + 3)

    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=LATER)), None)

    assert outcomes() == [("QUEUED", None)]
    assert world.sent("whatsapp") == [({"conversation_id": item["conversation_id"], "primary_channel": USER}, 10)]
    [lock] = world.lock_rows()
    assert lock["message_sid"] == LATER
    assert [row["message_sid"] for row in world.stage_rows()] == [LATER]


@pytest.mark.parametrize(
    ("later", "outcome", "triggers"),
    [
        (3, "BATCHED", 1),  # the holder's trigger is due in 7 s: it will find the row
        (12, "QUEUED", 2),  # the holder's trigger fired at 10 s, before the 15 s orphan takeover: send another
    ],
)
def test_a_lock_whose_sent_mark_failed_is_taken_over_once_its_trigger_is_due(world, later, outcome, triggers):
    item = world.add_conversation()
    world.add_default_secrets()
    application, injector = new_container(world.resources)
    clock = steady(application)
    injector.inject("lock_mark", Fault("access_denied"))
    assert application.process(rest_event("whatsapp", whatsapp_params(sid=HOLDER)), None).result.outcome == "QUEUED"
    injector.clear()
    [lock] = world.lock_rows()
    assert "trigger_due_at" not in lock

    clock.advance(later)
    second = application.process(rest_event("whatsapp", whatsapp_params(sid=LATER)), None)

    assert second.result.outcome == outcome
    trigger = ({"conversation_id": item["conversation_id"], "primary_channel": USER}, 10)
    assert world.sent("whatsapp") == [trigger] * triggers
    assert sorted(row["message_sid"] for row in world.stage_rows()) == [HOLDER, LATER]
    [lock] = world.lock_rows()
    assert lock["message_sid"] == (LATER if outcome == "QUEUED" else HOLDER)
