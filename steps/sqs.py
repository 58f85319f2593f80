"""``sqs.send``: send the trigger (channel queue) or the full context (handoff queue)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from engine.context import Context, StepResult
from engine.errors import ErrorSpec, StepFailure, TransientFault
from engine.ports import ServiceError
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.conversations import whole_conversation
from steps.support import json_text, safe_copy, service_failure, utf8_prefix

__all__ = ["QUEUE_ERROR", "QUEUE_TRANSIENT", "SendMessage", "handoff_body", "trigger_body"]

QUEUE_ERROR = ErrorSpec(
    "QUEUE_ERROR", description="the queue refused the message, or it is too large", loses_message=True
)
QUEUE_TRANSIENT = ErrorSpec("QUEUE_TRANSIENT_ERROR", transient=True, description="the queue did not answer")

SQS_LIMIT_BYTES = 256 * 1024

logger = logging.getLogger("steps.sqs")


def trigger_body(doc: Mapping[str, Any]) -> str:
    """The channel-queue trigger: exactly the contract's text, the conversation id and the user's number."""
    credential = doc["credential"]
    return json.dumps(
        {"conversation_id": credential["conversation_id"], "primary_channel": credential["primary_channel"]}
    )


# SQS accepts #x9 #xA #xD, #x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF. json.dumps already escapes
# the control characters; what is left (U+FFFE, U+FFFF, lone surrogates) is escaped here too.
_SQS_REJECTS = re.compile(r"[\ufffe\uffff\ud800-\udfff]")


def _encode(value: Any, exact: bool) -> str:
    """The message text; ``exact``: whether ``value`` holds an ``ExactFloat`` (written with all its digits)."""
    text = json_text(value, exact=exact, ensure_ascii=False, separators=(",", ":"))
    return _SQS_REJECTS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _encoded_size(value: Any, exact: bool) -> int:
    return len(_encode(value, exact).encode("utf-8"))


def _cut_body(body: dict[str, Any], limit: int, exact: bool) -> int:
    """Cut ``body["body"]`` until the message is within ``limit`` bytes, marking it truncated; the new size.

    ``body_bytes`` stays the whole text's size when the parse step had already cut it.
    """
    text = body["body"]
    body["body_truncated"] = True
    body["body_bytes"] = max(int(body.get("body_bytes") or 0), len(text.encode("utf-8", "surrogatepass")))
    size = _encoded_size(body, exact)
    while size > limit and body["body"]:
        # The encoded text shrinks by at least as many bytes as the raw text, so this ends within a few rounds.
        kept = len(body["body"].encode("utf-8", "surrogatepass")) - (size - limit)
        body["body"] = utf8_prefix(body["body"], kept)[0]
        size = _encoded_size(body, exact)
    logger.info("handoff body truncated", extra={"decision": f"text of {body['body_bytes']} bytes cut to fit"})
    return size


def handoff_body(doc: Mapping[str, Any], limit: int = SQS_LIMIT_BYTES) -> str:
    """The full context, JSON-safe, within ``limit`` bytes: the oldest history is dropped first, then the text cut.

    History that is not a list (JSON text, a map) is emptied whole where entries of a list would be dropped.
    """
    request, credential = doc["request"], doc["credential"]
    # exact: whether it holds numbers a float cannot hold (rare): only then are they marked for the text.
    conversation, exact = safe_copy(doc.get("conversation") or {})
    body = {
        "conversation_id": credential["conversation_id"],
        "message_sid": request["message_sid"],
        "channel_type": request["channel"],
        "primary_channel": credential["primary_channel"],
        "body": request["body"],
        "received_at": request["received_at"],
        "request": request["fields"],
        "conversation": conversation,
    }
    if request.get("body_truncated"):
        body["body_truncated"] = True
        body["body_bytes"] = request["body_bytes"]
    size = _encoded_size(body, exact)
    history = conversation.get("messages")
    if size > limit and isinstance(history, list) and history:
        # Sizes per entry let us find how many of the oldest to drop without re-encoding each time.
        excess = size - limit
        dropped = 0
        while dropped < len(history) and excess > 0:
            excess -= _encoded_size(history[dropped], exact) + 1
            dropped += 1
        conversation["messages"] = history[dropped:]
        size = _encoded_size(body, exact)
        while size > limit and conversation["messages"]:
            conversation["messages"] = conversation["messages"][1:]
            size = _encoded_size(body, exact)
    if size > limit and isinstance(history, (str, dict)) and history:
        # A history another service keeps as JSON text or a map has no entries to drop oldest first: it is given up
        # whole (left empty, of its type), still before the message's own text.
        conversation["messages"] = type(history)()
        size = _encoded_size(body, exact)
    if size > limit and isinstance(body["body"], str) and body["body"]:
        size = _cut_body(body, limit, exact)
    if size > limit:
        raise StepFailure(
            QUEUE_ERROR.code, f"handoff message is {size} bytes even without history or text; limit {limit}"
        )
    return _encode(body, exact)


_BODIES = {"trigger": (trigger_body, "QUEUED"), "handoff": (handoff_body, "HANDED_OFF")}


@register(
    "sqs.send",
    provides="sent",
    requires=("request", "credential", "route"),
    iam=(IamGrant(("sqs:SendMessage",), (Resource("queue"),)),),
    errors=(QUEUE_ERROR, QUEUE_TRANSIENT),
    deadline_code=QUEUE_TRANSIENT.code,
)
class SendMessage:
    """Send the routed message: a trigger (QUEUED) or the full handoff context (HANDED_OFF)."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        pass

    def run(self, ctx: Context) -> StepResult:
        route = ctx.doc["route"]
        build, outcome = _BODIES[route["message"]]
        if route["message"] == "handoff":
            whole_conversation(ctx)  # the handoff carries the whole item, even when the rules read only part of it
            if ctx.time_left() <= 0:
                # That read was a call of its own: no AWS call starts once the budget is spent (T <= D + 2B).
                raise TransientFault(QUEUE_TRANSIENT.code, "time budget spent before the handoff send")
        body = build(ctx.doc)
        try:
            message_id = ctx.services.queues.send_message(route["queue_url"], body, int(route["delay_seconds"]))
        except ServiceError as exc:
            raise service_failure(exc, QUEUE_TRANSIENT.code, QUEUE_ERROR.code, "send") from None
        return StepResult(
            output={"message_id": message_id, "target": route["target"]}, outcome=outcome, decision=outcome
        )
