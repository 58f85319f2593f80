"""What keeps a configuration from being used: loading errors, inline tests naming an unknown rule, failing tests.

One code path for both places that must refuse a broken configuration: ``pipeline-dryrun --check``
(``tools.check``, which adds its warnings) and a rules bundle loaded from S3 (``runtime.bundlewatch``),
refused before it is activated. ``verify`` loads a pipeline with ``engine.config.inspect_config`` and
runs every complete rule set's inline tests (``engine.rules.run_tests``); every finding is located.
``code_owned`` refuses a pipeline file, carried by a bundle, that renames its pipeline, changes the
channels it serves, its steps (which run, in what order, under which ``when``, and how every step but the
deciding ones is set), its ``tables:`` (an empty replay table would turn off the records that refuse a
request posted again), its ``secrets:`` patterns (which secrets a credential reference may name), its
``targets:`` (the queues the role may send to), its time bounds (``deadline_seconds``, ``aws:``: the function's
timeout is set above them) or how it answers (``responses:``; ``code_outline``): those change with a code deploy
only. ``pipeline_clashes``
refuses two pipeline files serving one channel, or declaring one pipeline name (a copied file not renamed),
which the cold start cannot route.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from engine import registry
from engine.config import AppConfig, Inspection, LoadedRuleSet, display_path, inspect_config
from engine.errors import ConfigError, Problem, did_you_mean, shown
from engine.expressions import ExpressionError
from engine.locator import Locator
from engine.rules import Evaluation, Rule, RuleError, RuleSet, TestFailure, run_tests

if TYPE_CHECKING:
    from engine.yamlsource import SourceDoc

__all__ = [
    "RuleSetVerdict",
    "CodeOutline",
    "StepOutline",
    "Settings",
    "Verification",
    "code_owned",
    "replay_window_problems",
    "leaves",
    "rule_line",
    "settled_targets",
    "code_outline",
    "pipeline_clashes",
    "step_path",
    "steps_outline",
    "owned_settings",
    "verify",
    "verify_ruleset",
    "tests_evaluated_once",
    "written_value",
]

# A pipeline's steps as the code owns them: per entry of ``steps:``, a step's (id, uses, when) or a parallel
# group's outline of its members.
StepOutline = tuple[Any, ...]
# A pipeline's settings that are the code's, as written: (path, the text of its value), sorted by path.
Settings = tuple[tuple[tuple[str, ...], str], ...]


class RuleSetVerdict(NamedTuple):
    """A complete rule set's inline tests: those not run, failures, tests run.

    ``unknown`` are the tests not run, by test index: expecting an unknown rule, or giving a YAML date or time.
    """

    loaded: LoadedRuleSet
    unknown: tuple[tuple[int, Problem], ...]
    failures: tuple[Problem, ...]
    tests_run: int

    @property
    def errors(self) -> list[Problem]:
        """Every finding that refuses the set."""
        return [*(problem for _, problem in self.unknown), *self.failures]


class Verification(NamedTuple):
    """A pipeline's loading pass and the verdict on each of its complete rule sets."""

    inspection: Inspection
    verdicts: tuple[RuleSetVerdict, ...]
    windows: tuple[Problem, ...] = ()

    @property
    def errors(self) -> list[Problem]:
        """Every finding that keeps the configuration from being used, in file order."""
        found = [
            *self.inspection.errors,
            *self.windows,
            *(problem for verdict in self.verdicts for problem in verdict.errors),
        ]
        order = {name: rank for rank, name in enumerate(self.inspection.files)}
        return sorted(found, key=lambda p: (order.get(p.file, len(order)), p.file, p.line, p.column))

    @property
    def config(self) -> AppConfig | None:
        """The configuration, when nothing keeps it from being used."""
        return self.inspection.config if not self.errors else None


def rule_line(loaded: LoadedRuleSet, index: int) -> int:
    """The line of rule ``index``'s condition."""
    return loaded.locator.position(("rules", index, "when"))[0]


