"""Loading and validating a pipeline and its rule sets, in layers.

1. YAML, safely, with positions and duplicate-key detection (``engine.yamlsource``);
2. ``${env:…}`` references (``engine.envsubst``);
3. JSON Schema (``engine.schema``), errors located at the offending key or value;
4. each element's own checks: JMESPath syntax (located inside the expression), step parameters,
   cross-references (rule sets, targets, the context keys steps need).

Every problem found is collected; any error raises ``ConfigError`` listing them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import registry
from engine.aws import AwsSettings
from engine.envsubst import resolve_env
from engine.errors import ConfigError, Problem
from engine.expressions import Expression, ExpressionSyntaxError, compile_expression
from engine.registry import BuildInfo, ParamError
from engine.responses import ResponseFamily, ResponsePolicy
from engine.rules import Decision, Rule, RuleSet, RuleTest
from engine.runner import ParallelGroup, Pipeline, PlannedStep
from engine.schema import pipeline_schema, rules_schema, schema_problems
from engine.yamlsource import Locator, SourceDoc, load_yaml

__all__ = ["AppConfig", "Target", "display_path", "load_config", "load_rulesets"]

DEFAULT_DEADLINE_SECONDS = 4.0


@dataclass(frozen=True)
class Target:
    """A routing target: the queue a decision maps to and how the message is sent."""

    name: str
    queue_url: str
    delay_seconds: int
    lock: bool
    message: str


@dataclass(frozen=True)
class AppConfig:
    """A loaded, validated configuration, ready to run."""

    pipeline: Pipeline
    rulesets: Mapping[str, RuleSet]
    targets: Mapping[str, Target]
    tables: Mapping[str, str]
    responses: ResponsePolicy
    aws: AwsSettings
    files: tuple[str, ...]
    warnings: tuple[Problem, ...] = field(default_factory=tuple)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    def load(
        self, path: Path, schema: dict[str, Any], env: Mapping[str, str], missing_env: str
    ) -> tuple[Any, Locator] | None:
        try:
            doc: SourceDoc = load_yaml(path, display_path(path))
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return None
        data, env_problems = resolve_env(doc.data, env, doc.locator, missing_severity=missing_env)
        self.problems.extend(env_problems)
        if any(problem.severity == "error" for problem in env_problems):
            return None
        found = schema_problems(data, schema, doc.locator)
        self.problems.extend(found)
        return None if found else (data, doc.locator)

    def expression(self, source: str, locator: Locator, path: tuple[Any, ...]) -> Expression | None:
        try:
            return compile_expression(source)
        except ExpressionSyntaxError as exc:
            line, column = locator.position(path)
            offset = exc.offset if "\n" not in source else 0
            self.problems.append(Problem(locator.file, line, column + offset, f"{exc} (in {source!r})"))
            return None


def _decision(collector: _Collector, then: Mapping[str, Any], locator: Locator, path: tuple[Any, ...]) -> Decision:
    target_from = None
    if "target_from" in then:
        target_from = collector.expression(then["target_from"], locator, (*path, "target_from"))
    return Decision(
        error=then.get("error"),
        message=then.get("message"),
        reply=then.get("reply"),
        target=then.get("target"),
        target_from=target_from,
    )


def _ruleset(collector: _Collector, data: Mapping[str, Any], locator: Locator) -> RuleSet:
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data["rules"]):
        path: tuple[Any, ...] = ("rules", index)
        if raw["id"] in seen:
            collector.problems.append(
                locator.problem((*path, "id"), f"duplicate rule id {raw['id']!r} (also rule #{seen[raw['id']] + 1})")
            )
        seen.setdefault(raw["id"], index)
        when = collector.expression(raw["when"], locator, (*path, "when"))
        then = _decision(collector, raw["then"], locator, (*path, "then"))
        if when is not None:
            rules.append(Rule(raw["id"], when, then, raw.get("description", "")))
    default = _decision(collector, data["default"], locator, ("default",)) if "default" in data else None
    tests = tuple(
        RuleTest(test["name"], test["given"], test["expect"], index) for index, test in enumerate(data.get("tests", []))
    )
    return RuleSet(
        name=data["ruleset"],
        kind=data["kind"],
        rules=tuple(rules),
        default=default,
        file=locator.file,
        description=data.get("description", ""),
        tests=tests,
    )


def load_rulesets(
    rules_dir: Path, env: Mapping[str, str], collector: _Collector, missing_env: str = "error"
) -> tuple[dict[str, RuleSet], dict[str, Locator]]:
    """Every rule set in ``rules_dir`` (``*.yaml``/``*.yml``, name order)."""
    rulesets: dict[str, RuleSet] = {}
    locators: dict[str, Locator] = {}
    if not rules_dir.is_dir():
        collector.problems.append(Problem(display_path(rules_dir), 1, 1, "rules directory not found"))
        return rulesets, locators
    schema = rules_schema()
    files = sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])
    for path in files:
        loaded = collector.load(path, schema, env, missing_env)
        if loaded is None:
            continue
        data, locator = loaded
        name = data["ruleset"]
        if name in rulesets:
            collector.problems.append(
                locator.problem(("ruleset",), f"rule set {name!r} is already defined in {rulesets[name].file}")
            )
            continue
        rulesets[name] = _ruleset(collector, data, locator)
        locators[name] = locator
    return rulesets, locators


def _targets(data: Mapping[str, Any]) -> dict[str, Target]:
    return {
        name: Target(
            name=name,
            queue_url=raw["queue_url"],
            delay_seconds=int(raw.get("delay_seconds", 0)),
            lock=bool(raw.get("lock", False)),
            message=raw.get("message", "trigger"),
        )
        for name, raw in data.get("targets", {}).items()
    }


def _families(data: Mapping[str, Any]) -> list[ResponseFamily]:
    return [
        ResponseFamily(
            name=name,
            format=raw["format"],
            channels=frozenset(raw.get("channels", [])),
            default=bool(raw.get("default", False)),
            raise_transient=raw.get("on_transient", "respond") == "raise",
            status=dict(raw.get("status", {})),
            default_status=int(raw.get("default_status", 500)),
        )
        for name, raw in data["responses"].items()
    ]


def _check_routing_targets(
    collector: _Collector,
    rulesets: Mapping[str, RuleSet],
    locators: Mapping[str, Locator],
    targets: Mapping[str, Target],
) -> None:
    for name, ruleset in rulesets.items():
        if ruleset.kind != "routing":
            continue
        decisions: list[tuple[tuple[Any, ...], Decision]] = [
            (("rules", index, "then", "target"), rule.then) for index, rule in enumerate(ruleset.rules)
        ]
        if ruleset.default is not None:
            decisions.append((("default", "target"), ruleset.default))
        for path, decision in decisions:
            if decision.target is not None and decision.target not in targets:
                known = ", ".join(sorted(targets)) or "none"
                collector.problems.append(
                    locators[name].problem(
                        path, f"routing target {decision.target!r} names no configured queue; targets: {known}"
                    )
                )


def _build_steps(
    collector: _Collector, data: Mapping[str, Any], locator: Locator, info: BuildInfo
) -> list[PlannedStep | ParallelGroup]:
    nodes: list[PlannedStep | ParallelGroup] = []
    seen_ids: set[str] = set()
    provided: set[str] = set()

    def build(raw: Mapping[str, Any], path: tuple[Any, ...], available: set[str]) -> PlannedStep | None:
        spec = registry.get(raw["uses"])
        assert spec is not None  # the schema's enum guarantees it
        if raw["id"] in seen_ids:
            collector.problems.append(locator.problem((*path, "id"), f"duplicate step id {raw['id']!r}"))
        seen_ids.add(raw["id"])
        for need in spec.requires:
            if need not in available:
                collector.problems.append(
                    locator.problem(
                        (*path, "uses"),
                        f"step {raw['id']!r} ({spec.name}) reads {need!r}, which no earlier step provides",
                    )
                )
        when = collector.expression(raw["when"], locator, (*path, "when")) if "when" in raw else None
        try:
            step = spec.factory(raw.get("with", {}), info)
        except ParamError as exc:
            collector.problems.append(locator.problem((*path, "with", *exc.path), f"{raw['id']}: {exc.message}"))
            return None
        return PlannedStep(raw["id"], spec.name, step, spec.provides, when, spec.deadline_code)

    for index, raw in enumerate(data["steps"]):
        if "parallel" in raw:
            members = [build(m, ("steps", index, "parallel", i), set(provided)) for i, m in enumerate(raw["parallel"])]
            for member in members:
                if member is not None and member.provides:
                    provided.add(member.provides)
            if all(member is not None for member in members):
                nodes.append(ParallelGroup(tuple(m for m in members if m is not None)))
            continue
        planned = build(raw, ("steps", index), provided)
        if planned is not None:
            if planned.provides:
                provided.add(planned.provides)
            nodes.append(planned)
    return nodes


def load_config(
    pipeline_path: Path,
    rules_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    missing_env: str = "error",
) -> AppConfig:
    """Load, validate and build a pipeline with its rule sets; raise ConfigError listing every error.

    ``missing_env="warning"`` (for ``--check`` away from the deployed environment) reports unset
    ``${env:…}`` references as warnings and keeps the reference text as the value.
    """
    import steps  # noqa: F401 - registers the built-in steps

    environment = os.environ if env is None else env
    collector = _Collector()
    rulesets, locators = load_rulesets(rules_dir, environment, collector, missing_env)
    loaded = collector.load(pipeline_path, pipeline_schema(), environment, missing_env)
    if loaded is None:
        raise ConfigError(collector.errors or collector.problems)
    data, locator = loaded
    targets = _targets(data)
    tables = dict(data.get("tables", {}))
    _check_routing_targets(collector, rulesets, locators, targets)
    info = BuildInfo(rulesets=rulesets, tables=tables, targets=targets)
    nodes = _build_steps(collector, data, locator, info)
    policy = ResponsePolicy(_families(data))
    if not any(family.default for family in _families(data)):
        collector.problems.append(locator.problem(("responses",), "one response family needs `default: true`"))
    if collector.errors:
        raise ConfigError(collector.errors)
    aws = data.get("aws", {})
    pipeline = Pipeline(
        data["pipeline"], nodes, deadline_seconds=float(data.get("deadline_seconds", DEFAULT_DEADLINE_SECONDS))
    )
    return AppConfig(
        pipeline=pipeline,
        rulesets=rulesets,
        targets=targets,
        tables=tables,
        responses=policy,
        aws=AwsSettings(
            connect_timeout=float(aws.get("connect_timeout_seconds", 0.5)),
            read_timeout=float(aws.get("read_timeout_seconds", 1.0)),
            max_attempts=int(aws.get("max_attempts", 2)),
        ),
        files=(locator.file, *(ruleset.file for ruleset in rulesets.values())),
        warnings=tuple(problem for problem in collector.problems if problem.severity == "warning"),
    )
