"""Rule sets: ordered rules with a JMESPath ``when`` and a ``then``; the first match wins.

A ``validation`` set's decisions are errors (a code, a message, optionally a reply to the user); no
match means the event passes. A ``routing`` set's decisions are targets; no match falls back to the
set's ``default`` or, without one, is a ``ROUTING_ERROR``. Sets carry inline ``tests`` that
``pipeline-dryrun --check`` runs (``run_tests``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from engine.context import RuleTrace
from engine.errors import shown
from engine.expressions import Expression, ExpressionError

__all__ = [
    "Decision",
    "Evaluation",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleTest",
    "TestFailure",
    "decided_rules",
    "run_tests",
]


class Decision(NamedTuple):
    """What a matched rule decides: an error (validation) or a target (routing)."""

    error: str | None = None
    message: str | None = None
    reply: str | None = None
    target: str | None = None
    target_from: Expression | None = None

    def resolve_target(self, document: Mapping[str, Any]) -> str | None:
        """The routing target, evaluating ``target_from`` when the target is computed."""
        if self.target is not None:
            return self.target
        if self.target_from is not None:
            value = self.target_from.search(document)
            return value if isinstance(value, str) else None
        return None


# Rule and RuleTest stay frozen dataclasses, unlike the other records (NamedTuples, cheaper to define at
# cold start): their ``index`` field would shadow ``tuple.index``.
@dataclass(frozen=True)
class Rule:
    """One rule of a set; ``index`` is its position in the file's ``rules:`` list."""

    id: str
    when: Expression
    then: Decision
    index: int = 0


@dataclass(frozen=True)
class RuleTest:
    """An inline test: a context document and the expected decision."""

    name: str
    given: Mapping[str, Any]
    expect: Mapping[str, Any]
    index: int


class RuleError(ExpressionError):
    """A rule's condition failed at run time (the run ends with INTERNAL_ERROR naming the rule).

    ``detail`` is the expression's own error, without the rule's name.
    """

    def __init__(self, ruleset: RuleSet, rule: Rule, detail: str) -> None:
        super().__init__(f"rule {ruleset.name}/{rule.id} ({ruleset.file}): {detail}")
        self.ruleset = ruleset.name
        self.rule = rule.id
        self.detail = detail


class Evaluation(NamedTuple):
    """The result of evaluating a set: the matched rule (None when the default or nothing applied)."""

    rule: Rule | None
    decision: Decision | None
    tried: tuple[RuleTrace, ...]


class RuleSet(NamedTuple):
    """An ordered, first-match set of rules, compiled once per container."""

    name: str
    kind: str
    rules: tuple[Rule, ...]
    default: Decision | None = None
    file: str = ""
    tests: tuple[RuleTest, ...] = ()

    def evaluate(self, document: Mapping[str, Any], *, explain: bool = False) -> Evaluation:
        """Try each rule in order; stop at the first whose condition is true."""
        tried: list[RuleTrace] = []
        for rule in self.rules:
            try:
                matched = rule.when.test(document)
            except ExpressionError as exc:
                raise RuleError(self, rule, str(exc)) from None
            tried.append(RuleTrace(self.name, rule.id, matched, rule.when.inputs(document) if explain else {}))
            if matched:
                return Evaluation(rule, rule.then, tuple(tried))
        return Evaluation(None, self.default, tuple(tried))


def decided_rules(traces: Iterable[RuleTrace], error: BaseException | None = None) -> dict[str, str | None]:
    """Per rule set tried, in order: the id of the rule that matched, or None when none did.

    ``error`` is the error the run ended with: when it (or its cause) is a RuleError, the rule whose condition
    failed decided its set (the run ended there, with INTERNAL_ERROR).
    """
    decided: dict[str, str | None] = {}
    for trace in traces:
        if trace.matched:
            decided[trace.ruleset] = trace.rule
        else:
            decided.setdefault(trace.ruleset, None)
    failed = error if isinstance(error, RuleError) else getattr(error, "__cause__", None)
    if isinstance(failed, RuleError):
        decided[failed.ruleset] = failed.rule
    return decided


class TestFailure(NamedTuple):
    """An inline test whose result differs from its expectation.

    ``keys`` are the ``expect`` keys that differ; ``rule`` is the rule that decided (or raised),
    None for the default or no match; ``raised`` is the run-time error when a condition failed.
    """

    ruleset: str
    test: RuleTest
    differences: tuple[str, ...]
    keys: tuple[str, ...] = ()
    rule: str | None = None
    raised: str | None = None


def _observed(ruleset: RuleSet, document: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """What the set decides for ``document``; a failing condition is observed as INTERNAL_ERROR."""
    try:
        evaluation = ruleset.evaluate(document)
    except RuleError as exc:
        return {"rule": exc.rule, "error": "INTERNAL_ERROR", "reply": None, "target": None}, exc.detail
    rule = evaluation.rule.id if evaluation.rule else None
    decision = evaluation.decision
    try:
        target = decision.resolve_target(document) if decision else None
    except ExpressionError as exc:
        return {"rule": rule, "error": "INTERNAL_ERROR", "reply": None, "target": None}, str(exc)
    # A routing set that decides no target ends the event with ROUTING_ERROR (``rules.route``).
    no_target = ruleset.kind == "routing" and not isinstance(target, str)
    error = "ROUTING_ERROR" if no_target else decision.error if decision else None
    return {"rule": rule, "error": error, "reply": decision.reply if decision else None, "target": target}, None


def run_tests(ruleset: RuleSet) -> list[TestFailure]:
    """Run the set's inline tests; return those that failed.

    A condition that fails at run time is observed as ``error: INTERNAL_ERROR`` from that rule, so
    a case may expect it; otherwise it fails the case.
    """
    failures: list[TestFailure] = []
    for test in ruleset.tests:
        observed, raised = _observed(ruleset, test.given)
        keys = tuple(key for key, expected in test.expect.items() if observed.get(key) != expected)
        if raised is not None and "error" not in test.expect:
            keys = (*keys, "error")
        if not keys:
            continue
        differences = tuple(
            f"expected {key} {shown(test.expect.get(key))}, got {shown(observed.get(key))}" for key in keys
        )
        failures.append(TestFailure(ruleset.name, test, differences, keys, observed["rule"], raised))
    return failures