def _unknown_rules_in_tests(loaded: LoadedRuleSet) -> list[tuple[int, Problem]]:
    """Inline tests expecting a rule the set does not have, by test index."""
    ruleset = loaded.ruleset
    ids = [rule.id for rule in ruleset.rules]
    found: list[tuple[int, Problem]] = []
    for test in ruleset.tests:
        expected = test.expect.get("rule")
        if expected is None or expected in ids:
            continue
        hint = did_you_mean(expected, ids)
        unquote = "; for no rule at all, write null without quotes" if expected == "null" else ""
        message = (
            f"inline test {test.name!r} expects rule {expected!r}, which is not a rule of set {ruleset.name!r}"
            f"{hint}; rules: {', '.join(ids) or 'none'}{unquote}"
        )
        found.append((test.index, loaded.locator.problem(("tests", test.index, "expect", "rule"), message)))
    return found


def _no_target_hint(loaded: LoadedRuleSet, failure: TestFailure, rule: Rule | None) -> str:
    """Where a deciding rule's ``target_from`` gave no text for the test's ``given``; empty otherwise."""
    if rule is None or rule.then.target_from is None or "target" not in failure.keys or failure.raised is not None:
        return ""
    if rule.then.resolve_target(failure.test.given) is not None:
        return ""
    line = loaded.locator.position(("rules", rule.index, "then", "target_from"))[0]
    return (
        f"; its target_from {rule.then.target_from.source} gives no text here (line {line}): "
        "check the names it reads against the test's given"
    )


def _routing_error_hint(loaded: LoadedRuleSet, failure: TestFailure) -> str:
    """Where a routing set's test expects a business error, which only a validation set decides; empty otherwise."""
    expected = failure.test.expect.get("error")
    if loaded.ruleset.kind != "routing" or "error" not in failure.keys or not isinstance(expected, str):
        return ""
    if expected in ("ROUTING_ERROR", "INTERNAL_ERROR"):
        return ""
    return (
        "; a routing set decides a target, never a business error (its one error is ROUTING_ERROR: no rule matches "
        "and it has no default, or target_from gives no text); each set's tests run that set alone: expect "
        f"{expected} in a test of the validation set that decides it"
    )


def _other_kind_hint(loaded: LoadedRuleSet, failure: TestFailure) -> str:
    """Where a test expects what its kind of set never decides (a validation set's target, a routing set's reply)."""
    kind = loaded.ruleset.kind
    key = {"validation": "target", "routing": "reply"}.get(kind)
    expected = failure.test.expect.get(key) if key in failure.keys else None
    if expected is None:
        return ""
    if kind == "validation":
        never, other = "a validation set decides an error, never a target", f"target {expected!r}"
        where = "the routing set that decides it"
    else:
        never, other = "a routing set sends no reply (a reply comes with a validation set's error)", "the reply"
        where = "the validation set whose rule gives it"
    return f"; {never}; each set's tests run that set alone: expect {other} in a test of {where}"


# The default that fits what a function refused null for (JMESPath's type names, in its error).
_DEFAULTS = {"string": "x || '' for text", "array": "x || `[]` for a list", "object": "x || `{}` for an object"}


def _null_hint(failure: TestFailure, rule: Rule | None) -> str:
    """What to do about a value a failing condition found missing: a default of the type the function needs.

    No default makes a time: the time every request has (``request.received_at``) belongs in the case's
    ``given``; another is tested first.
    """
    raised = failure.raised or ""
    if "where it needs a time" in raised:
        given = failure.test.given.get("request")
        reads = rule is not None and ("request", "received_at") in rule.when.paths
        if reads and not (isinstance(given, Mapping) and given.get("received_at") is not None):
            return (
                "; the case gives no request.received_at, which every request has: give it in the case's given, "
                'quoted (received_at: "2026-11-25T12:00:00Z")'
            )
        return "; a time it reads is missing or null here: test it first (x && hour(x, …))"
    needs = raised.rpartition("where it needs ")[2].split(";")[0].split(" or ")
    defaults = [_DEFAULTS[kind] for kind in needs if kind in _DEFAULTS]
    default = f" ({defaults[0]})" if defaults else ""
    missing = "; a value it reads is missing or null here"
    return f"{missing}: give it a default of its type{default}, or test it first (x && …)"


