"""The memory ports against the boto3 adapters over moto: the same calls give the same answers and errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from engine.conditions import AllOf, AnyOf, AttributeEquals, AttributeLessThan, AttributeNotExists, Condition
from engine.ports import ItemRequest, ServiceError
from runtime.aws import DynamoTables, SecretsManagerStore, SqsQueues
from tools.dryrun.blueprint import blueprint
from tools.dryrun.memory import MemoryQueues, MemorySecrets, MemoryTables, as_stored
from tools.localaws import provision

RESOURCES, SCHEMAS = blueprint()
CONVERSATIONS, STAGE, LOCK = RESOURCES.conversations_table, RESOURCES.stage_table, RESOURCES.lock_table
REPLAY = RESOURCES.replay_table
WA_INDEX = "company-whatsapp-number-recipient-tel-index"


class Pair:
    """The same port twice: moto through boto3 (the reference) and memory."""

    def __init__(self, reference: Any, memory: Any) -> None:
        self.reference = reference
        self.memory = memory

    def both(self, call: Callable[[Any], Any]) -> Any:
        """Call both; they must return equal values of equal types, or raise the same ServiceError."""
        outcomes = []
        for port in (self.reference, self.memory):
            try:
                outcomes.append(("value", call(port)))
            except ServiceError as exc:
                outcomes.append(("error", (exc.kind, exc.code, exc.operation)))
            except TypeError as exc:
                outcomes.append(("type-error", str(exc)))
        assert outcomes[1] == outcomes[0]
        assert _types(outcomes[1][1]) == _types(outcomes[0][1])
        return outcomes[0][1]


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_types(item) for item in value]
    return type(value).__name__


@pytest.fixture(scope="module")
def moto_ports() -> Iterator[tuple[Any, Any, Any]]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        dynamodb, sqs = session.client("dynamodb"), session.client("sqs")
        assert provision(dynamodb, sqs) == RESOURCES
        yield dynamodb, sqs, session.client("secretsmanager")


@pytest.fixture
def tables(moto_ports: tuple[Any, Any, Any]) -> Iterator[Pair]:
    dynamodb = moto_ports[0]
    pair = Pair(DynamoTables(dynamodb), MemoryTables(SCHEMAS))
    yield pair
    for table in (CONVERSATIONS, STAGE, LOCK):
        for item in dynamodb.scan(TableName=table)["Items"]:
            key = {name: item[name] for name in SCHEMAS[table].key_names}
            dynamodb.delete_item(TableName=table, Key=key)


def queried(port: Any, table: str, index: str, key: dict[str, str], attributes: list[str] | None = None) -> list[Any]:
    """Every item a port's index query answers, all pages read."""
    return [item for page in port.query_pages(table, index, key, attributes) for item in page.items]


def conversation(user: str, conversation_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "primary_channel": user,
        "conversation_id": conversation_id,
        "gsi_company_whatsapp_number": "+14155238886",
        "gsi_recipient_tel": user,
        "created_at": "2026-11-20T10:00:00Z",
        "task_complete": 0,
        "ai_config": {"temperature": Decimal("0.2"), "tags": {"a", "b"}, "ids": {1, 2}},
        "messages": [{"role": "user", "content": "hi", "timestamp": 1795000000}],
        "blob": b"\x00\x01",
        "nothing": None,
        "flag": True,
        **extra,
    }


