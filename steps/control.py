"""``control.finish``: end the run successfully with a given outcome (with a ``when:`` condition)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.context import Context, StepResult
from engine.errors import CODE_PATTERN
from engine.registry import BuildInfo, register

__all__ = ["Finish"]


@register(
    "control.finish",
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["outcome"],
        "properties": {"outcome": {"type": "string", "pattern": CODE_PATTERN}},
    },
    example={"outcome": "STATUS_CALLBACK"},
)
class Finish:
    """End the run successfully with the given outcome (use with ``when``)."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._outcome = str(params["outcome"])

    def run(self, ctx: Context) -> StepResult:
        return StepResult(outcome=self._outcome, stop=True, decision=self._outcome)
