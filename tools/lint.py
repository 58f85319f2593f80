"""Likely mistakes in configuration that still loads, for ``pipeline-dryrun --check`` (never on the Lambda's path).

- ``lint_expression``: valid JMESPath that probably does not say what its author meant (among them parts
  that can only be null, or compare text in a way the JMESPath standard does not);
- ``value_types``: the types inline tests give the values a condition reads (``request.body``: text);
- ``condition_terms``: a condition's normal form (an OR of ANDs of atoms);
- ``find_shadowed``: rules of a first-match set that can never match, because the condition is never
  true or earlier rules always win.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from engine.errors import closest
from engine.expressions import (
    Expression,
    argument_offset,
    expression_tokens,
    function_calls,
    function_table,
    is_truthy,
)
from engine.rules import Rule, RuleSet, RuleTest
from steps.functions import WEEKDAYS

__all__ = [
    "KIND_NAMES",
    "Domain",
    "Shadowed",
    "Terms",
    "condition_terms",
    "find_shadowed",
    "flag_texts",
    "given_paths",
    "lint_expression",
    "list_arguments",
    "misspelt_paths",
    "negated_roots",
    "non_json_literals",
    "truthiness_mistakes",
    "value_kind",
    "value_types",
]

_COMPARATORS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte"})
_ORDERING = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_EQUALITY = {"eq": ("==", "never true"), "ne": ("!=", "always true")}
KIND_NAMES = {"string": "text", "number": "a number", "boolean": "true/false"}
_GUARDS = {"array": "`[]`", "string": "''", "object": "`{}`", "number": "`0`"}
# Arguments '' does not guard: it is no time zone and no word (the condition fails) and, as a pattern, matches
# every text. None: no default fits, so the advice is to test the value first.
_TIME_FUNCTIONS = ("hour", "hhmm", "weekday", "local_date")
_ARGUMENT_GUARDS: dict[tuple[str, int], str | None] = {
    **{(name, 1): "'UTC'" for name in _TIME_FUNCTIONS},
    **{(name, 0): None for name in _TIME_FUNCTIONS},
    ("matches", 1): "'(?!)'",
    ("has_word", 1): None,
}
# Arguments whose signature takes null only for the function to refuse it by name ("got null where it needs a
# time"): null fails the condition there as a type error would.
_NULL_REFUSED = frozenset((name, 0) for name in _TIME_FUNCTIONS)
# Paths every event's document holds (every parse step gives the time a request was received, as text).
_ALWAYS_GIVEN = frozenset({"request.received_at"})
_GUARD_NOTES = {
    "'UTC'": " (or the zone to assume)",
    "'(?!)'": " (a pattern that matches nothing; '' matches every text)",
}
# What JMESPath's own functions return (registered functions declare it).
_RETURNS = {"to_string": "string", "join": "string", "type": "string", "to_number": "number", "length": "number"}


def _field_path(node: Mapping[str, Any]) -> str | None:
    """``a.b.c`` when the node is a plain field path, else None."""
    if node["type"] == "field":
        return str(node["value"])
    if node["type"] == "subexpression":
        parts = [_field_path(child) for child in node["children"]]
        return ".".join(part for part in parts if part) if all(parts) else None
    return None


def value_kind(value: Any) -> str | None:
    """``string``, ``number`` or ``boolean`` for a value of that kind (true is no number); None for another."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else None


