"""Configuration loading reports every problem of every layer and file in one pass, each precisely located."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import yamlsource
from engine.config import inspect_config, load_config
from engine.errors import ConfigError, Problem
from engine.expressions import ExpressionSyntaxError, compile_expression
from engine.yamlsource import parse_yaml
from tests.support.shipped import deployed_env
from tools.lint import lint_expression

REPO = Path(__file__).resolve().parents[2]
ENV = deployed_env(
    {
        "CONVERSATIONS_TABLE_NAME": "conversations",
        "STAGE_TABLE_NAME": "stage",
        "LOCK_TABLE_NAME": "lock",
        "WHATSAPP_QUEUE_URL": "https://queue/whatsapp",
        "SMS_QUEUE_URL": "https://queue/sms",
        "HANDOFF_QUEUE_URL": "https://queue/handoff",
        "REPLAY_TABLE_NAME": "replay",
    }
)


def tree(tmp_path: Path, edits: dict[str, list[tuple[str, str]]]) -> tuple[Path, Path]:
    """A copy of the shipped configuration with textual edits applied (file -> [(old, new)])."""
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    for name, replacements in edits.items():
        path = tmp_path / name
        text = path.read_text()
        for old, new in replacements:
            assert old in text, old
            text = text.replace(old, new, 1)
        path.write_text(text)
    return tmp_path / "pipelines" / "twilio_inbound.yaml", tmp_path / "rules"


def located(problems: Iterable[Problem]) -> list[tuple[str, int, int]]:
    return [(Path(p.file).name, p.line, p.column) for p in problems]


def where(path: Path, needle: str, offset: int = 0) -> tuple[str, int, int]:
    """File name, line and column of the first occurrence of ``needle`` (plus ``offset`` characters)."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return path.name, number, line.index(needle) + offset + 1
    raise AssertionError(f"{needle!r} not in {path}")


def test_shipped_configuration_loads_without_warnings() -> None:
    config = load_config(REPO / "pipelines" / "twilio_inbound.yaml", REPO / "rules", ENV)
    assert config.warnings == ()
    assert set(config.rulesets) == {"project_status", "channel", "conversation_lock", "routing"}
    assert config.targets["whatsapp"]["delay_seconds"] == 10


def test_schema_errors_do_not_hide_step_checks_or_other_files(tmp_path: Path) -> None:
    pipeline, rules = tree(
        tmp_path,
        {
            "pipelines/twilio_inbound.yaml": [
                ("deadline_seconds: 4\n", "deadline_seconds: 4\ndeadline: 5\n"),
                ("rulesets: [project_status, channel,", "rulesets: [project_status, chanel,"),
                ("when: route.lock", "when: route.lock =="),
            ],
            "rules/10_project_status.yaml": [("kind: validation\n", "kind: validation\nowner: ops\n")],
            "rules/40_routing.yaml": [("then: {target: handoff}", "then: {target: handof}")],
        },
    )
    with pytest.raises(ConfigError) as caught:
        load_config(pipeline, rules, ENV)
    assert located(caught.value.problems) == [
        where(pipeline, "deadline: 5"),  # unknown top-level key
        where(pipeline, "chanel"),  # unknown rule set, found although the schema failed
        where(pipeline, "route.lock ==", len("route.lock ==")),  # ends too early: just after the expression
        where(rules / "10_project_status.yaml", "owner: ops"),  # unknown key in one rules file ...
        where(rules / "40_routing.yaml", "handof"),  # ... and an unknown target in another
    ]
    assert "the expression ends too early" in caught.value.problems[2].message


def test_a_rules_file_with_schema_errors_still_defines_its_set(tmp_path: Path) -> None:
    pipeline, rules = tree(
        tmp_path, {"rules/20_channel.yaml": [("      error: CHANNEL_NOT_ALLOWED", "      error: 42")]}
    )
    inspection = inspect_config(pipeline, rules, ENV)
    (error,) = inspection.errors
    assert located([error]) == [where(rules / "20_channel.yaml", "42")]
    assert error.message.startswith("rules[0].then.error: expected string, got integer 42")
    assert inspection.rulesets["channel"].complete is False
    assert not any("unknown rule set" in problem.message for problem in inspection.problems)


