"""The step registry: a dict of dotted names to step specs, filled by a class decorator.

A step declares at registration everything the engine and the tools need to know about it: the
JSON Schema of its ``with:`` block, the context key it provides and the keys it reads, the error codes
it may end an event with (and whether each is transient), the IAM actions it needs and the resources
they apply to, whether it takes part in authenticating the request, whether it only decides (reads
the context document, no side effect) and, for a step that reads the pipeline's routing targets, what
one holds. The pipeline schema, the error catalogue, ``--check`` and the deployment's least-privilege
policy are all derived from these.

The registry is filled by importing plugin modules (``runtime.plugins.load_plugins``); the engine
itself registers nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from engine.context import Context, StepResult
from engine.errors import ErrorSpec

__all__ = [
    "BuildInfo",
    "IamGrant",
    "ParamError",
    "Resource",
    "Step",
    "StepSpec",
    "get",
    "names",
    "register",
    "specs",
]


class Step(Protocol):
    """A built step: configured once per container, run once per event, no per-event state."""

    def run(self, ctx: Context) -> StepResult:
        """Do the step's work for one event."""
        ...


class ParamError(Exception):
    """A step parameter is wrong in a way its JSON Schema cannot say; ``path`` is inside ``with:``.

    ``knock_on`` marks a consequence of a problem already reported elsewhere (not reported again).
    """

    def __init__(self, path: tuple[Any, ...], message: str, *, knock_on: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.knock_on = knock_on


class Resource(NamedTuple):
    """What an IAM grant applies to, named through the pipeline's declared resources.

    ``kind`` is ``table`` (the logical table named by parameter ``param``, ``default`` when absent; with no
    default, only a step configured with that parameter gets the grant), ``index`` (every index listed under
    parameter path ``index_path`` of that table), ``queue`` (every target's queue of the pipeline) or
    ``secret`` (the secret-name pattern named by ``param``; without one, every pattern the pipeline declares).
    ``register`` refuses any other kind: the grants (``tools.iam``) cannot resolve it.
    """

    kind: str
    param: str | None = None
    default: str | None = None
    index_path: str | None = None


class IamGrant(NamedTuple):
    """IAM actions, and the resources they are granted on."""

    actions: tuple[str, ...]
    resources: tuple[Resource, ...]


@dataclass(frozen=True)
class BuildInfo:
    """What a step may consult while it is built: the loaded rule sets and the pipeline's resources.

    ``shadow_rulesets`` are a candidate's rule sets evaluated beside these (shadow evaluation): a step that
    reads what the rules need reads what they need too.
    """

    rulesets: Mapping[str, Any]
    tables: Mapping[str, str]
    targets: Mapping[str, Any]
    # Secret-name patterns by logical name; a declared pattern that does not compile is None (already reported).
    secrets: Mapping[str, re.Pattern[str] | None] = field(default_factory=dict)
    channels: tuple[str, ...] = ()
    shadow_rulesets: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepSpec:
    """A registered step kind: its factory and everything it declares about itself."""

    name: str
    factory: Callable[[Mapping[str, Any], BuildInfo], Step]
    params: Mapping[str, Any]
    iam: tuple[IamGrant, ...]
    errors: tuple[ErrorSpec, ...]
    provides: str | None
    requires: tuple[str, ...]
    deadline_code: str | None
    summary: str
    example: Mapping[str, Any] = field(default_factory=dict)
    # Part of authenticating the request (fetching the verification key, checking the signature).
    authenticates: bool = False
    # Request headers carrying the request's authentication, such as a signature (a dry-run may stand in for them,
    # a masked capture replaces them); not the data it signs, such as a signed timestamp.
    auth_headers: tuple[str, ...] = ()
    # Its auth headers sign a timestamp, so they stop being valid: a capture may keep them as sent (else as a digest).
    signature_expires: bool = False
    # Decides from the context document alone, with no side effect (shadow evaluation runs it again).
    decides: bool = False
    # For a step that reads the pipeline's ``targets:``, the fields of one entry (``properties``, ``required``);
    # every such step's fields are merged into the schema of a target.
    targets: Mapping[str, Any] | None = None


_REGISTRY: dict[str, StepSpec] = {}


def register(
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    iam: tuple[IamGrant, ...] = (),
    errors: tuple[ErrorSpec, ...] = (),
    provides: str | None = None,
    requires: tuple[str, ...] = (),
    deadline_code: str | None = None,
    example: Mapping[str, Any] | None = None,
    authenticates: bool = False,
    auth_headers: tuple[str, ...] = (),
    signature_expires: bool = False,
    decides: bool = False,
    targets: Mapping[str, Any] | None = None,
) -> Callable[[type], type]:
    """Class decorator registering a step kind under ``name`` (a dotted name like ``sqs.send``)."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].factory is not cls:
            raise ValueError(f"step name {name!r} is already registered by {_REGISTRY[name].factory.__module__}")
        if kinds := sorted({r.kind for grant in iam for r in grant.resources} - {"index", "queue", "secret", "table"}):
            raise ValueError(f"step {name!r}: IAM resource kind {kinds[0]!r} is not one of index, queue, secret, table")
        declared = {spec.code for spec in errors}
        if deadline_code is not None and deadline_code not in declared:
            raise ValueError(f"step {name!r}: its deadline code {deadline_code} is not among its declared errors")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _REGISTRY[name] = StepSpec(
            name=name,
            factory=cls,
            params=params or {"type": "object", "additionalProperties": False},
            iam=iam,
            errors=errors,
            provides=provides,
            requires=requires,
            deadline_code=deadline_code,
            summary=summary,
            example=example or {},
            authenticates=authenticates,
            auth_headers=auth_headers,
            signature_expires=signature_expires,
            decides=decides,
            targets=targets,
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
