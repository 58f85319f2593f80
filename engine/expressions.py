"""Compiled JMESPath conditions.

Expressions are compiled once, at load. Evaluation errors (a function given the wrong type, for
example) raise ``ExpressionError`` naming the expression: a broken condition is never a silent false.
Truthiness is JMESPath's: false, null, and empty strings, lists and objects are false.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jp_exceptions
from jmespath import functions as jp_functions
from jmespath.parser import ParsedResult

__all__ = ["Expression", "ExpressionError", "ExpressionSyntaxError", "compile_expression", "is_truthy"]


class ExpressionError(Exception):
    """Evaluating an expression failed at run time."""


class ExpressionSyntaxError(Exception):
    """An expression does not parse; ``offset`` is the 0-based position inside the expression."""

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
        try:
            return self._parsed.search(document, options=_OPTIONS)
        except jp_exceptions.JMESPathError as exc:
            raise ExpressionError(f"expression {self.source!r} failed: {exc}") from None

    def test(self, document: Mapping[str, Any]) -> bool:
        """Evaluate as a condition (JMESPath truthiness)."""
        return is_truthy(self.search(document))


def compile_expression(source: str) -> Expression:
    """Compile ``source``; raise ExpressionSyntaxError with the offset of the problem."""
    try:
        parsed = jmespath.compile(source)
    except jp_exceptions.ParseError as exc:
        offset = exc.lex_position if isinstance(exc.lex_position, int) else 0
        reason = exc.msg if hasattr(exc, "msg") else str(exc)
        token = f" near {exc.token_value!r}" if getattr(exc, "token_value", None) not in (None, "") else ""
        raise ExpressionSyntaxError(f"invalid JMESPath{token}: {reason}", offset) from None
    except jp_exceptions.LexerError as exc:
        offset = exc.lexer_position if isinstance(exc.lexer_position, int) else 0
        raise ExpressionSyntaxError(f"invalid JMESPath: {exc.message}", offset) from None
    except jp_exceptions.JMESPathError as exc:
        raise ExpressionSyntaxError(f"invalid JMESPath: {exc}", 0) from None
    found: list[tuple[str, ...]] = []
    _root_paths(parsed.parsed, found)
    return Expression(source, parsed, tuple(dict.fromkeys(found)))