def value_types(documents: Iterable[Any]) -> dict[str, str]:
    """The dotted paths holding text (``string``), a number or true/false in inline tests' ``given`` documents."""
    found: dict[str, str] = {}

    def visit(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                visit(inner, f"{path}.{key}" if path else str(key))
        elif (kind := value_kind(value)) is not None:
            found.setdefault(path, kind)

    for document in documents:
        visit(document, "")
    return found


def _walk(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for child in node.get("children", []):
        if isinstance(child, Mapping):
            yield from _walk(child)


def _kind(node: Mapping[str, Any], types: Mapping[str, str]) -> str | None:
    """``string``, ``number`` or ``boolean`` when a node's value is known (a literal, a function's result, a path)."""
    if node["type"] == "literal":
        return value_kind(node["value"])
    if node["type"] == "function_expression":
        returns = function_table().get(node["value"], {}).get("returns") or _RETURNS.get(node["value"])
        return str(returns) if returns else None
    path = _field_path(node)
    return types.get(path) if path else None


def _subject(source: str, tokens: list[dict[str, Any]], index: int) -> tuple[str | None, str | None]:
    """The text of what the token at ``index`` applies to, and its function name when it is a call."""
    end = index - 1
    if end < 0:
        return None, None
    start, name = end, None
    if tokens[end]["type"] == "rparen":
        depth = 0
        while start >= 0:
            depth += {"rparen": 1, "lparen": -1}.get(tokens[start]["type"], 0)
            if depth == 0:
                break
            start -= 1
        if start < 1 or tokens[start - 1]["type"] != "unquoted_identifier":
            return None, None
        start -= 1
        name = str(tokens[start]["value"])
    elif tokens[end]["type"] in ("unquoted_identifier", "quoted_identifier"):
        while start >= 2 and tokens[start - 1]["type"] == "dot" and "identifier" in tokens[start - 2]["type"]:
            start -= 2
    elif tokens[end]["type"] != "literal":
        return None, None
    stop = tokens[index]["start"]
    return source[tokens[start]["start"] : stop].strip(), name


def _is_text(subject: str, name: str | None, token: dict[str, Any], types: Mapping[str, str]) -> bool:
    if name is not None:
        return (function_table().get(name, {}).get("returns") or _RETURNS.get(name)) == "string"
    if token["type"] == "literal":
        return isinstance(token["value"], str)
    return types.get(subject) == "string"


def _text_slices(source: str, tokens: list[dict[str, Any]], types: Mapping[str, str]) -> list[tuple[int, str]]:
    """Slices of text (``request.body[0:4]``): always null in JMESPath."""
    found: list[tuple[int, str]] = []
    for index, token in enumerate(tokens):
        following = [t["type"] for t in tokens[index + 1 : index + 3]]
        if token["type"] != "lbracket" or "colon" not in following:
            continue
        subject, name = _subject(source, tokens, index)
        if subject and _is_text(subject, name, tokens[index - 1], types):
            message = (
                f"{subject} is text, and slicing text ([a:b]) is always null in JMESPath (slices take lists only); "
                f"write starts_with({subject}, 'ABC') or matches({subject}, '^ABC')"
            )
            found.append((token["start"], message))
    return found


def _comparisons(
    tokens: list[dict[str, Any]], tree: Mapping[str, Any], types: Mapping[str, str]
) -> Iterator[tuple[str, int, set[str | None]]]:
    """Each comparison by ==, !=, <, <=, > or >=: its operator, the operator's offset and the kinds it compares.

    The tree's comparators of one operator are walked in the order their tokens stand in the source.
    """
    offsets: dict[str, list[int]] = {}
    for token in tokens:
        if token["type"] in _ORDERING or token["type"] in _EQUALITY:
            offsets.setdefault(token["type"], []).append(token["start"])
    seen: dict[str, int] = {}
    for node in _walk(tree):
        if node["type"] != "comparator" or (node["value"] not in _ORDERING and node["value"] not in _EQUALITY):
            continue
        rank = seen[node["value"]] = seen.get(node["value"], -1) + 1
        found = offsets.get(node["value"], [])
        if rank < len(found):
            yield node["value"], found[rank], {_kind(child, types) for child in node["children"]}


def _unlike_equality(operator: str, kinds: set[str | None]) -> str | None:
    """Two known kinds (text, a number, true/false) compared by == or !=: never equal."""
    known = [kind for kind in KIND_NAMES if kind in kinds]
    if len(known) != 2 or None in kinds:
        return None
    symbol, verdict = _EQUALITY[operator]
    return (
        f"{KIND_NAMES[known[0]]} and {KIND_NAMES[known[1]]} are never equal, so {symbol} here is "
        f"{verdict}; compare like with like: a number with a number (`1`, or to_number(…)), true/false "
        "with `true` or `false`, text with text ('1', or to_string(…))"
    )


def _text_ordering(operator: str, kinds: set[str | None]) -> str | None:
    """Text ordered by <, <=, > or >=: with a number it fails the condition, with text it departs from JMESPath.

    True/false ordered gives null (JMESPath orders numbers and text only): the part is silently never true.
    """
    symbol = _ORDERING[operator]
    if "boolean" in kinds:
        return (
            f"true/false has no order, so {symbol} here is never true (JMESPath gives null, and the rule silently "
            "never matches); compare true/false with == `true` or == `false`"
        )
    if "string" not in kinds:
        return None
    if "number" in kinds:
        return (
            f"comparing text with a number by {symbol} fails the condition (INTERNAL_ERROR); turn the text "
            "into a number with to_number(…), or compare text with =="
        )
    return (
        f"comparing text with {symbol} gives null in the JMESPath standard (and on jmespath.org), while this "
        "engine compares it character by character ('10' < '9'); compare numbers (to_number(…)), times "
        "with hour(), hhmm() or local_date(), or text with == and starts_with()"
    )


def _typed_mistakes(source: str, tree: Mapping[str, Any], types: Mapping[str, str]) -> list[tuple[int, str]]:
    """Slices of text, text ordered, and values of two kinds compared for equality (``types``: ``value_types``)."""
    tokens = expression_tokens(source)
    found = _text_slices(source, tokens, types)
    for operator, offset, kinds in _comparisons(tokens, tree, types):
        check = _unlike_equality if operator in _EQUALITY else _text_ordering
        message = check(operator, kinds)
        if message is not None:
            found.append((offset, message))
    return found


_CONNECTIVES = frozenset({"and_expression", "or_expression", "not_expression"})
_FLAG_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "0", "1"})


