"""``trigger.lock``: the conversation's trigger lease; only its holder sends the trigger.

The lock is a lease: a row per conversation, taken when absent, expired, or already held by this same
message (a retry). Once taken, a compensation releases it (conditional on the holder) if anything later
fails, so the retry of the delivery can trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.conditions import AnyOf, AttributeEquals, AttributeLessThan, AttributeNotExists
from engine.context import Context, StepResult
from engine.errors import ErrorSpec, TransientFault
from engine.ports import ServiceError
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.support import service_failure, table_name

__all__ = ["LOCK_ERROR", "LOCK_TRANSIENT", "TriggerLock"]

LOCK_ERROR = ErrorSpec("TRIGGER_LOCK_WRITE_ERROR", description="the lock table refused the write")
LOCK_TRANSIENT = ErrorSpec(
    "TRIGGER_LOCK_TRANSIENT_ERROR", transient=True, description="the lock write (or its release) did not answer"
)


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
            "table": {"type": "string"},
            "ttl_buffer_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
        },
    },
    example={"table": "lock", "ttl_buffer_seconds": 60},
)
class TriggerLock:
    """Take the conversation's trigger lease; when another message holds it, end as BATCHED."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = table_name(params, info, "lock")
        self._buffer = int(params.get("ttl_buffer_seconds", 60))

    def run(self, ctx: Context) -> StepResult:
        conversation_id = ctx.doc["credential"]["conversation_id"]
        holder = ctx.doc["request"]["message_sid"]
        now = int(ctx.services.clock.now().timestamp())
        expires_at = now + int(ctx.doc["route"]["delay_seconds"]) + self._buffer
        condition = AnyOf(
            (
                AttributeNotExists("conversation_id"),
                AttributeLessThan("expires_at", now),
                AttributeEquals("message_sid", holder),
            )
        )
        tables = ctx.services.tables
        item = {"conversation_id": conversation_id, "message_sid": holder, "expires_at": expires_at}

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
            if exc.transient:
                # A timed-out write may still have been applied: release it (conditional on the holder).
                ctx.on_failure("release trigger lock", release)
            raise service_failure(exc, LOCK_TRANSIENT.code, LOCK_ERROR.code, "trigger lock") from None
        if not acquired:
            return StepResult(
                output={"acquired": False}, outcome="BATCHED", stop=True, decision="held by another message"
            )
        ctx.on_failure("release trigger lock", release)
        return StepResult(output={"acquired": True, "expires_at": expires_at}, decision="acquired")
