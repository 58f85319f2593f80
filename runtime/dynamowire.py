"""DynamoDB's typed JSON, with boto3's own (de)serializer behind a fast path for the common types.

Every item an event reads or writes goes through here: texts, booleans, nulls, maps, lists and small
integers are converted directly (the output boto3's ``TypeSerializer``/``TypeDeserializer`` give, which
a property test checks); any other value (decimals, sets, binaries, subclasses, big integers, malformed
wire values) is handed to boto3's, so its results and errors stay exactly boto3's.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, Binary, TypeDeserializer, TypeSerializer

__all__ = ["from_wire", "plain_value", "to_wire"]

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
# Integers below 38 digits are exact in DynamoDB's decimal context, and print as ``str`` prints them.
_EXACT_INT = 10**38


def to_wire(value: Any) -> dict[str, Any]:
    """``TypeSerializer().serialize(value)``."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is dict:
        return {"M": {key: to_wire(item) for key, item in value.items()}}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is int and -_EXACT_INT < value < _EXACT_INT:
        return {"N": str(value)}
    if kind is list:
        return {"L": [to_wire(item) for item in value]}
    serialized: dict[str, Any] = _SERIALIZER.serialize(value)
    return serialized


def plain_value(value: Any) -> Any:
    """A deserialized value with boto3's ``Binary`` wrappers replaced by the bytes they hold."""
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_value(item) for item in value]
    if isinstance(value, (set, frozenset)) and any(isinstance(item, Binary) for item in value):
        return {bytes(item.value) for item in value}
    return value


def from_wire(value: Any) -> Any:
    """``plain_value(TypeDeserializer().deserialize(value))``."""
    if type(value) is dict:
        for kind, inner in value.items():  # boto3 reads the first key only
            if (kind == "S" and type(inner) is str) or (kind == "BOOL" and type(inner) is bool):
                return inner
            if kind == "M" and type(inner) is dict:
                return {key: from_wire(item) for key, item in inner.items()}
            if kind == "L" and type(inner) is list:
                return [from_wire(item) for item in inner]
            if kind == "N":
                return DYNAMODB_CONTEXT.create_decimal(inner)
            if kind == "NULL":
                return None
            break
    return plain_value(_DESERIALIZER.deserialize(value))