def flag_texts(tests: Iterable[RuleTest]) -> dict[str, tuple[str, str]]:
    """The paths inline tests give a text that reads as true or false (``'false'``, ``'0'``): the text and its test."""
    found: dict[str, tuple[str, str]] = {}

    def visit(value: Any, path: str, test: str) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                visit(inner, f"{path}.{key}" if path else str(key), test)
        elif isinstance(value, str) and value.strip().lower() in _FLAG_WORDS:
            found.setdefault(path, (value, test))

    for test in tests:
        visit(test.given, "", test.name)
    return found


def _parts(node: Mapping[str, Any], joins: Collection[str]) -> Iterator[Mapping[str, Any]]:
    """The parts of ``node`` below the connectives ``joins`` (node types).

    ``_CONNECTIVES``: those whose truthiness decides it, through &&, || and !; ``and_expression``: those all true
    when it is; ``or_expression``: those all false when it is.
    """
    if node["type"] in joins:
        for child in node["children"]:
            yield from _parts(child, joins)
    else:
        yield node


def _path_offset(source: str, path: str) -> int:
    """Where the field path ``path`` (``a.b``) first starts in ``source`` as a path read from the top."""
    names, tokens = path.split("."), expression_tokens(source)
    for index, token in enumerate(tokens):
        run = tokens[index : index + 2 * len(names) - 1]
        if (index and tokens[index - 1]["type"] == "dot") or len(run) < 2 * len(names) - 1:
            continue
        if [t.get("value") for t in run[::2]] == names and all(t["type"] == "dot" for t in run[1::2]):
            return int(token["start"])
    return 0


def _literal_offset(source: str, node: Mapping[str, Any]) -> int:
    """Where the literal ``node`` is first written in ``source`` (as `…` JSON or '…' text), else 0."""
    for token in expression_tokens(source):
        if (
            token["type"] == "literal"
            and token["value"] == node["value"]
            and type(token["value"]) is type(node["value"])
        ):
            return int(token["start"])
    return 0


def _paths_read(node: Mapping[str, Any]) -> set[str]:
    """The whole field paths ``node`` reads (``a.b``, not its ``b``)."""
    path = _field_path(node)
    if path is not None:
        return {path}
    return {found for child in node.get("children", []) if isinstance(child, Mapping) for found in _paths_read(child)}


def _guards(tree: Mapping[str, Any]) -> tuple[dict[int, frozenset[str]], set[int]]:
    """The field paths known to be set where each node is evaluated (by ``id``), and the guards that set them.

    A guard is a part that tests a path the other side reads: ``a && f(a)``, ``!(a) || f(a)``.
    """
    known: dict[int, frozenset[str]] = {}
    guards: set[int] = set()

    def visit(node: Mapping[str, Any], held: frozenset[str]) -> None:
        known[id(node)] = held
        children = [child for child in node.get("children", []) if isinstance(child, Mapping)]
        if node["type"] in ("and_expression", "or_expression") and len(children) == 2:
            left, right = children
            if node["type"] == "and_expression":
                tests = [(part, _field_path(part)) for part in _parts(left, ("and_expression",))]
            else:
                negated = [
                    part["children"][0] for part in _parts(left, ("or_expression",)) if part["type"] == "not_expression"
                ]
                tests = [(part, _field_path(part)) for part in negated]
            read = _paths_read(right)
            tested = {path for _, path in tests if path is not None}
            guards.update(id(part) for part, path in tests if path is not None and path in read)
            visit(left, held)
            visit(right, held | tested)
            return
        for child in children:
            visit(child, held)

    visit(tree, frozenset())
    return known, guards


def truthiness_mistakes(
    expression: Expression, types: Mapping[str, str], flags: Mapping[str, tuple[str, str]]
) -> list[tuple[int, str]]:
    """Parts of a condition (a ``when``) that are true when their author means false, as ``(offset, message)``.

    JMESPath truthiness makes every number true, 0 included, and every text but '', 'false' included: a part
    that is a number (``types``, a function's result) or a text the inline tests write as true/false (``flags``,
    ``flag_texts``) decides nothing its author meant. ``lint_expression`` finds them too, given ``flags``.
    """
    calls = list(function_calls(expression.source, expression.ast))
    return _truthiness_mistakes(expression, types, flags, _guards(expression.ast)[1], calls)


