"""``pipeline-dryrun --check``: every configuration problem, likely mistakes, and the rules' inline tests.

Beyond what loading checks (``engine.config.inspect_config``), this adds warnings for valid
JMESPath that probably does not mean what it says (``lint_expression``), rules that can never match
(``find_shadowed``), a default that is never used and rules no inline test decides; errors for
inline tests that name an unknown rule; and it runs every complete rule set's inline tests.

Without ``--pipeline`` every ``pipelines/*.yaml`` is checked, each with the rule sets that belong to it
(a set shared by several pipelines is checked with each, and its findings and tests counted once).
Each finding is printed on ``out`` as ``FILE:LINE:COLUMN: message`` (warnings as
``FILE:LINE:COLUMN: warning: message``), the pipeline files first, then the rules files, in line
order; a one-line summary goes to ``err``. Exit status: 2 when anything is an error, else 1 when an
inline test failed, else 0 (warnings allowed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from engine.config import Inspection, LoadedRuleSet, display_path, inspect_config
from engine.errors import Problem
from engine.rules import RuleError, RuleSet, TestFailure, run_tests
from runtime.layout import PIPELINES_DIR, pipeline_files
from tools.lint import condition_terms, find_shadowed, lint_expression

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_TEST_FAILED", "CheckReport", "check_config", "run_check"]

EXIT_OK, EXIT_TEST_FAILED, EXIT_CONFIG = 0, 1, 2


@dataclass(frozen=True)
class CheckReport:
    """A check's findings in output order, the failed inline tests among them, and the sets not tested."""

    findings: tuple[Problem, ...]
    failures: tuple[Problem, ...]
    tests_run: int
    files: tuple[str, ...]
    not_run: tuple[str, ...]

    @property
    def errors(self) -> list[Problem]:
        """Configuration errors (failed inline tests not included)."""
        return [p for p in self.findings if p.severity == "error" and p not in self.failures]

    @property
    def warnings(self) -> list[Problem]:
        """Warnings: the configuration runs, but probably not as intended."""
        return [p for p in self.findings if p.severity == "warning"]

    @property
    def exit_code(self) -> int:
        """2 for configuration errors, else 1 for failed inline tests, else 0."""
        if self.errors:
            return EXIT_CONFIG
        return EXIT_TEST_FAILED if self.failures else EXIT_OK


def _line(loaded: LoadedRuleSet, index: int) -> int:
    return loaded.locator.position(("rules", index, "when"))[0]


def _shadowing(loaded: LoadedRuleSet) -> tuple[list[Problem], set[str]]:
    """Rules that can never match (with their ids), and a default that is never used."""
    found: list[Problem] = []
    never: set[str] = set()
    for shadowed in find_shadowed(loaded.ruleset):
        never.add(shadowed.rule.id)
        rule = shadowed.rule
        if not shadowed.by:
            message = f"rule {rule.id!r} can never match: {shadowed.reason}; fix the condition or remove the rule"
        elif len(shadowed.by) == 1:
            by = shadowed.by[0]
            message = (
                f"rule {rule.id!r} can never match: earlier rule {by.id!r} (line {_line(loaded, by.index)}) "
                f"has {shadowed.reason} and wins first; remove this rule, or move it above {by.id!r} if it should win"
            )
        else:
            earlier = ", ".join(f"{by.id!r} (line {_line(loaded, by.index)})" for by in shadowed.by)
            message = (
                f"rule {rule.id!r} can never match: earlier rules {earlier} have {shadowed.reason} and win first; "
                "remove this rule or move it above them"
            )
        found.append(loaded.locator.problem(("rules", rule.index, "when"), message, severity="warning"))
    ruleset = loaded.ruleset
    if ruleset.default is not None:
        for rule in ruleset.rules:
            terms = condition_terms(rule.when)
            if terms is not None and frozenset() in terms:
                message = (
                    f"the default is never used: rule {rule.id!r} (line {_line(loaded, rule.index)}) always matches"
                )
                found.append(loaded.locator.problem(("default",), message, at_key=True, severity="warning"))
                break
    return found, never


def _lint(inspection: Inspection) -> list[Problem]:
    return [
        located.locator.problem(located.path, message, severity="warning", offset=offset)
        for located in inspection.expressions
        for offset, message in lint_expression(located.expression)
    ]


