"""Loading and validating a pipeline and its rule sets, in layers.

1. YAML, safely, with positions and duplicate-key detection (``engine.yamlsource``), or the parsed
   document a ``Prevalidated`` source holds for the same text (the build's stamp; ``load_config`` only);
2. ``${env:…}`` references (``engine.envsubst``);
3. JSON Schema (``engine.schema``), errors located at the offending key or value;
4. each element's own checks: JMESPath syntax (located inside the expression), step parameters,
   cross-references (rule sets, targets, the context keys steps need, the error codes in use).

A pipeline's rule sets are the files of the rules directory that name it under ``pipelines:``, plus
those that name no pipeline (shared by all). Its error codes are those its steps declare, those its
``errors:`` block declares for the rules, and ``INTERNAL_ERROR``. The steps must be registered first
(``runtime.plugins.load_plugins``).

Every layer runs on every file, and the element checks run on every part of a file that is
well-formed, so one pass finds every problem without knock-on errors (``inspect_config``, which
``pipeline-dryrun --check`` reports). ``load_config`` raises ``ConfigError`` listing all errors.

A loaded configuration carries its ``version``: a digest of the files it was loaded from (their names
and texts, not where they sit), so logs, metrics and the dry-run can say which rules decided.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from engine import registry
from engine.calls import CallLimits
from engine.envsubst import ENV_REFERENCE, is_unresolved, resolve_env
from engine.errors import ENGINE_ERRORS, ConfigError, ErrorSpec, Problem, did_you_mean
from engine.expressions import Expression, ExpressionSyntaxError, compile_expression
from engine.locator import Locator, PathKey
from engine.registry import BuildInfo, ParamError
from engine.responses import ResponseFamily, ResponsePolicy
from engine.rules import Decision, Rule, RuleSet, RuleTest
from engine.runner import ParallelGroup, Pipeline, PlannedStep
from engine.schema import pipeline_schema, rules_schema, schema_violations

__all__ = [
    "AppConfig",
    "Inspection",
    "LoadedRuleSet",
    "LocatedExpression",
    "content_digest",
    "display_path",
    "inspect_config",
    "load_config",
]

DEFAULT_DEADLINE_SECONDS = 4.0

_Part = TypeVar("_Part", list[Any], dict[Any, Any])


# Loading's records are NamedTuples, cheaper than frozen dataclasses to define at cold start (AppConfig
# stays one: the dry-run copies it with dataclasses.replace).
class Prevalidated(Protocol):
    """What the build proved about configuration files (the runtime's stamp): schema validity and parsed documents."""

    def vouches(self, path: Path, text: str, resolved: Any, schema: Mapping[str, Any]) -> bool:
        """True when ``text`` (read from ``path``, ``resolved`` after ``${env:…}``) needs no schema validation."""
        ...

    def document(self, path: Path, text: str) -> tuple[bool, Any]:
        """Whether the parsed document of ``text`` (read from ``path``) is known, and that document."""
        ...


@dataclass(frozen=True)
class AppConfig:
    """A loaded, validated pipeline configuration, ready to run.

    ``version`` is the content digest of its files (``content_digest``); ``source`` says where they came
    from when not from beside the handler (a rules bundle), else it is empty.
    """

    pipeline: Pipeline
    rulesets: Mapping[str, RuleSet]
    targets: Mapping[str, Mapping[str, Any]]
    tables: Mapping[str, str]
    responses: ResponsePolicy
    aws: CallLimits
    files: tuple[str, ...]
    warnings: tuple[Problem, ...] = field(default_factory=tuple)
    channels: tuple[str, ...] = ()
    errors: Mapping[str, ErrorSpec] = field(default_factory=dict)
    secrets: Mapping[str, re.Pattern[str] | None] = field(default_factory=dict)
    version: str = ""
    source: str = ""

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.pipeline.name


class LoadedRuleSet(NamedTuple):
    """A rule set and its file's locator; ``complete`` when every rule and test of the file was built."""

    ruleset: RuleSet
    locator: Locator
    complete: bool


class LocatedExpression(NamedTuple):
    """A compiled expression and where its source sits."""

    locator: Locator
    path: PathKey
    expression: Expression


class Inspection(NamedTuple):
    """Everything one loading pass found: every problem, and what could be built.

    ``config`` is None when any problem is an error. ``files`` are the display names of the
    pipeline file then the rules files, in the order they were read. ``provided`` are the context
    keys the pipeline's steps provide (None when a step is unknown); ``used`` the rule sets its steps use.
    """

    problems: tuple[Problem, ...]
    rulesets: Mapping[str, LoadedRuleSet]
    targets: Mapping[str, Mapping[str, Any]]
    expressions: tuple[LocatedExpression, ...]
    files: tuple[str, ...]
    config: AppConfig | None
    provided: frozenset[str] | None = None
    used: frozenset[str] = frozenset()

    @property
    def errors(self) -> list[Problem]:
        """The problems that stop the configuration from running."""
        return [problem for problem in self.problems if problem.severity == "error"]


def content_digest(files: Iterable[tuple[str, str]]) -> str:
    """The version of a set of files: a digest of their names (``rules/10_a.yaml``) and texts, 12 hex digits."""
    digest = hashlib.sha256()
    for name, text in sorted(files):
        digest.update(f"{name}\n{len(text)}\n{text}".encode())
    return digest.hexdigest()[:12]


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _Loaded(NamedTuple):
    """A file that parsed to a mapping, and the paths where the schema found violations."""

    data: dict[str, Any]
    locator: Locator
    violations: tuple[PathKey, ...]

    def bad(self, path: PathKey) -> bool:
        """True when the schema found a violation at ``path`` or inside it."""
        return any(found[: len(path)] == path for found in self.violations)

    def part(self, key: str, kind: type[_Part]) -> _Part:
        """The document's ``key`` when it is a ``kind`` (list or dict), else an empty one."""
        value = self.data.get(key)
        return value if isinstance(value, kind) else kind()


def _value_at(data: Any, path: PathKey) -> Any:
    for part in path:
        if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data


def _naming_variable(problem: Problem, written: Any) -> Problem:
    """``problem`` about a value the file writes as ``${env:NAME}``: the variable is named (the file shows no value)."""
    reference = ENV_REFERENCE.fullmatch(written) if isinstance(written, str) else None
    named = f"{problem.message} (the value comes from environment variable {reference[1]})" if reference else ""
    return replace(problem, message=named) if named else problem


def _has_unresolved(data: Any) -> bool:
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else None
    return is_unresolved(data) if values is None else any(_has_unresolved(value) for value in values)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


class _Collector:
    """Accumulates problems (and compiled expressions) across every file of one loading pass."""

    def __init__(
        self, env: Mapping[str, str], missing_env: str, stamp: Prevalidated | None = None, *, documents: bool = False
    ) -> None:
        self.env = env
        self.missing_env = missing_env
        self.stamp = stamp
        # Take each file's parsed document from the stamp when it has it: no positions, so only for a pass
        # whose problems are then found again from the YAML.
        self.documents = documents
        self.problems: list[Problem] = []
        self.expressions: list[LocatedExpression] = []
        self.files: list[str] = []
        # (``pipelines/<name>`` or ``rules/<name>``, text) of each file read, for the version.
        self.sources: list[tuple[str, str]] = []

    def load(self, path: Path, schema: dict[str, Any], role: str) -> _Loaded | None:
        """Parse, resolve ``${env:…}`` and validate one file; None when it is not a YAML mapping."""
        name = display_path(path)
        self.files.append(name)
        parsed = self._parse(path, name)
        if parsed is None:
            return None
        document, locator = parsed
        self.sources.append((f"{role}/{path.name}", locator.text))
        data, env_problems = resolve_env(document, self.env, locator, missing_severity=self.missing_env)
        self.problems.extend(env_problems)
        # A value still holding an unset ${env:…} reference was reported above; its type is unknown.
        vouched = self.stamp is not None and self.stamp.vouches(path, locator.text, data, schema)
        violations = [] if vouched else schema_violations(data, schema, locator)
        found = [v for v in violations if not is_unresolved(v.value)]
        self.problems.extend(_naming_variable(v.problem, _value_at(document, v.path)) for v in found)
        if not isinstance(data, dict):
            return None
        return _Loaded(data, locator, tuple(v.path for v in found))

    def _parse(self, path: Path, name: str) -> tuple[Any, Locator] | None:
        """The file's document and locator: the stamp's for this text when allowed, else parsed from YAML."""
        if self.documents and self.stamp is not None:
            text = _read_text(path)
            found, document = self.stamp.document(path, text) if text is not None else (False, None)
            if found:
                return document, Locator(name, text=text or "")
        from engine.yamlsource import load_yaml

        try:
            doc = load_yaml(path, name, strict=False)
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return None
        self.problems.extend(doc.problems)
        return doc.data, doc.locator

    def expression(self, source: Any, locator: Locator, path: PathKey) -> Expression | None:
        """Compile ``source``; a syntax error is a problem located inside the expression."""
        if not isinstance(source, str):
            return None
        try:
            compiled = compile_expression(source)
        except ExpressionSyntaxError as exc:
            shown = f" (in {source.strip()!r})" if "\n" not in source.strip() else ""
            self.problems.append(locator.problem(path, f"invalid JMESPath: {exc}{shown}", offset=exc.offset))
            return None
        self.expressions.append(LocatedExpression(locator, path, compiled))
        return compiled


def _decision(collector: _Collector, then: Mapping[str, Any], locator: Locator, path: PathKey) -> Decision:
    return Decision(
        error=then.get("error"),
        message=then.get("message"),
        reply=then.get("reply"),
        target=then.get("target"),
        target_from=collector.expression(then.get("target_from"), locator, (*path, "target_from")),
    )


def _rules(collector: _Collector, loaded: _Loaded) -> tuple[list[Rule], bool]:
    """The well-formed rules of a file, and whether every rule was."""
    locator = loaded.locator
    rules: list[Rule] = []
    complete = True
    first: dict[str, int] = {}
    for index, raw in enumerate(loaded.part("rules", list)):
        path: PathKey = ("rules", index)
        if not isinstance(raw, dict):
            complete = False
            continue
        rule_id = raw.get("id")
        if isinstance(rule_id, str) and rule_id in first:
            line = locator.position(("rules", first[rule_id], "id"))[0]
            message = f"duplicate rule id {rule_id!r} (first used on line {line}); give each rule its own id"
            collector.problems.append(locator.problem((*path, "id"), message))
        elif isinstance(rule_id, str):
            first[rule_id] = index
        when = None if loaded.bad((*path, "when")) else collector.expression(raw.get("when"), locator, (*path, "when"))
        then = raw.get("then")
        decision = _decision(collector, then, locator, (*path, "then")) if isinstance(then, dict) else None
        if when is None or decision is None or not isinstance(rule_id, str) or loaded.bad(path):
            complete = False
            continue
        rules.append(Rule(rule_id, when, decision, index))
    return rules, complete


def _ruleset(collector: _Collector, loaded: _Loaded) -> LoadedRuleSet | None:
    """The file's rule set, built from its well-formed parts; None when it has no usable name."""
    data, locator = loaded.data, loaded.locator
    rules, complete = _rules(collector, loaded)
    default = None
    if isinstance(data.get("default"), dict) and not loaded.bad(("default",)):
        default = _decision(collector, data["default"], locator, ("default",))
    elif "default" in data:
        complete = False
    tests: list[RuleTest] = []
    for index, test in enumerate(loaded.part("tests", list)):
        if loaded.bad(("tests", index)) or not isinstance(test, dict):
            complete = False
            continue
        tests.append(RuleTest(test["name"], test["given"], test["expect"], index))
    name, kind = data.get("ruleset"), data.get("kind")
    if not isinstance(name, str):
        return None
    ruleset = RuleSet(
        name=name,
        kind=kind if isinstance(kind, str) else "",  # a missing kind is reported; the set is still known by name
        rules=tuple(rules),
        default=default,
        file=locator.file,
        tests=tuple(tests),
    )
    return LoadedRuleSet(ruleset, locator, complete and not loaded.bad(()))


_TOP_LEVEL = re.compile(r"^(ruleset|kind):[ \t]*['\"]?([a-z][a-z0-9_]*)['\"]?[ \t]*(?:#.*)?$", re.MULTILINE)


def _recovered(path: Path) -> LoadedRuleSet | None:
    """An empty stand-in for a rules file that does not parse, named as its text says.

    Its problem is already reported; the stand-in keeps the pipeline's reference to the set from
    being reported as a second, misleading error.
    """
    text = _read_text(path)
    if text is None:
        return None
    found = {match[1]: match[2] for match in _TOP_LEVEL.finditer(text)}
    if "ruleset" not in found or "kind" not in found:
        return None
    name = display_path(path)
    ruleset = RuleSet(name=found["ruleset"], kind=found["kind"], rules=(), file=name)
    return LoadedRuleSet(ruleset, Locator(name), complete=False)


def _load_rulesets(collector: _Collector, rules_dir: Path, pipeline: str) -> dict[str, LoadedRuleSet]:
    """The rule sets of the rules files that are ``pipeline``'s (they name it under ``pipelines:``, or name none)."""
    loaded_sets: dict[str, LoadedRuleSet] = {}
    if not rules_dir.is_dir():
        message = "rules directory not found; the rule sets the pipelines name are read from its *.yaml files"
        collector.problems.append(Problem(display_path(rules_dir), 1, 1, message))
        return loaded_sets
    schema = rules_schema()
    for path in sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")]):
        mark = len(collector.problems)
        loaded = collector.load(path, schema, "rules")
        if loaded is None:
            recovered = _recovered(path)
            if recovered is not None and recovered.ruleset.name not in loaded_sets:
                loaded_sets[recovered.ruleset.name] = recovered
            continue
        named = loaded.data.get("pipelines")
        if isinstance(named, list) and pipeline not in named:
            # Another pipeline's file: its problems are that pipeline's to report.
            del collector.problems[mark:]
            collector.files.pop()
            collector.sources.pop()
            continue
        built = _ruleset(collector, loaded)
        if built is None:
            continue
        name = built.ruleset.name
        if name in loaded_sets:
            other = loaded_sets[name].ruleset.file
            message = f"rule set {name!r} is already defined in {other}; rename one of the two sets"
            collector.problems.append(loaded.locator.problem(("ruleset",), message))
            continue
        loaded_sets[name] = built
    return loaded_sets


def _targets(loaded: _Loaded) -> dict[str, Mapping[str, Any]]:
    """The declared routing targets, by name; what a target holds is the routing step's to read."""
    return {
        str(name): raw
        for name, raw in loaded.part("targets", dict).items()
        if isinstance(raw, dict) and not loaded.bad(("targets", name))
    }


def _families(loaded: _Loaded) -> list[ResponseFamily]:
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
        for name, raw in loaded.part("responses", dict).items()
        if isinstance(raw, dict) and not loaded.bad(("responses", name))
    ]


