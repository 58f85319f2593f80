"""``rules.validate`` (business rules, first failure wins) and ``rules.route`` (first matching route)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from engine.context import Context, RuleTrace, StepResult
from engine.errors import ErrorSpec, StepFailure, did_you_mean
from engine.registry import BuildInfo, ParamError, register
from engine.rules import Evaluation, RuleError, RuleSet
from engine.schema import EXPECTED, NO_BLANKS

__all__ = ["ROUTING_ERROR", "TARGET_SCHEMA", "VALIDATE_PARAMS", "RouteByRules", "Target", "ValidateRules"]

ROUTING_ERROR = ErrorSpec(
    "ROUTING_ERROR", description="no routing rule matched, or its target has no queue", loses_message=True
)


# A routing target of the pipeline (``targets:``): the queue a decision maps to and how the message is sent.
TARGET_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["queue_url"],
    "additionalProperties": False,
    "properties": {
        "queue_url": {
            "type": "string",
            "description": "SQS queue URL (empty: the target has no queue, and routing to it is a ROUTING_ERROR).",
            # A FIFO queue (``….fifo``) refuses every message without a MessageGroupId, and every delay.
            "pattern": NO_BLANKS + r"(?![\s\S]*\.fifo$)(https?://[^/?#]+(/[^?#]*)?)?$",
            EXPECTED: "an http(s) URL of a standard queue (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME, not .fifo)",
        },
        "delay_seconds": {"type": "integer", "minimum": 0, "maximum": 900},
        "lock": {"type": "boolean", "description": "Take the trigger lock; only the holder sends."},
        "message": {"enum": ["trigger", "handoff"], "description": "Body shape sent to the queue."},
    },
}


# What a computed target gave instead of a name (never the value itself: it may be a number or a person's text).
_KINDS = {
    type(None): "null",
    bool: "true or false",
    int: "a number",
    float: "a number",
    list: "a list",
    dict: "an object",
}


class Target(NamedTuple):
    """A routing target, read from its ``targets:`` entry."""

    name: str
    queue_url: str
    delay_seconds: int
    lock: bool
    message: str

    @classmethod
    def read(cls, name: str, raw: Mapping[str, Any]) -> Target:
        """The target declared as ``raw`` (validated against ``TARGET_SCHEMA``)."""
        delay = raw.get("delay_seconds", 0)
        return cls(
            name=name,
            queue_url=str(raw["queue_url"]),
            delay_seconds=delay if isinstance(delay, int) else 0,
            lock=bool(raw.get("lock", False)),
            message=str(raw.get("message", "trigger")),
        )


_SET_KINDS = ("validation", "routing")  # the kinds rules_schema allows


def _ruleset(info: BuildInfo, name: str, kind: str, path: tuple[Any, ...]) -> RuleSet:
    ruleset = info.rulesets.get(name)
    if ruleset is None:
        known = ", ".join(sorted(info.rulesets)) or "none"
        close = did_you_mean(name, info.rulesets)
        fix = (
            ""
            if close
            else f"; no rules file of this pipeline declares ruleset: {name}: add one (or put back the one removed), "
            "or take the name out of this step"
        )
        raise ParamError(path, f"unknown rule set {name!r}{close}; loaded rule sets: {known}{fix}")
    if ruleset.kind not in _SET_KINDS:  # a kind: missing or misspelt, reported at the rules file
        raise ParamError(path, f"rule set {name!r} has no valid kind", knock_on=True)
    if ruleset.kind != kind:
        raise ParamError(
            path,
            f"rule set {name!r} is a {ruleset.kind} set ({ruleset.file} says kind: {ruleset.kind}); this step needs "
            f"a {kind} set: name a {kind} set here, or correct kind: in that file",
        )
    assert isinstance(ruleset, RuleSet)
    return ruleset


def _evaluate(ruleset: RuleSet, ctx: Context) -> Evaluation:
    """``ruleset`` evaluated over the document; every rule tried goes to ``ctx.rules``, one whose condition failed too.

    The rules above a failed one did not match (the first match wins); the failed one is traced as not matched,
    with the values it read, and the run's RuleError names it as the rule that decided its set.
    """
    try:
        evaluation = ruleset.evaluate(ctx.doc, explain=ctx.explain)
    except RuleError as exc:
        failed = next(index for index, rule in enumerate(ruleset.rules) if rule.id == exc.rule)
        ctx.rules.extend(
            RuleTrace(ruleset.name, rule.id, False, rule.when.inputs(ctx.doc) if ctx.explain else {})
            for rule in ruleset.rules[: failed + 1]
        )
        raise
    ctx.rules.extend(evaluation.tried)
    return evaluation


# The parameters of ``rules.validate``, and of a plugin's step built on ``ValidateRules`` (which reads them).
VALIDATE_PARAMS: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rulesets"],
    "properties": {"rulesets": {"type": "array", "minItems": 1, "items": {"type": "string"}}},
}


@register(
    "rules.validate",
    requires=("request", "conversation"),
    decides=True,
    params=VALIDATE_PARAMS,
    example={"rulesets": ["project_status", "channel", "conversation_lock"]},
)
class ValidateRules:
    """Evaluate validation rule sets in order; the first rule that matches fails the event with its code."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._sets = tuple(
            _ruleset(info, name, "validation", ("rulesets", index)) for index, name in enumerate(params["rulesets"])
        )

    def run(self, ctx: Context) -> StepResult:
        for ruleset in self._sets:
            evaluation = _evaluate(ruleset, ctx)
            decision = evaluation.decision
            if decision is not None and decision.error:
                rule = evaluation.rule.id if evaluation.rule else "default"
                message = decision.message or f"rule {ruleset.name}/{rule} matched"
                raise StepFailure(decision.error, message, decision.reply)
        return StepResult(decision="passed")


