"""Business-rule changes an operations person makes in rules/*.yaml alone, following docs/rules-guide.md.

Each change is made in a copy of the shipped configuration, with its inline tests, and ``--check`` must tell
what the change does at run time: a condition that would fail (INTERNAL_ERROR) on a message the inline tests do
not show is warned about, and a failing test's advice is advice that fixes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.shipped import pipeline_paths
from tests.tools.test_check_broken import assemble
from tests.tools.test_check_yaml_mishaps import check, deployed_env, line_of

ROUTING = "rules/40_routing.yaml"
__all__ = ["deployed_env"]  # the fixture, used by name


def add_routing_rule(root: Path, rule: str, tests: str) -> Path:
    """The shipped routing set with ``rule`` first and ``tests`` first under tests: (YAML, indented as there)."""
    routing = root / ROUTING
    text = routing.read_text(encoding="utf-8")
    text = text.replace("rules:\n", f"rules:\n{rule}", 1).replace("tests:\n", f"tests:\n{tests}", 1)
    routing.write_text(text, encoding="utf-8")
    return routing


@pytest.mark.usefixtures("deployed_env")
def test_a_time_function_reading_a_conversation_field_that_can_be_missing_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: ``hour(conversation.created_at, …)`` fails the condition (INTERNAL_ERROR) for a conversation without
    created_at, as contains(null, …) does, yet --check said nothing where the rules guide promises a warning about a
    function reading a field that could be null: the time functions take null (to name it in their error), which the
    check read as "null is fine". ``request.received_at``, which every request has, stays unwarned."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    # Every case of the set is now written at noon to a conversation with a created_at, as the change's author would.
    noon = 'received_at: "2026-11-25T12:00:00Z"}'
    morning = 'conversation: {created_at: "2026-11-25T09:00:00Z", '
    text = routing.read_text(encoding="utf-8").replace("conversation: {", morning)
    for channel in ("whatsapp", "sms", "email"):
        text = text.replace(f"request: {{channel: {channel}}}", f"request: {{channel: {channel}, {noon}")
    routing.write_text(text, encoding="utf-8")
    add_routing_rule(
        root,
        "  - id: evening_conversation\n"
        "    when: \"hour(conversation.created_at, 'Europe/London') >= `18` && "
        "hour(request.received_at, 'Europe/London') >= `18`\"\n"
        "    then: {target: handoff}\n",
        "  - name: a conversation started in the evening, written to in the evening\n"
        "    given:\n"
        '      request: {channel: whatsapp, received_at: "2026-11-25T19:00:00Z"}\n'
        '      conversation: {created_at: "2026-11-25T18:30:00Z"}\n'
        "    expect: {rule: evening_conversation, target: handoff}\n"
        "  - name: a conversation started in the evening, written to at noon\n"
        "    given:\n"
        f"      request: {{channel: whatsapp, {noon}\n"
        '      conversation: {created_at: "2026-11-25T18:30:00Z"}\n'
        "    expect: {rule: channel_queue, target: whatsapp}\n",
    )

    status, out = check(tmp_path, monkeypatch, capsys)

    line = line_of(routing, "hour(conversation.created_at")
    column = len('    when: "') + 1
    assert out == [
        f"{ROUTING}:{line}:{column}: warning: hour() fails (INTERNAL_ERROR) when conversation.created_at is missing or "
        "null; if it can be, write conversation.created_at && hour(…)"
    ]
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_case_without_the_time_an_out_of_hours_rule_reads_is_told_to_give_it_not_a_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: an out-of-hours rule added above the shipped routing rules fails their cases, which give no
    request.received_at, and each failure advised "give it a default, e.g. x || `[]`": a list is no time (the
    condition then fails on the list), and every request has the time, so the fix is to give it in the case."""
    root = assemble(tmp_path)
    add_routing_rule(
        root,
        "  - id: out_of_hours\n"
        "    when: \"hhmm(request.received_at, 'Europe/London') >= `1730`\"\n"
        "    then: {target: handoff}\n",
        "  - name: out of hours goes to a person\n"
        '    given: {request: {channel: sms, received_at: "2026-11-25T18:00:00Z"}, conversation: {}}\n'
        "    expect: {rule: out_of_hours, target: handoff}\n",
    )

    status, out = check(root, monkeypatch, capsys)

    failures = [line for line in out if "inline test 'whatsapp goes to its queue'" in line]
    assert len(failures) == 1, out
    assert "x || `[]`" not in failures[0]
    assert failures[0].endswith(
        "; the case gives no request.received_at, which every request has: give it in the case's given, "
        'quoted (received_at: "2026-11-25T12:00:00Z")'
    ), failures[0]
    assert status == 1


