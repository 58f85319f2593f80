"""Duplicates and concurrency against moto's server, over HTTP.

Every delivery runs in its own thread on its own container (configuration, boto3 clients and secret cache of
its own, as separate Lambda containers), all released at once by a barrier. The server's conditional writes
decide who takes the trigger lock, as DynamoDB's would.

The server is ``moto.server.ThreadedMotoServer`` in this process, its DynamoDB writes serialized as DynamoDB
applies conditional writes to an item (the ``moto_endpoint`` and ``world`` fixtures, ``conftest.py``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import WINDOW_SECONDS, process_concurrently
from tests.support.logscan import forbid
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import World
from tools.localaws import to_dynamo

pytestmark = pytest.mark.integration


def deliver_concurrently(events: Sequence[dict[str, Any]], at: datetime | None = None) -> list[str]:
    """Each event on a container of its own, all started together; the outcome of each (or the raised code).

    ``at``: the wall clock the containers read (default: now).
    """

    def outcome(handled: Any) -> str:
        return f"raised {handled.result.outcome}" if handled.raised else handled.result.outcome

    return process_concurrently("twilio_inbound", events, outcome, at)


def triggers(world: World) -> int:
    """Triggers sent to the WhatsApp queue (the test's one conversation), all still delayed by the window."""
    url = world.resources.whatsapp_queue_url
    attributes = world.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    delayed = int(attributes["ApproximateNumberOfMessagesDelayed"])
    visible = int(attributes["ApproximateNumberOfMessages"])
    assert visible == 0, "triggers are delayed by the batching window"
    return delayed


def staged(world: World, conversation_id: str) -> Counter[str]:
    return Counter(row["message_sid"] for row in world.stage_rows() if row["conversation_id"] == conversation_id)


def message(index: int, sid: str) -> dict[str, Any]:
    body = f"concurrent message {index}"
    forbid(body)
    return rest_event("whatsapp", whatsapp_params(sid, body=body))


def test_distinct_messages_of_one_conversation_share_one_trigger(world: World) -> None:
    item = world.add_conversation()
    sids = [f"SM{uuid.uuid4().hex}" for _ in range(8)]
    outcomes = deliver_concurrently([message(index, sid) for index, sid in enumerate(sids)])
    print(f"\n8 distinct messages at once: {Counter(outcomes)}")
    assert sorted(outcomes) == ["BATCHED"] * 7 + ["QUEUED"]
    assert staged(world, item["conversation_id"]) == Counter(sids)
    assert triggers(world) == 1
    locks = [row for row in world.lock_rows() if row["conversation_id"] == item["conversation_id"]]
    assert [lock["message_sid"] for lock in locks] == [sids[outcomes.index("QUEUED")]]


def test_one_message_delivered_many_times_at_once_is_staged_once(world: World) -> None:
    item = world.add_conversation()
    sid = f"SM{uuid.uuid4().hex}"
    outcomes = deliver_concurrently([message(0, sid)] * 8)
    sent = triggers(world)
    print(f"\none message 8 times at once: {Counter(outcomes)}, {sent} trigger(s)")
    assert set(outcomes) == {"QUEUED"}, "every copy re-takes its own lock and re-sends its own trigger"
    assert staged(world, item["conversation_id"]) == Counter({sid: 1})
    assert 1 <= sent <= 8


def test_retries_and_new_messages_mixed(world: World) -> None:
    item = world.add_conversation()
    sids = [f"SM{uuid.uuid4().hex}" for _ in range(4)]
    events = [message(index, sid) for index, sid in enumerate(sids)] * 2
    outcomes = deliver_concurrently(events)
    sent = triggers(world)
    print(f"\n4 messages, each twice, at once: {Counter(outcomes)}, {sent} trigger(s)")
    assert staged(world, item["conversation_id"]) == Counter(sids)
    holders = {sids[index % 4] for index, outcome in enumerate(outcomes) if outcome == "QUEUED"}
    assert len(holders) == 1, "one message of the window holds the lock; only its copies may re-send"
    assert 1 <= sent == outcomes.count("QUEUED") <= 2


def test_one_message_redelivered_in_sequence_is_staged_once(world: World) -> None:
    item = world.add_conversation()
    sid = f"SM{uuid.uuid4().hex}"
    outcomes = [deliver_concurrently([message(0, sid)])[0] for _ in range(5)]
    sent = triggers(world)
    print(f"\none message 5 times in a row: {Counter(outcomes)}, {sent} trigger(s)")
    assert outcomes == ["QUEUED"] * 5, "a re-delivered MessageSid re-takes its own lock and re-sends its trigger"
    assert staged(world, item["conversation_id"]) == Counter({sid: 1})
    assert sent == 5


def drain(world: World, conversation_id: str) -> list[str]:
    """The consumer, on a trigger: read the batch (consistent), delete its stage rows, then the lock."""
    batch = [row["message_sid"] for row in world.stage_rows() if row["conversation_id"] == conversation_id]
    for sid in batch:
        key = {"conversation_id": conversation_id, "message_sid": sid}
        world.dynamodb.delete_item(TableName=world.resources.stage_table, Key=to_dynamo(key))
    world.dynamodb.delete_item(
        TableName=world.resources.lock_table, Key=to_dynamo({"conversation_id": conversation_id})
    )
    return batch


def test_bursts_around_the_window_with_a_consumer_lose_nothing(world: World) -> None:
    # Bursts at the batching window's edges (W = 10 s; a lock is taken over once its trigger is due within 5 s),
    # one copy of a message re-delivered, and the consumer draining each batch when its trigger is due.
    item = world.add_conversation()
    conversation_id, start = item["conversation_id"], datetime.now(UTC).replace(microsecond=0)
    bursts = [(0.0, 3), (4.9, 2), (5.1, 2), (9.9, 1), (10.0, 2), (15.2, 1)]
    due: list[float] = []
    consumed: list[str] = []
    delivered: dict[str, str] = {}
    history: list[tuple[float, list[str]]] = []
    last: list[str] = []
    for at, size in bursts:
        while due and min(due) <= at:
            due.remove(min(due))
            consumed.extend(drain(world, conversation_id))
        sids = [f"SM{uuid.uuid4().hex}" for _ in range(size)]
        events = [message(index, sid) for index, sid in enumerate(sids)]
        if last:
            events.append(message(0, last[0]))  # a Twilio retry of the last burst's first message
        last = sids
        outcomes = deliver_concurrently(events, start + timedelta(seconds=at))
        history.append((at, outcomes))
        assert set(outcomes) <= {"QUEUED", "BATCHED"}, history
        delivered.update(zip(sids, outcomes, strict=False))
        due.extend(at + WINDOW_SECONDS for outcome in outcomes if outcome == "QUEUED")
    for _ in sorted(due):
        consumed.extend(drain(world, conversation_id))
    print(f"\nbursts around the window: {history}")
    assert set(consumed) >= set(delivered), "every accepted message is read by a trigger due after it was staged"
    assert staged(world, conversation_id) == Counter()
