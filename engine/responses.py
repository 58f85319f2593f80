"""The one place that turns a run's outcome into an HTTP response, per channel family, from configuration.

- ``twiml`` families (the Twilio channels): success and final errors answer ``200 text/xml`` with an
  empty ``<Response/>``; an error whose rule gave a reply answers with one ``<Message>``.
- ``json`` families: ``{"status": "error", "error_code", "message"}`` with the configured status code.
- Transient faults either raise ``RetryableFailure`` (so the caller retries) or answer, per family.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import StepFailure
from engine.runner import RunResult

__all__ = ["HttpResponse", "ResponseFamily", "ResponsePolicy", "RetryableFailure"]


class RetryableFailure(Exception):
    """Raised out of the Lambda handler for transient faults; the text starts with the error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class HttpResponse:
    """A proxy-integration response."""

    status_code: int
    headers: Mapping[str, str]
    body: str

    def to_lambda(self) -> dict[str, Any]:
        """The dict API Gateway expects back from a Lambda proxy integration."""
        return {
            "statusCode": self.status_code,
            "headers": dict(self.headers),
            "body": self.body,
            "isBase64Encoded": False,
        }


@dataclass(frozen=True)
class ResponseFamily:
    """How one family of channels is answered."""

    name: str
    format: str
    channels: frozenset[str] = frozenset()
    default: bool = False
    raise_transient: bool = False
    status: Mapping[str, int] = field(default_factory=dict)
    default_status: int = 500


_TWIML_HEADERS = {"Content-Type": "text/xml"}
_JSON_HEADERS = {"Content-Type": "application/json"}


class ResponsePolicy:
    """Maps a RunResult and the request's channel to a response (or a raise)."""

    def __init__(self, families: list[ResponseFamily]) -> None:
        self._families = families
        self._by_channel = {channel: family for family in families for channel in family.channels}
        self._default = next((family for family in families if family.default), None)
        self._empty_twiml: str | None = None

    def family_for(self, channel: str | None) -> ResponseFamily:
        """The family answering ``channel`` (the default family for unknown channels)."""
        family = self._by_channel.get(channel or "") or self._default
        if family is None:
            raise LookupError(f"no response family for channel {channel!r} and no default family")
        return family

    def respond(self, result: RunResult, channel: str | None) -> HttpResponse:
        """The response for ``result``; raises RetryableFailure where the family raises on transient faults."""
        family = self.family_for(channel)
        error = result.error
        if error is not None and result.transient and family.raise_transient:
            raise RetryableFailure(error.code, error.message)
        if family.format == "twiml":
            reply = error.reply if isinstance(error, StepFailure) else None
            return HttpResponse(200, _TWIML_HEADERS, self._twiml(reply))
        if error is None:
            return HttpResponse(200, _JSON_HEADERS, json.dumps({"status": "ok", "outcome": result.outcome}))
        status = family.status.get(error.code, family.default_status)
        body = {"status": "error", "error_code": error.code, "message": error.message}
        return HttpResponse(status, _JSON_HEADERS, json.dumps(body))

    def _twiml(self, reply: str | None) -> str:
        """The TwiML answer: empty, or one message (twilio's TwiML module is imported on first use)."""
        if reply is None and self._empty_twiml is not None:
            return self._empty_twiml
        from twilio.twiml.messaging_response import MessagingResponse

        response = MessagingResponse()
        if reply is None:
            self._empty_twiml = str(response)
            return self._empty_twiml
        response.message(reply)
        return str(response)
