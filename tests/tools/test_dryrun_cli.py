"""``pipeline-dryrun`` as a user runs it: a subprocess over the bundled examples, asserting its output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.dryrun import ROOT, child_env, run_module
from tests.support.expect import version_sources
from tests.support.shipped import pipeline_names, position

WORLD = yaml.safe_load((ROOT / "examples" / "world.yaml").read_text())
SHIPPED = (ROOT / "pipelines" / "twilio_inbound.yaml").read_text(encoding="utf-8")
TOKENS = sorted({value["twilio_auth_token"] for value in WORLD["secrets"].values() if "twilio_auth_token" in value})
NUMBERS = sorted({item["primary_channel"] for item in WORLD["conversations"]} | {"+14155238886", "+441632960001"})
BODIES = [
    "Hi! Can I change my delivery address?",
    "What time do you open tomorrow?",
    "Thanks Priya, the order number is 10442.",
    "Is my order on its way?",
    "I want to speak to a person please",
    "about my last order",
]
LOCKED_REPLY = "<Message>I'm processing your previous message."

EXPECTED = {
    "01_whatsapp_text.json": ("QUEUED", "whatsapp"),
    "02_sms_http_api.json": ("QUEUED", "sms"),
    "03_handoff.json": ("HANDED_OFF", "handoff"),
    "04_locked_conversation.json": ("CONVERSATION_LOCKED", None),
    "05_inactive_project.json": ("PROJECT_INACTIVE", None),
    "06_bad_signature.json": ("INVALID_SIGNATURE", None),
    "07_media_only.json": ("QUEUED", "whatsapp"),
    "08_burst.jsonl#0": ("QUEUED", "whatsapp"),
    "08_burst.jsonl#1": ("BATCHED", "whatsapp"),
    "08_burst.jsonl#2": ("BATCHED", "whatsapp"),
    "09_secret_missing.json": ("SECRET_FETCH_FAILED", None),
    "10_lock_held.json": ("BATCHED", "whatsapp"),
    "11_redelivered.json": ("QUEUED", "whatsapp"),
    "12_callback_and_stranger.json#0": ("STATUS_CALLBACK", None),
    "12_callback_and_stranger.json#1": ("CONVERSATION_NOT_FOUND", None),
    "13_email.jsonl#0": ("QUEUED", "email"),
    "13_email.jsonl#1": ("EMAIL_REJECTED", None),
    "13_email.jsonl#2": ("INVALID_SIGNATURE", None),
}


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    def records(self) -> dict[str, dict[str, Any]]:
        lines = [json.loads(line) for line in self.stdout.splitlines()]
        return {record["source"].removeprefix("examples/events/"): record for record in lines}


def dryrun(*args: str | Path) -> Run:
    """Run the command from the repository root, in an environment that points boto3 somewhere unusable."""
    # A world replay must not depend on (or reach) the user's AWS configuration.
    env = child_env(
        AWS_PROFILE="no-such-profile", AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_DEFAULT_REGION="eu-west-1"
    )
    done = run_module("tools.dryrun.cli", *args, env=env)
    return Run(done.returncode, done.stdout, done.stderr)


def assert_no_secrets(run: Run) -> None:
    for token in TOKENS:
        assert token not in run.stdout and token not in run.stderr, token


@pytest.fixture(scope="module")
def replay() -> Run:
    """The examples replayed against the moto world, as JSON."""
    return dryrun("--world", "examples/world.yaml", "--json", "examples/events")


def test_every_example_has_the_expected_outcome_and_target(replay: Run) -> None:
    assert replay.status == 0, replay.stderr
    records = replay.records()
    assert {source: (r["outcome"], r["target"]) for source, r in records.items()} == EXPECTED
    for record in records.values():
        assert record["raised"] is False
        if record["pipeline"] == "twilio_inbound":
            assert record["status_code"] == 200  # Twilio channels answer TwiML, errors included
        else:
            assert record["status_code"] == {"QUEUED": 200, "EMAIL_REJECTED": 422}.get(record["outcome"], 403)
        assert (record["error_code"] is None) == (
            record["outcome"] in {"QUEUED", "BATCHED", "HANDED_OFF", "STATUS_CALLBACK"}
        )
        queue = record["queue"]
        assert queue == (
            f"https://sqs.us-east-1.amazonaws.com/123456789012/{record['target']}" if record["target"] else None
        )
        assert [entry["step"] for entry in record["trace"]][:1] == ["parse"]
        assert all(set(entry) == {"step", "status", "ms", "decision"} for entry in record["trace"])


def test_actions_are_the_lambdas_writes_and_sends(replay: Run) -> None:
    records = replay.records()
    queued = records["01_whatsapp_text.json"]["actions"]
    assert [(a["type"], a.get("table") or a.get("queue")) for a in queued] == [
        ("put_item", "conversations-stage"),
        ("put_item", "conversations-trigger-lock"),
        ("put_item", "conversations-replay"),
        ("put_item", "conversations-trigger-lock"),
        ("send_message", "whatsapp"),
    ]
    stage, lock, record, sent, send = queued
    assert record["item"]["message_sid"] == stage["item"]["message_sid"] and "condition_failed" not in record
    assert record["item"]["expires_at"] == 1795608000 + 7 * 86400
    assert sent["item"]["trigger_due_at"] == 1795608000 + 10 and "condition_failed" not in sent
    assert stage["item"]["body"] == "[masked]" and stage["item"]["received_at"] == "2026-11-25T12:00:00.000Z"
    assert stage["item"]["expires_at"] == 1795608000 + 86400
    assert lock["item"]["expires_at"] == 1795608000 + 10 + 60 and "condition_failed" not in lock
    assert send["delay_seconds"] == 10
    assert json.loads(send["body"]) == {
        "conversation_id": "ci-acme-001#pi-acme-support#6f0c2a52-5d0e-4d8e-9a55-1c1d7f0b2a01#**********01",
        "primary_channel": "+**********01",
    }
    # A burst: the first message takes the lock, the next ones find it held and only stage (and are recorded).
    batched = records["08_burst.jsonl#1"]["actions"]
    assert [a["type"] for a in batched] == ["put_item", "put_item", "put_item"]
    assert [a.get("condition_failed", False) for a in batched] == [False, True, False]
    # A re-delivered MessageSid: the stage row is already there; the lock is its own, so it triggers again.
    redelivered = records["11_redelivered.json"]["actions"]
    assert [a.get("condition_failed", False) for a in redelivered] == [True, False, False, False, False]
    media = records["07_media_only.json"]["actions"][0]["item"]
    assert media["body"] == "" and media["num_media"] == 1 and media["media"][0]["content_type"] == "image/jpeg"
    handoff = records["03_handoff.json"]["actions"]
    assert [(a["type"], a.get("queue")) for a in handoff] == [
        ("put_item", None),
        ("put_item", None),
        ("send_message", "handoff"),
    ]
    body = json.loads(handoff[2]["body"])
    assert handoff[2]["delay_seconds"] == 0
    assert (
        body["body"] == "[masked]"
        and body["request"]["Body"] == "[masked]"
        and body["request"]["ProfileName"] == "[masked]"
    )
    assert body["conversation"]["messages"][0]["content"] == "[masked]"
    # A refusal is recorded against replays (the only write); a forged request writes nothing.
    refusals = {"04_locked_conversation.json": "CONVERSATION_LOCKED", "05_inactive_project.json": "PROJECT_INACTIVE"}
    for source, code in refusals.items():
        [refusal] = records[source]["actions"]
        assert (refusal["table"], refusal["item"]["refused"]) == ("conversations-replay", code)
    assert records["06_bad_signature.json"]["actions"] == []


def test_each_decision_is_explained(replay: Run) -> None:
    records = replay.records()
    locked = records["04_locked_conversation.json"]
    assert LOCKED_REPLY in locked["response"]["body"] and locked["response"]["content_type"] == "text/xml"
    assert locked["rules"][-1] == {
        "ruleset": "conversation_lock",
        "rule": "processing_reply",
        "matched": True,
        "inputs": {"conversation.conversation_status": "processing_reply"},
    }
    routed = records["03_handoff.json"]["rules"]
    assert [(r["ruleset"], r["rule"], r["matched"]) for r in routed][-2:] == [
        ("conversation_lock", "processing_reply", False),
        ("routing", "hand_off_to_human", True),
    ]
    numbers = records["01_whatsapp_text.json"]["rules"][-2]
    assert (
        numbers["rule"] == "auto_queue_from_number"
        and numbers["inputs"]["conversation.recipient_tel"] == "+**********01"
    )
    assert records["06_bad_signature.json"]["signature"] == "invalid"
    assert records["01_whatsapp_text.json"]["signature"] == "valid"
    missing = records["09_secret_missing.json"]
    assert missing["signature"] == "unchecked" and missing["error_code"] == "SECRET_FETCH_FAILED"
    assert any("signature not checked" in note for note in missing["notes"])
    assert [e["status"] for e in missing["trace"]][-1] == "SECRET_FETCH_FAILED"


def test_personal_data_is_masked_and_tokens_never_appear(replay: Run) -> None:
    assert_no_secrets(replay)
    for value in [*NUMBERS, *(number.lstrip("+") for number in NUMBERS), *BODIES, "Alice"]:
        assert value not in replay.stdout, value


@pytest.fixture(scope="module")
def replay_unmasked() -> Run:
    """The memory world, events independent, signatures skipped, data shown."""
    return dryrun(
        "--world",
        "examples/world.yaml",
        "--backend",
        "memory",
        "--json",
        "--show-data",
        "--skip-signature",
        "--independent",
        "examples/events",
    )


def test_show_data_skip_signature_and_independent(replay_unmasked: Run) -> None:
    assert replay_unmasked.status == 0, replay_unmasked.stderr
    assert_no_secrets(replay_unmasked)
    records = replay_unmasked.records()
    assert all(record["signature"] == "skipped" for record in records.values())
    for source in ("01_whatsapp_text.json", "09_secret_missing.json"):
        statuses = {e["step"]: e["status"] for e in records[source]["trace"]}
        assert statuses["auth_token"] == statuses["signature"] == "skipped (--skip-signature)"
    # Every event against the world as loaded: each message of the burst triggers; the live lock still batches.
    assert [records[f"08_burst.jsonl#{i}"]["outcome"] for i in range(3)] == ["QUEUED"] * 3
    assert records["10_lock_held.json"]["outcome"] == "BATCHED"
    # Without a signature check, the forged event and the one without a secret go through.
    assert records["06_bad_signature.json"]["outcome"] == "QUEUED"
    assert records["09_secret_missing.json"]["outcome"] == "QUEUED"
    assert "+447700900101" in replay_unmasked.stdout and BODIES[0] in replay_unmasked.stdout


def test_the_demo_prints_a_table_and_a_summary() -> None:
    run = dryrun("--world", "examples/world.yaml", "examples/events")
    assert run.status == 0, run.stderr
    assert_no_secrets(run)
    lines = run.stdout.splitlines()
    header = next(line for line in lines if line.startswith("SOURCE"))
    assert header.split() == ["SOURCE", "OUTCOME", "TARGET", "STATUS", "ACTIONS", "WHY"]
    row = next(line for line in lines if line.startswith("examples/events/08_burst.jsonl#1"))
    assert row.split()[1:5] == ["BATCHED", "whatsapp", "200", "3"] and "held by another message" in row
    email = next(line for line in lines if line.startswith("examples/events/13_email.jsonl#0"))
    assert email.split()[1:] == ["QUEUED", "email", "200", "6", "route:", "email", "(default)"]
    assert re.search(rf"^{len(EXPECTED)} events replayed in [0-9.]+s$", run.stdout, re.MULTILINE)
    assert re.search(r"^  QUEUED +6$", run.stdout, re.MULTILINE)
    assert "signature not checked for 2 event(s)" in run.stdout
    for value in [*NUMBERS, *BODIES]:
        assert value not in run.stdout


@pytest.fixture(scope="module")
def changed_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped rules with one change: the conversation lock now applies to SMS only."""
    rules = tmp_path_factory.mktemp("rules") / "rules"
    shutil.copytree(ROOT / "rules", rules)
    lock = rules / "30_conversation_lock.yaml"
    original = "when: \"conversation.conversation_status == 'processing_reply'\""
    assert original in lock.read_text()
    lock.write_text(
        lock.read_text().replace(
            original, "when: \"conversation.conversation_status == 'processing_reply' && request.channel == 'sms'\""
        )
    )
    return rules


