"""``replay.record`` and ``replay.refusals``: a record of each accepted (or refused) message id, against replays.

Twilio's signatures carry no timestamp: a request captured once is valid forever. A record per accepted
``MessageSid`` lives for at least ``horizon_seconds`` (DynamoDB TTL on ``expires_at``); a request for a recorded
message is a replay once ``replay_after`` has passed. Until then it is taken for Twilio's own retry of a
delivery that failed or died (Twilio makes every attempt within 15 s), and handled as a re-delivery.

The record is written with the stage row and the trigger lock (one parallel group: no extra round trip) and
only if absent, so ``replay_after`` is that of the first acceptance and replays cannot push it back. Every write
carries ``writer``, an id drawn for the run (``Services.ids``): a record is its writer's, as a lock is its
holder's, and a release deletes only a record carrying its own run's ``writer``. If the run then fails, the record
it wrote is released with the lock, so the retry (or a replay after a repair) completes the message. A write that
failed with its outcome unknown (a timeout, a lost or 5xx answer: ``ServiceError.outcome_unknown``) is released
the same way; one refused with an error answer (throttling) wrote nothing and releases nothing.

A repeat that found the message recorded never releases the record (a failed re-delivery must not reopen an
accepted message to replays). If it succeeds, it takes the record over (``Context.on_success``: one more write,
on re-deliveries only): it writes the record as its own, keeping the ``replay_after`` that ``conversations.get``
read (``READ_RECORD``; its own when the record landed after that read, a moment ago). So the first attempt, still
running on another container when Twilio's retry completed the message, cannot release the record when it fails
later, nor leave the message unrecorded if it released it already. A takeover that fails is logged and leaves the
record as it was.

With ``until: confirmed`` (for providers that retry late, over days, as SendGrid does) time plays no part: the
record is written ``pending`` (a repeat is a re-delivery, so the retry of a run that died completes the message)
and marked ``confirmed`` once the run has succeeded (``Context.on_success``; a repeat is then a replay). Any run
that succeeded confirms, whoever wrote the record, and writes it afresh if a failed run released it meanwhile; a
release deletes a record only while it is pending, so a confirmed record is never deleted. That is one more write
after the run, and a confirmation that fails leaves the record as it was (logged): a replay of that one message is
then handled as a re-delivery, as without a record.

A message the rules refuse (a locked conversation, a paused project) is recorded too, by ``replay.refusals``: a
capture of it replayed once the conversation changed would otherwise be decided afresh, and accepted. It costs a
write on the refusal path only, after the answer is decided; a message lost to a fault is never recorded this way,
so a replay after the repair still completes it. With ``until: confirmed`` (SendGrid, which never retries a 4xx) the
refusal's record is written confirmed: every repeat of the refused post is a replay at once. A transient fault is
never recorded this way (the provider's retry must complete the message).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from engine import registry
from engine.conditions import AllOf, AnyOf, AttributeEquals, AttributeNotExists
from engine.context import Context, StepResult
from engine.errors import CODE_PATTERN, ENGINE_ERRORS, StepFailure, TransientFault
from engine.ports import ServiceError
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.stage import STAGE_ERROR, STAGE_TRANSIENT
from steps.support import declare_table_key, on_failure, on_success, service_failure, table_name

__all__ = ["KEY", "READ_RECORD", "REPLAY", "WRITER", "ReplayRecord", "ReplayRefusals", "replay_of", "rule_refusals"]

logger = logging.getLogger("steps.replay")

KEY = "message_sid"
declare_table_key("replay", (KEY,), expires=True)
# The attribute naming the run that wrote a record (its id from ``Services.ids``): only that run releases it.
WRITER = "writer"
# Where ``conversations.get`` leaves the record it read (``Context.private``), for a takeover to keep its times.
READ_RECORD = "replay_record_read"
# The success outcome of a replay: answered as any success (Twilio: empty TwiML), nothing written or sent.
REPLAY = "REPLAY"
# The states of a record kept ``until: confirmed``.
PENDING, CONFIRMED = "pending", "confirmed"


def replay_of(record: Mapping[str, Any] | None, now: float) -> bool:
    """Whether a request for the message ``record`` (as read, or None) describes is a replay at ``now``.

    A confirmed record counts from its confirmation, to the millisecond: a request received before it (the
    delivery that wrote it, replayed by ``pipeline-dryrun`` at its arrival time) is not a replay of itself.
    """
    if record is None or record.get("state") == PENDING:
        return False
    if record.get("state") == CONFIRMED:
        return _at_or_before(record.get("confirmed_at_ms"), now * 1000)
    return _at_or_before(record.get("replay_after"), now)


def _at_or_before(value: Any, limit: float) -> bool:
    """Whether ``value`` is at or before ``limit``; a missing or unreadable value counts as long past."""
    try:
        return value is None or float(value) <= limit
    except (TypeError, ValueError):
        return True


def rule_refusals(rulesets: Mapping[str, Any]) -> frozenset[str]:
    """The codes ``rulesets`` decide that are final refusals: none a step or the engine calls transient or lossy."""
    unsafe = {
        error.code
        for errors in (ENGINE_ERRORS, *(spec.errors for spec in registry.specs()))
        for error in errors
        if error.transient or error.loses_message
    }
    decided = {
        decision.error
        for ruleset in rulesets.values()
        for decision in (*(rule.then for rule in ruleset.rules), ruleset.default)
        if decision is not None and decision.error
    }
    return frozenset(decided - unsafe)


# The parameters of both steps' records: where they are, how long they live, how long a repeat is a retry.
_RECORD_PARAMS: dict[str, Any] = {
    "table": {"type": "string", "description": "The logical table (under tables:) of the records."},
    "horizon_seconds": {
        "type": "integer",
        "minimum": 3600,
        "maximum": 31536000,
        "description": "How long a record lives at least (its TTL): replays inside it are refused.",
    },
    "retry_grace_seconds": {
        "type": "integer",
        "minimum": 15,
        "maximum": 600,
        "description": "For this long after acceptance a repeated request is taken for Twilio's retry "
        "(Twilio makes every attempt within 15 s) and handled as a re-delivery.",
    },
}


class _Records:
    """Where a step keeps its records and how long they last (the ``_RECORD_PARAMS``)."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = table_name(params, info, "replay", optional=True)  # empty: records are off
        self._horizon = int(params.get("horizon_seconds", 604800))
        self._grace = int(params.get("retry_grace_seconds", 30))

    @property
    def replay_horizon_seconds(self) -> int | None:
        """How long a record lives at least (None: records are off); ``runtime.verify`` holds signatures to it."""
        return self._horizon if self._table else None

    def _item(self, sid: str, moment: float, writer: str, *, pending: bool = False) -> dict[str, Any]:
        """A record of ``sid`` written at ``moment`` (epoch seconds) by the run ``writer``.

        A repeat is a replay after the grace or, for a ``pending`` record, once the record is confirmed. The grace
        counts from the acceptance's next whole second: from its own second, a repeat up to a second inside the
        grace would be a replay.
        """
        now = int(moment)
        item: dict[str, Any] = {KEY: sid, WRITER: writer, "recorded_at": now, "expires_at": now + self._horizon}
        item.update({"state": PENDING} if pending else {"replay_after": math.ceil(moment) + self._grace})
        return item

    def _confirmed_item(self, sid: str, moment: float, writer: str) -> dict[str, Any]:
        """A record of ``sid`` confirmed at ``moment`` (epoch seconds) by ``writer``: every repeat is a replay."""
        now = int(moment)
        return {
            KEY: sid,
            WRITER: writer,
            "recorded_at": now,
            "state": CONFIRMED,
            "confirmed_at_ms": int(moment * 1000),
            "expires_at": now + self._horizon,
        }


