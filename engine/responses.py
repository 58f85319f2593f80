"""The one place that turns a run's outcome into an answer, per family of channels, from configuration.

A pipeline's ``responses:`` block groups its channels into families; each family names a format, the
status code of each error code and whether a transient fault raises (``RetryableFailure``, so that the
caller retries) or is answered. Formats are registered by plugins (``register_format``); ``json`` is
built in: ``{"status": "ok", "outcome"}`` on success, ``{"status": "error", "error_code", "message"}``
with the family's status code on an error. An ``INTERNAL_ERROR``'s message is a fixed text: what failed, and where,
is for the function's log, not for whoever posted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from engine.errors import INTERNAL_ERROR, RetryableFailure
from engine.runner import RunResult

__all__ = ["Answer", "ResponseFamily", "ResponsePolicy", "formats", "register_format"]


class Answer(NamedTuple):
    """An HTTP answer: status code, headers and body text."""

    status: int
    headers: Mapping[str, str]
    body: str


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


Renderer = Callable[[RunResult, ResponseFamily], Answer]
_JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}


def _json(result: RunResult, family: ResponseFamily) -> Answer:
    error = result.error
    if error is None:
        return Answer(200, _JSON_HEADERS, json.dumps({"status": "ok", "outcome": result.outcome}))
    message = "unexpected error; the function's log has the details" if error.code == INTERNAL_ERROR else error.message
    body = {"status": "error", "error_code": error.code, "message": message}
    return Answer(family.status.get(error.code, family.default_status), _JSON_HEADERS, json.dumps(body))


_FORMATS: dict[str, Renderer] = {"json": _json}


def register_format(name: str, renderer: Renderer) -> None:
    """Make ``format: name`` available to response families."""
    if _FORMATS.get(name, renderer) is not renderer:
        raise ValueError(f"response format {name!r} is already registered")
    _FORMATS[name] = renderer


def formats() -> list[str]:
    """Every registered format name, sorted."""
    return sorted(_FORMATS)


class ResponsePolicy:
    """Maps a RunResult and the request's channel to an answer (or a raise)."""

    def __init__(self, families: list[ResponseFamily]) -> None:
        self._by_channel = {channel: family for family in families for channel in family.channels}
        self._default = next((family for family in families if family.default), None)

    def family_for(self, channel: str | None) -> ResponseFamily:
        """The family answering ``channel`` (the default family for unknown channels)."""
        family = self._by_channel.get(channel or "") or self._default
        if family is None:
            raise LookupError(f"no response family for channel {channel!r} and no default family")
        return family

    def respond(self, result: RunResult, channel: str | None) -> Answer:
        """The answer for ``result``, in the format of ``channel``'s family (``family_for``).

        Raises RetryableFailure where the family raises on transient faults.
        """
        family = self.family_for(channel)
        error = result.error
        if error is not None and result.transient and family.raise_transient:
            raise RetryableFailure(error.code, error.message)
        return _FORMATS[family.format](result, family)
