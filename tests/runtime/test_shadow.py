"""Shadow evaluation: a candidate bundle decides every event again, with no extra AWS call and no effect.

The candidate is published with ``pipeline-rules publish --shadow`` on moto's S3 and read by the
container's watcher; the live run's AWS calls are recorded at the boto3 boundary (``AwsSpy``).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from engine.calls import CallLimits
from runtime.app import Application, shadow_budget
from runtime.bundlewatch import BundleWatcher
from steps import functions
from tests.support.aws import AwsSpy
from tests.support.bundles import (
    BUCKET,
    ROOT,
    ROUTING,
    VIP_ROUTING,
    Ops,
    emf_documents,
    event_lines,
    make_bucket,
    working_copy,
)
from tests.support.clock import install_clock, slow_machine
from tests.support.expect import EMPTY_TWIML
from tests.support.logscan import forbid
from tests.support.webhooks import rest_event, status_params, whatsapp_params

Logs = Callable[..., list[dict[str, Any]]]
PROJECT_STATUS = (ROOT / "rules" / "10_project_status.yaml").read_text()
# A candidate that serves trial projects too.
TRIAL_STATUS = PROJECT_STATUS.replace(
    "when: \"conversation.project_status != 'active'\"",
    "when: \"conversation.project_status != 'active' && conversation.project_status != 'trial'\"",
    1,
).replace(
    "tests:\n",
    """tests:
  - name: a trial project is served
    given: {conversation: {project_status: trial}}
    expect: {rule: null, error: null}
""",
    1,
)
# A candidate whose new rule fails on data its tests never gave (a last_seen that is not a time).
FRAGILE_ROUTING = ROUTING.replace(
    "rules:\n",
    """rules:
  - id: late_night
    when: "conversation.last_seen && hour(conversation.last_seen, 'Europe/London') >= `22`"
    then: {target: handoff}
""",
    1,
).replace(
    "tests:\n",
    """tests:
  - name: a conversation last seen late goes to a person
    given: {request: {channel: sms}, conversation: {last_seen: "2026-11-25T22:30:00Z"}}
    expect: {rule: late_night, target: handoff}
""",
    1,
)
# A candidate whose new rule passes its test but backtracks on a long run of a's: the pattern is not refused at
# load (it nests no repetition), but its time grows with the fourth power of the text's length, and
# BACKTRACKING_BODY takes about 18 s here unbounded.
SLOW_ROUTING = ROUTING.replace(
    "rules:\n",
    """rules:
  - id: a_run_then_b
    description: messages with three a's and then a b go to a person
    when: "matches(request.body || '', 'a.*a.*a.*b')"
    then: {target: handoff}
""",
    1,
).replace(
    "tests:\n",
    """tests:
  - name: three as then b
    given: {request: {channel: whatsapp, body: aaab}, conversation: {}}
    expect: {rule: a_run_then_b, target: handoff}
