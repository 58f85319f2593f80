"""``pipeline-rules shadow-status`` and ``promote``: the shadow candidate's record, read from CloudWatch.

Defect: ``promote`` made the shadow candidate live without a word of how it did in shadow (nor did ``list``): a
candidate that decided no event (never ran: a wrong prefix, a refused bundle, its budget exceeded on every event) or
that decided 30% of the events otherwise went live as silently as one that agreed on thousands.

CloudWatch is moto's, in-process. The counts reach it as the function's would: the runtime writes its EMF lines
(``runtime.metrics.EmfMetrics`` with the counts ``runtime.shadow`` gives an event) and ``extract`` puts each metric
of each line with ``put_metric_data``, the dimensions and namespace the line's ``_aws`` directives name, standing
for CloudWatch Logs' extraction of EMF. So a metric name, dimension or namespace that the tool reads otherwise than
the runtime writes reads as zero here, as it would in production.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from runtime.metrics import EmfMetrics
from runtime.shadow import FAILED, TIMED_OUT, Comparison, Verdict
from tests.support.bundles import BUCKET, PIPELINE, ROUTING, VIP_ROUTING, Ops, make_bucket, working_copy
from tools.rules import run

STACK = "webhooks"
# The rule sets of the shipped twilio_inbound rules, in file order.
RULESETS = ["project_status", "channel", "conversation_lock", "routing"]
# An address where nothing listens: a CloudWatch that cannot be called.
REFUSING = "http://127.0.0.1:9"


def extract(cloudwatch: Any, line: str) -> None:
    """Put the metrics of one EMF line into CloudWatch, as CloudWatch Logs extracts them."""
    document = json.loads(line)
    when = datetime.fromtimestamp(document["_aws"]["Timestamp"] / 1000, UTC)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for names in directive["Dimensions"]:
            dimensions = [{"Name": name, "Value": document[name]} for name in names]
            data = [
                {
                    "MetricName": metric["Name"],
                    "Dimensions": dimensions,
                    "Value": float(document[metric["Name"]]),
                    "Unit": metric["Unit"],
                    "Timestamp": when,
                }
                for metric in directive["Metrics"]
            ]
            cloudwatch.put_metric_data(Namespace=directive["Namespace"], MetricData=data)


def differing(*rulesets: str) -> dict[str, int]:
    """An event's shadow counts as ``runtime.shadow`` gives them, the candidate differing in ``rulesets``."""
    live = Verdict("ROUTED", "whatsapp", {"routing": "channel_queue"})
    candidate = Verdict("ROUTED", "handoff" if rulesets else "whatsapp", {"routing": "vip_to_human"})
    return Comparison(live, candidate, rulesets).counts


AGREED = differing()


@dataclass
class Shadowing:
    """Ops with a bucket, and the function's metrics as CloudWatch holds them."""

    ops: Ops
    cloudwatch: Any

    def events(self, *counts: dict[str, int], stack: str = STACK, clock: Callable[[], float] = time.time) -> None:
        """Events the function decided with a shadow candidate, each with its shadow counts, in CloudWatch."""
        written: list[str] = []
        metrics = EmfMetrics.from_env({"STACK_NAME": stack}) if stack else EmfMetrics.from_env({})
        assert metrics is not None
        metrics._write, metrics._clock = written.append, clock
        for event in counts:
            metrics.record(PIPELINE, "QUEUED", None, ms=3.0, trace=(), properties={"RulesVersion": "x"}, counts=event)
        for line in written:
            extract(self.cloudwatch, line)

    def rules(self, *args: str, own_client: bool = False) -> tuple[int, str, str]:
        """Run ``pipeline-rules``; ``own_client``: it makes its CloudWatch client, as from a shell."""
        out, err = io.StringIO(), io.StringIO()
        cwd = Path.cwd()
        os.chdir(self.ops.root)
        try:
            status = run(
                ["--bucket", BUCKET, *args],
                client=self.ops.s3,
                cloudwatch=None if own_client else self.cloudwatch,
                out=out,
                err=err,
            )
        finally:
            os.chdir(cwd)
        return status, out.getvalue(), err.getvalue()

    def candidate(self) -> str:
        """A candidate deployed as the shadow (VIPs to a person)."""
        self.ops.edit("40_routing.yaml", VIP_ROUTING)
        status, out, err = self.rules("publish", "--shadow", "--by", "bob", "--note", "VIPs")
        assert status == 0, out + err
        return out.split("published: bundle ")[1].split()[0]