def _catalogue(loaded: _Loaded) -> tuple[dict[str, ErrorSpec], bool]:
    """The error codes the pipeline can end an event with (its steps', its ``errors:``, the engine's).

    The second value is False when a step is not registered: its codes are unknown, so no code can be
    called unknown without risking a misleading knock-on error.
    """
    found: dict[str, ErrorSpec] = {spec.code: spec for spec in ENGINE_ERRORS}
    complete = True
    for raw in loaded.part("steps", list):
        parallel = raw.get("parallel") if isinstance(raw, dict) else None
        members: list[Any] = parallel if isinstance(parallel, list) else [raw]
        for member in members:
            uses = member.get("uses") if isinstance(member, dict) else None
            spec = registry.get(uses) if isinstance(uses, str) else None
            complete = complete and spec is not None
            for error in spec.errors if spec is not None else ():
                found.setdefault(error.code, error)
    for code, raw in loaded.part("errors", dict).items():
        description = raw.get("description", "") if isinstance(raw, dict) else ""
        found.setdefault(str(code), ErrorSpec(str(code), False, str(description)))
    return found, complete


def _with_default_replies(rulesets: dict[str, LoadedRuleSet], pipeline: _Loaded) -> None:
    """Give every decision without a reply its error code's default reply (the pipeline's ``errors: CODE: reply:``)."""
    replies = {
        str(code): raw["reply"]
        for code, raw in pipeline.part("errors", dict).items()
        if isinstance(raw, dict) and isinstance(raw.get("reply"), str) and not pipeline.bad(("errors", code))
    }

    def replied(decision: Decision) -> Decision:
        default = replies.get(decision.error or "")
        return decision._replace(reply=default) if decision.reply is None and default is not None else decision

    for name, loaded in list(rulesets.items()):
        ruleset = loaded.ruleset
        rules = tuple(replace(rule, then=replied(rule.then)) for rule in ruleset.rules)
        default = replied(ruleset.default) if ruleset.default is not None else None
        rulesets[name] = loaded._replace(ruleset=ruleset._replace(rules=rules, default=default))


