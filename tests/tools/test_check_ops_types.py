"""A value written in the wrong type, in a condition and in the inline test made to pass it (docs/rules-guide.md).

An operations person who believes a field holds text writes ``== '0'`` and a case giving ``"0"``: the case passes,
and production, whose request (or conversation) holds a number there, never matches. ``--check`` knows the types the
parse steps give and the conversation types the pipeline declares, so it says so at the condition and at the case.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools.test_check_broken import assemble
from tests.tools.test_check_ops_edits import ROUTING, add_routing_rule
from tests.tools.test_check_yaml_mishaps import check, deployed_env, line_of

EMAIL_SCREENING = "rules/50_email_screening.yaml"
TEXT_ZERO, TEXT_TRUE = '"0"', '"true"'  # where a quoted value starts: its text is one column on
__all__ = ["deployed_env"]  # the fixture, used by name


def column_of(path: Path, line: int, text: str) -> int:
    return path.read_text(encoding="utf-8").splitlines()[line - 1].index(text) + 1


@pytest.mark.usefixtures("deployed_env")
def test_a_media_count_compared_as_text_with_a_case_giving_text_is_warned_at_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: ``request.num_media == '0'`` with a case giving ``num_media: "0"`` passed --check silently (exit 0,
    no warning), while twilio.parse gives num_media as a number: in production the rule never matched a message."""
    root = assemble(tmp_path)
    routing = add_routing_rule(
        root,
        "  - id: text_only_to_human\n    when: \"request.num_media == '0'\"\n    then: {target: handoff}\n",
        "  - name: a text without media goes to a person\n"
        '    given: {request: {channel: whatsapp, num_media: "0"}, conversation: {}}\n'
        "    expect: {rule: text_only_to_human, target: handoff}\n",
    )

    status, out = check(tmp_path, monkeypatch, capsys)

    rule = line_of(routing, "request.num_media == '0'")
    case = line_of(routing, 'num_media: "0"')
    rule_at, case_at = column_of(routing, rule, "=="), column_of(routing, case, TEXT_ZERO) + 1
    assert out == [
        f"{ROUTING}:{rule}:{rule_at}: warning: text and a number are never equal, so == here "
        "is never true; compare like with like: a number with a number (`1`, or to_number(…)), true/false with `true` "
        "or `false`, text with text ('1', or to_string(…))",
        f"{ROUTING}:{case}:{case_at}: warning: inline test 'a text without media goes to a "
        "person' gives request.num_media as text ('0'), but twilio.parse (step 'parse') gives it as a number: no "
        "request holds text there, so the case passes where production never would; write the value as a number",
    ]
    assert status == 0
    status, _ = check(tmp_path, monkeypatch, capsys, "--strict")
    assert status == 2


