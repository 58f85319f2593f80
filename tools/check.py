"""``pipeline-dryrun --check``: every configuration problem, likely mistakes, and the rules' inline tests.

What refuses a configuration (loading errors, inline tests naming an unknown rule, failing inline tests)
is ``runtime.verify``: the same code path refuses a rules bundle before the Lambda activates it. On top
of that, this adds warnings for configuration that runs but probably not as intended:

- valid JMESPath that probably does not mean what it says, including parts that can only be null or
  compare text in a way the JMESPath standard does not (``tools.lint.lint_expression``);
- names a condition or a test's ``given`` reads at the top of the context document that no step of the
  pipeline provides (``conversaton.tier`` is always null), and fields of ``request`` its parse step never gives
  (``request.text`` in an email rule: the text is ``request.body``; ``request.user_number``, which only
  ``twilio.parse`` gives, named as such), also in a set only that pipeline decides with that no step names yet,
  or that a step provides only after the step
  evaluating the rule set (a validation rule reading ``route``), and conversation attributes a step's condition
  reads that ``conversations.get`` with ``read: rules`` does not fetch (not in ``also_read``);
- ``request.channel`` compared with a channel the set's pipelines never serve (``tools.check_kinds.foreign_channels``:
  the pipeline's ``channels:``, or for a set several pipelines decide with, all of theirs);
- rule sets no step of any checked pipeline uses, and entries of the rules directory and of the checked pipelines'
  ``pipelines/`` directory the cold start does not read (``50_vip.YAML``, ``50_vip.yaml.bak``, a subdirectory);
- (an error) a rules file whose ``pipelines:`` names no pipeline file beside the checked ones: its rule
  sets would silently belong to no pipeline;
- error codes a rule decides that are transient, or reserved for a step or for the engine
  (``DB_TRANSIENT_ERROR``, ``INVALID_SIGNATURE``, ``INTERNAL_ERROR``);
- codes of the pipeline's ``errors:`` a rule decides that a ``format: json`` response family answering the
  pipeline's channels has no ``status:`` for: they are answered ``default_status`` (500), which the caller retries
  (a TwiML answer is 200 whatever the code);
- transient codes a step of the pipeline may end that such a family (one that answers them rather than raising) has
  no ``status:`` for: they are answered ``default_status`` (500), where the other transient codes are 503;
- a pipeline whose steps authenticate the request but none of which can end it ``INVALID_SIGNATURE``: the code the
  ``SignatureMismatches`` metric, the alarms and the dry-run's signature state read as a refused signature; or one
  of whose authenticating steps refuses with a code of its own beside it that no alarm watches (not transient, not
  ``loses_message``);
- ``aws:`` bounds and a ``deadline_seconds`` that let one invocation run past ``INVOCATION_LIMIT_SECONDS``
  (``runtime.aws.longest_invocation_seconds``);
- rules that can never match (``find_shadowed``), a default that is never used (or, in a validation set,
  fails every message no rule fails: none would pass), rules no inline test
  decides, duplicate test names, and a test expecting a target the pipeline does not have.

Without ``--pipeline`` every ``pipelines/*.yaml`` is checked, each with the rule sets that belong to it
(a set shared by several pipelines is checked with each, and its findings and tests counted once; its inline
tests run with each, as each pipeline's ``errors:`` replies may decide differently, and a test failing with some
of them only names them).
Each finding is printed on ``out`` as ``FILE:LINE:COLUMN: message`` (warnings as
``FILE:LINE:COLUMN: warning: message``), the pipeline files first, then the rules files, in line
order; a one-line summary goes to ``err``. Exit status: 2 when anything is an error (with ``strict``,
any warning but an unset ``${env:…}`` value, which ``--strict-env`` governs), else 1 when an inline
test failed, else 0.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, TextIO

from engine import registry
from engine.config import AppConfig, Inspection, LoadedRuleSet, display_path, inspect_config
from engine.errors import ENGINE_ERRORS, ConfigError, Problem, did_you_mean
from engine.locator import Locator, line_column
from engine.responses import ResponseFamily
from engine.rules import RuleError, RuleSet
from engine.yamlsource import SourceDoc
from runtime.aws import longest_call_seconds, longest_invocation_seconds
from runtime.layout import PIPELINES_DIR, pipeline_files
from runtime.misroute import INVALID_SIGNATURE
from runtime.verify import (
    leaves,
    pipeline_clashes,
    replay_window_problems,
    rule_line,
    settled_targets,
    step_path,
    tests_evaluated_once,
    verify_ruleset,
    written_value,
)
from tools.check_files import unread_entries, unread_pipeline_entries, unread_pipelines_dir
from tools.check_hints import hinted
from tools.check_kinds import PHONE_LIKE, declared_kinds, foreign_channels, given_kinds
from tools.check_owners import (
    OwnedSet,
    declared_name,
    declared_pipeline_name,
    owned_elsewhere,
    pipeline_document,
    pipeline_names,
    sets_with_owners,
    unknown_pipelines,
    unknown_rule_set,
)
from tools.check_reads import context_names, provided_too_late, request_fields, unfetched
from tools.console import EXIT_CHANGED, EXIT_OK, EXIT_USAGE
from tools.lint import (
    Domain,
    condition_terms,
    find_shadowed,
    flag_texts,
    given_paths,
    lint_expression,
    list_arguments,
    misspelt_paths,
    negated_roots,
    non_json_literals,
    value_types,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_OK",
    "EXIT_TEST_FAILED",
    "INVOCATION_LIMIT_SECONDS",
    "CheckReport",
    "check_config",
    "declared_pipeline_name",
    "run_check",
    "unknown_rule_set",
]

EXIT_TEST_FAILED, EXIT_CONFIG = EXIT_CHANGED, EXIT_USAGE
# The longest an invocation may run: below the function's Timeout (13 s, template.yaml) and Twilio's 15 s, with room
# for Twilio's connect time and a cold start (tests/runtime/test_time_budget.py holds the shipped bounds to it).
INVOCATION_LIMIT_SECONDS = 12.0


@dataclass(frozen=True)
class CheckReport:
    """A check's findings in output order, the failed inline tests among them, and the sets not tested.

    ``strict`` makes every warning but an unset ``${env:…}`` value fail the check.
    """

    findings: tuple[Problem, ...]
    failures: tuple[Problem, ...]
    tests_run: int
    files: tuple[str, ...]
    not_run: tuple[str, ...]
    strict: bool = False

    @property
    def errors(self) -> list[Problem]:
        """Configuration errors (failed inline tests not included)."""
        return [p for p in self.findings if p.severity == "error" and p not in self.failures]

    @property
    def warnings(self) -> list[Problem]:
        """Warnings: the configuration runs, but probably not as intended."""
        return [p for p in self.findings if p.severity == "warning"]

    @property
    def failing_warnings(self) -> list[Problem]:
        """The warnings that fail the check (``strict`` only)."""
        return [p for p in self.warnings if p.kind != "env"] if self.strict else []

    @property
    def exit_code(self) -> int:
        """2 for configuration errors (and, with ``strict``, warnings), else 1 for failed inline tests, else 0."""
        if self.errors or self.failing_warnings:
            return EXIT_CONFIG
        return EXIT_TEST_FAILED if self.failures else EXIT_OK


def _shadowing(loaded: LoadedRuleSet, domains: Mapping[str, Domain]) -> tuple[list[Problem], set[str]]:
    """Rules that can never match (with their ids), a default that is never used, and a validation default."""
    found: list[Problem] = []
    never: set[str] = set()
    for shadowed in find_shadowed(loaded.ruleset, domains):
        never.add(shadowed.rule.id)
        rule = shadowed.rule
        if not shadowed.by:
            message = f"rule {rule.id!r} can never match: {shadowed.reason}; fix the condition or remove the rule"
        elif len(shadowed.by) == 1:
            by = shadowed.by[0]
            message = (
                f"rule {rule.id!r} can never match: earlier rule {by.id!r} (line {rule_line(loaded, by.index)}) "
                f"has {shadowed.reason} and wins first; remove this rule, or move it above {by.id!r} if it should win"
            )
        else:
            earlier = ", ".join(f"{by.id!r} (line {rule_line(loaded, by.index)})" for by in shadowed.by)
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
                line = rule_line(loaded, rule.index)
                message = f"the default is never used: rule {rule.id!r} (line {line}) always matches"
                found.append(loaded.locator.problem(("default",), message, at_key=True, severity="warning"))
                break
    if ruleset.kind == "validation" and ruleset.default is not None and ruleset.default.error:
        message = (
            f"the default of validation set {ruleset.name!r} fails every message no rule fails, so no message "
            "passes the set; remove the default (without one, a message no rule matches passes)"
        )
        found.append(loaded.locator.problem(("default",), message, at_key=True, severity="warning"))
    return found, never


def _lint(inspection: Inspection) -> list[Problem]:
    """Likely mistakes in every condition; what the inline tests give a set's values types its checks."""
    # What the steps give a value wins over what the tests give it: production holds that type.
    declared = {path: found.kind for path, found in declared_kinds(inspection).items()}
    types = {
        loaded.locator.file: {**value_types(test.given for test in loaded.ruleset.tests), **declared}
        for loaded in inspection.rulesets.values()
    }
    flags = {loaded.locator.file: flag_texts(loaded.ruleset.tests) for loaded in inspection.rulesets.values()}
    given = {loaded.locator.file: given_paths(loaded.ruleset.tests) for loaded in inspection.rulesets.values()}
    found: list[Problem] = []
    for located in inspection.expressions:
        known = types.get(located.locator.file, {})
        condition_flags = flags.get(located.locator.file, {}) if located.path[-1:] == ("when",) else None
        mistakes = lint_expression(located.expression, known, condition_flags)
        mistakes += misspelt_paths(located.expression, given.get(located.locator.file, {}))
        found += [
            located.locator.problem(located.path, message, severity="warning", offset=offset)
            for offset, message in sorted(mistakes)
        ]
        # Certain, not likely: such a part never decides what it says, so the configuration is refused.
        found += [
            located.locator.problem(located.path, message, offset=offset)
            for offset, message in [
                *negated_roots(located.expression),
                *non_json_literals(located.expression),
                *list_arguments(located.expression),
            ]
        ]
    return found


