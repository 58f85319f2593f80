"""Structured JSON logs: one object per line, with the invocation's log fields (request id, conversation id…).

Keys follow Powertools for AWS Lambda (Python), so existing queries work: ``timestamp``, ``level``, ``location``
(the logger), ``message``, ``service`` (``POWERTOOLS_SERVICE_NAME``), ``function_name``, and per invocation
``cold_start``, ``function_request_id`` and ``xray_trace_id``.

Log decisions, never data: callers pass step ids, outcomes, codes and durations in ``extra``; this
formatter emits only the fields it knows, so a stray ``extra`` cannot leak a body or a number. The
invocation's fields are those bound with ``engine.context.bind_log_fields`` (steps bind what later lines
should carry; the application binds the request id). A logged exception (``exception``) shows where each exception
of its chain was raised and its type, never its text: a bug's ``ValueError`` can quote the body it failed on, and an
AWS error's message the item it refused.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType

from engine.context import log_fields

__all__ = ["JsonFormatter", "setup_logging"]

_FIELDS = (
    "step",
    "status",
    "ms",
    "decision",
    "outcome",
    "error_code",
    "error_cause",
    "reason",
    "message_sid",
    "pipeline",
    "event",
    "cold_start",
    "target",
    "steps",
    "rules",
    "rules_version",
    "rules_source",
    "rulesets",
    "live",
    "candidate",
    "budget_ms",
    "bundle",
    "revision",
    "problems",
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object."""

    def __init__(self) -> None:
        super().__init__()
        self._service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "inbound-webhook-pipeline"
        self._function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname,
            "location": record.name,
            "message": record.getMessage(),
            "service": self._service,
        }
        if self._function:
            entry["function_name"] = self._function
        for name, bound in log_fields().items():
            if bound:
                entry[name] = bound == "true" if name == "cold_start" else bound
        for name in _FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)

    def formatException(
        self, ei: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
    ) -> str:
        """The traceback of ``ei``'s exception and of those it was raised from or while handling, without their text."""
        return traceback_without_text(ei[1]) if ei[1] is not None else ""


_CAUSE = "\n\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\n\nDuring handling of the above exception, another exception occurred:\n\n"


def traceback_without_text(error: BaseException) -> str:
    """Python's traceback of ``error`` and its chain, each exception shown by its type alone (oldest first)."""
    shown: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__))
        kind = type(current)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        shown.append(f"Traceback (most recent call last):\n{frames}{name}" if frames else name)
        context = None if current.__suppress_context__ else current.__context__
        link = _CAUSE if current.__cause__ is not None else _CONTEXT
        current = current.__cause__ or context
        if current is not None and id(current) not in seen:
            shown.append(link)
        else:
            current = None
    return "".join(reversed(shown))


_ENCODER = json.JSONEncoder(default=str)
_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """``created`` as ISO-8601 UTC with microseconds; the date and time part is formatted once a second."""
    global _second
    whole, micros = divmod(round(created * 1_000_000), 1_000_000)
    cached = _second  # read once: another thread (the bundle watcher's) may cache its own second meanwhile
    if cached[0] != whole:
        cached = _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{micros:06d}Z"


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
        root.setLevel(level.strip().upper())
    except ValueError:
        root.setLevel(logging.INFO)
        # Said, not swallowed: whoever set it would otherwise never learn that it is ignored.
        logging.getLogger("runtime.logs").error(
            "LOG_LEVEL %r is not a level (DEBUG, INFO, WARNING, ERROR, CRITICAL); using INFO", level[:40]
        )
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