def test_a_changed_rule_flips_exactly_the_expected_events(changed_rules: Path) -> None:
    run = dryrun(
        "--world",
        "examples/world.yaml",
        "--backend",
        "memory",
        "--json",
        "--rules",
        changed_rules,
        "--baseline-rules",
        "rules",
        "examples/events",
    )
    assert run.status == 0, run.stderr
    records = run.records()
    assert {source for source, record in records.items() if record["changed"]} == {"04_locked_conversation.json"}
    flipped = records["04_locked_conversation.json"]
    assert (flipped["baseline_outcome"], flipped["baseline_target"]) == ("CONVERSATION_LOCKED", None)
    assert (flipped["outcome"], flipped["target"]) == ("QUEUED", "whatsapp")
    assert flipped["change"] == "CONVERSATION_LOCKED → QUEUED[whatsapp]"
    for source, record in records.items():
        if source != "04_locked_conversation.json":
            assert (record["baseline_outcome"], record["baseline_target"]) == EXPECTED[source]


def test_fail_on_change_exits_1_with_a_summary_per_change(changed_rules: Path) -> None:
    run = dryrun(
        "--world",
        "examples/world.yaml",
        "--backend",
        "memory",
        "--explain",
        "--jobs",
        "2",
        "--rules",
        changed_rules,
        "--baseline-rules",
        "rules",
        "--fail-on-change",
        "examples/events/04_locked_conversation.json",
        "examples/events/08_burst.jsonl",
    )
    assert run.status == 1, run.stderr
    assert_no_secrets(run)
    assert run.stdout.count("SOURCE ") == 1 and run.stdout.count(" replayed in ") == 1  # two workers
    assert "CHANGED (was CONVERSATION_LOCKED)" in run.stdout
    assert re.search(r"1 event\(s\) changed\n  CONVERSATION_LOCKED → QUEUED\[whatsapp\]  1\n", run.stdout)
    assert "    trace:    parse ok" in run.stdout
    assert "    rule:     conversation_lock/processing_reply: no match (conversation.conversation_status=" in run.stdout
    assert "    action:   send_message whatsapp delay 10s" in run.stdout
    assert "    response: 200 text/xml" in run.stdout
    for value in [*NUMBERS, *BODIES]:
        assert value not in run.stdout


