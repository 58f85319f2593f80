"""Rule-set analysis for ``--check``: rules that can never match, and inline tests."""

from __future__ import annotations

import pytest

from engine.expressions import ExpressionError, compile_expression
from engine.rules import Decision, Rule, RuleSet, RuleTest, run_tests
from tools.lint import condition_terms, find_shadowed


def ruleset(*conditions: str, tests: tuple[RuleTest, ...] = ()) -> RuleSet:
    rules = tuple(
        Rule(f"r{index}", compile_expression(when), Decision(error="PROJECT_INACTIVE"), index=index)
        for index, when in enumerate(conditions)
    )
    return RuleSet("set", "validation", rules, file="rules/x.yaml", tests=tests)


def shadowed(*conditions: str) -> dict[str, tuple[list[str], str]]:
    return {s.rule.id: ([by.id for by in s.by], s.reason) for s in find_shadowed(ruleset(*conditions))}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a == b", "b == a"),
        ("a != b", "!(a == b)"),
        ("a > `1`", "`1` < a"),
        ("a && b", "b && (a)"),
        ("x == 'y'", 'x == `"y"`'),
        ("!(a || b)", "!a && !b"),
        ("!!a", "a"),
    ],
)
def test_equivalent_spellings_have_one_normal_form(first: str, second: str) -> None:
    assert condition_terms(compile_expression(first)) == condition_terms(compile_expression(second))


@pytest.mark.parametrize(("first", "second"), [("a", "b"), ("a == `1`", "a == `2`"), ("a < b", "b < a"), ("a", "!a")])
def test_different_conditions_stay_different(first: str, second: str) -> None:
    assert condition_terms(compile_expression(first)) != condition_terms(compile_expression(second))


def test_identical_condition_is_shadowed() -> None:
    assert shadowed("conversation.status == 'x'", "'x' == conversation.status") == {
        "r1": (["r0"], "the same condition")
    }


@pytest.mark.parametrize("always", ["`true`", "'yes'", "`[1]`", "`true` || a"])
def test_an_always_true_condition_shadows_everything_after_it(always: str) -> None:
    assert shadowed("a", always, "b", "c && d") == {
        "r2": (["r1"], "a condition that is always true"),
        "r3": (["r1"], "a condition that is always true"),
    }


def test_a_narrower_condition_after_a_broader_one_is_shadowed() -> None:
    assert shadowed("a.flag == `true`", "a.flag == `true` && b == 'sms'") == {
        "r1": (["r0"], "a broader condition (true whenever this one is)")
    }


def test_a_broader_condition_after_a_narrower_one_is_fine() -> None:
    assert shadowed("a && b", "a", "a || c") == {}


def test_earlier_rules_together_can_cover_a_later_one() -> None:
    assert shadowed("a", "b", "a || b && c") == {"r2": (["r0", "r1"], "conditions that together cover this one")}


@pytest.mark.parametrize("never", ["`false`", "`null`", "a && !a", "a == b && a != b", "''"])
def test_a_condition_that_is_never_true_is_reported(never: str) -> None:
    assert shadowed(never) == {"r0": ([], "its condition is never true")}


def test_functions_and_projections_are_compared_as_written() -> None:
    assert shadowed("contains(a || `[]`, b)", "contains(a || `[]`, c)", "length(items[?x]) > `0`") == {}
    assert shadowed("contains(a || `[]`, b)", "contains(a || `[]`, b) && d") == {
        "r1": (["r0"], "a broader condition (true whenever this one is)")
    }


def test_a_failing_condition_fails_the_case_and_names_the_rule() -> None:
    case = RuleTest("missing list", {"a": None, "b": "x"}, {"error": None}, 0)
    (failure,) = run_tests(ruleset("contains(a, b)", tests=(case,)))
    assert failure.rule == "r0"
    assert failure.keys == ("error",)
    assert failure.differences == ("expected error null, got 'INTERNAL_ERROR'",)
    assert failure.raised is not None and "contains() got a null where it needs array or string" in failure.raised


