"""Shadow evaluation: a candidate configuration decides every event again, after the live decision, to no effect.

A candidate deployed as *shadow* (a rules bundle, ``runtime.bundlewatch``) sees every event the live
run brought to its rules: the candidate's deciding steps (registered ``decides=True``: ``rules.validate``,
``rules.route``) run again on a copy of the live run's context document, with services that refuse
every AWS call. The live read already covers what the candidate's rules read (the live configuration is
built with the candidate's rule sets as ``shadow``), so nothing more is fetched; the candidate runs
after the response is built and whatever it raises is only its verdict, so neither the answer nor any
write can change.

Both sides are compared per rule set they both tried: the rule that decided, and what that rule (or
the set's default) decides; when those agree but the outcome or target does not (a set only one side
has), the last set that side tried is the one that differs. ``Comparison.counts`` are the event's
metrics (``ShadowEvaluations``; on a difference ``ShadowMismatches`` and ``ShadowMismatch.<rule set>``);
a difference also writes one ``shadow_mismatch`` log line with the rules, outcomes, targets and
versions of both sides, and no personal data.

The candidate's time is bounded by the caller (``runtime.app``, ``engine.timebox``): a candidate cut off
is counted as ``ShadowTimeouts`` and written as one WARNING ``shadow_timeout`` line (``log_timeout``); one whose
evaluation failed (a bug of its own) is counted as ``ShadowFailures``, so that no candidate looks agreeing unevaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from engine import registry
from engine.clock import SystemClock
from engine.config import AppConfig
from engine.context import Context, RuleTrace, Services
from engine.errors import INTERNAL_ERROR, PipelineError
from engine.rules import Decision, RuleError, RuleSet, decided_rules
from engine.runner import PlannedStep, RunResult
from engine.secrets import SecretCache

__all__ = [
    "EVALUATIONS",
    "FAILURES",
    "MISMATCHES",
    "TIMED_OUT",
    "TIMEOUTS",
    "Comparison",
    "ShadowPlan",
    "Verdict",
    "compare",
    "log_mismatch",
    "log_timeout",
    "mismatch_metric",
    "plan",
    "reaches",
]

logger = logging.getLogger("runtime.shadow")

ROUTED, PASSED = "ROUTED", "PASSED"
_ENDED = frozenset({"ok", "skipped", "stopped"})
Label = tuple[str | None, str]
# The names of the shadow metrics (tools.shadow_record reads them back from CloudWatch).
EVALUATIONS, MISMATCHES, TIMEOUTS, FAILURES = (
    "ShadowEvaluations",
    "ShadowMismatches",
    "ShadowTimeouts",
    "ShadowFailures",
)
# The event's metrics when the candidate ran out of time: no verdict, so no ShadowEvaluations either.
TIMED_OUT = {TIMEOUTS: 1}
# ... and when its evaluation failed: no verdict either.
FAILED = {FAILURES: 1}


def mismatch_metric(ruleset: str) -> str:
    """The metric counting the events on which ``ruleset`` decided otherwise in the candidate."""
    return f"ShadowMismatch.{ruleset}"


class ShadowCallRefused(RuntimeError):
    """A deciding step tried to reach AWS during shadow evaluation."""


class _NoAws:
    """Every port, refusing every call: a shadow decision must not read or write anything."""

    def __getattr__(self, name: str) -> Any:
        raise ShadowCallRefused(f"shadow evaluation makes no AWS call ({name})")


_SERVICES = Services(
    tables=_NoAws(), queues=_NoAws(), secrets=SecretCache(_NoAws(), SystemClock()), clock=SystemClock()
)


class ShadowPlan(NamedTuple):
    """A configuration's deciding steps, what they read, and each rule's decision as a comparable label."""

    version: str
    source: str
    steps: tuple[PlannedStep, ...]
    inputs: frozenset[str]
    requires: frozenset[str]
    labels: Mapping[tuple[str, str | None], str]


class Verdict(NamedTuple):
    """What one side decided: the outcome (an error code, ROUTED or PASSED), the target, and per set the rule."""

    outcome: str
    target: str | None
    rules: Mapping[str, str | None]

    def as_log(self, side: ShadowPlan) -> dict[str, Any]:
        """The verdict as a log line shows it."""
        shown: dict[str, Any] = {"version": side.version}
        if side.source:
            shown["source"] = side.source
        return {**shown, "outcome": self.outcome, "target": self.target, "rules": dict(self.rules)}


class Comparison(NamedTuple):
    """Both verdicts, and the rule sets that decided differently."""

    live: Verdict
    candidate: Verdict
    differing: tuple[str, ...]

    @property
    def counts(self) -> dict[str, int]:
        """The event's shadow metrics."""
        if not self.differing:
            return {EVALUATIONS: 1}
        return {EVALUATIONS: 1, MISMATCHES: 1, **{mismatch_metric(name): 1 for name in self.differing}}


def _label(decision: Decision | None) -> str:
    if decision is None:
        return "none"
    if decision.error:
        return f"error {decision.error} {decision.reply or ''}"
    if decision.target_from is not None:
        return f"target_from {decision.target_from.source}"
    return f"target {decision.target}"


