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