def test_items_come_back_as_boto3_returns_them(tables: Pair) -> None:
    item = conversation("+447700900101", "c-1")
    assert tables.both(lambda port: port.put_item(CONVERSATIONS, item)) is True
    read = tables.both(
        lambda port: port.get_item(CONVERSATIONS, {"primary_channel": "+447700900101", "conversation_id": "c-1"})
    )
    assert read["task_complete"] == Decimal(0) and read["blob"] == b"\x00\x01" and read["ai_config"]["ids"] == {1, 2}
    tables.both(
        lambda port: port.get_item(CONVERSATIONS, {"primary_channel": "+447700900101", "conversation_id": "c-2"})
    )
    projected = tables.both(
        lambda port: port.get_item(
            CONVERSATIONS, {"primary_channel": "+447700900101", "conversation_id": "c-1"}, attributes=["flag", "absent"]
        )
    )
    assert projected == {"flag": True}
    read["messages"].append("changed by the caller")
    again = tables.memory.get_item(CONVERSATIONS, {"primary_channel": "+447700900101", "conversation_id": "c-1"})
    assert len(again["messages"]) == 1


def test_batch_reads_answer_each_item_as_get_item_does(tables: Pair) -> None:
    tables.both(lambda port: port.put_item(CONVERSATIONS, conversation("+447700900104", "c-1")))
    tables.both(lambda port: port.put_item(REPLAY, {"message_sid": "SM1", "replay_after": 5}))
    key = {"primary_channel": "+447700900104", "conversation_id": "c-1"}
    read = tables.both(
        lambda port: port.get_items(
            [
                ItemRequest(CONVERSATIONS, key, attributes=["flag", "conversation_id"]),
                ItemRequest(REPLAY, {"message_sid": "SM1"}),
            ]
        )
    )
    assert read == [{"flag": True, "conversation_id": "c-1"}, {"message_sid": "SM1", "replay_after": 5}]
    absent = tables.both(
        lambda port: port.get_items([ItemRequest(CONVERSATIONS, key), ItemRequest(REPLAY, {"message_sid": "SM2"})])
    )
    assert absent[0] is not None and absent[1] is None


def test_index_queries_are_sparse_sorted_and_projected(tables: Pair) -> None:
    for conversation_id in ("c-3", "c-1", "c-2"):
        tables.both(lambda port, cid=conversation_id: port.put_item(CONVERSATIONS, conversation("+447700900102", cid)))
    sparse = conversation("+447700900102", "c-0")
    del sparse["gsi_recipient_tel"]
    tables.both(lambda port: port.put_item(CONVERSATIONS, sparse))
    tables.both(lambda port: port.put_item(CONVERSATIONS, conversation("+447700900103", "c-9")))
    full = {"gsi_company_whatsapp_number": "+14155238886", "gsi_recipient_tel": "+447700900102"}
    found = tables.both(lambda port: queried(port, CONVERSATIONS, WA_INDEX, full, ["conversation_id", "task_complete"]))
    assert found == [{"conversation_id": c, "task_complete": 0} for c in ("c-1", "c-2", "c-3")]
    everyone = tables.both(
        lambda port: queried(port, CONVERSATIONS, WA_INDEX, {"gsi_company_whatsapp_number": "+14155238886"})
    )
    assert [item["conversation_id"] for item in everyone] == ["c-1", "c-2", "c-3", "c-9"]
    tables.both(lambda port: queried(port, CONVERSATIONS, WA_INDEX, {"gsi_company_whatsapp_number": "+19999999999"}))