def _labels(rulesets: Mapping[str, RuleSet]) -> dict[tuple[str, str | None], str]:
    labels: dict[tuple[str, str | None], str] = {}
    for name, ruleset in rulesets.items():
        labels[(name, None)] = _label(ruleset.default)
        for rule in ruleset.rules:
            labels[(name, rule.id)] = _label(rule.then)
    return labels


def plan(config: AppConfig) -> ShadowPlan:
    """The deciding steps of ``config`` and what they need, computed once per deployment."""
    steps = config.pipeline.steps()
    deciding = [index for index, step in enumerate(steps) if (spec := registry.get(step.uses)) and spec.decides]
    first = deciding[0] if deciding else len(steps)
    spec = registry.get(steps[first].uses) if deciding else None
    return ShadowPlan(
        config.version,
        config.source,
        tuple(steps[index] for index in deciding),
        frozenset(step.provides for step in steps[:first] if step.provides),
        frozenset(spec.requires if spec else ()),
        _labels(config.rulesets),
    )


def _live(side: ShadowPlan, result: RunResult) -> Verdict:
    statuses = {entry.step: entry.status for entry in result.trace}
    outcome, target = PASSED, None
    for step in side.steps:
        status = statuses.get(step.id, "skipped")
        if status not in _ENDED:
            outcome = status
            break
        output = result.doc.get(step.provides) if step.provides else None
        if isinstance(output, Mapping) and output.get("target"):
            outcome, target = ROUTED, output["target"]
    # A failing condition decided (INTERNAL_ERROR), as the candidate records it.
    return Verdict(outcome, target, decided_rules(result.rules, result.error))


def _candidate(side: ShadowPlan, document: Mapping[str, Any]) -> Verdict:
    ctx = Context(event=None, services=_SERVICES, deadline=float("inf"))
    ctx.doc = {key: value for key, value in document.items() if key in side.inputs}
    outcome, target = PASSED, None
    for step in side.steps:
        try:
            if step.when is not None and not step.when.test(ctx.doc):
                continue
            result = step.step.run(ctx)
        except PipelineError as exc:
            outcome = exc.code
            break
        except RuleError as exc:
            # The rule whose condition failed decided: as in the live run, the event ends INTERNAL_ERROR.
            ctx.rules.append(RuleTrace(exc.ruleset, exc.rule, True))
            outcome = INTERNAL_ERROR
            break
        except Exception:  # noqa: BLE001 - a candidate's failure is its verdict, never the live answer's
            outcome = INTERNAL_ERROR
            break
        output = result.output
        if output is not None and step.provides:
            ctx.doc[step.provides] = dict(output)
            if output.get("target"):
                outcome, target = ROUTED, output["target"]
        if result.stop:
            break
    return Verdict(outcome, target, decided_rules(ctx.rules))


def reaches(candidate: ShadowPlan, result: RunResult) -> bool:
    """Whether the live run reached the candidate's deciding steps: only such an event is decided again.

    Its trace must show one (ran or skipped), not only the document hold their input: a parse step names the channel
    in ``request`` before it refuses a request.
    """
    deciding = {step.id for step in candidate.steps}
    return candidate.requires <= result.doc.keys() and any(entry.step in deciding for entry in result.trace)


def compare(live: ShadowPlan, candidate: ShadowPlan, result: RunResult) -> Comparison | None:
    """Decide ``result``'s event again with the candidate; None when the live run never reached its rules."""
    if not reaches(candidate, result):
        return None
    theirs = _candidate(candidate, result.doc)
    ours = _live(live, result)
    differing = tuple(
        name
        for name in theirs.rules
        if name in ours.rules and _decision(live, ours, name) != _decision(candidate, theirs, name)
    )
    if not differing and (ours.outcome, ours.target) != (theirs.outcome, theirs.target):
        # A set only one side has decided it (say, a new validation set): the last set that side tried.
        differing = tuple(theirs.rules)[-1:] or tuple(ours.rules)[-1:]
    return Comparison(ours, theirs, differing)


def _decision(side: ShadowPlan, verdict: Verdict, ruleset: str) -> Label:
    rule = verdict.rules[ruleset]
    return rule, side.labels.get((ruleset, rule), "unknown")


def log_mismatch(pipeline: str, live: ShadowPlan, candidate: ShadowPlan, comparison: Comparison) -> None:
    """The one log line of an event the candidate decided otherwise."""
    logger.info(
        "shadow_mismatch",
        extra={
            "pipeline": pipeline,
            "rulesets": list(comparison.differing),
            "live": comparison.live.as_log(live),
            "candidate": comparison.candidate.as_log(candidate),
        },
    )


def log_timeout(pipeline: str, candidate: ShadowPlan, budget_ms: float) -> None:
    """The one log line of an event the candidate could not decide within ``budget_ms``."""
    logger.warning(
        "shadow_timeout",
        extra={
            "pipeline": pipeline,
            "budget_ms": budget_ms,
            "candidate": {"version": candidate.version, "source": candidate.source},
        },
    )