@pytest.fixture
def shadowing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shadowing]:
    monkeypatch.delenv("STACK_NAME", raising=False)
    monkeypatch.delenv("METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        make_bucket(s3)
        yield Shadowing(Ops(s3, working_copy(tmp_path / "ops")), boto3.client("cloudwatch"))


def test_the_metrics_read_are_those_an_emf_line_of_the_runtime_names() -> None:
    """The namespace, dimensions and names of every shadow metric, from an EMF line the runtime writes."""
    from tools.shadow_record import metric_queries

    written: list[str] = []
    metrics = EmfMetrics.from_env({"STACK_NAME": STACK})
    assert metrics is not None
    metrics._write = written.append
    for counts in (differing("routing"), TIMED_OUT, FAILED):
        metrics.record(PIPELINE, "QUEUED", None, ms=1.0, trace=(), counts=counts)
    emitted = set()
    for line in written:
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for names in directive["Dimensions"]:
                dimensions = tuple(sorted((name, document[name]) for name in names))
                for metric in directive["Metrics"]:
                    if metric["Name"].startswith("Shadow"):
                        emitted.add((directive["Namespace"], metric["Name"], dimensions))
    read = {
        (
            query["MetricStat"]["Metric"]["Namespace"],
            query["MetricStat"]["Metric"]["MetricName"],
            tuple(sorted((item["Name"], item["Value"]) for item in query["MetricStat"]["Metric"]["Dimensions"])),
        )
        for query in metric_queries(metrics.namespace, PIPELINE, STACK, ["routing"], 3600)
    }
    assert emitted == read
    assert {name for _, name, _ in emitted} == {
        "ShadowEvaluations",
        "ShadowMismatches",
        "ShadowMismatch.routing",
        "ShadowTimeouts",
        "ShadowFailures",
    }


def test_without_a_shadow_candidate_the_status_says_so(shadowing: Shadowing) -> None:
    status, out, err = shadowing.rules("shadow-status")
    assert (status, err) == (0, "")
    assert out == (
        "no shadow candidate for twilio_inbound (no deployment): no event is decided again; "
        "`pipeline-rules shadow BUNDLE` deploys one\n"
    )


def test_a_candidate_that_decided_no_event_is_said_so_and_promote_warns_but_deploys(shadowing: Shadowing) -> None:
    candidate = shadowing.candidate()
    at = shadowing.ops.deployment().updated_at
    status, out, err = shadowing.rules("shadow-status")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert (
        lines[0] == f"shadow candidate {candidate} of twilio_inbound since revision 1 at {at} (deployed by bob: VIPs):"
    )
    assert lines[1] == "  evaluations 0: mismatches 0 (-), agreed 0"
    assert lines[2] == "  mismatches by rule set: " + ", ".join(f"{name} 0" for name in RULESETS)
    assert lines[3] == "  timeouts 0, failures 0"
    assert lines[4].startswith(
        "  read from CloudWatch: namespace InboundWebhookPipeline, Pipeline=twilio_inbound, until "
    )
    assert lines[5].startswith(f"warning: the candidate has decided no event since revision 1 at {at}: check ")
    # The function may not write its metrics at all: a candidate that decided every event then reads as one that
    # decided none, and the warning names that too.
    assert "that the function writes its metrics (METRICS_ENABLED is not false)" in lines[5]

    status, out, err = shadowing.rules("promote", "--note", "looks fine")
    assert status == 0 and out.startswith(f"deployed: revision 2: live {candidate} (the shadow candidate bob")
    assert err.startswith(f"pipeline-rules: note: shadow candidate {candidate} of twilio_inbound since revision 1 ")
    assert f"\npipeline-rules: WARNING: the candidate has decided no event since revision 1 at {at}: " in err
    assert shadowing.ops.deployment().live == candidate


def test_a_candidate_that_agreed_has_its_record_and_no_warning(shadowing: Shadowing) -> None:
    candidate = shadowing.candidate()
    shadowing.events(*[AGREED] * 5)
    status, out, _ = shadowing.rules("shadow-status")
    assert status == 0
    assert out.splitlines()[1:4] == [
        "  evaluations 5: mismatches 0 (0.0%), agreed 5",
        "  mismatches by rule set: " + ", ".join(f"{name} 0" for name in RULESETS),
        "  timeouts 0, failures 0",
    ]
    # Found without --stack: the one stack CloudWatch lists shadow metrics of.
    assert f", Stack={STACK} (the stack CloudWatch lists shadow metrics of; --stack chooses), until " in out
    assert "warning" not in out
    status, out, err = shadowing.rules("promote", "--require-agreement")
    assert status == 0 and "WARNING" not in err and "  evaluations 5: mismatches 0 (0.0%), agreed 5\n" in err
    assert shadowing.ops.deployment().live == candidate


def test_mismatches_in_one_rule_set_are_named_with_the_rate_and_the_gate_refuses_them(shadowing: Shadowing) -> None:
    candidate = shadowing.candidate()
    shadowing.events(*[AGREED] * 7, *[differing("routing")] * 3)
    status, out, _ = shadowing.rules("shadow-status", "--stack", STACK)
    assert status == 0
    assert out.splitlines()[1:3] == [
        "  evaluations 10: mismatches 3 (30.0%), agreed 7",
        "  mismatches by rule set: project_status 0, channel 0, conversation_lock 0, routing 3",
    ]
    assert out.splitlines()[-1] == (
        "warning: the candidate decided 3 of 10 events otherwise (30.0%): its shadow_mismatch lines say how"
    )
    status, out, err = shadowing.rules("promote", "--require-agreement")
    assert (status, out) == (2, "")
    assert "pipeline-rules: WARNING: the candidate decided 3 of 10 events otherwise (30.0%)" in err
    assert err.endswith(
        f"pipeline-rules: error: the shadow candidate {candidate} has 1 WARNING(s) above: not promoted "
        "(--require-agreement)\n"
    )
    assert shadowing.ops.deployment().revision == 1
    status, _, err = shadowing.rules("promote")
    assert status == 0 and "WARNING: the candidate decided 3 of 10 events otherwise" in err
    assert shadowing.ops.deployment().live == candidate


def test_timeouts_and_failures_are_counted_apart_from_the_evaluations(shadowing: Shadowing) -> None:
    shadowing.candidate()
    shadowing.events(AGREED, AGREED, TIMED_OUT, FAILED)
    status, out, _ = shadowing.rules("shadow-status")
    assert status == 0
    lines = out.splitlines()
    assert lines[1] == "  evaluations 2: mismatches 0 (0.0%), agreed 2"
    assert lines[3] == "  timeouts 1, failures 1"
    assert [line.split(" (")[0] for line in lines if line.startswith("warning:")] == [
        "warning: the candidate ran out of its time budget on 1 event",
        "warning: the candidate's evaluation failed on 1 event",
    ]


def test_counts_from_before_the_candidate_became_the_shadow_or_of_another_stack_are_not_its(
    shadowing: Shadowing,
) -> None:
    shadowing.events(differing("routing"), clock=lambda: time.time() - 3600)  # an earlier candidate's
    shadowing.candidate()
    shadowing.events(AGREED)
    shadowing.events(differing("routing"), stack="staging")
    status, _, err = shadowing.rules("shadow-status")
    assert status == 2 and "are counted by several stacks (" in err and "): pass --stack\n" in err
    status, out, _ = shadowing.rules("shadow-status", "--stack", STACK)
    assert status == 0 and out.splitlines()[1] == "  evaluations 1: mismatches 0 (0.0%), agreed 1"


def test_a_cloudwatch_that_cannot_be_read_stops_the_status_but_not_promote(shadowing: Shadowing) -> None:
    candidate = shadowing.candidate()
    status, out, err = shadowing.rules("--endpoint-url", REFUSING, "shadow-status", own_client=True)
    assert (status, out) == (2, "")
    assert err.startswith(
        f"pipeline-rules: error: cannot read the record of the shadow candidate {candidate} from CloudWatch: "
        f"EndpointConnectionError: Could not connect to the endpoint URL: "
    )
    assert "Traceback" not in err and err.count("\n") == 1
    status, _, err = shadowing.rules("--endpoint-url", REFUSING, "promote", "--require-agreement", own_client=True)
    assert status == 2 and err.endswith(": not promoted (--require-agreement)\n")
    assert shadowing.ops.deployment().revision == 1
    # --by: STS at that endpoint cannot be called either, which a note would say (test_pipeline_rules_audit.py).
    status, out, err = shadowing.rules("--endpoint-url", REFUSING, "promote", "--by", "alice", own_client=True)
    assert status == 0 and out.startswith(f"deployed: revision 2: live {candidate}")
    assert err.startswith(
        f"pipeline-rules: WARNING: the record of the shadow candidate {candidate} could not be read from CloudWatch "
        "(EndpointConnectionError: Could not connect to the endpoint URL: "
    )
    assert err.endswith("): it is promoted unseen\n") and err.count("\n") == 1


def test_the_gate_takes_only_the_shadow_candidate(shadowing: Shadowing) -> None:
    candidate = shadowing.candidate()
    shadowing.rules("shadow", "--clear")
    status, _, err = shadowing.rules("promote", candidate, "--require-agreement")
    assert status == 2 and err == (
        f"pipeline-rules: error: --require-agreement reads the shadow candidate's record, and {candidate} is not "
        "the shadow candidate\n"
    )


def test_a_revision_recording_no_time_starts_the_window_when_the_bundle_was_published(shadowing: Shadowing) -> None:
    from runtime.bundles import deployment_key

    candidate = shadowing.candidate()
    edited = shadowing.ops.deployment()._replace(updated_at="")  # a document edited by hand
    shadowing.ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=edited.to_json())
    shadowing.events(AGREED)
    status, out, _ = shadowing.rules("shadow-status")
    assert status == 0 and out.splitlines()[1] == "  evaluations 1: mismatches 0 (0.0%), agreed 1"
    assert f"  (revision 1 records no time: the window starts when bundle {candidate} was published)\n" in out


