"""The ``twiml`` response format: what Twilio's messaging webhooks expect back.

Success and final errors answer ``200 text/xml`` with an empty ``<Response />``; an error whose rule
gave a reply answers with one ``<Message>`` holding it. twilio's TwiML module is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.errors import StepFailure
from engine.responses import Answer, ResponseFamily, register_format
from engine.runner import RunResult

__all__ = ["twiml_answer", "twiml_text"]

_HEADERS: Mapping[str, str] = {"Content-Type": "text/xml"}
_empty: str | None = None


def twiml_text(reply: str | None) -> str:
    """The TwiML document: empty, or one message."""
    global _empty
    if reply is None and _empty is not None:
        return _empty
    from twilio.twiml.messaging_response import MessagingResponse

    response = MessagingResponse()
    if reply is None:
        _empty = str(response)
        return _empty
    response.message(reply)
    return str(response)


def twiml_answer(result: RunResult, family: ResponseFamily) -> Answer:
    """``200 text/xml``: the rule's reply for a business error that has one, else the empty response."""
    error = result.error
    reply = error.reply if isinstance(error, StepFailure) else None
    return Answer(200, _HEADERS, twiml_text(reply))


register_format("twiml", twiml_answer)