# Each call, and how both ports answer it: a ServiceError's (kind, code, operation), boto3's TypeError text, or the
# value (deleting an item that is not there is no failure).
@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda port: port.get_item("no-such-table", {"conversation_id": "x"}),
            ("not_found", "ResourceNotFoundException", "dynamodb.GetItem"),
        ),
        (lambda port: port.get_item(LOCK, {"wrong": "x"}), ("invalid", "ValidationException", "dynamodb.GetItem")),
        (
            lambda port: port.get_item(CONVERSATIONS, {"primary_channel": "", "conversation_id": "x"}),
            ("invalid", "ValidationException", "dynamodb.GetItem"),
        ),
        (
            lambda port: port.put_item(LOCK, {"message_sid": "x"}),
            ("invalid", "ValidationException", "dynamodb.PutItem"),
        ),
        (
            lambda port: port.put_item(LOCK, {"conversation_id": ""}),
            ("invalid", "ValidationException", "dynamodb.PutItem"),
        ),
        (
            lambda port: port.put_item(LOCK, {"conversation_id": 5}),
            ("invalid", "ValidationException", "dynamodb.PutItem"),
        ),
        (
            lambda port: port.put_item(LOCK, {"conversation_id": "x", "n": 1.5}),
            "Float types are not supported. Use Decimal types instead.",
        ),
        (
            lambda port: port.put_item(LOCK, {"conversation_id": "x", "tags": set()}),
            ("invalid", "ValidationException", "dynamodb.PutItem"),
        ),
        (
            lambda port: port.put_item(CONVERSATIONS, conversation("+1", "c", gsi_recipient_tel=None)),
            ("invalid", "ValidationException", "dynamodb.PutItem"),
        ),
        # Over DynamoDB's item size limit (another service cannot have stored it), and just under it.
        (
            lambda port: port.put_item(CONVERSATIONS, conversation("+1", "c", history="x" * 410_000)),
            ("invalid", "ValidationException", "dynamodb.PutItem"),
        ),
        (
            lambda port: port.put_item(
                CONVERSATIONS, conversation("+1", "c", history=["x" * 1000] * 390, scores={Decimal("1.5")} | {1, 2})
            ),
            True,
        ),
        (
            lambda port: port.put_item(CONVERSATIONS, conversation("+1", "c", history=[{"t": "y" * 1000}] * 406)),
            ("invalid", "ValidationException", "dynamodb.PutItem"),
        ),
        (
            lambda port: port.put_item(CONVERSATIONS, conversation("+1", "c", history=[{"t": "y" * 1000}] * 404)),
            True,
        ),
        (
            lambda port: port.put_item(CONVERSATIONS, conversation("+1", "c", gsi_recipient_tel="")),
            ("invalid", "ValidationException", "dynamodb.PutItem"),
        ),
        (
            lambda port: queried(port, CONVERSATIONS, "no-such-index", {"a": "b"}),
            ("not_found", "ResourceNotFoundException", "dynamodb.Query"),
        ),
        (
            lambda port: queried(port, CONVERSATIONS, WA_INDEX, {"gsi_recipient_tel": "+1"}),
            ("invalid", "ValidationException", "dynamodb.Query"),
        ),
        (
            lambda port: queried(port, CONVERSATIONS, WA_INDEX, {"gsi_company_whatsapp_number": ""}),
            ("invalid", "ValidationException", "dynamodb.Query"),
        ),
        (lambda port: port.delete_item(LOCK, {"conversation_id": "never-written"}), True),
        (
            lambda port: port.get_items([ItemRequest("no-such-table", {"conversation_id": "x"})]),
            ("not_found", "ResourceNotFoundException", "dynamodb.BatchGetItem"),
        ),
        (
            lambda port: list(port.query_pages(CONVERSATIONS, "no-such-index", {"a": "b"})),
            ("not_found", "ResourceNotFoundException", "dynamodb.Query"),
        ),
    ],
)
def test_failures_are_the_same(tables: Pair, call: Callable[[Any], Any], expected: Any) -> None:
    assert tables.both(call) == expected