def test_list_says_where_the_shadow_candidates_record_is(shadowing: Shadowing) -> None:
    """Defect: ``list`` named the shadow candidate and nothing of how it did, nor where to see it."""
    candidate = shadowing.candidate()
    at = shadowing.ops.deployment().updated_at
    status, out, err = shadowing.rules("list")
    assert status == 0 and f", shadow {candidate} (" in out
    assert err == (
        f"pipeline-rules: note: the shadow candidate {candidate} has decided events again since revision 1 at {at}: "
        "`pipeline-rules shadow-status` shows its record (CloudWatch's sums), which promote prints too\n"
    )
    shadowing.rules("shadow", "--clear")
    assert shadowing.rules("list")[2] == ""


def test_a_record_read_in_another_region_than_the_functions_names_the_region(shadowing: Shadowing) -> None:
    """Defect: CloudWatch is regional and the tool reads the shell's region (AWS_REGION, the profile's), while S3
    answers from any: run from a shell set to another region than the stack's, the record read 0 evaluations and
    the warning sent ops to check the bucket and prefix, a refused bundle, the events, --stack and --namespace,
    all right, and not the region, which no line named. The record now says the region it was read in, and the
    warning names it among what to check."""
    candidate = shadowing.candidate()
    shadowing.events(*[AGREED] * 5)  # in the function's region, us-east-1
    shadowing.cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
    status, out, _ = shadowing.rules("shadow-status", "--stack", STACK)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"shadow candidate {candidate} ") and lines[1].startswith("  evaluations 0:")
    assert lines[4].startswith("  read from CloudWatch: namespace InboundWebhookPipeline, ")
    assert lines[4].endswith(" in region eu-west-1 (AWS_REGION)")
    assert lines[5].endswith(
        ", and that --stack, --namespace and the region read (eu-west-1: AWS_REGION) are the function's"
    )


