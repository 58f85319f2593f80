"""The on-call runbook (docs/deploy.md, "On call") works as written, on the handler's real output.

Each loss is played with the real handler on moto; its JSON log lines are read as CloudWatch Logs Insights reads
them (``tests.support.insights``), every Logs Insights query the docs show is run over them, and the documented
recovery (``pipeline-event build`` then invoking the function) is carried out: the message must end staged and
triggered exactly once.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.deploy.cfn import (
    STACK,
    Datapoint,
    alarm_periods,
    alarm_series,
    api_answer,
    emf_datapoints,
    firing,
    gateway_response,
    load_template,
    placeholder,
    resolve,
)
from tests.runtime.test_shadow import BACKTRACKING_BODY, SLOW_ROUTING, Shadowed, ops, shadowed
from tests.support.awscli import aws_command, aws_words
from tests.support.bundles import ROUTING, VIP_ROUTING, Ops
from tests.support.email import add_email_world, email_event
from tests.support.expect import ROOT
from tests.support.faults import EndState, Fault, FaultInjector, SimulatedCrash, observe
from tests.support.insights import discovered, referenced_fields, run
from tests.support.timeline import FixedClock
from tests.support.webhooks import ACCOUNT, COMPANY_WA, TOKEN, USER, rest_event, sms_params, whatsapp_params
from tools.dryrun import event_cli
from tools.sendgrid_events import Email

Logs = Callable[..., list[dict[str, Any]]]
__all__ = ["ops", "shadowed"]  # fixtures of the shadow tests, used here
TEMPLATE = load_template()
RUNBOOK = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
LOST_SID = "SM" + "a" * 32
RETRIED_SID = "SM" + "b" * 32
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
TRACE = "1-6744aaaa-0123456789abcdef01234567"
_QUERY_START = re.compile(r"^(fields|filter|stats) ")


def lost_message_cause(
    container: Any, alarm: str, code: str, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Post the lost WhatsApp message (answered 200 ``code``): ``alarm`` fires, and its runbook query lists the message
    alone; the ``error_cause`` the query shows for it."""
    assert container.handler(rest_event("whatsapp", whatsapp_params(sid=LOST_SID)), None)["statusCode"] == 200
    out = capsys.readouterr().out
    assert alarm in firing(TEMPLATE, emf_datapoints(out))
    (row,) = run(runbook_query(alarm), logged(json_logs, out))
    assert (row["message_sid"], row["error_code"]) == (LOST_SID, code)
    return row.get("error_cause")