# After an unquoted (plain) value, on its line: YAML reads what follows as a comment.
_TRAILING_COMMENT = re.compile(r"[ \t]+#")


def _cut_by_comment(inspection: Inspection) -> list[Problem]:
    """Unquoted conditions that YAML cut short at a ' #' it reads as a comment (a condition, or a quote left open)."""
    locators: dict[str, Locator] = {located.locator.file: located.locator for located in inspection.expressions}
    locators.update((loaded.locator.file, loaded.locator) for loaded in inspection.rulesets.values())
    found: list[Problem] = []
    for locator in locators.values():
        for path, (_, end, style, value) in locator.strings.items():
            condition = path[-1:] in (("when",), ("target_from",)) and path[:1] != ("tests",)
            comment = _TRAILING_COMMENT.match(locator.text, end) if condition and not style else None
            if comment is None:
                continue
            message = (
                f"YAML reads ' #' as the start of a comment, so this condition ends before it (as {value!r}); put "
                "the whole condition in double quotes, with single quotes inside"
            )
            found.append(Problem(locator.file, *line_column(locator.text, comment.end() - 1), message, "warning"))
    return found


def _backspaces(inspection: Inspection) -> list[Problem]:
    r"""Conditions in double quotes holding ``\b``, which YAML reads as a backspace, not a pattern's word boundary.

    Of the escapes YAML's double quotes and regular expressions share, ``\b`` alone means another thing in each
    (``\t``, ``\n`` are the same character either way; ``\s``, ``\d`` are no YAML escape, refused at load).
    """
    locators: dict[str, Locator] = {located.locator.file: located.locator for located in inspection.expressions}
    locators.update((loaded.locator.file, loaded.locator) for loaded in inspection.rulesets.values())
    found: list[Problem] = []
    for locator in locators.values():
        for path, (start, end, style, _) in locator.strings.items():
            condition = path[-1:] in (("when",), ("target_from",)) and path[:1] != ("tests",)
            index = start + 1
            while condition and style == '"' and index < end - 1:
                if locator.text[index] == "\\" and locator.text[index + 1] == "b":
                    message = (
                        "in double quotes YAML reads \\b as a backspace (an invisible control character), so the "
                        "condition holds one where a regular expression's \\b (a word's edge) was meant; write the "
                        "backslash twice: \\\\b"
                    )
                    found.append(Problem(locator.file, *line_column(locator.text, index), message, "warning"))
                index += 2 if locator.text[index] == "\\" else 1
    return found