def shipped_version(pipeline: str = "twilio_inbound") -> str:
    from engine.config import content_digest

    files = version_sources(ROOT, pipeline)
    return content_digest((f"{path.parent.name}/{path.name}", path.read_text()) for path in files)


def test_every_output_names_the_deciding_rule_and_the_rules_version(replay: Run) -> None:
    version = shipped_version()
    records = replay.records()
    handoff = records["03_handoff.json"]
    assert handoff["rules_version"] == version
    assert handoff["decided_by"] == {
        "project_status": None,
        "channel": None,
        "conversation_lock": None,
        "routing": "hand_off_to_human",
    }
    assert records["05_inactive_project.json"]["decided_by"] == {"project_status": "project_inactive"}
    assert records["06_bad_signature.json"]["decided_by"] == {}
    table = dryrun("--world", "examples/world.yaml", "--explain", "examples/events/03_handoff.json")
    expected = "rules version: " + ", ".join(f"{name} {shipped_version(name)}" for name in pipeline_names())
    assert table.stdout.splitlines()[0] == expected
    assert (
        "    decided:  project_status -, channel -, conversation_lock -, routing hand_off_to_human "
        f"(rules version {version})"
    ) in table.stdout


def test_the_rules_version_docs_dry_run_quotes_for_the_shipped_files_is_theirs() -> None:
    """Defect: docs/dry-run.md quoted a version of files long since changed, so ops could not match it to the banner."""
    expected = "rules version: " + ", ".join(f"{name} {shipped_version(name)}" for name in pipeline_names())
    docs = " ".join((ROOT / "docs" / "dry-run.md").read_text().split())
    assert f"(`{expected}` for the shipped files" in docs


