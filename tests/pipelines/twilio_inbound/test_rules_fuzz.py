"""What ``--check`` accepts, the handler runs: a routing rule and a conversation of any shape the contract allows
are decided alike by the handler on moto and by ``pipeline-dryrun``, and never crash.

A condition that fails on the data (a type error the rules guide documents) ends the event with INTERNAL_ERROR
naming its rule; any other end that is neither a decision nor that is a defect.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runtime.dynamowire import from_wire, to_wire
from steps.support import json_safe
from tests.support.rulefuzz import (
    Decided,
    check,
    dryrun_decision,
    emptied,
    handler_decision,
    message_event,
    project,
    routing_rules,
    validation_rules,
    wire_item,
)


def decided_both_ways(
    world: Any, session: Any, root: Path, attributes: dict[str, Any], body: str = "Hello"
) -> tuple[Decided, Decided]:
    """A message (``body``) decided by the handler and by the dry-run, the conversation holding ``attributes``."""
    request = message_event(body)
    item = wire_item({name: to_wire(value) for name, value in attributes.items()})
    plain = {name: jsonable(json_safe(from_wire(value))) for name, value in item.items()}
    # In this process the dry-run's world may be moto's: it starts from empty tables too.
    emptied(world)
    dry = dryrun_decision(root, plain, request)
    return handler_decision(world, session, root, item, request), dry


def accepted(root: Path, when: str) -> bool:
    """True when ``--check`` accepts the project whose routing set starts with the rule ``when``."""
    project(root, routing_rules(when))
    return not check(root).errors


def test_a_rule_reading_an_attribute_with_an_empty_name_reads_null(world, boto_session, tmp_path):
    assert accepted(tmp_path, 'conversation."" == `1`')
    handled, dry = decided_both_ways(world, boto_session, tmp_path, {})

    assert handled.outcome == dry.outcome == "QUEUED"
    assert handled.decided_by == dry.decided_by
    assert handled.decided_by["routing"] == "channel_queue"


# Conditions from the rules guide's subset: field paths, comparisons, &&, ||, !, and its functions.
NAMES = ("tier", "tags", "score", "timezone", "created_at", "hand_off_to_human", "ai_config", "status", '"x-y"')
PATHS = st.sampled_from(
    [f"conversation.{name}" for name in NAMES]
    + ["conversation.ai_config.temperature", "conversation.tags[0]", "request.body", "request.channel"]
    + ["request.num_media", "request.received_at", "request.fields.Body", "request.media", "request.user_number"]
)
LITERALS = st.sampled_from(["`1`", "`0`", "`2.5`", "'vip'", "'5'", "`true`", "`null`", "`[]`", '`["vip"]`', "''"])
ZONES = st.sampled_from(["'Europe/London'", "'UTC'", "'Asia/Tokyo'", "conversation.timezone || 'UTC'"])
TIME_FUNCTIONS = st.sampled_from(["hour", "hhmm", "weekday", "local_date"])


@st.composite
def atoms(draw: st.DrawFn) -> str:
    path, literal, zone = draw(PATHS), draw(LITERALS), draw(ZONES)
    time = draw(st.sampled_from(["request.received_at", path]))
    return draw(
        st.sampled_from(
            [
                path,
                f"{path} == {literal}",
                f"{path} != {literal}",
                f"{path} > `2`",
                f"{path} <= {literal}",
                f"contains(to_array({path} || `[]`), {literal})",
                f"contains({path} || '', 'v')",
                f"has_word({path} || '', 'vip')",
                f"matches({path} || '', '(?i)^v')",
                f"starts_with({path} || '', 'v')",
                f"lower({path} || '') == 'vip'",
                f"length({path} || `[]`) > `1`",
                f"to_number({path} || '0') >= `2`",
                f"not_null({path}, 'x') == 'x'",
                f"type({path}) == 'string'",
                f"{draw(TIME_FUNCTIONS)}({time}, {zone}) == {literal}",
                f"hour({time}, {zone}) >= `9`",
                f"ceil(to_number({path} || '0')) > `1`",
                f"floor(abs(to_number(to_string({path})) || `0`)) == `2`",
                f"contains(keys({path} || `{{}}`), 'a')",
                f"contains(values(merge({path} || `{{}}`, `{{}}`)), {literal})",
                f"join(',', sort(to_array({path} || `[]`))) == 'vip'",
                f"max(to_array({path} || `[0]`)) >= `1`",
                f"contains(map(&role, to_array({path} || `[]`)), 'user')",
                f"e164({path} || '') == request.user_number",
                f"ends_with(upper({path} || ''), 'P')",
            ]
        )
    )


conditions = st.recursive(
    atoms(),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]}) && ({pair[1]})"),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]}) || ({pair[1]})"),
        inner.map(lambda condition: f"!({condition})"),
    ),
    max_leaves=3,
)

# Values as other services write them: numbers as text, times, zones, empty and nested values, null.
TEXTS = st.sampled_from(["vip", "VIP gold", "5", "2.5", "", "true", "2026-11-25T12:00:00Z", "Europe/London", "v"])
NUMBERS = st.one_of(st.integers(-3, 1_000_000_000), st.decimals("-1000", "1000", places=2).map(lambda d: d.normalize()))
SCALARS = st.one_of(st.none(), st.booleans(), TEXTS, NUMBERS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["temperature", "a"]), inner)),
    max_leaves=4,
)
BODIES = st.sampled_from(["Hello", "vip", "VIP gold", "5", "1e999", "nan", "-inf", "", "2026-11-25T12:00:00Z", "v"])
ITEMS = st.dictionaries(st.sampled_from([name.strip('"') for name in NAMES]), VALUES, max_size=4)
# Shapes only the table holds: sets, and numbers written as DynamoDB numbers in text.
WIRE_ONLY = st.sampled_from(
    [{"SS": ["vip", "gold"]}, {"NS": ["1", "2.5"]}, {"N": "5"}, {"L": []}, {"M": {}}, {"B": b"vip"}, {"NULL": True}]
)
WIRE_ITEMS = st.dictionaries(st.sampled_from([name.strip('"') for name in NAMES]), WIRE_ONLY, max_size=3)
FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_decided(decided: Decided) -> None:
    """A decision, or a condition that failed on the data, named by its rule (INTERNAL_ERROR); never a crash."""
    assert not decided.raised, decided
    assert decided.outcome in ("QUEUED", "HANDED_OFF", "INTERNAL_ERROR"), decided
    if decided.outcome == "INTERNAL_ERROR":
        assert decided.decided_by.get("routing") in ("fuzz", "channel_queue"), decided


def jsonable(value: Any) -> Any:
    """Decimals as the JSON numbers the dry-run's world file holds."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    return value


