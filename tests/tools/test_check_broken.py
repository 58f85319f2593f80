"""`pipeline-dryrun --check` on deliberately broken copies of the shipped YAML.

Each directory under tests/fixtures/broken/ is one mistake: the files it holds replace the shipped
ones (pipelines/twilio_inbound.yaml, rules/*.yaml) in a copy of the configuration, and ``--check``
runs there with its defaults. Every finding is pinned to its exact FILE:LINE:COLUMN, and its
message must name the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import registry
from engine.config import load_config
from engine.context import Context, StepResult
from engine.errors import ErrorSpec
from engine.registry import BuildInfo
from tests.support import shipped
from tests.support.plugins import step_registered
from tests.support.shipped import configuration_files, inline_tests, pipeline_names
from tools.dryrun.cli import main
from tools.stamp import main as stamp_main

REPO = Path(__file__).resolve().parents[2]
BROKEN = REPO / "tests" / "fixtures" / "broken"
DEPLOYED_ENV = shipped.deployed_env(
    {
        "CONVERSATIONS_TABLE_NAME": "conversations",
        "STAGE_TABLE_NAME": "conversations-stage",
        "LOCK_TABLE_NAME": "conversations-trigger-lock",
        "WHATSAPP_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/000000000000/whatsapp",
        "SMS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/000000000000/sms",
        "HANDOFF_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/000000000000/handoff",
        "REPLAY_TABLE_NAME": "replay",
    }
)
PIPELINE = "pipelines/twilio_inbound.yaml"
# Stands in a finding for the names the checked Twilio pipeline's steps provide (``provided``), not today's list.
PROVIDED = "<provided>"


def shipped_at(key: str, value: str) -> str:
    """``PIPELINE:line:column`` of ``value`` after ``key:`` in the shipped pipeline file (edits move the lines)."""
    lines = (REPO / PIPELINE).read_text(encoding="utf-8").splitlines()
    line = next(number for number, text in enumerate(lines, 1) if text.strip() == f"{key}: {value}")
    return f"{PIPELINE}:{line}:{lines[line - 1].index(f'{key}: {value}') + len(key) + 3}"


@dataclass(frozen=True)
class Finding:
    where: str
    says: tuple[str, ...]
    severity: str = "error"


CASES: dict[str, tuple[int, list[Finding]]] = {
    "unknown_step": (
        2,
        [
            Finding(
                f"{PIPELINE}:52:11",
                (
                    "unknown step 'twilio.parze'",
                    "did you mean 'twilio.parse'?",
                    f"registered steps: {', '.join(registry.names())}",
                ),
            )
        ],
    ),
    "unknown_key": (
        2,
        [
            Finding(
                f"{PIPELINE}:60:7",
                (
                    "unknown key 'tabel'",
                    "did you mean 'table'?",
                    "allowed keys: company, indexes, max_pages, secrets, table, user",
                ),
            )
        ],
    ),
    "wrong_type": (
        2,
        [Finding(f"{PIPELINE}:46:20", ("delay_seconds: expected integer, got string 'none'", "write a whole number"))],
    ),
    "unknown_pipeline": (
        2,
        [
            Finding(
                "rules/50_vip.yaml:2:10",
                ("rule set 'vip' is not used by any step of pipelines/email_inbound.yaml",),
                "warning",
            ),
            Finding(
                "rules/50_vip.yaml:4:28",
                (
                    "unknown pipeline 'twlio_inbound' (did you mean 'twilio_inbound'?)",
                    f"pipelines: {', '.join(pipeline_names())}",
                ),
            ),
        ],
    ),
    "provided_later": (
        0,
        [
            Finding(
                "rules/30_conversation_lock.yaml:13:12",
                (
                    "the condition reads 'route', which step 'route' (rules.route) provides only after step 'rules' "
                    "(rules.validate) evaluates this set: here it is always null",
                    "the document then holds: auth, conversation, credential, request, signature",
                ),
                "warning",
            )
        ],
    ),
    "empty_pipelines": (
        2,
        [Finding("rules/50_vip.yaml:4:12", ("pipelines: names no pipeline", "or remove the key (every pipeline)"))],
    ),
    "unknown_ruleset": (
        2,
        [
            Finding(
                f"{PIPELINE}:103:34",
                ("unknown rule set 'chanel'", "loaded rule sets: channel, conversation_lock, project_status, routing"),
            )
        ],
    ),
    "unknown_error_code_in_pipeline": (
        2,
        [
            Finding(
                f"{PIPELINE}:138:7",
                ("'PROJECT_INACTIV' is not a known error code", "did you mean 'PROJECT_INACTIVE'?", "error codes: "),
            )
        ],
    ),
    "bad_step_when": (
        2,
        [Finding(f"{PIPELINE}:89:38", ("invalid JMESPath", "'=' is not an operator; compare with =="))],
    ),
    "missing_env": (
        0,
        [
            Finding(
                f"{PIPELINE}:45:52",
                ("environment variable AWS_ACCOUNT_ID is not set", "default with ${env:AWS_ACCOUNT_ID:-VALUE}"),
                "warning",
            )
        ],
    ),
    "duplicate_key": (
        2,
        [
            Finding(
                f"{PIPELINE}:86:7",
                ("duplicate key 'refetch_interval_seconds'", "first defined on line 85", "remove one of them"),
            )
        ],
    ),
    "step_order": (
        2,
        [
            Finding(
                f"{PIPELINE}:112:15",
                (
                    "step 'lock' (trigger.lock) reads 'route', which no earlier step provides",
                    "provides it (rules.route)",
                ),
            ),
            Finding(
                f"{PIPELINE}:119:11",
                ("step 'send' (sqs.send) reads 'route', which no earlier step provides", "provides it (rules.route)"),
            ),
        ],
    ),
    "unknown_error_code": (
        2,
        [
            Finding(
                "rules/10_project_status.yaml:11:14",
                ("unknown error code 'PROJECT_INACTIV'", "did you mean 'PROJECT_INACTIVE'?", "error codes: "),
            )
        ],
    ),
    "rule_unknown_key": (
        2,
        [Finding("rules/10_project_status.yaml:9:5", ("unknown key 'whn'", "did you mean 'when'?"))],
    ),
    "unknown_rule_in_test": (
        2,
        [
            Finding(
                "rules/10_project_status.yaml:19:20",
                ("expects rule 'project_inactiv'", "did you mean 'project_inactive'?", "rules: project_inactive"),
            )
        ],
    ),
    "failing_test": (
        1,
        [
            Finding(
                "rules/10_project_status.yaml:19:45",
                (
                    "inline test 'paused project fails' of rule set 'project_status' failed",
                    "expected error 'CHANNEL_NOT_ALLOWED', got 'PROJECT_INACTIVE'",
                    "decided by rule 'project_inactive' (line 9)",
                ),
            )
        ],
    ),
    "jmespath_syntax": (
        2,
        [
            Finding(
                "rules/30_conversation_lock.yaml:8:45", ("invalid JMESPath", "'=' is not an operator; compare with ==")
            )
        ],
    ),
    "jmespath_block": (
        2,
        [Finding("rules/20_channel.yaml:11:26", ("invalid JMESPath", "'=' is not an operator; compare with =="))],
    ),
    "null_pitfall": (
        1,
        [
            Finding(
                "rules/20_channel.yaml:9:13",
                ("contains() fails (INTERNAL_ERROR) when conversation.allowed_channels is missing or null",),
                "warning",
            ),
            Finding(
                "rules/20_channel.yaml:22:21",
                (
                    "inline test 'no allowed channels fails' of rule set 'channel' failed",
                    "expected error 'CHANNEL_NOT_ALLOWED', got 'INTERNAL_ERROR'",
                    "decided by rule 'channel_not_allowed' (line 9)",
                    "give it a default",
                ),
            ),
        ],
    ),
    "yaml_tag": (
        2,
        [
            Finding(
                "rules/20_channel.yaml:9:11",
                (
                    "invalid YAML",
                    "a value starting with ! is read as a YAML tag",
                    "put the whole value in double quotes",
                ),
            )
        ],
    ),
    "rule_duplicate_key": (
        2,
        [Finding("rules/30_conversation_lock.yaml:12:7", ("duplicate key 'message'", "first defined on line 11"))],
    ),
    "routing_target": (
        2,
        [
            Finding(
                "rules/40_routing.yaml:11:20",
                (
                    "routing target 'handof' names no configured queue",
                    "did you mean 'handoff'?",
                    "use one of the targets of pipelines/twilio_inbound.yaml (handoff, sms, whatsapp)",
                ),
            ),
            Finding(
                "rules/40_routing.yaml:27:47",
                ("inline test 'human handoff'", "expected target 'handoff', got 'handof'"),
            ),
        ],
    ),
    "shadowed": (
        0,
        [
            Finding(
                "rules/40_routing.yaml:13:12",
                (
                    "rule 'human_on_sms' can never match: earlier rule 'hand_off_to_human' (line 10)",
                    "broader condition",
                    "move it above 'hand_off_to_human'",
                ),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:20:12",
                ("rule 'auto_queue_flag' can never match: earlier rule 'auto_queue_reply' (line 17)", "same condition"),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:31:12",
                (
                    "rule 'anything_else' can never match: earlier rule 'channel_queue' (line 28)",
                    "true for every message of pipelines/twilio_inbound.yaml",
                    "request.channel is always one of its channels: whatsapp, sms",
                ),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:34:12",
                ("rule 'email' can never match: earlier rule 'anything_else' (line 31)", "always true"),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:34:32",
                ("request.channel is never 'email' in pipelines/twilio_inbound.yaml", "channels are whatsapp, sms"),
                "warning",
            ),
        ],
    ),
    # Copied from email_inbound.yaml, its pipeline: left unchanged: requests for email would run the copy.
    "copied_name": (
        2,
        [
            Finding(
                "pipelines/email_inbound.yaml:2:11",
                ("pipeline 'email_inbound' is also declared by pipelines/letters_inbound.yaml:2:11",),
            ),
            Finding(
                "pipelines/letters_inbound.yaml:2:11",
                (
                    "pipeline 'email_inbound' is also declared by pipelines/email_inbound.yaml:2:11",
                    "give each pipeline file its own name",
                ),
            ),
            # The copy is loaded with the original's rule sets, whose targets it does not have.
            Finding("rules/60_email_routing.yaml:10:20", ("routing target 'handoff' names no configured queue",)),
            Finding("rules/60_email_routing.yaml:14:20", ("routing target 'handoff' names no configured queue",)),
            Finding("rules/60_email_routing.yaml:15:19", ("routing target 'email' names no configured queue",)),
        ],
    ),
    # The shared rule sets are loaded for a pipeline that runs none of them, but what they read is not its concern.
    "pipeline_without_rules": (0, []),
    "shared_channel": (
        2,
        [
            Finding(
                "pipelines/email_inbound.yaml:8:12",
                ("channel 'email' is also served by pipeline letters_inbound (pipelines/letters_inbound.yaml:4:21)",),
            ),
            Finding(
                "pipelines/letters_inbound.yaml:4:21",
                (
                    "channel 'email' is also served by pipeline email_inbound (pipelines/email_inbound.yaml:8:12)",
                    "a request goes to one pipeline: serve each channel from one file",
                ),
            ),
        ],
    ),
    "unused_ruleset": (
        0,
        [
            Finding(
                "rules/50_vip.yaml:2:10",
                (
                    "rule set 'vip' is not used by any step of pipelines/twilio_inbound.yaml",
                    "its rules never run",
                    "name it in a step (rules.route `ruleset:`, rules.validate `rulesets:`)",
                ),
                "warning",
            )
        ],
    ),
    "unknown_context_name": (
        0,
        [
            Finding(
                "rules/40_routing.yaml:21:12",
                (
                    "the condition reads 'conversaton', which is not in the context document",
                    "no step of pipelines/twilio_inbound.yaml provides it, so it is always null",
                    "did you mean 'conversation'?",
                    f"the document holds: {PROVIDED}",
                ),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:29:38",
                (
                    "inline test 'a gold customer goes to a person' gives 'conversaton', which is not in the context",
                    "did you mean 'conversation'?",
                ),
                "warning",
            ),
        ],
    ),
    "reserved_error_code": (
        0,
        [
            Finding(
                "rules/10_project_status.yaml:10:14",
                (
                    "rule error code 'DB_TRANSIENT_ERROR' is transient",
                    "the caller retries the event, and the rule decides it again every time",
                    "declare a business code under errors: in pipelines/",
                ),
                "warning",
            ),
            Finding(
                "rules/20_channel.yaml:10:14",
                ("rule error code 'INVALID_SIGNATURE' is reserved for step 'parse'",),
                "warning",
            ),
        ],
    ),
    # A business code a screening rule decides, which the email pipeline's JSON family has no status for.
    "unanswered_error_code": (
        0,
        [
            Finding(
                "rules/50_email_screening.yaml:33:14",
                (
                    "rule error code 'EMAIL_TOO_LARGE' has no status in response family 'api' (json)",
                    "pipelines/email_inbound.yaml answers it with default_status 500",
                    "add it under responses: api: status: in pipelines/email_inbound.yaml",
                ),
                "warning",
            ),
        ],
    ),
    "slow_aws_bounds": (
        0,
        [
            Finding(
                f"{PIPELINE}:13:3",
                (
                    "one invocation may run 37 s: deadline_seconds 4 s plus twice 16.5 s, the longest one AWS call",
                    "past 12 s",
                    "lower aws: read_timeout_seconds, connect_timeout_seconds or max_attempts, or deadline_seconds",
                ),
                "warning",
            ),
            # A stage write that long also outlasts the lock's due margin.
            Finding(
                f"{PIPELINE}:144:31",
                ("trigger is due within 5 s", "may take 16.5 s", "raise due_margin_seconds to at least 16.5"),
                "warning",
            ),
        ],
    ),
    "null_only": (
        1,
        [
            Finding(
                "rules/30_conversation_lock.yaml:12:9", ("no inline test is decided by rule 'stop_request'",), "warning"
            ),
            Finding(
                "rules/30_conversation_lock.yaml:14:24",
                (
                    "request.body is text, and slicing text ([a:b]) is always null in JMESPath",
                    "write starts_with(request.body, 'ABC') or matches(request.body, '^ABC')",
                ),
                "warning",
            ),
            Finding(
                "rules/30_conversation_lock.yaml:20:36",
                ("comparing text with > gives null in the JMESPath standard", "hour(), hhmm() or local_date()"),
                "warning",
            ),
            Finding(
                "rules/30_conversation_lock.yaml:27:20",
                ("inline test 'STOP gets the holding answer'", "expected rule 'stop_request', got null"),
            ),
        ],
    ),
    "duplicate_test_name": (
        0,
        [
            Finding(
                "rules/20_channel.yaml:19:11",
                ("duplicate inline test name 'other channel fails' (first used on line 16)",),
                "warning",
            )
        ],
    ),
    "test_target": (
        1,
        [
            Finding("rules/40_routing.yaml:26:47", ("expected target 'human', got 'handoff'",)),
            Finding(
                "rules/40_routing.yaml:26:47",
                (
                    "inline test 'human handoff' expects target 'human', which is not a target of "
                    "pipelines/twilio_inbound.yaml",
                    "targets: handoff, sms, whatsapp",
                ),
                "warning",
            ),
        ],
    ),
    "target_from_typo": (
        1,
        [
            Finding(
                "rules/40_routing.yaml:12:25",
                ("no inline test gives request.chanel (did you mean request.channel, which they give?)",),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:12:33",
                (
                    "the condition reads request.chanel, which twilio.parse (step 'parse' of "
                    "pipelines/twilio_inbound.yaml) never provides it, so it is always null (did you mean 'channel'?)",
                ),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:19:43",
                (
                    "inline test 'whatsapp goes to its queue' of rule set 'routing' failed",
                    "expected target 'whatsapp', got null; decided by rule 'channel_queue' (line 11)",
                    "its target_from request.chanel gives no text here (line 12): "
                    "check the names it reads against the test's given",
                ),
            ),
        ],
    ),
    "ruleset_of_other_pipeline": (
        2,
        [
            Finding(
                shipped_at("ruleset", "routing"),
                (
                    "route: unknown rule set 'routing'; loaded rule sets: channel, conversation_lock, project_status",
                    "rules/40_routing.yaml defines it for email_inbound only (line 5): "
                    "add twilio_inbound to its pipelines:",
                ),
            ),
            Finding(
                "rules/40_routing.yaml:2:10",
                ("rule set 'routing' is not used by any step of pipelines/email_inbound.yaml",),
                "warning",
            ),
        ],
    ),
    "misspelt_field": (
        0,
        [
            Finding(
                "rules/10_project_status.yaml:9:55",
                (
                    "no inline test gives conversation.projet_status",
                    "(did you mean conversation.project_status, which they give?)",
                    "always null",
                ),
                "warning",
            ),
        ],
    ),
    "negated_path": (
        2,
        [
            Finding("rules/30_conversation_lock.yaml:8:9", ("no inline test is decided by rule",), "warning"),
            Finding(
                "rules/30_conversation_lock.yaml:9:70",
                (
                    "! applies to the name before the first dot alone",
                    "(!a).b",
                    "never true; write !(conversation.hand_off_to_human)",
                ),
            ),
        ],
    ),
    "truthy_number": (
        1,
        [
            Finding(
                "rules/40_routing.yaml:9:12",
                (
                    "conversation.task_complete is a number, and a number is true, 0 included",
                    "write conversation.task_complete > `0` or conversation.task_complete == `1`",
                ),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:12:40",
                (
                    "conversation.vip is text ('true' in test 'a vip goes to a person')",
                    "any text but '' is true, 'false' included",
                    "write conversation.vip == 'true'",
                ),
                "warning",
            ),
            Finding(
                "rules/40_routing.yaml:26:20",
                (
                    "inline test 'an open task goes to its channel' of rule set 'routing' failed",
                    "expected rule 'channel_queue', got 'task_done_to_human'",
                ),
            ),
        ],
    ),
}

LINE = re.compile(r"^(?P<where>[^:\s]+:\d+:\d+): (?P<warning>warning: )?(?P<message>.+)$")


def assemble(root: Path, *cases: str) -> Path:
    """A copy of the shipped configuration with the files of ``cases`` replacing their originals."""
    shutil.copytree(REPO / "pipelines", root / "pipelines")
    shutil.copytree(REPO / "rules", root / "rules")
    for case in cases:
        shutil.copytree(BROKEN / case, root, dirs_exist_ok=True)
    return root


def provided(root: Path) -> str:
    """The names the steps of ``root``'s Twilio pipeline provide, as ``--check`` lists them."""
    steps = load_config(root / PIPELINE, root / "rules", DEPLOYED_ENV).pipeline.steps()
    return ", ".join(sorted(step.provides for step in steps if step.provides))


