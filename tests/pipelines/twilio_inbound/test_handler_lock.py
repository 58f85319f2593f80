"""The trigger lock as a lease, and what a failure after taking it leaves behind (contract §2).

Every container here runs on a stepped clock (``clock``): its wall clock is fixed, so a lease the test writes
relative to it is as live (or as expired) when the lock step reads it as when it was written, however long the
machine takes in between, and its time budget is spent only by hand, so load cannot expire the pipeline's deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.clock import SteppedClock, install_clock
from tests.support.expect import raises_code, twiml_response
from tests.support.webhooks import USER, rest_event, sms_params, whatsapp_params

SID_A, SID_B, SID_C = "SM" + "a" * 32, "SM" + "b" * 32, "SM" + "c" * 32


def _trigger(item):
    return {"conversation_id": item["conversation_id"], "primary_channel": USER}


def _steady() -> SteppedClock:
    """The current container's clock, now a stepped one whose wall clock is fixed at the current second."""
    import handler

    return install_clock(handler._application, datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(autouse=True)
def clock(lambda_handler) -> SteppedClock:
    """The clock of ``lambda_handler``'s container (a test that starts another gives it its own: ``_steady``)."""
    return _steady()


def test_expired_lock_row_is_taken_over(world, lambda_handler, clock, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    world.put_lock(item["conversation_id"], "SM-old-holder", clock.epoch() - 5)

    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID_A)), None)

    assert outcomes() == [("QUEUED", None)]
    assert world.sent("whatsapp") == [(_trigger(item), 10)]
    [lock] = world.lock_rows()
    assert lock["message_sid"] == SID_A
    assert lock["expires_at"] == clock.epoch() + 10 + 60  # the window, then the TTL buffer


def test_live_lock_of_another_message_batches(world, lambda_handler, clock, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    world.put_lock(item["conversation_id"], "SM-other", clock.epoch() + 30)

    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID_A)), None)

    assert outcomes() == [("BATCHED", None)]
    assert world.sent("whatsapp") == []
    assert [row["message_sid"] for row in world.stage_rows()] == [SID_A]
    assert [lock["message_sid"] for lock in world.lock_rows()] == ["SM-other"]


def test_lock_held_by_the_same_message_is_retaken(world, lambda_handler, clock, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    world.put_lock(item["conversation_id"], SID_A, clock.epoch() + 30)

    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID_A)), None)

    assert outcomes() == [("QUEUED", None)]
    assert world.sent("whatsapp") == [(_trigger(item), 10)]


def test_after_the_lease_expires_a_new_burst_triggers_again(world, lambda_handler, clock, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("sms", sms_params(sid=SID_A)), None)
    lambda_handler(rest_event("sms", sms_params(sid=SID_B)), None)
    # The consumer ran; TTL has not deleted the row yet, but the lease is over.
    world.put_lock(item["conversation_id"], SID_A, clock.epoch() - 1)
    lambda_handler(rest_event("sms", sms_params(sid=SID_C)), None)

    assert outcomes() == [("QUEUED", None), ("BATCHED", None), ("QUEUED", None)]
    assert world.sent("sms") == [(_trigger(item), 10), (_trigger(item), 10)]
    assert sorted(row["message_sid"] for row in world.stage_rows()) == [SID_A, SID_B, SID_C]


def test_locks_are_per_conversation(world, lambda_handler, outcomes):
    first = world.add_conversation()
    other_user = "+447700900123"
    second = world.add_conversation(primary_channel=other_user, gsi_recipient_tel=other_user, recipient_tel=other_user)
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID_A)), None)
    lambda_handler(
        rest_event("whatsapp", whatsapp_params(sid=SID_B, From=f"whatsapp:{other_user}", WaId=other_user[1:])), None
    )
    assert outcomes() == [("QUEUED", None), ("QUEUED", None)]
    assert sorted(body["conversation_id"] for body, _ in world.sent("whatsapp")) == sorted(
        [first["conversation_id"], second["conversation_id"]]
    )
    assert {body["primary_channel"] for body, _ in world.sent("whatsapp")} == {USER, other_user}


def test_send_failure_releases_the_lock_and_the_retry_triggers_exactly_once(world, lambda_handler, aws, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    aws.fail("sqs.SendMessage", "InternalError", 500, times=1)
    event = rest_event("whatsapp", whatsapp_params(sid=SID_A))

    raises_code("QUEUE_TRANSIENT_ERROR", lambda: lambda_handler(event, None))
    assert world.lock_rows() == []
    assert lambda_handler(event, None) == twiml_response()

    assert outcomes() == [("QUEUE_TRANSIENT_ERROR", "QUEUE_TRANSIENT_ERROR"), ("QUEUED", None)]
    assert world.sent("whatsapp") == [(_trigger(item), 10)]
    assert [row["message_sid"] for row in world.stage_rows()] == [SID_A]
    assert [lock["message_sid"] for lock in world.lock_rows()] == [SID_A]


def test_a_message_arriving_after_the_failed_send_takes_the_released_lock(world, lambda_handler, aws, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    aws.fail("sqs.SendMessage", "AccessDenied", 403, times=1)
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID_A)), None)
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID_B)), None)
    assert outcomes() == [("QUEUE_ERROR", "QUEUE_ERROR"), ("QUEUED", None)]
    assert world.sent("whatsapp") == [(_trigger(item), 10)]