@pytest.mark.usefixtures("deployed_env")
def test_a_keyword_rule_failing_on_a_missing_text_is_told_to_default_it_to_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: lower(request.body) failing on a case without a body advised "x || `[]`", which fails lower() too
    (a list is no text); the default that fits is ''."""
    root = assemble(tmp_path)
    add_routing_rule(
        root,
        "  - id: stop_word\n    when: \"lower(request.body) == 'stop'\"\n    then: {target: handoff}\n",
        "  - name: stop goes to a person\n"
        "    given: {request: {channel: sms, body: STOP}, conversation: {}}\n"
        "    expect: {rule: stop_word, target: handoff}\n",
    )

    status, out = check(root, monkeypatch, capsys)

    failures = [line for line in out if "inline test 'whatsapp goes to its queue'" in line]
    assert len(failures) == 1, out
    assert failures[0].endswith(
        "; a value it reads is missing or null here: give it a default of its type (x || '' for text), or test it "
        "first (x && …)"
    ), failures[0]
    assert status == 1


@pytest.mark.usefixtures("deployed_env")
def test_a_rule_added_below_the_channel_queue_catch_all_is_reported_as_never_matching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: the shipped routing set ends with channel_queue, ``contains(`["whatsapp", "sms"]`, request.channel)``;
    a rule appended below it for SMS can never match, yet --check only said no inline test decides it, where the
    rules guide promises a warning about a rule an earlier, broader one always beats: a literal list's contains()
    was compared as written, not as the channel being one of the list's texts."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    text = routing.read_text(encoding="utf-8")
    appended = (
        "  - id: sms_help_to_a_person\n"
        "    when: \"request.channel == 'sms' && has_word(request.body || '', 'help')\"\n"
        "    then: {target: handoff}\n"
    )
    routing.write_text(text.replace("tests:\n", appended + "tests:\n", 1), encoding="utf-8")

    status, out = check(root, monkeypatch, capsys)

    line = line_of(routing, "request.channel == 'sms' && has_word")
    catch_all = line_of(routing, 'contains(`["whatsapp"')
    assert out == [
        f"{ROUTING}:{line}:12: warning: rule 'sms_help_to_a_person' can never match: earlier rule 'channel_queue' "
        f"(line {catch_all}) has a broader condition (true whenever this one is) and wins first; remove this rule, "
        "or move it above 'channel_queue' if it should win"
    ]
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_computed_target_the_pipeline_does_not_have_fails_the_case_as_it_fails_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: routing gold conversations to a 'priority' target with target_from, where the pipeline has no such
    target, passed its inline test (exit 0) while rules.route ends every such event ROUTING_ERROR (the message
    lost); the case is now decided as the event is: ROUTING_ERROR, no target, and the failure says why."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    text = routing.read_text(encoding="utf-8").replace(
        "then: {target_from: request.channel}",
        "then: {target_from: \"conversation.tier == 'gold' && 'priority' || request.channel\"}",
        1,
    )
    text = text.replace(
        "tests:\n",
        "tests:\n"
        "  - name: a gold conversation goes to the priority queue\n"
        "    given: {request: {channel: whatsapp}, conversation: {tier: gold}}\n"
        "    expect: {rule: channel_queue}\n",
        1,
    )
    routing.write_text(text, encoding="utf-8")

    status, out = check(root, monkeypatch, capsys)

    line = line_of(routing, "expect: {rule: channel_queue}")
    catch_all = line_of(routing, 'contains(`["whatsapp"')
    assert out == [
        f"{ROUTING}:{line}:13: inline test 'a gold conversation goes to the priority queue' of rule set 'routing' "
        "failed: expected error null, got 'ROUTING_ERROR'; decided by rule 'channel_queue' (line "
        f"{catch_all}); its target_from gives 'priority' here, which is not a "
        "target of pipelines/twilio_inbound.yaml (handoff, sms, whatsapp): rules.route ends the event ROUTING_ERROR"
    ]
    assert status == 1

    # Without the computed target the case passes, as the event goes to its channel's queue.
    routing.write_text(text.replace("{tier: gold}", "{tier: silver}"), encoding="utf-8")
    assert check(root, monkeypatch, capsys) == (0, [])


STOP_RULE = (
    "  - id: stop_to_a_person\n"
    "    when: \"matches(request.body || '', '(?i)^(stop|unsubscribe){}')\"\n"
    "    then: {{target: handoff}}\n"
)
STOP_TEST = (
    "  - name: stop goes to a person\n"
    "    given: {request: {channel: sms, body: STOP please}, conversation: {}}\n"
    "    expect: {rule: stop_to_a_person, target: handoff}\n"
)


@pytest.mark.usefixtures("deployed_env")
def test_a_word_boundary_written_in_double_quotes_is_reported_as_the_backspace_yaml_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    r"""Defect: the guide's pattern ``'(?i)^(stop|unsubscribe)\b'``, in the double quotes the guide asks a condition
    to be written in, is read by YAML as ending with a backspace character: the rule never matches "STOP please", and
    --check named no cause (nor any at all without a case); it now says where, and that the backslash is doubled."""
    root = assemble(tmp_path)
    routing = add_routing_rule(root, STOP_RULE.format("\\b"), STOP_TEST)
    line = line_of(routing, "(stop|unsubscribe)")
    column = routing.read_text(encoding="utf-8").splitlines()[line - 1].index("\\b") + 1

    status, out = check(root, monkeypatch, capsys)

    assert (
        f"{ROUTING}:{line}:{column}: warning: in double quotes YAML reads \\b as a backspace (an invisible control "
        "character), so the condition holds one where a regular expression's \\b (a word's edge) was meant; write "
        "the backslash twice: \\\\b"
    ) in out, out
    assert status == 1  # the case shows it too

    # Written as the warning says, the rule decides as meant.
    routing.write_text(routing.read_text(encoding="utf-8").replace("\\b')", "\\\\b')"), encoding="utf-8")
    assert check(root, monkeypatch, capsys) == (0, [])


@pytest.mark.usefixtures("deployed_env")
@pytest.mark.parametrize("escape", ["\\s", "\\d", "\\w", "\\W"])
def test_a_pattern_class_written_in_double_quotes_is_refused_with_the_fix(
    escape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    r"""Defect: ``'(?i)^\s*stop'`` in a double-quoted condition was refused as "invalid YAML: found unknown escape
    character", with no fix: YAML's double quotes take \ as an escape, and the pattern's backslash is written twice."""
    root = assemble(tmp_path)
    routing = add_routing_rule(root, STOP_RULE.format(escape), STOP_TEST)
    line = line_of(routing, "(stop|unsubscribe)")
    column = routing.read_text(encoding="utf-8").splitlines()[line - 1].index(escape) + 1

    status, out = check(root, monkeypatch, capsys)

    assert out == [
        f"{ROUTING}:{line}:{column}: invalid YAML: found unknown escape character; in double quotes YAML reads a "
        f"backslash as the start of an escape (\\n, \\t, \\\"): write a regular expression's backslash twice "
        f"(\\{escape})"
    ]
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
def test_a_rule_for_one_status_below_the_rule_for_every_other_status_is_reported_as_never_matching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a paused project's own reply, added below project_inactive (status != 'active'), can never be given:
    every paused project is one whose status is not active. --check only said no inline test decides the new rule,
    as a condition was found broader only when it was written inside the narrower one."""
    root = assemble(tmp_path)
    project = root / "rules/10_project_status.yaml"
    paused = (
        "  - id: project_paused\n"
        "    when: \"conversation.project_status == 'paused'\"\n"
        "    then:\n"
        "      error: PROJECT_INACTIVE\n"
        '      reply: "This service is paused for the holidays."\n'
    )
    project.write_text(project.read_text(encoding="utf-8").replace("tests:\n", paused + "tests:\n", 1), "utf-8")

    status, out = check(root, monkeypatch, capsys)

    line, inactive = line_of(project, "== 'paused'"), line_of(project, "!= 'active'")
    assert out == [
        f"rules/10_project_status.yaml:{line}:12: warning: rule 'project_paused' can never match: earlier rule "
        f"'project_inactive' (line {inactive}) has a broader condition (true whenever this one is) and wins first; "
        "remove this rule, or move it above 'project_inactive' if it should win"
    ]
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_new_code_in_a_set_of_both_pipelines_names_both_pipelines_to_declare_it_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: an out-of-hours refusal with a new code, added to conversation_lock (a set of both pipelines), was
    refused naming pipelines/email_inbound.yaml alone as where to declare the code, and listing codes only that
    pipeline knows (EMAIL_REJECTED); declared there, the next check named the Twilio pipeline. Both are named now,
    with the codes both know."""
    root = assemble(tmp_path)
    lock = root / "rules/30_conversation_lock.yaml"
    closed = (
        "  - id: closed\n"
        "    when: \"hhmm(request.received_at, 'Europe/London') >= `1730`\"\n"
        "    then: {error: OUT_OF_HOURS, reply: We are closed.}\n"
    )
    lock.write_text(lock.read_text(encoding="utf-8").replace("tests:\n", closed + "tests:\n", 1), "utf-8")

    status, out = check(root, monkeypatch, capsys)

    line = line_of(lock, "OUT_OF_HOURS")
    column = lock.read_text(encoding="utf-8").splitlines()[line - 1].index("OUT_OF_HOURS") + 1
    assert len(out) == 1, out
    assert out[0].startswith(f"rules/30_conversation_lock.yaml:{line}:{column}: unknown error code 'OUT_OF_HOURS'; ")
    assert "EMAIL_REJECTED" not in out[0] and ", CONVERSATION_LOCKED, " in out[0]
    runs = [f"pipelines/{path.name}" for path in pipeline_paths() if "conversation_lock" in path.read_text("utf-8")]
    assert len(runs) >= 2
    assert out[0].endswith(
        f"; a new business code is declared under errors: in {' and '.join(runs)} (the set belongs to each)"
    ), out[0]
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
def test_a_time_of_day_written_with_its_leading_zero_is_refused_with_the_number_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: ``hhmm(…) < `0930``` (09:30 as people write it) passed --check with warnings, exit 0, and the advice to
    write '0930': JMESPath reads a backtick literal that is not JSON as text, so the condition compared a number with
    a text and failed every message that reached it (INTERNAL_ERROR). It is refused now, with the number to write."""
    root = assemble(tmp_path)
    routing = add_routing_rule(
        root,
        "  - id: before_opening\n"
        "    when: \"hhmm(request.received_at, 'Europe/London') < `0930`\"\n"
        "    then: {target: handoff}\n",
        "  - name: before opening goes to a person\n"
        '    given: {request: {channel: sms, received_at: "2026-11-25T08:00:00Z"}, conversation: {}}\n'
        "    expect: {rule: before_opening, target: handoff}\n",
    )
    line = line_of(routing, "`0930`")
    column = routing.read_text(encoding="utf-8").splitlines()[line - 1].index("`0930`") + 1

    status, out = check(root, monkeypatch, capsys)

    assert (
        f"{ROUTING}:{line}:{column}: `0930` is not JSON: a JSON number has no leading 0, so JMESPath reads the text "
        "'0930' (ordered against a number, it fails the condition); write `930`"
    ) in out, out
    assert not [finding for finding in out if f"{ROUTING}:{line}:{column}: warning:" in finding], out
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
def test_a_text_with_a_leading_zero_compared_equal_is_warned_about_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: ``conversation.store_code == `0930``` matches a store code saved as the text "0930" (JMESPath reads
    the literal as that text), and its inline tests pass, yet --check refused it (exit 2) with the advice to write
    `930`, a number no text equals: following it, the rule never matches again. Compared equal, the literal is
    warned about with both readings; ordered against a number (hhmm() < `0930`) it is still refused."""
    root = assemble(tmp_path)
    routing = add_routing_rule(
        root,
        '  - id: flagship_store\n    when: "conversation.store_code == `0930`"\n    then: {target: handoff}\n',
        "  - name: the flagship store goes to a person\n"
        '    given: {request: {channel: sms}, conversation: {store_code: "0930"}}\n'
        "    expect: {rule: flagship_store, target: handoff}\n",
    )
    line = line_of(routing, "`0930`")
    column = routing.read_text(encoding="utf-8").splitlines()[line - 1].index("`0930`") + 1

    status, out = check(root, monkeypatch, capsys)

    [finding] = [finding for finding in out if finding.startswith(f"{ROUTING}:{line}:")]
    assert finding.startswith(f"{ROUTING}:{line}:{column}: warning: `0930` is not JSON"), out
    assert "'0930' for the text" in finding and "`930` for the number" in finding, finding
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_several_keywords_given_to_has_word_as_a_list_are_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: ``has_word(request.body || '', ['agent', 'human'])`` (the guide calls its argument "words") fails every
    message that reaches it (has_word() takes one text), and --check only showed each inline case failing with
    "got a array where it needs string"; the condition is refused at the list, with the way to look for several."""
    root = assemble(tmp_path)
    routing = add_routing_rule(
        root,
        "  - id: asks_for_a_person\n"
        "    when: \"has_word(request.body || '', ['agent', 'human'])\"\n"
        "    then: {target: handoff}\n",
        "  - name: asking for an agent goes to a person\n"
        "    given: {request: {channel: sms, body: I want an AGENT}, conversation: {}}\n"
        "    expect: {rule: asks_for_a_person, target: handoff}\n",
    )
    line = line_of(routing, "['agent', 'human']")
    column = routing.read_text(encoding="utf-8").splitlines()[line - 1].index("['agent'") + 1

    status, out = check(root, monkeypatch, capsys)

    assert (
        f"{ROUTING}:{line}:{column}: has_word() takes text here, not a list, so the condition fails every event that "
        "reaches it; for several, join the calls: has_word(…, 'a') || has_word(…, 'b')"
    ) in out, out
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
def test_a_secret_named_on_the_signature_check_is_refused_as_the_setting_it_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: ``twilio.signature`` accepted ``secrets:`` and never read it (the key it checks with is the one the
    lookup step's ``secrets`` named), so an edit pointing it at another pattern passed --check and changed nothing.
    The step's parameters no longer have it: the edit is refused at its line, as any unknown setting is."""
    root = assemble(tmp_path)
    pipeline = root / "pipelines/twilio_inbound.yaml"
    text = pipeline.read_text(encoding="utf-8")
    edited = text.replace(
        "uses: twilio.signature\n    with:\n",
        "uses: twilio.signature\n    with:\n      secrets: sms_credentials\n",
        1,
    )
    assert edited != text
    pipeline.write_text(edited, encoding="utf-8")
    status, out = check(root, monkeypatch, capsys)
    assert status == 2
    line = line_of(pipeline, "uses: twilio.signature") + 2
    assert any(f"twilio_inbound.yaml:{line}" in entry and "secrets" in entry for entry in out), out