def _unknown_code(code: str, known: Mapping[str, ErrorSpec], pipeline_file: str) -> str:
    return (
        f"{did_you_mean(code, list(known))}; error codes: {', '.join(sorted(known))}; "
        f"a new business code is declared under errors: in {pipeline_file}"
    )


def _decisions(ruleset: RuleSet, key: str) -> list[tuple[PathKey, Decision]]:
    """Every decision of the set (its rules', then its default) with the path of its ``key``."""
    found: list[tuple[PathKey, Decision]] = [(("rules", rule.index, "then", key), rule.then) for rule in ruleset.rules]
    if ruleset.default is not None:
        found.append((("default", key), ruleset.default))
    return found


def _check_error_codes(
    collector: _Collector,
    rulesets: dict[str, LoadedRuleSet],
    known: Mapping[str, ErrorSpec],
    pipeline_file: str,
    used: set[str],
) -> None:
    """Every error code a rule of a ``used`` set decides or its tests expect must be one the pipeline knows.

    A set that uses an unknown code is left incomplete: its inline tests would only repeat the problem. A set no
    step looks up never decides for this pipeline, so its codes need not be declared here.
    """
    for name, loaded in [(name, loaded) for name, loaded in rulesets.items() if name in used]:
        mark = len(collector.problems)
        ruleset = loaded.ruleset
        expected = [
            (("tests", test.index, "expect", "error"), test.expect.get("error"))
            for test in ruleset.tests
            if isinstance(test.expect, Mapping)
        ]
        found = [(path, decision.error) for path, decision in _decisions(ruleset, "error")] + expected
        for path, code in found:
            if isinstance(code, str) and code not in known:
                message = f"unknown error code {code!r}{_unknown_code(code, known, pipeline_file)}"
                collector.problems.append(loaded.locator.problem(path, message))
        if len(collector.problems) > mark:
            rulesets[name] = loaded._replace(complete=False)


