"""A small algebra of write conditions, rendered to DynamoDB or evaluated in memory.

Steps state *what* must hold for a conditional write; each storage adapter decides *how*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AllOf", "AnyOf", "AttributeEquals", "AttributeLessThan", "AttributeNotExists", "Condition", "holds"]


@dataclass(frozen=True)
class AttributeNotExists:
    """The item (or this attribute of it) does not exist."""

    name: str


@dataclass(frozen=True)
class AttributeEquals:
    """The attribute equals ``value``."""

    name: str
    value: Any


@dataclass(frozen=True)
class AttributeLessThan:
    """The attribute is less than ``value``."""

    name: str
    value: Any


@dataclass(frozen=True)
class AnyOf:
    """At least one of the conditions holds."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AllOf:
    """Every one of the conditions holds."""

    conditions: tuple[Condition, ...]


Condition = AttributeNotExists | AttributeEquals | AttributeLessThan | AnyOf | AllOf


def holds(condition: Condition, item: Mapping[str, Any] | None) -> bool:
    """Evaluate ``condition`` against the current ``item`` (None when there is no item)."""
    if isinstance(condition, AnyOf):
        return any(holds(part, item) for part in condition.conditions)
    if isinstance(condition, AllOf):
        return all(holds(part, item) for part in condition.conditions)
    present = item is not None and condition.name in item
    if isinstance(condition, AttributeNotExists):
        return not present
    if not present:
        return False
    assert item is not None
    current = item[condition.name]
    if isinstance(condition, AttributeEquals):
        return bool(current == condition.value)
    try:
        return bool(current < condition.value)
    except TypeError:
        return False
