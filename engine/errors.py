"""The exception tree and the catalogue of error codes.

Every way a pipeline run can end badly is one of these::

    PipelineError                  base of everything the engine raises on purpose
    ├── StepFailure                a final business error: code, message, optional reply text
    ├── TransientFault             a retryable fault (throttling, 5xx, timeout): the Lambda raises
    └── InternalError              a bug inside a step, wrapped with the step id (code INTERNAL_ERROR)
    ConfigError                    configuration that cannot run; carries every Problem (file, line, column)

Steps raise ``StepFailure`` or ``TransientFault``; the runner wraps anything else in ``InternalError``.
AWS client errors become domain errors in one place, ``engine.aws``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ERROR_CODES",
    "TRANSIENT_CODES",
    "ConfigError",
    "InternalError",
    "PipelineError",
    "Problem",
    "StepFailure",
    "TransientFault",
    "is_known_code",
]

TRANSIENT_CODES: frozenset[str] = frozenset(
    {
        "DB_TRANSIENT_ERROR",
        "SECRET_FETCH_TRANSIENT_ERROR",
        "STAGE_WRITE_TRANSIENT_ERROR",
        "TRIGGER_LOCK_TRANSIENT_ERROR",
        "QUEUE_TRANSIENT_ERROR",
    }
)

ERROR_CODES: frozenset[str] = TRANSIENT_CODES | frozenset(
    {
        "PARSING_ERROR",
        "INVALID_SIGNATURE",
        "CONVERSATION_NOT_FOUND",
        "MISSING_CREDENTIAL_CONFIG",
        "DB_QUERY_ERROR",
        "SECRET_FETCH_FAILED",
        "PROJECT_INACTIVE",
        "CHANNEL_NOT_ALLOWED",
        "CONVERSATION_LOCKED",
        "ROUTING_ERROR",
        "STAGE_WRITE_ERROR",
        "TRIGGER_LOCK_WRITE_ERROR",
        "QUEUE_ERROR",
        "INTERNAL_ERROR",
    }
)


def is_known_code(code: str) -> bool:
    """True when ``code`` is one of the contract's error codes."""
    return code in ERROR_CODES


class PipelineError(Exception):
    """Base of the errors a pipeline run ends with; ``code`` is a contract error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StepFailure(PipelineError):
    """A final business error. ``reply`` is text to send back to the user, if the rule gave one."""

    def __init__(self, code: str, message: str, reply: str | None = None) -> None:
        super().__init__(code, message)
        self.reply = reply


class TransientFault(PipelineError):
    """A retryable fault: the Lambda raises so that the caller retries the delivery."""


class InternalError(PipelineError):
    """An unexpected exception inside a step, wrapped with the step id."""

    def __init__(self, step_id: str, cause: BaseException, detail: str | None = None) -> None:
        super().__init__("INTERNAL_ERROR", f"step {step_id!r} failed: {detail or type(cause).__name__}")
        self.step_id = step_id


@dataclass(frozen=True)
class Problem:
    """One configuration problem, located in its file (line and column are 1-based)."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class ConfigError(Exception):
    """Configuration that cannot run. ``problems`` lists every error found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(str(p) for p in problems))
