"""Plain field paths (``route.lock``) are evaluated by dict lookups: always what JMESPath itself gives."""

from __future__ import annotations

from typing import Any

import jmespath
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.expressions import compile_expression

NAMES = st.sampled_from(["a", "b", "lock", "route"])
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3), st.just([]), st.just({}))
DOCUMENTS = st.recursive(
    LEAVES,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(NAMES, children, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(NAMES, min_size=1, max_size=4), st.dictionaries(NAMES, DOCUMENTS, max_size=4))
def test_a_plain_path_reads_what_jmespath_reads(names: list[str], document: dict[str, Any]) -> None:
    source = ".".join(names)
    expression = compile_expression(source)
    assert expression.search(document) == jmespath.search(source, document)
    assert expression.test(document) == compile_expression(f"!!({source})").test(document)


def test_only_plain_paths_take_the_lookup_route() -> None:
    route = {"route": {"lock": [1, 2]}}
    for source, expected in [("route.lock[0]", 1), ("route.lock | length(@)", 2), ("route.lock == `[1, 2]`", True)]:
        assert compile_expression(source).search(route) == expected
    assert compile_expression('"route"."lock"').search(route) == [1, 2]


SHIPPED_SHAPES = [
    "conversation.project_status != 'active'",
    "!contains(conversation.allowed_channels || `[]`, request.channel)",
    'contains(`["whatsapp", "sms"]`, request.channel)',
    "sort_by(items, &n)[0].n",
    "length(items[?n > `1`])",
    "max_by(items, &n).n",
]


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=4), st.sampled_from(["sms", "email"]))
def test_a_compiled_expression_evaluates_as_jmespath_does_from_several_threads(ns: list[int], channel: str) -> None:
    """Every search shares one interpreter: from concurrent threads each still gets jmespath's own answer."""
    from concurrent.futures import ThreadPoolExecutor

    document = {
        "conversation": {"project_status": "active", "allowed_channels": ["sms"]},
        "request": {"channel": channel},
        "items": [{"n": n} for n in ns],
    }
    expected = [jmespath.search(source, document) for source in SHIPPED_SHAPES]
    compiled = [compile_expression(source) for source in SHIPPED_SHAPES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: [e.search(document) for e in compiled for _ in range(20)][::20], range(8)))
    assert answers == [expected] * 8