@register(
    "replay.record",
    provides="replay",
    requires=("request",),
    iam=(IamGrant(("dynamodb:PutItem", "dynamodb:DeleteItem"), (Resource("table", "table", "replay"),)),),
    errors=(STAGE_ERROR, STAGE_TRANSIENT),
    deadline_code=STAGE_TRANSIENT.code,
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **_RECORD_PARAMS,
            "until": {
                "enum": ["grace", "confirmed"],
                "description": "grace (default): a repeat after retry_grace_seconds is a replay. confirmed: a "
                "repeat is a re-delivery until the run that wrote the record has succeeded, a replay after (one "
                "more write per message; for providers that retry late).",
            },
        },
    },
    example={"table": "replay", "horizon_seconds": 604800, "retry_grace_seconds": 30},
)
class ReplayRecord(_Records):
    """Record the accepted MessageSid (once); the run that wrote the record releases it if it fails afterwards."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        super().__init__(params, info)
        self._confirmed = params.get("until") == "confirmed"

    def run(self, ctx: Context) -> StepResult:
        if not self._table:
            return StepResult(decision="replay records are off")
        sid = ctx.doc["request"]["message_sid"]
        writer = ctx.services.ids()
        item = self._item(sid, ctx.services.clock.now().timestamp(), writer, pending=self._confirmed)
        tables = ctx.services.tables
        mine = AttributeEquals(WRITER, writer)
        owned = AllOf((mine, AttributeEquals("state", PENDING))) if self._confirmed else mine

        def release() -> None:
            # A record left behind by a failed run would refuse the retry that completes the message; only this
            # run's own record goes (another run's, or one confirmed, stays).
            try:
                tables.delete_item(self._table, {KEY: sid}, owned)
            except ServiceError as exc:
                raise TransientFault(
                    STAGE_TRANSIENT.code, f"replay record release failed: {exc.code}", exc.code
                ) from None

        try:
            written = tables.put_item(self._table, item, AttributeNotExists(KEY))
        except ServiceError as exc:
            if exc.outcome_unknown:
                on_failure(ctx, "release replay record", release)  # the write may have been applied all the same
            raise service_failure(exc, STAGE_TRANSIENT.code, STAGE_ERROR.code, "replay record") from None
        if written:
            on_failure(ctx, "release replay record", release)
        if self._confirmed:
            on_success(ctx, "confirm replay record", lambda: self._confirm(ctx, sid, writer))
        elif not written:
            on_success(ctx, "take over replay record", lambda: self._take_over(ctx, item))
        return StepResult(output={"recorded": written}, decision="recorded" if written else "already recorded")

    def _take_over(self, ctx: Context, item: Mapping[str, Any]) -> None:
        """Write the record of a message this run completed as its own, with the first acceptance's ``replay_after``.

        Another run's record may be released when that run fails, or may be gone already: this run's stays.
        """
        read = ctx.private.get(READ_RECORD)
        kept = {"replay_after": read["replay_after"]} if read is not None and "replay_after" in read else {}
        ctx.services.tables.put_item(self._table, {**item, **kept})

    def _confirm(self, ctx: Context, sid: str, writer: str) -> None:
        """Mark the message's record confirmed: every later request for it is a replay.

        Any successful run confirms a pending record (the re-delivery that completed a message whose first run
        died, say), or writes it confirmed if a failed run released it meanwhile; a confirmed record stays as it is.
        """
        item = self._confirmed_item(sid, ctx.services.clock.now().timestamp(), writer)
        condition = AnyOf((AttributeNotExists(KEY), AttributeEquals("state", PENDING)))
        ctx.services.tables.put_item(self._table, item, condition)


@register(
    "replay.refusals",
    requires=("request",),
    iam=(IamGrant(("dynamodb:PutItem",), (Resource("table", "table", "replay"),)),),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **_RECORD_PARAMS,
            "codes": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": CODE_PATTERN},
                "description": "Codes to record besides the rules' own refusals, which are always recorded (final "
                "answers, never a code that loses a message).",
            },
            "until": {
                "enum": ["grace", "confirmed"],
                "description": "grace (default): a repeat after retry_grace_seconds is a replay (Twilio retries "
                "within 15 s). confirmed: the refusal is final at once, every repeat is a replay (for providers "
                "that never retry a refusal, as SendGrid does not retry a 4xx).",
            },
        },
    },
    example={"table": "replay", "horizon_seconds": 604800},
)
class ReplayRefusals(_Records):
    """Record a message the rules refuse (or the run ends with one of ``codes``): its capture cannot be replayed.

    Every code a loaded rule set decides is recorded, so a new business code (declared under ``errors:``, decided
    by a rule, perhaps shipped in a rules bundle, which cannot change this step's parameters) is recorded with no
    second edit; a code some step or the engine declares transient or message-losing never is. Placed before the
    rules: it only registers the write, which the runner makes if the run ends in one of the codes (best effort:
    a failed write is logged and the answer stands).
    """

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        super().__init__(params, info)
        self._codes = frozenset(params.get("codes", ())) | rule_refusals(info.rulesets)
        self._final = params.get("until") == "confirmed"

    def run(self, ctx: Context) -> StepResult:
        if self._table:
            on_failure(ctx, "record refused message", lambda: self._record(ctx))
        return StepResult()

    def _record(self, ctx: Context) -> None:
        failure = ctx.failure
        if not isinstance(failure, StepFailure) or failure.code not in self._codes:
            return
        moment, writer = ctx.services.clock.now().timestamp(), ctx.services.ids()
        sid = ctx.doc["request"]["message_sid"]
        item = self._confirmed_item(sid, moment, writer) if self._final else self._item(sid, moment, writer)
        item["refused"] = failure.code
        try:
            ctx.services.tables.put_item(self._table, item, AttributeNotExists(KEY))
        except ServiceError as exc:
            logger.warning("refusal record not written: %s", exc.code)
