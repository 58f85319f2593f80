"""What keeps a configuration from being used: loading errors, inline tests naming an unknown rule, failing tests.

One code path for both places that must refuse a broken configuration: ``pipeline-dryrun --check``
(``tools.check``, which adds its warnings) and a rules bundle loaded from S3 (``runtime.bundlewatch``),
refused before it is activated. ``verify`` loads a pipeline with ``engine.config.inspect_config`` and
runs every complete rule set's inline tests (``engine.rules.run_tests``); every finding is located.
``code_owned`` refuses a pipeline file, carried by a bundle, that renames its pipeline or changes the
channels it serves: those change with a code deploy only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import NamedTuple

from engine.config import AppConfig, Inspection, LoadedRuleSet, display_path, inspect_config
from engine.errors import ConfigError, Problem, did_you_mean
from engine.rules import RuleSet, TestFailure, run_tests

__all__ = ["RuleSetVerdict", "Verification", "code_owned", "rule_line", "verify", "verify_ruleset"]


class RuleSetVerdict(NamedTuple):
    """A complete rule set's inline tests: those expecting an unknown rule (by test index), failures, tests run."""

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

    @property
    def errors(self) -> list[Problem]:
        """Every finding that keeps the configuration from being used, in file order."""
        found = [*self.inspection.errors, *(problem for verdict in self.verdicts for problem in verdict.errors)]
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
        message = (
            f"inline test {test.name!r} expects rule {expected!r}, which is not a rule of set {ruleset.name!r}"
            f"{hint}; rules: {', '.join(ids) or 'none'}"
        )
        found.append((test.index, loaded.locator.problem(("tests", test.index, "expect", "rule"), message)))
    return found


def _failure(loaded: LoadedRuleSet, failure: TestFailure) -> Problem:
    test = failure.test
    if failure.rule is not None:
        index = next((rule.index for rule in loaded.ruleset.rules if rule.id == failure.rule), None)
        where = f" (line {rule_line(loaded, index)})" if index is not None else ""
        decided = f"rule {failure.rule!r}{where}"
    else:
        decided = "the set's default" if loaded.ruleset.default is not None else "no rule (nothing matched)"
    message = (
        f"inline test {test.name!r} of rule set {failure.ruleset!r} failed: {'; '.join(failure.differences)}; "
        f"decided by {decided}"
    )
    if failure.raised is not None:
        message += f"; its condition failed at run time: {failure.raised}"
        if "null" in failure.raised:
            message += "; a value it reads is missing or null here: give it a default, e.g. x || `[]`"
    key = failure.keys[0]
    path = ("tests", test.index, "expect", key) if key in test.expect else ("tests", test.index, "expect")
    return loaded.locator.problem(path, message)


def verify_ruleset(loaded: LoadedRuleSet) -> RuleSetVerdict:
    """Run a complete set's inline tests (a test expecting an unknown rule is reported instead of run)."""
    unknown = _unknown_rules_in_tests(loaded)
    reported = {index for index, _ in unknown}
    failures = [
        _failure(loaded, failure) for failure in run_tests(loaded.ruleset) if failure.test.index not in reported
    ]
    return RuleSetVerdict(loaded, tuple(unknown), tuple(failures), len(loaded.ruleset.tests) - len(reported))


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
    verdicts = tuple(verify_ruleset(loaded) for loaded in inspection.rulesets.values() if loaded.complete)
    return Verification(inspection, verdicts)


def code_owned(pipeline: Path, name: str, channels: Collection[str] | None) -> list[Problem]:
    """Where the pipeline file renames the pipeline ``name`` or changes its ``channels`` (the code's to change).

    ``channels`` None: not known, not compared. A file that cannot be read is loading's to report, not this.
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
    return found
