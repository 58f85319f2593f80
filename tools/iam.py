"""The least-privilege grants a loaded pipeline needs, from what its steps declare (``engine.registry.IamGrant``).

Each step's grants name resources through the pipeline's declarations (``tables:``, ``targets:``,
``secrets:``) and the step's own parameters; ``pipeline_grants`` resolves them to concrete names, so
the deployment (``template.yaml``) can be compared with exactly what the configured steps need.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from engine import registry
from engine.config import AppConfig
from engine.registry import Resource

__all__ = ["Grant", "pipeline_grants", "resolve"]


class Grant(NamedTuple):
    """One action on one resource: ``kind`` is table, index, queue or secret; ``name`` is its resolved name.

    An index's name is ``TABLE/index/INDEX``; a secret's is the pattern of names the step may read.
    """

    action: str
    kind: str
    name: str


def _walk(value: Any, path: list[str]) -> Iterator[Any]:
    """The values at a dotted ``path`` (``*`` stands for every value of a mapping)."""
    if not path:
        yield value
        return
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        children = value.values() if head == "*" else ([value[head]] if head in value else [])
        for child in children:
            yield from _walk(child, rest)


def resolve(resource: Resource, params: Mapping[str, Any], config: AppConfig) -> list[tuple[str, str]]:
    """The (kind, name) pairs a declared resource stands for in this pipeline."""
    if resource.kind == "queue":
        return [("queue", str(target["queue_url"])) for target in config.targets.values()]
    if resource.kind == "secret" and resource.param is None:
        declared = [pattern.pattern for pattern in config.secrets.values() if pattern is not None]
        return [("secret", pattern) for pattern in declared] or [("secret", "*")]
    chosen = params.get(resource.param or "", resource.default) if resource.param else resource.default
    if chosen is None:
        return []  # an optional resource the step is not configured with
    if resource.kind == "secret":
        pattern = config.secrets.get(str(chosen))
        return [("secret", pattern.pattern if pattern is not None else "*")]
    table = config.tables[str(chosen)]
    if resource.kind == "table":
        return [("table", table)]
    indexes = _walk(params, (resource.index_path or "").split("."))
    return [("index", f"{table}/index/{index}") for index in indexes]


def pipeline_grants(config: AppConfig) -> set[Grant]:
    """Every (action, resource) the pipeline's steps need."""
    grants: set[Grant] = set()
    for step in config.pipeline.steps():
        spec = registry.get(step.uses)
        assert spec is not None, step.uses
        for grant in spec.iam:
            for resource in grant.resources:
                for kind, name in resolve(resource, step.params, config):
                    grants |= {Grant(action, kind, name) for action in grant.actions}
    return grants
