"""CloudWatch metrics in Embedded Metric Format (EMF): one JSON document per invocation, on stdout.

CloudWatch Logs extracts the metrics from the document itself (no API call, no added latency):

- ``Invocations`` by {Pipeline, Outcome}: 1 per event; the outcome is a success outcome or the error code;
- ``Errors`` by {Pipeline} (every error: one total series) and by {Pipeline, ErrorCode}: 1 per event that ended
  in an error (template.yaml's alarms watch the codes that lose a message, and a few more);
- ``Latency`` and ``StepLatency.<step id>`` by {Pipeline}, in milliseconds (skipped steps are left out);
- ``ColdStart`` by {Pipeline}: 1 on the first invocation of a container;
- ``CaptureFailures`` by {Pipeline}: 1 in a document of its own when an event capture failed
  (``runtime.capture``; the webhook's answer is unaffected), and 1 per pipeline at a cold start whose capture
  setting is unusable (capture off); template.yaml's ``CaptureFailuresAlarm`` watches it.
- with a shadow candidate deployed (``runtime.shadow``), by {Pipeline}: ``ShadowEvaluations`` 1 per event
  the candidate decided too, ``ShadowMismatches`` 1 when it decided otherwise,
  ``ShadowMismatch.<rule set>`` 1 for each rule set that decided otherwise, and ``ShadowTimeouts`` 1 when
  the candidate ran out of its time budget instead (then no ``ShadowEvaluations``), ``ShadowFailures`` 1 when
  its evaluation failed (neither);
- ``SignatureMismatches`` by {Pipeline}: 1 in the invocation's document when a step that authenticates the
  request refused it (``runtime.app.failed_authentication``; template.yaml's ``SignatureMismatchAlarm``);
- ``MisroutedMessages`` by {Pipeline}: 1 in the invocation's document when a message refused at parse was all another
  channel's of the pipeline, posted to this channel's path, and its signature checked (``runtime.misroute``;
  template.yaml's ``MisroutedMessagesAlarm``), or a request refused for its Host alone (the domain it arrived on, not
  in the parse step's allow-list) had a signature valid for that Host's URL (``runtime.misroute.unlisted``);
- ``RulesBundleErrors`` by {Pipeline}: 1 per rules bundle (or deployment) that could not be read or was
  refused, or per check that failed unexpectedly (``runtime.bundlewatch``), in a document of its own
  (template.yaml's ``RulesBundleErrorsAlarm`` watches it).

The document is also a log line: it carries the invocation's log fields (request id, conversation id…)
and the rules version (``RulesVersion``, and ``RulesSource`` for a bundle; with shadow counts, the candidate's
``CandidateVersion`` and ``CandidateSource``) as plain properties, not dimensions.
With ``STACK_NAME`` set (template.yaml sets it to the stack's name), every series also has a ``Stack`` dimension,
so that two stacks in one account keep their metrics (and alarms) apart.
Configuration: ``METRICS_NAMESPACE`` (else ``POWERTOOLS_METRICS_NAMESPACE``, else ``InboundWebhookPipeline``);
``METRICS_ENABLED=false`` turns the documents off.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.runner import TraceEntry

__all__ = ["DEFAULT_NAMESPACE", "EmfMetrics", "configured_namespace", "count_line", "emf_line", "step_metric"]

DEFAULT_NAMESPACE = "InboundWebhookPipeline"
_OFF = frozenset({"0", "false", "no", "off"})


def step_metric(step_id: str) -> str:
    """The metric name of a step's latency."""
    return f"StepLatency.{step_id}"


