"""What a person editing rules/*.yaml and pipelines/*.yaml slips into, seen by `--check` and by the cold start.

Each mistake is made in a copy of the shipped configuration. ``--check`` must print it as FILE:LINE:COLUMN and a
reason, and the function's cold start (``Application.from_root``) must refuse the same configuration with the same
located problem: the two read the files with one loader.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import ConfigError
from runtime.app import Application
from tests.tools.test_check_broken import DEPLOYED_ENV, REPO, assemble
from tools.dryrun.cli import main

ROUTING = "rules/40_routing.yaml"
PIPELINE = "pipelines/twilio_inbound.yaml"
COLD_START_ENV = {**DEPLOYED_ENV, "AWS_DEFAULT_REGION": "eu-west-1"}


@pytest.fixture
def deployed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DEPLOYED_ENV.items():
        monkeypatch.setenv(name, value)


def check(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, list[str]]:
    """``pipeline-dryrun --check`` (with ``options``) run in ``root``: its exit status and the lines it printed."""
    monkeypatch.chdir(root)
    status = main(["--check", *options])
    return status, capsys.readouterr().out.splitlines()


def cold_start_problems(root: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    """The problems the function's cold start (in the deployed environment and ``env``) refuses ``root`` with."""
    monkeypatch.chdir(root)
    with pytest.raises(ConfigError) as refused:
        Application.from_root(root, {**COLD_START_ENV, **env})
    return [str(problem) for problem in refused.value.problems]


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def assert_refused_alike(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], expected: str, **env: str
) -> None:
    """``--check`` prints ``expected`` alone and exits 2, and the cold start (with ``env``) refuses with it alone."""
    status, out = check(root, monkeypatch, capsys)
    assert out == [expected]
    assert status == 2
    assert cold_start_problems(root, monkeypatch, **env) == [expected]


@pytest.mark.usefixtures("deployed_env")
def test_a_byte_that_is_not_utf8_is_placed_at_its_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a rules file saved in Latin-1 ("Café" in a description) was reported at 1:1, "file is not valid
    UTF-8", leaving a person to hunt through the whole file for the character."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace("  - id: auto_queue_reply\n", "  - id: auto_queue_reply  # Café\n"))
    line = line_of(routing, "# Café")
    routing.write_bytes(routing.read_text().encode("latin-1"))

    expected = (
        f"{ROUTING}:{line}:32: not UTF-8 text: the file was saved in another encoding (Latin-1, Windows-1252…); "
        "save it as UTF-8"
    )
    # The file's rule set is still known: the pipeline naming it gets no second, misleading "unknown rule set".
    assert_refused_alike(root, monkeypatch, capsys, expected)


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(("character", "code"), [("\x00", "U+0000"), ("\x1b", "U+001B"), ("é\x07", "U+0007")])
def test_an_invisible_control_character_is_placed_at_its_line_and_column_on_one_line(
    character: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a control character pasted into a condition was reported at 1:1 with PyYAML's own two-line text
    ('unacceptable character #x001b: …' then 'in "<unicode string>", position 412'): no line, a character number
    only a programmer reads, and a second output line that is not FILE:LINE:COLUMN: message."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    condition = '"conversation.auto_queue_reply_message == `true`"'
    routing.write_text(routing.read_text().replace(condition, condition.replace("== ", "== " + character), 1))
    line = line_of(routing, "conversation.auto_queue_reply_message ==")
    column = routing.read_text().splitlines()[line - 1].index(character[-1]) + 1

    expected = (
        f"{ROUTING}:{line}:{column}: invalid YAML: the control character {code}, invisible in most editors, is not "
        "allowed; delete it"
    )
    assert_refused_alike(root, monkeypatch, capsys, expected)


@pytest.mark.usefixtures("deployed_env")
def test_a_rules_file_without_kind_is_told_so_not_to_give_every_routing_rule_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: without `kind:` the schema read every rule as a validation rule's, so a routing file got two errors
    per rule ("missing required key 'error'; add it", "unknown key 'target'") besides the one that names the fix."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace("kind: routing\n", "", 1))

    # Nor is the pipeline's step told that no rules file declares the set (it does: without a kind).
    missing = f"{ROUTING}:2:1: document: missing required key 'kind'; add it"
    assert_refused_alike(root, monkeypatch, capsys, missing)


@pytest.mark.usefixtures("deployed_env")
def test_a_misspelt_kind_is_reported_at_the_rules_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `kind: Routing` also made the pipeline's step say "rule set 'routing' is a Routing set; this step
    needs a routing set", a second error that reads as a contradiction."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace("kind: routing\n", "kind: Routing\n", 1))

    misspelt = (
        f"{ROUTING}:3:7: kind: 'Routing' is not a valid choice (did you mean 'routing'?); "
        "choose one of: validation, routing"
    )
    assert_refused_alike(root, monkeypatch, capsys, misspelt)


