"""Rules files an operations person names, places or shares in a way that runs, but not as they meant.

Each change is made in a copy of the shipped configuration, and ``pipeline-dryrun --check`` must say what the
cold start will do with it: a file it does not read, a request field the pipeline's requests never carry, a channel
no pipeline of the set serves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.yamlsource import load_yaml
from tests.support.shipped import pipeline_names, pipeline_paths
from tests.tools.test_check_broken import assemble
from tests.tools.test_check_yaml_mishaps import check, deployed_env, line_of

__all__ = ["deployed_env"]  # the fixture, used by name

VIP_SET = """\
ruleset: vip
kind: validation
pipelines: [{pipeline}]
rules:
  - id: vip_paused
    when: "{when}"
    then: {{error: PROJECT_INACTIVE}}
"""


@pytest.mark.usefixtures("deployed_env")
def test_a_rules_file_the_cold_start_does_not_read_is_named_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: rules/55_vip.YAML (an upper-case extension) is never read (the cold start picks *.yaml and *.yml,
    as the file system spells them), so its rules never run, and --check said nothing at all: exit 0, no line.
    Every entry of rules/ the cold start does not read is now named with why and the fix; a hidden file (an
    editor's or git's) is not."""
    root = assemble(tmp_path)
    when = "conversation.project_status == 'vip'"
    (root / "rules" / "55_vip.YAML").write_text(VIP_SET.format(pipeline="twilio_inbound", when=when))
    (root / "rules" / "56_spam.Yml").write_text(VIP_SET.format(pipeline="email_inbound", when=when))
    (root / "rules" / "40_routing.yaml.bak").write_text("ruleset: old\n")
    (root / "rules" / "archive").mkdir()
    (root / "rules" / ".gitkeep").write_text("")

    status, out = check(root, monkeypatch, capsys)

    assert out == [
        "rules/40_routing.yaml.bak:1:1: warning: this file is not read: only the files of rules/ ending in .yaml or "
        ".yml are, so its rule sets never run; rename it to end in .yaml if it holds rules, or move it out of rules/",
        "rules/55_vip.YAML:1:1: warning: this file is not read: only the files of rules/ ending in .yaml or .yml "
        "(lower-case) are, so its rule sets never run; rename it to 55_vip.yaml",
        "rules/56_spam.Yml:1:1: warning: this file is not read: only the files of rules/ ending in .yaml or .yml "
        "(lower-case) are, so its rule sets never run; rename it to 56_spam.yml",
        "rules/archive:1:1: warning: this directory is not read: only the files directly in rules/ are, so the rule "
        "sets of its files never run; move them into rules/, or the directory out of it",
    ]
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("directory", ["rules", "pipelines"])
def test_a_teams_notes_beside_the_files_are_not_taken_for_files_meant_to_be_read(
    directory: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a README.md (or notes.txt, CHANGES.rst) an ops team keeps in rules/ was warned as a rules file not
    read, "rename it to end in .yaml if it holds rules", and failed a --strict check or publish: a warning every run
    that the team learns to ignore. Documentation is not taken for configuration; a backup of a YAML file still is."""
    root = assemble(tmp_path)
    for name in ("README.md", "notes.txt", "CHANGES.rst", "README"):
        (root / directory / name).write_text("How we change these files.\n")
    (root / directory / "old.yaml.bak").write_text("ruleset: old\n")

    status, out = check(root, monkeypatch, capsys)

    assert [line.split(":", 1)[0] for line in out if "is not read" in line] == [f"{directory}/old.yaml.bak"]
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_request_field_only_the_other_pipelines_parse_step_gives_is_told_at_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a set naming email_inbound alone that no step uses yet (a new screening set) reading
    request.user_number, which only twilio.parse gives, got only "not used by any step": once a step names it, it
    never matches, the field always null. A Twilio rule reading request.subject (sendgrid's) was told only that
    twilio.parse never provides it. Both are now told at the field that the pipeline's requests never carry it, the
    step that gives it is not one of that pipeline's, naming the pipeline."""
    root = assemble(tmp_path)
    when = "request.user_number == '+14155550123'"
    vip = root / "rules" / "55_vip.yaml"
    vip.write_text(VIP_SET.format(pipeline="email_inbound", when=when))
    routing = root / "rules" / "40_routing.yaml"
    shipped = 'when: "conversation.hand_off_to_human == `true`"'
    urgent = "when: \"conversation.hand_off_to_human == `true` || request.subject == 'urgent'\""
    routing.write_text(routing.read_text(encoding="utf-8").replace(shipped, urgent, 1), encoding="utf-8")

    status, out = check(root, monkeypatch, capsys)

    at_user_number = len('    when: "request.') + 1
    at_subject = f"{line_of(routing, urgent)}:{len('    ') + urgent.index('subject') + 1}"
    twilio_fields = (
        "account_sid, body, channel, company_number, fields, from, is_status_callback, kind, media, message_sid, "
        "message_status, num_media, received_at, signing_key_field, to, url, user_number"
    )
    email_fields = (
        "auto_submitted, body, body_bytes, body_truncated, channel, company_address, fields, from, is_status_callback, "
        "kind, media, message_id_source, message_sid, num_media, received_at, sender_authenticated, spam_score, "
        "subject, to, user_address"
    )
    assert out == [
        f"rules/40_routing.yaml:{at_subject}: warning: the condition reads request.subject, which the requests of "
        "pipelines/twilio_inbound.yaml never carry: sendgrid.parse and sendgrid.read give it, steps "
        "pipelines/twilio_inbound.yaml does not have (its request is twilio.parse's, step 'parse'), so here it is "
        f"always null; the request's fields: {twilio_fields}",
        "rules/55_vip.yaml:1:10: warning: rule set 'vip' is not used by any step of pipelines/email_inbound.yaml, so "
        "its rules never run; name it in a step (rules.route `ruleset:`, rules.validate `rulesets:`) or remove the "
        "file",
        "rules/55_vip.yaml:5:9: warning: no inline test is decided by rule 'vip_paused'; add a case under tests: "
        "whose given makes it match",
        f"rules/55_vip.yaml:6:{at_user_number}: warning: the condition reads "
        "request.user_number, which the requests of pipelines/email_inbound.yaml never carry: twilio.parse gives it, "
        "a step pipelines/email_inbound.yaml does not have (its request is sendgrid.read's, step 'read'), so here it "
        f"is always null; the request's fields: {email_fields}",
    ]
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_channel_no_pipeline_of_a_shared_set_serves_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: the request.channel checks covered only sets one pipeline alone decides with, so the shared
    conversation_lock set (no pipelines:, run by both) comparing request.channel == 'whatsap' passed --check without
    a word, the rule never matching. A channel neither pipeline of the set serves is now warned about, naming the
    channels each serves; one that either serves ('email', 'sms') is fine, and so is a set listing both pipelines."""
    root = assemble(tmp_path)
    lock = root / "rules" / "30_conversation_lock.yaml"
    shipped = "when: \"conversation.conversation_status == 'processing_reply'\""
    typo = (
        "when: \"conversation.conversation_status == 'processing_reply' && request.channel != 'email' && "
        "request.channel != 'sms' && request.channel != 'whatsap'\""
    )
    lock.write_text(lock.read_text(encoding="utf-8").replace(shipped, typo, 1), encoding="utf-8")
    both = root / "rules" / "20_channel.yaml"
    shipped = '    when: "!contains(to_array(conversation.allowed_channels || `[]`), request.channel)"'
    either = (
        '    when: "!contains(to_array(conversation.allowed_channels || `[]`), request.channel) && '
        "request.channel != 'Email'\""
    )
    text = both.read_text(encoding="utf-8").replace(shipped, either, 1)
    every = ", ".join(reversed(pipeline_names()))
    both.write_text(text.replace("kind: validation\n", f"kind: validation\npipelines: [{every}]\n"))

    status, out = check(root, monkeypatch, capsys)

    channels = " and ".join(
        f"{', '.join(load_yaml(path).data['channels'])} (pipelines/{path.name})" for path in pipeline_paths()
    )
    never = "the last segment of the path as written there, so this comparison is never true"
    served = f"whose channels are {channels}, {never}"
    at_email = f"{line_of(both, 'Email')}:{either.index('Email') + 1}"
    at_whatsap = f"{line_of(lock, 'whatsap')}:{len('    ') + typo.index('whatsap') + 1}"
    assert out == [
        f"rules/20_channel.yaml:{at_email}: warning: request.channel is never "
        f"'Email' in the pipelines of this set, {served}; did you mean 'email'?",
        f"rules/30_conversation_lock.yaml:{at_whatsap}: warning: "
        f"request.channel is never 'whatsap' in the pipelines of this set, {served}; did you mean 'whatsapp'?",
    ]
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_pipeline_file_the_cold_start_does_not_read_is_named_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: the rules/ entries the cold start does not read were named, but pipelines/ had the same gap:
    pipelines/sms_only.YAML (an upper-case extension), twilio_inbound.yaml.bak or a subdirectory is never read, its
    pipeline never serving a request, and --check said nothing at all: exit 0, no line. Each is now named with why and
    the fix, as a rules/ entry is, whether every pipeline is checked or --pipeline names one of pipelines/; a hidden
    file is not, nor a directory a --pipeline file elsewhere sits in (it is no task root's pipelines/)."""
    root = assemble(tmp_path / "root")
    pipelines = root / "pipelines"
    shipped = (pipelines / "twilio_inbound.yaml").read_text(encoding="utf-8")
    (pipelines / "sms_only.YAML").write_text(shipped.replace("twilio_inbound", "sms_only"), encoding="utf-8")
    (pipelines / "twilio_inbound.yaml.bak").write_text(shipped, encoding="utf-8")
    (pipelines / "old").mkdir()
    (pipelines / ".gitkeep").write_text("")
    expected = [
        "pipelines/old:1:1: warning: this directory is not read: only the files directly in pipelines/ are, so the "
        "pipelines of its files never run; move them into pipelines/, or the directory out of it",
        "pipelines/sms_only.YAML:1:1: warning: this file is not read: only the files of pipelines/ ending in .yaml or "
        ".yml (lower-case) are, so its pipeline never runs; rename it to sms_only.yaml",
        "pipelines/twilio_inbound.yaml.bak:1:1: warning: this file is not read: only the files of pipelines/ ending in "
        ".yaml or .yml are, so its pipeline never runs; rename it to end in .yaml if it holds a pipeline, or move it "
        "out of pipelines/",
    ]

    assert check(root, monkeypatch, capsys) == (0, expected)
    assert check(root, monkeypatch, capsys, "--pipeline", "pipelines/twilio_inbound.yaml") == (0, expected)

    elsewhere = tmp_path / "candidate"
    elsewhere.mkdir()
    (elsewhere / "twilio_inbound.yaml").write_text(shipped, encoding="utf-8")
    (elsewhere / "notes.txt").write_text("not a pipeline\n")
    _, out = check(root, monkeypatch, capsys, "--pipeline", str(elsewhere / "twilio_inbound.yaml"))
    assert not [line for line in out if "is not read" in line], out


@pytest.mark.usefixtures("deployed_env")
def test_a_pipelines_directory_holding_no_file_the_cold_start_reads_names_the_one_it_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: pipelines/twilio_inbound.YAML alone was refused with 'no pipeline files (*.yaml) found' and not a word
    on the file right there; it is now named, with its fix."""
    root = assemble(tmp_path)
    for path in (root / "pipelines").iterdir():
        path.rename(path.with_suffix(".YAML"))

    assert check(root, monkeypatch, capsys) == (
        2,
        [
            "pipelines:1:1: no pipeline files (*.yaml) found; pass --pipeline FILE",
            *(
                f"pipelines/{name}.YAML:1:1: warning: this file is not read: only the files of pipelines/ ending in "
                f".yaml or .yml (lower-case) are, so its pipeline never runs; rename it to {name}.yaml"
                for name in (path.stem for path in pipeline_paths())
            ),
        ],
    )


@pytest.mark.usefixtures("deployed_env")
def test_a_shared_set_telling_each_pipelines_channels_apart_has_no_rule_said_never_to_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """b9d0748 reads request.channel as one of a pipeline's channels only in a set that pipeline alone decides
    with. The shared conversation_lock set (no pipelines:, run by both) holding a rule for each of whatsapp, sms and
    email is fine: each rule matches in one of its pipelines, and none is said never to match (with one pipeline's
    channels read as every channel's, the email rule, or the WhatsApp and SMS ones, would be)."""
    root = assemble(tmp_path)
    lock = root / "rules" / "30_conversation_lock.yaml"
    per_channel = "".join(
        f"  - id: {channel}_paused\n    when: \"request.channel == '{channel}'\"\n"
        "    then: {error: CONVERSATION_LOCKED, message: paused}\n"
        for channel in ("whatsapp", "sms", "email")
    )
    lock.write_text(lock.read_text(encoding="utf-8").replace("rules:\n", "rules:\n" + per_channel, 1))

    status, out = check(root, monkeypatch, capsys)

    assert not [line for line in out if "never" in line], out
    assert status == 0
