"""Rule sets: ordered rules with a JMESPath ``when`` and a ``then``; the first match wins.

A ``validation`` set's decisions are errors (a code, a message, optionally a reply to the user); no
match means the event passes. A ``routing`` set's decisions are targets; no match falls back to the
set's ``default`` or, without one, is a ``ROUTING_ERROR``. Sets carry inline ``tests`` that
``pipeline-dryrun --check`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.context import RuleTrace
from engine.expressions import Expression, ExpressionError

__all__ = ["Decision", "Evaluation", "Rule", "RuleSet", "RuleTest", "TestFailure", "run_tests"]


@dataclass(frozen=True)
class Decision:
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


@dataclass(frozen=True)
class Rule:
    """One rule of a set."""

    id: str
    when: Expression
    then: Decision
    description: str = ""


@dataclass(frozen=True)
class RuleTest:
    """An inline test: a context document and the expected decision."""

    name: str
    given: Mapping[str, Any]
    expect: Mapping[str, Any]
    index: int


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating a set: the matched rule (None when the default or nothing applied)."""

    rule: Rule | None
    decision: Decision | None
    tried: tuple[RuleTrace, ...]


@dataclass(frozen=True)
class RuleSet:
    """An ordered, first-match set of rules, compiled once per container."""

    name: str
    kind: str
    rules: tuple[Rule, ...]
    default: Decision | None = None
    file: str = ""
    description: str = ""
    tests: tuple[RuleTest, ...] = field(default_factory=tuple)

    def evaluate(self, document: Mapping[str, Any], *, explain: bool = False) -> Evaluation:
        """Try each rule in order; stop at the first whose condition is true."""
        tried: list[RuleTrace] = []
        for rule in self.rules:
            try:
                matched = rule.when.test(document)
            except ExpressionError as exc:
                raise ExpressionError(f"rule {self.name}/{rule.id} ({self.file}): {exc}") from None
            tried.append(RuleTrace(self.name, rule.id, matched, rule.when.inputs(document) if explain else {}))
            if matched:
                return Evaluation(rule, rule.then, tuple(tried))
        return Evaluation(None, self.default, tuple(tried))


@dataclass(frozen=True)
class TestFailure:
    """An inline test whose result differs from its expectation."""

    ruleset: str
    test: RuleTest
    differences: tuple[str, ...]

    def __str__(self) -> str:
        return f"ruleset {self.ruleset!r}, test {self.test.name!r}: " + "; ".join(self.differences)


def _observed(ruleset: RuleSet, document: Mapping[str, Any]) -> dict[str, Any]:
    evaluation = ruleset.evaluate(document)
    decision = evaluation.decision
    return {
        "rule": evaluation.rule.id if evaluation.rule else None,
        "error": decision.error if decision else None,
        "reply": decision.reply if decision else None,
        "target": decision.resolve_target(document) if decision else None,
    }


def run_tests(ruleset: RuleSet) -> list[TestFailure]:
    """Run the set's inline tests; return those that failed (an evaluation error is a failure too)."""
    failures: list[TestFailure] = []
    for test in ruleset.tests:
        try:
            observed = _observed(ruleset, test.given)
        except Exception as exc:  # noqa: BLE001 - a broken expression is reported as the test's failure
            failures.append(TestFailure(ruleset.name, test, (f"evaluation failed: {exc}",)))
            continue
        differences = tuple(
            f"expected {key} {expected!r}, got {observed.get(key)!r}"
            for key, expected in test.expect.items()
            if observed.get(key) != expected
        )
        if differences:
            failures.append(TestFailure(ruleset.name, test, differences))
    return failures