def test_a_rule_whose_condition_fails_is_named_as_deciding_its_set(tmp_path: Path) -> None:
    """Defect: ``decided_by`` left the set out, so an INTERNAL_ERROR a rule caused named no rule."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    routing = rules / "40_routing.yaml"
    failing = "conversation.hand_off_to_human == `true` && starts_with(conversation.hand_off_to_human, 'x')"
    routing.write_text(routing.read_text().replace("conversation.hand_off_to_human == `true`", failing, 1))
    run = dryrun("--world", "examples/world.yaml", "--json", "--rules", rules, "examples/events/03_handoff.json")
    (record,) = run.records().values()
    assert record["outcome"] == "INTERNAL_ERROR", run.stderr
    assert record["decided_by"] == {
        "project_status": None,
        "channel": None,
        "conversation_lock": None,
        "routing": "hand_off_to_human",
    }


def test_the_explanation_of_a_failed_condition_shows_the_rules_tried_and_what_the_failed_one_read(
    tmp_path: Path,
) -> None:
    """Defect: when a condition failed (INTERNAL_ERROR), --explain listed no rule of its set at all: neither the
    rules tried before it (no match) nor the failed one with the values it read (here the null that broke it)."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    routing = rules / "40_routing.yaml"
    failing = "contains(conversation.tags, 'vip')"
    routing.write_text(routing.read_text().replace("conversation.auto_queue_reply_message == `true`", failing, 1))
    run = dryrun(
        "--world", "examples/world.yaml", "--explain", "--rules", rules, "examples/events/01_whatsapp_text.json"
    )
    explained = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("rule:")]
    assert explained[-2:] == [
        "rule:     routing/hand_off_to_human: no match (conversation.hand_off_to_human=false)",
        "rule:     routing/auto_queue_reply: condition failed (conversation.tags=null)",
    ], run.stdout
    run = dryrun("--world", "examples/world.yaml", "--json", "--rules", rules, "examples/events/01_whatsapp_text.json")
    (record,) = run.records().values()
    assert record["rules"][-1] == {
        "ruleset": "routing",
        "rule": "auto_queue_reply",
        "matched": False,
        "inputs": {"conversation.tags": None},
    }
    assert record["decided_by"]["routing"] == "auto_queue_reply"


def test_a_baseline_pipeline_compares_a_change_that_adds_a_rule_set(tmp_path: Path) -> None:
    """The new set must be named in the pipeline file too: the baseline is the pipeline without it."""
    root = tmp_path / "change"
    shutil.copytree(ROOT / "pipelines", root / "pipelines")
    shutil.copytree(ROOT / "rules", root / "rules")
    (root / "rules" / "35_paused_channel.yaml").write_text(
        "ruleset: paused_whatsapp\n"
        "kind: validation\n"
        "rules:\n"
        "  - id: whatsapp_paused\n"
        "    when: \"request.channel == 'whatsapp'\"\n"
        "    then: {error: CHANNEL_NOT_ALLOWED, message: whatsapp is paused}\n"
        "tests:\n"
        "  - name: whatsapp is paused\n"
        "    given: {request: {channel: whatsapp}}\n"
        "    expect: {rule: whatsapp_paused, error: CHANNEL_NOT_ALLOWED}\n"
    )
    pipeline = root / "pipelines" / "twilio_inbound.yaml"
    text = pipeline.read_text()
    pipeline.write_text(text.replace("conversation_lock]", "conversation_lock, paused_whatsapp]", 1))
    run = dryrun(
        "--world",
        "examples/world.yaml",
        "--json",
        "--pipeline",
        pipeline,
        "--rules",
        root / "rules",
        "--baseline-pipeline",
        "pipelines/twilio_inbound.yaml",
        "--baseline-rules",
        "rules",
        "--fail-on-change",
        "examples/events/01_whatsapp_text.json",
        "examples/events/02_sms_http_api.json",
    )
    assert run.status == 1, run.stderr
    records = run.records()
    changed = records["01_whatsapp_text.json"]
    assert changed["change"] == "QUEUED[whatsapp] → CHANNEL_NOT_ALLOWED"
    assert changed["decided_by"]["paused_whatsapp"] == "whatsapp_paused"
    assert (
        changed["baseline_decided_by"]["routing"] == "channel_queue"
        and "paused_whatsapp" not in changed["baseline_decided_by"]
    )
    assert changed["baseline_rules_version"] == shipped_version() != changed["rules_version"]
    assert records["02_sms_http_api.json"]["changed"] is False


def test_bad_arguments_exit_2() -> None:
    run = dryrun("--world", "examples/world.yaml", "--fail-on-change", "examples/events")
    assert run.status == 2 and "--fail-on-change needs --baseline-rules" in run.stderr
    assert dryrun("--no-such-option", "examples/events").status == 2


