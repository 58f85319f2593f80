"""The configured pipeline, adapted for a replay without changing what it decides.

Parallel groups run their members one after another (``Pipeline(concurrent=False)``): the same
decisions and trace as with threads, and the writes always come out in pipeline order. With
``--skip-signature`` the steps that fetch the signing secret and check the signature are replaced by
stand-ins that pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from engine.context import Context, StepResult
from engine.runner import ParallelGroup, Pipeline, PlannedStep

__all__ = ["SIGNATURE_STEPS", "SKIPPED_STATUS", "replay_pipeline"]

SKIPPED_STATUS = "skipped (--skip-signature)"
# Registered step -> the output its stand-in provides under --skip-signature (never a secret).
SIGNATURE_STEPS: Mapping[str, Mapping[str, Any]] = {
    "secrets.auth_token": {"cached": False, "field": None, "skipped": True},
    "twilio.signature": {"valid": None, "refetched": False, "skipped": True},
}


class _Skipped:
    """Stands in for a signature step under ``--skip-signature``."""

    def __init__(self, output: Mapping[str, Any]) -> None:
        self._output = output

    def run(self, ctx: Context) -> StepResult:
        return StepResult(output=dict(self._output), decision=SKIPPED_STATUS)


def replay_pipeline(pipeline: Pipeline, *, skip_signature: bool) -> tuple[Pipeline, frozenset[str]]:
    """A copy of ``pipeline`` for replaying, and the ids of the steps ``--skip-signature`` replaced."""
    skipped: set[str] = set()

    def adapt(planned: PlannedStep) -> PlannedStep:
        if not (skip_signature and planned.uses in SIGNATURE_STEPS):
            return planned
        skipped.add(planned.id)
        return replace(planned, step=_Skipped(SIGNATURE_STEPS[planned.uses]))

    nodes: list[PlannedStep | ParallelGroup] = [
        ParallelGroup(tuple(adapt(member) for member in node.members))
        if isinstance(node, ParallelGroup)
        else adapt(node)
        for node in pipeline.nodes
    ]
    copy = Pipeline(
        pipeline.name,
        nodes,
        deadline_seconds=pipeline.deadline_seconds,
        default_outcome=pipeline.default_outcome,
        concurrent=False,
    )
    return copy, frozenset(skipped)
