"""Staging and triggering: ``stage.write``, ``trigger.lock`` and ``control.finish``.

The trigger lock is a lease: a row per conversation, taken when absent, expired, or already held by
this same ``MessageSid`` (a retry). Once taken, a compensation releases it (conditional on the holder)
if anything later fails, so the retry of the delivery can trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.conditions import AnyOf, AttributeEquals, AttributeLessThan, AttributeNotExists
from engine.context import Context, StepResult
from engine.errors import StepFailure, TransientFault
from engine.ports import AwsCallError
from engine.registry import BuildInfo, register
from steps.conversations import _table

__all__ = ["Finish", "StageWrite", "TriggerLock"]


def _write_error(exc: AwsCallError, transient_code: str, final_code: str, what: str) -> Exception:
    if exc.transient:
        return TransientFault(transient_code, f"{what} failed: {exc.code}")
    return StepFailure(final_code, f"{what} failed: {exc.code}")


@register(
    "stage.write",
    provides="stage",
    requires=("request", "credential"),
    iam=("dynamodb:PutItem",),
    deadline_code="STAGE_WRITE_TRANSIENT_ERROR",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "table": {"type": "string"},
            "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": 31536000},
        },
    },
    example={"table": "stage", "ttl_seconds": 86400},
)
class StageWrite:
    """Write the message to the stage table once per MessageSid (a re-delivery leaves the first row)."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = _table(params, info, "stage")
        self._ttl = int(params.get("ttl_seconds", 86400))

    def run(self, ctx: Context) -> StepResult:
        request, credential = ctx.doc["request"], ctx.doc["credential"]
        item: dict[str, Any] = {
            "conversation_id": credential["conversation_id"],
            "message_sid": request["message_sid"],
            "primary_channel": credential["primary_channel"],
            "channel_type": request["channel"],
            "body": request["body"],
            "num_media": request["num_media"],
            "received_at": request["received_at"],
            "expires_at": int(ctx.services.clock.now().timestamp()) + self._ttl,
        }
        if request["media"]:
            item["media"] = request["media"]
        try:
            written = ctx.services.tables.put_item(self._table, item, AttributeNotExists("message_sid"))
        except AwsCallError as exc:
            raise _write_error(exc, "STAGE_WRITE_TRANSIENT_ERROR", "STAGE_WRITE_ERROR", "stage write") from None
        return StepResult(output={"duplicate": not written}, decision="written" if written else "already staged")


@register(
    "trigger.lock",
    provides="lock",
    requires=("request", "credential", "route"),
    iam=("dynamodb:PutItem", "dynamodb:DeleteItem"),
    deadline_code="TRIGGER_LOCK_TRANSIENT_ERROR",
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
        self._table = _table(params, info, "lock")
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
            except AwsCallError as exc:
                raise TransientFault(
                    "TRIGGER_LOCK_TRANSIENT_ERROR", f"trigger lock release failed: {exc.code}"
                ) from None

        try:
            acquired = tables.put_item(self._table, item, condition)
        except AwsCallError as exc:
            if exc.transient:
                # A timed-out write may still have been applied: release it (conditional on the holder).
                ctx.on_failure("release trigger lock", release)
            raise _write_error(
                exc, "TRIGGER_LOCK_TRANSIENT_ERROR", "TRIGGER_LOCK_WRITE_ERROR", "trigger lock"
            ) from None
        if not acquired:
            return StepResult(
                output={"acquired": False}, outcome="BATCHED", stop=True, decision="held by another message"
            )
        ctx.on_failure("release trigger lock", release)
        return StepResult(output={"acquired": True, "expires_at": expires_at}, decision="acquired")


@register(
    "control.finish",
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["outcome"],
        "properties": {"outcome": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}},
    },
    example={"outcome": "STATUS_CALLBACK"},
)
class Finish:
    """End the run successfully with the given outcome (use with ``when``)."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._outcome = str(params["outcome"])

    def run(self, ctx: Context) -> StepResult:
        return StepResult(outcome=self._outcome, stop=True, decision=self._outcome)
