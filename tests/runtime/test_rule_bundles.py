"""Rules bundles on moto S3: publish, cold start, pick-up by a warm container, a broken bundle refused, rollback.

Bundles are published and deployed with ``pipeline-rules`` (in-process, against moto's S3) and read by
the Lambda's own watcher (``runtime.bundlewatch``) through boto3. A fake clock stands for the passing
of the refresh interval; the background check it starts is awaited before the next event.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.calls import CallLimits
from engine.config import load_config
from engine.errors import RetryableFailure
from runtime.app import Application
from runtime.bundles import Bundle, bundle_key, deployment_key
from runtime.bundlewatch import RETRY_SECONDS, BundleWatcher
from tests.support.aws import AwsSpy, error_response
from tests.support.bundles import (
    ACCOUNT_SID_KEY,
    ACCOUNT_SID_KEY_PROBLEM,
    AGENT_ROUTING,
    ANY_SECRET,
    ANY_SECRET_PROBLEM,
    BEFORE_TYPES,
    BLOCK_RULES,
    BROKEN_ROUTING,
    BUCKET,
    NO_REPLAY_RECORDS,
    NO_REPLAY_RECORDS_PROBLEM,
    NO_SIGNATURE,
    NO_SIGNATURE_PROBLEM,
    PIPELINE,
    PIPELINE_FILE,
    REPLAY_UNREAD,
    REPLAY_UNREAD_PROBLEM,
    ROUTING,
    TRANSIENT_ANSWERED,
    TRANSIENT_ANSWERED_PROBLEM,
    VIP_ROUTING,
    WHATSAPP_ONLY,
    Ops,
    emf_documents,
    event_lines,
    make_bucket,
    rules_files,
    with_new_business_code,
    with_pipeline_file,
    working_copy,
)
from tests.support.clock import install_clock, slow_machine
from tests.support.shipped import pipeline_names
from tests.support.webhooks import rest_event, sms_params, whatsapp_params
from tests.support.world import SMS_SECRET
from tools.localaws import to_dynamo

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 30.0
Logs = Callable[..., list[dict[str, Any]]]
Fault = Callable[["Clock", str], Any]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Container:
    """A warm Lambda container: its application, the watcher's clock and the S3 reads it made."""

    application: Application
    watcher: BundleWatcher
    clock: Clock
    reads: list[dict[str, Any]]
    sent: int = 0

    def message(self, logs: Logs, channel: str = "whatsapp", body: str = "Hello") -> dict[str, Any]:
        """Handle one message (as an invocation does); its event log line."""
        self.sent += 1
        params = whatsapp_params if channel == "whatsapp" else sms_params
        self.application.handle(rest_event(channel, params(sid=f"SM{self.sent:032d}", body=body)), None)
        return event_lines(logs())[-1]

    def after(self, seconds: float) -> None:
        """Let ``seconds`` pass; the next invocation starts a check when one is due (awaited here)."""
        self.clock.now += seconds
        self.watcher.poke()
        assert self.watcher.wait(10)

    def keys_read(self, pipeline: str = "twilio_inbound") -> list[tuple[str, bool]]:
        """The keys of ``pipeline`` read since the last call, each with whether it was conditional (If-None-Match)."""
        keys = [(read["Key"].split("/", 2), "IfNoneMatch" in read) for read in self.reads]
        self.reads.clear()
        return [(parts[2], conditional) for parts, conditional in keys if parts[1] == pipeline]


@pytest.fixture
def ops(world: Any, boto_session: Any, tmp_path: Path) -> Ops:
    s3 = boto_session.client("s3")
    make_bucket(s3)
    return Ops(s3, working_copy(tmp_path / "ops"))


@pytest.fixture
def container(world: Any, ops: Ops, monkeypatch: pytest.MonkeyPatch, boto_session: Any) -> Callable[..., Container]:
    """Start a Lambda container with RULES_BUCKET set; its watcher runs on a fake clock and records S3 reads.

    Its deadline clock stands still (``install_clock``), as the conftest's containers' do.
    """
    import handler

    world.add_default_secrets()

    def start(fail: str | None = None, fault: Fault | None = None) -> Container:
        """``fail``: every read fails with that code; ``fault``: called with the clock and each read's URL path."""
        application = handler.reload(boto_session)
        install_clock(application)
        assert application.watcher is None
        clock = Clock()
        env = {**os.environ, "RULES_BUCKET": BUCKET}
        watcher = BundleWatcher.from_env(application, handler.TASK_ROOT, env, CallLimits(), clock=clock)
        watcher.interval = INTERVAL
        reads: list[dict[str, Any]] = []
        events = watcher.s3().meta.events
        events.register("before-parameter-build.s3.GetObject", lambda params, **_: reads.append(dict(params)))
        if fail is not None:
            events.register("before-call.s3.GetObject", lambda **_: error_response(fail, 503), unique_id="fail")
        if fault is not None:
            events.register(
                "before-call.s3.GetObject", lambda params, **_: fault(clock, params["url_path"]), unique_id="fail"
            )
        application.watcher = watcher
        watcher.load()
        return Container(application, watcher, clock, reads)

    return start


def vip_bundle_live(ops: Ops, container: Callable[..., Container], world: Any) -> tuple[str, Container]:
    """The VIP routing published live, a container started on it, a VIP's conversation: the bundle id, the container."""
    ops.edit("40_routing.yaml", VIP_ROUTING)
    bundle = ops.publish("--live")
    started = container()
    world.add_conversation(vip=True)
    return bundle, started


def packaged_version() -> str:
    return load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", dict(os.environ)).version


def counted(out: str, name: str, pipeline: str = "twilio_inbound") -> int:
    return sum(document.get(name, 0) for document in emf_documents(out) if document.get("Pipeline") == pipeline)


def errors_of(lines: list[dict[str, Any]], pipeline: str = "twilio_inbound") -> list[dict[str, Any]]:
    """The ERROR lines about ``pipeline``'s rules (each pipeline's deployment is read, and fails, on its own)."""
    return [line for line in lines if line["level"] == "ERROR" and f"/{pipeline}/" in line["message"]]