def test_a_case_may_expect_the_internal_error_of_an_unguarded_condition() -> None:
    case = RuleTest("documents the null pitfall", {"b": "x"}, {"rule": "r0", "error": "INTERNAL_ERROR"}, 0)
    assert run_tests(ruleset("contains(a, b)", tests=(case,))) == []


def test_only_the_expected_keys_are_compared() -> None:
    passing = RuleTest("rule only", {"a": True}, {"rule": "r0"}, 0)
    failing = RuleTest("wrong reply", {"a": True}, {"rule": "r0", "reply": "hi"}, 1)
    (failure,) = run_tests(ruleset("a", tests=(passing, failing)))
    assert failure.test is failing
    assert failure.differences == ("expected reply 'hi', got null",)


def test_a_failing_condition_never_quotes_the_value_it_read() -> None:
    expression = compile_expression("starts_with(conversation.recipient_tel, request.channel)")
    with pytest.raises(ExpressionError) as raised:
        expression.search({"conversation": {"recipient_tel": "+14155550123"}, "request": {"channel": 7}})
    assert "+14155550123" not in str(raised.value)
    assert "starts_with() got a number where it needs string" in str(raised.value)


TYPES = {
    "request.body": "string",
    "request.num_media": "number",
    "conversation.tier": "string",
    "conversation.hand_off_to_human": "boolean",
}


@pytest.mark.parametrize(
    ("condition", "offset", "says"),
    [
        ("request.body[0:4] == 'STOP'", 12, "request.body is text, and slicing text ([a:b]) is always null"),
        ("lower(request.body)[:2] == 'hi'", 19, "lower(request.body) is text, and slicing text"),
        ("'abc'[1:] == 'bc'", 5, "'abc' is text"),
        ("conversation.tier > 'gold'", 18, "comparing text with > gives null in the JMESPath standard"),
        ("`1` < request.num_media && request.body <= 'm'", 40, "comparing text with <= gives null"),
        ("request.num_media >= '1'", 18, "comparing text with a number by >= fails the condition (INTERNAL_ERROR)"),
        ("conversation.tier > `2`", 18, "comparing text with a number by >"),
        ("conversation.tier == `2`", 18, "text and a number are never equal, so == here is never true"),
        ("request.num_media != '0'", 18, "text and a number are never equal, so != here is always true"),
        ("'1' == request.num_media || request.body == 'x'", 4, "so == here is never true"),
        ("conversation.hand_off_to_human == 'true'", 31, "text and true/false are never equal, so == here"),
        ("request.num_media == `true`", 18, "a number and true/false are never equal"),
        ("conversation.hand_off_to_human > `0`", 31, "true/false has no order, so > here is never true"),
        ("conversation.x >= `true`", 15, "true/false has no order, so >= here is never true"),
    ],
)
def test_parts_that_can_only_be_null_or_compare_text_are_found(condition: str, offset: int, says: str) -> None:
    from tools.lint import lint_expression

    found = [(at, message) for at, message in lint_expression(compile_expression(condition), TYPES) if says in message]
    assert [at for at, _ in found] == [offset]


@pytest.mark.parametrize(
    "condition",
    [
        "conversation.messages[-2:] == `[]`",
        "request.num_media > `0`",
        "request.unknown[0:2]",
        "a > b",
        "request.num_media == `0` && request.body != 'x'",
        "to_string(request.num_media) == '0'",
        "request.unknown == '1'",
        "conversation.hand_off_to_human == `true`",
    ],
)
def test_lists_numbers_and_values_of_unknown_type_are_left_alone(condition: str) -> None:
    from tools.lint import lint_expression

    assert not [m for _, m in lint_expression(compile_expression(condition), TYPES) if "text" in m]