def _truthiness_mistakes(
    expression: Expression,
    types: Mapping[str, str],
    flags: Mapping[str, tuple[str, str]],
    guards: Collection[int],
    function_offsets: Iterable[tuple[Mapping[str, Any], int]],
) -> list[tuple[int, str]]:
    source, found = expression.source, []
    calls = {id(node): offset for node, offset in function_offsets}
    for node in _parts(expression.ast, _CONNECTIVES):
        if id(node) in guards:  # a test that the field is set, for what reads it next (keyword && contains(…))
            continue
        path = _field_path(node)
        if node["type"] == "literal" and _kind(node, types) in ("number", "string") and node["value"] != "":
            at = _literal_offset(source, node)
            quote = source[at]
            written = source[at : source.find(quote, at + 1) + 1] if quote in "`'" else repr(node["value"])
            kind = (
                "a number, and a number is true, 0 included"
                if _kind(node, types) == "number"
                else "text, and any text but '' is true, 'false' included"
            )
            found.append((at, f"{written} is {kind}, so this part is always true; to turn a rule off, write `false`"))
            continue
        if node["type"] == "function_expression" and _kind(node, types) == "number":
            name = f"{node['value']}(…)"
            found.append((calls.get(id(node), 0), f"{name} gives a number, and a number is true even when it is 0, "))
        elif path and types.get(path) == "number":
            found.append((_path_offset(source, path), f"{path} is a number, and a number is true, 0 included, "))
        elif path and types.get(path) == "string" and path in flags:
            text, test = flags[path]
            message = f"{path} is text ({text!r} in test {test!r}), and any text but '' is true, 'false' included, "
            found.append((_path_offset(source, path), message))
        else:
            continue
        subject = path or name
        compared = f"{subject} == 'true'" if path in flags else f"{subject} > `0` or {subject} == `1`"
        found[-1] = (found[-1][0], found[-1][1] + f"so this part is true whenever it is present; write {compared}")
    return found


def negated_roots(expression: Expression) -> list[tuple[int, str]]:
    """``!a.b``, which JMESPath reads as ``(!a).b``: a field of true/false, always null (the part is never true).

    Each is ``(offset of its !, message)``; a condition holding one never decides what it says.
    """
    bangs = [token["start"] for token in expression_tokens(expression.source) if token["type"] == "not"]
    found: list[tuple[int, str]] = []
    # By identity: two negations of one name are equal nodes, at two places.
    negations = [id(node) for node in _walk(expression.ast) if node["type"] == "not_expression"]
    for parent in (node for node in _walk(expression.ast) if node["type"] == "subexpression"):
        first = parent["children"][0]
        if first["type"] != "not_expression":
            continue
        where = negations.index(id(first))
        path = ".".join(part for part in map(_field_path, [first["children"][0], *parent["children"][1:]]) if part)
        written = f"!({path})" if path else "!(…) around the whole path"
        message = (
            "! applies to the name before the first dot alone (JMESPath reads !a.b as (!a).b, a field of "
            f"true/false), so this is always null and never true; write {written}"
        )
        found.append((bangs[where] if where < len(bangs) else 0, message))
    return found


def _finite(value: Any) -> bool:
    """True when ``value`` holds no infinity or NaN (which JSON has no number for)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(map(_finite, value))
    if isinstance(value, dict):
        return all(map(_finite, value.values()))
    return True


def non_json_literals(expression: Expression) -> list[tuple[int, str]]:
    """Each `…` literal holding infinity, NaN (`1e999`, `NaN`) or a number with a leading 0 (`0930`): (offset, message).

    JSON has no such number: Python's JSON reader takes the first two, and ceil() or floor() of one fails every event
    that reaches it (no value equals NaN); JMESPath reads the last as text, never the number meant.
    """
    source, found = expression.source, []
    tokens = expression_tokens(source)
    for index, token in enumerate(tokens):
        if token["type"] == "literal" and not _finite(token["value"]):
            written = source[token["start"] : source.find("`", token["start"] + 1) + 1]
            message = (
                "is not JSON: JSON has no infinity or NaN (beyond 1.8e308 a number is infinity); write one in range"
            )
            found.append((token["start"], f"{written} {message}"))
        padded = _zero_padded(source, token)
        if padded is not None and _ordered(tokens, index):
            message = (
                f"`{padded}` is not JSON: a JSON number has no leading 0, so JMESPath reads the text '{padded}' "
                f"(ordered against a number, it fails the condition); write `{int(padded)}`"
            )
            found.append((token["start"], message))
    return found


_ORDERING_TOKENS = frozenset({"lt", "lte", "gt", "gte"})


def _ordered(tokens: Sequence[Mapping[str, Any]], index: int) -> bool:
    """Whether the literal at ``tokens[index]`` is ordered by ``<``, ``<=``, ``>`` or ``>=`` (a token beside it).

    Ordered, a literal read as text fails against a number; compared equal it may be the text meant (a code "0930").
    """
    beside = [tokens[at]["type"] for at in (index - 1, index + 1) if 0 <= at < len(tokens)]
    return any(kind in _ORDERING_TOKENS for kind in beside)


def list_arguments(expression: Expression) -> list[tuple[int, str]]:
    """Each list written as the argument of a function that refuses a list (``has_word(x, ['a', 'b'])``).

    Such a call fails every event that reaches it: (offset, message).
    """
    source, found = expression.source, []
    for node, offset in function_calls(source, expression.ast):
        signature = function_table()[node["value"]]["signature"]
        for index, argument in enumerate(node["children"]):
            listed = argument["type"] == "multi_select_list" or (
                argument["type"] == "literal" and isinstance(argument["value"], list)
            )
            types = signature[min(index, len(signature) - 1)].get("types", []) if signature else []
            if not listed or not types or any(kind == "any" or kind.startswith("array") for kind in types):
                continue
            name, needs = node["value"], " or ".join(KIND_NAMES.get(kind, kind) for kind in types)
            message = (
                f"{name}() takes {needs} here, not a list, so the condition fails every event that reaches it; "
                f"for several, join the calls: {name}(…, 'a') || {name}(…, 'b')"
            )
            found.append((argument_offset(source, offset, index), message))
    return found


_PADDED = re.compile(r"\s*-?0[0-9]+\s*")


def _zero_padded(source: str, token: Mapping[str, Any]) -> str | None:
    """The number a `…` literal writes with a leading 0 (`0930`, as a time of day is written), else None.

    JSON refuses it, and JMESPath then reads the literal as text: never the number meant.
    """
    if token["type"] != "literal" or source[token["start"]] != "`":
        return None
    raw = source[token["start"] + 1 : source.find("`", token["start"] + 1)]
    return raw.strip() if _PADDED.fullmatch(raw) else None


def given_paths(tests: Iterable[RuleTest]) -> dict[str, frozenset[str]]:
    """Every object path inline tests' ``given`` documents hold (``""``: the top), with the keys given under it."""
    found: dict[str, set[str]] = {}

    def visit(value: Mapping[str, Any], path: str) -> None:
        keys = found.setdefault(path, set())
        for key, inner in value.items():
            keys.add(str(key))
            if isinstance(inner, Mapping):
                visit(inner, f"{path}.{key}" if path else str(key))

    for test in tests:
        visit(test.given, "")
    return {path: frozenset(keys) for path, keys in found.items()}