def _check_responses(collector: _Collector, loaded: _Loaded, known: Mapping[str, ErrorSpec] | None) -> None:
    """One family must be the default; status codes must be for known error codes (when they can be known)."""
    families = loaded.data.get("responses")
    if not isinstance(families, dict) or not families:
        return
    if not any(isinstance(family, dict) and family.get("default") is True for family in families.values()):
        message = "one response family needs `default: true` (it answers the channels no other family names)"
        collector.problems.append(loaded.locator.problem(("responses",), message, at_key=True))
    if known is None:
        return
    for name, family in families.items():
        status = family.get("status") if isinstance(family, dict) else None
        for code in status if isinstance(status, dict) else {}:
            if isinstance(code, str) and code not in known and not loaded.bad(("responses", name, "status", code)):
                message = f"{code!r} is not a known error code{_unknown_code(code, known, loaded.locator.file)}"
                path = ("responses", name, "status", code)
                collector.problems.append(loaded.locator.problem(path, message, at_key=True))


def _check_routing_targets(
    collector: _Collector, rulesets: Mapping[str, LoadedRuleSet], declared: list[str], pipeline_file: str
) -> None:
    known = ", ".join(sorted(declared)) or "none"
    for loaded in rulesets.values():
        if loaded.ruleset.kind != "routing":
            continue
        for path, decision in _decisions(loaded.ruleset, "target"):
            if decision.target is None or decision.target in declared:
                continue
            hint = did_you_mean(decision.target, declared)
            message = (
                f"routing target {decision.target!r} names no configured queue{hint}; "
                f"use one of the targets of {pipeline_file} ({known}) or add it there under targets:"
            )
            collector.problems.append(loaded.locator.problem(path, message))