def test_value_types_come_from_the_tests_given() -> None:
    from tools.lint import value_types

    given = [{"request": {"body": "hi", "num_media": 2, "flag": True}}, {"request": {"body": None, "x": 1.5}}]
    assert value_types(given) == {
        "request.body": "string",
        "request.num_media": "number",
        "request.flag": "boolean",
        "request.x": "number",
    }


@pytest.mark.parametrize(
    ("condition", "advice"),
    [
        ("weekday(request.received_at, conversation.tz) == 'monday'", "write conversation.tz || 'UTC'"),
        ("hhmm(request.received_at, conversation.tz) < `900`", "write conversation.tz || 'UTC'"),
        ("matches(request.body || '', conversation.pattern)", "write conversation.pattern || '(?!)'"),
        ("has_word(request.body || '', conversation.word)", "write conversation.word && has_word(…)"),
        ("starts_with(request.body, 'STOP')", "write request.body || ''"),
    ],
)
def test_the_null_default_advised_is_one_the_function_accepts(condition: str, advice: str) -> None:
    """'' is no time zone and no word (the condition would fail) and, as a pattern, matches every text."""
    from tools.lint import lint_expression

    found = [message for _, message in lint_expression(compile_expression(condition)) if "missing or null" in message]
    assert len(found) == 1 and advice in found[0]
    for default in ("conversation.tz || ''", "conversation.pattern || ''", "conversation.word || ''"):
        assert default not in found[0]


def test_a_routing_set_that_decides_no_target_is_observed_as_the_routing_error_production_ends_with() -> None:
    """No match without a default, or a target_from that gives no text: production answers ROUTING_ERROR."""
    rules = (
        Rule("to_person", compile_expression("x == `1`"), Decision(target="handoff")),
        Rule("computed", compile_expression("x == `2`"), Decision(target_from=compile_expression("missing")), index=1),
    )
    cases = (
        RuleTest("nothing matches", {"x": 3}, {"rule": None, "error": "ROUTING_ERROR", "target": None}, 0),
        RuleTest("no computed target", {"x": 2}, {"rule": "computed", "error": "ROUTING_ERROR"}, 1),
        RuleTest("routed", {"x": 1}, {"error": None, "target": "handoff"}, 2),
    )
    assert run_tests(RuleSet("routing", "routing", rules, tests=cases)) == []
    with_default = RuleSet("routing", "routing", rules, default=Decision(target="handoff"), tests=cases[2:])
    assert run_tests(with_default._replace(tests=(RuleTest("default", {"x": 3}, {"error": None}, 0),))) == []


@pytest.mark.parametrize(
    ("condition", "offset", "says"),
    [
        (
            "weekday(request.received_at, 'Europe/London') == 'Monday'",
            0,
            "weekday() never gives 'Monday' (it gives monday … sunday, in lower case), so == here is never true",
        ),
        (
            'contains(`["Saturday", "sunday"]`, weekday(request.received_at, \'UTC\'))',
            35,
            "weekday() never gives 'Saturday'",
        ),
        (
            "local_date(request.received_at, 'UTC') != '25/12/2026'",
            0,
            "local_date() never gives '25/12/2026' (it gives a date as YYYY-MM-DD, such as 2026-12-25), so != here "
            "is always true",
        ),
    ],
)
def test_a_time_function_compared_with_a_value_it_never_gives_is_found(condition: str, offset: int, says: str) -> None:
    from tools.lint import lint_expression

    found = [
        (at, message) for at, message in lint_expression(compile_expression(condition)) if "never gives" in message
    ]
    assert len(found) == 1 and says in found[0][1]
    assert found[0][0] == offset


@pytest.mark.parametrize(
    "condition",
    [
        "weekday(request.received_at, 'UTC') == 'monday'",
        'contains(`["saturday", "sunday"]`, weekday(request.received_at, \'UTC\'))',
        "contains(`[\"2026-12-25\"]`, local_date(request.received_at, 'Europe/Madrid'))",
        "local_date(request.received_at, 'UTC') == conversation.holiday",
    ],
)
def test_a_time_function_compared_with_values_it_gives_is_left_alone(condition: str) -> None:
    from tools.lint import lint_expression

    assert not [m for _, m in lint_expression(compile_expression(condition)) if "never gives" in m]