def misspelt_paths(expression: Expression, given: Mapping[str, frozenset[str]]) -> list[tuple[int, str]]:
    """Fields a condition reads that no inline test gives, beside a close name the tests do give (a misspelling).

    ``given`` is ``given_paths``. A misspelt name is always null, and the rule silently never decides what it says.
    """
    found: list[tuple[int, str]] = []
    for path in expression.paths:
        for depth in range(len(path) - 1, 0, -1):
            parent, name = ".".join(path[:depth]), path[depth]
            if parent not in given:
                continue
            close = closest(name, given[parent]) if name not in given[parent] else None
            if close:
                read, meant = ".".join(path[: depth + 1]), f"{parent}.{close}"
                message = (
                    f"no inline test gives {read} (did you mean {meant}, which they give?); a name the document "
                    f"does not hold is always null, so this part never sees the value; fix the name, or add a "
                    f"case whose given holds {read}"
                )
                found.append((_path_offset(expression.source, ".".join(path)), message))
            break
    return found


# What the time functions give, for comparisons with a literal they never give (``weekday(…) == 'Monday'``).
_GIVES: dict[str, tuple[Callable[[str], bool], str]] = {
    "weekday": (lambda text: text in WEEKDAYS, "monday … sunday, in lower case"),
    "local_date": (
        lambda text: re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) is not None,
        "a date as YYYY-MM-DD, such as 2026-12-25",
    ),
}


def _never_given(source: str, tree: Mapping[str, Any]) -> list[tuple[int, str]]:
    """A time function compared by ==, != or contains() with a literal text it never gives."""
    offsets = {id(node): offset for node, offset in function_calls(source, tree)}
    found: list[tuple[int, str]] = []
    for node in _walk(tree):
        children = node.get("children", [])
        if node["type"] == "comparator" and node["value"] in _EQUALITY:
            symbol, verdict = _EQUALITY[node["value"]]
            pairs, outcome = [(children[0], children[1]), (children[1], children[0])], f"so {symbol} here is {verdict}"
        elif node["type"] == "function_expression" and node["value"] == "contains" and len(children) == 2:
            pairs, outcome = [(children[1], children[0])], "so contains() never finds it there"
        else:
            continue
        for call, literal in pairs:
            if call["type"] != "function_expression" or call["value"] not in _GIVES or literal["type"] != "literal":
                continue
            gives, described = _GIVES[call["value"]]
            values = literal["value"] if isinstance(literal["value"], list) else [literal["value"]]
            for value in [value for value in values if isinstance(value, str) and not gives(value)][:1]:
                message = f"{call['value']}() never gives {value!r} (it gives {described}), {outcome}"
                found.append((offsets.get(id(call), 0), message))
    return found


def _is_text_node(node: Mapping[str, Any], types: Mapping[str, str]) -> bool:
    """True when ``node`` gives text: a text literal, path or function, or anything ``|| 'text'``."""
    if node["type"] == "or_expression":
        return _is_text_node(node["children"][1], types)
    return _kind(node, types) == "string"