def _providers(key: str) -> str:
    names = [spec.name for spec in registry.specs() if spec.provides == key]
    return f"; put it after a step that provides it ({', '.join(names)})" if names else ""


class _StepBuilder:
    """Builds the pipeline's steps, reporting every problem and avoiding knock-on ones."""

    def __init__(self, collector: _Collector, loaded: _Loaded, info: BuildInfo) -> None:
        self._collector = collector
        self._loaded = loaded
        self._locator = loaded.locator
        self._info = info
        self._first_ids: dict[str, PathKey] = {}
        self._provided: set[str] = set()
        self._unknown_before = False

    def _problem(self, path: PathKey, message: str) -> None:
        self._collector.problems.append(self._locator.problem(path, message))

    def build(self, raw: Any, path: PathKey, available: set[str]) -> tuple[PlannedStep | None, str | None]:
        """The built step (None when it cannot be) and the context key its kind provides."""
        if not isinstance(raw, dict):
            return None, None
        step_id, uses = raw.get("id"), raw.get("uses")
        if isinstance(step_id, str) and step_id in self._first_ids:
            line = self._locator.position((*self._first_ids[step_id], "id"))[0]
            self._problem((*path, "id"), f"duplicate step id {step_id!r} (first used on line {line}); rename one")
        elif isinstance(step_id, str):
            self._first_ids[step_id] = path
        when = None
        if "when" in raw and not self._loaded.bad((*path, "when")):
            when = self._collector.expression(raw["when"], self._locator, (*path, "when"))
        spec = registry.get(uses) if isinstance(uses, str) else None
        if spec is None:
            # What an unknown step would provide is unknown: later `requires` checks would only mislead.
            self._unknown_before = True
            return None, None
        if not self._unknown_before:
            for need in spec.requires:
                if need not in available:
                    message = f"step {step_id!r} ({spec.name}) reads {need!r}, which no earlier step provides"
                    self._problem((*path, "uses"), message + _providers(need))
        params = raw.get("with", {})
        if (
            not isinstance(step_id, str)
            or not isinstance(params, dict)
            or self._loaded.bad((*path, "with"))
            or ("when" in raw and when is None)
        ):
            return None, spec.provides
        try:
            step = spec.factory(params, self._info)
        except ParamError as exc:
            if not exc.knock_on and not is_unresolved(_value_at(params, exc.path)):
                self._problem((*path, "with", *exc.path), f"{step_id}: {exc.message}")
            return None, spec.provides
        except Exception as exc:  # noqa: BLE001 - a step that cannot be built is a located problem, not a crash
            if not _has_unresolved(params):
                self._problem((*path, "uses"), f"step {step_id!r} ({spec.name}) cannot be built: {exc}")
            return None, spec.provides
        planned = PlannedStep(step_id, spec.name, step, spec.provides, when, spec.deadline_code, params)
        return planned, spec.provides

    @property
    def provided(self) -> frozenset[str] | None:
        """The context keys the steps provide; None when an unknown step may provide more."""
        return None if self._unknown_before else frozenset(self._provided)

    def build_all(self) -> list[PlannedStep | ParallelGroup]:
        """Every step that could be built, in order."""
        nodes: list[PlannedStep | ParallelGroup] = []
        for index, raw in enumerate(self._loaded.part("steps", list)):
            if isinstance(raw, dict) and isinstance(raw.get("parallel"), list):
                available = set(self._provided)
                built = [
                    self.build(member, ("steps", index, "parallel", i), available)
                    for i, member in enumerate(raw["parallel"])
                ]
                self._provided.update(provides for _, provides in built if provides)
                nodes.append(ParallelGroup(tuple(step for step, _ in built if step is not None)))
                continue
            step, provides = self.build(raw, ("steps", index), self._provided)
            if provides:
                self._provided.add(provides)
            if step is not None:
                nodes.append(step)
        return nodes


