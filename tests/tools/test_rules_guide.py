"""The rules guide lists every function a condition may call, each with an example that compiles and calls it."""

from __future__ import annotations

import re
from pathlib import Path

from engine.expressions import compile_expression, function_calls, function_table

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "rules-guide.md"
CODE = re.compile(r"``\s(.+?)\s``|`([^`]+)`")


def function_rows() -> list[tuple[set[str], list[str]]]:
    """Each row of the guide's function tables: the functions it describes and its examples."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## Functions", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3 or cells[0] in ("function", "---"):
            continue
        names = set(re.findall(r"`([a-z0-9_]+)\(", cells[0]))
        examples = [(a or b).replace("\\|", "|") for a, b in CODE.findall(cells[2])]
        rows.append((names, examples))
    return rows


def test_every_function_is_listed_with_an_example_that_compiles_and_calls_it() -> None:
    rows = function_rows()
    listed = {name for names, _ in rows for name in names}
    assert listed == set(function_table())
    for names, examples in rows:
        assert examples, names
        called: set[str] = set()
        for example in examples:
            expression = compile_expression(example)
            called |= {node["value"] for node, _ in function_calls(example, expression.ast)}
        assert names <= called, (names, examples)