def test_a_wrongly_typed_mapping_or_long_text_is_described_not_quoted_whole(tmp_path: Path) -> None:
    long_text = "x" * 500
    pipeline, rules = tree(
        tmp_path,
        {
            "rules/20_channel.yaml": [
                ("      error: CHANNEL_NOT_ALLOWED", f"      error: {{code: CHANNEL_NOT_ALLOWED, why: {long_text}}}"),
                ("description: The message's channel", "description: [" + ", ".join(["word"] * 200) + "]\n#"),
            ]
        },
    )
    messages = [problem.message for problem in inspect_config(pipeline, rules, ENV).errors]
    assert "description: expected string, got array of 200 item(s)" in messages[0]
    assert "rules[0].then.error: expected string, got object with key(s) 'code, why'" in messages[1]
    assert all(long_text not in message and len(message) < 300 for message in messages)


def test_an_unknown_step_does_not_cascade_into_missing_inputs(tmp_path: Path) -> None:
    pipeline, rules = tree(tmp_path, {"pipelines/twilio_inbound.yaml": [("uses: twilio.parse", "uses: twilio.parser")]})
    inspection = inspect_config(pipeline, rules, ENV)
    assert len(inspection.errors) == 1
    assert "unknown step 'twilio.parser' (did you mean 'twilio.parse'?)" in inspection.errors[0].message


@pytest.mark.parametrize("severity", ["warning", "error"])
def test_an_unset_typed_value_is_one_env_problem_not_a_type_error(tmp_path: Path, severity: str) -> None:
    pipeline, rules = tree(
        tmp_path,
        {
            "pipelines/twilio_inbound.yaml": [
                ("ttl_seconds: ${env:STAGE_TTL_SECONDS:-86400}", "ttl_seconds: ${env:STAGE_TTL}")
            ]
        },
    )
    inspection = inspect_config(pipeline, rules, ENV, missing_env=severity)
    (problem,) = inspection.problems
    assert located([problem]) == [where(pipeline, "${env:STAGE_TTL}")]
    assert problem.severity == severity
    assert "environment variable STAGE_TTL is not set" in inspection.problems[0].message
    assert (inspection.config is None) == (severity == "error")


def test_a_set_value_that_holds_a_reference_itself_is_an_error_not_a_silent_string(tmp_path: Path) -> None:
    """A value is not resolved again: taken for an unset reference, its type was never checked (a text delay)."""
    pipeline, rules = tree(tmp_path, {})
    environment = {**ENV, "BATCH_WINDOW_SECONDS": "${env:WINDOW}"}
    for severity in ("warning", "error"):
        inspection = inspect_config(pipeline, rules, environment, missing_env=severity)
        assert inspection.config is None
        assert [str(problem).split(": ", 1)[1] for problem in inspection.problems] == [
            "environment variable BATCH_WINDOW_SECONDS holds ${env:…}, which is not resolved again; set the value "
            "itself"
        ] * 2
        reference = "${env:BATCH_WINDOW_SECONDS:-10}"
        lines = [(n, line.find(reference) + 1) for n, line in enumerate(pipeline.read_text().splitlines(), 1)]
        assert located(inspection.problems) == [(pipeline.name, n, c) for n, c in lines if c > 0]


def test_duplicate_keys_are_reported_with_the_other_problems_of_the_file(tmp_path: Path) -> None:
    pipeline, rules = tree(
        tmp_path,
        {
            "pipelines/twilio_inbound.yaml": [
                ("lock: true\n", "lock: true\n    lock: yes\n"),
                ("max_attempts: 2", "max_attempts: 9"),
            ]
        },
    )
    with pytest.raises(ConfigError) as caught:
        load_config(pipeline, rules, ENV)
    assert located(caught.value.problems) == [where(pipeline, "max_attempts: 9", 14), where(pipeline, "lock: yes")]
    assert "out of range: it must be at most 5" in caught.value.problems[0].message
    first = where(pipeline, "lock: true")[1]
    assert f"duplicate key 'lock' (first defined on line {first}); remove one" in caught.value.problems[1].message


