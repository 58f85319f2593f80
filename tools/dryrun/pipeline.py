"""The configured pipeline, adapted for a replay without changing what it decides.

Parallel groups run their members one after another (``Pipeline(concurrent=False)``): the same
decisions and trace as with threads, and the writes always come out in pipeline order. With
``--skip-signature`` the steps that authenticate the request (those registered ``authenticates=True``:
fetching the verification secret, checking the signature) are replaced by stand-ins that pass. Without it, a
step that checks recordings its own way (``for_recordings()``: a ``mask=none`` capture keeps a Twilio signature as
its digest) runs that way.
"""

from __future__ import annotations

from dataclasses import replace

from engine import registry
from engine.context import Context, StepResult
from engine.runner import ParallelGroup, Pipeline, PlannedStep

__all__ = ["SKIPPED_STATUS", "authenticating", "replay_pipeline"]

SKIPPED_STATUS = "skipped (--skip-signature)"


class _Skipped:
    """Stands in for an authenticating step under ``--skip-signature`` (its output says so, and holds no secret)."""

    def run(self, ctx: Context) -> StepResult:
        return StepResult(output={"skipped": True}, decision=SKIPPED_STATUS)


def authenticating(uses: str) -> bool:
    """Whether the registered step ``uses`` takes part in authenticating the request."""
    spec = registry.get(uses)
    return spec is not None and spec.authenticates


def replay_pipeline(pipeline: Pipeline, *, skip_signature: bool) -> tuple[Pipeline, frozenset[str]]:
    """A copy of ``pipeline`` for replaying, and the ids of the steps ``--skip-signature`` replaced."""
    skipped: set[str] = set()

    def adapt(planned: PlannedStep) -> PlannedStep:
        if not (skip_signature and authenticating(planned.uses)):
            for_recordings = getattr(planned.step, "for_recordings", None)
            return replace(planned, step=for_recordings()) if callable(for_recordings) else planned
        skipped.add(planned.id)
        return replace(planned, step=_Skipped())

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
        concurrent=False,
    )
    return copy, frozenset(skipped)