def test_a_revision_recorded_after_this_machines_clock_is_said_so_not_taken_for_a_cloudwatch_error(
    shadowing: Shadowing,
) -> None:
    """Defect: the window starts at the time the deployment records, written by the clock of whoever deployed; a
    clock 7 minutes ahead of this machine's made a window ending before it starts, CloudWatch refused it, and ops
    read "cannot read the record ... from CloudWatch: ValidationError" (promote: "promoted unseen") and went looking
    at CloudWatch. Now the line says the revision's time is after this machine's clock, both times, before asking."""
    from datetime import timedelta

    from runtime.bundles import deployment_key

    candidate = shadowing.candidate()
    ahead = (datetime.now(UTC) + timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    edited = shadowing.ops.deployment()._replace(updated_at=ahead)
    shadowing.ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=edited.to_json())
    status, out, err = shadowing.rules("shadow-status")
    assert (status, out) == (2, "")
    assert err.startswith(
        f"pipeline-rules: error: cannot read the record of the shadow candidate {candidate} from CloudWatch: "
        f"revision 1 records {ahead}, after this machine's clock ("
    )
    assert err.endswith("): one of the two clocks is wrong\n") and "ValidationError" not in err
    status, _, err = shadowing.rules("promote")
    assert status == 0 and f"revision 1 records {ahead}, after this machine's clock (" in err


