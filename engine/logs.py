"""Structured JSON logs: one object per line, with the invocation's request and conversation ids.

Log decisions, never data: callers pass step ids, outcomes, codes and durations in ``extra``; this
formatter emits only the fields it knows, so a stray ``extra`` cannot leak a body or a number.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache

__all__ = ["JsonFormatter", "bind", "loggable_conversation_id", "setup_logging"]

_REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_CONVERSATION_ID: ContextVar[str | None] = ContextVar("conversation_id", default=None)

_FIELDS = (
    "step",
    "status",
    "ms",
    "decision",
    "outcome",
    "error_code",
    "pipeline",
    "event",
    "cold_start",
    "target",
    "steps",
)


# A conversation id ends with the user's number (``ci-…#pi-…#<uuid>#447450659796``): logs keep the rest.
_NUMBER_SEGMENT = re.compile(r"^\+?\d{6,15}$")


def loggable_conversation_id(conversation_id: object) -> str | None:
    """The conversation id without the segments that are phone numbers, for log lines."""
    if not isinstance(conversation_id, str) or not conversation_id:
        return None
    return _without_numbers(conversation_id)


@lru_cache(maxsize=1024)
def _without_numbers(conversation_id: str) -> str:
    return "#".join(part for part in conversation_id.split("#") if not _NUMBER_SEGMENT.match(part))


def bind(*, request_id: str | None = None, conversation_id: str | None = None) -> None:
    """Set the ids that every following log line of this invocation carries."""
    if request_id is not None:
        _REQUEST_ID.set(request_id)
    _CONVERSATION_ID.set(conversation_id)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        conversation_id = _CONVERSATION_ID.get()
        if conversation_id:
            entry["conversation_id"] = conversation_id
        for name in _FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


_ENCODER = json.JSONEncoder(default=str)
_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """``created`` as ISO-8601 UTC with microseconds; the date and time part is formatted once a second."""
    global _second
    whole, micros = divmod(round(created * 1_000_000), 1_000_000)
    if _second[0] != whole:
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{micros:06d}Z"


def setup_logging(level: str = "INFO") -> None:
    """Send every log record as JSON to the Lambda runtime's handler (or stdout outside Lambda)."""
    # The formatter uses no caller, thread or process fields: skip collecting them for every record.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    formatter = JsonFormatter()
    for handler in root.handlers:
        handler.setFormatter(formatter)
    try:
        root.setLevel(level.upper())
    except ValueError:
        root.setLevel(logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