def test_stage_failure_after_the_lock_was_taken_releases_it(world, lambda_handler, aws, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    stage = world.resources.stage_table
    aws.fail("dynamodb.PutItem", "InternalServerError", 500, times=1, where=lambda p: p["TableName"] == stage)
    event = rest_event("whatsapp", whatsapp_params(sid=SID_A))

    raises_code("STAGE_WRITE_TRANSIENT_ERROR", lambda: lambda_handler(event, None))
    # The lock write was issued (with the stage write) and succeeded; it has been released again.
    lock_puts = [p for p in aws.of("dynamodb.PutItem") if p["TableName"] == world.resources.lock_table]
    assert len(lock_puts) == 1
    assert world.lock_rows() == []
    assert not any(world.all_sent().values())

    lambda_handler(event, None)
    assert outcomes() == [("STAGE_WRITE_TRANSIENT_ERROR", "STAGE_WRITE_TRANSIENT_ERROR"), ("QUEUED", None)]
    assert world.sent("whatsapp") == [(_trigger(item), 10)]
    assert [row["message_sid"] for row in world.stage_rows()] == [SID_A]


def test_release_only_deletes_a_lock_this_message_still_holds(world, lambda_handler, clock, aws, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    later = clock.epoch() + 500
    # Between taking the lock and sending, another message takes the lease over (e.g. ours had expired).
    aws.before("sqs.SendMessage", lambda params: world.put_lock(item["conversation_id"], SID_B, later))
    aws.fail("sqs.SendMessage", "InternalError", 500)

    raises_code(
        "QUEUE_TRANSIENT_ERROR", lambda: lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID_A)), None)
    )

    assert [d["TableName"] for d in aws.of("dynamodb.DeleteItem")].count(world.resources.lock_table) == 1
    assert world.lock_rows() == [
        {"conversation_id": item["conversation_id"], "message_sid": SID_B, "expires_at": later}
    ]


def test_failed_release_does_not_hide_the_original_error(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    aws.fail("sqs.SendMessage", "ServiceUnavailable", 503)
    aws.fail("dynamodb.DeleteItem", "InternalServerError", 500)
    raises_code("QUEUE_TRANSIENT_ERROR", lambda: lambda_handler(rest_event("sms", sms_params(sid=SID_A)), None))
    assert outcomes() == [("QUEUE_TRANSIENT_ERROR", "QUEUE_TRANSIENT_ERROR")]
    # The lock stays until its lease ends; the retry (same MessageSid) may take it again.
    assert [lock["message_sid"] for lock in world.lock_rows()] == [SID_A]
    aws.calls.clear()


def test_duplicate_delivery_leaves_one_stage_row(world, lambda_handler, clock, aws, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID_A))
    lambda_handler(event, None)
    [first] = world.stage_rows()
    clock.advance(1)  # the copy's row, were it written, would differ from the first
    lambda_handler(event, None)

    assert world.stage_rows() == [first]  # the first row, untouched
    # A re-delivered MessageSid holds the lock itself, so it may re-send its own trigger.
    assert outcomes() == [("QUEUED", None), ("QUEUED", None)]
    assert world.sent("whatsapp") == [(_trigger(item), 10), (_trigger(item), 10)]
    stage_puts = [p for p in aws.of("dynamodb.PutItem") if p["TableName"] == world.resources.stage_table]
    assert len(stage_puts) == 2 and all("ConditionExpression" in p for p in stage_puts)


def test_duplicate_delivery_while_another_message_holds_the_lock(world, lambda_handler, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID_A)), None)
    second = rest_event("whatsapp", whatsapp_params(sid=SID_B))
    lambda_handler(second, None)
    lambda_handler(second, None)
    assert outcomes() == [("QUEUED", None), ("BATCHED", None), ("BATCHED", None)]
    assert world.sent("whatsapp") == [(_trigger(item), 10)]
    assert sorted(row["message_sid"] for row in world.stage_rows()) == [SID_A, SID_B]


def test_with_no_batching_window_a_contract_lock_row_still_batches(world, cold_start, outcomes):
    """W = 0: this version never batches behind its own locks, but a held lease in the contract's shape (§2: only
    conversation_id, message_sid, expires_at; an older version's) is honoured: BATCHED until it expires."""
    container = cold_start(BATCH_WINDOW_SECONDS="0")
    clock = _steady()
    item = world.add_conversation()
    world.add_default_secrets()
    world.put_lock(item["conversation_id"], "SM-older-version", clock.epoch() + 30)

    container.handler(rest_event("whatsapp", whatsapp_params(sid=SID_A)), None)

    assert outcomes() == [("BATCHED", None)]
    assert world.sent("whatsapp") == []
    assert [row["message_sid"] for row in world.stage_rows()] == [SID_A]
    assert [(lock["message_sid"], set(lock)) for lock in world.lock_rows()] == [
        ("SM-older-version", {"conversation_id", "message_sid", "expires_at"})
    ]

    world.put_lock(item["conversation_id"], "SM-older-version", clock.epoch() - 1)
    container.handler(rest_event("whatsapp", whatsapp_params(sid=SID_B)), None)
    assert outcomes()[-1] == ("QUEUED", None)
    assert world.sent("whatsapp") == [(_trigger(item), 0)]


def test_with_no_batching_window_every_message_of_a_burst_triggers(world, cold_start, outcomes):
    """W = 0 is below the takeover margin: a lock this version took is never batched behind (docs/guarantees.md)."""
    container = cold_start(BATCH_WINDOW_SECONDS="0")
    _steady()
    item = world.add_conversation()
    world.add_default_secrets()

    container.handler(rest_event("sms", sms_params(sid=SID_A)), None)
    container.handler(rest_event("sms", sms_params(sid=SID_B)), None)

    assert outcomes() == [("QUEUED", None), ("QUEUED", None)]
    assert world.sent("sms") == [(_trigger(item), 0), (_trigger(item), 0)]