# A whole number written with a leading 0: YAML 1.1 reads it in octal (010 is 8).
_ZERO_PADDED = re.compile(r"[-+]?0[0-7_]+")


def _octal_numbers(document: SourceDoc | None) -> list[Problem]:
    """Settings of a pipeline file written with a leading 0 that YAML read as octal, so as another number."""
    if document is None:
        return []
    found: list[Problem] = []
    for path, value in leaves(document.data):
        written = written_value(document.locator, path) if type(value) is int else ""
        if _ZERO_PADDED.fullmatch(written) and int(written.replace("_", "")) != value:
            message = (
                f"YAML reads {written} as the number {value} (a leading 0 makes it octal); write "
                f"{written.lstrip('0')} without the 0, or {value} if that is meant"
            )
            found.append(document.locator.problem(path, message, severity="warning"))
    return found


def _declared_by(inspection: Inspection) -> dict[str, str]:
    """Error codes a step of the pipeline or the engine declares, and who declares them."""
    owners: dict[str, str] = {spec.code: "the engine" for spec in ENGINE_ERRORS}
    for step in inspection.config.pipeline.steps() if inspection.config else ():
        spec = registry.get(step.uses)
        for error in spec.errors if spec else ():
            owners.setdefault(error.code, f"step {step.id!r} ({step.uses})")
    return owners


def _decisions(ruleset: RuleSet) -> list[tuple[tuple[str | int, ...], str]]:
    """The error codes a set's rules and default decide, each with where it is written."""
    decisions: list[tuple[tuple[str | int, ...], str | None]] = [
        (("rules", rule.index, "then", "error"), rule.then.error) for rule in ruleset.rules
    ]
    if ruleset.default is not None:
        decisions.append((("default", "error"), ruleset.default.error))
    return [(path, code) for path, code in decisions if code is not None]


def _reserved_codes(inspection: Inspection) -> list[Problem]:
    """Rules deciding a transient code, or one a step or the engine ends events with."""
    config = inspection.config
    if config is None:
        return []
    owners, pipeline = _declared_by(inspection), inspection.files[0]
    found: list[Problem] = []
    for loaded in inspection.rulesets.values():
        for path, code in _decisions(loaded.ruleset):
            spec = config.errors.get(code)
            if spec is None or not (spec.transient or code in owners):
                continue
            if spec.transient:
                why = "is transient: the caller retries the event, and the rule decides it again every time"
            else:
                why = f"is reserved for {owners[code]}: logs, metrics and alarms read it as that outcome"
            message = (
                f"rule error code {code!r} {why}; declare a business code under errors: in {pipeline} and decide that"
            )
            found.append(loaded.locator.problem(path, message, severity="warning"))
    return found


def _json_families(config: AppConfig) -> list[ResponseFamily]:
    """The ``format: json`` families answering the pipeline's channels (a TwiML answer has no status per code)."""
    answering: dict[str, ResponseFamily] = {}
    for channel in config.channels:
        try:
            family = config.responses.family_for(channel)
        except LookupError:
            continue
        answering.setdefault(family.name, family)
    return [family for family in answering.values() if family.format == "json"]