def test_unreadable_event_files_exit_2_with_their_position(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": "2.0",\n  "body": }\n')
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"version": "2.0"}\n{"version": \n')
    run = dryrun("--world", "examples/world.yaml", broken, lines, tmp_path / "missing.json")
    assert run.status == 2
    assert f"{broken}:2:11: invalid JSON: Expecting value" in run.stderr
    assert f"{lines}:2:13: invalid JSON Lines entry: Expecting value" in run.stderr
    assert f"{tmp_path / 'missing.json'}:1:1: no such file or directory" in run.stderr
    assert run.stdout == ""


def test_bad_configuration_and_world_exit_2_with_their_position(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    channel = rules / "20_channel.yaml"
    channel.write_text(channel.read_text().replace("request.channel)", "request.channel"))
    run = dryrun("--world", "examples/world.yaml", "--rules", rules, "examples/events")
    assert run.status == 2
    assert re.search(rf"{re.escape(str(channel))}:\d+:\d+: invalid JMESPath", run.stderr), run.stderr
    world = tmp_path / "world.yaml"
    world.write_text(
        "now: 2026-11-25T12:00:00Z\nconversations:\n  - primary_channel: '+1'\n    created_at: 2026-11-20\n"
    )
    run = dryrun("--world", world, "examples/events")
    assert run.status == 2
    assert f"{world}:4:17: unquoted timestamp" in run.stderr
    assert f"{world}:3:5: " in run.stderr and "conversation_id" in run.stderr


def test_a_world_whose_secrets_are_written_as_a_list_does_not_print_the_auth_token(tmp_path: Path) -> None:
    # Writing secrets: as a list (like conversations:) is an easy mistake; the schema message quotes the value.
    world = tmp_path / "world.yaml"
    world.write_text(
        "secrets:\n"
        "  - name: ai-multi-comms/whatsapp-credentials/acme/support/twilio-prod\n"
        f"    twilio_auth_token: {TOKENS[0]}\n"
        "conversations: []\n"
    )
    run = dryrun("--world", world, "examples/events/01_whatsapp_text.json")
    assert run.status == 2
    assert f"{world}:2:3: secrets: expected object, got array" in run.stderr
    assert_no_secrets(run)


def test_without_the_tools_extra_the_commands_say_how_to_install_it(tmp_path: Path) -> None:
    # A directory that shadows moto with a module that cannot be imported, as on an install without the extra.
    (tmp_path / "moto").mkdir()
    (tmp_path / "moto" / "__init__.py").write_text("raise ImportError('moto is not installed')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    for command in (
        ["-m", "tools.dryrun.cli", "--world", "examples/world.yaml", "examples/events/01_whatsapp_text.json"],
        ["-m", "tools.serve", "--moto", "--port", "0"],
    ):
        done = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "pip install 'inbound-webhook-pipeline[tools]'" in done.stderr
        assert "Traceback" not in done.stderr
    # The memory backend needs no moto.
    done = subprocess.run(
        [sys.executable, "-m", "tools.dryrun.cli", "--world", "examples/world.yaml", "--backend", "memory", "examples"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--strict", "examples/events"], "--strict: only with --check"),
        (["--strict-env", "--world", "examples/world.yaml", "examples/events"], "--strict-env: only with --check"),
        (["--check", "examples/events"], "--check replays no events: drop EVENTS"),
        (["--check", "--world", "examples/world.yaml", "--json"], "--check replays no events: drop --world, --json"),
        (
            ["--report-title", "Friday", "--world", "examples/world.yaml", "examples/events"],
            "--report-title: only with --report FILE",
        ),
    ],
)
def test_an_option_given_without_its_mode_is_refused_not_ignored(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.dryrun.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert reason in captured.err and captured.out == ""


def test_a_mistake_in_a_rules_file_every_pipeline_loads_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.dryrun.cli import main

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    channel = rules / "20_channel.yaml"
    channel.write_text(
        channel.read_text(encoding="utf-8").replace('when: "', 'when: "lowr(x) && ', 1), encoding="utf-8"
    )
    status = main(["--world", str(ROOT / "examples/world.yaml"), "--rules", str(rules), str(ROOT / "examples/events")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("unknown function lowr()") == 1, err


@pytest.fixture
def live_bundle(tmp_path: Path) -> Path:
    """The rules directory `pipeline-rules pull` writes for the live twilio_inbound bundle (none of email's)."""
    import boto3
    from moto import mock_aws

    from tests.support.bundles import Ops, make_bucket, working_copy

    with mock_aws():
        ops = Ops(boto3.client("s3"), working_copy(tmp_path / "ops"))
        make_bucket(ops.s3)
        live = ops.publish("--live")
        status, _, err = ops.rules("pull", live, "--out", str(tmp_path / "live"))
        assert status == 0, err
    return tmp_path / "live" / "rules"


def test_a_bundle_pulled_as_baseline_compares_its_own_pipeline_and_leaves_the_others_alone(
    changed_rules: Path, live_bundle: Path
) -> None:
    """The documented workflow: `pipeline-rules pull` of the live twilio bundle, then a replay of every event."""
    run = dryrun(
        "--world",
        "examples/world.yaml",
        "--json",
        "--rules",
        changed_rules,
        "--baseline-rules",
        live_bundle,
        "examples/events",
    )
    assert run.status == 0, run.stderr
    assert f"{live_bundle} holds no rules of email_inbound: its events are decided with " in run.stderr
    records = run.records()
    assert {source for source, record in records.items() if record["changed"]} == {"04_locked_conversation.json"}
    for source, record in records.items():
        if source != "04_locked_conversation.json":
            assert (record["baseline_outcome"], record["baseline_target"]) == EXPECTED[source]
    email = records["13_email.jsonl#0"]
    assert email["baseline_rules_version"] == email["rules_version"]
    whatsapp = records["01_whatsapp_text.json"]
    assert whatsapp["baseline_rules_version"] != whatsapp["rules_version"]


# A CI gate (--fail-on-change) must not pass a rule change because the baseline it was given compared nothing.


def replay_against(baseline: str | Path, *more: str | Path, rules: str | Path = "rules") -> Run:
    return dryrun(
        "--world", "examples/world.yaml", "--rules", rules, "--baseline-rules", baseline, "--fail-on-change", *more
    )


@pytest.mark.parametrize(
    ("baseline", "reason"),
    [
        ("deployed/rulez", "no such directory"),
        ("empty", "the directory holds no rules files (*.yaml, *.yml)"),
        ("empty/notes.txt", "the directory holds no rules files (*.yaml, *.yml)"),
        ("rules/40_routing.yaml", "not a directory"),
    ],
)
def test_a_baseline_rules_path_that_holds_no_rules_is_refused(
    changed_rules: Path, tmp_path: Path, baseline: str, reason: str
) -> None:
    # Before: "…/rulez holds no rules of twilio_inbound: … (not compared)", "0 event(s) changed", exit 0.
    (tmp_path / "empty").mkdir()
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    path = tmp_path / baseline
    if path.suffix == ".txt":
        path.write_text("not rules\n")
        path = path.parent
    run = replay_against(path, "examples/events/04_locked_conversation.json", rules=changed_rules)
    assert run.status == 2, (run.stdout, run.stderr)
    assert run.stderr == f"{path}:1:1: --baseline-rules: {reason}; pass the directory holding the rules/*.yaml files\n"
    assert run.stdout == ""


def test_a_rules_path_that_does_not_exist_is_refused_even_with_a_good_baseline(tmp_path: Path) -> None:
    run = replay_against("rules", "examples/events/01_whatsapp_text.json", rules=tmp_path / "nope")
    assert run.status == 2, (run.stdout, run.stderr)
    assert f"{tmp_path / 'nope'}:1:1: --rules: no such directory" in run.stderr
    assert run.stdout == ""


def test_a_directory_naming_no_pipeline_lends_nothing_and_its_problems_are_reported(changed_rules: Path) -> None:
    # pipelines/ holds YAML but no rules of any pipeline: not a pulled bundle, so nothing is decided with --rules.
    run = replay_against("pipelines", "examples/events/04_locked_conversation.json", rules=changed_rules)
    assert run.status == 2, (run.stdout, run.stderr)
    assert "holds no rules of" not in run.stderr
    assert f"{position(SHIPPED, 'rulesets: [')}: rules: unknown rule set 'project_status'" in run.stderr


def test_an_empty_candidate_rules_directory_borrows_nothing_from_the_baseline(tmp_path: Path) -> None:
    # An empty --rules is allowed (a pipeline may use no rule set), but the shipped pipelines need theirs.
    run = replay_against("rules", "examples/events/01_whatsapp_text.json", rules=tmp_path)
    assert run.status == 2, (run.stdout, run.stderr)
    assert "holds no rules of" not in run.stderr
    assert f"{position(SHIPPED, 'ruleset: ', 'routing')}: route: unknown rule set 'routing'" in run.stderr


def test_fail_on_change_fails_when_a_replayed_pipelines_events_were_not_compared(
    changed_rules: Path, live_bundle: Path
) -> None:
    everything = replay_against(live_bundle, "--json", "examples/events", rules=changed_rules)
    assert everything.status == 2, everything.stderr
    assert everything.stderr.splitlines()[-1] == (
        f"{live_bundle}:1:1: --fail-on-change: none of the 3 event(s) of email_inbound was compared (this directory "
        f"holds no rules of email_inbound; both lanes decided them with {changed_rules}); compare with a rules "
        "directory that holds its rules, or replay only the other pipelines' events"
    )
    assert len(everything.records()) == len(EXPECTED)  # the replay itself still ran and was written
    # The bundle's own pipeline is compared: its events alone fail on the change, as a gate should.
    twilio_only = replay_against(live_bundle, "examples/events/04_locked_conversation.json", rules=changed_rules)
    assert twilio_only.status == 1, twilio_only.stderr
    assert "1 event(s) changed" in twilio_only.stdout


def test_json_says_which_events_were_not_compared_as_the_report_page_does(
    changed_rules: Path, live_bundle: Path
) -> None:
    # Before: the email events (decided with --rules in both lanes) said change_kind "unchanged", where the page
    # says "not compared"; a JSON consumer counted them as checked. `changed` (the contract's) stays false.
    run = dryrun(
        "--world",
        "examples/world.yaml",
        "--rules",
        changed_rules,
        "--baseline-rules",
        live_bundle,
        "--json",
        "examples/events",
    )
    assert run.status == 0, run.stderr
    kinds = {record["pipeline"]: set() for record in run.records().values()}
    for record in run.records().values():
        kinds[record["pipeline"]].add(record["change_kind"])
        assert record["changed"] is (record["change_kind"] in ("changed", "knock_on"))
    assert kinds["email_inbound"] == {"not_compared"}
    assert "not_compared" not in kinds["twilio_inbound"] and "changed" in kinds["twilio_inbound"]
    table = dryrun(
        "--world", "examples/world.yaml", "--rules", changed_rules, "--baseline-rules", live_bundle, "examples/events"
    )
    emails = len([key for key, record in run.records().items() if record["pipeline"] == "email_inbound"])
    assert f"{emails} event(s) not compared" in table.stdout, table.stdout


def test_the_compare_summary_names_the_baseline_once() -> None:
    # Before: "against baseline rules rules: 0 event(s) changed" (the option's word, then the directory's name).
    run = replay_against("rules", "examples/events/01_whatsapp_text.json")
    assert run.status == 0, run.stderr
    assert "\nagainst the baseline (rules): 0 event(s) changed\n" in run.stdout, run.stdout


def test_the_documented_git_archive_baseline_compares_every_pipeline(changed_rules: Path, tmp_path: Path) -> None:
    # docs/dry-run.md: mkdir -p /tmp/deployed && git archive origin/main rules | tar -x -C /tmp/deployed
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD", "rules"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(deployed)], input=archive.stdout, check=True)
    run = replay_against(deployed / "rules", "examples/events", rules=changed_rules)
    assert run.status == 1, run.stderr
    assert "holds no rules of" not in run.stderr
    assert "1 event(s) changed" in run.stdout


def _example_world_with(tmp_path: Path, written: str, instead: str) -> tuple[Path, int, int]:
    """A copy of examples/world.yaml with its one ``written`` replaced by ``instead``; the line and column of it."""
    text = (ROOT / "examples" / "world.yaml").read_text()
    assert text.count(written) == 1
    world = tmp_path / "world.yaml"
    world.write_text(text.replace(written, instead))
    before = text[: text.index(written)]
    return world, before.count("\n") + 1, len(before.split("\n")[-1]) + 1


@pytest.mark.parametrize("backend", ["moto", "memory"])
def test_an_unquoted_number_where_an_index_key_is_text_is_located_not_replayed_as_not_found(
    tmp_path: Path, backend: str
) -> None:
    # YAML reads `+447700900101` unquoted as the integer 447700900101. DynamoDB refuses the row (an index key of the
    # wrong type), so no such conversation can exist; the replay must not answer CONVERSATION_NOT_FOUND for it.
    world, line, column = _example_world_with(
        tmp_path, 'gsi_recipient_tel: "+447700900101"', "gsi_recipient_tel: +447700900101"
    )
    run = dryrun("--world", world, "--backend", backend, "examples/events/01_whatsapp_text.json")
    assert run.status == 2, run.stdout
    assert f"{world}:{line}:{column + len('gsi_recipient_tel: ')}: " in run.stderr, run.stderr
    assert "gsi_recipient_tel" in run.stderr and "quote" in run.stderr


@pytest.mark.parametrize("backend", ["moto", "memory"])
def test_a_quoted_epoch_in_a_lock_row_is_located_not_replayed(tmp_path: Path, backend: str) -> None:
    # The lock table holds its times as numbers (trigger.lock writes them). Quoted, as the advice to quote timestamps
    # invites, Alice's long-expired lock read as held (memory) or failed the lock step (moto's TypeError), where
    # production takes it: her message is QUEUED.
    world, line, column = _example_world_with(tmp_path, "expires_at: 1795521600}", 'expires_at: "1795521600"}')
    run = dryrun("--world", world, "--backend", backend, "examples/events/01_whatsapp_text.json")
    assert run.status == 2, run.stdout
    at_digits = column + len('expires_at: "')
    assert f"{world}:{line}:{at_digits}: locks[0].expires_at: " in run.stderr, run.stderr
    assert "unquoted" in run.stderr


@pytest.mark.parametrize("backend", ["moto", "memory"])
@pytest.mark.parametrize(
    "number", ["12345678901234567890123456789012345678901", "1.0e-200", "-1.0e+200"], ids=["digits", "tiny", "huge"]
)
def test_a_number_dynamodb_cannot_hold_is_located_not_a_traceback(tmp_path: Path, backend: str, number: str) -> None:
    # DynamoDB numbers have 38 significant digits and magnitudes 1E-130 to 1E+126: another service cannot have
    # written this one, so the world is refused (exit 2) at the value, as any row DynamoDB would refuse.
    written = 'created_at: "2026-11-20T09:15:00Z"'
    world, line, _ = _example_world_with(tmp_path, written, f"{written}\n    lifetime_value: {number}")
    run = dryrun("--world", world, "--backend", backend, "examples/events/01_whatsapp_text.json")
    assert (run.status, run.stdout) == (2, ""), run.stderr
    assert "Traceback" not in run.stderr
    assert f"{world}:{line + 1}:{len('    lifetime_value: ') + 1}: conversations[0].lifetime_value: " in run.stderr
    assert "38 significant digits" in run.stderr, run.stderr


@pytest.mark.parametrize("backend", ["moto", "memory"])
def test_a_conversation_over_dynamodbs_item_size_limit_is_refused_alike_by_both_backends(
    tmp_path: Path, backend: str
) -> None:
    # DynamoDB refuses an item over 400 KB, so no other service can have stored one: the memory world took it and
    # replayed QUEUED where the moto world refused it with a bare ValidationException.
    written = 'created_at: "2026-11-20T09:15:00Z"'
    world, line, _ = _example_world_with(tmp_path, written, f"{written}\n    summary: {'x' * 410_000}")
    run = dryrun("--world", world, "--backend", backend, "examples/events/01_whatsapp_text.json")
    assert (run.status, run.stdout) == (2, ""), run.stderr
    assert f"{world}:{line - 15}:5: conversations[0]: DynamoDB refuses this row: " in run.stderr, run.stderr
    assert "over its item size limit (400 KB)" in run.stderr


def test_events_may_come_before_between_and_after_the_options(monkeypatch, capsys) -> None:
    # CONTRACT §6: `pipeline-dryrun [--world FILE] [--json] … EVENTS...`; a shell line adds options anywhere
    # (`pipeline-dryrun captures/*.json --world w.yaml --json more/`), and every EVENTS argument is replayed.
    from tools.dryrun.cli import main

    monkeypatch.chdir(ROOT)
    first, second = "examples/events/01_whatsapp_text.json", "examples/events/03_handoff.json"
    status = main([first, "--world", "examples/world.yaml", "--json", second])
    out, err = capsys.readouterr()
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["source"], r["outcome"]) for r in records] == [(first, "QUEUED"), (second, "HANDED_OFF")]


def test_a_masked_send_shows_the_message_text_as_the_pipeline_encodes_it(monkeypatch, capsys) -> None:
    # CONTRACT §2: the trigger is exactly `{"conversation_id": "...", "primary_channel": "..."}` (a consumer may compare
    # the text); docs/dry-run.md: an action's `body` is the message text as sent. Masking hides values, not the format:
    # the masked trigger was re-encoded compactly, as the handoff is, so a reviewer saw a trigger no consumer gets.
    from tools.dryrun.cli import main

    monkeypatch.chdir(ROOT)
    events = ["examples/events/01_whatsapp_text.json", "examples/events/03_handoff.json"]
    bodies = {}
    for flags in ([], ["--show-data"]):
        assert main(["--world", "examples/world.yaml", "--json", *flags, *events]) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        bodies[bool(flags)] = [a["body"] for r in records for a in r["actions"] if a["type"] == "send_message"]
    (trigger, handoff), (sent_trigger, sent_handoff) = bodies[False], bodies[True]

    masked_id = "ci-acme-001#pi-acme-support#6f0c2a52-5d0e-4d8e-9a55-1c1d7f0b2a01#**********01"
    assert trigger == f'{{"conversation_id": "{masked_id}", "primary_channel": "+**********01"}}'
    assert sent_trigger == json.dumps(json.loads(sent_trigger))  # as steps.sqs sends it
    # The handoff is sent compact and unescaped; masked, it keeps that form.
    assert handoff == json.dumps(json.loads(handoff), ensure_ascii=False, separators=(",", ":"))
    assert sent_handoff == json.dumps(json.loads(sent_handoff), ensure_ascii=False, separators=(",", ":"))


def _twilio_rules_only(tmp_path: Path, *, with_owners: bool) -> Path:
    """A rules directory with the contract's rule sets only (§4 steps 7-8), as a team replaying the Twilio pipeline
    keeps them: without `pipelines:` keys when written from the contract alone."""
    rules = tmp_path / "twilio-rules"
    rules.mkdir()
    for name in ("10_project_status.yaml", "20_channel.yaml", "30_conversation_lock.yaml", "40_routing.yaml"):
        text = (ROOT / "rules" / name).read_text()
        (rules / name).write_text(text if with_owners else re.sub(r"(?m)^pipelines:.*\n", "", text))
    return rules


@pytest.mark.parametrize("with_owners", [True, False], ids=["bundle_of_twilio_inbound", "written_from_the_contract"])
def test_a_rules_directory_with_the_twilio_rules_only_replays_with_the_default_pipeline(
    tmp_path: Path, monkeypatch, capsys, with_owners: bool
) -> None:
    # CONTRACT §6: the default is `--pipeline pipelines/twilio_inbound.yaml`; replaying every pipeline by default
    # must not refuse a rules directory that holds all of that pipeline's rules and none of another's.
    from tools.dryrun.cli import main

    monkeypatch.chdir(ROOT)
    rules = _twilio_rules_only(tmp_path, with_owners=with_owners)
    whatsapp, email = "examples/events/01_whatsapp_text.json", "examples/events/13_email.jsonl"
    status = main(["--rules", str(rules), "--world", "examples/world.yaml", "--json", whatsapp, email])
    out, err = capsys.readouterr()
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["outcome"], r["status_code"]) for r in records] == [("QUEUED", 200), *[("PARSING_ERROR", 400)] * 3]
    assert f"{rules} holds no rules of email_inbound: pipelines/email_inbound.yaml is left out" in err

    assert main(["--check", "--rules", str(rules)]) == 0
    out, err = capsys.readouterr()
    assert "email_inbound" not in out
    assert f"{rules} holds no rules of email_inbound: pipelines/email_inbound.yaml is left out" in err


def test_the_contracts_pipeline_and_the_deployed_rules_directory_are_never_left_out(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    # Left out by default are only the other pipelines, for a rules directory that is not the function's own:
    # a directory without the Twilio routing set, or the project's rules/ without the email sets, still fail.
    from tools.dryrun.cli import main

    without_routing = tmp_path / "without-routing"
    shutil.copytree(ROOT / "rules", without_routing)
    (without_routing / "40_routing.yaml").unlink()
    monkeypatch.chdir(ROOT)
    assert main(["--check", "--rules", str(without_routing)]) == 2
    assert "unknown rule set 'routing'" in capsys.readouterr().out

    project = tmp_path / "project"
    shutil.copytree(ROOT / "pipelines", project / "pipelines")
    shutil.copytree(ROOT / "rules", project / "rules")
    for name in ("50_email_screening.yaml", "60_email_routing.yaml"):
        (project / "rules" / name).unlink()
    monkeypatch.chdir(project)
    assert main(["--check"]) == 2
    out, err = capsys.readouterr()
    assert "unknown rule set 'email_screening'" in out and "left out" not in err


@pytest.mark.parametrize(
    ("target_from", "says"), [("conversation.task_complete", "a number"), ("request.nope", "null")]
)
def test_a_computed_target_that_is_not_text_names_target_from_and_what_it_gave(
    target_from: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'gave no target: it has no configured queue' sent whoever reads it to the targets: the value is at fault."""
    from tools.dryrun.cli import main

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    routing = rules / "40_routing.yaml"
    text = routing.read_text(encoding="utf-8").split("\ntests:")[0] + "\ntests: []\n"
    routing.write_text(text.replace("{target_from: request.channel}", f"{{target_from: {target_from}}}"), "utf-8")
    event = ROOT / "examples" / "events" / "01_whatsapp_text.json"
    main(["--world", str(ROOT / "examples" / "world.yaml"), "--rules", str(rules), "--json", str(event)])
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert record["outcome"] == "ROUTING_ERROR"
    assert record["message"] == (
        f"target_from {target_from} of rule 'channel_queue' gave {says}, not the name of a target; "
        "it must give one of: handoff, sms, whatsapp"
    )