def _failure(loaded: LoadedRuleSet, failure: TestFailure, hint: str = "") -> Problem:
    test = failure.test
    rule = next((rule for rule in loaded.ruleset.rules if rule.id == failure.rule), None)
    if failure.rule is not None:
        where = f" (line {rule_line(loaded, rule.index)})" if rule is not None else ""
        decided = f"rule {failure.rule!r}{where}"
    else:
        decided = "the set's default" if loaded.ruleset.default is not None else "no rule (nothing matched)"
    message = (
        f"inline test {test.name!r} of rule set {failure.ruleset!r} failed: {'; '.join(failure.differences)}; "
        f"decided by {decided}{_no_target_hint(loaded, failure, rule)}{hint}"
    )
    if failure.raised is not None:
        message += f"; its condition failed at run time: {failure.raised}"
        if "null" in failure.raised:
            message += _null_hint(failure, rule)
    message += _routing_error_hint(loaded, failure) + _other_kind_hint(loaded, failure)
    key = failure.keys[0]
    path = ("tests", test.index, "expect", key) if key in test.expect else ("tests", test.index, "expect")
    return loaded.locator.problem(path, message)


def written_value(locator: Locator, path: tuple[Any, ...]) -> str:
    """The text of the plain (unquoted) scalar at ``path`` as written: up to a comment, ``,``, ``]`` or ``}``."""
    line, column = locator.position(path)
    rest = locator.text.splitlines()[line - 1][column - 1 :] if locator.text else ""
    return rest.split(" #")[0].split(",")[0].split("]")[0].split("}")[0].strip()


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every value in ``value`` that is no mapping or list, with its path (an inline test's ``given``, say)."""
    if isinstance(value, (dict, list)):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            yield from leaves(item, (*path, key))
    else:
        yield path, value


def _yaml_times_in_tests(loaded: LoadedRuleSet) -> list[tuple[int, Problem]]:
    """Inline tests whose ``given`` holds a YAML date or time: a context document holds text there (JSON)."""
    found: list[tuple[int, Problem]] = []
    for test in loaded.ruleset.tests:
        # The dates and times YAML read from unquoted values (``2026-11-25T22:30:00Z``).
        for path in [path for path, value in leaves(test.given) if isinstance(value, date)]:
            where = ("tests", test.index, "given", *path)
            written = written_value(loaded.locator, where)
            message = (
                f"inline test {test.name!r} gives {'.'.join(map(str, path))} a YAML date or time, which a context "
                f'document never holds (it holds text there); put the value in quotes: "{written}"'
            )
            found.append((test.index, loaded.locator.problem(where, message)))
    return found


class _TestsEvaluatedOnce(RuleSet):
    """A rule set that keeps what it decides for each of its inline tests' documents, computed on first asking.

    The checks of a set (its tests' run, a computed target's check, the untested-rule warning) each read every
    test's decision; each evaluation tries the rules above the deciding one, so at 500 rules and 1,000 tests
    evaluating once instead of three times is seconds an editor waits for. Any other document is evaluated as usual.
    """

    def evaluate(self, document: Mapping[str, Any], *, explain: bool = False) -> Evaluation:
        # By the document's id: the set's tests hold their documents, so no other document can carry one of them.
        kept: dict[int, Evaluation | RuleError] = vars(self).setdefault("_kept", {})
        if "_tested" not in vars(self):
            vars(self)["_tested"] = frozenset(id(test.given) for test in self.tests)
        key = id(document)
        if explain or key not in vars(self)["_tested"]:
            return super().evaluate(document, explain=explain)
        if key not in kept:
            try:
                kept[key] = super().evaluate(document)
            except RuleError as exc:
                kept[key] = exc
        found = kept[key]
        if isinstance(found, RuleError):
            raise found
        return found


def tests_evaluated_once(ruleset: RuleSet) -> RuleSet:
    """``ruleset``, deciding each inline test's document once however many checks read it (same decisions)."""
    return ruleset if isinstance(ruleset, _TestsEvaluatedOnce) else _TestsEvaluatedOnce(*ruleset)


def settled_targets(inspection: Inspection) -> Collection[str] | None:
    """The names of the pipeline's targets; None while it has errors (its targets are not settled)."""
    return inspection.targets.keys() if inspection.config is not None else None


def _computed_elsewhere(ruleset: RuleSet, targets: Collection[str]) -> dict[int, tuple[str | None, str]]:
    """Tests of a routing set whose deciding ``target_from`` gives a text no target of the pipeline is named.

    By test index: the rule that decided (None for the default) and the text. ``rules.route`` ends such an event
    with ROUTING_ERROR, whatever the set decided.
    """
    found: dict[int, tuple[str | None, str]] = {}
    for test in ruleset.tests if ruleset.kind == "routing" else ():
        try:
            evaluation = ruleset.evaluate(test.given)
            decision = evaluation.decision
            target = decision.resolve_target(test.given) if decision and decision.target is None else None
        except (RuleError, ExpressionError):
            continue  # observed as INTERNAL_ERROR by run_tests
        if isinstance(target, str) and target not in targets:
            found[test.index] = (evaluation.rule.id if evaluation.rule else None, target)
    return found


def _routed(
    failures: list[TestFailure], ruleset: RuleSet, elsewhere: Mapping[int, tuple[str | None, str]]
) -> list[TestFailure]:
    """``failures`` with each test ``elsewhere`` names (its computed target is no target) decided as the event is.

    As ``run_tests`` treats a condition that fails, the ROUTING_ERROR fails a case that does not expect an error.
    """
    kept = [failure for failure in failures if failure.test.index not in elsewhere]
    for test in ruleset.tests:
        if test.index not in elsewhere:
            continue
        rule = elsewhere[test.index][0]
        observed = {"rule": rule, "error": "ROUTING_ERROR", "reply": None, "target": None}
        keys = tuple(key for key, expected in test.expect.items() if observed.get(key) != expected)
        keys = keys if "error" in test.expect else (*keys, "error")
        if keys:
            differences = tuple(
                f"expected {key} {shown(test.expect.get(key))}, got {shown(observed.get(key))}" for key in keys
            )
            kept.append(TestFailure(ruleset.name, test, differences, keys, rule))
    return sorted(kept, key=lambda failure: failure.test.index)


def verify_ruleset(loaded: LoadedRuleSet, targets: Collection[str] | None = None, pipeline: str = "") -> RuleSetVerdict:
    """Run a complete set's inline tests (one expecting an unknown rule, or giving a YAML time, is reported instead).

    With the pipeline's ``targets`` (and its file's name, ``pipeline``), a routing test whose ``target_from`` gives a
    name none of them has is decided as ``rules.route`` decides the event: ROUTING_ERROR.
    """
    loaded = loaded._replace(ruleset=tests_evaluated_once(loaded.ruleset))
    unknown = _unknown_rules_in_tests(loaded) + _yaml_times_in_tests(loaded)
    reported = {index for index, _ in unknown}
    elsewhere = _computed_elsewhere(loaded.ruleset, targets) if targets is not None else {}
    failures = [
        _failure(loaded, failure, _elsewhere_hint(elsewhere.get(failure.test.index), targets or (), pipeline))
        for failure in _routed(run_tests(loaded.ruleset), loaded.ruleset, elsewhere)
        if failure.test.index not in reported
    ]
    return RuleSetVerdict(loaded, tuple(unknown), tuple(failures), len(loaded.ruleset.tests) - len(reported))


def _elsewhere_hint(found: tuple[str | None, str] | None, targets: Collection[str], pipeline: str) -> str:
    if found is None:
        return ""
    of = f"a target of {pipeline}" if pipeline else "a target of the pipeline"
    return (
        f"; its target_from gives {shown(found[1])} here, which is not {of} ({', '.join(sorted(targets))}): "
        "rules.route ends the event ROUTING_ERROR"
    )


def verify(
    pipeline: Path,
    rules_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    missing_env: str = "error",
    shadow: Mapping[str, RuleSet] | None = None,
) -> Verification:
    """Load ``pipeline`` with the rule sets of ``rules_dir`` and run their inline tests."""
    inspection = inspect_config(pipeline, rules_dir, env, missing_env=missing_env, shadow=shadow)
    targets, file = settled_targets(inspection), display_path(pipeline)
    verdicts = tuple(
        verify_ruleset(loaded, targets, file) for loaded in inspection.rulesets.values() if loaded.complete
    )
    return Verification(inspection, verdicts, tuple(replay_window_problems(pipeline, inspection)))


def step_path(entries: Any, step_id: str, prefix: tuple[Any, ...] = ("steps",)) -> tuple[Any, ...] | None:
    """Where the step ``step_id`` is under ``steps:`` (inside its parallel group, if any)."""
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict) and "parallel" in entry:
            found = step_path(entry["parallel"], step_id, (*prefix, index, "parallel"))
            if found is not None:
                return found
        elif isinstance(entry, dict) and entry.get("id") == step_id:
            return (*prefix, index)
    return None