def _app_config(
    collector: _Collector,
    loaded: _Loaded,
    nodes: list[PlannedStep | ParallelGroup],
    rulesets: Mapping[str, LoadedRuleSet],
    info: BuildInfo,
    errors: Mapping[str, ErrorSpec],
) -> AppConfig:
    data = loaded.data
    aws = data.get("aws", {})
    pipeline = Pipeline(
        data["pipeline"], nodes, deadline_seconds=float(data.get("deadline_seconds", DEFAULT_DEADLINE_SECONDS))
    )
    return AppConfig(
        pipeline=pipeline,
        rulesets={name: item.ruleset for name, item in rulesets.items()},
        targets=info.targets,
        tables=info.tables,
        responses=ResponsePolicy(_families(loaded)),
        aws=CallLimits(
            connect_timeout=float(aws.get("connect_timeout_seconds", 0.5)),
            read_timeout=float(aws.get("read_timeout_seconds", 1.0)),
            max_attempts=int(aws.get("max_attempts", 2)),
        ),
        files=(loaded.locator.file, *(item.ruleset.file for item in rulesets.values())),
        warnings=tuple(problem for problem in collector.problems if problem.severity == "warning"),
        channels=info.channels,
        errors=errors,
        secrets=info.secrets,
        version=content_digest(collector.sources),
    )