@pytest.mark.parametrize(
    ("condition", "offset", "says"),
    [
        ("conversation.task_complete", 0, "conversation.task_complete is a number, and a number is true"),
        ("request.channel == 'sms' && conversation.task_complete", 28, "conversation.task_complete is a number"),
        ("!(conversation.task_complete)", 2, "0 included"),
        ("length(conversation.messages || `[]`)", 0, "length(…) gives a number, and a number is true"),
        ("hhmm(request.received_at, 'UTC')", 0, "hhmm(…) gives a number"),
        ("conversation.vip", 0, "conversation.vip is text ('false' in test 'vip off')"),
        ("conversation.vip || request.channel == 'sms'", 0, "any text but '' is true, 'false' included"),
        ("`0`", 0, "`0` is a number, and a number is true, 0 included, so this part is always true"),
        ("`0` && request.channel == 'sms'", 0, "to turn a rule off, write `false`"),
        ("'false'", 0, "'false' is text, and any text but '' is true, 'false' included, so this part is always true"),
    ],
)
def test_a_condition_true_for_every_number_or_for_false_written_as_text_is_found(
    condition: str, offset: int, says: str
) -> None:
    """JMESPath truthiness: 0 and the text 'false' are true, so such a `when` matches when its author means no."""
    from tools.lint import truthiness_mistakes

    types = {"conversation.task_complete": "number", "conversation.vip": "string", "request.channel": "string"}
    found = truthiness_mistakes(compile_expression(condition), types, {"conversation.vip": ("false", "vip off")})
    assert [at for at, message in found if says in message] == [offset], found


@pytest.mark.parametrize(
    "condition",
    [
        "conversation.task_complete == `1`",
        "request.body && starts_with(request.body, 'STOP')",
        "conversation.allowed_channels",
        "contains(conversation.tags || `[]`, 'vip')",
        "length(conversation.messages || `[]`) > `2`",
        "conversation.hand_off_to_human",
    ],
)
def test_conditions_that_test_booleans_or_guard_a_text_are_left_alone(condition: str) -> None:
    from tools.lint import truthiness_mistakes

    types = {
        "conversation.task_complete": "number",
        "request.body": "string",
        "conversation.hand_off_to_human": "boolean",
    }
    assert truthiness_mistakes(compile_expression(condition), types, {}) == []


def test_texts_that_read_as_true_or_false_come_from_the_tests_given() -> None:
    from tools.lint import flag_texts

    tests = [
        RuleTest("on", {"conversation": {"vip": "TRUE", "name": "Ann"}}, {}, 0),
        RuleTest("off", {"conversation": {"vip": "false", "task": "0"}}, {}, 1),
    ]
    assert flag_texts(tests) == {"conversation.vip": ("TRUE", "on"), "conversation.task": ("0", "off")}


@pytest.mark.parametrize(
    ("condition", "offset", "written"),
    [
        ("!conversation.hand_off_to_human", 0, "!(conversation.hand_off_to_human)"),
        ("request.channel == 'sms' && !conversation.vip.active", 28, "!(conversation.vip.active)"),
        ("!conversation.project_status == 'active'", 0, "!(conversation.project_status)"),
        ("!(!conversation.x)", 2, "!(conversation.x)"),
    ],
)
def test_a_negated_field_path_that_negates_only_its_first_name_is_found(
    condition: str, offset: int, written: str
) -> None:
    """JMESPath binds ! tighter than .: !a.b is (!a).b, a field of true/false, always null."""
    from tools.lint import negated_roots

    assert compile_expression("!conversation.hand_off_to_human").search({"conversation": {}}) is None

    [(at, message)] = negated_roots(compile_expression(condition))
    assert at == offset
    assert "! applies to the name before the first dot alone" in message and f"write {written}" in message