def _unanswered_codes(inspection: Inspection, document: SourceDoc | None) -> list[Problem]:
    """Codes of the pipeline's ``errors:`` that its rules decide and a JSON family answering it has no status for."""
    config, pipeline = inspection.config, inspection.files[0]
    families = _json_families(config) if config is not None else []
    if not families or document is None:
        return []
    data = document.data if isinstance(document.data, dict) else {}
    errors = data.get("errors")
    declared = set(errors) if isinstance(errors, dict) else set()
    found: list[Problem] = []
    for name in sorted(inspection.used & inspection.rulesets.keys()):
        loaded = inspection.rulesets[name]
        for path, code in _decisions(loaded.ruleset):
            unanswering = [family for family in families if code not in family.status] if code in declared else []
            for family in unanswering:
                message = (
                    f"rule error code {code!r} has no status in response family {family.name!r} (json): "
                    f"{pipeline} answers it with default_status {family.default_status}, which the caller may retry; "
                    f"add it under responses: {family.name}: status: in {pipeline}"
                )
                found.append(loaded.locator.problem(path, message, severity="warning"))
    return found


# The status the contract gives every transient code (§5).
TRANSIENT_STATUS = 503


def _unanswered_transient_codes(inspection: Inspection, document: SourceDoc | None) -> list[Problem]:
    """Transient codes of the pipeline's steps that a JSON family answering it (not raising) has no status for."""
    config, pipeline = inspection.config, inspection.files[0]
    if config is None or document is None:
        return []
    # A family answering 503 by default answers such a code as the contract answers every transient code.
    families = [
        family
        for family in _json_families(config)
        if not family.raise_transient and family.default_status != TRANSIENT_STATUS
    ]
    steps = document.data.get("steps") if isinstance(document.data, dict) else None
    found: list[Problem] = []
    for step in config.pipeline.steps():
        spec = registry.get(step.uses)
        codes = [error.code for error in spec.errors if error.transient] if spec is not None else []
        for code, family in ((code, family) for code in codes for family in families if code not in family.status):
            message = (
                f"step {step.id!r} ({step.uses}) may end the transient code {code!r}, which response family "
                f"{family.name!r} (json) has no status for: {pipeline} answers it with default_status "
                f"{family.default_status}, where the other transient codes are {TRANSIENT_STATUS}; add it under "
                f"responses: {family.name}: status: in {pipeline}"
            )
            path = step_path(steps, step.id)
            where = (*path, "uses") if path is not None else ("steps",)
            found.append(document.locator.problem(where, message, severity="warning"))
    return found


def _uncounted_refusals(inspection: Inspection, document: SourceDoc | None) -> list[Problem]:
    """Authenticated refusals nothing counts: no step able to end ``INVALID_SIGNATURE``, or a code of its own beside it.

    A code of its own is one an authenticating step declares that is neither transient nor ``loses_message``.
    """
    config, pipeline = inspection.config, inspection.files[0]
    if config is None or document is None:
        return []
    specs = [(step, registry.get(step.uses)) for step in config.pipeline.steps()]
    checks = [(step, spec) for step, spec in specs if spec is not None and spec.authenticates]
    codes = {error.code for _, spec in specs if spec is not None for error in spec.errors}
    if not checks:
        return []
    uncounted = "not counted in SignatureMismatches, no alarm watches it and the dry-run reports"
    if INVALID_SIGNATURE in codes:
        # A refusal with a code of its own beside INVALID_SIGNATURE: unseen unless it is alarmed otherwise.
        warned = [
            (step, error.code)
            for step, spec in checks
            for error in spec.errors
            if error.code != INVALID_SIGNATURE and not error.transient and not error.loses_message
        ]
        messages = [
            (
                step,
                f"step {step.id!r} ({step.uses}) authenticates the request and may refuse it {code}, a code of its "
                f"own that is neither transient nor loses_message: such a refusal is {uncounted} its signature as not "
                f"checked; end it with {INVALID_SIGNATURE}, as a wrong signature",
            )
            for step, code in warned
        ]
    else:
        step = checks[-1][0]
        messages = [
            (
                step,
                f"step {step.id!r} ({step.uses}) authenticates the request, but no step of {pipeline} can end it "
                f"{INVALID_SIGNATURE}: a refused signature is then {uncounted} it as not checked; end a refused "
                f"signature with {INVALID_SIGNATURE}",
            )
        ]
    steps = document.data.get("steps") if isinstance(document.data, dict) else None
    problems = []
    for step, message in messages:
        found = step_path(steps, step.id)
        where = (*found, "uses") if found is not None else ("steps",)
        problems.append(document.locator.problem(where, message, severity="warning"))
    return problems


