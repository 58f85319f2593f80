"""Structured JSON logs: one object per line, with the invocation's log fields (request id, conversation id…).

Keys follow Powertools for AWS Lambda (Python), so existing queries work: ``timestamp``, ``level``, ``location``
(the logger), ``message``, ``service`` (``POWERTOOLS_SERVICE_NAME``), ``function_name``, and per invocation
``cold_start``, ``function_request_id`` and ``xray_trace_id``.

Log decisions, never data: callers pass step ids, outcomes, codes and durations in ``extra``; this
formatter emits only the fields it knows, so a stray ``extra`` cannot leak a body or a number. The
invocation's fields are those bound with ``engine.context.bind_log_fields`` (steps bind what later lines
should carry; the application binds the request id).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

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