""",
    1,
)
BACKTRACKING_BODY = "a" * 800 + "!"


@pytest.fixture
def ops(world: Any, boto_session: Any, tmp_path: Any) -> Ops:
    s3 = boto_session.client("s3")
    make_bucket(s3)
    return Ops(s3, working_copy(tmp_path / "ops"))


class Shadowed:
    """A container whose watcher has read the deployment (a candidate in shadow), and a spy on its AWS calls."""

    def __init__(self, application: Application, watcher: BundleWatcher, now: list[float]) -> None:
        self.application = application
        self.watcher = watcher
        self.now = now
        self.aws = AwsSpy(application)

    def message(self, **params: str) -> dict[str, Any]:
        return self.application.handle(rest_event("whatsapp", whatsapp_params(**params)), None)

    def refresh(self) -> None:
        self.now[0] += self.watcher.interval
        self.watcher.poke()
        assert self.watcher.wait(10)


@pytest.fixture
def shadowed(world: Any, ops: Ops, boto_session: Any) -> Callable[[], Shadowed]:
    import handler

    world.add_default_secrets()

    def start() -> Shadowed:
        application = handler.reload(boto_session)
        install_clock(application)  # the deadline clock stands still, as the conftest's containers' does
        now = [0.0]
        env = {**os.environ, "RULES_BUCKET": BUCKET}
        watcher = BundleWatcher.from_env(application, handler.TASK_ROOT, env, CallLimits(), clock=lambda: now[0])
        application.watcher = watcher
        watcher.load()
        return Shadowed(application, watcher, now)

    return start


def shadowing(ops: Ops, shadowed: Callable[[], Shadowed], rules_file: str, text: str) -> Shadowed:
    """A container started after ops published ``text`` as ``rules_file`` for shadow evaluation."""
    ops.edit(rules_file, text)
    ops.publish("--shadow")
    return shadowed()


def shadow_lines(logs: Logs) -> list[dict[str, Any]]:
    return [line for line in logs() if line["message"] == "shadow_mismatch"]


def metrics(out: str) -> dict[str, Any]:
    (document,) = [d for d in emf_documents(out) if "Invocations" in d]
    return document


def counted(document: dict[str, Any]) -> dict[str, int]:
    """The shadow metrics of an invocation's document, checked to be per-pipeline counts."""
    found = {name: value for name, value in document.items() if name.startswith("Shadow")}
    declared = {
        metric["Name"]: (metric["Unit"], directive["Dimensions"])
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert all(declared[name] == ("Count", [["Pipeline"]]) for name in found)
    return found


def test_a_shadow_decides_every_event_again_with_no_extra_call_and_no_effect(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish("--shadow", "--note", "VIPs to a person?")
    container = shadowed()
    live = container.application.deployed("twilio_inbound")
    assert live.shadow is not None and live.shadow.source == f"bundle {candidate}, revision 1, shadow"
    world.add_conversation(vip=True)
    capsys.readouterr()

    response = container.message()

    assert response["statusCode"] == 200 and response["body"] == EMPTY_TWIML
    assert len(world.stage_rows()) == len(world.lock_rows()) == len(world.sent("whatsapp")) == 1
    assert world.sent("handoff") == []
    calls = container.aws.names()
    # The live run's calls only: the lookup, the secret, one batch read, stage ‖ lock ‖ replay record, send ‖ sent.
    assert calls[:3] == ["dynamodb.Query", "secretsmanager.GetSecretValue", "dynamodb.BatchGetItem"]
    assert sorted(calls[3:]) == ["dynamodb.PutItem"] * 4 + ["sqs.SendMessage"]
    (batch,) = container.aws.of("dynamodb.BatchGetItem")
    (conversation,) = [read for table, read in batch["RequestItems"].items() if "vip" in str(read)]
    assert "vip" in conversation["ExpressionAttributeNames"].values()  # the one read covers the candidate's rules
    (event,) = event_lines(json_logs())
    assert (event["outcome"], event["target"], event["rules"]["routing"]) == ("QUEUED", "whatsapp", "channel_queue")
    (line,) = shadow_lines(json_logs)
    assert line["level"] == "INFO" and line["rulesets"] == ["routing"]
    assert line["live"] == {
        "version": live.live.version,
        "outcome": "ROUTED",
        "target": "whatsapp",
        "rules": {"project_status": None, "channel": None, "conversation_lock": None, "routing": "channel_queue"},
    }
    assert line["candidate"] == {
        "version": live.shadow.version,
        "source": live.shadow.source,
        "outcome": "ROUTED",
        "target": "handoff",
        "rules": {"project_status": None, "channel": None, "conversation_lock": None, "routing": "vip_to_human"},
    }
    assert line["conversation_id"] == event["conversation_id"]
    assert counted(metrics(capsys.readouterr().out)) == {
        "ShadowEvaluations": 1,
        "ShadowMismatches": 1,
        "ShadowMismatch.routing": 1,
    }


def test_a_shadowed_container_spends_no_time_budget_on_a_slow_machine(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # These tests are about the shadow's verdicts, not the pipeline's deadline: load must not spend it.
    slow_machine(monkeypatch, 1.0)  # each read of the real deadline clock a second later: spent by the fifth
    container = shadowing(ops, shadowed, "40_routing.yaml", VIP_ROUTING)
    world.add_conversation(vip=False)
    assert container.message()["body"] == EMPTY_TWIML
    assert len(world.stage_rows()) == len(world.sent("whatsapp")) == 1


def test_agreement_costs_only_the_count(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    container = shadowing(ops, shadowed, "40_routing.yaml", VIP_ROUTING)
    world.add_conversation(vip=False)
    capsys.readouterr()
    container.message()
    assert shadow_lines(json_logs) == []
    assert counted(metrics(capsys.readouterr().out)) == {"ShadowEvaluations": 1}


def test_a_candidate_whose_evaluation_fails_is_counted_so_and_the_answer_stands(
    ops: Ops,
    shadowed: Callable[[], Shadowed],
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defect: a comparison that raised was logged and left no count, so the candidate's ShadowMismatches of 0 read
    as agreement and no alarm said it was never evaluated."""
    import runtime.shadow

    container = shadowing(ops, shadowed, "40_routing.yaml", VIP_ROUTING)
    world.add_conversation(vip=False)

    def broken(*_: Any) -> None:
        raise RuntimeError("a bug in the comparison")

    monkeypatch.setattr(runtime.shadow, "compare", broken)
    capsys.readouterr()
    response = container.message()

    assert response["statusCode"] == 200 and response["body"] == EMPTY_TWIML
    assert len(world.stage_rows()) == len(world.sent("whatsapp")) == 1
    (line,) = [line for line in json_logs(logging.ERROR) if line["message"] == "shadow evaluation failed"]
    assert line["pipeline"] == "twilio_inbound"
    assert counted(metrics(capsys.readouterr().out)) == {"ShadowFailures": 1}


# The shadow counts of an invocation's metrics document (defect: the document named the live rules version only, so
# ShadowEvaluations and ShadowMismatches could not be told apart by candidate once another one was deployed).


def test_the_shadow_counts_name_the_candidate_they_are_of(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    container = shadowing(ops, shadowed, "40_routing.yaml", VIP_ROUTING)
    candidate = container.application.deployed("twilio_inbound").shadow
    assert candidate is not None
    world.add_conversation(vip=True)
    capsys.readouterr()
    container.message()
    document = metrics(capsys.readouterr().out)
    assert counted(document)["ShadowMismatches"] == 1
    assert (document["CandidateVersion"], document["CandidateSource"]) == (candidate.version, candidate.source)
    directives = document["_aws"]["CloudWatchMetrics"]
    declared = [metric["Name"] for directive in directives for metric in directive["Metrics"]]
    assert "CandidateVersion" not in declared  # a property, as RulesVersion: no metric per candidate


def test_an_event_that_never_reaches_the_rules_is_not_shadowed(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    container = shadowing(ops, shadowed, "40_routing.yaml", VIP_ROUTING)
    world.add_conversation(vip=True)
    capsys.readouterr()
    container.application.handle(rest_event("whatsapp", status_params()), None)
    assert counted(metrics(capsys.readouterr().out)) == {}
    assert shadow_lines(json_logs) == []


def test_a_validation_change_is_counted_on_its_own_rule_set(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    container = shadowing(ops, shadowed, "10_project_status.yaml", TRIAL_STATUS)
    world.add_conversation(project_status="trial")
    capsys.readouterr()
    container.message()
    (line,) = shadow_lines(json_logs)
    assert line["rulesets"] == ["project_status"]
    assert (line["live"]["outcome"], line["live"]["rules"]["project_status"]) == (
        "PROJECT_INACTIVE",
        "project_inactive",
    )
    assert (line["candidate"]["outcome"], line["candidate"]["rules"]) == (
        "ROUTED",
        {"project_status": None, "channel": None, "conversation_lock": None, "routing": "channel_queue"},
    )
    assert counted(metrics(capsys.readouterr().out))["ShadowMismatch.project_status"] == 1


def test_a_candidate_rule_that_fails_is_only_its_own_verdict(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs
) -> None:
    container = shadowing(ops, shadowed, "40_routing.yaml", FRAGILE_ROUTING)
    world.add_conversation(last_seen="yesterday")
    assert container.message()["statusCode"] == 200
    assert len(world.sent("whatsapp")) == 1
    (line,) = shadow_lines(json_logs)
    assert (line["candidate"]["outcome"], line["candidate"]["rules"]["routing"]) == ("INTERNAL_ERROR", "late_night")
    assert line["live"]["outcome"] == "ROUTED"


def test_promote_makes_the_shadow_live(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish("--shadow")
    container = shadowed()
    world.add_conversation(vip=True)
    status, out, _ = ops.rules("promote", "--note", "looks right")
    assert (status, out.split(" (the shadow candidate ")[0]) == (0, f"deployed: revision 2: live {candidate}")
    container.refresh()
    deployed = container.application.deployed("twilio_inbound")
    assert deployed.shadow is None and deployed.live.source == f"bundle {candidate}, revision 2"
    capsys.readouterr()
    container.message()
    (event,) = event_lines(json_logs())
    assert (event["outcome"], event["rules"]["routing"]) == ("HANDED_OFF", "vip_to_human")
    assert counted(metrics(capsys.readouterr().out)) == {}


def timer_state() -> tuple[Any, tuple[float, float]]:
    return signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)


def test_a_slow_candidate_is_cut_off_and_the_answer_stands(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    forbid(BACKTRACKING_BODY)
    container = shadowing(ops, shadowed, "40_routing.yaml", SLOW_ROUTING)
    candidate = container.application.deployed("twilio_inbound").shadow
    assert candidate is not None
    world.add_conversation()
    before = timer_state()
    capsys.readouterr()

    response = container.message(body=BACKTRACKING_BODY)

    assert response["statusCode"] == 200 and response["body"] == EMPTY_TWIML
    assert len(world.stage_rows()) == len(world.sent("whatsapp")) == 1 and world.sent("handoff") == []
    (event,) = event_lines(json_logs())
    assert (event["outcome"], event["rules"]["routing"]) == ("QUEUED", "channel_queue")
    (line,) = [line for line in json_logs(logging.WARNING) if line["message"] == "shadow_timeout"]
    assert (line["level"], line["pipeline"], line["budget_ms"]) == ("WARNING", "twilio_inbound", 100.0)
    assert line["candidate"] == {"version": candidate.version, "source": candidate.source}
    assert line["conversation_id"] == event["conversation_id"]
    assert shadow_lines(json_logs) == []
    assert counted(metrics(capsys.readouterr().out)) == {"ShadowTimeouts": 1}
    assert timer_state() == before


@pytest.mark.parametrize(
    ("setting", "remaining_ms", "budget_ms"),
    [("250", None, 250.0), ("1000", 1400, 900.0)],
    ids=["configured", "capped-by-the-invocation"],
)
def test_the_shadow_budget_is_configured_and_never_outlasts_the_invocation(
    ops: Ops,
    shadowed: Callable[[], Shadowed],
    world: Any,
    json_logs: Logs,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    remaining_ms: int | None,
    budget_ms: float,
) -> None:
    monkeypatch.setenv("SHADOW_BUDGET_MS", setting)
    # Each search is cut off after its own 100 ms otherwise (below): here the candidate's budget alone bounds it.
    monkeypatch.setattr(functions, "MATCH_BUDGET_SECONDS", 5.0)
    container = shadowing(ops, shadowed, "40_routing.yaml", SLOW_ROUTING)
    world.add_conversation()
    context = None
    if remaining_ms is not None:  # the Lambda has this much left, less the answer's 0.5 s margin
        context = SimpleNamespace(aws_request_id="budget", get_remaining_time_in_millis=lambda: remaining_ms)
    event = rest_event("whatsapp", whatsapp_params(body=BACKTRACKING_BODY))
    response = container.application.handle(event, context)
    assert response["body"] == EMPTY_TWIML and len(world.sent("whatsapp")) == 1
    (line,) = [line for line in json_logs(logging.WARNING) if line["message"] == "shadow_timeout"]
    assert line["budget_ms"] == budget_ms


def test_a_search_in_a_candidate_with_a_longer_budget_is_cut_off_as_it_would_be_live(
    ops: Ops,
    shadowed: Callable[[], Shadowed],
    world: Any,
    json_logs: Logs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Live, a search is cut off after 100 ms and fails its condition: the shadow predicts that, not a route.

    Before, with SHADOW_BUDGET_MS above 100, a search that took between the two decided in the shadow (agreeing,
    or differing only by its route) and, once promoted, failed every such message.
    """
    monkeypatch.setenv("SHADOW_BUDGET_MS", "1000")
    container = shadowing(ops, shadowed, "40_routing.yaml", SLOW_ROUTING)
    world.add_conversation()
    capsys.readouterr()
    response = container.message(body=BACKTRACKING_BODY)
    assert response["body"] == EMPTY_TWIML and len(world.sent("whatsapp")) == 1
    (line,) = shadow_lines(json_logs)
    assert (line["candidate"]["outcome"], line["candidate"]["rules"]["routing"]) == ("INTERNAL_ERROR", "a_run_then_b")
    assert [line for line in json_logs(logging.WARNING) if line["message"] == "shadow_timeout"] == []
    assert "ShadowTimeouts" not in counted(metrics(capsys.readouterr().out))


@pytest.mark.parametrize("setting", ["0", "-5", "1001", "fast", "nan", "inf"])
def test_a_bad_shadow_budget_is_the_default_and_says_so(json_logs: Logs, setting: str) -> None:
    assert shadow_budget({"SHADOW_BUDGET_MS": setting}) == 0.1
    (line,) = json_logs(logging.ERROR)
    assert "SHADOW_BUDGET_MS" in line["message"]
    assert shadow_budget({}) == 0.1 and shadow_budget({"SHADOW_BUDGET_MS": " 40 "}) == 0.04


def test_where_the_time_cannot_be_bounded_the_candidate_is_not_run(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    container = shadowing(ops, shadowed, "40_routing.yaml", SLOW_ROUTING)
    world.add_conversation()
    capsys.readouterr()
    with ThreadPoolExecutor(1) as pool:  # a thread other than the main one
        first = pool.submit(container.message, sid="SM" + "2" * 32, body=BACKTRACKING_BODY).result()
        second = pool.submit(container.message, sid="SM" + "3" * 32, body=BACKTRACKING_BODY).result()
    assert first["body"] == second["body"] == EMPTY_TWIML and len(world.stage_rows()) == 2
    (line,) = json_logs(logging.WARNING)
    assert line["message"].startswith("shadow evaluation skipped, its time cannot be bounded: only the main thread")
    assert [counted(document) for document in emf_documents(capsys.readouterr().out)] == [{}, {}]


def test_a_check_that_deploys_during_an_event_leaves_the_event_on_one_configuration(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish("--shadow")
    container = shadowed()
    before = container.application.deployed("twilio_inbound")
    world.add_conversation(vip=True)
    ops.rules("promote")
    checked: list[bool] = []

    def check_now(**_: Any) -> None:
        # The background check finishes while the live run reads the conversation: the candidate is made live.
        if not checked:
            checked.append(True)
            container.watcher.check()

    dynamodb, read = container.aws._event("after-call", "dynamodb.BatchGetItem")
    dynamodb.meta.events.register(read, check_now)
    capsys.readouterr()
    container.message()

    after = container.application.deployed("twilio_inbound")
    assert checked and after.shadow is None and after.live.source == f"bundle {candidate}, revision 2"
    (event,) = event_lines(json_logs())
    assert (event["rules"]["routing"], event["rules_version"]) == ("channel_queue", before.live.version)
    assert "rules_source" not in event  # the packaged rules decided it, as before the check
    (line,) = shadow_lines(json_logs)
    assert line["candidate"]["source"] == f"bundle {candidate}, revision 1, shadow"
    document = metrics(capsys.readouterr().out)
    assert (
        document["RulesVersion"] == before.live.version and document["CandidateSource"] == line["candidate"]["source"]
    )
    assert counted(document)["ShadowMismatches"] == 1
    container.message(sid="SM" + "9" * 32)
    assert event_lines(json_logs())[-1]["rules"]["routing"] == "vip_to_human"