def _slow_bounds(inspection: Inspection, document: SourceDoc | None) -> list[Problem]:
    """A pipeline whose ``aws:`` bounds and ``deadline_seconds`` let one invocation run past ``INVOCATION_LIMIT``."""
    config = inspection.config
    if config is None or document is None:
        return []
    call = longest_call_seconds(config.aws)
    deadline = config.pipeline.deadline_seconds
    longest = longest_invocation_seconds(deadline, config.aws)
    if longest <= INVOCATION_LIMIT_SECONDS:
        return []
    message = (
        f"one invocation may run {longest:g} s: deadline_seconds {deadline:g} s plus twice {call:g} s, the longest "
        f"one AWS call (every attempt's timeouts and the backoff between them), past {INVOCATION_LIMIT_SECONDS:g} s: "
        "the function's Timeout is 13 s and Twilio waits 15 s for an answer, so a stalled service would cut the run "
        "off unanswered; lower aws: read_timeout_seconds, connect_timeout_seconds or max_attempts, or deadline_seconds"
    )
    data = document.data if isinstance(document.data, dict) else {}
    where = next((key for key in ("aws", "deadline_seconds", "pipeline") if key in data), "pipeline")
    return [document.locator.problem((where,), message, severity="warning")]


def _short_due_margins(inspection: Inspection, document: SourceDoc | None) -> list[Problem]:
    """A step's ``due_margin_seconds`` shorter than the longest AWS call the pipeline's ``aws:`` bounds allow.

    A message that finds the lock held by a trigger due later than the margin ends BATCHED, its stage row written
    in the same group: a write longer than the margin may land after the trigger's consumer read the batch.
    """
    config = inspection.config
    if config is None or document is None:
        return []
    call = longest_call_seconds(config.aws)
    steps = document.data.get("steps") if isinstance(document.data, dict) else None
    found: list[Problem] = []
    for step in config.pipeline.steps():
        margin = getattr(step.step, "due_margin_seconds", None)
        if not isinstance(margin, int | float) or margin >= call:
            continue
        message = (
            f"step {step.id!r} ({step.uses}) takes a held lock over only when its trigger is due within {margin:g} s, "
            f"but one AWS call (this message's stage write) may take {call:g} s under the aws: bounds (every "
            "attempt's timeouts and the backoff between them): a message batched behind a trigger due sooner may be "
            f"staged after its batch was read, and never be read; raise due_margin_seconds to at least {call:g}, or "
            "lower the aws: bounds"
        )
        path = step_path(steps, step.id)
        if path is not None:  # at the value when the file sets it, else at the step
            path = (*path, "with", "due_margin_seconds") if "due_margin_seconds" in step.params else (*path, "uses")
        found.append(document.locator.problem(path or ("steps",), message, severity="warning"))
    return found


def _test_targets(inspection: Inspection) -> list[Problem]:
    """Inline tests of routing sets expecting a target the pipeline does not have."""
    targets = sorted(inspection.targets)
    if not targets or inspection.config is None:  # with errors, the targets are not settled
        return []
    found: list[Problem] = []
    for loaded in inspection.rulesets.values():
        if loaded.ruleset.kind != "routing":
            continue
        for test in loaded.ruleset.tests:
            expected = test.expect.get("target")
            if not isinstance(expected, str) or expected in targets:
                continue
            hint = did_you_mean(expected, targets)
            message = (
                f"inline test {test.name!r} expects target {expected!r}, which is not a target of "
                f"{inspection.files[0]}{hint}; targets: {', '.join(targets)}"
            )
            found.append(loaded.locator.problem(("tests", test.index, "expect", "target"), message, severity="warning"))
    return found


def _duplicate_test_names(loaded: LoadedRuleSet) -> list[Problem]:
    first: dict[str, int] = {}
    found: list[Problem] = []
    for test in loaded.ruleset.tests:
        if test.name in first:
            line = loaded.locator.position(("tests", first[test.name], "name"))[0]
            message = (
                f"duplicate inline test name {test.name!r} (first used on line {line}); "
                "give each test its own name, so that a failure names one case"
            )
            found.append(loaded.locator.problem(("tests", test.index, "name"), message, severity="warning"))
        else:
            first[test.name] = test.index
    return found


def _unused(inspections: Sequence[Inspection]) -> list[Problem]:
    """Rule sets that no step of any pipeline loading them uses (only when every such pipeline loaded)."""
    takers = ", ".join(
        f"{spec.name} `{key}:`"
        for spec in registry.specs()
        for key in ("ruleset", "rulesets")
        if key in spec.params.get("properties", {})
    )
    by_file: dict[str, tuple[LoadedRuleSet, list[Inspection]]] = {}
    for inspection in inspections:
        for loaded in inspection.rulesets.values():
            by_file.setdefault(loaded.ruleset.file, (loaded, []))[1].append(inspection)
    found: list[Problem] = []
    for loaded, loading in by_file.values():
        name = loaded.ruleset.name
        if any(inspection.config is None or name in inspection.used for inspection in loading):
            continue
        pipelines = ", ".join(inspection.files[0] for inspection in loading)
        message = (
            f"rule set {name!r} is not used by any step of {pipelines}, so its rules never run; "
            f"name it in a step ({takers}) or remove the file"
        )
        found.append(loaded.locator.problem(("ruleset",), message, severity="warning"))
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