def lint_expression(
    expression: Expression,
    known: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[str, str]] | None = None,
) -> list[tuple[int, str]]:
    """Likely mistakes in a valid expression, as ``(offset, message)``; for ``--check`` warnings.

    ``known`` (``value_types``) says which paths hold text or numbers, for the checks that depend on it. ``flags``
    (``flag_texts``) is given for a condition (a ``when``): its ``truthiness_mistakes`` are found as well.
    """
    found: list[tuple[int, str]] = _typed_mistakes(expression.source, expression.ast, known or {})
    found += _never_given(expression.source, expression.ast)
    found += _literal_mistakes(expression.source)
    known_set, guards = _guards(expression.ast)
    calls = list(function_calls(expression.source, expression.ast))
    if flags is not None:
        found += _truthiness_mistakes(expression, known or {}, flags, guards, calls)
    found += _null_argument_mistakes(calls, known_set, known or {})
    return sorted(found)


def _literal_mistakes(source: str) -> list[tuple[int, str]]:
    """Literals that say other than they seem: a field name in double quotes, a bare ``true``, `` `…` `` not JSON."""
    found: list[tuple[int, str]] = []
    tokens = expression_tokens(source)
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else None
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        after_dot = previous is not None and previous["type"] == "dot"
        if token["type"] == "quoted_identifier" and not after_dot:
            alone = following is None or following["type"] not in ("dot", "lbracket")
            compared = any(t is not None and t["type"] in _COMPARATORS for t in (previous, following))
            if alone and compared:
                text = token["value"]
                message = f"\"{text}\" in double quotes is a field name, not text; for the text write '{text}'"
                found.append((token["start"], message))
        if token["type"] == "unquoted_identifier" and token["value"] in ("true", "false", "null") and not after_dot:
            word = token["value"]
            found.append((token["start"], f"{word} here is a field named {word!r}, not the JSON value; write `{word}`"))
        padded = _zero_padded(source, token)
        if padded is not None:  # a `…` literal (``_zero_padded`` says so)
            if not _ordered(tokens, index):  # ordered, it is refused (non_json_literals)
                message = (
                    f"`{padded}` is not JSON (a JSON number has no leading 0), so it is read as the text '{padded}'; "
                    f"write '{padded}' for the text, or `{int(padded)}` for the number (hhmm() gives 09:30 as 930)"
                )
                found.append((token["start"], message))
        elif token["type"] == "literal" and source[token["start"]] == "`":
            end = source.find("`", token["start"] + 1)
            while end > 0 and source[end - 1] == "\\":
                end = source.find("`", end + 1)
            raw = source[token["start"] + 1 : end]
            try:
                json.loads(raw.replace("\\`", "`"))
            except ValueError:
                found.append(
                    (
                        token["start"],
                        f"`{raw}` is not JSON, so it is read as the string {raw.strip()!r}; "
                        f"write '{raw.strip()}' for a string, or valid JSON (`true`, `10`, `\"text\"`)",
                    )
                )
    return found


def _null_argument_mistakes(
    calls: list[tuple[Mapping[str, Any], int]], known_set: Mapping[int, frozenset[str]], known: Mapping[str, str]
) -> list[tuple[int, str]]:
    """Function calls given a field that may be missing or null where the function refuses null (INTERNAL_ERROR).

    ``known_set``: the paths guarded where each call is evaluated (``_guards``), by the call node's id.
    """
    found: list[tuple[int, str]] = []
    for node, offset in calls:
        signature = function_table()[node["value"]]["signature"]
        for index, argument in enumerate(node["children"]):
            spec = signature[min(index, len(signature) - 1)]
            types = spec.get("types", [])
            path = _field_path(argument)
            name = node["value"]
            if path is not None and path in known_set.get(id(node), frozenset()):
                continue  # guarded where the call is evaluated: path && f(path), !path || f(path)
            if name == "contains" and index == 1 and path and _is_text_node(node["children"][0], known):
                advice = f"{path} && contains(…) ('' is in every text)"
                message = f"contains() fails (INTERNAL_ERROR) when {path} is missing or null, as it looks in a text"
                found.append((offset, f"{message}; if it can be, write {advice}"))
            accepts_null = "null" in types and (name, index) not in _NULL_REFUSED
            if path is None or path in _ALWAYS_GIVEN or not types or accepts_null or "expref" in types:
                continue
            guard = _ARGUMENT_GUARDS.get((name, index), _GUARDS.get(types[0], "`[]`"))
            advice = f"{path} || {guard}{_GUARD_NOTES.get(guard, '')}" if guard else f"{path} && {name}(…)"
            found.append(
                (
                    offset,
                    f"{name}() fails (INTERNAL_ERROR) when {path} is missing or null; if it can be, write {advice}",
                )
            )
    return found


Atom = Hashable
Terms = frozenset[frozenset[Atom]]
_MAX_TERMS = 64
_FLIPPED = {"gt": "lt", "gte": "lte"}
_NEGATED_COMPARATOR = {"eq": "ne", "ne": "eq"}


