"""``--check`` at an operations team's scale: hundreds of rules, a thousand inline tests.

What it costs is counted in operations (rule-set evaluations), never timed: these machines are shared and noisy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from engine.rules import Evaluation, RuleSet
from tests.tools.test_check_broken import assemble
from tests.tools.test_check_yaml_mishaps import check, deployed_env
from tests.tools.test_rules_checks import ruleset
from tools import lint
from tools.lint import find_shadowed

ROUTING = "rules/40_routing.yaml"
__all__ = ["deployed_env"]  # the fixture, used by name


def grown_routing(root: Path, rules: int) -> int:
    """The shipped routing set with ``rules`` keyword rules above it, each with two inline tests; its test count."""
    routing = root / ROUTING
    text = routing.read_text(encoding="utf-8")
    added_rules = "".join(
        f"  - id: keyword_{i}\n    when: \"has_word(request.body || '', 'word{i}')\"\n    then: {{target: handoff}}\n"
        for i in range(rules)
    )
    added_tests = "".join(
        f"  - name: word{i} {how}\n"
        f"    given: {{request: {{channel: sms, body: '{body}'}}, conversation: {{}}}}\n"
        f"    expect: {{rule: keyword_{i}, target: handoff}}\n"
        for i in range(rules)
        for how, body in (("alone", f"word{i}"), ("in a sentence", f"please, word{i} now"))
    )
    text = text.replace("rules:\n", f"rules:\n{added_rules}", 1).replace("tests:\n", f"tests:\n{added_tests}", 1)
    routing.write_text(text, encoding="utf-8")
    return text.split("\ntests:\n", 1)[1].count("  - name: ")


@pytest.mark.usefixtures("deployed_env")
def test_check_evaluates_each_inline_test_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: --check evaluated every inline test of a set three times (its run, the routing check of a computed
    target, the untested-rule warning), each evaluation trying the rules above the deciding one: 500 rules and 1,000
    tests took 7.3 s against 0.43 s for the shipped configuration. Each test's evaluation is now made once and read by
    every check of the set."""
    root = assemble(tmp_path)
    tests = grown_routing(root, 40)
    evaluations: Counter[str] = Counter()
    evaluate = RuleSet.evaluate

    def counted(self: RuleSet, document: Mapping[str, Any], *, explain: bool = False) -> Evaluation:
        evaluations[self.name] += 1
        return evaluate(self, document, explain=explain)

    monkeypatch.setattr(RuleSet, "evaluate", counted)
    status, lines = check(root, monkeypatch, capsys)
    assert status == 0, lines
    assert not [line for line in lines if "routing.yaml" in line], lines
    assert evaluations["routing"] == tests


def _comparisons(monkeypatch: pytest.MonkeyPatch, rules: int) -> int:
    """How many condition terms the shadowed-rule search compares in a set of ``rules`` distinct keyword rules."""
    # Each keyword's rule for one tier, then (below it, so not shadowed) its rule for every tier.
    narrow = [f"has_word(request.body || '', 'word{i}') && conversation.tier == 'tier{i % 7}'" for i in range(rules)]
    conditions = [*narrow, *(f"has_word(request.body || '', 'word{i}')" for i in range(rules))]
    calls = 0
    covers = lint._covers

    def counted(broader: frozenset[Any], term: frozenset[Any]) -> bool:
        nonlocal calls
        calls += 1
        return covers(broader, term)

    monkeypatch.setattr(lint, "_covers", counted)
    assert find_shadowed(ruleset(*conditions, "request.channel == 'sms'")) == []
    return calls


def test_the_shadowed_rule_search_grows_with_the_rules_not_their_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect: whether a rule can never match was found by comparing its condition with every earlier rule's, so a
    set of 4N rules cost 16 times a set of N (126,764 comparisons for 500 rules, 1.3 s of --check under a profiler).
    Only the earlier conditions that could cover it (all they require is something it requires, or implies) are now
    compared: four times the rules, about four times the comparisons."""
    small, large = _comparisons(monkeypatch, 100), _comparisons(monkeypatch, 400)
    assert small > 0 and large <= 6 * small, (small, large)