def _pipeline_findings(
    path: Path,
    document: SourceDoc | None,
    inspection: Inspection,
    owned: Mapping[str, OwnedSet],
    served: Mapping[str, Served],
) -> list[Problem]:
    """What the checks find in pipeline ``path`` (parsed: ``document``) and the rule sets it loads, in check order.

    ``owned``: the rule sets other pipelines' files define (``sets_with_owners``), named in a problem they cause;
    ``served``: every pipeline's file and channels, by name (``_served_channels``).
    """
    name = declared_name(document)
    own = _own_files(inspection, name, owned)
    return [
        *(owned_elsewhere(hinted(problem), name, owned) for problem in inspection.problems),
        *_lint(inspection),
        *context_names(inspection),
        *request_fields(inspection, own),
        *given_kinds(inspection),
        *foreign_channels(inspection, own, _shared_sets(inspection, owned, served)),
        *_cut_by_comment(inspection),
        *_backspaces(inspection),
        *_octal_numbers(document),
        *provided_too_late(inspection),
        *unfetched(inspection),
        *_reserved_codes(inspection),
        *_uncounted_refusals(inspection, document),
        *_unanswered_codes(inspection, document),
        *_unanswered_transient_codes(inspection, document),
        *_slow_bounds(inspection, document),
        *_short_due_margins(inspection, document),
        *_test_targets(inspection),
        *replay_window_problems(path, inspection),
    ]


def check_config(
    pipelines: Path | Sequence[Path],
    rules_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    strict_env: bool = False,
    strict: bool = False,
) -> CheckReport:
    """Check pipelines and their rules: every problem, every warning, every inline test (each once)."""
    paths = [pipelines] if isinstance(pipelines, Path) else list(pipelines)
    if not paths:
        missing = Problem(display_path(PIPELINES_DIR), 1, 1, "no pipeline files (*.yaml) found; pass --pipeline FILE")
        unread = unread_pipelines_dir(PIPELINES_DIR)  # pipelines/twilio_inbound.YAML, say
        return CheckReport((missing, *unread), (), 0, (), (), strict)
    findings: list[Problem] = []
    failures: list[Problem] = []
    files: list[str] = []
    tests_run = 0
    not_run: list[str] = []
    tested: set[str] = set()
    runs: dict[str, list[tuple[str, tuple[Problem, ...]]]] = {}  # by a set's file: its failed tests, by pipeline
    inspections: list[Inspection] = []
    reported: dict[tuple[str, int, int, str], list[int]] = {}  # where earlier pipelines' findings are: their indexes
    owned = sets_with_owners(rules_dir)
    served = _served_channels(paths)
    for path in paths:
        inspection = inspect_config(path, rules_dir, env, missing_env="error" if strict_env else "warning")
        inspections.append(inspection)
        files.extend(name for name in inspection.files if name not in files)
        document = pipeline_document(path)
        pipeline_name = declared_name(document)
        found = _pipeline_findings(path, document, inspection, owned, served)
        # A rule set shared by several pipelines is reported with the first (its messages may name the pipeline),
        # but for a code none of them declares, which each must declare.
        earlier = {place: list(indexes) for place, indexes in reported.items()}
        for problem in found:
            if _place(problem) not in earlier:
                reported.setdefault(_place(problem), []).append(len(findings))
                findings.append(problem)
            for index in earlier.get(_place(problem), []):
                findings[index] = _undeclared_in_each(findings[index], problem)
        for loaded in inspection.rulesets.values():
            if loaded.ruleset.file in tested:
                # A shared set decides with each pipeline's own errors: replies: its tests run with each.
                if loaded.complete and loaded.ruleset.file in runs:
                    verdict = verify_ruleset(loaded, settled_targets(inspection), display_path(path))
                    runs[loaded.ruleset.file].append((display_path(path), verdict.failures))
                continue
            tested.add(loaded.ruleset.file)
            domains = _channel_domain(inspection, pipeline_name, owned.get(loaded.ruleset.name), display_path(path))
            ran, found, failed = _check_ruleset(loaded, settled_targets(inspection), display_path(path), domains)
            tests_run += ran
            findings.extend(found)
            if loaded.complete:
                runs[loaded.ruleset.file] = [(display_path(path), tuple(failed))]
            else:
                failures.extend(failed)
                not_run.append(loaded.ruleset.name)
    failures.extend(failure for each in runs.values() for failure in _with_each_pipeline(each))
    findings.extend(pipeline_clashes(paths))
    findings.extend(_local_aws(paths))
    findings.extend(_unused(inspections))
    findings.extend(unknown_pipelines(rules_dir, pipeline_names(paths)))
    unread_pipelines = unread_pipeline_entries(paths)
    findings.extend([*unread_pipelines, *unread_entries(rules_dir)])
    # Pipeline files first (the pipelines directory's entries not read among them), then rules files by name; each
    # finding once, however many checks found it. A missing rules directory leaves every rule set unknown: it is said
    # first, without an error for each set a step names.
    heads = [display_path(path) for path in paths]
    files = [*heads, *sorted(name for name in files if name not in heads)]
    unread_files = sorted({problem.file for problem in unread_pipelines})  # not checked: not among files
    missing_rules = not rules_dir.exists()
    ranked = [display_path(rules_dir)] * missing_rules + heads + unread_files + files[len(heads) :]
    order = {name: rank for rank, name in enumerate(ranked)}
    found = [*findings, *failures]
    kept = [
        _with_rules_option(problem, rules_dir) for problem in found if not (missing_rules and unknown_rule_set(problem))
    ]
    unique = dict.fromkeys(reversed(kept))  # at one place, the last found first
    ordered = sorted(unique, key=lambda p: (order.get(p.file, len(order)), p.file, p.line, p.column))
    failed_tests = tuple(p for p in ordered if p in failures)
    return CheckReport(tuple(ordered), failed_tests, tests_run, tuple(files), tuple(not_run), strict)


