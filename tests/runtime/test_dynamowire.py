"""The fast path of ``runtime.dynamowire`` gives exactly what boto3's own serializer and deserializer give.

The oracle is boto3: ``TypeSerializer().serialize`` and ``plain_value(TypeDeserializer().deserialize(...))``,
on the same values, results and errors alike; and an item written and read back through moto is unchanged.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from runtime.aws import DynamoTables
from runtime.dynamowire import from_wire, plain_value, to_wire

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.integers(),
    st.integers(min_value=-(10**39), max_value=10**39),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.binary(max_size=4),
    st.floats(allow_nan=False),
    st.frozensets(st.text(max_size=3), min_size=1, max_size=3),
    st.frozensets(st.integers(), min_size=1, max_size=3),
    st.binary(max_size=4).map(Binary),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=12,
)
_WIRE = st.recursive(
    st.one_of(
        st.fixed_dictionaries({"S": st.text(max_size=5)}),
        st.fixed_dictionaries({"N": st.sampled_from(["0", "-7", "3.25", "1E+3", "123456789012345678901234567890"])}),
        st.fixed_dictionaries({"BOOL": st.booleans()}),
        st.just({"NULL": True}),
        st.fixed_dictionaries({"B": st.binary(max_size=4)}),
        st.fixed_dictionaries({"SS": st.lists(st.text(max_size=3), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"BS": st.lists(st.binary(max_size=3), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"s": st.text(max_size=3)}),
        st.just({}),
        st.just({"X": 1}),
        st.just({"S": 5}),
        st.just({"M": ["not", "a", "map"]}),
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"L": st.lists(inner, max_size=3)}),
        st.fixed_dictionaries({"M": st.dictionaries(st.text(max_size=4), inner, max_size=3)}),
    ),
    max_leaves=10,
)


def _outcome(function: Any, value: Any) -> Any:
    try:
        return ("ok", function(value))
    except Exception as exc:  # noqa: BLE001 - the error is part of what must match
        return ("error", type(exc), str(exc))


class _Text(str):
    """A text subclass: boto3 serializes it as S, holding the subclass."""


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_to_wire_is_boto3s_serialize(value: Any) -> None:
    assert _outcome(to_wire, value) == _outcome(TypeSerializer().serialize, value)


@settings(max_examples=400, deadline=None)
@given(_WIRE)
def test_from_wire_is_boto3s_deserialize(value: Any) -> None:
    expected = _outcome(lambda v: plain_value(TypeDeserializer().deserialize(v)), value)
    assert _outcome(from_wire, value) == expected


@pytest.mark.parametrize("value", [10**38 - 1, -(10**38) + 1, 10**38, -(10**38), True, _Text("x"), Decimal("1.50")])
def test_edges_are_boto3s(value: Any) -> None:
    assert _outcome(to_wire, value) == _outcome(TypeSerializer().serialize, value)


def test_a_text_subclass_is_serialized_as_boto3_does() -> None:
    assert type(to_wire({"a": _Text("x")})["M"]["a"]["S"]) is _Text


def test_an_item_written_and_read_back_through_moto_is_unchanged() -> None:
    item = {
        "pk": "a",
        "text": "hello",
        "flag": False,
        "none": None,
        "count": 42,
        "price": Decimal("1.25"),
        "blob": b"\x00\x01",
        "tags": {"x", "y"},
        "nested": {"list": [1, "two", {"three": True}], "empty": {}},
    }
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        tables = DynamoTables(client)
        assert tables.put_item("t", item)
        assert client.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"] == TypeSerializer().serialize(item)["M"]
        assert tables.get_item("t", {"pk": "a"}) == {**item, "count": Decimal(42)}
