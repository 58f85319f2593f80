"""Stored numbers a float cannot hold: rules read the float a rule test's literal gives; JSON text keeps every digit."""

from __future__ import annotations

import copy
import json
import pickle
from decimal import Decimal

from engine.expressions import compile_expression
from steps.support import ExactFloat, json_safe, json_text

LONG = Decimal("12345678901234567890.123")


def search(expression: str, data: object) -> object:
    return compile_expression(expression).search(data)


def test_rules_read_a_long_number_as_a_number_equal_to_its_literal():
    item = json_safe({"balance": LONG, "scores": {LONG, Decimal("0.5")}, "nested": {"x": [LONG]}})

    assert search("type(balance)", item) == "number"
    assert search("balance == `12345678901234567890.123`", item) is True
    assert search("balance > `1.2e19`", item) is True
    assert search("max(scores)", item) == float(LONG)
    assert search("abs(nested.x[0])", item) == float(LONG)


def test_json_text_writes_every_digit_and_plain_floats_as_before():
    item = json_safe({"a": LONG, "b": [Decimal("0.7"), Decimal("1E-129"), Decimal("-0"), Decimal("1E+125")]})

    assert type(item["a"]) is ExactFloat and type(item["b"][0]) is float
    text = json_text(item, separators=(",", ":"))
    assert text == '{"a":12345678901234567890.123,"b":[0.7,1e-129,0,1' + "0" * 125 + "]}"
    assert json.loads(text, parse_float=Decimal)["a"] == LONG
    assert json_text({"plain": 0.5}) == json.dumps({"plain": 0.5})


def test_an_exact_number_survives_copies():
    [number] = json_safe([LONG])

    assert pickle.loads(pickle.dumps(number)).exact == LONG
    assert copy.deepcopy(number).exact == LONG


def test_json_text_looks_for_exact_numbers_once_per_map_and_list_not_once_per_value(monkeypatch):
    """Defect: json_text looked for an ExactFloat with a call (and a generator) for every value of the document, each
    text and number too: a dry-run record of an event that tried 500 rules, each with the values it read, took 0.47 ms
    to look through, more than json.dumps takes to write it (0.36 ms). A text, number, true, false or null is now
    passed over where it lies; only maps and lists are looked into (0.18 ms)."""
    import steps.support

    look = steps.support.has_exact
    calls = []

    def counted(value):
        calls.append(value)
        return look(value)

    monkeypatch.setattr(steps.support, "has_exact", counted)
    tried = [
        {"ruleset": "routing", "rule": f"keyword_{i}", "matched": False, "inputs": {"request.body": "hi", "n": 1.5}}
        for i in range(500)
    ]
    record = {"source": "events.jsonl#0", "raised": False, "status_code": 200, "target": None, "rules": tried}
    assert json_text(record) == json.dumps(record)
    # The record, its list of rules tried, and each rule's map and inputs: 2 + 2 x 500 maps and lists.
    assert len(calls) == 2 + 2 * 500
    exact = json_safe({"rules": [*tried, {"inputs": {"balance": [LONG]}}]})
    assert json_text(exact).endswith('{"inputs": {"balance": [12345678901234567890.123]}}]}')
