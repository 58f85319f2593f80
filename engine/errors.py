"""The exception tree and the error codes a pipeline can end with.

Every error the engine raises on purpose is one of these::

    PipelineError                  an event's run ended badly; ``code`` names how
    ├── StepFailure                a final business error: code, message, optional reply text
    ├── TransientFault             a retryable fault (throttling, 5xx, timeout): the caller retries
    └── InternalError              a bug inside a step, wrapped with the step id (code INTERNAL_ERROR)
    RetryableFailure               raised out of the host for a transient fault (the text starts with the code)
    ConfigError                    configuration that cannot run; carries every Problem (file, line, column)

Steps raise ``StepFailure`` or ``TransientFault``; the runner wraps anything else in ``InternalError``.
Error codes are not a closed list: each step declares the codes it may end with (``ErrorSpec``, at
registration), a pipeline file declares the business codes its rules use (``errors:``), and the engine
owns ``INTERNAL_ERROR``. Mapping a service's own errors to these codes happens in the steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "CODE_PATTERN",
    "ENGINE_ERRORS",
    "INTERNAL_ERROR",
    "ConfigError",
    "ErrorSpec",
    "InternalError",
    "PipelineError",
    "Problem",
    "RetryableFailure",
    "StepFailure",
    "TransientFault",
    "closest",
    "did_you_mean",
    "shown",
]

# What an error code looks like: upper-case words joined by underscores.
CODE_PATTERN = "^[A-Z][A-Z0-9_]*$"
INTERNAL_ERROR = "INTERNAL_ERROR"


class ErrorSpec(NamedTuple):
    """An error code something may end an event with, and whether a retry of the event can succeed.

    ``loses_message`` marks a final error that drops a genuine message (a fault, not a business answer): the
    caller is told it is done, so nothing retries it; the deployment alarms on these codes.
    """

    code: str
    transient: bool = False
    description: str = ""
    loses_message: bool = False


ENGINE_ERRORS: tuple[ErrorSpec, ...] = (
    ErrorSpec(
        INTERNAL_ERROR,
        description="a bug: a step raised something unexpected, or a condition failed",
        loses_message=True,
    ),
)


class PipelineError(Exception):
    """Base of the errors a pipeline run ends with; ``code`` is an error code.

    ``cause`` is the outside service's own error code behind it (``AccessDeniedException``…), never a value.
    """

    def __init__(self, code: str, message: str, cause: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.cause = cause


class StepFailure(PipelineError):
    """A final business error. ``reply`` is text to send back to the user, if the rule gave one."""

    def __init__(self, code: str, message: str, reply: str | None = None, cause: str | None = None) -> None:
        super().__init__(code, message, cause)
        self.reply = reply


class TransientFault(PipelineError):
    """A retryable fault: the host raises so that the caller retries the delivery."""


class InternalError(PipelineError):
    """An unexpected exception inside a step, wrapped with the step id."""

    def __init__(self, step_id: str, cause: BaseException, detail: str | None = None) -> None:
        super().__init__(
            INTERNAL_ERROR, f"step {step_id!r} failed: {detail or type(cause).__name__}", type(cause).__name__
        )


class RetryableFailure(Exception):
    """Raised out of the host for transient faults; the text starts with the error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


SHOWN_LIMIT = 80


def shown(value: object) -> str:
    """A value as a message shows it to the author of YAML: text quoted, else JSON (``null``, ``true``, ``[1]``).

    Anything longer than ``SHOWN_LIMIT`` characters is cut, ending with ``…``, so one message stays one line.
    """
    if isinstance(value, str):
        text = repr(value)
    else:
        import json

        text = json.dumps(value, default=str)
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 1] + "…"


def closest(value: object, choices: Iterable[object]) -> str | None:
    """The choice close enough to ``value`` to be what was meant (a misspelling), or None."""
    import difflib

    close = difflib.get_close_matches(str(value), [str(choice) for choice in choices], n=1)
    return close[0] if close else None


def did_you_mean(value: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``value``, else nothing."""
    close = closest(value, choices)
    return f" (did you mean {close!r}?)" if close else ""


@dataclass(frozen=True)
class Problem:
    """One configuration problem, located in its file (line and column are 1-based).

    ``kind`` tells apart problems a tool treats on their own (``env``: an ``${env:…}`` reference that does not
    resolve: its variable is unset, or holds another reference).
    """

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"
    kind: str = ""

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class ConfigError(Exception):
    """Configuration that cannot run. ``problems`` lists every error found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(str(p) for p in problems))