def test_promote_of_the_shadow_reads_each_bundle_from_s3_once(shadowing: Shadowing) -> None:
    # A bundle is immutable (its id is its files' digest): the check before the promotion, the record's rule sets and
    # the deployment read the same one, so one HEAD and one GET of it are enough.
    candidate = shadowing.candidate()
    shadowing.events(*[AGREED] * 2)
    reads: list[tuple[str, str]] = []

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        if params.get("Key", "").endswith(f"/{candidate}.json"):
            reads.append((model.name, params["Key"]))

    shadowing.ops.s3.meta.events.register("provide-client-params.s3.*", count)
    status, _, err = shadowing.rules("promote")
    assert status == 0, err
    assert shadowing.ops.deployment().live == candidate
    assert sorted(name for name, _ in reads) == ["GetObject", "HeadObject"]


_OPENED: list[list[str]] = []  # the open calls seen while a test listens; an audit hook stays for the session


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _OPENED and args and isinstance(args[0], str | Path):
        _OPENED[-1].append(str(args[0]))


def test_the_record_reads_each_local_rule_file_once(shadowing: Shadowing) -> None:
    # With the packaged rules live, the record's rule sets include those of the local rules/: a file is read and
    # parsed once for the pipelines it names and its rule set, not once for each.
    shadowing.candidate()
    shadowing.events(AGREED)
    if not _OPENED:
        sys.addaudithook(_audit)
    opened: list[str] = []
    _OPENED.append(opened)
    try:
        status, out, err = shadowing.rules("shadow-status")
    finally:
        _OPENED.remove(opened)
    assert status == 0, err
    assert "  mismatches by rule set: " + ", ".join(f"{name} 0" for name in RULESETS) in out
    rules = sorted(path.name for path in (shadowing.ops.root / "rules").glob("*.yaml"))
    read = Counter(Path(path).name for path in opened if Path(path).parent.name == "rules")
    assert read == Counter(rules), read


# A code deploy while a candidate is in shadow, after which the function refuses it (its pipeline file, or a function
# its rules call, is no longer the code's). Defect: the record summed the evaluations the containers made before the
# deploy and said nothing: 5 agreed, no warning, and `promote --require-agreement` made it live, for every container
# to refuse it too (an ERROR line each, the live rules kept). Every refusal is a `RulesBundleErrors` count, by the
# same dimensions: one in the window is now a warning, and the gate refuses the candidate.


