"""Compiled JMESPath conditions.

Expressions are compiled once, at load: syntax, unknown functions and wrong argument counts are
load errors located inside the expression. Evaluation errors (a function given the wrong type, for
example) raise ``ExpressionError`` naming the expression: a broken condition is never a silent false.
Truthiness is JMESPath's: false, null, and empty strings, lists and objects are false.

For ``--check`` only: ``lint_expression`` finds likely mistakes that are still valid JMESPath, and
``condition_terms`` gives a condition's normal form, used to find rules that can never match.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jp_exceptions
from jmespath import functions as jp_functions
from jmespath.parser import ParsedResult

__all__ = [
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "compile_expression",
    "condition_terms",
    "is_truthy",
    "lint_expression",
]


class ExpressionError(Exception):
    """Evaluating an expression failed at run time."""


class ExpressionSyntaxError(Exception):
    """An expression does not compile; ``offset`` is the 0-based position inside the expression."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _Functions(jp_functions.Functions):
    """Custom functions available to every expression."""

    @jp_functions.signature({"types": ["string", "null"]})
    def _func_e164(self, value: str | None) -> str | None:
        """The E.164 number of a Twilio address: ``whatsapp:+1415…`` → ``+1415…``."""
        if value is None:
            return None
        return value.split(":", 1)[1] if ":" in value else value


_OPTIONS = jmespath.Options(custom_functions=_Functions())
_FUNCTION_TABLE: Mapping[str, Mapping[str, Any]] = _Functions.FUNCTION_TABLE


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (str, list, dict)) and not value)


_RELATIVE_AFTER_FIRST = frozenset({"projection", "filter_projection", "value_projection", "flatten"})


def _root_paths(node: Mapping[str, Any], found: list[tuple[str, ...]]) -> None:
    """Collect the dotted field paths an AST node reads from the root document."""
    kind = node.get("type")
    if kind == "field":
        found.append((node["value"],))
        return
    if kind == "subexpression":
        chain: list[str] = []
        for child in node["children"]:
            if child["type"] == "field":
                chain.append(child["value"])
                continue
            if child["type"] == "index_expression" and child["children"][0]["type"] == "field":
                chain.append(child["children"][0]["value"])
            break
        if chain:
            found.append(tuple(chain))
            return
    if kind == "expref":
        return
    children = node.get("children", [])
    if kind in _RELATIVE_AFTER_FIRST:
        children = children[:1]
    for child in children:
        if isinstance(child, Mapping):
            _root_paths(child, found)


@dataclass(frozen=True)
class Expression:
    """A compiled JMESPath expression, its source text and the document paths it reads."""

    source: str
    _parsed: ParsedResult
    paths: tuple[tuple[str, ...], ...] = ()
    # Set when the expression is a plain field path (``route.lock``): evaluated by dict lookups.
    _fields: tuple[str, ...] | None = None

    @property
    def ast(self) -> Mapping[str, Any]:
        """The parsed expression (jmespath's AST: nested ``{"type", "children", "value"}``)."""
        tree: Mapping[str, Any] = self._parsed.parsed
        return tree

    def inputs(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the paths this expression reads (for explaining a decision)."""
        values: dict[str, Any] = {}
        for path in self.paths:
            current: Any = document
            for part in path:
                current = current.get(part) if isinstance(current, Mapping) else None
            values[".".join(path)] = current
        return values

    def search(self, document: Mapping[str, Any]) -> Any:
        """Evaluate against ``document``; raise ExpressionError on a run-time failure."""
        if self._fields is not None:
            current: Any = document
            for name in self._fields:
                current = current.get(name) if isinstance(current, Mapping) else None
            return current
        try:
            return self._parsed.search(document, options=_OPTIONS)
        except jp_exceptions.JMESPathError as exc:
            raise ExpressionError(f"expression {self.source!r} failed: {_describe(exc)}") from None

    def test(self, document: Mapping[str, Any]) -> bool:
        """Evaluate as a condition (JMESPath truthiness)."""
        return is_truthy(self.search(document))


def _describe(exc: jp_exceptions.JMESPathError) -> str:
    """The failure without the value that caused it: values may be phone numbers or message text."""
    if isinstance(exc, jp_exceptions.JMESPathTypeError):
        expected = " or ".join(exc.expected_types)
        return f"function {exc.function_name}() got a {exc.actual_type} where it needs {expected}"
    return type(exc).__name__


_CLOSERS = {"rparen": "(", "rbracket": "[", "rbrace": "{"}


def _syntax_error(exc: jp_exceptions.JMESPathError) -> ExpressionSyntaxError:
    """A plain-language syntax error that says how to fix the expression."""
    if isinstance(exc, jp_exceptions.LexerError):
        offset = exc.lexer_position if isinstance(exc.lexer_position, int) else 0
        message = str(exc.message)
        if message.startswith("Unclosed "):
            quote = message.split()[1]
            return ExpressionSyntaxError(f"unclosed {quote} quote; add the closing {quote}", offset)
        if message.startswith("Unknown token"):
            char = str(exc.lexer_value)[:1]
            if char == "=":
                return ExpressionSyntaxError("'=' is not an operator; compare with == (or !=)", offset)
            return ExpressionSyntaxError(f"unexpected character {char!r}", offset)
        if message.startswith("Bad token"):
            return ExpressionSyntaxError("invalid `…` literal; write valid JSON between the backticks", offset)
        return ExpressionSyntaxError(message, offset)
    if isinstance(exc, jp_exceptions.IncompleteExpressionError):
        offset = exc.lex_position if isinstance(exc.lex_position, int) else 0
        return ExpressionSyntaxError(
            "the expression ends too early; close every ( [ { and give every operator its right-hand side", offset
        )
    if isinstance(exc, jp_exceptions.ParseError):
        offset = exc.lex_position if isinstance(exc.lex_position, int) else 0
        token = exc.token_value
        opener = _CLOSERS.get(str(exc.token_type).lower())
        if opener:
            return ExpressionSyntaxError(f"unexpected {token!r}: it closes no {opener}", offset)
        return ExpressionSyntaxError(f"unexpected {token!r}; an operand or operator is missing or doubled", offset)
    return ExpressionSyntaxError(str(exc), 0)


def _walk(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every AST node, parents first, children left to right."""
    yield node
    for child in node.get("children", []):
        if isinstance(child, Mapping):
            yield from _walk(child)


def _tokens(source: str) -> list[dict[str, Any]]:
    from jmespath.lexer import Lexer

    return [dict(token) for token in Lexer().tokenize(source)]


def _calls(source: str, tree: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], int]]:
    """Every function call of ``tree`` with the offset of its name in ``source``."""
    tokens = _tokens(source)
    starts: dict[str, list[int]] = {}
    for token, following in itertools.pairwise(tokens):
        if token["type"] == "unquoted_identifier" and following["type"] == "lparen":
            starts.setdefault(token["value"], []).append(token["start"])
    seen: dict[str, int] = {}
    for node in _walk(tree):
        if node["type"] == "function_expression":
            name = node["value"]
            occurrence = seen.get(name, 0)
            seen[name] = occurrence + 1
            offsets = starts.get(name, [])
            yield node, offsets[occurrence] if occurrence < len(offsets) else 0