def replay_window_problems(pipeline: Path, inspection: Inspection) -> list[Problem]:
    """Where a step keeps replay records for less time than a signature the pipeline accepts stays valid.

    A step says how long it accepts a signed request (``signature_max_age_seconds``) and how long it keeps its
    records (``replay_horizon_seconds``, None when they are off): a repeat after its record expired is accepted.
    """
    steps = inspection.config.pipeline.steps() if inspection.config is not None else []
    windows = [
        (float(age), step.id)
        for step in steps
        if isinstance(age := getattr(step.step, "signature_max_age_seconds", None), int | float)
    ]
    if not windows:
        return []
    window, signer = max(windows)
    short = [
        (step.id, float(horizon))
        for step in steps
        if isinstance(horizon := getattr(step.step, "replay_horizon_seconds", None), int | float) and horizon < window
    ]
    if not short:
        return []
    from engine.yamlsource import load_yaml

    document = load_yaml(pipeline, display_path(pipeline), strict=False)
    data = document.data if isinstance(document.data, dict) else {}
    found = []
    for step_id, horizon in short:
        path = step_path(data.get("steps"), step_id) or ("steps",)
        message = (
            f"step {step_id!r} keeps its replay records {horizon:g} s, less than the {window:g} s step {signer!r} "
            f"accepts a signature for: a request posted again after its record expired would be accepted; keep "
            f"them at least {window:g} s (horizon_seconds)"
        )
        found.append(document.locator.problem((*path, "with", "horizon_seconds"), message))
    return found