def _unknown_rules_in_tests(loaded: LoadedRuleSet) -> list[tuple[int, Problem]]:
    """Inline tests expecting a rule the set does not have, by test index."""
    import difflib

    ruleset = loaded.ruleset
    ids = [rule.id for rule in ruleset.rules]
    found: list[tuple[int, Problem]] = []
    for test in ruleset.tests:
        expected = test.expect.get("rule")
        if expected is None or expected in ids:
            continue
        close = difflib.get_close_matches(str(expected), ids, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        message = (
            f"inline test {test.name!r} expects rule {expected!r}, which is not a rule of set {ruleset.name!r}"
            f"{hint}; rules: {', '.join(ids) or 'none'}"
        )
        found.append((test.index, loaded.locator.problem(("tests", test.index, "expect", "rule"), message)))
    return found


def _decided(ruleset: RuleSet) -> set[str]:
    """The rules that decide at least one inline test (matching, or raising on purpose)."""
    decided: set[str] = set()
    for test in ruleset.tests:
        try:
            evaluation = ruleset.evaluate(test.given)
        except RuleError as exc:
            decided.add(exc.rule)
            continue
        if evaluation.rule is not None:
            decided.add(evaluation.rule.id)
    return decided


def _untested(loaded: LoadedRuleSet, never: set[str]) -> list[Problem]:
    decided = _decided(loaded.ruleset) | never
    return [
        loaded.locator.problem(
            ("rules", rule.index, "id"),
            f"no inline test is decided by rule {rule.id!r}; add a case under tests: whose given makes it match",
            severity="warning",
        )
        for rule in loaded.ruleset.rules
        if rule.id not in decided
    ]


def _failure(loaded: LoadedRuleSet, failure: TestFailure) -> Problem:
    test = failure.test
    if failure.rule is not None:
        index = next((rule.index for rule in loaded.ruleset.rules if rule.id == failure.rule), None)
        where = f" (line {_line(loaded, index)})" if index is not None else ""
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


def check_config(
    pipelines: Path | Sequence[Path],
    rules_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    strict_env: bool = False,
) -> CheckReport:
    """Check pipelines and their rules: every problem, every warning, every inline test (each once)."""
    paths = [pipelines] if isinstance(pipelines, Path) else list(pipelines)
    if not paths:
        missing = Problem(display_path(PIPELINES_DIR), 1, 1, "no pipeline files (*.yaml) found; pass --pipeline FILE")
        return CheckReport((missing,), (), 0, (), ())
    findings: list[Problem] = []
    failures: list[Problem] = []
    files: list[str] = []
    tests_run = 0
    not_run: list[str] = []
    tested: set[str] = set()
    for path in paths:
        inspection = inspect_config(path, rules_dir, env, missing_env="error" if strict_env else "warning")
        files.extend(name for name in inspection.files if name not in files)
        findings.extend([*inspection.problems, *_lint(inspection)])
        for loaded in inspection.rulesets.values():
            if loaded.ruleset.file in tested:
                continue
            tested.add(loaded.ruleset.file)
            ran, found, failed = _check_ruleset(loaded)
            tests_run += ran
            findings.extend(found)
            failures.extend(failed)
            if not loaded.complete:
                not_run.append(loaded.ruleset.name)
    # Pipeline files first, then rules files by name; a finding in a file shared by several pipelines, once.
    heads = [display_path(path) for path in paths]
    files = [*heads, *sorted(name for name in files if name not in heads)]
    order = {name: rank for rank, name in enumerate(files)}
    unique = {(p.file, p.line, p.column, p.severity): p for p in reversed([*findings, *failures])}
    ordered = sorted(unique.values(), key=lambda p: (order.get(p.file, len(order)), p.file, p.line, p.column))
    failed_tests = tuple(p for p in ordered if p in failures)
    return CheckReport(tuple(ordered), failed_tests, tests_run, tuple(files), tuple(not_run))


def _check_ruleset(loaded: LoadedRuleSet) -> tuple[int, list[Problem], list[Problem]]:
    """One rule set's inline tests run, its findings, and its failed tests."""
    shadowing, never = _shadowing(loaded)
    findings = list(shadowing)
    if not loaded.complete:
        return 0, findings, []
    unknown = _unknown_rules_in_tests(loaded)
    findings.extend(problem for _, problem in unknown)
    findings.extend(_untested(loaded, never))
    reported = {index for index, _ in unknown}
    failures = [
        _failure(loaded, failure) for failure in run_tests(loaded.ruleset) if failure.test.index not in reported
    ]
    return len(loaded.ruleset.tests) - len(reported), findings, failures


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def run_check(pipeline: Path | None, rules_dir: Path, *, strict_env: bool, out: TextIO, err: TextIO) -> int:
    """Run ``pipeline-dryrun --check``: print every finding on ``out``, a summary on ``err``; the exit status.

    ``pipeline`` None checks every pipeline file of ``pipelines/``.
    """
    pipelines = [pipeline] if pipeline is not None else pipeline_files(PIPELINES_DIR)
    report = check_config(pipelines, rules_dir, os.environ, strict_env=strict_env)
    for finding in report.findings:
        print(finding, file=out)
    tests = f"inline tests: {report.tests_run - len(report.failures)} passed, {len(report.failures)} failed"
    if report.not_run:
        tests += f" (not run for rule sets with errors: {', '.join(report.not_run)})"
    summary = (
        f"checked {_count(len(report.files), 'file')}: {_count(len(report.errors), 'error')}, "
        f"{_count(len(report.warnings), 'warning')}; {tests}"
    )
    print(summary, file=err)
    return report.exit_code