def _secret_patterns(collector: _Collector, loaded: _Loaded) -> dict[str, re.Pattern[str] | None]:
    """The declared secret-name patterns, compiled; one that does not is a problem (and None)."""
    compiled: dict[str, re.Pattern[str] | None] = {}
    for name, pattern in _strings(loaded.data.get("secrets")).items():
        try:
            compiled[name] = re.compile(pattern)
        except re.error as exc:
            if not is_unresolved(pattern):
                collector.problems.append(
                    loaded.locator.problem(("secrets", name), f"secrets.{name}: invalid regular expression: {exc}")
                )
            compiled[name] = None
    return compiled


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def inspect_config(
    pipeline_path: Path,
    rules_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    missing_env: str = "error",
    stamp: Prevalidated | None = None,
    shadow: Mapping[str, RuleSet] | None = None,
) -> Inspection:
    """Load and validate a pipeline with its rule sets, collecting every problem (never raises ConfigError).

    ``missing_env="warning"`` (for ``--check`` away from the deployed environment) reports unset
    ``${env:…}`` references as warnings and keeps the reference text as the value. ``shadow`` are the
    rule sets of a candidate evaluated beside the pipeline's (``BuildInfo.shadow_rulesets``).
    """
    collector = _Collector(os.environ if env is None else env, missing_env, stamp)
    return _inspect(collector, pipeline_path, rules_dir, shadow)


