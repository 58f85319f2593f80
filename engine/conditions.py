"""A small algebra of write conditions, rendered to DynamoDB (``runtime.aws``) or evaluated in memory (the dry-run).

Steps state *what* must hold for a conditional write; each storage adapter decides *how*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AllOf", "AnyOf", "AttributeEquals", "AttributeLessThan", "AttributeNotExists", "Condition"]


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