_STEP_KEYS = ("id", "uses", "when")


def _decides(uses: Any) -> bool:
    """Whether a step of kind ``uses`` decides with the rules (``rules.validate``, ``rules.route``).

    Its ``with:`` names rule sets, which a rules bundle may change. An unknown kind is taken not to.
    """
    spec = registry.get(str(uses))
    return spec is not None and spec.decides


def _outline(entries: Any) -> StepOutline:
    """The outline of a ``steps:`` (or ``parallel:``) list: what runs, in order, and when.

    ``with:`` is left out for the deciding steps (``_decides``), whose rule sets a rules bundle may change.
    """
    if not isinstance(entries, list):
        return ()
    outline: list[Any] = []
    for entry in entries:
        if isinstance(entry, dict) and "parallel" in entry:
            outline.append(("parallel", _outline(entry.get("parallel"))))
        elif isinstance(entry, dict):
            keys = tuple(str(entry.get(key)) if entry.get(key) is not None else None for key in _STEP_KEYS)
            params = None if _decides(entry.get("uses")) else json.dumps(entry.get("with"), sort_keys=True, default=str)
            outline.append((*keys, params))
        else:
            outline.append(repr(entry))
    return tuple(outline)


def steps_outline(data: Any) -> StepOutline:
    """The step outline of a parsed pipeline document (``StepOutline``).

    The ``with:`` of every step but the deciding ones is part of it: those parameters say how a request is
    authenticated (which secret field signs), recorded against replays (which table, for how long) and answered.
    """
    return _outline(data.get("steps") if isinstance(data, dict) else None)


# The fields of a ``responses:`` family that are the code's: which channels it answers, how, and whether it raises.
_RESPONSE_FIELDS = ("channels", "format", "on_transient", "default")
_TIME_BOUNDS_WHY = (
    "how long an invocation may take changes with a code deploy (the function's timeout is set above it), "
    "not a rules bundle"
)
_WHY = {
    "tables": "which tables a pipeline uses changes with a code deploy, not a rules bundle",
    "secrets": "which secrets a credential reference may name changes with a code deploy, not a rules bundle",
    "responses": "how a pipeline answers (which channels, in what format, whether a transient fault raises) changes "
    "with a code deploy, not a rules bundle",
    "targets": "which queues a pipeline sends to, and how, changes with a code deploy (the role may send to the "
    "deployed ones only), not a rules bundle",
    "deadline_seconds": _TIME_BOUNDS_WHY,
    "aws": _TIME_BOUNDS_WHY,
}