@pytest.mark.usefixtures("deployed_env")
def test_a_set_of_the_other_kind_is_reported_with_its_file_and_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `kind: validation` in the routing file was reported to the pipeline as "rule set 'routing' is a
    validation set; this step needs a routing set", naming neither the file nor the line to correct."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace("kind: routing\n", "kind: validation\n", 1))
    step = line_of(root / PIPELINE, "ruleset: routing")

    status, out = check(root, monkeypatch, capsys)
    expected = (
        f"{PIPELINE}:{step}:16: route: rule set 'routing' is a validation set ({ROUTING} says kind: validation); "
        "this step needs a routing set: name a routing set here, or correct kind: in that file"
    )
    assert out[0] == expected
    assert status == 2
    assert cold_start_problems(root, monkeypatch)[0] == expected


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("value", ["017", "1:30", "0x0a", "1_0"])
def test_a_whole_number_from_the_environment_is_read_in_decimal_or_refused(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `${env:BATCH_WINDOW_SECONDS:-10}` took the variable as YAML 1.1 reads it, so 017 (octal) was a
    15 s window and 1:30 (base 60) a 90 s one, silently, in --check and in the function alike."""
    root = assemble(tmp_path)
    monkeypatch.setenv("BATCH_WINDOW_SECONDS", value)
    pipeline = root / PIPELINE
    line = line_of(pipeline, "delay_seconds: ${env:BATCH_WINDOW_SECONDS:-10}")

    status, out = check(root, monkeypatch, capsys)
    expected = (
        f"{PIPELINE}:{line}:20: targets.whatsapp.delay_seconds: expected integer, got string {value!r}; "
        "write a whole number such as 10 (the value comes from environment variable BATCH_WINDOW_SECONDS)"
    )
    assert expected in out, out
    assert status == 2
    assert expected in cold_start_problems(root, monkeypatch, BATCH_WINDOW_SECONDS=value)


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(("value", "seconds"), [("15", 15), ("+15", 15), (" 15", 15)])
def test_a_whole_number_from_the_environment_in_decimal_is_that_number(
    value: str, seconds: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = assemble(tmp_path)
    monkeypatch.chdir(root)
    application = Application.from_root(root, {**COLD_START_ENV, "BATCH_WINDOW_SECONDS": value})
    assert application.pipeline("twilio_inbound").targets["whatsapp"]["delay_seconds"] == seconds


@pytest.mark.usefixtures("deployed_env")
def test_a_value_given_by_an_alias_is_placed_at_the_alias_not_at_its_anchor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a condition reused through an alias (`when: *human`) was placed at its anchor, so the warning that
    the second rule can never match pointed at the first rule's line: the one rule that is fine."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    first = '    when: "conversation.hand_off_to_human == `true`"'
    second = '    when: "conversation.auto_queue_reply_message == `true`"'
    text = routing.read_text().replace(first, first.replace("when: ", "when: &human "), 1)
    routing.write_text(text.replace(second, "    when:   *human  # the same condition", 1))
    alias = line_of(routing, "*human  #")

    status, out = check(root, monkeypatch, capsys)
    assert out[0].startswith(
        f"{ROUTING}:{alias}:13: warning: rule 'auto_queue_reply' can never match: earlier rule 'hand_off_to_human' "
        f"(line {line_of(routing, '&human')}) has the same condition"
    ), out
    assert status == 1  # the inline test of the shadowed rule fails


@pytest.mark.usefixtures("deployed_env")
def test_a_variable_set_to_nothing_is_called_empty_not_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: HANDOFF_QUEUE_URL= (set, to nothing: a template that rendered blank) was reported as "environment
    variable HANDOFF_QUEUE_URL is not set", which the person who can see it set does not believe."""
    root = assemble(tmp_path)
    monkeypatch.setenv("HANDOFF_QUEUE_URL", "")
    line = line_of(root / PIPELINE, "queue_url: ${env:HANDOFF_QUEUE_URL}")

    status, out = check(root, monkeypatch, capsys)
    empty = (
        f"{PIPELINE}:{line}:16: environment variable HANDOFF_QUEUE_URL is set to nothing; set it or give a default "
        "with ${env:HANDOFF_QUEUE_URL:-VALUE}"
    )
    assert f"{PIPELINE}:{line}:16: warning: {empty.split(': ', 1)[1]}" in out, out
    assert status == 0
    assert empty in cold_start_problems(root, monkeypatch, HANDOFF_QUEUE_URL="")


@pytest.mark.usefixtures("deployed_env")
def test_a_wrong_value_from_the_environment_names_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: BATCH_WINDOW_SECONDS=yes was reported as "delay_seconds: expected integer, got boolean true" at a
    line that reads `${env:BATCH_WINDOW_SECONDS:-10}`: neither the true nor the fix is in the file, and nothing said
    the value came from the environment."""
    root = assemble(tmp_path)
    monkeypatch.setenv("BATCH_WINDOW_SECONDS", "yes")
    line = line_of(root / PIPELINE, "delay_seconds: ${env:BATCH_WINDOW_SECONDS:-10}")

    status, out = check(root, monkeypatch, capsys)
    expected = (
        f"{PIPELINE}:{line}:20: targets.whatsapp.delay_seconds: expected integer, got boolean true; write a whole "
        "number such as 10 (the value comes from environment variable BATCH_WINDOW_SECONDS)"
    )
    assert expected in out, out
    assert status == 2
    assert expected in cold_start_problems(root, monkeypatch, BATCH_WINDOW_SECONDS="yes")


@pytest.mark.usefixtures("deployed_env")
def test_a_merge_key_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `<<: *handoff` was refused with "YAML merge keys (<<) are not supported" and no way forward, beside
    a knock-on "needs at least 1 key(s)" at the same place."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    text = routing.read_text().replace("    then: {target: handoff}\n", "    then: &handoff {target: handoff}\n", 1)
    text = text.replace("    then: {target: handoff}\n", "    then:\n      <<: *handoff\n", 1)
    routing.write_text(text)
    line = line_of(routing, "<<: *handoff")

    status, out = check(root, monkeypatch, capsys)
    expected = f"{ROUTING}:{line}:7: YAML merge keys (<<) are not supported; write the merged keys out here"
    assert expected in out, out
    assert status == 2
    assert expected in cold_start_problems(root, monkeypatch)


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("block", ["|", ">"])
def test_a_condition_cut_short_in_a_block_is_placed_where_it_ends_not_on_the_next_line(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a block condition (| or >, which keep the final line break) ending with a dangling && was placed at
    column 1 of the line after it, the `then:` line, which holds nothing to fix."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    condition = '    when: "conversation.auto_queue_reply_message == `true`"'
    cut = f"    when: {block}\n      conversation.hand_off_to_human == `false` &&\n"
    routing.write_text(routing.read_text().replace(condition + "\n", cut, 1))
    line = line_of(routing, "conversation.hand_off_to_human == `false` &&")

    status, out = check(root, monkeypatch, capsys)
    assert out[0].startswith(f"{ROUTING}:{line}:51: invalid JMESPath: the expression ends too early"), out
    assert status == 2
    assert cold_start_problems(root, monkeypatch)[0].startswith(f"{ROUTING}:{line}:51: ")


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(("setting", "nan"), [("deadline_seconds: 4", ".nan"), ("read_timeout_seconds: 1.0", ".NaN")])
def test_not_a_number_is_refused_not_taken_for_a_number_in_range(
    setting: str, nan: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `deadline_seconds: .nan` passed --check (exit 0, beside a warning that one invocation "may run nan
    s") and the cold start: every comparison with NaN is false, so the schema's bounds let it through."""
    root = assemble(tmp_path)
    pipeline = root / PIPELINE
    name = setting.split(":")[0]
    pipeline.write_text(pipeline.read_text().replace(setting, f"{name}: {nan}", 1))
    line = line_of(pipeline, f"{name}: {nan}")
    column = pipeline.read_text().splitlines()[line - 1].index(nan) + 1

    status, out = check(root, monkeypatch, capsys)
    expected = f"{PIPELINE}:{line}:{column}: {nan} (not a number) is no value for a setting; write a number"
    assert expected in out, out
    assert status == 2
    assert expected in cold_start_problems(root, monkeypatch)


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    ("given", "says"),
    [
        (
            ["--rules", "pipelines"],
            "--rules pipelines holds pipeline files (pipeline:, steps:), not rules files (ruleset:): give the rules "
            "directory with --rules, and a pipeline file with --pipeline",
        ),
        (
            ["--pipeline", ROUTING],
            f"--pipeline {ROUTING} is a rules file (ruleset:), not a pipeline file: give a file of pipelines/ with "
            "--pipeline, and the rules directory with --rules",
        ),
        (
            ["--pipeline", "pipelines"],
            "--pipeline takes one pipeline file, not a directory: give one of pipelines/*.yaml, or leave --pipeline "
            "out to check them all",
        ),
    ],
)
@pytest.mark.parametrize("mode", [["--check"], ["--world", "examples/world.yaml", "examples/events"]])
def test_a_rules_path_and_a_pipeline_path_mixed_up_are_told_apart(
    given: list[str],
    says: str,
    mode: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defect: `--pipeline rules/40_routing.yaml` printed a dozen schema errors ("unknown key 'ruleset'", "missing
    required key 'steps'"…), `--rules pipelines` as many the other way, `--rules rules/40_routing.yaml` four false
    "no rules file of this pipeline declares ruleset: …" and "rules directory not found" for a file that exists."""
    monkeypatch.chdir(assemble(tmp_path))
    with pytest.raises(SystemExit) as stopped:
        main([*mode, *given])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1] == f"pipeline-dryrun: error: {says}"


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    ("given", "says"),
    [
        (
            ["--baseline-pipeline", ROUTING],
            f"--baseline-pipeline {ROUTING} is a rules file (ruleset:), not a pipeline file: give a file of "
            "pipelines/ with --baseline-pipeline, and the rules directory with --baseline-rules",
        ),
        (
            ["--baseline-pipeline", "pipelines"],
            "--baseline-pipeline takes one pipeline file, not a directory: give one of pipelines/*.yaml",
        ),
    ],
)
def test_a_baseline_pipeline_path_mixed_up_is_told_apart_as_the_replayed_one_is(
    given: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: only --rules and --pipeline were checked for the mix-ups above; `--baseline-pipeline pipelines` said
    "cannot read file: Is a directory", and `--baseline-pipeline rules/40_routing.yaml` called the rules file a
    pipeline "not replayed". (`--baseline-rules pipelines` is loaded, and its problems reported:
    test_dryrun_cli's test_a_directory_naming_no_pipeline_lends_nothing_and_its_problems_are_reported.)"""
    shutil.copytree(REPO / "examples", assemble(tmp_path) / "examples")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["--world", "examples/world.yaml", "examples/events", *given])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1] == f"pipeline-dryrun: error: {says}"