CONDITIONS: list[Condition] = [
    AttributeNotExists("conversation_id"),
    AttributeNotExists("message_sid"),
    AttributeLessThan("expires_at", 1795608000),
    AttributeEquals("message_sid", "SM1"),
    AttributeEquals("expires_at", 1795608000),
    AttributeLessThan("message_sid", "SM2"),
    AnyOf(
        (
            AttributeNotExists("conversation_id"),
            AttributeLessThan("expires_at", 1795608000),
            AttributeEquals("message_sid", "SM2"),
        )
    ),
    AllOf((AttributeNotExists("trigger_due_at"), AttributeLessThan("expires_at", 1795608000))),
]
operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "delete"]),
        st.sampled_from(["c-1", "c-2"]),
        st.sampled_from(["SM1", "SM2"]),
        st.integers(1795607990, 1795608010),
        st.none() | st.sampled_from(CONDITIONS),
    ),
    max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_conditional_writes_follow_the_condition_algebra(tables: Pair, steps: list[Any]) -> None:
    for operation, conversation_id, holder, expires_at, condition in steps:
        if operation == "put":
            item = {"conversation_id": conversation_id, "message_sid": holder, "expires_at": expires_at}
            tables.both(lambda port, i=item, c=condition: port.put_item(LOCK, i, c))
        else:
            tables.both(lambda port, k={"conversation_id": conversation_id}, c=condition: port.delete_item(LOCK, k, c))
        for cid in ("c-1", "c-2"):
            tables.both(lambda port, k={"conversation_id": cid}: port.get_item(LOCK, k))
    for cid in ("c-1", "c-2"):
        tables.reference.delete_item(LOCK, {"conversation_id": cid})
        tables.memory.delete_item(LOCK, {"conversation_id": cid})


def test_queues_and_secrets_fail_alike(moto_ports: tuple[Any, Any, Any]) -> None:
    _, sqs, secretsmanager = moto_ports
    queues = Pair(SqsQueues(sqs), MemoryQueues([RESOURCES.whatsapp_queue_url]))
    assert isinstance(
        queues.both(lambda port: port.send_message(RESOURCES.whatsapp_queue_url, "{}", 10) and "sent"), str
    )
    queues.both(lambda port: port.send_message(RESOURCES.whatsapp_queue_url, "{}", 901))
    queues.both(lambda port: port.send_message(RESOURCES.whatsapp_queue_url + "-missing", "{}", 0))
    secretsmanager.create_secret(Name="present", SecretString='{"twilio_auth_token": "x"}')
    secrets = Pair(SecretsManagerStore(secretsmanager), MemorySecrets({"present": '{"twilio_auth_token": "x"}'}))
    secrets.both(lambda port: port.get_secret_string("present"))
    secrets.both(lambda port: port.get_secret_string("absent"))


@settings(max_examples=40, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.text(max_size=5) | st.integers(-(10**20), 10**20),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
        max_leaves=10,
    )
)
def test_the_direct_path_stores_what_boto3_would(value: Any) -> None:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    expected = TypeDeserializer().deserialize(TypeSerializer().serialize(value))
    assert as_stored(value) == expected and _types(as_stored(value)) == _types(expected)


def test_a_row_the_account_replay_planned_reads_back_as_the_account_would_return_it(
    moto_ports: tuple[Any, Any, Any], tables: Pair
) -> None:
    """Defect: a planned row (``PlanningTables``, the replay over the real account) went through boto3's serializer
    and deserializer without ``plain_value``, so a binary attribute read back as boto3's ``Binary`` wrapper where the
    account's read gives ``bytes`` (which ``json_safe`` writes as base64 and a ``Binary`` it leaves as it is)."""
    from tools.dryrun.lanes import TableDescriber
    from tools.dryrun.recording import Journal, PlanningTables

    item = {
        "conversation_id": "c-binary",
        "message_sid": "SMbinary",
        "blob": b"\x00\xff",
        "blobs": {b"a", b"b"},
        "nested": {"inner": [b"\x01", 7]},
        "count": 3,
    }
    key = {"conversation_id": "c-binary", "message_sid": "SMbinary"}
    planning = PlanningTables(tables.reference, Journal(), TableDescriber(moto_ports[0]))
    assert planning.put_item(STAGE, item)
    tables.reference.put_item(STAGE, item)
    planned, stored = planning.get_item(STAGE, key), tables.reference.get_item(STAGE, key)
    assert planned == stored
    assert _types(planned) == _types(stored)
    assert {type(value) for value in planned["blobs"]} == {bytes}