def assert_findings(stdout: str, expected: list[Finding], root: Path = REPO) -> None:
    lines = stdout.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), f"not FILE:LINE:COLUMN: message: {lines}"
    found = [(m["where"], "warning" if m["warning"] else "error", m["message"]) for m in parsed if m]
    assert [(where, severity) for where, severity, _ in found] == [(f.where, f.severity) for f in expected], stdout
    for (_, _, message), finding in zip(found, expected, strict=True):
        for fragment in finding.says:
            fragment = fragment.replace(PROVIDED, provided(root)) if PROVIDED in fragment else fragment
            assert fragment in message, f"{fragment!r} not in {message!r}"


def in_file_order(*cases: str) -> list[Finding]:
    files = [PIPELINE, *sorted(path.name for path in (REPO / "rules").glob("*.yaml"))]

    def key(finding: Finding) -> tuple[int, int, int]:
        file, line, column = finding.where.rsplit(":", 2)
        return files.index(file if file == PIPELINE else Path(file).name), int(line), int(column)

    return sorted((finding for case in cases for finding in CASES[case][1]), key=key)


@pytest.fixture
def deployed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DEPLOYED_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ACCOUNT_ID", raising=False)


def test_every_fixture_is_a_case() -> None:
    assert sorted(path.name for path in BROKEN.iterdir() if path.is_dir()) == sorted(CASES)


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("case", sorted(CASES))
def test_check_pins_each_mistake(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = assemble(tmp_path, case)
    monkeypatch.chdir(root)
    status = main(["--check"])
    captured = capsys.readouterr()
    assert_findings(captured.out, CASES[case][1], root)
    assert status == CASES[case][0], captured.err


class AddedStep:
    """A step a new developer adds to the shipped Twilio pipeline (docs/extending.md): it reads and decides nothing."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        pass

    def run(self, ctx: Context) -> StepResult:
        return StepResult(output={})


ADDED_STEP = "  - id: acme_added\n    uses: acme.added\n\n"


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("case", sorted(case for case in CASES if not (BROKEN / case / PIPELINE).exists()))
def test_each_mistake_is_pinned_as_well_with_a_step_added_to_the_shipped_pipeline(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the finding on a misspelt context name pinned the names today's steps provide; a new step's failed it."""
    root = assemble(tmp_path, case)
    pipeline = root / PIPELINE
    text = pipeline.read_text(encoding="utf-8")
    pipeline.write_text(text.replace("  - parallel:\n", ADDED_STEP + "  - parallel:\n", 1), encoding="utf-8")
    monkeypatch.chdir(root)
    with step_registered("acme.added", AddedStep, provides="acme_added", params={"type": "object"}):
        status = main(["--check"])
        captured = capsys.readouterr()
        assert_findings(captured.out, CASES[case][1], root)
    assert status == CASES[case][0], captured.err


def test_the_build_refuses_a_channel_two_pipelines_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = assemble(tmp_path, "shared_channel")
    assert stamp_main([str(root)]) == 2  # a configuration that does not load, as --check ends it
    captured = capsys.readouterr()
    where = "pipelines/letters_inbound.yaml:4:21"
    assert f"{where}: channel 'email' is also served by pipeline email_inbound" in captured.out
    assert not (root / "config.stamp.json").exists()


@pytest.mark.usefixtures("deployed_env")
def test_bounds_whose_retries_back_off_past_the_limit_are_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three attempts of 0.2 + 0.5 s, with botocore's throttling backoffs of up to 1 then 2 s: 5.1 s a call, and
    # 3 + 2 x 5.1 = 13.2 s an invocation, past the 13 s timeout. Counted at 1 s a backoff, it was 11.2 s: no warning.
    root = assemble(tmp_path, "slow_aws_bounds")
    pipeline = root / PIPELINE
    text = pipeline.read_text(encoding="utf-8").replace("deadline_seconds: 4", "deadline_seconds: 3", 1)
    text = text.replace("connect_timeout_seconds: 0.5", "connect_timeout_seconds: 0.2", 1)
    pipeline.write_text(text.replace("read_timeout_seconds: 3.0", "read_timeout_seconds: 0.5", 1), encoding="utf-8")
    monkeypatch.chdir(root)
    assert main(["--check"]) == 0
    assert "one invocation may run 13.2 s: deadline_seconds 3 s plus twice 5.1 s" in capsys.readouterr().out


@pytest.mark.usefixtures("deployed_env")
def test_a_due_margin_shorter_than_a_stage_write_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A message that finds the lock held by a trigger due later than the margin ends BATCHED, its stage row written
    # alongside: with a margin of 3 s and a stage write that may take 4 s (two attempts of 0.5 + 1 s, a 1 s backoff),
    # the batch may be read before the row lands, and the message is never read. --check said nothing.
    root = assemble(tmp_path)
    pipeline = root / PIPELINE
    text = pipeline.read_text(encoding="utf-8")
    pipeline.write_text(text.replace("due_margin_seconds: 5", "due_margin_seconds: 3", 1), encoding="utf-8")
    monkeypatch.chdir(root)
    assert main(["--check"]) == 0
    assert_findings(
        capsys.readouterr().out,
        [
            Finding(
                shipped_at("due_margin_seconds", "5"),
                (
                    "step 'lock' (trigger.lock) takes a held lock over only when its trigger is due within 3 s",
                    "one AWS call (this message's stage write) may take 4 s",
                    "raise due_margin_seconds to at least 4, or lower the aws: bounds",
                ),
                "warning",
            ),
        ],
    )


@pytest.mark.usefixtures("deployed_env")
def test_strict_env_turns_a_missing_value_into_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(assemble(tmp_path, "missing_env"))
    assert main(["--check", "--strict-env"]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"{PIPELINE}:45:52: environment variable AWS_ACCOUNT_ID is not set;")


@pytest.mark.usefixtures("deployed_env")
def test_strict_makes_warnings_fail_but_leaves_unset_environment_values_to_strict_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(assemble(tmp_path, "reserved_error_code"))
    assert main(["--check"]) == 0
    assert main(["--check", "--strict"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1].startswith(
        f"checked {configuration_files()} files: 0 errors, 2 warnings (--strict: 2 fail the check)"
    )
    monkeypatch.chdir(assemble(tmp_path / "env", "missing_env"))
    assert main(["--check", "--strict"]) == 0
    assert main(["--check", "--strict", "--strict-env"]) == 2


@pytest.mark.usefixtures("deployed_env")
def test_explicit_paths_are_reported_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    pipeline = BROKEN / "unknown_step" / PIPELINE
    assert main(["--check", "--pipeline", str(pipeline), "--rules", str(REPO / "rules")]) == 2
    assert capsys.readouterr().out.startswith(f"{pipeline}:52:11: steps[0].uses: unknown step 'twilio.parze'")


@pytest.mark.usefixtures("deployed_env")
def test_missing_files_are_reported_and_the_rest_is_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(assemble(tmp_path, "jmespath_syntax"))
    assert main(["--check", "--pipeline", "pipelines/missing.yaml"]) == 2
    assert [line.split(": ", 1)[0] for line in capsys.readouterr().out.splitlines()] == [
        "pipelines/missing.yaml:1:1",
        "rules/30_conversation_lock.yaml:8:45",
    ]
    assert main(["--check", "--rules", "no-such-dir"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        "no-such-dir:1:1: rules directory not found; pass the directory holding the rules/*.yaml files with --rules DIR"
    )


def test_a_missing_rules_directory_is_said_first_without_a_knock_on_error_per_rule_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `--check --rules nosuch/` printed four "unknown rule set … loaded rule sets: none" errors (two per
    shipped pipeline) before the cause, "rules directory not found", on the last line: an ops person reading from
    the top went looking for four missing rule sets. The cause comes first now, and the pipelines' other findings
    (an unset variable, say) are still reported."""
    monkeypatch.chdir(shipped.ROOT)
    monkeypatch.delenv("SMS_QUEUE_URL", raising=False)
    assert main(["--check", "--rules", "no-such-dir"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "no-such-dir:1:1: rules directory not found; pass the directory holding the rules/*.yaml files with --rules DIR"
    )
    assert [line for line in out if "unknown rule set" in line] == []
    assert any("SMS_QUEUE_URL is not set" in line for line in out[1:])


def cli() -> list[str]:
    script = Path(sys.executable).parent / "pipeline-dryrun"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tools.dryrun.cli"]


def test_one_run_reports_every_problem_in_every_file(tmp_path: Path) -> None:
    cases = ("unknown_ruleset", "unknown_error_code", "null_pitfall", "jmespath_syntax", "routing_target")
    root = assemble(tmp_path, *cases)
    env = {**os.environ, **DEPLOYED_ENV}
    result = subprocess.run([*cli(), "--check"], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert_findings(result.stdout, in_file_order(*cases))
    assert result.returncode == 2
    # The cases' own files pass 7 of their tests; every other shipped rules file passes all of its own.
    replaced = {path.name for case in cases for path in (BROKEN / case).rglob("*.yaml") if path.parent.name == "rules"}
    passed = 7 + inline_tests(*replaced)
    assert result.stderr == (
        f"checked {configuration_files()} files: 4 errors, 1 warning; inline tests: {passed} passed, 2 failed"
        " (not run for rule sets with errors: project_status, conversation_lock)\n"
    )


def test_a_failing_inline_test_exits_1(tmp_path: Path) -> None:
    root = assemble(tmp_path, "failing_test")
    env = {**os.environ, **DEPLOYED_ENV}
    result = subprocess.run([*cli(), "--check"], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert_findings(result.stdout, CASES["failing_test"][1])
    assert result.returncode == 1
    assert re.search(r"; inline tests: \d+ passed, 1 failed\n$", result.stderr), result.stderr


@pytest.mark.usefixtures("deployed_env")
def test_a_default_behind_an_always_true_rule_is_reported_as_never_used(tmp_path: Path) -> None:
    from tools.check import check_config

    root = assemble(tmp_path)
    routing = root / "rules" / "40_routing.yaml"
    text = routing.read_text().replace("tests:\n", "default: {target: handoff}\ntests:\n", 1)
    routing.write_text(text.replace("""'contains(`["whatsapp", "sms"]`, request.channel)'""", '"`true`"', 1))
    report = check_config(root / PIPELINE, root / "rules")
    (warning,) = report.warnings
    assert str(warning) == (
        f"{root}/rules/40_routing.yaml:23:1: warning: "
        "the default is never used: rule 'channel_queue' (line 21) always matches"
    )


@pytest.mark.usefixtures("deployed_env")
def test_two_findings_at_one_place_are_both_reported_and_a_shared_sets_once(tmp_path: Path) -> None:
    from tools.check import check_config

    root = assemble(tmp_path)
    routing = root / "rules" / "40_routing.yaml"
    condition = "starts_with(conversation.recipient_tel, conversation.prefix)"
    routing.write_text(routing.read_text().replace('"conversation.hand_off_to_human == `true`"', f'"{condition}"', 1))
    status = root / "rules" / "10_project_status.yaml"  # a rule set both shipped pipelines load
    status.write_text(status.read_text().replace("conversation.project_status", "conversaton.project_status", 1))
    report = check_config(sorted((root / "pipelines").glob("*.yaml")), root / "rules")
    at_the_call = sorted(w.message for w in report.warnings if (w.file, w.line, w.column) == (str(routing), 9, 12))
    assert len(at_the_call) == 2, at_the_call
    assert "when conversation.prefix is missing" in at_the_call[0]
    assert "when conversation.recipient_tel is missing" in at_the_call[1]
    typo = [w for w in report.warnings if w.file == str(status) and "'conversaton'" in w.message]
    assert len(typo) == 1, typo


@pytest.mark.usefixtures("deployed_env")
def test_a_step_condition_reading_an_attribute_the_conversation_read_leaves_out_is_reported(tmp_path: Path) -> None:
    """With ``read: rules`` only what the rules read is fetched: elsewhere another attribute is always null."""
    from tools.check import check_config

    root = assemble(tmp_path)
    pipeline = root / PIPELINE
    step = "      - id: stage\n        uses: stage.write\n"
    pipeline.write_text(pipeline.read_text().replace(step, step + "        when: conversation.staging != 'off'\n", 1))
    report = check_config(pipeline, root / "rules")
    (warning,) = report.warnings
    line = pipeline.read_text().splitlines().index("        when: conversation.staging != 'off'") + 1
    assert str(warning) == (
        f"{pipeline}:{line}:15: warning: the condition reads conversation.staging, which step 'conversation' "
        "(conversations.get, read: rules) does not fetch: only the attributes the rules read are, so here it is "
        "always null; add staging to that step's also_read"
    )

    text = pipeline.read_text().replace("      read: rules\n", "      read: rules\n      also_read: [staging]\n", 1)
    pipeline.write_text(text)
    assert not check_config(pipeline, root / "rules").warnings


@pytest.mark.usefixtures("deployed_env")
def test_a_validation_default_that_refuses_every_message_is_reported(tmp_path: Path) -> None:
    """A matching rule fails the message with its error, and the default fails every other: none passes the set."""
    from tools.check import check_config

    root = assemble(tmp_path)
    channel = root / "rules" / "20_channel.yaml"
    text = channel.read_text().replace("tests:\n", "default: {error: CHANNEL_NOT_ALLOWED}\ntests:\n", 1)
    channel.write_text(text.replace("    expect: {error: null}\n", "    expect: {error: CHANNEL_NOT_ALLOWED}\n"))
    report = check_config(root / PIPELINE, root / "rules")
    line = channel.read_text().splitlines().index("default: {error: CHANNEL_NOT_ALLOWED}") + 1
    assert [str(warning) for warning in report.warnings] == [
        f"{channel}:{line}:1: warning: the default of validation set 'channel' fails every message no rule fails, so "
        "no message passes the set; remove the default (without one, a message no rule matches passes)"
    ]


@pytest.mark.usefixtures("deployed_env")
def test_an_unquoted_time_in_a_tests_given_is_a_located_error_not_a_confusing_failure(tmp_path: Path) -> None:
    """YAML reads 2026-11-25T22:30:00Z as a date and time, which no context document holds: there it is text."""
    from tools.check import check_config

    root = assemble(tmp_path)
    routing = root / "rules" / "40_routing.yaml"
    rule = (
        "  - id: late\n    when: \"hour(request.received_at, 'Europe/London') >= `22`\"\n    then: {target: handoff}\n"
    )
    case = (
        "  - name: late at night\n"
        "    given: {request: {channel: sms, received_at: 2026-11-25T22:30:00Z}, conversation: {}}\n"
        "    expect: {rule: late, target: handoff}\n"
    )
    routing.write_text(
        routing.read_text().replace("rules:\n", "rules:\n" + rule, 1).replace("tests:\n", "tests:\n" + case)
    )
    report = check_config(root / PIPELINE, root / "rules")
    line = routing.read_text().splitlines().index(case.splitlines()[1]) + 1
    assert [str(error) for error in report.errors] == [
        f"{routing}:{line}:50: inline test 'late at night' gives request.received_at a YAML date or time, which a "
        'context document never holds (it holds text there); put the value in quotes: "2026-11-25T22:30:00Z"'
    ]
    assert report.exit_code == 2


@pytest.mark.usefixtures("deployed_env")
def test_an_unquoted_phone_number_in_a_tests_given_is_reported(tmp_path: Path) -> None:
    """YAML reads +14155550123 (and 00441234567, in octal) as a number; the document holds phone numbers as text."""
    from tools.check import check_config

    root = assemble(tmp_path)
    routing = root / "rules" / "40_routing.yaml"
    quoted = '{recipient_tel: "+14155550123", auto_queue_reply_message_from_number: ["+14155550999"]}'
    unquoted = "{recipient_tel: +14155550123, auto_queue_reply_message_from_number: [00441234567]}"
    assert quoted in routing.read_text()
    routing.write_text(routing.read_text().replace(quoted, unquoted, 1))
    report = check_config(root / PIPELINE, root / "rules")
    line = next(n for n, text in enumerate(routing.read_text().splitlines(), 1) if unquoted in text)
    says = 'YAML reads {} as the number {}, while the document holds phone numbers as text; put it in quotes: "{}"'
    assert [str(warning) for warning in report.warnings] == [
        f"{routing}:{line}:37: warning: inline test 'a number not on the auto-queue list goes to the channel queue' "
        "gives conversation.recipient_tel: " + says.format("+14155550123", 14155550123, "+14155550123"),
        f"{routing}:{line}:90: warning: inline test 'a number not on the auto-queue list goes to the channel queue' "
        "gives conversation.auto_queue_reply_message_from_number.0: "
        + says.format("00441234567", 0o441234567, "00441234567"),
    ]


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    ("text", "at", "fix"),
    [
        (
            'rules:\n  - id: x\n    when: "a"\n      then: {target: t}\n',
            "4:7",
            "did not find expected key; this line is indented more or less than the keys beside it",
        ),
        (
            'rules:\n  - id: x\n    when: "a"\n  then: {target: t}\n',
            "4:3",
            "did not find expected '-' indicator; this line is indented less than the keys of the list item above it",
        ),
        ("ruleset: a\n---\nruleset: b\n", "2:1", "a file holds one document: remove the --- line"),
    ],
)
def test_the_usual_yaml_slips_in_libyamls_words_name_their_fix(tmp_path: Path, text: str, at: str, fix: str) -> None:
    """libyaml (the loader the cold start uses) words an indentation slip as a missing key or '-' indicator."""
    from tools.check import check_config

    root = assemble(tmp_path)
    (root / "rules" / "70_slip.yaml").write_text(text)
    report = check_config(root / PIPELINE, root / "rules")
    (error,) = report.errors
    assert str(error).startswith(f"{root}/rules/70_slip.yaml:{at}: invalid YAML: ")
    assert fix in error.message


def test_a_business_error_expected_of_a_routing_set_gets_a_hint(tmp_path: Path) -> None:
    """Defect: the failure said only "expected error 'CONVERSATION_LOCKED', got null", though no routing set can
    decide that: each set's tests run that set alone, and the lock is the validation set conversation_lock's."""
    from tools.check import check_config

    root = assemble(tmp_path)
    routing = root / "rules" / "40_routing.yaml"
    routing.write_text(
        routing.read_text()
        + "  - name: a locked conversation is refused\n"
        + "    given: {request: {channel: whatsapp}, conversation: {conversation_status: processing_reply}}\n"
        + "    expect: {error: CONVERSATION_LOCKED}\n"
    )
    report = check_config(root / PIPELINE, root / "rules")
    [failure] = [str(problem) for problem in report.failures]
    assert "expected error 'CONVERSATION_LOCKED', got null" in failure, failure
    assert failure.endswith(
        "; a routing set decides a target, never a business error (its one error is ROUTING_ERROR: no rule matches "
        "and it has no default, or target_from gives no text); each set's tests run that set alone: expect "
        "CONVERSATION_LOCKED in a test of the validation set that decides it"
    ), failure


@pytest.mark.usefixtures("deployed_env")
def test_a_code_missing_from_a_family_that_answers_none_of_the_pipelines_channels_is_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = assemble(tmp_path, "unanswered_error_code")
    # Twilio's channels are answered in TwiML (200 whatever the code): its JSON default family answers none of them.
    twilio = root / PIPELINE
    twilio.write_text(twilio.read_text().replace("      CONVERSATION_LOCKED: 409\n", ""))
    monkeypatch.chdir(root)
    assert main(["--check"]) == 0
    assert_findings(capsys.readouterr().out, CASES["unanswered_error_code"][1])


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("number", ["1", "0.5", "-2"])
def test_a_bare_number_in_a_condition_is_told_to_go_in_backticks(
    number: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`== 1` unquoted is the commonest slip from SQL or spreadsheets; the parser's words name no fix."""
    root = assemble(tmp_path)
    shipped = (root / "rules" / "10_project_status.yaml").read_text(encoding="utf-8")
    edited = shipped.replace("conversation.project_status != 'active'", f"conversation.task_complete == {number}")
    (root / "rules" / "10_project_status.yaml").write_text(edited, encoding="utf-8")
    monkeypatch.chdir(root)
    assert main(["--check"]) == 2
    out = capsys.readouterr().out
    assert "rules/10_project_status.yaml:8:42: invalid JMESPath: unexpected" in out
    assert f"write a number in backticks: `{number}`" in out


HOLDING = "I'm processing your previous message. Please wait for my response before sending more."


@pytest.mark.usefixtures("deployed_env")
def test_a_shared_sets_tests_run_with_every_pipeline_it_belongs_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a rule set both pipelines load ran its inline tests with the first pipeline file alone (the email
    pipeline, by name). A rule without ``reply:`` replies with the pipeline's ``errors:`` reply, which only the Twilio
    pipeline declares for CONVERSATION_LOCKED: a test expecting no reply passed ``make check`` while every locked
    WhatsApp user gets the holding message (``--pipeline pipelines/twilio_inbound.yaml`` failed it), and one expecting
    the holding message failed with no word of which pipeline decided."""
    root = assemble(tmp_path)
    lock = root / "rules" / "30_conversation_lock.yaml"
    shipped = lock.read_text(encoding="utf-8")
    without_reply = shipped.replace(f'      reply: "{HOLDING}"\n', "", 1)
    assert without_reply != shipped
    lock.write_text(without_reply.replace(f'      reply: "{HOLDING}"\n', "      reply: null\n", 1), encoding="utf-8")
    monkeypatch.chdir(root)
    assert main(["--check"]) == 1
    captured = capsys.readouterr()
    [failure] = [line for line in captured.out.splitlines() if "inline test" in line]
    assert failure.startswith("rules/30_conversation_lock.yaml:17:14: inline test 'locked conversation answers ")
    assert "expected reply null, got \"I'm processing your previous message." in failure, failure
    assert "with pipelines/twilio_inbound.yaml" in failure, failure
    assert "email_inbound" not in failure.split("with pipelines/twilio_inbound.yaml")[0], failure
    assert captured.err.rstrip().endswith(" passed, 1 failed"), captured.err

    # The other way round: the holding message is what WhatsApp and SMS users get, not what the email pipeline decides.
    lock.write_text(without_reply, encoding="utf-8")
    assert main(["--check"]) == 1
    captured = capsys.readouterr()
    [failure] = [line for line in captured.out.splitlines() if "inline test" in line]
    assert "got null" in failure, failure
    assert "with pipelines/email_inbound.yaml" in failure, failure
    assert main(["--check", "--pipeline", "pipelines/twilio_inbound.yaml"]) == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_request_field_the_pipelines_parse_step_never_provides_is_reported(tmp_path: Path) -> None:
    """Defect: an email rule reading ``request.text`` (SendGrid's own name for the text; the request calls it
    ``body``) or a misspelt ``request.subjet``, with inline tests giving those same names, passed ``--check`` with no
    word, though in production the field is always null and the rule never matches."""
    from tools.check import check_config

    root = assemble(tmp_path)
    routing = root / "rules" / "60_email_routing.yaml"
    rules = (
        "  - id: urgent_subject\n"
        "    when: \"has_word(request.subjet || '', 'urgent')\"\n"
        "    then: {target: handoff}\n"
        "  - id: urgent_text\n"
        "    when: \"has_word(request.text || '', 'urgent') || has_word(request.body || '', 'asap')\"\n"
        "    then: {target: handoff}\n"
    )
    tests = (
        "  - name: urgent subject\n"
        '    given: {request: {channel: email, subjet: "URGENT: help"}, conversation: {}}\n'
        "    expect: {rule: urgent_subject, target: handoff}\n"
        "  - name: urgent text\n"
        '    given: {request: {channel: email, text: "this is urgent"}, conversation: {}}\n'
        "    expect: {rule: urgent_text, target: handoff}\n"
    )
    shipped = routing.read_text(encoding="utf-8")
    routing.write_text(shipped.replace("  - id: auto_queue_reply\n", rules + "  - id: auto_queue_reply\n", 1) + tests)
    report = check_config(sorted((root / "pipelines").glob("*.yaml")), root / "rules")
    found = sorted(str(w).removeprefix(f"{root}/") for w in report.warnings if "never provides" in w.message)
    fields = (
        "fields: auto_submitted, body, body_bytes, body_truncated, channel, company_address, fields, from, "
        "is_status_callback, kind, media, message_id_source, message_sid, num_media, received_at, "
        "sender_authenticated, spam_score, subject, to, user_address"
    )
    # The step whose request the rules read: sendgrid.read completes sendgrid.parse's after the signature.
    step = f"sendgrid.read (step 'read' of {root}/pipelines/email_inbound.yaml) never provides"
    assert found == [
        f"rules/60_email_routing.yaml:12:29: warning: the condition reads request.subjet, which {step} it, so it is "
        f"always null (did you mean 'subject'?); the request's {fields}",
        f"rules/60_email_routing.yaml:15:29: warning: the condition reads request.text, which {step} it, so it is "
        f"always null; the request's {fields}",
        f"rules/60_email_routing.yaml:33:39: warning: inline test 'urgent subject' gives request.subjet, which {step} "
        f"it, so it is always null (did you mean 'subject'?); the request's {fields}",
        f"rules/60_email_routing.yaml:36:39: warning: inline test 'urgent text' gives request.text, which {step} it, "
        f"so it is always null; the request's {fields}",
    ], found


@pytest.mark.usefixtures("deployed_env")
def test_a_name_read_after_a_pipe_is_read_from_what_the_pipe_gives_not_the_context_document(tmp_path: Path) -> None:
    """Defect: the right of a pipe reads the left's value (``request | body`` is ``request.body``), yet the paths an
    expression reads took it as read from the top, so ``--check`` said ``request.media | [0].content_type`` reads
    'content_type', 'not in the context document ... always null', of a rule that matches."""
    from tools.check import check_config

    root = assemble(tmp_path)
    routing = root / "rules" / "60_email_routing.yaml"
    rules = (
        "  - id: first_media_is_an_image\n"
        "    when: \"request.media | [0].content_type == 'image/png'\"\n"
        "    then: {target: handoff}\n"
        "  - id: piped_body\n"
        "    when: \"request | body == 'help'\"\n"
        "    then: {target: handoff}\n"
    )
    tests = (
        "  - name: an image first\n"
        "    given: {request: {channel: email, media: [{content_type: image/png}]}, conversation: {}}\n"
        "    expect: {rule: first_media_is_an_image, target: handoff}\n"
        "  - name: a body asking for help\n"
        "    given: {request: {channel: email, body: help}, conversation: {}}\n"
        "    expect: {rule: piped_body, target: handoff}\n"
    )
    shipped = routing.read_text(encoding="utf-8")
    routing.write_text(shipped.replace("  - id: auto_queue_reply\n", rules + "  - id: auto_queue_reply\n", 1) + tests)
    report = check_config(sorted((root / "pipelines").glob("*.yaml")), root / "rules")
    assert not report.failures, report.failures
    found = [str(w) for w in report.warnings if "context document" in w.message or "never provides" in w.message]
    assert found == [], found


@pytest.mark.usefixtures("deployed_env")
def test_a_request_field_a_multi_select_reads_that_the_parse_step_never_provides_is_reported(tmp_path: Path) -> None:
    """Defect: ``request.[subjet, body]`` and ``request.{s: subjet}`` read request.subjet as ``request.subjet`` does,
    yet only the dotted form was warned of: the misspelt field, always null, passed ``--check`` with no word."""
    from tools.check import check_config

    root = assemble(tmp_path)
    routing = root / "rules" / "60_email_routing.yaml"
    rules = (
        "  - id: listed\n"
        "    when: \"contains(request.[subjet, body], 'help')\"\n"
        "    then: {target: handoff}\n"
        "  - id: keyed\n"
        "    when: \"request.{s: subjet, b: body}.s == 'help'\"\n"
        "    then: {target: handoff}\n"
    )
    shipped = routing.read_text(encoding="utf-8")
    routing.write_text(shipped.replace("  - id: auto_queue_reply\n", rules + "  - id: auto_queue_reply\n", 1))
    report = check_config(sorted((root / "pipelines").glob("*.yaml")), root / "rules")
    found = sorted(
        str(w).removeprefix(f"{root}/").split(", which")[0] for w in report.warnings if "never provides" in w.message
    )
    assert found == [
        "rules/60_email_routing.yaml:12:30: warning: the condition reads request.subjet",
        "rules/60_email_routing.yaml:15:24: warning: the condition reads request.subjet",
    ], found


@pytest.mark.usefixtures("deployed_env")
def test_a_request_field_read_before_the_step_that_completes_the_request_is_reported(tmp_path: Path) -> None:
    """sendgrid.parse gives only the addresses; the screening rules read what sendgrid.read gives, so a read step
    moved after the rules leaves them reading nulls: every email passes the screening."""
    from tools.check import check_config

    root = assemble(tmp_path)
    pipeline = root / "pipelines" / "email_inbound.yaml"
    shipped = pipeline.read_text(encoding="utf-8")
    read = "  - id: read\n    uses: sendgrid.read\n\n"
    assert shipped.count(read) == 1
    moved = shipped.replace(read, "").replace(
        "  - parallel:\n      - id: stage\n", read + "  - parallel:\n      - id: stage\n"
    )
    pipeline.write_text(moved, encoding="utf-8")
    report = check_config(sorted((root / "pipelines").glob("*.yaml")), root / "rules")
    found = sorted(str(w).removeprefix(f"{root}/") for w in report.warnings if "request." in w.message)
    late = (
        "which step 'read' (sendgrid.read) provides only after step 'rules' (rules.validate) evaluates this set: "
        "here it is always null; the request then holds: channel, company_address, from, is_status_callback, kind, "
        "message_id_source, message_sid, received_at, to, user_address"
    )
    assert found == [
        f"rules/50_email_screening.yaml:12:20: warning: the condition reads request.sender_authenticated, {late}",
        f"rules/50_email_screening.yaml:18:20: warning: the condition reads request.spam_score, {late}",
        f"rules/50_email_screening.yaml:34:20: warning: the condition reads request.auto_submitted, {late}",
    ], found


@pytest.mark.usefixtures("deployed_env")
def test_a_step_s_transient_code_a_json_family_has_no_status_for_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: --check passed a new step's transient code absent from the email pipeline's JSON statuses, which was
    then answered default_status 500, where every other transient code is 503 (contract §5)."""
    root = assemble(tmp_path)
    email = root / "pipelines" / "email_inbound.yaml"
    text = email.read_text(encoding="utf-8")
    email.write_text(text.replace("  - parallel:\n", ADDED_STEP + "  - parallel:\n", 1), encoding="utf-8")
    line = email.read_text(encoding="utf-8").splitlines().index("    uses: acme.added") + 1
    monkeypatch.chdir(root)
    transient = ErrorSpec("ACME_WRITE_TRANSIENT_ERROR", transient=True, description="the acme table did not answer")
    final = ErrorSpec("ACME_WRITE_ERROR", description="the acme table refused the write")
    declared: dict[str, Any] = {"provides": "acme_added", "params": {"type": "object"}, "errors": (transient, final)}
    with step_registered("acme.added", AddedStep, **declared):
        assert main(["--check"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"pipelines/email_inbound.yaml:{line}:11: warning: step 'acme_added' (acme.added) may end the transient code "
        "'ACME_WRITE_TRANSIENT_ERROR', which response family 'api' (json) has no status for: pipelines/"
        "email_inbound.yaml answers it with default_status 500, where the other transient codes are 503; add it "
        "under responses: api: status: in pipelines/email_inbound.yaml"
    ]


@pytest.mark.usefixtures("deployed_env")
def test_a_step_s_transient_code_a_json_family_answers_503_by_default_is_not_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: with the email pipeline's JSON family answering default_status 503, a new step's transient code it has
    no status for is answered 503 like every other transient code (contract §5), yet --check warned that it was
    answered "default_status 503, where the other transient codes are 503"."""
    root = assemble(tmp_path)
    email = root / "pipelines" / "email_inbound.yaml"
    text = email.read_text(encoding="utf-8")
    assert text.count("    default_status: 500\n") == 1
    text = text.replace("    default_status: 500\n", "    default_status: 503\n")
    email.write_text(text.replace("  - parallel:\n", ADDED_STEP + "  - parallel:\n", 1), encoding="utf-8")
    monkeypatch.chdir(root)
    transient = ErrorSpec("ACME_WRITE_TRANSIENT_ERROR", transient=True, description="the acme table did not answer")
    final = ErrorSpec("ACME_WRITE_ERROR", description="the acme table refused the write")
    declared: dict[str, Any] = {"provides": "acme_added", "params": {"type": "object"}, "errors": (transient, final)}
    with step_registered("acme.added", AddedStep, **declared):
        assert main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "ACME_WRITE_TRANSIENT_ERROR" not in out, out