@pytest.mark.usefixtures("deployed_env")
def test_one_rules_file_given_as_the_rules_directory_is_refused_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `--check --rules rules/40_routing.yaml` said "rules directory not found" of a file that exists, after
    four false "no rules file of this pipeline declares ruleset: …"; the replay already refused it so."""
    status, out = check(assemble(tmp_path), monkeypatch, capsys, "--rules", ROUTING)
    assert out == [f"{ROUTING}:1:1: --rules: not a directory; pass the directory holding the rules/*.yaml files"]
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
def test_a_syntax_error_in_a_condition_holding_an_environment_value_is_not_placed_by_the_files_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: in a condition holding ${env:VIP_TIER}, a mistake after the reference was placed by counting the
    variable's value as if it were the file's text, so the column was off by their difference in length (here past
    the end of the line); it is now placed at the condition, whose text as evaluated the message quotes."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    condition = '"conversation.auto_queue_reply_message == `true`"'
    routing.write_text(
        routing.read_text().replace(condition, "\"conversation.tier == '${env:VIP_TIER}' && conversation.x = `1`\"", 1)
    )
    monkeypatch.setenv("VIP_TIER", "gold-and-platinum-customers-of-the-year")
    line = line_of(routing, "${env:VIP_TIER}")

    expected = (
        f"{ROUTING}:{line}:12: invalid JMESPath: '=' is not an operator; compare with == (or !=) (in \"conversation"
        ".tier == 'gold-and-platinum-customers-of-the-year' && conversation.x = `1`\")"
    )
    assert_refused_alike(root, monkeypatch, capsys, expected, VIP_TIER="gold-and-platinum-customers-of-the-year")


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("conversation.tier == 'vip' #|| conversation.vip == `true`", "conversation.tier == 'vip'"),
        ("contains(request.body || '', ' #vip')", "contains(request.body || '', '"),
    ],
)
def test_a_condition_cut_short_by_a_yaml_comment_is_reported(
    written: str, kept: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: in an unquoted condition YAML reads ' #' as the start of a comment: the first condition was silently
    cut to its first half (a rule deciding other messages than written), the second reported only as "unclosed '
    quote; add the closing '" of a quote the file does close."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    condition = '"conversation.auto_queue_reply_message == `true`"'
    routing.write_text(routing.read_text().replace(condition, written, 1))
    line = line_of(routing, written)
    column = routing.read_text().splitlines()[line - 1].index(" #") + 2

    status, out = check(root, monkeypatch, capsys)
    expected = (
        f"{ROUTING}:{line}:{column}: warning: YAML reads ' #' as the start of a comment, so this condition ends "
        f"before it (as {kept!r}); put the whole condition in double quotes, with single quotes inside"
    )
    assert expected in out, out
    assert status in (1, 2)


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    "condition", ["'processing_reply' == conversation.conversation_status", '"a" == conversation.conversation_status']
)
def test_a_condition_that_starts_with_a_quote_is_told_to_be_quoted_whole_not_to_be_indented(
    condition: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `when: 'processing_reply' == conversation.conversation_status` (the text first, as JMESPath allows)
    was reported as "did not find expected key; this line is indented more or less than the keys beside it: line
    it up": the indentation is right; YAML took the quoted text for the whole value and found the rest left over."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace('"conversation.auto_queue_reply_message == `true`"', condition, 1))
    line = line_of(routing, condition)
    column = routing.read_text().splitlines()[line - 1].index(" == ") + 2

    status, out = check(root, monkeypatch, capsys)
    assert out == [
        f"{ROUTING}:{line}:{column}: invalid YAML: did not find expected key; the value starts with a quote, so YAML "
        "reads the quoted part alone as the value and the rest of the line is left over: put the whole value in "
        "double quotes, with single quotes inside"
    ]
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("condition", ["`true` == conversation.auto_queue_reply_message", "@.conversation.vip"])
def test_a_condition_that_starts_with_a_reserved_character_is_told_to_be_quoted(
    condition: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: an unquoted condition starting with ` or @ (JMESPath's literal and current node) was refused with
    libyaml's "found character that cannot start any token", which names neither the character nor the fix."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace('"conversation.auto_queue_reply_message == `true`"', condition, 1))
    line = line_of(routing, condition)

    expected = (
        f"{ROUTING}:{line}:11: invalid YAML: a value starting with {condition[0]} is read as YAML markup, not text; "
        "put the whole value in double quotes"
    )
    assert_refused_alike(root, monkeypatch, capsys, expected)


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    ("written", "character", "says"),
    [
        ("conversation.tier ==\u00a0'vip'", "\u00a0", "a non-breaking space (U+00A0), invisible: retype it as a space"),
        ("conversation.tier\u200b == 'vip'", "\u200b", "a zero-width space (U+200B), invisible: delete it"),
        ("conversation.tier == \u2018vip\u2019", "\u2018", "a typographic quote: write the plain ' instead"),
    ],
)
def test_a_pasted_character_in_a_condition_is_named(
    written: str,
    character: str,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defect: a condition pasted from a chat or a word processor failed with "unexpected character '\\xa0'" (or
    '\\u200b', or a typographic quote): a Python escape for a character the person cannot see, or a character they
    cannot tell from the plain one, and no fix."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace("conversation.auto_queue_reply_message == `true`", written, 1))
    line = line_of(routing, written)
    column = routing.read_text().splitlines()[line - 1].index(character) + 1

    status, out = check(root, monkeypatch, capsys)
    assert len(out) == 1 and out[0].startswith(f"{ROUTING}:{line}:{column}: invalid JMESPath: unexpected character")
    assert out[0].endswith(f"; it is {says}"), out
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    ("written", "column"),
    [
        ('\u00a0\u00a0\u00a0\u00a0when: "conversation.auto_queue_reply_message == `true`"', 1),
        ('    when:\u00a0"conversation.auto_queue_reply_message == `true`"', 10),
    ],
)
def test_a_non_breaking_space_in_the_yaml_layout_is_named_where_it_is(
    written: str, column: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: non-breaking spaces pasted as indentation (or after a key's colon) were reported one line further down,
    as "did not find expected key; this line is indented more or less than the keys beside it" (or "could not find
    expected ':'"): the indentation looks right, because the character that breaks it cannot be seen."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(
        routing.read_text().replace('    when: "conversation.auto_queue_reply_message == `true`"', written)
    )
    line = line_of(routing, written)

    status, out = check(root, monkeypatch, capsys)
    assert len(out) == 1 and out[0].startswith(f"{ROUTING}:{line}:{column}: invalid YAML: "), out
    assert out[0].endswith(
        "; the line holds a non-breaking space (U+00A0), invisible, where YAML needs a plain space: retype it"
    ), out
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    ("setting", "written", "read"),
    [("delay_seconds: 0", "010", 8), ("deadline_seconds: 4", "04", None), ("delay_seconds: 0", "1:30", None)],
)
def test_a_zero_padded_number_yaml_reads_as_octal_is_reported(
    setting: str,
    written: str,
    read: int | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defect: `delay_seconds: 010` (zero-padded) passed as 8 seconds, YAML 1.1 reading a leading 0 as octal,
    silently, unlike the same slip in a test's given (a phone number). 04 is 4 either way, and 1:30 is 90 s, as a
    time is meant: neither is reported."""
    root = assemble(tmp_path)
    pipeline = root / PIPELINE
    name = setting.split(":")[0]
    pipeline.write_text(pipeline.read_text().replace(setting, f"{name}: {written}", 1))
    line = line_of(pipeline, f"{name}: {written}")
    column = pipeline.read_text().splitlines()[line - 1].index(written) + 1

    status, out = check(root, monkeypatch, capsys)
    at = f"{PIPELINE}:{line}:{column}: "
    expected = [
        f"{at}warning: YAML reads {written} as the number {read} (a leading 0 makes it octal); write "
        f"{written.lstrip('0')} without the 0, or {read} if that is meant"
    ]
    assert [finding for finding in out if finding.startswith(at)] == (expected if read is not None else [])
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("word", ["yes", "off"])
def test_a_yes_or_off_where_text_is_needed_is_explained(
    word: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `target: off` (a target named off) was refused with "got boolean false; write text (quote it if it
    looks like a number, true/false or null)": the file says off, and nothing said YAML reads it as false."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace("then: {target: handoff}", f"then: {{target: {word}}}", 1))
    line = line_of(routing, f"{{target: {word}}}")

    status, out = check(root, monkeypatch, capsys)
    got = "true" if word == "yes" else "false"
    expected = (
        f"{ROUTING}:{line}:20: rules[0].then.target: expected string, got boolean {got}; write text (quote it if it "
        "looks like a number, true/false, yes/no, on/off or null)"
    )
    assert expected in out, out
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize(
    ("file", "expect", "wrong", "hint"),
    [
        (
            "rules/20_channel.yaml",
            "{rule: channel_not_allowed, error: CHANNEL_NOT_ALLOWED}",
            "{rule: channel_not_allowed, target: handoff}",
            "; a validation set decides an error, never a target; each set's tests run that set alone: expect target "
            "'handoff' in a test of the routing set that decides it",
        ),
        (
            ROUTING,
            "{rule: hand_off_to_human, target: handoff}",
            "{rule: hand_off_to_human, reply: hello}",
            "; a routing set sends no reply (a reply comes with a validation set's error); each set's tests run that "
            "set alone: expect the reply in a test of the validation set whose rule gives it",
        ),
    ],
)
def test_an_expectation_the_kind_of_set_never_decides_gets_a_hint(
    file: str,
    expect: str,
    wrong: str,
    hint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defect: a validation set's test expecting a target (or a routing set's expecting a reply) failed with only
    "expected target 'handoff', got null", as if the rule were wrong; the routing set's test expecting a business
    error already said why (its hint's counterparts)."""
    root = assemble(tmp_path)
    rules = root / file
    rules.write_text(rules.read_text().replace(f"    expect: {expect}\n", f"    expect: {wrong}\n", 1))

    status, out = check(root, monkeypatch, capsys)
    assert len(out) == 1 and out[0].endswith(hint), out
    assert status == 1


@pytest.mark.usefixtures("deployed_env")
def test_a_quoted_null_rule_expectation_is_told_to_lose_its_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: `expect: {rule: "null"}` said only "expects rule 'null', which is not a rule of set 'routing'"."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    routing.write_text(routing.read_text().replace("expect: {rule: null, target: null}", 'expect: {rule: "null"}', 1))

    status, out = check(root, monkeypatch, capsys)
    assert len(out) == 1 and out[0].endswith("; for no rule at all, write null without quotes"), out
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
def test_a_file_saved_with_a_byte_order_mark_places_a_mistake_inside_a_condition_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: in a file saved with a UTF-8 byte-order mark (Windows Notepad's "UTF-8 with BOM"), libyaml's character
    indexes do not count the mark, so every quoted condition's text was looked for one character early: a mistake
    inside it was placed at the condition's start instead of at the mistake."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    condition = "conversation.auto_queue_reply_message == `true`"
    routing.write_text("\ufeff" + routing.read_text().replace(condition, condition.replace("==", "="), 1))
    line = line_of(routing, "auto_queue_reply_message = ")
    column = routing.read_text().splitlines()[line - 1].index(" = ") + 2

    status, out = check(root, monkeypatch, capsys)
    expected = f"{ROUTING}:{line}:{column}: invalid JMESPath: '=' is not an operator"
    assert len(out) == 1 and out[0].startswith(expected), out
    assert status == 2
    assert cold_start_problems(root, monkeypatch)[0].startswith(expected)


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("properties", ["&human", "!!str", "&human !!str"])
def test_a_mistake_in_a_condition_with_an_anchor_or_a_tag_is_placed_at_the_mistake(
    properties: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a quoted condition written after an anchor (&human, to reuse it) or a tag (!!str) had its text looked
    for from the & or the !, so a mistake inside it was placed at the anchor's second character instead."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    condition = '"conversation.hand_off_to_human == `true`"'
    routing.write_text(routing.read_text().replace(condition, f"{properties} {condition.replace('==', '=')}", 1))
    line = line_of(routing, properties)
    column = routing.read_text().splitlines()[line - 1].index(" = ") + 2

    status, out = check(root, monkeypatch, capsys)
    expected = f"{ROUTING}:{line}:{column}: invalid JMESPath: '=' is not an operator"
    assert len(out) == 1 and out[0].startswith(expected), out
    assert status == 2
    assert cold_start_problems(root, monkeypatch)[0].startswith(expected)