def documented_queries() -> Iterator[tuple[str, str]]:
    """Every Logs Insights query in docs/*.md (fenced blocks of queries: one a line, a line that starts with ``|``
    continuing the one before), with its file."""
    for path in sorted((ROOT / "docs").glob("*.md")):
        for block in re.findall(r"```[a-z]*\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
            queries = re.sub(r"\n\s*\|", " |", block.strip()).splitlines()
            if queries and all(_QUERY_START.match(query) for query in queries):
                yield from ((path.name, query) for query in queries)


def runbook_query(alarm: str) -> str:
    """The query the runbook gives for ``alarm`` (the first query block after the line naming it)."""
    section = RUNBOOK[RUNBOOK.index("## On call") :]
    found = re.search(rf"`{alarm}`.*?```\n(.*?)\n```", section, re.S)
    assert found is not None, f"the runbook gives no query for {alarm}"
    return found.group(1)


def runbook_commands() -> list[list[str]]:
    """The ``pipeline-event build`` command of the runbook's replay, split into arguments."""
    section = RUNBOOK[RUNBOOK.index("## On call") :]
    found = re.search(r"```sh\n(pipeline-event build.*?)\n(aws lambda invoke.*?)\n```", section, re.S)
    assert found is not None, "the runbook shows no replay command"
    return [found.group(1).replace("\\\n", " ").split(), found.group(2).split()]


def logged(json_logs: Logs, out: str) -> list[str]:
    """What the function wrote, as CloudWatch Logs stores it: the JSON log lines and the EMF documents."""
    return [json.dumps(line) for line in json_logs(logging.INFO)] + [line for line in out.splitlines() if line]


@pytest.fixture
def losses(world: Any, cold_start: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """A message lost to a final error, one that Twilio's retry delivered, one lost on every attempt, one refused."""
    world.add_conversation()
    world.add_default_secrets()
    # As Lambda starts it: each invocation's trace header set (tracing itself is off without a daemon address).
    container = cold_start(STACK_NAME="the-stack", _X_AMZN_TRACE_ID=f"Root={TRACE};Parent=53995c3f42cd8ad8;Sampled=0")
    capsys.readouterr()
    container.aws.fail("sqs.SendMessage", "AccessDenied", 403, times=1)
    lost = container.handler(rest_event("whatsapp", whatsapp_params(sid=LOST_SID)), None)
    stage_table = world.resources.stage_table
    container.aws.fail(
        "dynamodb.PutItem", "ThrottlingException", times=1, where=lambda c: c["TableName"] == stage_table
    )
    with pytest.raises(Exception, match="TRANSIENT"):
        container.handler(rest_event("whatsapp", whatsapp_params(sid=RETRIED_SID)), None)
    retried = container.handler(rest_event("whatsapp", whatsapp_params(sid=RETRIED_SID)), None)
    assert (lost["statusCode"], retried["statusCode"]) == (200, 200)
    assert len(world.sent("whatsapp")) == 1, "only the retried message triggered"
    return {"container": container, "lines": logged(json_logs, capsys.readouterr().out)}


def test_the_event_line_names_the_message_it_decided(losses: dict[str, Any]) -> None:
    # Without it, an alarm's count says that messages were lost but not which: nothing to replay them by.
    events = [json.loads(line) for line in losses["lines"] if json.loads(line).get("message") == "event"]
    assert [event.get("message_sid") for event in events] == [LOST_SID, RETRIED_SID, RETRIED_SID]


def test_an_email_event_line_names_the_stage_row_it_wrote(
    world: Any, cold_start: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    add_email_world(world)
    container = cold_start()
    assert container.handler(email_event(), None)["statusCode"] == 200
    (row,) = world.stage_rows()
    (event,) = [line for line in json_logs() if line["message"] == "event"]
    assert event["message_sid"] == row["message_sid"]


def test_the_runbook_query_for_final_errors_lists_the_lost_message(losses: dict[str, Any]) -> None:
    rows = run(runbook_query("MessageLossAlarm"), losses["lines"])
    assert [(row["message_sid"], row["error_code"], row["error_cause"]) for row in rows] == [
        (LOST_SID, "QUEUE_ERROR", "AccessDenied")
    ]


def test_the_runbook_query_for_transient_errors_lists_only_messages_no_attempt_delivered(
    world: Any, losses: dict[str, Any], json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    container = losses["container"]
    gone = "SM" + "c" * 32
    stage_table = world.resources.stage_table
    container.aws.fail("dynamodb.PutItem", "ThrottlingException", where=lambda call: call["TableName"] == stage_table)
    for _ in range(3):  # Twilio's 1 + rc attempts
        with pytest.raises(Exception, match="STAGE_WRITE_TRANSIENT_ERROR"):
            container.handler(rest_event("whatsapp", whatsapp_params(sid=gone)), None)
    lines = logged(json_logs, capsys.readouterr().out)
    rows = run(runbook_query("TransientErrorsAlarm"), lines)
    assert [row["message_sid"] for row in rows] == [gone]


def test_the_runbook_query_for_signature_mismatches_lists_the_refused_message(
    world: Any, cold_start: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_conversation()
    world.add_default_secrets(token="the-token-before-the-rotation")
    container = cold_start()
    assert container.handler(rest_event("whatsapp", whatsapp_params(sid=LOST_SID)), None)["statusCode"] == 200
    unknown = whatsapp_params(sid=RETRIED_SID, From="whatsapp:+15550001111")
    container.handler(rest_event("whatsapp", unknown), None)
    rows = run(runbook_query("SignatureMismatchAlarm"), logged(json_logs, capsys.readouterr().out))
    assert [row["message_sid"] for row in rows] == [LOST_SID]


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [(("sqs.SendMessage", "AccessDenied", 403), 1), (("sqs.SendMessage", "ThrottlingException", 400), 3)],
    ids=["final error", "transient on every attempt"],
)
def test_the_documented_replay_stages_and_triggers_a_lost_message_exactly_once(
    world: Any,
    cold_start: Any,
    monkeypatch: pytest.MonkeyPatch,
    json_logs: Logs,
    fault: tuple[str, str, int],
    attempts: int,
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start()
    operation, code, status = fault
    container.aws.fail(operation, code, status, times=attempts)
    for _ in range(attempts):  # Twilio's attempts: 1 for a final error (answered 200), 1 + rc for a raise
        try:
            container.handler(rest_event("whatsapp", whatsapp_params(sid=LOST_SID)), None)
        except Exception as raised:  # noqa: BLE001 - the transient fault, raised for Twilio to retry
            assert "QUEUE_TRANSIENT_ERROR" in str(raised)
    assert world.sent("whatsapp") == [], "the message is lost"

    # The message as Twilio's message log shows it, replayed with the runbook's commands once the cause is repaired.
    answer = replayed(container, monkeypatch, LOST_SID)["answer"]

    assert answer["statusCode"] == 200
    events = [line for line in json_logs() if line["message"] == "event"]
    assert events[-1]["outcome"] == "QUEUED" and events[-1]["message_sid"] == LOST_SID
    assert [row["message_sid"] for row in world.stage_rows()] == [LOST_SID]
    (trigger,) = world.sent("whatsapp")
    assert trigger[0]["conversation_id"] == world.stage_rows()[0]["conversation_id"]


def test_the_runbook_query_for_misrouted_messages_lists_each_with_its_reason(misrouted_lines: list[str]) -> None:
    rows = run(runbook_query("MisroutedMessagesAlarm"), misrouted_lines)
    assert [row["message_sid"] for row in rows] == [LOST_SID]
    assert "addressed as on …/sms was posted to …/whatsapp" in rows[0]["reason"]
    assert rows[0]["reason"].endswith("[signature valid]")
    assert "MisroutedMessages" in RUNBOOK[: RUNBOOK.index("## On call")], "the webhook registration warns of it"


@pytest.fixture
def misrouted_lines(world: Any, cold_start: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The lines of an SMS posted to …/whatsapp (a Messaging Service posting both channels to one URL), then junk."""
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start()
    assert container.handler(rest_event("whatsapp", sms_params(sid=LOST_SID)), None)["statusCode"] == 200
    junk = whatsapp_params(sid=RETRIED_SID, From="whatsapp:4155550123")
    assert container.handler(rest_event("whatsapp", junk), None)["statusCode"] == 200
    return logged(json_logs, capsys.readouterr().out)


def test_every_documented_logs_insights_query_reads_fields_the_function_writes(
    losses: dict[str, Any], shadow_and_bundle_lines: list[str], misrouted_lines: list[str]
) -> None:
    lines = [*losses["lines"], *shadow_and_bundle_lines, *misrouted_lines]
    written = {field for line in lines for field in _fields(line)}
    queries = list(documented_queries())
    assert len(queries) >= 13
    for source, query in queries:
        run(query, lines)  # in the subset of the language this reads
        missing = referenced_fields(query) - written
        assert not missing, f"{source}: {query!r} reads {sorted(missing)}, which no line the function writes has"


def _fields(line: str) -> set[str]:
    return set(discovered(line))


@pytest.fixture
def shadow_and_bundle_lines(
    world: Any, ops: Ops, shadowed: Callable[[], Shadowed], json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """The lines of a shadow mismatch, a shadow timeout and a refused rules bundle, as the function writes them."""
    world.add_conversation(vip=True, created_at="2026-11-21T10:00:00Z")  # newer: the one the lookup picks
    ops.edit("40_routing.yaml", VIP_ROUTING)
    ops.publish("--shadow")
    shadowed().message()
    ops.edit("40_routing.yaml", SLOW_ROUTING)
    ops.publish("--shadow")
    shadowed().message(sid="SM" + "d" * 32, body=BACKTRACKING_BODY)
    ops.edit("40_routing.yaml", ROUTING)
    ops.publish("--live")  # a bundle decides, then a broken one is deployed over it
    ops.sneak_in({"rules/40_routing.yaml": ROUTING.replace("target: handoff", "target: handof", 1)})
    shadowed()
    lines = logged(json_logs, capsys.readouterr().out)
    messages = {json.loads(line).get("message") for line in lines}
    assert {"shadow_mismatch", "shadow_timeout"} <= messages
    assert any('"runtime.bundlewatch"' in line and '"ERROR"' in line for line in lines)
    return lines


def test_a_refused_rules_bundle_alarms_until_the_documented_rollback(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("STACK_NAME", STACK)
    world.add_conversation()
    good = ops.publish("--live")
    container = shadowed()
    ops.sneak_in({"rules/40_routing.yaml": ROUTING.replace("target: handoff", "target: handof", 1)})
    capsys.readouterr()
    container.refresh()
    assert alarm_periods(TEMPLATE, "RulesBundleErrorsAlarm", emf_datapoints(capsys.readouterr().out))

    status, out, err = ops.rules("rollback")
    assert status == 0, out + err
    container.refresh()
    container.message()
    after = capsys.readouterr().out
    assert firing(TEMPLATE, emf_datapoints(after)) == set()
    assert container.application.deployed("twilio_inbound").live.source.startswith(f"bundle {good}")


def test_a_shadow_timeout_alarms_until_the_documented_clear(
    ops: Ops, shadowed: Callable[[], Shadowed], world: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("STACK_NAME", STACK)
    world.add_conversation()
    ops.edit("40_routing.yaml", SLOW_ROUTING)
    ops.publish("--shadow")
    container = shadowed()
    capsys.readouterr()
    container.message(body=BACKTRACKING_BODY)
    assert "ShadowTimeoutAlarm" in firing(TEMPLATE, emf_datapoints(capsys.readouterr().out))

    status, out, err = ops.rules("shadow", "--clear")
    assert status == 0, out + err
    container.refresh()
    container.message(sid="SM" + "e" * 32, body=BACKTRACKING_BODY)
    assert firing(TEMPLATE, emf_datapoints(capsys.readouterr().out)) == set()


def test_a_message_refused_after_a_token_rotation_is_replayed_once_the_secret_holds_the_new_token(
    world: Any, cold_start: Any, monkeypatch: pytest.MonkeyPatch, json_logs: Logs
) -> None:
    world.add_conversation()
    world.add_default_secrets(token="the-token-before-the-rotation")
    container = cold_start()
    assert container.handler(rest_event("whatsapp", whatsapp_params(sid=LOST_SID)), None)["statusCode"] == 200
    assert world.stage_rows() == [] and world.sent("whatsapp") == []

    world.add_default_secrets(token=TOKEN)  # the runbook: update the secret, then replay
    monkeypatch.setenv("TENANT_TOKEN", TOKEN)
    out = io.StringIO()
    with redirect_stdout(out):
        build = ["build", "--channel", "whatsapp", "--sid", LOST_SID, "--from", USER, "--to", COMPANY_WA]
        assert event_cli.main([*build, "--body", "hi", "--token-env", "TENANT_TOKEN", "--url", API_URL]) == 0
    assert container.handler(json.loads(out.getvalue()), None)["statusCode"] == 200
    assert [line["outcome"] for line in json_logs() if line["message"] == "event"] == ["INVALID_SIGNATURE", "QUEUED"]
    assert [row["message_sid"] for row in world.stage_rows()] == [LOST_SID] and len(world.sent("whatsapp")) == 1


def test_the_runbook_query_for_final_errors_lists_every_code_the_loss_alarms_count() -> None:
    listed = re.search(r"error_code in \[(.*?)\]", runbook_query("MessageLossAlarm"))
    assert listed is not None
    counted = {
        dict(series.dimensions)["ErrorCode"]
        for alarm in ("MessageLossAlarm", "EmailLossAlarm", "SecretFetchFailedAlarm")
        for series in alarm_series(TEMPLATE, alarm)
    }
    assert set(json.loads(f"[{listed.group(1)}]")) == counted


def _named_in_on_call(alarm: str) -> bool:
    """Whether the runbook's On call section names ``alarm``, itself or by its family (``…QueueAgeAlarm``)."""
    section = RUNBOOK[RUNBOOK.index("## On call") : RUNBOOK.index("\n## ", RUNBOOK.index("## On call") + 1)]
    family = re.sub(r"^(WhatsApp|Sms|Handoff|Email)(?=(QueueAge|DeadLetter)Alarm$)", "…", alarm)
    return f"`{alarm}`" in section or f"`{family}`" in section


def test_every_alarm_of_the_template_has_an_on_call_entry() -> None:
    # Paged at 3 a.m. by an alarm the runbook never names, on-call has nothing to run and no one to ask.
    alarms = [name for name, resource in TEMPLATE["Resources"].items() if resource["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 20
    assert [alarm for alarm in alarms if not _named_in_on_call(alarm)] == []


def test_the_runbook_query_for_email_transient_errors_lists_the_emails_sendgrid_still_retries(
    world: Any, cold_start: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    # The email pipeline answers a transient fault 503 and never raises: the Twilio query (last status "raised")
    # lists none of them.
    add_email_world(world)
    container = cold_start(STACK_NAME="the-stack")
    capsys.readouterr()
    pending, delivered = Email(message_id="<pending@example.net>"), Email(message_id="<delivered@example.net>")
    container.aws.fail("sqs.SendMessage", "ThrottlingException", times=3)
    assert [container.handler(email_event(email), None)["statusCode"] for email in (pending, delivered, pending)] == [
        503,
        503,
        503,
    ]
    assert container.handler(email_event(delivered), None)["statusCode"] == 200
    lines = logged(json_logs, capsys.readouterr().out)
    events = [line for line in json_logs() if line["message"] == "event"]
    pending_sid, delivered_sid = events[0]["message_sid"], events[1]["message_sid"]
    assert pending_sid != delivered_sid and events[-1]["message_sid"] == delivered_sid
    listed, causes = runbook_query("EmailTransientErrorsAlarm").splitlines()
    assert [row["message_sid"] for row in run(listed, lines)] == [pending_sid]
    assert [(row["error_code"], row["error_cause"]) for row in run(causes, lines)] == [
        ("QUEUE_TRANSIENT_ERROR", "ThrottlingException")
    ]


def test_the_runbook_query_for_refused_signatures_tells_unsigned_posts_from_mismatches(
    world: Any, cold_start: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_conversation()
    world.add_default_secrets(token="the-token-before-the-rotation")
    container = cold_start()
    unsigned = rest_event("whatsapp", whatsapp_params(sid=RETRIED_SID), signature="")
    for event in (rest_event("whatsapp", whatsapp_params(sid=LOST_SID)), unsigned):
        assert container.handler(event, None)["statusCode"] == 200
    rows = run(runbook_query("InvalidSignatureAlarm"), logged(json_logs, capsys.readouterr().out))
    # Refused by the signature check (a known conversation's token: SignatureMismatchAlarm's case), or before any
    # AWS call (no signature, a foreign Host, an email's stale timestamp), which anyone can send.
    assert [(row.get("message_sid"), row.get("steps.parse"), row.get("steps.signature")) for row in rows] == [
        (LOST_SID, "ok", "INVALID_SIGNATURE"),
        (None, "INVALID_SIGNATURE", None),
    ]


def access_log_line(**context: str) -> str:
    """The stage's access log line as API Gateway writes it (template.yaml's format), ``$context`` values given."""
    access = TEMPLATE["Resources"]["WebhookApi"]["Properties"]["AccessLogSetting"]["Fn::If"][1]
    line = re.sub(r"\$context\.([\w.]+)", lambda found: context.get(found[1], "-"), access["Format"])
    json.loads(line)
    return line


def test_a_5xx_in_the_access_log_leads_to_the_function_lines_of_its_request(
    world: Any, cold_start: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    # The access log has the 5xx; the function's lines have the cause. With no id in common, on-call could only match
    # them by the minute, among every other request of that minute.
    world.add_conversation()
    world.add_default_secrets()
    trace = TRACE
    container = cold_start(_X_AMZN_TRACE_ID=f"Root={trace};Parent=53995c3f42cd8ad8;Sampled=0")
    container.aws.fail("sqs.SendMessage", "ThrottlingException", times=1)
    with pytest.raises(Exception, match="QUEUE_TRANSIENT_ERROR"):
        container.handler(rest_event("whatsapp", whatsapp_params(sid=LOST_SID)), None)
    lines = logged(json_logs, capsys.readouterr().out)
    answer = access_log_line(
        requestId="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        resourcePath="/whatsapp",
        status="502",
        apiId="abc123",
        xrayTraceId=trace,
        requestTime="07/Dec/2026:03:00:00 +0000",
    )

    section = RUNBOOK[RUNBOOK.index("`Api5xxAlarm`") :]
    access_query = re.search(r"`(filter status like [^`]*)`", section)
    assert access_query is not None, "the runbook gives no access log query for Api5xxAlarm"
    (row,) = run(access_query.group(1), [answer])
    function_query = runbook_query("Api5xxAlarm")
    ids = [key for key in row if key.lower().endswith("traceid") or key.lower().endswith("requestid")]
    rows = [found for key in ids for found in run(function_query.replace(f"<{key}>", str(row[key])), lines)]
    # The event line with its cause, and the invocation's metrics document (its steps' times).
    assert [(found["message"], found.get("message_sid"), found.get("error_cause")) for found in rows] == [
        ("event", LOST_SID, "ThrottlingException"),
        ("metrics", LOST_SID, None),
    ]


def test_every_error_code_a_pipeline_can_end_with_has_an_on_call_entry() -> None:
    # The codes no alarm watches are the ones on-call is asked about ("this tenant's messages stopped"): each must
    # say what it means and how to find its events, or the first hour goes to reading code.
    from engine.config import load_config

    function = TEMPLATE["Resources"]["PipelineFunction"]["Properties"]["Environment"]["Variables"]
    env = {name: placeholder(TEMPLATE, value) for name, value in function.items()}
    codes = {
        code
        for path in sorted((ROOT / "pipelines").glob("*.yaml"))
        for code in load_config(path, ROOT / "rules", env).errors
    }
    section = RUNBOOK[RUNBOOK.index("## On call") : RUNBOOK.index("\n## ", RUNBOOK.index("## On call") + 1)]
    assert len(codes) >= 19
    assert sorted(code for code in codes if f"`{code}`" not in section and f'"{code}"' not in section) == []


def test_the_runbook_query_for_an_unlisted_host_lists_its_refusals_and_only_a_genuine_one_alarms(
    world: Any, cold_start: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    """Twilio pointed at a custom domain that ``AllowedHosts`` lacks: the runbook's query lists each refusal with its
    verdict, and ``MisroutedMessagesAlarm`` fires for the genuine one, not for a forgery posted there."""
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(STACK_NAME=STACK, ALLOWED_HOSTS="hooks.example.com")
    capsys.readouterr()
    new = "hooks-new.example.com"
    forged = rest_event("whatsapp", whatsapp_params(sid=RETRIED_SID), host=new, token="not-the-tenants-token")
    assert container.handler(forged, None)["statusCode"] == 200
    forged_out = capsys.readouterr().out
    genuine = rest_event("whatsapp", whatsapp_params(sid=LOST_SID), host=new)
    assert container.handler(genuine, None)["statusCode"] == 200
    genuine_out = capsys.readouterr().out
    section = RUNBOOK[RUNBOOK.index("## On call") :]
    found = re.search(r"not in\nallowed_hosts \[signature valid\]`.*?```\n(.*?)\n```", section, re.S)
    assert found is not None, "the runbook gives no query for a host missing from AllowedHosts"

    rows = run(found.group(1), logged(json_logs, forged_out + genuine_out))

    reasons = [row["reason"] for row in rows]
    assert len(reasons) == 2 and reasons[0].endswith(" [INVALID_SIGNATURE]")
    assert reasons[1].endswith(" [signature valid]")
    # The genuine one's MessageSid, to find it in Twilio's log and replay it; the forgery's claimed one is not shown.
    assert [row.get("message_sid") for row in rows] == [None, LOST_SID]
    assert firing(TEMPLATE, emf_datapoints(forged_out)) == set()
    assert "MisroutedMessagesAlarm" in firing(TEMPLATE, emf_datapoints(genuine_out))


def on_call_block(containing: str) -> str:
    """The fenced block of the runbook's On call section whose text holds ``containing``."""
    section = RUNBOOK[RUNBOOK.index("## On call") : RUNBOOK.index("\n## ", RUNBOOK.index("## On call") + 1)]
    found = [block for block in re.findall(r"```[a-z]*\n(.*?)```", section, re.S) if containing in block]
    assert found, f"the runbook's On call section shows no block with {containing!r}"
    return found[0]


def replayed(container: Any, monkeypatch: pytest.MonkeyPatch, sid: str) -> dict[str, Any]:
    """The runbook's replay of ``sid`` (``pipeline-event build`` as written, Twilio's log of it filled in): the
    event ``aws lambda invoke`` sends, and the answer."""
    build, invoke = runbook_commands()
    assert build[:2] == ["pipeline-event", "build"] and invoke[:3] == ["aws", "lambda", "invoke"]
    values = {
        "<MessageSid>": sid,
        "<From>": USER,
        "<To>": COMPANY_WA,
        "<Body>": "Hello there!",
        "<AccountSid>": ACCOUNT,
        "<webhook-url>": API_URL,
    }
    arguments = [values.get(argument.strip("\"'"), argument.strip("\"'")) for argument in build[1 : build.index(">")]]
    monkeypatch.setenv(arguments[arguments.index("--token-env") + 1], TOKEN)
    out = io.StringIO()
    with redirect_stdout(out):
        assert event_cli.main(arguments) == 0
    event = json.loads(out.getvalue())
    return {"event": event, "answer": container.handler(event, None)}


@pytest.mark.parametrize("retries", ["died", "throttled"], ids=["every attempt died", "the retries were throttled"])
def test_a_message_whose_first_attempt_died_after_recording_it_is_recovered_by_the_runbook(
    world: Any,
    cold_start: Any,
    monkeypatch: pytest.MonkeyPatch,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    retries: str,
) -> None:
    """Lambda ended the first attempt (its timeout, a crash) after the stage row, the lock and the replay record were
    written and before the trigger was sent: no compensation ran. Twilio's retries died the same way
    (``FunctionErrorsAlarm``: no event line) or met a throttled send (``TransientErrorsAlarm``), which releases the
    lock but never the first attempt's record. The runbook's replay must still stage and trigger it exactly once."""
    import handler

    world.add_conversation()
    world.add_default_secrets()
    container = cold_start()
    clock = FixedClock(datetime.fromtimestamp(int(time.time()), UTC))
    handler._application.replace_services(clock=clock)
    faults = FaultInjector(handler._application, world.resources)
    event = rest_event("whatsapp", whatsapp_params(sid=LOST_SID))
    for attempt in range(3):  # Twilio's 1 + rc attempts, 6 s apart
        if attempt and retries == "throttled":
            faults.inject("send", Fault("throttling"))
        else:
            faults.inject("lock_put", Fault("crash"))
        with pytest.raises(BaseException) as raised:
            container.handler(event, None)
        assert isinstance(raised.value, SimulatedCrash) or "QUEUE_TRANSIENT_ERROR" in str(raised.value)
        faults.wait_idle()
        faults.clear()
        clock.advance(6)
    assert world.sent("whatsapp") == [], "the message is lost"
    if retries == "throttled":
        rows = run(runbook_query("TransientErrorsAlarm"), logged(json_logs, capsys.readouterr().out))
        assert [row["message_sid"] for row in rows] == [LOST_SID]

    clock.advance(40)  # on-call replays it: past the retry grace, within the lock's lease (W + 60 s)
    replay = replayed(container, monkeypatch, LOST_SID)
    assert replay["answer"]["statusCode"] == 200
    _recover_if_replayed(world, container, replay["event"], json_logs, capsys)

    events = [line for line in json_logs() if line["message"] == "event"]
    assert (events[-1]["outcome"], events[-1]["message_sid"]) == ("QUEUED", LOST_SID)
    conversation_id = world.stage_rows()[0]["conversation_id"]
    assert observe(world, conversation_id, LOST_SID) == EndState(staged=1, triggers=1, holder=LOST_SID)
    assert observe(world, conversation_id, LOST_SID).lock(LOST_SID) == "held, sent"


def _recover_if_replayed(
    world: Any, container: Any, event: dict[str, Any], json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runbook's way on when the replay of ``LOST_SID`` (``event``) was answered ``REPLAY``: check that no attempt
    completed the message, then remove its record and invoke the function again, each command as written."""
    if [line for line in json_logs() if line["message"] == "event"][-1]["outcome"] != "REPLAY":
        return
    check = on_call_block('message_sid = "<MessageSid>"').strip()
    lines = logged(json_logs, capsys.readouterr().out)
    outcomes = {row.get("outcome") for row in run(check.replace("<MessageSid>", LOST_SID), lines)}
    assert not outcomes & {"QUEUED", "BATCHED", "HANDED_OFF"}
    values = {"<ReplayTableName>": world.resources.replay_table, "<MessageSid>": LOST_SID}
    clients = {"dynamodb": world.dynamodb, "sqs": world.sqs}
    for command in on_call_block("aws dynamodb delete-item").strip().split("\n"):
        for placeholder_, value in values.items():
            command = command.replace(placeholder_, value)
        words = aws_words(command)
        if words[:3] == ["aws", "lambda", "invoke"]:
            assert container.handler(event, None)["statusCode"] == 200
        else:
            aws_command(words, clients.__getitem__)


def test_a_message_whose_replay_record_could_not_be_released_is_recovered_by_the_runbook(
    world: Any, cold_start: Any, monkeypatch: pytest.MonkeyPatch, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    """The queue refused the trigger (``QUEUE_ERROR``) and the replay table the release of the record (a permission
    gone from both, say): the first attempt raised for Twilio to retry, the retries ended ``QUEUE_ERROR`` without
    touching the first attempt's record (``MessageLossAlarm`` lists the message). Repaired, the runbook's replay is
    answered ``REPLAY``, which the runbook must explain, and its way on must stage and trigger the message once."""
    import handler

    world.add_conversation()
    world.add_default_secrets()
    container = cold_start()
    clock = FixedClock(datetime.fromtimestamp(int(time.time()), UTC))
    handler._application.replace_services(clock=clock)
    faults = FaultInjector(handler._application, world.resources)
    faults.inject("send", Fault("access_denied"))
    faults.inject("replay_release", Fault("access_denied"))
    event = rest_event("whatsapp", whatsapp_params(sid=LOST_SID))
    with pytest.raises(Exception, match="STAGE_WRITE_TRANSIENT_ERROR"):
        container.handler(event, None)
    for _ in range(2):  # Twilio's retries, 6 s apart
        clock.advance(6)
        assert container.handler(event, None)["statusCode"] == 200
    faults.clear()
    assert world.sent("whatsapp") == [], "the message is lost"
    lines = logged(json_logs, capsys.readouterr().out)
    assert {row["message_sid"] for row in run(runbook_query("MessageLossAlarm"), lines)} == {LOST_SID}
    (warning,) = [line["message"] for line in json_logs(logging.WARNING) if "release" in line["message"]]
    section = RUNBOOK[RUNBOOK.index("## On call") :]
    said = warning.partition(" after ")[0]
    assert said in section, f"the runbook does not say what the WARNING line {said!r} leaves behind"

    clock.advance(40)  # repaired; past the retry grace
    replay = replayed(container, monkeypatch, LOST_SID)
    _recover_if_replayed(world, container, replay["event"], json_logs, capsys)

    events = [line for line in json_logs() if line["message"] == "event"]
    assert (events[-1]["outcome"], events[-1]["message_sid"]) == ("QUEUED", LOST_SID)
    conversation_id = world.stage_rows()[0]["conversation_id"]
    assert observe(world, conversation_id, LOST_SID) == EndState(staged=1, triggers=1, holder=LOST_SID)


def on_call_entry(alarm: str) -> str:
    """The runbook's entry for ``alarm``: the On call paragraph that opens by naming it, and what follows it up to
    the next paragraph that opens with another alarm or a bold heading."""
    section = RUNBOOK[RUNBOOK.index("## On call") : RUNBOOK.index("\n## ", RUNBOOK.index("## On call") + 1)]
    paragraphs = section.split("\n\n")
    (first,) = [number for number, text in enumerate(paragraphs) if re.match(rf"(`\w+`, )*`{alarm}`", text)]
    entry = [paragraphs[first]]
    for text in paragraphs[first + 1 :]:
        if re.match(r"`\w+Alarm`|\*\*", text):
            break
        entry.append(text)
    return "\n\n".join(entry)


def _unsigned_posts(world: Any, cold_start: Any, capsys: pytest.CaptureFixture[str]) -> list[Datapoint]:
    """Genuine messages whose signature header a proxy in front of the API dropped: refused at parse, each one."""
    container = cold_start(STACK_NAME=STACK, METRICS_NAMESPACE=resolve(TEMPLATE, {"Ref": "MetricsNamespace"}))
    capsys.readouterr()
    threshold = int(TEMPLATE["Parameters"]["InvalidSignatureAlarmThreshold"]["Default"])
    for number in range(threshold):
        event = rest_event("whatsapp", whatsapp_params(sid=f"SM{number:032x}"), signature="")
        assert container.handler(event, None)["statusCode"] == 200
    return emf_datapoints(capsys.readouterr().out)


@pytest.mark.parametrize("alarm", ["Api5xxAlarm", "ApiThrottledAlarm", "InvalidSignatureAlarm"])
def test_an_alarm_for_messages_the_pipeline_never_read_leads_to_their_replay(
    world: Any,
    cold_start: Any,
    monkeypatch: pytest.MonkeyPatch,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    alarm: str,
) -> None:
    """Every attempt of a message answered by API Gateway alone (its permission to invoke the function gone: 500;
    the stage's throttling: 503), or refused at parse before its form was read (a proxy dropping the signature
    header): no event line names it, Twilio gives up, and the message is lost. The alarm's entry must say how to get
    it back, and doing so must stage and trigger it once."""
    world.add_conversation()
    world.add_default_secrets()
    start = 1_800_000_000
    if alarm == "Api5xxAlarm":
        points = [point for n in range(3) for point in api_answer(TEMPLATE, start + 6 * n, 500, "/whatsapp")]
    elif alarm == "ApiThrottledAlarm":
        points = [point for n in range(3) for point in gateway_response(TEMPLATE, start + 6 * n, "THROTTLED")]
    else:
        points = _unsigned_posts(world, cold_start, capsys)
    assert alarm in firing(TEMPLATE, points)
    assert world.stage_rows() == [] and world.sent("whatsapp") == []

    entry = on_call_entry(alarm)
    assert re.search(r"\breplay", entry), f"the runbook's entry for {alarm} gives no way to recover the lost messages"
    container = cold_start()
    replay = replayed(container, monkeypatch, LOST_SID)
    assert replay["answer"]["statusCode"] == 200
    assert [line["outcome"] for line in json_logs() if line["message"] == "event"][-1] == "QUEUED"
    assert [row["message_sid"] for row in world.stage_rows()] == [LOST_SID] and len(world.sent("whatsapp")) == 1


@pytest.mark.parametrize(
    "secret",
    [
        None,
        '{"twilio_account_sid": "AC00000000000000000000000000000000"}',
        '{"twilio_auth_token": " "}',
        "not json",
        b'{"twilio_auth_token": "0123456789abcdef0123456789abcdef"}',
    ],
    ids=["missing", "no token", "blank token", "not JSON", "binary"],
)
def test_the_runbook_query_for_a_secret_fetch_failure_names_what_to_repair(
    world: Any,
    cold_start: Any,
    monkeypatch: pytest.MonkeyPatch,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    secret: str | bytes | None,
) -> None:
    """``SecretFetchFailedAlarm`` fires for a tenant's secret that is missing, unreadable or malformed; the runbook's
    query must say which (``error_cause``), in terms its text explains, for on-call to repair it before the replay.
    Bytes: a secret stored as ``SecretBinary`` (``create-secret --secret-binary``), with no ``SecretString``."""
    from tests.support.world import WA_SECRET

    world.add_conversation()
    if isinstance(secret, bytes):
        world.secretsmanager.create_secret(Name=WA_SECRET, SecretBinary=secret)
    elif secret is not None:
        world.create_secret(WA_SECRET, secret)
    container = cold_start(STACK_NAME=STACK, METRICS_NAMESPACE=resolve(TEMPLATE, {"Ref": "MetricsNamespace"}))
    capsys.readouterr()
    cause = lost_message_cause(container, "SecretFetchFailedAlarm", "SECRET_FETCH_FAILED", json_logs, capsys)
    section = RUNBOOK[RUNBOOK.index("## On call") :]
    assert cause, "the line names nothing to repair"
    assert f"`{cause}`" in section, f"the runbook does not say what error_cause {cause!r} means"

    world.add_default_secrets()  # repaired, as the cause says
    replayed(container, monkeypatch, LOST_SID)
    assert [line["outcome"] for line in json_logs() if line["message"] == "event"][-1] == "QUEUED"
    assert len(world.stage_rows()) == 1 and len(world.sent("whatsapp")) == 1


def test_a_handoff_whose_every_attempt_died_after_recording_it_is_handed_off_once_by_the_runbook(
    world: Any, cold_start: Any, monkeypatch: pytest.MonkeyPatch, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    """As above for a message routed to a human: no lock, its stage row and record written, the handoff never sent.
    The runbook's way on must hand it off once, and say the outcome on-call will read."""
    import handler

    world.add_conversation(hand_off_to_human=True)
    world.add_default_secrets()
    container = cold_start()
    clock = FixedClock(datetime.fromtimestamp(int(time.time()), UTC))
    handler._application.replace_services(clock=clock)
    faults = FaultInjector(handler._application, world.resources)
    for call in ("replay_put", "get", "get"):  # the retries died earlier: a stalled read, say
        faults.inject(call, Fault("crash"))
        with pytest.raises(SimulatedCrash):
            container.handler(rest_event("whatsapp", whatsapp_params(sid=LOST_SID)), None)
        faults.wait_idle()
        faults.clear()
        clock.advance(6)
    assert world.sent("handoff") == [] and len(world.replay_rows()) == 1

    clock.advance(40)
    replay = replayed(container, monkeypatch, LOST_SID)
    _recover_if_replayed(world, container, replay["event"], json_logs, capsys)

    outcome = [line for line in json_logs() if line["message"] == "event"][-1]["outcome"]
    assert outcome == "HANDED_OFF"
    assert [row["message_sid"] for row in world.stage_rows()] == [LOST_SID]
    assert [body["message_sid"] for body, _ in world.sent("handoff")] == [LOST_SID] and world.lock_rows() == []
    after = RUNBOOK[RUNBOOK.index("aws dynamodb delete-item") :]
    said = after[after.index("```\n") + 4 :].lstrip("\n").split("\n\n")[0]  # the paragraph after its commands
    assert f"`{outcome}`" in said, f"the runbook names another outcome: {said!r}"


def test_the_runbook_query_for_a_routing_error_names_what_to_repair(
    world: Any, task_root: Any, monkeypatch: pytest.MonkeyPatch, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rules that route a message nowhere (a routing set without its channel rule, no default) answer it 200
    ``ROUTING_ERROR``: ``MessageLossAlarm`` fires, and the runbook's query must say what to repair, in its terms."""
    shipped = (ROOT / "rules" / "40_routing.yaml").read_text(encoding="utf-8")
    broken = shipped[: shipped.index("  - id: channel_queue")]
    world.add_conversation()
    world.add_default_secrets()
    namespace = resolve(TEMPLATE, {"Ref": "MetricsNamespace"})
    container = task_root({"rules/40_routing.yaml": broken}, STACK_NAME=STACK, METRICS_NAMESPACE=namespace)
    capsys.readouterr()
    cause = lost_message_cause(container, "MessageLossAlarm", "ROUTING_ERROR", json_logs, capsys)
    assert cause, "the line names nothing to repair"
    section = RUNBOOK[RUNBOOK.index("## On call") :]
    assert f"`{cause.replace('routing', '<rule set>', 1)}`" in section, f"the runbook does not explain {cause!r}"

    container = task_root({"rules/40_routing.yaml": shipped})  # the rules repaired (a rollback, say)
    replayed(container, monkeypatch, LOST_SID)
    assert [line["outcome"] for line in json_logs() if line["message"] == "event"][-1] == "QUEUED"
    assert len(world.stage_rows()) == 1 and len(world.sent("whatsapp")) == 1
