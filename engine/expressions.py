"""Compiled JMESPath conditions.

Expressions are compiled once, at load: syntax, unknown functions and wrong argument counts are
load errors located inside the expression. Evaluation errors (a function given the wrong type, for
example) raise ``ExpressionError`` naming the expression: a broken condition is never a silent false.
Truthiness is JMESPath's: false, null, and empty strings, lists and objects are false.

Plugins add functions with ``register_function`` (before any expression using them is compiled); a
function may check its literal arguments at compile time, and its ``ValueError`` is an evaluation error.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jp_exceptions
from jmespath import functions as jp_functions
from jmespath.parser import ParsedResult

from engine.errors import closest

__all__ = [
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "argument_offset",
    "compile_expression",
    "expression_tokens",
    "function_table",
    "function_calls",
    "is_truthy",
    "register_function",
]


class ExpressionError(Exception):
    """Evaluating an expression failed at run time."""


class ExpressionSyntaxError(Exception):
    """An expression does not compile; ``offset`` is the 0-based position inside the expression."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _Functions(jp_functions.Functions):
    """JMESPath's built-in functions plus those registered with ``register_function``."""


class _FunctionFailed(jp_exceptions.JMESPathError):
    """A registered function refused its arguments (the message names no value)."""


# One interpreter for every search: jmespath makes a new one per search, which looks up each node's method again.
_INTERPRETER = jmespath.visitor.TreeInterpreter(jmespath.Options(custom_functions=_Functions()))
_FUNCTION_TABLE: dict[str, dict[str, Any]] = _Functions.FUNCTION_TABLE


def register_function(
    name: str,
    arguments: Sequence[Sequence[str]],
    function: Callable[..., Any],
    *,
    returns: str | None = None,
    check: Callable[[int, Any], str | None] | None = None,
) -> None:
    """Make ``name(…)`` available to every expression compiled from now on.

    ``arguments`` gives each argument's JMESPath types (``["string", "null"]``); ``function`` takes the
    evaluated arguments and returns a JSON value of type ``returns``, raising ``ValueError`` (its message
    naming no value) for arguments it refuses. ``check(index, value)`` is given each literal argument at
    compile time and returns what is wrong with it, or None. Registering a name twice with another function
    is an error.
    """
    known = _FUNCTION_TABLE.get(name)
    if known is not None and getattr(known["function"], "__wrapped__", None) is not function:
        raise ValueError(f"expression function {name}() is already registered")

    def call(_: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except ValueError as exc:
            raise _FunctionFailed(f"function {name}() {exc}") from None

    call.__wrapped__ = function  # type: ignore[attr-defined]
    signature = [{"types": list(types)} for types in arguments]
    _FUNCTION_TABLE[name] = {"function": call, "signature": signature, "returns": returns, "check": check}


def function_table() -> Mapping[str, Mapping[str, Any]]:
    """Every function an expression may call, by name, with its JMESPath signature."""
    return _FUNCTION_TABLE


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (str, list, dict)) and not value)


# What follows the first child reads its value, not the root (the right of a pipe too).
_RELATIVE_AFTER_FIRST = frozenset({"projection", "filter_projection", "value_projection", "flatten", "pipe"})


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
        return {".".join(path): _lookup(document, path) for path in self.paths}

    def search(self, document: Mapping[str, Any]) -> Any:
        """Evaluate against ``document``; raise ExpressionError on a run-time failure."""
        if self._fields is not None:
            return _lookup(document, self._fields)
        try:
            return _INTERPRETER.visit(self._parsed.parsed, document)
        except jp_exceptions.JMESPathError as exc:
            raise ExpressionError(f"expression {self.source!r} failed: {_describe(exc)}") from None
        except (TypeError, OverflowError, ValueError) as exc:
            # jmespath raises TypeError for a text ordered against a number, and for contains(text, not text);
            # ceil() and floor() raise OverflowError or ValueError for infinity or NaN (to_number('1e999')).
            ordering = "<, <=, > and >= compare two numbers or two texts, here a text with a number"
            detail = ordering if "<string>" not in str(exc) else "function contains() finds only text in a text"
            detail = detail if isinstance(exc, TypeError) else "function ceil() or floor() got infinity or NaN"
            raise ExpressionError(f"expression {self.source!r} failed: {detail}") from None

    def test(self, document: Mapping[str, Any]) -> bool:
        """Evaluate as a condition (JMESPath truthiness)."""
        return is_truthy(self.search(document))


def _lookup(document: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` through nested mappings: None past a missing key or a value that is not one."""
    for name in path:
        document = document.get(name) if isinstance(document, Mapping) else None
    return document


def _describe(exc: jp_exceptions.JMESPathError) -> str:
    """The failure without the value that caused it: values may be phone numbers or message text."""
    if isinstance(exc, jp_exceptions.JMESPathTypeError):
        expected = " or ".join(exc.expected_types)
        return f"function {exc.function_name}() got a {exc.actual_type} where it needs {expected}"
    if isinstance(exc, _FunctionFailed):
        return str(exc)
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
    if isinstance(exc, jp_exceptions.ParseError):
        offset = exc.lex_position if isinstance(exc.lex_position, int) else 0
        if isinstance(exc, jp_exceptions.IncompleteExpressionError):
            return ExpressionSyntaxError(
                "the expression ends too early; close every ( [ { and give every operator its right-hand side", offset
            )
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


def expression_tokens(source: str) -> list[dict[str, Any]]:
    """The lexer tokens of ``source`` (type, value, start offset)."""
    from jmespath.lexer import Lexer

    return [dict(token) for token in Lexer().tokenize(source)]


def function_calls(source: str, tree: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], int]]:
    """Every function call of ``tree`` with the offset of its name in ``source`` (lexed only when there is one)."""
    calls = [node for node in _walk(tree) if node["type"] == "function_expression"]
    starts: dict[str, list[int]] = {}
    for token, following in itertools.pairwise(expression_tokens(source) if calls else ()):
        if token["type"] == "unquoted_identifier" and following["type"] == "lparen":
            starts.setdefault(token["value"], []).append(token["start"])
    seen: dict[str, int] = {}
    for node in calls:
        name = node["value"]
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        offsets = starts.get(name, [])
        yield node, offsets[occurrence] if occurrence < len(offsets) else 0


def _check_functions(source: str, tree: Mapping[str, Any]) -> None:
    """Raise ExpressionSyntaxError for an unknown function or a wrong number of arguments."""
    for node, offset in function_calls(source, tree):
        name = node["value"]
        spec = _FUNCTION_TABLE.get(name)
        if spec is None:
            close = closest(name, _FUNCTION_TABLE)
            hint = f"did you mean {close}()? " if close else ""
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
        check = spec.get("check")
        for index, argument in enumerate(node["children"]):
            problem = check(index, argument["value"]) if check and argument["type"] == "literal" else None
            if problem:
                raise ExpressionSyntaxError(f"{name}(): {problem}", argument_offset(source, offset, index))


_OPENERS = frozenset({"lparen", "lbracket", "lbrace", "filter"})


def argument_offset(source: str, call: int, index: int) -> int:
    """Where argument ``index`` of the function call whose name starts at ``call`` begins (else ``call``)."""
    depth, argument = 0, 0
    for token in expression_tokens(source):
        if token["start"] <= call:
            continue
        if depth == 1 and argument == index and token["type"] not in ("comma", "rparen"):
            return int(token["start"])
        if token["type"] in _OPENERS:
            depth += 1
        elif token["type"] in _CLOSERS:
            depth -= 1
            if depth == 0:
                break
        elif token["type"] == "comma" and depth == 1:
            argument += 1
    return call


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