@pytest.mark.parametrize(
    ("condition", "found"),
    [
        (
            "!conversation.paused && !conversation.hand_off_to_human",
            [(0, "!(conversation.paused)"), (24, "!(conversation.hand_off_to_human)")],
        ),
        ("!conversation || !conversation.hand_off_to_human", [(17, "!(conversation.hand_off_to_human)")]),
    ],
)
def test_each_negated_field_path_is_found_at_its_own_bang(condition: str, found: list[tuple[int, str]]) -> None:
    """Two negations of the same name are two places: each finding points at its own !."""
    from tools.lint import negated_roots

    results = negated_roots(compile_expression(condition))
    assert [(at, message.rpartition("write ")[2]) for at, message in results] == found


@pytest.mark.parametrize("condition", ["!(conversation.x)", "!contains(a || `[]`, 'x')", "!a", "!a[0]", "a != b"])
def test_a_negation_of_a_whole_value_is_left_alone(condition: str) -> None:
    from tools.lint import negated_roots

    assert negated_roots(compile_expression(condition)) == []


GIVEN = (
    RuleTest("paused", {"conversation": {"project_status": "paused"}, "request": {"num_media": 2}}, {}, 0),
    RuleTest("tagged", {"conversation": {"profile": {"tier": "gold"}}}, {}, 1),
)


@pytest.mark.parametrize(
    ("condition", "offset", "says"),
    [
        (
            "conversation.projet_status == 'paused'",
            0,
            "conversation.projet_status (did you mean conversation.project_status",
        ),
        ("request.num_mdia > `1`", 0, "request.num_mdia (did you mean request.num_media"),
        ("request.channel == 'sms' && conversation.profile.teir == 'gold'", 28, "conversation.profile.tier"),
    ],
)
def test_a_field_no_inline_test_gives_beside_a_close_name_they_do_is_found(
    condition: str, offset: int, says: str
) -> None:
    """A misspelt attribute is always null: the rule silently never matches (or always does, negated)."""
    from tools.lint import given_paths, misspelt_paths

    found = misspelt_paths(compile_expression(condition), given_paths(GIVEN))
    assert [at for at, message in found if says in message and "always null" in message] == [offset], found


@pytest.mark.parametrize(
    "condition",
    [
        "conversation.project_status == 'paused'",
        "conversation.allowed_channels == `[]`",
        "request.num_media > `1` && request.body == 'x'",
        "conversation.profile.tier == 'gold'",
    ],
)
def test_fields_the_tests_give_or_that_resemble_none_of_them_are_left_alone(condition: str) -> None:
    from tools.lint import given_paths, misspelt_paths

    assert misspelt_paths(compile_expression(condition), given_paths(GIVEN)) == []


@pytest.mark.parametrize(
    "condition",
    [
        "contains(request.body || '', conversation.keyword)",
        "contains(request.body, conversation.keyword)",
        "contains(lower(request.body || ''), conversation.keyword)",
    ],
)
def test_contains_looking_in_a_text_for_a_value_that_can_be_null_is_found(condition: str) -> None:
    """contains(text, null) fails the condition; the guard is not || '' ('' is in every text)."""
    from tools.lint import lint_expression

    found = [m for _, m in lint_expression(compile_expression(condition), TYPES) if "conversation.keyword" in m]
    assert found == [
        "contains() fails (INTERNAL_ERROR) when conversation.keyword is missing or null, as it looks in a text; "
        "if it can be, write conversation.keyword && contains(…) ('' is in every text)"
    ]


@pytest.mark.parametrize(
    "condition",
    ["contains(conversation.tags || `[]`, conversation.keyword)", "contains(conversation.tags || `[]`, 'vip')"],
)
def test_contains_looking_in_a_list_for_null_is_left_alone(condition: str) -> None:
    from tools.lint import lint_expression

    assert [m for _, m in lint_expression(compile_expression(condition), TYPES) if "in a text" in m] == []


