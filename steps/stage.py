"""``stage.write``: the message's row in the stage table, once per message id (a re-delivery leaves the first row).

A row past its ``expires_at`` is gone for its readers (DynamoDB's TTL deletes it at any moment), and so is one that
expires before the trigger this delivery sends (or is batched under) is read. So a delivery keeps the row it finds
only while that row was written at most ``FIRST_ROW_KEPT_SECONDS`` ago (a copy racing it, Twilio's retries, all
within 15 s); a later one (SendGrid retries for 72 hours, a stage row lives 24) writes the row afresh, so that it
lives ``ttl_seconds`` from this acceptance, as a first delivery's does.

A parse step that cut the body (``request.body_truncated``) has the row say so: ``body_truncated`` and
``body_bytes`` (the whole body's UTF-8 size). Rows of uncut bodies have neither attribute. A request with a
``subject`` (email) has it staged beside the body: people write short emails in the subject line alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.conditions import AnyOf, AttributeLessThan, AttributeNotExists
from engine.context import Context, StepResult
from engine.errors import ErrorSpec
from engine.ports import ServiceError
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.support import declare_table_key, epoch_exact, service_failure, table_name

__all__ = ["STAGE_ERROR", "STAGE_TRANSIENT", "StageWrite"]

STAGE_ERROR = ErrorSpec("STAGE_WRITE_ERROR", description="the stage table refused the write", loses_message=True)
STAGE_TRANSIENT = ErrorSpec("STAGE_WRITE_TRANSIENT_ERROR", transient=True, description="the stage write did not answer")
# A row written this recently (by a copy of this delivery) is left as it is; an older one is written afresh.
FIRST_ROW_KEPT_SECONDS = 60

declare_table_key("stage", ("conversation_id", "message_sid"), expires=True)


@register(
    "stage.write",
    provides="stage",
    requires=("request", "credential"),
    iam=(IamGrant(("dynamodb:PutItem",), (Resource("table", "table", "stage"),)),),
    errors=(STAGE_ERROR, STAGE_TRANSIENT),
    deadline_code=STAGE_TRANSIENT.code,
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
    """Write the message to the stage table once per MessageSid (a re-delivery leaves a row written a moment ago)."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = table_name(params, info, "stage")
        self._ttl = int(params.get("ttl_seconds", 86400))

    def run(self, ctx: Context) -> StepResult:
        request, credential = ctx.doc["request"], ctx.doc["credential"]
        moment = ctx.services.clock.now()
        now = int(moment.timestamp())
        item: dict[str, Any] = {
            "conversation_id": credential["conversation_id"],
            "message_sid": request["message_sid"],
            "primary_channel": credential["primary_channel"],
            "channel_type": request["channel"],
            "body": request["body"],
            "num_media": request["num_media"],
            "received_at": request["received_at"],
            "expires_at": now + self._ttl,
        }
        if request["media"]:
            item["media"] = request["media"]
        if isinstance(subject := request.get("subject"), str) and subject:
            item["subject"] = subject
        if request.get("body_truncated"):
            item["body_truncated"] = True
            item["body_bytes"] = request["body_bytes"]
        try:
            fresh_until = epoch_exact(moment) + max(self._ttl - FIRST_ROW_KEPT_SECONDS, 0)
            absent = AnyOf((AttributeNotExists("message_sid"), AttributeLessThan("expires_at", fresh_until)))
            written = ctx.services.tables.put_item(self._table, item, absent)
        except ServiceError as exc:
            raise service_failure(exc, STAGE_TRANSIENT.code, STAGE_ERROR.code, "stage write") from None
        return StepResult(output={"duplicate": not written}, decision="written" if written else "already staged")