def _pipeline_name(loaded: _Loaded | None, pipeline_path: Path) -> str:
    name = loaded.data.get("pipeline") if loaded is not None else None
    return name if isinstance(name, str) and name else pipeline_path.stem


class _Used(Mapping[str, RuleSet]):
    """The loaded rule sets, noting the names steps look up (the sets the pipeline uses)."""

    def __init__(self, rulesets: Mapping[str, RuleSet]) -> None:
        self._rulesets = rulesets
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> RuleSet:
        found = self._rulesets[name]
        self.names.add(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._rulesets)

    def __len__(self) -> int:
        return len(self._rulesets)

    def values(self) -> Any:
        """Every set, without marking any as used."""
        return self._rulesets.values()


def _inspect(
    collector: _Collector, pipeline_path: Path, rules_dir: Path, shadow: Mapping[str, RuleSet] | None = None
) -> Inspection:
    loaded = collector.load(pipeline_path, pipeline_schema(), "pipelines")
    rulesets = _load_rulesets(collector, rules_dir, _pipeline_name(loaded, pipeline_path))
    if loaded is not None:
        _with_default_replies(rulesets, loaded)
    targets: dict[str, Mapping[str, Any]] = {}
    config = None
    provided: frozenset[str] | None = None
    used = _Used({name: item.ruleset for name, item in rulesets.items()})
    if loaded is not None:
        targets = _targets(loaded)
        declared = [str(name) for name in loaded.part("targets", dict)]
        _check_routing_targets(collector, rulesets, declared, loaded.locator.file)
        known, complete = _catalogue(loaded)
        channels = loaded.data.get("channels")
        info = BuildInfo(
            rulesets=used,
            tables=_strings(loaded.data.get("tables")),
            targets=targets,
            secrets=_secret_patterns(collector, loaded),
            channels=tuple(str(c) for c in channels) if isinstance(channels, list) else (),
            shadow_rulesets=shadow or {},
        )
        builder = _StepBuilder(collector, loaded, info)
        nodes = builder.build_all()
        provided = builder.provided
        if complete:
            _check_error_codes(collector, rulesets, known, loaded.locator.file, used.names)
        _check_responses(collector, loaded, known if complete else None)
        if all(problem.severity != "error" for problem in collector.problems):
            config = _app_config(collector, loaded, nodes, rulesets, info, known)
    pipeline_file = display_path(pipeline_path)
    files = (pipeline_file, *(name for name in collector.files if name != pipeline_file))
    return Inspection(
        problems=tuple(collector.problems),
        rulesets=rulesets,
        targets=targets,
        expressions=tuple(collector.expressions),
        files=files,
        config=config,
        provided=provided,
        used=frozenset(used.names),
    )


def load_config(
    pipeline_path: Path,
    rules_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    missing_env: str = "error",
    stamp: Prevalidated | None = None,
    shadow: Mapping[str, RuleSet] | None = None,
) -> AppConfig:
    """Load and build a pipeline with its rule sets as ``inspect_config`` does; raise ConfigError listing every error.

    Files that ``stamp`` vouches for (validated at build time: ``runtime.stamp``) skip JSON Schema validation, and
    those it holds the document of skip YAML parsing; any problem at all is then found again from the YAML, so
    that every message names its line and column.
    """
    environment = os.environ if env is None else env
    if stamp is not None:
        quick = _inspect(_Collector(environment, missing_env, stamp, documents=True), pipeline_path, rules_dir, shadow)
        if quick.config is not None and not quick.problems:
            return quick.config
    inspection = _inspect(_Collector(environment, missing_env, stamp), pipeline_path, rules_dir, shadow)
    if inspection.config is None:
        order = {name: rank for rank, name in enumerate(inspection.files)}
        errors = sorted(inspection.errors, key=lambda p: (order.get(p.file, len(order)), p.line, p.column))
        raise ConfigError(errors)
    return inspection.config