@FUZZ
@given(when=conditions, attributes=ITEMS, body=BODIES)
def test_an_accepted_rule_is_decided_alike_by_the_handler_and_the_dryrun(
    world, boto_session, tmp_path, when, attributes, body
):
    if not accepted(tmp_path, when):
        event("refused by --check")
        return
    handled, dry = decided_both_ways(world, boto_session, tmp_path, attributes, body)

    assert_decided(handled)
    assert (handled.outcome, handled.decided_by) == (dry.outcome, dry.decided_by)


@FUZZ
@given(when=conditions, attributes=WIRE_ITEMS)
def test_an_accepted_rule_never_crashes_on_the_shapes_only_the_table_holds(
    world, boto_session, tmp_path, when, attributes
):
    project(tmp_path, routing_rules(when))
    if check(tmp_path).errors:
        event("refused by --check")
        return
    assert_decided(handler_decision(world, boto_session, tmp_path, wire_item(attributes), message_event()))


CEIL_OF_BODY = "ceil(to_number(request.body || '0')) > `1`"


def test_a_number_too_large_for_ceil_fails_the_condition_naming_its_rule(world, boto_session, tmp_path):
    # to_number() reads the sender's "1e999" as infinity, which ceil() cannot round.
    assert accepted(tmp_path, CEIL_OF_BODY)
    handled, dry = decided_both_ways(world, boto_session, tmp_path, {}, body="1e999")

    assert handled == dry
    assert (handled.outcome, handled.decided_by["routing"], handled.raised) == ("INTERNAL_ERROR", "fuzz", False)


def test_an_inline_test_whose_number_is_not_a_number_is_run_by_check(tmp_path):
    tests = """tests:
  - name: not a number
    given: {request: {channel: whatsapp, body: nan}}
    expect: {rule: fuzz, error: INTERNAL_ERROR}
"""
    project(tmp_path, routing_rules(CEIL_OF_BODY) + tests)

    report = check(tmp_path)

    assert (report.errors, report.failures) == ([], ())
    assert "warning: no inline test is decided by rule 'fuzz'" not in "\n".join(map(str, report.findings))


@pytest.mark.parametrize("literal", ["`1e999`", "`NaN`", "`-Infinity`", '`{"a": [1, NaN]}`'])
def test_a_literal_json_has_no_number_for_is_refused_by_check(tmp_path, literal):
    # Python's JSON reader takes these (JSON has no infinity or NaN): ceil() of one fails every event.
    project(tmp_path, routing_rules(f"ceil(to_number(request.body || '0')) == {literal}"))

    (error,) = check(tmp_path).errors

    assert str(error).startswith(f"{tmp_path}/rules/40_routing.yaml:6:")
    assert f"{literal} is not JSON" in str(error)


@FUZZ
@given(when=conditions, attributes=ITEMS, body=BODIES)
def test_an_accepted_validation_rule_is_decided_alike_by_the_handler_and_the_dryrun(
    world, boto_session, tmp_path, when, attributes, body
):
    project(tmp_path, routing_rules("`false`"))
    project(tmp_path, validation_rules(when), "10_project_status.yaml")
    if check(tmp_path).errors:
        event("refused by --check")
        return
    handled, dry = decided_both_ways(world, boto_session, tmp_path, attributes, body)

    assert not handled.raised, handled
    assert handled.outcome in ("QUEUED", "PROJECT_INACTIVE", "INTERNAL_ERROR"), handled
    if handled.outcome == "INTERNAL_ERROR":
        assert handled.decided_by.get("project_status") == "fuzz", handled
    assert (handled.outcome, handled.decided_by) == (dry.outcome, dry.decided_by)