@pytest.mark.usefixtures("deployed_env")
def test_an_email_flag_and_a_conversation_flag_written_as_text_are_warned_at_the_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a case giving ``body_truncated: "true"`` (sendgrid.read gives true/false) or
    ``hand_off_to_human: "true"`` (the pipeline declares it BOOL) made ``== 'true'`` conditions pass their tests,
    and --check said nothing of the type (its warning about == between kinds is told the kinds by the tests)."""
    root = assemble(tmp_path)
    screening = root / EMAIL_SCREENING
    text = screening.read_text(encoding="utf-8")
    text = text.replace(
        "rules:\n",
        "rules:\n  - id: cut_short\n    when: \"request.body_truncated == 'true'\"\n"
        "    then: {error: EMAIL_REJECTED, message: the email is too long to read}\n",
        1,
    )
    text += (
        "  - name: an email cut short is refused\n"
        '    given: {request: {body_truncated: "true", sender_authenticated: true}}\n'
        "    expect: {rule: cut_short, error: EMAIL_REJECTED}\n"
    )
    screening.write_text(text, encoding="utf-8")
    routing = add_routing_rule(
        root,
        "  - id: human_flag_as_text\n    when: \"conversation.hand_off_to_human == 'true'\"\n"
        "    then: {target: handoff}\n",
        "  - name: a conversation a human took\n"
        '    given: {request: {channel: sms}, conversation: {hand_off_to_human: "true"}}\n'
        "    expect: {rule: human_flag_as_text, target: handoff}\n",
    )

    status, out = check(tmp_path, monkeypatch, capsys)

    email_case = line_of(screening, 'body_truncated: "true"')
    routing_case = line_of(routing, 'hand_off_to_human: "true"')
    email_at, routing_at = (
        column_of(screening, email_case, TEXT_TRUE) + 1,
        column_of(routing, routing_case, TEXT_TRUE) + 1,
    )
    assert (
        f"{EMAIL_SCREENING}:{email_case}:{email_at}: warning: inline test 'an "
        "email cut short is refused' gives request.body_truncated as text ('true'), but sendgrid.read (step "
        "'read') gives it as true/false: no request holds text there, so the case passes where production never "
        "would; write the value as true/false"
    ) in out
    assert (
        f"{ROUTING}:{routing_case}:{routing_at}: warning: inline test 'a conversation "
        "a human took' gives conversation.hand_off_to_human as text ('true'), but conversations.get (step "
        "'conversation') declares it true/false (types: BOOL): no conversation holds text there, so the case passes "
        "where production never would; write the value as true/false"
    ) in out
    condition = line_of(routing, "conversation.hand_off_to_human == 'true'")
    assert any(line.startswith(f"{ROUTING}:{condition}:") and "never equal" in line for line in out), out
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_rule_added_below_the_channel_queue_rule_is_said_never_to_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: a VIP rule appended at the end of rules/40_routing.yaml, below channel_queue (``contains(["whatsapp",
    "sms"], request.channel)``, true for every message of twilio_inbound, whose channels are whatsapp and sms), was
    only told "no inline test is decided by rule 'vip_to_human'; add a case": --check did not see that it can never
    match, and a case added as told fails. It now says which rule wins first and why."""
    root = assemble(tmp_path)
    routing = root / ROUTING
    vip = "  - id: vip_to_human\n    when: \"conversation.tier == 'vip'\"\n    then: {target: handoff}\n"
    routing.write_text(routing.read_text(encoding="utf-8").replace("tests:\n", f"{vip}tests:\n", 1), encoding="utf-8")

    status, out = check(tmp_path, monkeypatch, capsys)

    rule = line_of(routing, "conversation.tier == 'vip'")
    queue = line_of(routing, "request.channel)'")  # its condition
    assert out == [
        f"{ROUTING}:{rule}:12: warning: rule 'vip_to_human' can never match: earlier rule 'channel_queue' (line "
        f"{queue}) has a condition true for every message of pipelines/twilio_inbound.yaml (request.channel is always "
        "one of its channels: whatsapp, sms) and wins first; remove this rule, or move it above 'channel_queue' if it "
        "should win",
    ]
    assert status == 0


@pytest.mark.usefixtures("deployed_env")
def test_a_channel_the_pipeline_does_not_serve_compared_in_a_condition_is_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: ``request.channel == 'whatsap'`` (a typo of whatsapp) in a routing rule, with a case giving
    ``channel: whatsap``, passed --check silently (exit 0, no warning): no request of twilio_inbound has that channel
    (its channels: whatsapp, sms), so the rule never matched in production. ``'WhatsApp'`` likewise."""
    root = assemble(tmp_path)
    routing = add_routing_rule(
        root,
        "  - id: vip_on_whatsapp\n    when: \"request.channel == 'whatsap' && conversation.tier == 'vip'\"\n"
        "    then: {target: handoff}\n"
        "  - id: gold_on_whatsapp\n    when: \"conversation.tier == 'gold' && request.channel == 'WhatsApp'\"\n"
        "    then: {target: handoff}\n",
        "  - name: a vip on whatsapp goes to a person\n"
        "    given: {request: {channel: whatsap}, conversation: {tier: vip}}\n"
        "    expect: {rule: vip_on_whatsapp, target: handoff}\n"
        "  - name: a gold customer on whatsapp goes to a person\n"
        "    given: {request: {channel: WhatsApp}, conversation: {tier: gold}}\n"
        "    expect: {rule: gold_on_whatsapp, target: handoff}\n",
    )

    status, out = check(tmp_path, monkeypatch, capsys)

    vip, gold = line_of(routing, "'whatsap'"), line_of(routing, "'WhatsApp'")
    # Where the text starts, inside its quotes.
    vip_at, gold_at = column_of(routing, vip, "'whatsap'") + 1, column_of(routing, gold, "'WhatsApp'") + 1
    said = (
        "warning: request.channel is never {!r} in pipelines/twilio_inbound.yaml, whose channels are whatsapp, sms "
        "(the last segment of the path, as written there), so this comparison is never true; {}"
    )
    assert out == [
        f"{ROUTING}:{vip}:{vip_at}: " + said.format("whatsap", "did you mean 'whatsapp'?"),
        f"{ROUTING}:{gold}:{gold_at}: " + said.format("WhatsApp", "did you mean 'whatsapp'?"),
    ]
    assert status == 0