@register(
    "rules.route",
    provides="route",
    requires=("request", "conversation"),
    decides=True,
    errors=(ROUTING_ERROR,),
    targets=TARGET_SCHEMA,
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["ruleset"],
        "properties": {"ruleset": {"type": "string"}},
    },
    example={"ruleset": "routing"},
)
class RouteByRules:
    """Pick the routing target with the first matching rule, and map it to its configured queue."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._set = _ruleset(info, params["ruleset"], "routing", ("ruleset",))
        self._targets = {name: Target.read(name, raw) for name, raw in info.targets.items()}

    def run(self, ctx: Context) -> StepResult:
        evaluation = _evaluate(self._set, ctx)
        if evaluation.decision is None:
            # error_cause says what to repair (the event line's rules.<set> names the rule), never a value.
            cause = f"{self._set.name}:no-match"
            raise StepFailure(
                ROUTING_ERROR.code, f"no rule of {self._set.name} matched and it has no default", cause=cause
            )
        decision = evaluation.decision
        rule = evaluation.rule.id if evaluation.rule else "default"
        # A computed target is evaluated once: its value names the target, or its kind explains the error.
        computed = decision.target_from if decision.target is None else None
        value = computed.search(ctx.doc) if computed is not None else decision.target
        name = value if isinstance(value, str) else None
        target = self._targets.get(name or "")
        if target is None and computed is not None:
            # What it gave is the event's or the item's data: its kind is said, never the value.
            gave = "text" if name is not None else _KINDS.get(type(value), "a value")
            choices = ", ".join(sorted(self._targets))
            message = f"target_from {computed.source} of rule {rule!r} gave {gave}, not the name of a target"
            cause = f"{self._set.name}:not-a-target"
            raise StepFailure(ROUTING_ERROR.code, f"{message}; it must give one of: {choices}", cause=cause)
        if target is None or not target.queue_url:
            which = f"routing target {name!r}" if target else "the routing decision named no target of the pipeline: it"
            raise StepFailure(
                ROUTING_ERROR.code, f"{which} has no configured queue", cause=f"{self._set.name}:no-queue"
            )
        output = {
            "target": target.name,
            "queue_url": target.queue_url,
            "delay_seconds": target.delay_seconds,
            "lock": target.lock,
            "message": target.message,
            "rule": rule,
        }
        return StepResult(output=output, decision=f"{target.name} ({rule})")
