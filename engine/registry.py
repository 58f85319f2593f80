"""The step registry: a dict of dotted names to step specs, filled by a class decorator.

Each registration carries the step's parameter schema (JSON Schema for its ``with:`` block), the
IAM actions it needs, the context key it provides and the keys it requires. The pipeline schema is
assembled from these, so a new step's parameters appear in editors and in ``--check`` automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.context import Context, StepResult

__all__ = ["BuildInfo", "ParamError", "Step", "StepSpec", "get", "names", "register", "specs"]


class Step(Protocol):
    """A built step: configured once per container, run once per event, no per-event state."""

    def run(self, ctx: Context) -> StepResult:
        """Do the step's work for one event."""
        ...


class ParamError(Exception):
    """A step parameter is wrong in a way its JSON Schema cannot say; ``path`` is inside ``with:``."""

    def __init__(self, path: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class BuildInfo:
    """What a step may consult while it is built: the loaded rule sets and the pipeline's resources."""

    rulesets: Mapping[str, Any]
    tables: Mapping[str, str]
    targets: Mapping[str, Any]


StepFactory = Callable[[Mapping[str, Any], BuildInfo], Step]


@dataclass(frozen=True)
class StepSpec:
    """A registered step kind."""

    name: str
    factory: StepFactory
    params: Mapping[str, Any]
    iam_actions: tuple[str, ...]
    provides: str | None
    requires: tuple[str, ...]
    deadline_code: str | None
    summary: str
    example: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, StepSpec] = {}


def register(
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    iam: tuple[str, ...] = (),
    provides: str | None = None,
    requires: tuple[str, ...] = (),
    deadline_code: str | None = None,
    example: Mapping[str, Any] | None = None,
) -> Callable[[type], type]:
    """Class decorator registering a step kind under ``name`` (a dotted name like ``sqs.send``)."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].factory is not cls:
            raise ValueError(f"step name {name!r} is already registered")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _REGISTRY[name] = StepSpec(
            name=name,
            factory=cls,
            params=params or {"type": "object", "additionalProperties": False},
            iam_actions=iam,
            provides=provides,
            requires=requires,
            deadline_code=deadline_code,
            summary=summary,
            example=example or {},
        )
        return cls

    return decorate


def get(name: str) -> StepSpec | None:
    """The spec registered under ``name``, or None."""
    return _REGISTRY.get(name)


def names() -> list[str]:
    """Every registered name, sorted."""
    return sorted(_REGISTRY)


def specs() -> list[StepSpec]:
    """Every registered spec, sorted by name."""
    return [_REGISTRY[name] for name in names()]