SOURCE = """\
a:
  dq: "x == 'y' && z"
  plain: x == 'y' && z
  sq: 'it''s && z'
  esc: "a \\" b"
  literal: |
    a &&
      b
  folded: >-
    a &&
    b
  multi: a &&
    b
"""


@pytest.mark.parametrize(
    ("key", "offset", "position"),
    [
        ("dq", 0, (2, 8)),
        ("dq", 9, (2, 17)),
        ("dq", 99, (2, 21)),  # past the end: just after the last character
        ("plain", 7, (3, 17)),
        ("sq", 6, (4, 15)),  # after the '' escape
        ("esc", 4, (5, 14)),  # after the \" escape
        ("literal", 0, (7, 5)),
        ("literal", 7, (8, 7)),  # more-indented line: its extra indentation is content
        ("folded", 5, (11, 5)),
        ("multi", 5, (13, 5)),
    ],
)
@pytest.mark.parametrize("loader", [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)])
def test_a_character_of_a_string_value_is_located_in_the_source(
    key: str, offset: int, position: tuple[int, int], loader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlsource, "_LOADER", loader)
    doc = parse_yaml(SOURCE, "f.yaml")
    value = doc.data["a"][key]
    assert doc.locator.position_in(("a", key), offset) == position
    if offset < len(value):
        line, column = position
        assert SOURCE.splitlines()[line - 1][column - 1] == value[offset]


@pytest.mark.parametrize(
    ("text", "at", "fix"),
    [
        ("a:\n  when: !contains(x || `[]`, y)\n", "f.yaml:2:9:", "put the whole value in double quotes"),
        ('a:\n  when: "abc\n', "f.yaml:3:1:", "the quote opened on line 2 is not closed"),
        ("a:\n  when: a: b\n", "f.yaml:2:10:", "a plain value cannot contain ': ' (put the value in quotes)"),
        ("a:\n\twhen: x\n", "f.yaml:2:1:", "indent with spaces, not tabs"),
    ],
)
def test_yaml_syntax_errors_are_located_and_name_the_usual_fix(text: str, at: str, fix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "f.yaml")
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{at} invalid YAML: ")
    assert fix in problem.message


def test_duplicate_keys_raise_when_strict_and_are_returned_when_lenient() -> None:
    text = "a: 1\nb: 2\na: 3\n"
    with pytest.raises(ConfigError):
        parse_yaml(text, "f.yaml")
    doc = parse_yaml(text, "f.yaml", strict=False)
    assert doc.data == {"a": 1, "b": 2}
    assert [str(p) for p in doc.problems] == [
        "f.yaml:3:1: duplicate key 'a' (first defined on line 1); remove one of them"
    ]


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("channels: !!set {whatsapp, sms}\n", "!!set"),
        ("then: !include {target: handoff}\n", "!include"),
        ("rules: !!omap [{a: 1}]\n", "!!omap"),
        ("rules: !custom [a, b]\n", "!custom"),
    ],
)
def test_a_tag_on_a_mapping_or_list_is_refused_at_it_not_dropped(text: str, tag: str) -> None:
    """Defect: a tag on a mapping or a list was dropped without a word, so ``!!set {whatsapp, sms}`` loaded as
    ``{whatsapp: null, sms: null}`` and ``!include {…}`` as the mapping it tags; every tag on a scalar the safe
    loader does not know was already refused. The tag is named at its place, as a plain mapping or list to write."""
    with pytest.raises(ConfigError) as raised:
        parse_yaml(text, "f.yaml")
    assert [str(problem) for problem in raised.value.problems] == [
        f"f.yaml:1:{text.index(': ') + 3}: YAML tag {tag} is not supported here; remove it"
    ]


def test_plain_and_explicitly_tagged_mappings_and_lists_still_load() -> None:
    doc = parse_yaml("a: !!map {b: [1]}\nc: !!seq [x]\nd: {e: f}\n", "f.yaml")
    assert doc.data == {"a": {"b": [1]}, "c": ["x"], "d": {"e": "f"}}