def _text(value: Any) -> str:
    """A setting's value as compared: a string as written (an empty one ``""``), anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def owned_settings(data: Any) -> Settings:
    """The settings of a parsed pipeline document that are the code's (``Settings``).

    They are ``tables:``, the ``secrets:`` name patterns (which secrets a conversation's credential reference may
    name), ``targets:`` (the queues the role may send to), the time bounds ``deadline_seconds`` and ``aws:`` (the
    function's timeout is set above them) and the shape of each ``responses:`` family (``_RESPONSE_FIELDS``); its
    statuses may change, as a new error code needs one.
    """
    data = data if isinstance(data, dict) else {}
    found: list[tuple[tuple[str, ...], str]] = []
    for section in ("tables", "secrets", "aws"):
        named = data.get(section)
        for name, value in named.items() if isinstance(named, dict) else ():
            found.append(((section, str(name)), _text(value)))
    targets = data.get("targets")
    for target, fields in targets.items() if isinstance(targets, dict) else ():
        for field, value in fields.items() if isinstance(fields, dict) else [("", fields)]:
            found.append((("targets", str(target), str(field)), _text(value)))
    if "deadline_seconds" in data:
        found.append((("deadline_seconds",), _text(data["deadline_seconds"])))
    responses = data.get("responses")
    for family, fields in responses.items() if isinstance(responses, dict) else ():
        for field in _RESPONSE_FIELDS:
            if isinstance(fields, dict) and field in fields:
                found.append((("responses", str(family), field), _text(fields[field])))
    return tuple(sorted(found))


class CodeOutline(NamedTuple):
    """What a deployed pipeline file fixes beyond its name and channels: its steps and its ``owned_settings``."""

    steps: StepOutline
    settings: Settings


def code_outline(pipeline: Path) -> CodeOutline | None:
    """The steps and owned settings of a pipeline file; None when it cannot be read."""
    from engine.yamlsource import load_yaml

    try:
        data = load_yaml(pipeline, display_path(pipeline), strict=False).data
    except ConfigError:
        return None
    return CodeOutline(steps_outline(data), owned_settings(data))


def _settings_changed(document: SourceDoc, given: Settings, deployed: Settings) -> Problem:
    """Where ``given`` first departs from ``deployed``, located at that setting (or its nearest ancestor)."""
    ours, theirs = dict(given), dict(deployed)
    path = next(path for path in sorted({*ours, *theirs}) if ours.get(path) != theirs.get(path))
    shown = {
        side: repr(settings[path]) if path in settings else "not declared"
        for side, settings in (("ours", ours), ("theirs", theirs))
    }
    section = path[0]
    setting = f"{section}: {'.'.join(path[1:])}" if len(path) > 1 else section
    message = f"{setting} is {shown['ours']}, the deployed pipeline's is {shown['theirs']}; {_WHY[section]}"
    return document.locator.problem(path, message)


def _shown(entry: Any) -> str:
    if isinstance(entry, tuple) and entry and entry[0] == "parallel":
        return "a parallel group of " + ", ".join(_shown(member) for member in entry[1])
    if isinstance(entry, tuple) and len(entry) == len(_STEP_KEYS) + 1:
        step_id, uses, when, _ = entry
        return f"{step_id!r} ({uses}{f', when: {when}' if when is not None else ''})"
    return str(entry)


def _only_parameters_differ(given: Any, deployed: Any) -> bool:
    """Whether two outline entries are the same step (id, uses, when) with other ``with:`` parameters."""
    same_shape = isinstance(given, tuple) and isinstance(deployed, tuple) and len(given) == len(_STEP_KEYS) + 1
    return same_shape and len(deployed) == len(given) and given[:-1] == deployed[:-1] and given[-1] != deployed[-1]


def _first_change(given: tuple[Any, ...], deployed: tuple[Any, ...]) -> tuple[str, ...]:
    """The first ``with:`` key (in order) whose value differs between two entries' parameters; () when not one key."""
    ours, theirs = json.loads(given[-1]), json.loads(deployed[-1])
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return ()
    return next(((str(key),) for key in sorted({*ours, *theirs}) if ours.get(key) != theirs.get(key)), ())


def _steps_changed(document: SourceDoc, given: StepOutline, deployed: StepOutline) -> Problem:
    """Where ``given`` first departs from ``deployed``, located at that entry of ``steps:``."""
    index = next((i for i, (a, b) in enumerate(zip(given, deployed, strict=False)) if a != b), None)
    if index is None:
        index = min(len(given), len(deployed))
    if index < min(len(given), len(deployed)) and _only_parameters_differ(given[index], deployed[index]):
        message = (
            f"steps: entry {index + 1} {_shown(given[index])} has other with: parameters than the deployed "
            "pipeline's; only the deciding steps' (rules.validate, rules.route) change with a rules bundle: the "
            "others' say how a request is authenticated, recorded and answered, which changes with a code deploy "
            "(publish the pipeline file as deployed)"
        )
        return document.locator.problem(
            ("steps", index, "with", *_first_change(given[index], deployed[index])), message
        )
    ours = _shown(given[index]) if index < len(given) else "nothing"
    theirs = _shown(deployed[index]) if index < len(deployed) else "nothing"
    message = (
        f"steps: entry {index + 1} is {ours}, the deployed pipeline's is {theirs}; which steps run, in what order "
        "and when, changes with a code deploy, not a rules bundle (publish the pipeline file as deployed)"
    )
    path: Sequence[Any] = ("steps", index) if index < len(given) else ("steps",)
    return document.locator.problem(path, message)


def code_owned(
    pipeline: Path,
    name: str,
    channels: Collection[str] | None,
    steps: StepOutline | None = None,
    settings: Settings | None = None,
) -> list[Problem]:
    """Where the pipeline file renames the pipeline ``name``, changes its ``channels``, ``steps`` or ``settings``.

    Those are the code's to change. ``channels``, ``steps`` or ``settings`` None: not known, not compared (the
    deployed file's ``code_outline``). A file that cannot be read is loading's to report, not this.
    """
    from engine.yamlsource import load_yaml

    try:
        document = load_yaml(pipeline, display_path(pipeline), strict=False)
    except ConfigError:
        return []
    data = document.data if isinstance(document.data, dict) else {}
    found: list[Problem] = []
    declared = data.get("pipeline")
    if declared != name:
        message = (
            f"pipeline: {declared!r} is not the deployed pipeline's name {name!r}; "
            "a pipeline is renamed with a code deploy, not a rules bundle"
        )
        found.append(document.locator.problem(("pipeline",), message))
    served = data.get("channels")
    given = sorted({str(channel) for channel in served}) if isinstance(served, list) else []
    if channels is not None and given != sorted(set(channels)):
        message = (
            f"channels: [{', '.join(given)}] are not the deployed pipeline's [{', '.join(sorted(set(channels)))}]; "
            "which paths a pipeline serves changes with a code deploy, not a rules bundle"
        )
        found.append(document.locator.problem(("channels",), message))
    outline = steps_outline(data)
    if steps is not None and "steps" in data and outline != steps:
        found.append(_steps_changed(document, outline, steps))
    given_settings = owned_settings(data)
    if settings is not None and given_settings != settings:
        found.append(_settings_changed(document, given_settings, settings))
    return found


def pipeline_clashes(pipelines: Sequence[Path]) -> list[Problem]:
    """Each ``channels:`` entry or ``pipeline:`` name that another of ``pipelines`` declares too, located.

    A request goes to the one pipeline its path's last segment names, and pipelines are kept by name, so the cold
    start refuses such a set of files. A file that cannot be read is loading's to report, not this.
    """
    from engine.yamlsource import load_yaml

    claims: dict[str, list[tuple[str, Problem]]] = {}
    names: dict[str, list[Problem]] = {}
    for path in pipelines:
        try:
            document = load_yaml(path, display_path(path), strict=False)
        except ConfigError:
            continue
        data = document.data if isinstance(document.data, dict) else {}
        if isinstance(data.get("pipeline"), str):
            names.setdefault(data["pipeline"], []).append(document.locator.problem(("pipeline",), ""))
        served = data.get("channels")
        for index, channel in enumerate(served if isinstance(served, list) else []):
            where = document.locator.problem(("channels", index), "")
            claims.setdefault(str(channel), []).append((str(data.get("pipeline")), where))
    found: list[Problem] = []
    for name, places in names.items():
        for here in places if len(places) > 1 else ():
            others = ", ".join(f"{p.file}:{p.line}:{p.column}" for p in places if p is not here)
            message = f"pipeline {name!r} is also declared by {others}; give each pipeline file its own name"
            found.append(replace(here, message=message))
    for channel, owners in claims.items():
        for _, here in owners if len(owners) > 1 else ():
            others = ", ".join(f"{name} ({p.file}:{p.line}:{p.column})" for name, p in owners if p is not here)
            message = (
                f"channel {channel!r} is also served by pipeline {others}; "
                "a request goes to one pipeline: serve each channel from one file"
            )
            found.append(replace(here, message=message))
    return found