def emf_line(
    namespace: str,
    pipeline: str,
    outcome: str,
    error_code: str | None,
    *,
    ms: float,
    trace: Sequence[TraceEntry],
    cold_start: bool,
    timestamp_ms: int,
    properties: Mapping[str, str] | None = None,
    counts: Mapping[str, int] | None = None,
    stack: str | None = None,
) -> str:
    """The EMF document for one invocation, as the JSON line that is written; ``counts`` are more Count metrics."""
    doc: dict[str, Any] = {"message": "metrics"}
    for key, value in (properties or {}).items():
        if value:
            doc[key] = value
    if stack:
        doc["Stack"] = stack
    doc["Pipeline"] = pipeline
    doc["Outcome"] = outcome
    doc["Invocations"] = 1
    doc["Latency"] = ms
    if cold_start:
        doc["ColdStart"] = 1
    steps: list[str] = []
    for entry in trace:
        if entry.status != "skipped":
            name = step_metric(entry.step)
            doc[name] = entry.ms
            steps.append(name)
    if error_code:
        doc["ErrorCode"] = error_code
        doc["Errors"] = 1
    doc.update(counts or {})
    directives = _directives(namespace, cold_start, tuple(steps), bool(error_code), bool(stack), tuple(counts or ()))
    # The directives repeat from one invocation to the next: they are encoded once per shape.
    return f'{_ENCODER.encode(doc)[:-1]},"_aws":{{"Timestamp":{int(timestamp_ms)},"CloudWatchMetrics":{directives}}}}}'


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def count_line(
    namespace: str,
    pipeline: str,
    metric: str,
    *,
    timestamp_ms: int,
    properties: Mapping[str, str] | None = None,
    stack: str | None = None,
) -> str:
    """An EMF document counting one ``metric`` by {Pipeline} (and {Stack}), with ``properties`` as plain fields."""
    doc: dict[str, Any] = {"message": "metrics", **{key: value for key, value in (properties or {}).items() if value}}
    if stack:
        doc["Stack"] = stack
    doc["Pipeline"] = pipeline
    doc[metric] = 1
    counted = [{"Name": metric, "Unit": "Count"}]
    base = ["Stack", "Pipeline"] if stack else ["Pipeline"]
    directives = [{"Namespace": namespace, "Dimensions": [base], "Metrics": counted}]
    doc["_aws"] = {"Timestamp": int(timestamp_ms), "CloudWatchMetrics": directives}
    return _ENCODER.encode(doc)


@lru_cache(maxsize=256)
def _directives(
    namespace: str,
    cold_start: bool,
    step_metrics: tuple[str, ...],
    error: bool,
    stack: bool,
    counts: tuple[str, ...] = (),
) -> str:
    """The ``CloudWatchMetrics`` directives of a document, JSON-encoded."""
    base = ["Stack", "Pipeline"] if stack else ["Pipeline"]
    per_pipeline: list[dict[str, str]] = [{"Name": "Latency", "Unit": "Milliseconds"}]
    if cold_start:
        per_pipeline.append({"Name": "ColdStart", "Unit": "Count"})
    per_pipeline.extend({"Name": name, "Unit": "Milliseconds"} for name in step_metrics)
    per_pipeline.extend({"Name": name, "Unit": "Count"} for name in counts)
    directives: list[dict[str, Any]] = [
        {
            "Namespace": namespace,
            "Dimensions": [[*base, "Outcome"]],
            "Metrics": [{"Name": "Invocations", "Unit": "Count"}],
        },
        {"Namespace": namespace, "Dimensions": [base], "Metrics": per_pipeline},
    ]
    if error:
        # One total series (every error) and one per code, from the same value.
        directives.append(
            {
                "Namespace": namespace,
                "Dimensions": [base, [*base, "ErrorCode"]],
                "Metrics": [{"Name": "Errors", "Unit": "Count"}],
            }
        )
    return _ENCODER.encode(directives)


def configured_namespace(env: Mapping[str, str]) -> str:
    """The namespace the environment gives the metrics (``METRICS_NAMESPACE``, ``POWERTOOLS_METRICS_NAMESPACE``)."""
    namespace = env.get("METRICS_NAMESPACE") or env.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    return namespace.strip() or DEFAULT_NAMESPACE


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class EmfMetrics:
    """Writes one EMF document per invocation; the first one of the instance (the container) marks a cold start."""

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        stack: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.stack = stack
        self._write = write or _stdout
        self._clock = clock
        self._cold = True

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EmfMetrics | None:
        """Metrics as the environment configures them, or None when turned off."""
        if env.get("METRICS_ENABLED", "").strip().lower() in _OFF:
            return None
        return cls(configured_namespace(env), stack=env.get("STACK_NAME", "").strip() or None)

    def record(
        self,
        pipeline: str,
        outcome: str,
        error_code: str | None,
        *,
        ms: float,
        trace: Sequence[TraceEntry],
        properties: Mapping[str, str] | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> str:
        """Write the invocation's document and return it (the JSON line)."""
        cold, self._cold = self._cold, False
        line = emf_line(
            self.namespace,
            pipeline,
            outcome,
            error_code,
            ms=ms,
            trace=trace,
            cold_start=cold,
            timestamp_ms=int(self._clock() * 1000),
            properties=properties,
            counts=counts,
            stack=self.stack,
        )
        self._write(line)
        return line

    def count(self, pipeline: str, metric: str, properties: Mapping[str, str] | None = None) -> str:
        """Write a document counting one ``metric`` (not an invocation: no cold start, no latency) and return it."""
        line = count_line(
            self.namespace,
            pipeline,
            metric,
            timestamp_ms=int(self._clock() * 1000),
            properties=properties,
            stack=self.stack,
        )
        self._write(line)
        return line