def test_aliases_that_expand_without_bound_are_a_located_error_not_a_hang() -> None:
    """Nine nested aliases of ten make 10^9 values (a "billion laughs"): the check and the cold start would hang."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(ConfigError) as raised:
        parse_yaml("\n".join(lines) + "\n", "f.yaml")
    (problem,) = raised.value.problems
    assert str(problem).startswith("f.yaml:")
    assert "aliases (*name) repeat more than 100000 values; write the values out" in str(problem)


def test_aliases_that_repeat_a_few_values_still_load() -> None:
    doc = parse_yaml("base: &base {target: handoff}\nrules: [{then: *base}, {then: *base}]\n", "f.yaml")
    assert doc.data["rules"] == [{"then": {"target": "handoff"}}, {"then": {"target": "handoff"}}]


@pytest.mark.parametrize(
    ("source", "offset", "says"),
    [
        ("a == 'x", 5, "unclosed ' quote; add the closing '"),
        ("a = 'x'", 2, "'=' is not an operator; compare with =="),
        ("contains(a, b", 13, "the expression ends too early"),
        ("a && && b", 5, "unexpected '&&'"),
        ("(a == b))", 8, "unexpected ')': it closes no ("),
        ("a || lenght(b) > `1`", 5, "unknown function lenght(); did you mean length()?"),
        ("a && contains(b)", 5, "contains() takes 2 argument(s), got 1"),
        ("not_null()", 0, "not_null() takes at least 1 argument(s), got 0"),
    ],
)
def test_expression_errors_are_located_and_say_what_to_do(source: str, offset: int, says: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_expression(source)
    assert caught.value.offset == offset
    assert says in str(caught.value)


@pytest.mark.filterwarnings("ignore:deprecated string literal syntax:PendingDeprecationWarning")
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a == true", [(5, "true here is a field named 'true', not the JSON value; write `true`")]),
        ("a.null", []),
        (
            'a.status == "active"',
            [(12, "\"active\" in double quotes is a field name, not text; for the text write 'active'")],
        ),
        ('"x-y".z != b && "k" == c', [(16, '"k" in double quotes is a field name')]),
        ("a == `yes`", [(5, "`yes` is not JSON, so it is read as the string 'yes'")]),
        ("a == `\"yes\"` && b == 'no'", []),
        ("!contains(a.list, b)", [(1, "contains() fails (INTERNAL_ERROR) when a.list is missing or null")]),
        ("!contains(a.list || `[]`, b)", []),
        ("starts_with(a.body, 'x')", [(0, "write a.body || ''")]),
        ("e164(a.from) == b", []),
    ],
)
def test_lint_finds_valid_but_suspicious_expressions(source: str, expected: list[tuple[int, str]]) -> None:
    found = lint_expression(compile_expression(source))
    assert [offset for offset, _ in found] == [offset for offset, _ in expected]
    for (_, message), (_, fragment) in zip(found, expected, strict=True):
        assert fragment in message


LOCKED_REPLY = (
    '      reply: "I\'m processing your previous message. Please wait for my response before sending more."\n'
)


def test_an_error_codes_default_reply_is_given_to_rules_without_one(tmp_path: Path) -> None:
    from engine.rules import run_tests

    lock_rules = "rules/30_conversation_lock.yaml"
    pipeline, rules = tree(tmp_path, {lock_rules: [(LOCKED_REPLY, "")]})
    config = load_config(pipeline, rules, ENV)
    [rule] = config.rulesets["conversation_lock"].rules
    assert rule.then.reply == "I'm processing your previous message. Please wait for my response before sending more."
    # The inline test that expects the holding reply passes on the default (what `--check` runs).
    assert run_tests(config.rulesets["conversation_lock"]) == []

    pipeline, rules = tree(tmp_path / "own", {lock_rules: [(LOCKED_REPLY, '      reply: "Hold on"\n')]})
    [rule] = load_config(pipeline, rules, ENV).rulesets["conversation_lock"].rules
    assert rule.then.reply == "Hold on"


def test_a_default_reply_must_be_text(tmp_path: Path) -> None:
    pipeline, rules = tree(
        tmp_path,
        {"pipelines/twilio_inbound.yaml": [("    reply: \"I'm processing", "    reply: [\"I'm processing")]},
    )
    text = pipeline.read_text().replace('sending more."\n', 'sending more."]\n', 1)
    pipeline.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(pipeline, rules, ENV)
    [problem] = caught.value.problems
    assert located([problem]) == [where(pipeline, "[\"I'm processing")]