def _with_rules_option(problem: Problem, rules_dir: Path) -> Problem:
    """``problem``, with this command's fix when it is the engine's missing ``rules_dir`` (said in a function's terms).

    The engine's text is also a cold start's, where no option can be passed; here the directory is ``--rules``'s.
    """
    if problem.file != display_path(rules_dir) or not problem.message.startswith(_RULES_DIR_NOT_FOUND):
        return problem
    return replace(
        problem, message=f"{_RULES_DIR_NOT_FOUND}; pass the directory holding the rules/*.yaml files with --rules DIR"
    )


_RULES_DIR_NOT_FOUND = "rules directory not found"


def _with_each_pipeline(runs: Sequence[tuple[str, tuple[Problem, ...]]]) -> list[Problem]:
    """A rule set's failed inline tests, run with each pipeline it belongs to; one failing with some only names them.

    The pipelines' ``errors:`` give a rule without ``reply:`` its reply, so a shared set may decide differently in each.
    """
    pipelines = [pipeline for pipeline, _ in runs]
    failed_with: dict[Problem, list[str]] = {}
    for pipeline, failed in runs:
        for failure in failed:
            failed_with.setdefault(failure, []).append(pipeline)
    found: list[Problem] = []
    for failure, names in failed_with.items():
        if len(names) == len(pipelines):
            found.append(failure)
            continue
        where = f"; with {', '.join(names)} (the set belongs to {', '.join(pipelines)}: its tests run with each)"
        if "; expected reply " in failure.message or ": expected reply " in failure.message:
            where += (
                "; a rule without reply: answers with the reply its pipeline declares for the code under errors:, "
                "if any: give the rule its own reply: to answer alike in every pipeline"
            )
        found.append(replace(failure, message=failure.message + where))
    return found


def _local_aws(paths: Sequence[Path]) -> list[Problem]:
    """What keeps local AWS (``tools.needs``: the dry-run's worlds, pipeline-serve, the tests) from being made."""
    from tools.needs import pipeline_needs

    try:
        pipeline_needs(paths)
    except ConfigError as exc:
        fix = "the dry-run and pipeline-serve refuse the pipeline: local AWS cannot be made for it"
        return [replace(problem, severity="warning", message=f"{problem.message}; {fix}") for problem in exc.problems]
    return []


_UNDECLARED = re.compile(
    r"^(?P<head>.*); error codes: (?P<codes>[^;]*); a new business code is declared under errors: in "
    r"(?P<files>.+?)(?: \(the set belongs to each\))?$"
)


def _undeclared_in_each(first: Problem, again: Problem) -> Problem:
    """``first``, an unknown code of a shared set, naming ``again``'s pipeline too, with the codes both know."""
    ours, theirs = _UNDECLARED.match(first.message), _UNDECLARED.match(again.message)
    if ours is None or theirs is None or first.severity != "error":
        return first
    known = set(theirs["codes"].split(", "))
    codes = ", ".join(code for code in ours["codes"].split(", ") if code in known)
    files = [*ours["files"].split(" and "), theirs["files"]]
    message = (
        f"{ours['head']}; error codes: {codes}; a new business code is declared under errors: in "
        f"{' and '.join(dict.fromkeys(files))} (the set belongs to each)"
    )
    return replace(first, message=message)


def _place(problem: Problem) -> tuple[str, int, int, str]:
    return problem.file, problem.line, problem.column, problem.severity


def _phone_numbers(loaded: LoadedRuleSet) -> list[Problem]:
    """Phone numbers written unquoted in tests' ``given`` (``+14155550123``): YAML reads a number, the document text."""
    found: list[Problem] = []
    for test in loaded.ruleset.tests:
        numbers = [(path, value) for path, value in leaves(test.given) if type(value) is int]  # not true/false
        for path, number in numbers:
            where = ("tests", test.index, "given", *path)
            written = written_value(loaded.locator, where)
            if PHONE_LIKE.fullmatch(written):
                message = (
                    f"inline test {test.name!r} gives {'.'.join(map(str, path))}: YAML reads {written} as the number "
                    f'{number}, while the document holds phone numbers as text; put it in quotes: "{written}"'
                )
                found.append(loaded.locator.problem(where, message, severity="warning"))
    return found


def _own_files(inspection: Inspection, pipeline: str | None, owned: Mapping[str, OwnedSet]) -> set[str]:
    """The pipeline file and the rules files of the sets ``pipeline`` alone decides with (their ``pipelines:``)."""
    files = {inspection.files[0]}
    for name, loaded in inspection.rulesets.items():
        found = owned.get(name)
        if found is not None and found.owners == (pipeline,):
            files.add(loaded.locator.file)
    return files


class Served(NamedTuple):
    """A pipeline's file and the channels it serves (its ``channels:``)."""

    file: str
    channels: tuple[str, ...]


