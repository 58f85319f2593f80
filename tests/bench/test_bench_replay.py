"""The benchmark's baselines: recorded AWS calls issued again by plain boto3 (``bench.replay``), on moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bench.awscalls import AwsCall, CallRecorder, sequential_round_trips
from bench.events import Tenant, conversation, whatsapp_event
from bench.replay import Boto3Replay, concurrent_groups
from bench.world import MotoWorld, moto_world
from tools.localaws import LocalResources, provision, put_items

TWIN = "twin-"


def _call(operation: str, start: float, end: float, **params: Any) -> AwsCall:
    return AwsCall(f"dynamodb.{operation}", start, end, params, 200, {}, b"")


def test_calls_in_flight_together_form_one_group_in_start_order() -> None:
    query = _call("Query", 0.0, 1.0)
    get = _call("GetItem", 1.0, 2.0)
    stage = _call("PutItem", 2.0, 3.5)
    lock = _call("UpdateItem", 2.1, 2.9)
    late = _call("DeleteItem", 3.4, 4.0)
    send = _call("SendMessage", 4.0, 5.0)

    groups = concurrent_groups([send, lock, late, query, stage, get])

    assert [[call.name for call in group] for group in groups] == [
        ["Query"],
        ["GetItem"],
        ["PutItem", "UpdateItem", "DeleteItem"],
        ["SendMessage"],
    ]


@pytest.fixture
def world() -> Iterator[tuple[MotoWorld, LocalResources, list[AwsCall]]]:
    """A moto world, twin resources, and the calls of a warm container's routed message (AWS calls +20 ms)."""
    tenant = Tenant()
    with moto_world() as moto:
        twin = provision(moto.dynamodb, moto.sqs, prefix=TWIN)
        items = [conversation(0, tenant), conversation(1, tenant)]
        moto.add(items, tenant)
        put_items(moto.dynamodb, twin.conversations_table, items)
        recorder = CallRecorder(delay=0.02)
        app = moto.application(recorder)
        app.process(whatsapp_event(1, tenant))
        recorder.take()
        handled = app.process(whatsapp_event(0, tenant))
        assert handled.result.outcome == "QUEUED"
        yield moto, twin, recorder.take()


def _twin_replay(moto: MotoWorld, twin: LocalResources, session: Any = None) -> Boto3Replay:
    own, twins = moto.resources.environment(), twin.environment()
    return Boto3Replay(session or boto3.session.Session(), {own[key]: twins[key] for key in own})


def _count(moto: MotoWorld, table: str) -> int:
    return int(moto.dynamodb.scan(TableName=table, Select="COUNT")["Count"])


def _queued(moto: MotoWorld, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    attributes = moto.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def test_replayed_calls_do_the_same_writes_on_the_twin_resources(
    world: tuple[MotoWorld, LocalResources, list[AwsCall]],
) -> None:
    moto, twin, calls = world
    own = moto.resources

    _twin_replay(moto, twin).in_order(calls)

    assert sorted(call.name for call in calls) == sorted(
        ["Query", "BatchGetItem", "PutItem", "PutItem", "PutItem", "PutItem", "SendMessage"]
    )
    staged = moto.dynamodb.scan(TableName=twin.stage_table)["Items"]
    assert len(staged) == 1
    assert staged[0] in moto.dynamodb.scan(TableName=own.stage_table)["Items"]
    assert _count(moto, twin.lock_table) == 1
    assert _queued(moto, twin.whatsapp_queue_url) == 1
    assert _queued(moto, own.whatsapp_queue_url) == 2


def test_a_lost_conditional_write_counts_as_done_and_other_errors_raise(
    world: tuple[MotoWorld, LocalResources, list[AwsCall]],
) -> None:
    moto, twin, calls = world
    replay = _twin_replay(moto, twin)
    replay.in_order(calls)

    replay.in_order(calls)

    assert _count(moto, twin.stage_table) == 1
    lost = Boto3Replay(boto3.session.Session(), {moto.resources.stage_table: "no-such-table"})
    stage_write = next(call for call in calls if call.params.get("TableName") == moto.resources.stage_table)
    with pytest.raises(ClientError) as raised:
        lost.issue(stage_write)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_group_is_issued_together_and_groups_one_after_another(
    world: tuple[MotoWorld, LocalResources, list[AwsCall]],
) -> None:
    moto, twin, calls = world
    groups = concurrent_groups(calls)
    assert [len(group) for group in groups] == [1, 1, 3, 2]
    session = boto3.session.Session()
    delayed = CallRecorder(delay=0.05, keep_params=False)
    delayed.attach(session)
    replay = _twin_replay(moto, twin, session)
    try:
        replay.with_overlap(groups)
    finally:
        replay.close()

    replayed = delayed.take()
    assert len(replayed) == len(calls)
    assert sequential_round_trips(replayed) == len(groups)
    assert _count(moto, twin.stage_table) == 1