def _canonical(node: Any) -> Hashable:
    """A hashable form of an AST node in which equivalent spellings are equal."""
    if not isinstance(node, Mapping):
        return ("raw", repr(node))
    kind = node["type"]
    if kind == "literal":
        return ("literal", json.dumps(node["value"], sort_keys=True))
    children = [_canonical(child) for child in node.get("children", [])]
    value = node.get("value")
    if kind == "comparator":
        if value in _NEGATED_COMPARATOR:
            children.sort(key=repr)
        elif value in _FLIPPED:
            value, children = _FLIPPED[value], children[::-1]
    plain = value if value is None or isinstance(value, (str, int, float)) else repr(value)
    return (kind, plain, tuple(children))


def _negate(atom: Atom) -> Atom:
    """The atom that is true exactly when ``atom`` is false (JMESPath truthiness)."""
    if isinstance(atom, tuple) and atom[0] == "not":
        inner: Atom = atom[1]
        return inner
    if isinstance(atom, tuple) and atom[0] == "comparator" and atom[1] in _NEGATED_COMPARATOR:
        return ("comparator", _NEGATED_COMPARATOR[atom[1]], atom[2])
    return ("not", atom)


def _terms(node: Mapping[str, Any], negated: bool) -> set[frozenset[Atom]] | None:
    kind = node["type"]
    if kind == "not_expression":
        return _terms(node["children"][0], not negated)
    if kind in ("and_expression", "or_expression"):
        left, right = (_terms(child, negated) for child in node["children"])
        if left is None or right is None:
            return None
        if (kind == "and_expression") != negated:
            product = {a | b for a in left for b in right}
            consistent = {term for term in product if not any(_negate(atom) in term for atom in term)}
            return consistent if len(consistent) <= _MAX_TERMS else None
        return left | right
    if kind == "literal":
        return {frozenset()} if is_truthy(node["value"]) != negated else set()
    among = _among_texts(node)
    if among is not None:
        return _terms(among, negated)
    atom = _canonical(node)
    return {frozenset([_negate(atom) if negated else atom])}