GUARDED = [
    # rules-guide.md's guard for the text contains() looks for, and the same guard for has_word().
    "conversation.keyword && contains(request.body || '', conversation.keyword)",
    "conversation.keyword && !has_word(request.body || '', conversation.keyword)",
    "request.channel == 'sms' && conversation.keyword && contains(request.body || '', conversation.keyword)",
    "!(conversation.keyword) || contains(request.body || '', conversation.keyword)",
]


@pytest.mark.parametrize("condition", GUARDED)
def test_a_field_guarded_before_the_call_that_reads_it_is_left_alone(condition: str) -> None:
    """The advice `keyword && contains(…)` taken: neither the call nor the guard is a mistake, whatever the keyword."""
    from tools.lint import lint_expression, truthiness_mistakes

    expression = compile_expression(condition)
    assert [m for _, m in lint_expression(expression, TYPES) if "conversation.keyword" in m] == []
    flags = {"conversation.keyword": ("YES", "the keyword passes")}
    assert truthiness_mistakes(expression, {**TYPES, "conversation.keyword": "string"}, flags) == []


@pytest.mark.parametrize(
    "condition",
    [
        "contains(request.body || '', conversation.keyword) && conversation.keyword",  # the call runs first
        "conversation.vip && contains(request.body || '', conversation.keyword)",  # another field guarded
        "conversation.keyword || contains(request.body || '', conversation.keyword)",  # runs when it is null
    ],
)
def test_a_guard_that_does_not_guard_the_call_leaves_its_warning(condition: str) -> None:
    from tools.lint import lint_expression

    found = [m for _, m in lint_expression(compile_expression(condition), TYPES) if "conversation.keyword" in m]
    assert len(found) == 1 and "contains() fails (INTERNAL_ERROR)" in found[0]


def test_a_flag_text_tested_alone_is_still_found_beside_a_guard() -> None:
    from tools.lint import truthiness_mistakes

    condition = "conversation.vip && contains(request.body || '', conversation.keyword)"
    types = {"conversation.vip": "string", "conversation.keyword": "string", "request.body": "string"}
    found = truthiness_mistakes(compile_expression(condition), types, {"conversation.vip": ("false", "vip off")})
    assert [at for at, _ in found] == [0]


def test_a_literal_list_of_texts_contains_the_value_as_its_equalities_do() -> None:
    """contains(`["a", "b"]`, x) is x == 'a' || x == 'b' (tests/tools/test_check_ops_edits.py: the catch-all)."""
    assert condition_terms(compile_expression('contains(`["a", "b"]`, x)')) == condition_terms(
        compile_expression("x == 'a' || 'b' == x")
    )
    assert condition_terms(compile_expression('!contains(`["a", "b"]`, x)')) == condition_terms(
        compile_expression("x != 'a' && x != 'b'")
    )
    assert shadowed('contains(`["a", "b"]`, x)', "x == 'b' && y") == {
        "r1": (["r0"], "a broader condition (true whenever this one is)")
    }
    # Not texts: contains() finds `1` for true, where == does not.
    assert shadowed("contains(`[1]`, x)", "x == `1` && y") == {}


def test_a_text_compared_equal_is_unequal_to_every_other_text() -> None:
    """x == 'paused' is true only where x != 'active' is (tests/tools/test_check_ops_edits.py: a paused reply)."""
    assert shadowed("a != 'active'", "a == 'paused' && b") == {
        "r1": (["r0"], "a broader condition (true whenever this one is)")
    }
    assert shadowed("!(a == 'active')", "a == 'paused'") == {
        "r1": (["r0"], "a broader condition (true whenever this one is)")
    }
    assert shadowed("a != 'active'", "a == 'active'", "b == 'x'", "b != 'x'", "c != 'x'", "d == 'y'") == {}
    # Not texts: numbers and true/false are left as written.
    assert shadowed("a != `1`", "a == `2`") == {}