def test_without_a_bucket_the_packaged_rules_decide_and_every_event_names_its_rules_and_version(
    world: Any, lambda_handler: Callable[..., Any], json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    import handler

    assert handler._application.watcher is None
    world.add_default_secrets()
    world.add_conversation(auto_queue_reply_message=True)
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    (line,) = event_lines(json_logs())
    assert (line["outcome"], line["target"]) == ("HANDED_OFF", "handoff")
    assert line["rules"] == {
        "project_status": None,
        "channel": None,
        "conversation_lock": None,
        "routing": "auto_queue_reply",
    }
    assert line["rules_version"] == packaged_version()
    assert "rules_source" not in line
    (document,) = [d for d in emf_documents(capsys.readouterr().out) if "Invocations" in d]
    assert document["RulesVersion"] == packaged_version() and "RulesSource" not in document
    dimensions = {n for d in document["_aws"]["CloudWatchMetrics"] for dims in d["Dimensions"] for n in dims}
    assert "RulesVersion" not in dimensions


def test_a_container_on_a_bucket_spends_no_time_budget_on_a_slow_machine(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # These tests are about which rules decide, not time: a loaded machine must not spend the pipeline's deadline.
    slow_machine(monkeypatch, 1.0)  # each read of the real deadline clock a second later: spent by the fifth
    bundle, started = vip_bundle_live(ops, container, world)
    line = started.message(json_logs)
    assert (line["outcome"], line["rules_source"]) == ("HANDED_OFF", f"bundle {bundle}, revision 1")


def test_the_live_bundle_decides_from_the_cold_start(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    bundle = ops.publish("--live", "--note", "VIPs to a person")
    started = container()
    assert started.keys_read() == [("deployment.json", False), (f"bundles/{bundle}.json", False)]
    world.add_conversation(vip=True)
    line = started.message(json_logs)
    assert (line["outcome"], line["target"], line["rules"]["routing"]) == ("HANDED_OFF", "handoff", "vip_to_human")
    config = started.application.pipeline("twilio_inbound")
    assert line["rules_source"] == f"bundle {bundle}, revision 1" == config.source
    assert line["rules_version"] == config.version != packaged_version()
    (document,) = [d for d in emf_documents(capsys.readouterr().out) if "Invocations" in d]
    assert (document["RulesVersion"], document["RulesSource"]) == (config.version, config.source)


def test_a_bundle_published_without_a_file_its_directory_does_not_read_says_so_at_the_cold_start(
    ops: Ops, container: Callable[..., Container], json_logs: Logs
) -> None:
    """Defect: publish warns at a rules file it does not read (55_vip.YAML, an upper-case extension) and, unless
    --strict, publishes the bundle without it; the function then ran without those rules and said nothing, so only
    whoever published could tell. The bundle now names what its directory held unread (``unread``, not files: the
    id, the digest of the files, is unchanged), and the container that reads it says so in one WARNING line, with
    the fix --check gives for each."""
    (ops.root / "rules" / "55_vip.YAML").write_text(VIP_ROUTING.replace("ruleset: routing", "ruleset: vip"))
    bundle = ops.publish("--live")
    stored = json.loads(ops.s3.get_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, bundle))["Body"].read())
    assert stored["unread"] == ["rules/55_vip.YAML"] and "rules/55_vip.YAML" not in stored["files"]
    assert Bundle.from_json(json.dumps(stored).encode(), bundle).unread == ("rules/55_vip.YAML",)

    container()

    (line,) = [line for line in json_logs() if "not read" in line["message"]]
    assert (line["level"], line["location"], line["pipeline"], line["bundle"]) == (
        "WARNING",
        "runtime.bundlewatch",
        PIPELINE,
        bundle,
    )
    assert line["message"] == (
        f"bundle {bundle} of {PIPELINE} was published without entries of its rules directory that are not read, so "
        "what they hold never runs: rules/55_vip.YAML; rename or move each as problems says, then publish again"
    )
    assert line["problems"] == [
        "rules/55_vip.YAML: this file is not read: only the files of rules/ ending in .yaml or .yml (lower-case) "
        "are, so its rule sets never run; rename it to 55_vip.yaml"
    ]


def test_every_pipeline_looks_up_its_own_deployment(container: Callable[..., Container]) -> None:
    started = container()
    assert sorted(read["Key"] for read in started.reads) == [
        f"rules/{name}/deployment.json" for name in pipeline_names()
    ]


def test_a_warm_container_picks_up_a_new_bundle_within_the_interval_and_pays_nothing_until_then(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    started = container()
    assert started.keys_read() == [("deployment.json", False)]  # none yet: the packaged rules decide
    world.add_conversation(vip=True)
    assert started.message(json_logs)["rules"]["routing"] == "channel_queue"

    ops.edit("40_routing.yaml", VIP_ROUTING)
    bundle = ops.publish("--live")
    started.after(INTERVAL - 1)
    line = started.message(json_logs)
    assert line["rules"]["routing"] == "channel_queue" and line["rules_version"] == packaged_version()
    assert started.keys_read() == []  # not due: no S3 call at all

    started.after(2)
    assert started.keys_read() == [("deployment.json", False), (f"bundles/{bundle}.json", False)]
    line = started.message(json_logs)
    assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {bundle}, revision 1")

    started.after(INTERVAL)
    assert started.keys_read() == [("deployment.json", True)]  # conditional: answered 304 Not Modified
    assert started.message(json_logs)["rules"]["routing"] == "vip_to_human"


def test_a_broken_bundle_is_refused_with_one_located_error_and_the_last_good_one_keeps_deciding(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    good, started = vip_bundle_live(ops, container, world)
    assert started.message(json_logs)["rules"]["routing"] == "vip_to_human"

    ops.edit("40_routing.yaml", BROKEN_ROUTING)
    status, out, err = ops.rules("publish", "--live")
    assert status == 2 and "rules/40_routing.yaml:10:20: routing target 'handof' names no configured queue" in out
    assert "nothing was published" in err and ops.deployment().live == good

    broken = ops.sneak_in(rules_files(BROKEN_ROUTING))
    capsys.readouterr()
    started.after(INTERVAL + 1)
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["message"].startswith(f"rules bundle {broken} of twilio_inbound (revision 2) is refused, 2 problem(s)")
    assert (error["bundle"], error["rules_source"]) == (broken, f"bundle {good}, revision 1")
    assert error["problems"] == [
        "rules/40_routing.yaml:10:20: routing target 'handof' names no configured queue (did you mean 'handoff'?); "
        "use one of the targets of pipelines/twilio_inbound.yaml (handoff, sms, whatsapp) "
        "or add it there under targets:",
        "rules/40_routing.yaml:30:42: inline test 'a vip goes to a person' of rule set 'routing' failed: "
        "expected target 'handoff', got 'handof'; decided by rule 'vip_to_human' (line 9)",
    ]
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    line = started.message(json_logs)
    assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {good}, revision 1")

    started.keys_read()
    started.after(INTERVAL)
    assert started.keys_read() == [("deployment.json", True)]  # refused once, not read again
    assert len([line for line in json_logs() if line["level"] == "ERROR"]) == 1


def test_rules_source_names_the_revision_that_made_the_bundle_live_not_a_later_shadow_change(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    """Defect: the label named the latest revision with the bundle live: a shadow deployed beside it (revision 2)
    made every decision of the unchanged live bundle say "revision 2", the revision that changed only the shadow,
    and the candidate's said the revision of a later live change. Which deployment made a decision is the revision
    that made its bundle live (as ``list``'s history shows it), and the candidate's the one that made it the shadow.
    """
    bundle, started = vip_bundle_live(ops, container, world)
    assert started.message(json_logs)["rules_source"] == f"bundle {bundle}, revision 1"
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    candidate = ops.publish("--shadow", "--note", "agents to a person")
    started.after(INTERVAL)
    assert started.application.deployed("twilio_inbound").shadow is not None
    assert started.message(json_logs)["rules_source"] == f"bundle {bundle}, revision 1"
    assert container().message(json_logs)["rules_source"] == f"bundle {bundle}, revision 1"  # a new container too

    ops.edit("40_routing.yaml", f"# a fix\n{VIP_ROUTING}")
    fixed = ops.publish("--live")  # revision 3: the candidate stays in shadow
    for warm in (started, None):
        deciding = warm or container()
        if warm is not None:
            warm.after(INTERVAL)
        deployed = deciding.application.deployed("twilio_inbound")
        assert deployed.shadow is not None and deployed.shadow.source == f"bundle {candidate}, revision 2, shadow"
        assert deciding.message(json_logs)["rules_source"] == f"bundle {fixed}, revision 3"


def test_rollback_brings_the_previous_bundle_back(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    first = ops.publish("--live")
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    second = ops.publish("--live")
    started = container()
    world.add_conversation()
    asking = "can I speak to an agent?"
    assert started.message(json_logs, "sms", asking)["rules"]["routing"] == "asks_for_agent"

    status, out, _ = ops.rules("rollback", "--note", "agents are busy")
    assert (status, out) == (0, f"deployed: revision 3: live {first}\n")
    started.after(INTERVAL)
    line = started.message(json_logs, "sms", asking)
    assert (line["rules"]["routing"], line["target"]) == ("channel_queue", "sms")
    assert line["rules_source"] == f"bundle {first}, revision 3"
    assert ops.deployment().history[0]["live"] == second

    assert ops.rules("rollback", "--to", "packaged")[0] == 0
    started.after(INTERVAL)
    line = started.message(json_logs, "sms", asking)
    assert line["rules_version"] == packaged_version() and "rules_source" not in line


def test_an_unreadable_deployment_keeps_the_rules_in_use(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, started = vip_bundle_live(ops, container, world)
    started.watcher.s3().meta.events.register("before-call.s3.GetObject", lambda **_: error_response("SlowDown", 503))
    started.after(INTERVAL)
    (error,) = errors_of(json_logs())
    assert "deployment.json cannot be read (SlowDown); the rules in use keep deciding" in error["message"]
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    assert started.message(json_logs)["rules_source"] == f"bundle {bundle}, revision 1"


def test_a_cold_start_with_s3_down_serves_with_the_packaged_rules_and_says_so(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    ops.publish("--live")
    started = container(fail="ServiceUnavailable")
    (error,) = errors_of(json_logs())
    assert "cannot be read (ServiceUnavailable)" in error["message"]
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    world.add_conversation(vip=True)
    line = started.message(json_logs)
    assert (line["rules"]["routing"], line["rules_version"]) == ("channel_queue", packaged_version())


def test_a_deployment_the_function_may_not_read_is_an_error_and_an_alarm_then_decides_once_readable(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: AccessDenied counted as "no deployment yet", so a bucket policy or key change that denied the
    function its deployment left new containers on the packaged rules with no error line and no alarm."""
    ops.edit("40_routing.yaml", VIP_ROUTING)
    bundle = ops.publish("--live")

    def denied(clock: Clock, path: str) -> Any:
        return error_response("AccessDenied", 403) if path.endswith("/twilio_inbound/deployment.json") else None

    started = container(fault=denied)
    (error,) = errors_of(json_logs())
    assert "deployment.json cannot be read (AccessDenied); the rules in use keep deciding" in error["message"]
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    world.add_conversation(vip=True)
    assert started.message(json_logs)["rules_version"] == packaged_version()

    started.watcher.s3().meta.events.unregister("before-call.s3.GetObject", unique_id="fail")
    started.after(RETRY_SECONDS)
    assert started.message(json_logs)["rules_source"] == f"bundle {bundle}, revision 1"


def test_the_handler_reads_the_bucket_from_its_environment(
    ops: Ops, world: Any, boto_session: Any, monkeypatch: pytest.MonkeyPatch, json_logs: Logs
) -> None:
    import handler

    ops.edit("40_routing.yaml", VIP_ROUTING)
    bundle = ops.publish("--live")
    monkeypatch.setenv("RULES_BUCKET", BUCKET)
    monkeypatch.setenv("RULES_REFRESH_SECONDS", "120")
    application = handler.reload(boto_session)
    install_clock(application)
    assert application.watcher is not None and application.watcher.interval == 120
    world.add_default_secrets()
    world.add_conversation(vip=True)
    handler.handler(rest_event("whatsapp", whatsapp_params()), None)
    (line,) = event_lines(json_logs())
    assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {bundle}, revision 1")


# The function's settings as pipeline-rules and the docs read them (defect: RULES_PREFIX without its trailing slash
# pointed the function at other keys than pipeline-rules wrote, so the packaged rules decided without a word; a
# RULES_REFRESH_SECONDS of "inf" or "1m" was taken silently, the first never checking again).


def test_a_prefix_without_its_slash_names_the_keys_pipeline_rules_writes(
    ops: Ops, world: Any, boto_session: Any, monkeypatch: pytest.MonkeyPatch, json_logs: Logs
) -> None:
    import handler

    ops.edit("40_routing.yaml", VIP_ROUTING)
    status, out, err = ops.rules("--prefix", "rules", "publish", "--live")
    assert status == 0, err
    bundle = next(line.split()[2] for line in out.splitlines() if line.startswith("published: bundle"))
    monkeypatch.setenv("RULES_BUCKET", BUCKET)
    monkeypatch.setenv("RULES_PREFIX", "rules")
    install_clock(handler.reload(boto_session))
    world.add_default_secrets()
    world.add_conversation(vip=True)
    handler.handler(rest_event("whatsapp", whatsapp_params()), None)
    (line,) = event_lines(json_logs())
    assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {bundle}, revision 1")


@pytest.mark.parametrize(
    ("setting", "interval", "said"), [("inf", 60, True), ("1m", 60, True), ("0", 1, False), ("-5", 1, False)]
)
def test_a_refresh_interval_that_is_no_number_of_seconds_is_the_default_and_says_so(
    world: Any,
    boto_session: Any,
    monkeypatch: pytest.MonkeyPatch,
    json_logs: Logs,
    setting: str,
    interval: float,
    said: bool,
) -> None:
    import handler

    monkeypatch.setenv("RULES_BUCKET", BUCKET)
    monkeypatch.setenv("RULES_REFRESH_SECONDS", setting)
    application = handler.reload(boto_session)
    assert application.watcher is not None and application.watcher.interval == interval
    errors = [line["message"] for line in json_logs() if line["message"].startswith("RULES_REFRESH_SECONDS")]
    assert errors == (
        [f"RULES_REFRESH_SECONDS must be a number of seconds (at least 1); {setting!r} is not: using 60"]
        if said
        else []
    )


# A bundle whose pipeline file changes what only the code may (defect: it stopped the cold start, even in shadow).


def refused_at_cold_start(
    ops: Ops,
    container: Callable[..., Container],
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    pipeline_file: str,
    *,
    live: bool,
) -> tuple[Container, str, dict[str, Any], str]:
    """A good bundle live, then one carrying ``pipeline_file`` sneaked in (live or shadow), and a new container.

    Returns the container, the sneaked bundle's id, the one ERROR line (counted once) and what decides instead.
    """
    good = ops.publish("--live")
    sneaked = ops.sneak_in(with_pipeline_file(rules_files(ROUTING), pipeline_file), live=live)
    started = container()
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    # Revision 1 made the good bundle live; revision 2, of the sneaked shadow, left it as it was.
    return started, sneaked, error, f"bundle {good}, revision 1"


@pytest.mark.parametrize("live", [True, False], ids=["live", "shadow"])
def test_a_bundle_that_changes_the_channels_is_refused_and_the_cold_start_goes_on(
    ops: Ops,
    container: Callable[..., Container],
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    live: bool,
) -> None:
    started, narrowed, error, deciding = refused_at_cold_start(
        ops, container, json_logs, capsys, WHATSAPP_ONLY, live=live
    )
    assert error["message"].startswith(f"rules bundle {narrowed} of twilio_inbound (revision 2) is refused, 1 problem")
    assert error["problems"] == [
        "pipelines/twilio_inbound.yaml:7:11: channels: [whatsapp] are not the deployed pipeline's [sms, whatsapp]; "
        "which paths a pipeline serves changes with a code deploy, not a rules bundle"
    ]
    assert (error["bundle"], error["rules_source"]) == (narrowed, deciding)
    world.add_conversation()
    line = started.message(json_logs, "sms")
    assert (line["outcome"], line["rules_source"]) == ("QUEUED", deciding)
    assert started.application.deployed("twilio_inbound").shadow is None


def test_a_warm_container_refuses_a_renamed_pipeline_once_and_counts_it(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    good, started = vip_bundle_live(ops, container, world)
    renamed = PIPELINE_FILE.replace("pipeline: twilio_inbound", "pipeline: twilio_v2", 1)
    bundle = ops.sneak_in(with_pipeline_file(rules_files(VIP_ROUTING), renamed))
    capsys.readouterr()
    started.after(INTERVAL)
    started.after(INTERVAL)
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["bundle"] == bundle and "exception" not in error
    assert error["problems"][0] == (
        "pipelines/twilio_inbound.yaml:2:11: pipeline: 'twilio_v2' is not the deployed pipeline's name "
        "'twilio_inbound'; a pipeline is renamed with a code deploy, not a rules bundle"
    )
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    assert started.message(json_logs)["rules_source"] == f"bundle {good}, revision 1"


def test_an_unexpected_fault_in_a_cold_start_check_is_counted_and_the_packaged_rules_decide(
    ops: Ops,
    container: Callable[..., Container],
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ops.publish("--live")

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Application, "deploy", broken)
    started = container()
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["message"].startswith("checking the rules bundles of twilio_inbound failed (RuntimeError: a bug)")
    # The traceback shows where and what was raised; an exception's text only in the message, worded by the watcher.
    assert error["exception"].endswith("\nRuntimeError") and ", in broken\n" in error["exception"]
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    world.add_conversation()
    assert started.message(json_logs)["rules_version"] == packaged_version()


# A new container after a refused bundle (defect: it fell back to the packaged rules while the warm ones kept the
# last good bundle: the fleet decided two ways).


def test_a_new_container_after_a_refused_bundle_decides_with_the_last_good_one(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    good, warm = vip_bundle_live(ops, container, world)
    ops.sneak_in(rules_files(BROKEN_ROUTING))
    broken = ops.sneak_in(rules_files(BROKEN_ROUTING.replace("a vip goes", "a VIP goes")))
    warm.after(INTERVAL)
    seen = len(json_logs())
    capsys.readouterr()

    fresh = container()
    (error,) = [line for line in json_logs()[seen:] if line["level"] == "ERROR"]
    assert error["message"].startswith(f"rules bundle {broken} of twilio_inbound (revision 3) is refused, 2 problem(s)")
    assert error["message"].endswith(f"; the last good live bundle decides: bundle {good}, revision 1")
    assert error["rules_source"] == f"bundle {good}, revision 1"
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    for started in (warm, fresh):
        line = started.message(json_logs)
        assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {good}, revision 1")

    fresh.keys_read()
    fresh.after(INTERVAL)
    assert fresh.keys_read() == [("deployment.json", True)]  # settled: nothing read again
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    fixed = ops.publish("--live")
    fresh.after(INTERVAL)
    assert fresh.message(json_logs)["rules_source"] == f"bundle {fixed}, revision 4"


def test_a_new_container_with_no_good_earlier_bundle_says_the_packaged_rules_decide(
    ops: Ops, container: Callable[..., Container], json_logs: Logs
) -> None:
    broken = ops.sneak_in(rules_files(BROKEN_ROUTING))
    started = container()
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["bundle"] == broken
    assert error["message"].endswith("; the rules packaged beside the handler decide")
    assert "rules_source" not in error
    assert started.application.pipeline("twilio_inbound").version == packaged_version()


# Bundles whose pipeline file changes how a request is authenticated (defects: they were deployed). `no_signature`
# drops the signature step (or an older copy would silently undo a step a code deploy added). `signing_key` signs
# with another field of the secret: the account SID that every request carries, so anyone could sign.
# `secret_pattern` widens the channel's secret-name pattern: a conversation row naming a secret outside the
# channel's credentials (here the SMS one) was read and used to sign WhatsApp requests.
FOREIGN_SECRET = {"whatsapp_credentials_id": SMS_SECRET, "sms_credentials_id": SMS_SECRET}


def signed_with_another_token() -> dict[str, Any]:
    return rest_event("whatsapp", whatsapp_params(), token="not-the-auth-token")


def signed_with_the_account_sid() -> dict[str, Any]:
    params = whatsapp_params()
    return rest_event("whatsapp", params, token=params["AccountSid"])


@pytest.mark.parametrize("live", [True, False], ids=["live", "shadow"])
@pytest.mark.parametrize(
    ("pipeline_file", "problem", "conversation", "event", "outcome"),
    [
        (NO_SIGNATURE, NO_SIGNATURE_PROBLEM, {}, signed_with_another_token, "INVALID_SIGNATURE"),
        (ACCOUNT_SID_KEY, ACCOUNT_SID_KEY_PROBLEM, {}, signed_with_the_account_sid, "INVALID_SIGNATURE"),
        (
            ANY_SECRET,
            ANY_SECRET_PROBLEM,
            {"channel_config": FOREIGN_SECRET},
            lambda: rest_event("whatsapp", whatsapp_params()),
            "MISSING_CREDENTIAL_CONFIG",
        ),
    ],
    ids=["no_signature", "signing_key", "secret_pattern"],
)
def test_a_bundle_whose_pipeline_file_changes_how_requests_are_authenticated_is_refused_and_forgeries_still_are(
    ops: Ops,
    container: Callable[..., Container],
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    live: bool,
    pipeline_file: str,
    problem: str,
    conversation: dict[str, Any],
    event: Callable[[], dict[str, Any]],
    outcome: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert pipeline_file != PIPELINE_FILE
    # As the template deploys it: each channel's credential names confined to its prefix.
    monkeypatch.setenv("WHATSAPP_SECRET_NAME_PATTERN", "ai-multi-comms/whatsapp-credentials/.+")
    started, refused, error, deciding = refused_at_cold_start(
        ops, container, json_logs, capsys, pipeline_file, live=live
    )
    assert (error["bundle"], error["problems"]) == (refused, [problem])
    world.add_conversation(**conversation)
    started.application.handle(event(), None)
    line = event_lines(json_logs())[-1]
    assert (line["outcome"], line["rules_source"]) == (outcome, deciding)
    assert world.stage_rows() == [] and world.all_sent() == {name: [] for name in world.all_sent()}
    assert started.application.deployed("twilio_inbound").shadow is None


# A bundle whose pipeline file answers Twilio's transient faults (defect: it was deployed, so a throttled send was
# answered 200, never retried by Twilio, and one such loss stayed below TransientErrorsAlarm's threshold of two).


@pytest.mark.parametrize("live", [True, False], ids=["live", "shadow"])
def test_a_bundle_whose_pipeline_file_answers_transient_faults_is_refused_and_twilio_still_retries(
    ops: Ops,
    container: Callable[..., Container],
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    live: bool,
) -> None:
    assert TRANSIENT_ANSWERED != PIPELINE_FILE
    started, answering, error, deciding = refused_at_cold_start(
        ops, container, json_logs, capsys, TRANSIENT_ANSWERED, live=live
    )
    assert (error["bundle"], error["problems"]) == (answering, [TRANSIENT_ANSWERED_PROBLEM])
    world.add_conversation()
    AwsSpy(started.application).fail("sqs.SendMessage", "ThrottlingException", 400)
    # Raised: API Gateway answers 502, which Twilio retries (the registered URL's rp=5xx).
    with pytest.raises(RetryableFailure):
        started.application.handle(rest_event("whatsapp", whatsapp_params()), None)
    line = event_lines(json_logs())[-1]
    assert (line["outcome"], line["status"], line["rules_source"]) == ("QUEUE_TRANSIENT_ERROR", "raised", deciding)


# A bundle whose pipeline file names no replay table (defect: it was deployed, so a rules bundle could turn off the
# records that refuse a request posted again: a request captured once was accepted and sent again).


@pytest.mark.parametrize("live", [True, False], ids=["live", "shadow"])
@pytest.mark.parametrize(
    ("pipeline_file", "problem"),
    [(NO_REPLAY_RECORDS, NO_REPLAY_RECORDS_PROBLEM), (REPLAY_UNREAD, REPLAY_UNREAD_PROBLEM)],
    ids=["no_replay_table", "record_not_read"],
)
def test_a_bundle_whose_pipeline_file_turns_the_replay_records_off_is_refused_and_a_replay_still_is(
    ops: Ops,
    container: Callable[..., Container],
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    live: bool,
    pipeline_file: str,
    problem: str,
) -> None:
    assert pipeline_file != PIPELINE_FILE
    started, unrecorded, error, deciding = refused_at_cold_start(
        ops, container, json_logs, capsys, pipeline_file, live=live
    )
    assert (error["bundle"], error["problems"]) == (unrecorded, [problem])
    world.add_conversation()
    captured = rest_event("whatsapp", whatsapp_params())
    started.application.handle(captured, None)
    assert len(world.sent("whatsapp")) == 1
    # Past the retry grace, once the consumer has taken the batch, the same signed request is posted again.
    (record,) = world.replay_rows()
    item = {**record, "replay_after": 0}
    world.dynamodb.put_item(TableName=world.resources.replay_table, Item=to_dynamo(item))
    for row in world.lock_rows():
        key = {"conversation_id": {"S": row["conversation_id"]}}
        world.dynamodb.delete_item(TableName=world.resources.lock_table, Key=key)
    started.application.handle(captured, None)
    line = event_lines(json_logs())[-1]
    assert (line["outcome"], line["rules_source"]) == ("REPLAY", deciding)
    assert len(world.sent("whatsapp")) == 1


def test_a_bundle_carrying_the_pipeline_file_as_deployed_with_new_step_parameters_is_used(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    # A deciding step's parameter (the others' say how a request is authenticated, recorded and answered): the
    # carried file no longer validates the project's status, so a paused project's message is routed, which the
    # deployed file would have refused PROJECT_INACTIVE.
    unchecked = PIPELINE_FILE.replace(
        "rulesets: [project_status, channel, conversation_lock]", "rulesets: [channel, conversation_lock]", 1
    )
    assert unchecked != PIPELINE_FILE
    bundle = ops.sneak_in(with_pipeline_file(rules_files(VIP_ROUTING), unchecked))
    started = container()
    assert [line for line in json_logs() if line["level"] == "ERROR"] == []
    world.add_conversation(vip=True, project_status="paused")
    line = started.message(json_logs)
    assert (line["outcome"], line["rules"]["routing"]) == ("HANDED_OFF", "vip_to_human")
    assert line["rules_source"] == f"bundle {bundle}, revision 1"


# A bundle larger than a bundle may be (defect: it was read, parsed and verified whatever its size, twice, before the
# first event: about 1.3 s per MB of rules added to every cold start, and memory and /tmp to match).


def test_a_bundle_too_large_is_refused_and_the_last_good_one_decides(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    good, _ = vip_bundle_live(ops, container, world)
    padding = "# " + "x" * 1022 + "\n"
    huge = ops.sneak_in(rules_files(AGENT_ROUTING.replace("rules:\n", padding * 1100 + "rules:\n", 1)))
    capsys.readouterr()

    fresh = container()
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["bundle"] == huge
    assert error["message"].startswith(f"rules bundle {huge} is refused: the bundle is ")
    assert error["message"].endswith(
        f" bytes, more than the 1048576 (1 MiB) it may be; the last good live bundle decides: bundle {good}, revision 1"
    )
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    line = fresh.message(json_logs, "sms", "can I speak to an agent?")
    assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {good}, revision 1")

    fresh.keys_read()
    fresh.after(INTERVAL)
    assert fresh.keys_read() == [("deployment.json", True)]  # refused once, not read again


# A cold start whose S3 read failed (defect: the container decided with the packaged rules, not the fleet's live
# bundle, until the first refresh: RULES_REFRESH_SECONDS later, up to an hour as the template allows).


def test_after_a_cold_start_that_could_not_read_s3_the_check_comes_back_soon_then_less_often(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    bundle = ops.publish("--live")
    started = container(fail="SlowDown")
    world.add_conversation(vip=True)
    assert started.message(json_logs)["rules_version"] == packaged_version()

    started.keys_read()
    started.after(RETRY_SECONDS - 1)
    assert started.keys_read() == []  # not yet
    started.after(1)
    assert started.keys_read() == [("deployment.json", False)]  # still failing: next after twice as long
    started.after(2 * RETRY_SECONDS - 1)
    assert started.keys_read() == []

    started.watcher.s3().meta.events.unregister("before-call.s3.GetObject", unique_id="fail")
    started.after(1)
    assert started.keys_read() == [("deployment.json", False), (f"bundles/{bundle}.json", False)]
    line = started.message(json_logs)
    assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {bundle}, revision 1")
    started.after(INTERVAL - 1)
    assert started.keys_read() == []  # settled: back to the interval
    started.after(1)
    assert started.keys_read() == [("deployment.json", True)]


# S3 failing on bundles while a new container starts (defects: the walk back through the history for a good bundle
# read every earlier bundle whatever the time, 50 slow reads in a cold start; and a bundle it could not read was
# taken as none being good, for good: the packaged rules decided until the deployment changed).


def distinct_bundles(ops: Ops, count: int) -> list[str]:
    """``count`` bundles published live one after the other (the routing with a comment of its own): their ids."""
    published = []
    for number in range(count):
        ops.edit("40_routing.yaml", f"# change {number}\n{VIP_ROUTING}")
        published.append(ops.publish("--live"))
    return published


def test_a_cold_start_with_s3_timing_out_on_bundles_stops_reading_within_its_budget(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    *earlier, wanted = distinct_bundles(ops, 5)

    def bundles_time_out(clock: Clock, path: str) -> Any:
        if "/bundles/" in path:
            clock.now += 2.0  # each read waits for its time-outs
            return error_response("RequestTimeout", 400)
        return None

    started = container(fault=bundles_time_out)
    read = [key for key, _ in started.keys_read()]
    assert read == ["deployment.json", f"bundles/{wanted}.json", f"bundles/{earlier[-1]}.json"]
    assert started.application.pipeline("twilio_inbound").version == packaged_version()

    started.watcher.s3().meta.events.unregister("before-call.s3.GetObject", unique_id="fail")
    started.after(RETRY_SECONDS)
    world.add_conversation(vip=True)
    assert started.message(json_logs)["rules_source"] == f"bundle {wanted}, revision 5"


def test_a_new_container_that_cannot_read_the_last_good_bundle_tries_it_again_soon(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    (good,) = distinct_bundles(ops, 1)
    ops.sneak_in(rules_files(BROKEN_ROUTING))

    def good_one_unreadable(clock: Clock, path: str) -> Any:
        return error_response("SlowDown", 503) if f"/bundles/{good}.json" in path else None

    started = container(fault=good_one_unreadable)
    assert started.application.pipeline("twilio_inbound").version == packaged_version()

    started.watcher.s3().meta.events.unregister("before-call.s3.GetObject", unique_id="fail")
    started.after(RETRY_SECONDS)
    world.add_conversation(vip=True)
    line = started.message(json_logs)
    assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {good}, revision 1")


def test_the_walk_back_passes_a_bundle_deleted_since(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    good, deleted = distinct_bundles(ops, 2)
    ops.s3.delete_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, deleted))
    ops.sneak_in(rules_files(BROKEN_ROUTING))
    started = container()
    world.add_conversation(vip=True)
    assert started.message(json_logs)["rules_source"] == f"bundle {good}, revision 1"


# A rule whose condition fails at run time (defect: the event line's rules left its set out, so it named no rule
# for an INTERNAL_ERROR a rule caused, while the shadow_mismatch line named that rule for the same event).


def test_the_event_line_names_the_rule_whose_condition_failed(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    failing = VIP_ROUTING.replace(
        'when: "conversation.vip == `true`"',
        "when: \"conversation.vip == `true` && starts_with(conversation.vip, 'x')\"",
    ).replace(
        "  - name: a vip goes to a person\n"
        "    given: {request: {channel: whatsapp}, conversation: {vip: true}}\n"
        "    expect: {rule: vip_to_human, target: handoff}\n",
        "",
    )
    bundle = ops.sneak_in(rules_files(failing))
    started = container()
    world.add_conversation(vip=True)
    line = started.message(json_logs)
    assert (line["outcome"], line["error_cause"], line["rules_source"]) == (
        "INTERNAL_ERROR",
        "RuleError",
        f"bundle {bundle}, revision 1",
    )
    assert line["rules"] == {
        "project_status": None,
        "channel": None,
        "conversation_lock": None,
        "routing": "vip_to_human",
    }
    assert world.stage_rows() == [] and world.sent("handoff") == []


@pytest.mark.parametrize("fault", ["tampered", "another pipeline's"])
def test_a_tampered_bundle_or_another_pipelines_is_refused_once_and_the_last_good_one_decides(
    ops: Ops,
    container: Callable[..., Container],
    world: Any,
    json_logs: Logs,
    capsys: pytest.CaptureFixture[str],
    fault: str,
) -> None:
    good, started = vip_bundle_live(ops, container, world)
    bundle = ops.sneak_in(rules_files(AGENT_ROUTING))
    key = bundle_key("rules/", PIPELINE, bundle)
    stored = Bundle.from_json(ops.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    if fault == "tampered":  # a rule changed in place, under the id of the files that were checked
        document = json.loads(stored.to_json())
        document["files"]["rules/40_routing.yaml"] = VIP_ROUTING.replace("target: handoff", "target: whatsapp")
        body = json.dumps(document).encode()
        reason = "the bundle's files do not match its id"
    else:
        body = stored._replace(pipeline="email_inbound").to_json()
        reason = "it is a bundle of pipeline 'email_inbound', not of 'twilio_inbound'"
    ops.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    capsys.readouterr()
    started.after(INTERVAL)
    started.after(INTERVAL)
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["bundle"] == bundle and error["message"].startswith(f"rules bundle {bundle} is refused: {reason}")
    assert error["rules_source"] == f"bundle {good}, revision 1"
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    line = started.message(json_logs, "sms", "can I speak to an agent?")
    assert (line["rules"]["routing"], line["rules_source"]) == ("vip_to_human", f"bundle {good}, revision 1")


# A deployment that makes a bundle the function refused (as shadow) live (defect: warm containers had refused it
# before, so they said nothing: no ERROR line, no count, while the rules ops promoted never decided).


def test_a_refused_bundle_made_live_is_said_again_and_counted(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    good, started = vip_bundle_live(ops, container, world)
    broken = ops.sneak_in(rules_files(BROKEN_ROUTING), live=False)
    started.after(INTERVAL)
    (first,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert first["bundle"] == broken
    capsys.readouterr()

    promoted = ops.deployment().change(live=broken, shadow=None, at="2026-12-01T00:00:00Z", by="someone")
    ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=promoted.to_json())
    started.after(INTERVAL)
    errors = [line for line in json_logs() if line["level"] == "ERROR"][1:]
    assert [(line["bundle"], line["problems"]) for line in errors] == [(broken, first["problems"])]
    assert errors[0]["message"].startswith(f"rules bundle {broken} of twilio_inbound (revision 3) is refused")
    assert errors[0]["rules_source"] == f"bundle {good}, revision 1"  # the revision that made it live
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1
    assert started.message(json_logs)["rules_source"] == f"bundle {good}, revision 1"

    started.after(INTERVAL)  # the same deployment: nothing said again
    assert len([line for line in json_logs() if line["level"] == "ERROR"]) == 2


def test_a_bundle_adding_a_business_code_has_its_refusals_recorded_against_replays(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    # The bundle may change the deciding steps' rule sets and declare the code, never replay.refusals' codes: (a
    # step parameter only a code deploy changes), so the code is recorded because a rule decides it.
    pipeline = with_new_business_code(PIPELINE_FILE)
    files = {**with_pipeline_file(rules_files(ROUTING), pipeline), "rules/35_user_block.yaml": BLOCK_RULES}
    bundle = ops.sneak_in(files)
    started = container()
    assert [line for line in json_logs() if line["level"] == "ERROR"] == []
    world.add_conversation(user_blocked=True)
    line = started.message(json_logs)
    assert (line["outcome"], line["rules_source"]) == ("USER_BLOCKED", f"bundle {bundle}, revision 1")
    [record] = world.replay_rows()
    assert record["refused"] == "USER_BLOCKED"


# A bundle object stored truncated (a hand upload cut short), deployed, then replaced by the whole bundle as the CLI
# says (defect: warm containers had refused it for good, so they kept the earlier rules, silently, while every new
# container decided with the whole bundle: the fleet decided two ways until the warm containers were recycled).


def test_a_half_uploaded_bundle_replaced_by_the_whole_one_decides_in_every_container(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    good, started = vip_bundle_live(ops, container, world)
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    agent = ops.publish()
    key = bundle_key("rules/", PIPELINE, agent)
    whole = ops.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    ops.s3.put_object(Bucket=BUCKET, Key=key, Body=whole[: len(whole) // 2])
    deployed = ops.deployment().change(live=agent, shadow=None, at="2026-12-01T00:00:00Z", by="someone")
    ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=deployed.to_json())
    capsys.readouterr()
    started.after(INTERVAL)
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["bundle"] == agent and "the bundle is not JSON" in error["message"]
    assert f"s3://{BUCKET}/{key}" in error["message"] and "publish it again" in error["message"]
    assert error["rules_source"] == f"bundle {good}, revision 1"
    assert counted(capsys.readouterr().out, "RulesBundleErrors") == 1

    # What the CLI tells ops to do: delete it and publish again (the deployment already names it: nothing written).
    status, _, err = ops.rules("publish", "--live")
    assert status == 2 and "delete it and publish again" in err
    ops.s3.delete_object(Bucket=BUCKET, Key=key)
    status, out, _ = ops.rules("publish", "--live")
    assert status == 0 and "unchanged, nothing written" in out

    started.after(INTERVAL)
    line = started.message(json_logs, "sms", "can I speak to an agent?")
    assert (line["rules"]["routing"], line["rules_source"]) == ("asks_for_agent", f"bundle {agent}, revision 2")
    fresh = container()
    line = fresh.message(json_logs, "sms", "an agent please")
    assert (line["rules"]["routing"], line["rules_source"]) == ("asks_for_agent", f"bundle {agent}, revision 2")
    assert [line["bundle"] for line in json_logs() if line["level"] == "ERROR"] == [agent]  # the first only


# A deployment naming a bundle S3 does not have (deployed by hand before the upload, or the object deleted) (defect:
# the ERROR line said only 'cannot be read (NoSuchKey)': neither where it was looked for nor what to do).


def test_a_bundle_missing_from_s3_is_named_with_its_key_and_the_fix_and_read_again(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    good, started = vip_bundle_live(ops, container, world)
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    agent = ops.publish()
    key = bundle_key("rules/", PIPELINE, agent)
    ops.s3.delete_object(Bucket=BUCKET, Key=key)
    deployed = ops.deployment().change(live=agent, shadow=None, at="2026-12-01T00:00:00Z", by="someone")
    ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=deployed.to_json())
    started.after(INTERVAL)
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["message"] == (
        f"rules bundle {agent} of twilio_inbound (revision 2) cannot be read (NoSuchKey: no object "
        f"s3://{BUCKET}/{key}); it is read again at the next check: publish it, or deploy another bundle; "
        "the rules in use keep deciding"
    )
    assert error["rules_source"] == f"bundle {good}, revision 1"
    assert ops.publish() == agent
    started.after(RETRY_SECONDS)
    line = started.message(json_logs, "sms", "an agent please")
    assert (line["rules"]["routing"], line["rules_source"]) == ("asks_for_agent", f"bundle {agent}, revision 2")


def test_a_cold_start_whose_budget_runs_out_between_live_and_shadow_deploys_them_together_at_the_retry(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    ops.edit("40_routing.yaml", f"# live\n{ROUTING}")
    live = ops.publish("--live")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    shadow = ops.publish("--shadow")

    def slow_bundles(clock: Clock, path: str) -> Any:
        if "/bundles/" in path:
            clock.now += 3.5  # the live bundle's read leaves the shadow's no time
        return None

    started = container(fault=slow_bundles)
    deployed = started.application.deployed(PIPELINE)
    assert (deployed.live.source, deployed.shadow) == (f"bundle {live}, revision 1", None)
    started.watcher.s3().meta.events.unregister("before-call.s3.GetObject", unique_id="fail")
    started.after(RETRY_SECONDS)
    deployed = started.application.deployed(PIPELINE)
    assert deployed.live.source == f"bundle {live}, revision 1"
    assert deployed.shadow is not None and deployed.shadow.source == f"bundle {shadow}, revision 2, shadow"
    assert deployed.plans is not None and deployed.plans[0].source == deployed.live.source


# The revision a kept live bundle is named with (defect: a warm container that refused a new live bundle named the
# one it kept with the revision it had applied, while a new container named it with the latest revision it was live
# at: when a shadow had been deployed in between, the same rules were two rules_source values across the fleet). Both
# name the revision that made it live.


def test_the_live_bundle_kept_after_a_refusal_has_one_rules_source_across_the_fleet(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    good, warm = vip_bundle_live(ops, container, world)
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    ops.publish("--shadow")
    ops.sneak_in(rules_files(BROKEN_ROUTING))
    warm.after(INTERVAL)
    fresh = container()

    sources = {started.message(json_logs)["rules_source"] for started in (warm, fresh)}
    assert sources == {f"bundle {good}, revision 1"}  # one source, naming the revision that made it live


def test_a_rules_directory_holding_a_name_that_is_not_utf8_still_publishes_and_names_it(
    ops: Ops, container: Callable[..., Container], json_logs: Logs
) -> None:
    """Defect: publish names what --rules holds unread in the bundle (``unread``), and a file whose name is not
    UTF-8 (``caf\\xe9.yaml.bak``, Latin-1 from an old archive, which Linux keeps as bytes) made it end in a traceback,
    UnicodeEncodeError from the bundle's JSON, nothing published, where before ``unread`` it published. Its name now
    goes out with the bytes that are not UTF-8 written as escapes, and the container names it so."""
    name = os.fsdecode(b"caf\xe9.yaml.bak")
    (ops.root / "rules" / name).write_text("ruleset: old\n", encoding="utf-8")
    bundle = ops.publish("--live")
    stored = json.loads(ops.s3.get_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, bundle))["Body"].read())
    assert stored["unread"] == ["rules/caf\\xe9.yaml.bak"]

    container()

    (line,) = [line for line in json_logs() if "not read" in line["message"]]
    assert "never runs: rules/caf\\xe9.yaml.bak; rename" in line["message"]


def test_a_bundle_naming_more_unread_entries_than_a_line_shows_says_how_many_more(
    ops: Ops, container: Callable[..., Container], json_logs: Logs
) -> None:
    """Defect: a bundle names every entry its rules directory held unread, and the container kept the first 100
    of them and dropped the rest without a word: 150 such files made a line naming 100, as if they were all. It
    now reads them all and its line, bounded as the cold start's (100 names), says how many more there are."""
    for index in range(150):
        (ops.root / "rules" / f"lookup_{index:03d}.json").write_text("{}\n", encoding="utf-8")
    bundle = ops.publish("--live")
    stored = json.loads(ops.s3.get_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, bundle))["Body"].read())
    assert len(stored["unread"]) == 150

    container()

    (line,) = [line for line in json_logs() if "not read" in line["message"]]
    assert "rules/lookup_099.json and 50 more; rename or move each" in line["message"]
    assert len(line["problems"]) == 100


def test_publishing_again_after_moving_an_unread_file_out_says_the_bundle_still_names_it(ops: Ops) -> None:
    """Defect: a bundle published while rules/ held 40_routing.yaml.bak names it unread, and each container says
    "rename or move each as problems says, then publish again". Moving the copy out and publishing again made the
    same files, the same bundle: "already published", nothing said, and the containers went on naming the file, as
    they will while that bundle is deployed (a bundle is immutable). publish now says so: the stored bundle names
    entries that --rules no longer holds, and the function names them while it is deployed."""
    backup = ops.root / "rules" / "40_routing.yaml.bak"
    backup.write_text("ruleset: old\n", encoding="utf-8")
    bundle = ops.publish("--live")
    backup.unlink()
    status, out, err = ops.rules("publish", "--live")
    assert status == 0 and f"already published: bundle {bundle} " in out
    assert (
        f"pipeline-rules: note: bundle {bundle} was first published naming rules/40_routing.yaml.bak as not read, "
        "which --rules no longer holds: the function names it as long as the bundle is deployed (a bundle is "
        "immutable; its files are the same without it)\n"
    ) in err
    status, _, err = ops.rules("publish", "--live")
    assert status == 0 and "first published naming" in err  # said each time, while it is so

    backup.write_text("ruleset: old\n", encoding="utf-8")
    status, _, err = ops.rules("publish", "--live")
    assert status == 0 and "first published naming" not in err


# A new container whose live bundle it refuses, where the deployment's history holds a bundle a rollback undid
# (defect: the walk back took every earlier live bundle, so it revived the one ops had rolled back from). Here A was
# published with the pipeline file before a code deploy changed the steps; B went live after it and was rolled back
# ("B hands every agent request to a person"), A live again. After the code deploy every container is new, refuses
# A, and B, which verifies, decided every event (`the last good live bundle decides: bundle B, revision 2`): the
# rules ops had taken back, live again with no deployment naming them. A bundle a rollback undid is not walked to.


def test_a_new_container_never_falls_back_to_a_bundle_a_rollback_undid(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    before_the_code_deploy = ops.sneak_in(with_pipeline_file(rules_files(VIP_ROUTING), BEFORE_TYPES))
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    undone = ops.publish("--live")
    rolled_back = ops.deployment().change(
        live=before_the_code_deploy,
        shadow=None,
        at="2026-12-03T00:00:00Z",
        by="carol",
        note="B hands every agent request to a person",
        rollback=True,
    )  # as `pipeline-rules rollback` wrote it before the code deploy (it checks with the code of its day)
    ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=rolled_back.to_json())

    started = container()
    (error,) = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["bundle"] == before_the_code_deploy
    assert error["message"].endswith("; the rules packaged beside the handler decide"), error["message"]
    world.add_conversation()
    line = started.message(json_logs, "whatsapp", "can I speak to an agent?")
    assert (line["rules"]["routing"], line.get("rules_source")) == ("channel_queue", None)
    assert undone not in json.dumps(json_logs())


# The same in a warm container: a rollback from B to a bundle A the function refuses (A calls what this code no longer
# has; `pipeline-rules rollback` run away from the project checks nothing, so writes it). Defect: the warm container
# kept B, the bundle the rollback undid, while (since the walk above) new containers decide with the packaged rules:
# the fleet split two ways, and the warm half decided with the rules ops took back. It now walks as a new one does.


def test_a_warm_container_does_not_keep_a_bundle_a_rollback_undid_when_the_rollback_is_refused(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    refused = ops.sneak_in(rules_files(BROKEN_ROUTING))  # live before the code deploy that now refuses it
    ops.edit("40_routing.yaml", VIP_ROUTING)
    undone = ops.publish("--live")
    warm = container()
    world.add_conversation(vip=True)
    assert warm.message(json_logs)["rules_source"] == f"bundle {undone}, revision 2"
    rolled_back = ops.deployment().change(
        live=refused, shadow=None, at="2026-12-03T00:00:00Z", by="carol", note="B is wrong", rollback=True
    )
    ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=rolled_back.to_json())
    seen = len(json_logs())

    warm.after(INTERVAL)
    fresh = container()
    errors = [line for line in json_logs()[seen:] if line["level"] == "ERROR"]
    assert [line["bundle"] for line in errors] == [refused, refused]
    assert all(line["message"].endswith("; the rules packaged beside the handler decide") for line in errors)
    for started in (warm, fresh):
        line = started.message(json_logs)
        assert (line["rules"]["routing"], line.get("rules_source")) == ("channel_queue", None), line


# The same for a warm container deciding with the packaged rules: A live, B (which this code refuses) live, then
# `rollback --to packaged`, then `rollback --to B`, which undoes the packaged rules' revision (the rollback chain is
# A). Defect: the warm container refusing B kept the packaged rules (they were exempt from the check above), while
# new containers walked to A: the fleet split, the warm half deciding with the rules the rollback undid.


def test_a_warm_container_does_not_keep_the_packaged_rules_when_a_rollback_undid_them(
    ops: Ops, container: Callable[..., Container], world: Any, json_logs: Logs
) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    good = ops.publish("--live")
    refused = ops.sneak_in(rules_files(BROKEN_ROUTING))

    def rollback(live: str | None, note: str) -> None:
        rolled_back = ops.deployment().change(
            live=live, shadow=None, at="2026-12-03T00:00:00Z", by="carol", note=note, rollback=True
        )
        ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=rolled_back.to_json())

    rollback(None, "back to the packaged rules")
    warm = container()
    world.add_conversation(vip=True)
    assert warm.message(json_logs).get("rules_source") is None
    rollback(refused, "B after all")
    assert ops.deployment().rollback_chain() == [good]

    warm.after(INTERVAL)
    fresh = container()
    for started in (warm, fresh):
        line = started.message(json_logs)
        assert (line["rules"]["routing"], line.get("rules_source")) == ("vip_to_human", f"bundle {good}, revision 1")
