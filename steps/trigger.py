"""``trigger.lock`` and ``trigger.sent``: the conversation's trigger lease; only its holder sends the trigger.

The lock is a lease: a row per conversation, taken when absent, expired, or already held by this same message
(a retry). Once taken, a compensation releases it (conditional on the holder) if anything later fails, so the
retry of the delivery can trigger. A message that finds the lock held ends as BATCHED, which must mean that a
trigger is pending and will find its stage row. So the lock is also taken over when:

- the holder's trigger is due (``trigger_due_at``, written by ``trigger.sent`` alongside the send) within
  ``due_margin_seconds``: a consumer may read the batch before this message's stage row lands (the margin
  covers the longest stage write, one bounded call), so this message sends a trigger of its own;
- the holder never marked it sent (the mark failed, or the holder died) and its trigger, if sent at all, may be
  due within the margin: a trigger is sent right after the lock is taken, so it is due at ``taken_at + W`` at the
  earliest, and the lock is taken over once that is within ``due_margin_seconds``; or, whichever comes first,
  ``orphan_after_seconds`` after it was taken (the holder died between the lock and the send: its invocation
  ends well before that, and its retry may never come).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.conditions import AllOf, AnyOf, AttributeEquals, AttributeLessThan, AttributeNotExists, Condition
from engine.context import Context, StepResult
from engine.errors import ErrorSpec, TransientFault
from engine.ports import ServiceError
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.support import declare_table_key, epoch_exact, on_failure, service_failure, table_name

__all__ = ["LOCK_ERROR", "LOCK_TRANSIENT", "TriggerLock", "TriggerSent", "acquire_condition"]

LOCK_ERROR = ErrorSpec("TRIGGER_LOCK_WRITE_ERROR", description="the lock table refused the write", loses_message=True)
LOCK_TRANSIENT = ErrorSpec(
    "TRIGGER_LOCK_TRANSIENT_ERROR", transient=True, description="the lock write (or its release) did not answer"
)
DUE = "trigger_due_at"


def acquire_condition(holder: str, now: Decimal, *, window: int, due_margin: int, orphan_after: int) -> Condition:
    """When ``holder`` may take the lock at ``now``, for a trigger delayed by ``window`` seconds.

    ``now`` is in epoch seconds with its fraction (``epoch_exact``): a lease has ended once its ``expires_at`` is
    below it, or when it has none, and a trigger due within ``due_margin`` of it is due within the margin even
    when the current whole second is not.

    An unmarked lock's trigger is due at ``taken_at + window`` at the earliest: it is taken over once that is
    within ``due_margin``, or ``orphan_after`` after it was taken, whichever is sooner. With a window shorter than
    the margin every lock this version took is taken over; one in the contract's shape only once it expires.
    """
    lease_over = (
        AttributeNotExists("conversation_id"),
        AttributeLessThan("expires_at", now),
        # A row without a lease end (another writer's) would be held for ever: TTL never deletes it.
        AttributeNotExists("expires_at"),
        AttributeEquals("message_sid", holder),
    )
    if window < due_margin:
        # Any trigger may be read before this message's row lands: a lock this version took (it carries
        # ``taken_at``, at most clock skew ahead) is never batched behind. A row without it, in the contract's
        # shape (an older version's, another writer's), is the contract's lease: held until it expires.
        return AnyOf((*lease_over, AttributeLessThan("taken_at", now + orphan_after)))
    unmarked_since = now - min(orphan_after, window - due_margin)
    return AnyOf(
        (
            *lease_over,
            AttributeLessThan(DUE, now + due_margin),
            AllOf((AttributeNotExists(DUE), AttributeLessThan("taken_at", unmarked_since))),
        )
    )


_TABLE = {"table": {"type": "string"}}
declare_table_key("lock", ("conversation_id",), expires=True, written_at="taken_at")


@register(
    "trigger.lock",
    provides="lock",
    requires=("request", "credential", "route"),
    iam=(IamGrant(("dynamodb:PutItem", "dynamodb:DeleteItem"), (Resource("table", "table", "lock"),)),),
    errors=(LOCK_ERROR, LOCK_TRANSIENT),
    deadline_code=LOCK_TRANSIENT.code,
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **_TABLE,
            "ttl_buffer_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
            "due_margin_seconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": 900,
                "description": "A lock whose trigger is due within this many seconds is taken over (at least the "
                "longest stage write; default 5).",
            },
            "orphan_after_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": 3600,
                "description": "A lock never marked sent is taken over this long after it was taken (longer than "
                "an invocation; default 15), or sooner, once a trigger sent when it was taken would be due within "
                "due_margin_seconds.",
            },
        },
    },
    example={"table": "lock", "ttl_buffer_seconds": 60},
)
class TriggerLock:
    """Take the conversation's trigger lease; when a live holder's trigger is pending, end as BATCHED."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = table_name(params, info, "lock")
        self._buffer = int(params.get("ttl_buffer_seconds", 60))
        self._margin = int(params.get("due_margin_seconds", 5))
        self._orphan = int(params.get("orphan_after_seconds", 15))

    @property
    def due_margin_seconds(self) -> int:
        """A held lock whose trigger is due within this many seconds is taken over (``tools.check`` compares it).

        A message batched behind a trigger is staged alongside: its stage write must land within the margin.
        """
        return self._margin

    def run(self, ctx: Context) -> StepResult:
        conversation_id = ctx.doc["credential"]["conversation_id"]
        holder = ctx.doc["request"]["message_sid"]
        moment = ctx.services.clock.now()
        now = int(moment.timestamp())
        delay = int(ctx.doc["route"]["delay_seconds"])
        expires_at = now + delay + self._buffer
        condition = acquire_condition(
            holder, epoch_exact(moment), window=delay, due_margin=self._margin, orphan_after=self._orphan
        )
        tables = ctx.services.tables
        item = {"conversation_id": conversation_id, "message_sid": holder, "expires_at": expires_at, "taken_at": now}

        def release() -> None:
            # A lock left to a message that sent nothing would swallow the window's trigger: if it
            # cannot be released, the run fails transiently so that the retry re-takes it and sends.
            try:
                tables.delete_item(
                    self._table, {"conversation_id": conversation_id}, AttributeEquals("message_sid", holder)
                )
            except ServiceError as exc:
                message = f"trigger lock release failed: {exc.code}"
                raise TransientFault(LOCK_TRANSIENT.code, message, exc.code) from None

        try:
            acquired = tables.put_item(self._table, item, condition)
        except ServiceError as exc:
            if exc.transient or exc.outcome_unknown:
                # A timed-out (or 5xx) attempt may have been applied, even when a later one was refused for good:
                # release it (conditional on the holder).
                on_failure(ctx, "release trigger lock", release)
            raise service_failure(exc, LOCK_TRANSIENT.code, LOCK_ERROR.code, "trigger lock") from None
        if not acquired:
            return StepResult(
                output={"acquired": False}, outcome="BATCHED", stop=True, decision="held by another message"
            )
        on_failure(ctx, "release trigger lock", release)
        return StepResult(output={"acquired": True, "expires_at": expires_at, "taken_at": now}, decision="acquired")