def bundle_errors(shadowing: Shadowing, count: int) -> None:
    """``count`` bundles the function refused (or could not read), in CloudWatch as the watcher counts them."""
    from runtime.bundlewatch import ERROR_METRIC

    written: list[str] = []
    metrics = EmfMetrics.from_env({"STACK_NAME": STACK})
    assert metrics is not None
    metrics._write = written.append
    for _ in range(count):
        metrics.count(PIPELINE, ERROR_METRIC)
    for line in written:
        extract(shadowing.cloudwatch, line)


def test_a_candidate_the_function_refuses_since_a_code_deploy_is_warned_of_and_not_promoted_by_the_gate(
    shadowing: Shadowing,
) -> None:
    candidate = shadowing.candidate()
    shadowing.events(*[AGREED] * 5)  # before the code deploy
    bundle_errors(shadowing, 3)  # after it: new containers refuse the candidate
    at = shadowing.ops.deployment().updated_at
    status, out, _ = shadowing.rules("shadow-status")
    assert status == 0
    assert out.splitlines()[1] == "  evaluations 5: mismatches 0 (0.0%), agreed 5"
    assert out.splitlines()[-1] == (
        f"warning: the function counted 3 RulesBundleErrors since revision 1 at {at}: "
        "it refused a bundle or could not read one (after a code deploy, say, the candidate: it is then evaluated no "
        "more); the ERROR lines of runtime.bundlewatch name the bundle and why (for a cause gone since, `shadow "
        "--clear` then `shadow` it again starts its record afresh)"
    )
    status, out, err = shadowing.rules("promote", "--require-agreement")
    assert (status, out) == (2, "")
    assert "pipeline-rules: WARNING: the function counted 3 RulesBundleErrors since revision 1 at " in err
    assert err.endswith(
        f"pipeline-rules: error: the shadow candidate {candidate} has 1 WARNING(s) above: not promoted "
        "(--require-agreement)\n"
    )
    assert shadowing.ops.deployment().revision == 1


# Two operators: bob's candidate in shadow beside alice's live bundle L1; meanwhile alice publishes a fix live (L2:
# whoever asks for an agent goes to a person), the candidate staying in shadow. Defect: the candidate, published
# from L1's files, agreed on every event (none asked for an agent), shadow-status and promote said nothing of the
# live change, and `promote --require-agreement` made it live: alice's fix was gone, with no line saying so. The
# record now warns that the live rules changed while the candidate was in shadow (which revision, who, what), since
# promoting it undoes that change unless it carries it, and the gate refuses it.


def test_a_live_change_made_while_a_candidate_was_in_shadow_is_warned_of_and_not_undone_by_the_gate(
    shadowing: Shadowing,
) -> None:
    ops = shadowing.ops
    ops.rules("publish", "--live", "--by", "alice")
    candidate = shadowing.candidate()  # bob's, from the live files: VIPs to a person
    fix = ROUTING.replace(
        "rules:\n",
        "rules:\n  - id: asks_for_agent\n    when: \"has_word(request.body || '', 'agent')\"\n"
        "    then: {target: handoff}\n",
        1,
    )
    ops.edit("40_routing.yaml", fix)
    status, out, err = shadowing.rules("publish", "--live", "--by", "alice", "--note", "agents to a person")
    assert status == 0, err
    fixed = ops.deployment()
    assert (fixed.revision, fixed.shadow) == (3, candidate)
    shadowing.events(*[AGREED] * 5)

    status, out, _ = shadowing.rules("shadow-status")
    assert status == 0 and out.splitlines()[1] == "  evaluations 5: mismatches 0 (0.0%), agreed 5"
    assert out.splitlines()[-1] == (
        f"warning: the live rules changed while the candidate was in shadow: revision 3 ({fixed.updated_at} by alice: "
        f"agents to a person) made {fixed.live} live after revision 2 shadowed the candidate beside "
        f"{fixed.history[1]['live']}: promoting the candidate undoes that change unless it carries it too (publish "
        f"it again from {fixed.live}'s files, `pipeline-rules pull {fixed.live}`, and shadow that)"
    )
    status, out, err = shadowing.rules("promote", "--require-agreement", "--by", "bob")
    assert (status, out) == (2, "")
    assert "pipeline-rules: WARNING: the live rules changed while the candidate was in shadow: revision 3 " in err
    assert ops.deployment() == fixed