def _served_channels(paths: Sequence[Path]) -> dict[str, Served]:
    """Each pipeline's channels, by name (``pipeline:``, else the stem), of the checked files and those beside them."""
    found: dict[str, Served] = {}
    beside = [found for path in paths for found in pipeline_files(path.parent)]
    for path in dict.fromkeys([*paths, *beside]):
        document = pipeline_document(path)
        data = document.data if document is not None and isinstance(document.data, dict) else {}
        channels = data.get("channels")
        if isinstance(channels, list) and channels and all(isinstance(channel, str) for channel in channels):
            found.setdefault(declared_name(document) or path.stem, Served(display_path(path), tuple(channels)))
    return found


def _shared_sets(
    inspection: Inspection, owned: Mapping[str, OwnedSet], served: Mapping[str, Served]
) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """The rules files of the pipeline's sets that several pipelines decide with, each with theirs (``Served``).

    A set names its pipelines under ``pipelines:``, else it belongs to every pipeline; a set one of whose pipelines'
    channels are not known is left out.
    """
    found: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for name, loaded in inspection.rulesets.items():
        found_owners = owned.get(name)
        owners = found_owners.owners if found_owners is not None else tuple(served)
        if len(set(owners)) > 1 and all(owner in served for owner in owners):
            pipelines = sorted({served[owner] for owner in owners})
            found[loaded.locator.file] = [(pipeline.file, pipeline.channels) for pipeline in pipelines]
    return found


def _channel_domain(
    inspection: Inspection, pipeline: str | None, owned: OwnedSet | None, file: str
) -> dict[str, Domain]:
    """``request.channel``'s only values, the pipeline's channels, for a set that pipeline alone decides with."""
    channels = inspection.config.channels if inspection.config is not None else ()
    if owned is None or owned.owners != (pipeline,) or not channels:
        return {}
    why = f"of {file} (request.channel is always one of its channels: {', '.join(channels)})"
    return {"request.channel": Domain(channels, why)}


def _check_ruleset(
    loaded: LoadedRuleSet, targets: Collection[str] | None, pipeline: str, domains: Mapping[str, Domain]
) -> tuple[int, list[Problem], list[Problem]]:
    """One rule set's inline tests run (with the ``targets`` of ``pipeline``), its findings, and its failed tests."""
    loaded = loaded._replace(ruleset=tests_evaluated_once(loaded.ruleset))
    shadowing, never = _shadowing(loaded, domains)
    findings = [*shadowing, *_duplicate_test_names(loaded), *_phone_numbers(loaded)]
    if not loaded.complete:
        return 0, findings, []
    verdict = verify_ruleset(loaded, targets, pipeline)
    findings.extend(problem for _, problem in verdict.unknown)
    findings.extend(_untested(loaded, never))
    return verdict.tests_run, findings, list(verdict.failures)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def summary_line(report: CheckReport) -> str:
    """The one-line summary of a check."""
    failed = len({_place(failure) for failure in report.failures})  # a shared set's test may fail in two ways
    tests = f"inline tests: {report.tests_run - failed} passed, {failed} failed"
    if report.not_run:
        tests += f" (not run for rule sets with errors: {', '.join(report.not_run)})"
    strict = f" (--strict: {len(report.failing_warnings)} fail the check)" if report.failing_warnings else ""
    return (
        f"checked {_count(len(report.files), 'file')}: {_count(len(report.errors), 'error')}, "
        f"{_count(len(report.warnings), 'warning')}{strict}; {tests}"
    )


def _errors(path: Path, rules_dir: Path) -> list[Problem]:
    return list(inspect_config(path, rules_dir, os.environ, missing_env="warning").problems)


def _default_pipelines(rules_dir: Path, err: TextIO) -> list[Path]:
    """Every pipeline file, but those ``rules_dir`` holds no rules of (``tools.dryrun.coverage.left_out``), said on err.

    The contract's default is the Twilio pipeline alone: a directory holding its rules only checks as that would.
    """
    from tools.dryrun.coverage import left_out, may_leave_out

    paths = pipeline_files(PIPELINES_DIR)
    # Asked first: a pipeline that cannot be left out is not inspected here (check_config inspects it).
    candidates = [path for path in paths if may_leave_out(path, rules_dir)]
    left = [omitted for path in candidates if (omitted := left_out(path, rules_dir, _errors(path, rules_dir)))]
    if not left or len(left) == len(paths):
        return paths
    for omitted in left:
        print(omitted, file=err)
    return [path for path in paths if path not in {omitted.path for omitted in left}]


def run_check(
    pipeline: Path | None, rules_dir: Path, *, strict_env: bool, out: TextIO, err: TextIO, strict: bool = False
) -> int:
    """Run ``pipeline-dryrun --check``: print every finding on ``out``, a summary on ``err``; the exit status.

    ``pipeline`` None checks every pipeline file of ``pipelines/``.
    """
    from tools.dryrun.coverage import rules_dir_problem

    not_a_directory = rules_dir.exists() and not rules_dir.is_dir()  # a missing one is reported with the rest
    unusable = rules_dir_problem(rules_dir, "--rules", baseline=False) if not_a_directory else None
    if unusable is not None:
        report = CheckReport((unusable,), (), 0, (), (), strict)
    else:
        pipelines = [pipeline] if pipeline is not None else _default_pipelines(rules_dir, err)
        report = check_config(pipelines, rules_dir, os.environ, strict_env=strict_env, strict=strict)
    for finding in report.findings:
        print(finding, file=out)
    print(summary_line(report), file=err)
    return report.exit_code