def _check_functions(source: str, tree: Mapping[str, Any]) -> None:
    """Raise ExpressionSyntaxError for an unknown function or a wrong number of arguments."""
    if not any(node["type"] == "function_expression" for node in _walk(tree)):
        return
    for node, offset in _calls(source, tree):
        name = node["value"]
        spec = _FUNCTION_TABLE.get(name)
        if spec is None:
            import difflib

            close = difflib.get_close_matches(name, list(_FUNCTION_TABLE), n=1)
            hint = f"did you mean {close[0]}()? " if close else ""
            known = ", ".join(sorted(_FUNCTION_TABLE))
            raise ExpressionSyntaxError(f"unknown function {name}(); {hint}functions: {known}", offset)
        signature = spec["signature"]
        given = len(node["children"])
        if signature and signature[-1].get("variadic"):
            if given < len(signature):
                message = f"{name}() takes at least {len(signature)} argument(s), got {given}"
                raise ExpressionSyntaxError(message, offset)
        elif given != len(signature):
            raise ExpressionSyntaxError(f"{name}() takes {len(signature)} argument(s), got {given}", offset)


def compile_expression(source: str) -> Expression:
    """Compile ``source``; raise ExpressionSyntaxError with the offset of the problem."""
    try:
        parsed = jmespath.compile(source)
    except jp_exceptions.JMESPathError as exc:
        raise _syntax_error(exc) from None
    _check_functions(source, parsed.parsed)
    found: list[tuple[str, ...]] = []
    _root_paths(parsed.parsed, found)
    return Expression(source, parsed, tuple(dict.fromkeys(found)), _plain_path(parsed.parsed))


def _plain_path(node: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The names of a plain ``a.b.c`` path, or None for any other expression.

    Such a path means the same in JMESPath and in nested dict lookups (a missing key or a non-object
    gives null), so it can be evaluated without the interpreter.
    """
    if node.get("type") == "field":
        return (str(node["value"]),)
    if node.get("type") == "subexpression":
        names: tuple[str, ...] = ()
        for child in node["children"]:
            part = _plain_path(child)
            if part is None:
                return None
            names += part
        return names
    return None


_COMPARATORS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte"})
_GUARDS = {"array": "`[]`", "string": "''", "object": "`{}`", "number": "`0`"}


def _field_path(node: Mapping[str, Any]) -> str | None:
    """``a.b.c`` when the node is a plain field path, else None."""
    if node["type"] == "field":
        return str(node["value"])
    if node["type"] == "subexpression":
        parts = [_field_path(child) for child in node["children"]]
        return ".".join(part for part in parts if part) if all(parts) else None
    return None


def lint_expression(expression: Expression) -> list[tuple[int, str]]:
    """Likely mistakes in a valid expression, as ``(offset, message)``; for ``--check`` warnings."""
    found: list[tuple[int, str]] = []
    source = expression.source
    tokens = _tokens(source)
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
        if token["type"] == "literal" and source[token["start"]] == "`":
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
    for node, offset in _calls(source, expression.ast):
        signature = _FUNCTION_TABLE[node["value"]]["signature"]
        for index, argument in enumerate(node["children"]):
            spec = signature[min(index, len(signature) - 1)]
            types = spec.get("types", [])
            path = _field_path(argument)
            if path is None or not types or "null" in types or "expref" in types:
                continue
            guard = _GUARDS.get(types[0], "`[]`")
            found.append(
                (
                    offset,
                    f"{node['value']}() fails (INTERNAL_ERROR) when {path} is missing or null; "
                    f"if it can be, write {path} || {guard}",
                )
            )
    return sorted(found)


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
    atom = _canonical(node)
    return {frozenset([_negate(atom) if negated else atom])}


def condition_terms(expression: Expression) -> Terms | None:
    """The condition as an OR of ANDs of atoms (None when too large to expand).

    The condition is true exactly when every atom of some term is true (JMESPath truthiness), so
    an empty set means never true and a set holding the empty term means always true.
    """
    found = _terms(expression.ast, False)
    return None if found is None else frozenset(found)
