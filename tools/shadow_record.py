"""A shadow candidate's record: the CloudWatch sums of its shadow metrics since it became the shadow.

The function counts, per event, in its EMF documents (``runtime.metrics``, ``runtime.shadow``), by {Pipeline} and,
with ``STACK_NAME`` set (the template sets it), {Stack, Pipeline}: ``ShadowEvaluations`` (the candidate decided
the event), ``ShadowMismatches`` and ``ShadowMismatch.<rule set>`` (it decided otherwise), ``ShadowTimeouts`` (cut
off by its budget: no verdict) and ``ShadowFailures`` (its evaluation failed: no verdict), and ``RulesBundleErrors``
(a bundle refused or not read: after a code deploy, the candidate may be). CloudWatch extracts them from the log
lines; ``read`` sums each over a window with ``GetMetricData`` and ``Record`` says what the sums mean:
``pipeline-rules shadow-status`` prints it, and ``promote`` of the shadow prints it as a note before deploying.

The counts carry no candidate (its version is a plain property of the document, not a dimension): the window
starting when the candidate became the shadow is what makes them its own. CloudWatch keeps a minute's data whole,
so the first minute may hold the counts of the events decided just before it, and a warm container may go on
evaluating the previous candidate until its next check for a deployment (``RULES_REFRESH_SECONDS``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from runtime.aws import error_code
from runtime.bundlewatch import ERROR_METRIC
from runtime.shadow import EVALUATIONS, FAILURES, MISMATCHES, TIMEOUTS, mismatch_metric

__all__ = ["LiveChange", "Record", "RecordUnreadable", "find_stacks", "metric_queries", "read", "window_end"]

COUNTED = (EVALUATIONS, MISMATCHES, TIMEOUTS, FAILURES)
# What a shadowed event may count without a mismatch: the metrics whose series name the stacks that have any.
_ANY_EVENT = (EVALUATIONS, TIMEOUTS, FAILURES)


class RecordUnreadable(Exception):
    """CloudWatch could not be read (no permission, no connection, no region); the message says why."""


def _dimensions(pipeline: str, stack: str | None) -> list[dict[str, str]]:
    found = [{"Name": "Pipeline", "Value": pipeline}]
    return [{"Name": "Stack", "Value": stack}, *found] if stack else found


def _query(key: str, namespace: str, name: str, pipeline: str, stack: str | None, period: int) -> dict[str, Any]:
    """The ``GetMetricData`` query ``key`` summing metric ``name`` of the pipeline (and stack) per ``period``."""
    return {
        "Id": key,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": _dimensions(pipeline, stack)},
            "Period": period,
            "Stat": "Sum",
        },
        "ReturnData": True,
    }


def metric_queries(
    namespace: str, pipeline: str, stack: str | None, rulesets: Sequence[str], period: int
) -> list[dict[str, Any]]:
    """The ``GetMetricData`` queries, one per metric (``COUNTED``, then each rule set's), in that order."""
    names = [*COUNTED, *(mismatch_metric(name) for name in rulesets)]
    return [_query(f"m{index}", namespace, name, pipeline, stack, period) for index, name in enumerate(names)]


def _failed(exc: Exception) -> RecordUnreadable:
    return RecordUnreadable(error_code(exc) or f"{type(exc).__name__}: {exc}")


def find_stacks(client: Any, namespace: str, pipeline: str) -> list[str | None]:
    """The ``Stack`` values of the pipeline's shadow series CloudWatch lists (None: a series without one)."""
    import botocore.exceptions

    found: dict[str | None, None] = {}
    try:
        for name in _ANY_EVENT:
            pages = client.get_paginator("list_metrics").paginate(
                Namespace=namespace, MetricName=name, Dimensions=[{"Name": "Pipeline", "Value": pipeline}]
            )
            for page in pages:
                for metric in page.get("Metrics", []):
                    stacks = [item["Value"] for item in metric.get("Dimensions", []) if item.get("Name") == "Stack"]
                    found[stacks[0] if stacks else None] = None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise _failed(exc) from None
    return list(found)


def read(
    client: Any,
    namespace: str,
    pipeline: str,
    stack: str | None,
    rulesets: Sequence[str],
    start: datetime,
    end: datetime,
) -> dict[str, float]:
    """Each metric's sum from ``start`` to ``end`` (0 for a metric with no data), by metric name."""
    import botocore.exceptions

    # One period covering the whole window; a multiple of an hour is a period CloudWatch takes for data of any age.
    period = max(1, math.ceil((end - start).total_seconds() / 3600)) * 3600
    queries = metric_queries(namespace, pipeline, stack, rulesets, period)
    # And the bundles the function refused or could not read meanwhile (a code deploy may refuse the candidate).
    queries.append(_query("refused", namespace, ERROR_METRIC, pipeline, stack, period))
    sums = {query["Id"]: 0.0 for query in queries}
    arguments: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
    try:
        while True:
            answer = client.get_metric_data(**arguments)
            for result in answer.get("MetricDataResults", []):
                sums[result["Id"]] += sum(float(value) for value in result.get("Values", []))
            if not answer.get("NextToken"):
                break
            arguments["NextToken"] = answer["NextToken"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise _failed(exc) from None
    return {query["MetricStat"]["Metric"]["MetricName"]: sums[query["Id"]] for query in queries}


def _count(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _events(value: float) -> str:
    return f"{_count(value)} event{'' if value == 1 else 's'}"


class LiveChange(NamedTuple):
    """A live bundle made live while the candidate was in shadow (None: the packaged rules), and the one before it.

    ``revision`` made ``live`` live (``at``, ``by``, ``note``); ``shadowed`` is the revision that made the candidate
    the shadow, beside ``before``.
    """

    revision: int
    at: str
    by: str
    note: str
    live: str | None
    shadowed: int
    before: str | None


def _named(live: str | None) -> str:
    return live or "the packaged rules"


@dataclass(frozen=True)
class Record:
    """What a candidate did in shadow since ``revision`` (``since``), as CloudWatch sums it."""

    candidate: str
    pipeline: str
    revision: int
    since: datetime
    until: datetime
    sums: Mapping[str, float]
    rulesets: Sequence[str]
    where: str
    chosen: str = ""
    notes: Sequence[str] = field(default_factory=tuple)
    # CloudWatch is regional (S3 answers from any): the shell's region may not be the function's.
    region: str = ""
    live_change: LiveChange | None = None

    @property
    def evaluations(self) -> float:
        return self.sums.get(EVALUATIONS, 0.0)

    @property
    def mismatches(self) -> float:
        return self.sums.get(MISMATCHES, 0.0)

    def _at(self) -> str:
        return f"revision {self.revision} at {self.since.strftime('%Y-%m-%dT%H:%M:%SZ')}"

    def rate(self) -> str:
        """The share of its evaluations the candidate decided otherwise, as a percentage ("-" with none)."""
        return f"{100 * self.mismatches / self.evaluations:.1f}%" if self.evaluations else "-"

    def lines(self) -> list[str]:
        """The record, a line each: the candidate, its counts, the rule sets that differed, where it was read."""
        agreed = self.evaluations - self.mismatches
        per_set = ", ".join(f"{name} {_count(self.sums.get(mismatch_metric(name), 0.0))}" for name in self.rulesets)
        until = self.until.strftime("%Y-%m-%dT%H:%M:%SZ")
        return [
            f"shadow candidate {self.candidate} of {self.pipeline} since {self._at()}{self.chosen}:",
            f"  evaluations {_count(self.evaluations)}: mismatches {_count(self.mismatches)} ({self.rate()}), "
            f"agreed {_count(agreed)}",
            f"  mismatches by rule set: {per_set or 'no rule set known'}",
            f"  timeouts {_count(self.sums.get(TIMEOUTS, 0.0))}, failures {_count(self.sums.get(FAILURES, 0.0))}",
            f"  read from CloudWatch: {self.where}, until {until}"
            + (f" in region {self.region} (AWS_REGION)" if self.region else ""),
            *(f"  {note}" for note in self.notes),
        ]

    def warnings(self) -> list[str]:
        """What should stop one promoting the candidate, a sentence each (none: it decided events and agreed)."""
        found: list[str] = []
        timeouts, failures = self.sums.get(TIMEOUTS, 0.0), self.sums.get(FAILURES, 0.0)
        if not self.evaluations:
            found.append(
                f"the candidate has decided no event since {self._at()}: check that the function reads this bucket "
                "and prefix (RULES_PREFIX), that it did not refuse the candidate (RulesBundleErrors; ERROR lines of "
                "runtime.bundlewatch), that the pipeline had events reaching its rules, that the function writes "
                "its metrics (METRICS_ENABLED is not false), and that --stack, --namespace "
                + (f"and the region read ({self.region}: AWS_REGION) are" if self.region else "are")
                + " the function's"
            )
        if self.mismatches:
            found.append(
                f"the candidate decided {_count(self.mismatches)} of {_count(self.evaluations)} events otherwise "
                f"({self.rate()}): its shadow_mismatch lines say how"
            )
        if timeouts:
            found.append(
                f"the candidate ran out of its time budget on {_events(timeouts)} (ShadowTimeouts): live, such "
                "a message fails its condition (INTERNAL_ERROR); its shadow_timeout lines name the conversations"
            )
        if failures:
            found.append(
                f"the candidate's evaluation failed on {_events(failures)} (ShadowFailures): no verdict, "
                "see the 'shadow evaluation failed' ERROR lines"
            )
        change = self.live_change
        if change is not None:
            noted = f": {change.note}" if change.note else ""
            found.append(
                f"the live rules changed while the candidate was in shadow: revision {change.revision} ({change.at} "
                f"by {change.by}{noted}) made {_named(change.live)} live after revision {change.shadowed} shadowed "
                f"the candidate beside {_named(change.before)}: promoting the candidate undoes that change unless it "
                f"carries it too (publish it again from {_named(change.live)}'s files"
                + (f", `pipeline-rules pull {change.live}`" if change.live else "")
                + ", and shadow that)"
            )
        refused = self.sums.get(ERROR_METRIC, 0.0)
        if refused:
            found.append(
                f"the function counted {_count(refused)} {ERROR_METRIC} since {self._at()}: it refused a bundle or "
                "could not read one (after a code deploy, say, the candidate: it is then evaluated no more); the "
                "ERROR lines of runtime.bundlewatch name the bundle and why (for a cause gone since, `shadow --clear` "
                "then `shadow` it again starts its record afresh)"
            )
        return found


def window_end(now: datetime) -> datetime:
    """The end of the window read at ``now``: the next whole minute (CloudWatch keeps a minute's data whole)."""
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)