@register(
    "trigger.sent",
    provides="lock_sent",
    requires=("request", "credential", "route", "lock"),
    iam=(IamGrant(("dynamodb:PutItem",), (Resource("table", "table", "lock"),)),),
    params={"type": "object", "additionalProperties": False, "properties": _TABLE},
    example={"table": "lock"},
)
class TriggerSent:
    """Mark the held lock as sent (``trigger_due_at``), alongside the send; best effort.

    Like the send, it does not start once the time budget is spent. A lock left unmarked (this write failed, or
    did not start) is taken over once a trigger sent when it was taken would be due
    (within the margin), which at worst sends one more trigger: so a failure here is logged in the trace and the
    message still succeeds.
    """

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = table_name(params, info, "lock")

    def run(self, ctx: Context) -> StepResult:
        if ctx.time_left() <= 0:
            # The send beside it refuses to start too: no trigger, so the lock must not say one is due.
            return StepResult(output={"marked": False}, decision="not marked: time budget spent")
        lock, holder = ctx.doc["lock"], ctx.doc["request"]["message_sid"]
        due = int(ctx.services.clock.now().timestamp()) + int(ctx.doc["route"]["delay_seconds"])
        item = {
            "conversation_id": ctx.doc["credential"]["conversation_id"],
            "message_sid": holder,
            "expires_at": lock["expires_at"],
            "taken_at": lock["taken_at"],
            DUE: due,
        }
        try:
            marked = ctx.services.tables.put_item(self._table, item, AttributeEquals("message_sid", holder))
        except ServiceError as exc:
            return StepResult(output={"marked": False}, decision=f"not marked: {exc.code}")
        return StepResult(output={"marked": marked}, decision="marked" if marked else "taken over meanwhile")