def _among_texts(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``contains(`["a", "b"]`, x)`` as the condition it is, ``x == 'a' || x == 'b'`` (None for any other node).

    Texts only: contains() compares as Python does, where ``true`` equals ``1``, while == does not.
    """
    children = node.get("children", [])
    if node["type"] != "function_expression" or node.get("value") != "contains" or len(children) != 2:
        return None
    listed, value = children
    texts = listed.get("value") if listed["type"] == "literal" else None
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts) or value["type"] == "literal":
        return None
    if not texts:
        return {"type": "literal", "value": False, "children": []}
    equal = [
        {"type": "comparator", "value": "eq", "children": [value, {"type": "literal", "value": text, "children": []}]}
        for text in dict.fromkeys(texts)
    ]
    either = equal[0]
    for other in equal[1:]:
        either = {"type": "or_expression", "children": [either, other]}
    return either


def condition_terms(expression: Expression) -> Terms | None:
    """The condition as an OR of ANDs of atoms (None when too large to expand).

    The condition is true exactly when every atom of some term is true (JMESPath truthiness), so
    an empty set means never true and a set holding the empty term means always true.
    """
    found = _terms(expression.ast, False)
    return None if found is None else frozenset(found)


class Shadowed(NamedTuple):
    """A rule that can never match: ``by`` are the earlier rules that always win (empty: never true)."""

    rule: Rule
    by: tuple[Rule, ...]
    reason: str


def _equal_to(path: str, text: str) -> Atom:
    """The atom ``path == 'text'`` (``path`` dotted), as ``condition_terms`` writes it."""
    node: dict[str, Any] | None = None
    for name in path.split("."):
        field = {"type": "field", "value": name, "children": []}
        node = field if node is None else {"type": "subexpression", "children": [node, field]}
    literal = {"type": "literal", "value": text, "children": []}
    return _canonical({"type": "comparator", "value": "eq", "children": [node, literal]})


class Domain(NamedTuple):
    """The only values a path holds (``request.channel``: a pipeline's channels), and why, for the warning."""

    values: Collection[str]
    why: str  # "of pipelines/twilio_inbound.yaml (request.channel is always one of its channels: whatsapp, sms)"


def _always_in(terms: Terms, domains: Mapping[str, Domain]) -> str | None:
    """Why ``terms`` hold for every document: a path ``domains`` confines, compared with each of its values."""
    for path, domain in domains.items():
        if domain.values and all(any(term <= {_equal_to(path, v)} for term in terms) for v in domain.values):
            return domain.why
    return None


def find_shadowed(ruleset: RuleSet, domains: Mapping[str, Domain] | None = None) -> list[Shadowed]:
    """Rules of a first-match set that can never match.

    Found from the conditions' normal forms (``condition_terms``): a condition that is never true;
    an earlier rule with the same, an always-true or a broader condition; earlier rules that
    together cover it. Conditions too large to expand are left alone. ``domains``: the only values a path can
    hold (``request.channel``: the pipeline's channels), so that a condition comparing it with each is always true.
    """
    found: list[Shadowed] = []
    earlier: list[tuple[Rule, Terms]] = []
    conditions = [(rule, condition_terms(rule.when)) for rule in ruleset.rules]
    index = _EarlierTerms(
        Counter(key for _, terms in conditions for term in terms or () for key in set(map(_key, term)))
    )
    # The first earlier rule whose condition the domains make true for every document, and why.
    always: tuple[Rule, str] | None = None
    for rule, terms in conditions:
        if terms is None:
            continue
        if not terms:
            found.append(Shadowed(rule, (), "its condition is never true"))
            earlier.append((rule, terms))
            continue
        covering = _covering(terms, earlier, index)
        if covering:
            found.append(Shadowed(rule, tuple(covering), _reason(terms, [t for r, t in earlier if r in covering])))
        elif always is not None:
            found.append(Shadowed(rule, (always[0],), f"a condition true for every message {always[1]}"))
        confined = _always_in(terms, domains or {})
        if always is None and confined is not None:
            always = (rule, confined)
        index.add(len(earlier), terms)
        earlier.append((rule, terms))
    return found


def _key(atom: Atom) -> Hashable:
    """What a term holding ``atom`` needs another to hold for ``atom`` to be implied (``_implies``)."""
    unequal = _compared_text(atom, "ne")
    return ("text other than", unequal[0]) if unequal is not None else ("atom", atom)


class _EarlierTerms:
    """The earlier rules' terms, each filed under its atoms' rarest key (``_key``; an always-true term under None).

    A term covers another only when every atom of it is implied by one of the other's, so only the terms filed under
    the other's keys can: a rule is compared with those, not with every earlier rule (a set of 500 rules made 126,764
    comparisons, growing with the square of its size). ``counts``: how many terms of the set hold each key.
    """

    def __init__(self, counts: Counter[Hashable]) -> None:
        self._counts = counts
        self._filed: dict[Hashable, list[tuple[int, frozenset[Atom]]]] = {}

    def add(self, position: int, terms: Terms) -> None:
        for term in terms:
            key = min(map(_key, term), key=self._counts.__getitem__) if term else None
            self._filed.setdefault(key, []).append((position, term))

    def first_covering(self, term: frozenset[Atom]) -> int | None:
        """The position of the first earlier rule with a term covering ``term``, None when none has one."""
        keys: set[Hashable] = {None, *map(_key, term)}
        keys.update(("text other than", equal[0]) for atom in term if (equal := _compared_text(atom, "eq")))
        positions = (
            position for key in keys for position, broader in self._filed.get(key, ()) if _covers(broader, term)
        )
        return min(positions, default=None)


def _covering(terms: Terms, earlier: list[tuple[Rule, Terms]], index: _EarlierTerms) -> list[Rule]:
    """The earlier rules (filed in ``index``) that together match whenever ``terms`` do (in order), or none."""
    covering: list[Rule] = []
    for term in terms:
        position = index.first_covering(term)
        if position is None:
            return []
        cover = earlier[position][0]
        if cover not in covering:
            covering.append(cover)
    return sorted(covering, key=lambda r: r.index)


def _compared_text(atom: Atom, comparator: str) -> tuple[Hashable, str] | None:
    """``(x, text)`` when ``atom`` is ``x == 'text'`` (``comparator`` eq) or ``x != 'text'`` (ne), else None."""
    if not (isinstance(atom, tuple) and len(atom) == 3 and atom[:2] == ("comparator", comparator)):
        return None
    literals = [child for child in atom[2] if isinstance(child, tuple) and child[:1] == ("literal",)]
    others = [child for child in atom[2] if child not in literals]
    if len(literals) != 1 or len(others) != 1:
        return None
    value = json.loads(literals[0][1])
    return (others[0], value) if isinstance(value, str) else None


def _implies(atom: Atom, other: Atom) -> bool:
    """True when ``other`` is true whenever ``atom`` is: the same atom, or ``x == 'a'`` for ``x != 'b'``."""
    if atom == other:
        return True
    equal, unequal = _compared_text(atom, "eq"), _compared_text(other, "ne")
    return equal is not None and unequal is not None and equal[0] == unequal[0] and equal[1] != unequal[1]


def _covers(broader: frozenset[Atom], term: frozenset[Atom]) -> bool:
    """True when the AND of ``broader``'s atoms is true whenever the AND of ``term``'s is."""
    return broader <= term or all(any(_implies(atom, needed) for atom in term) for needed in broader)


def _reason(terms: Terms, covering: list[Terms]) -> str:
    if len(covering) == 1 and covering[0] == terms:
        return "the same condition"
    if len(covering) == 1 and frozenset() in covering[0]:
        return "a condition that is always true"
    if len(covering) == 1:
        return "a broader condition (true whenever this one is)"
    return "conditions that together cover this one"
