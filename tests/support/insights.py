"""CloudWatch Logs Insights, the part of its query language the docs use, run over JSON log lines.

Each line is read as Logs Insights reads a JSON log event: its fields discovered by flattening nested objects
with ``.`` and arrays by index (``steps.rules``, ``problems.0``); a JSON ``null`` is no field; ``@timestamp``
and ``@message`` are the event's time and text. Commands: ``fields``, ``filter``, ``stats`` (``count()``,
``latest(f)``, ``earliest(f)``, ``count_distinct(f)``, ``by``), ``sort``, ``limit``, ``display``. Conditions:
``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``like "text"`` (a substring), ``like /regex/``, ``in [...]``,
``ispresent(f)``, ``not``, ``and``, ``or`` and parentheses. A query outside this grammar is an error, so a
documented query that this reads is one Logs Insights accepts in the same form.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<regex>/(?:[^/\\]|\\.)+/)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|=|<|>|\(|\)|\[|\]|,)
    | (?P<name>@?[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)
_AGGREGATES = {"count", "latest", "earliest", "count_distinct"}
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class QueryError(ValueError):
    """The query is not one this reader (and so the docs' subset of Logs Insights) accepts."""


def discovered(line: str) -> Row:
    """The fields Logs Insights discovers in one JSON log event."""
    event = json.loads(line)
    row: Row = {"@message": line, "@timestamp": event.get("timestamp") or _emf_time(event) or ""}
    _flatten(event, "", row)
    return row


def _emf_time(event: dict[str, Any]) -> str:
    """An EMF document's time (its ``_aws.Timestamp``, milliseconds), as the log lines write theirs; else empty."""
    if "_aws" not in event:
        return ""  # another log group's line (the API's access log): its time is CloudWatch's, not modelled
    stamp = datetime.fromtimestamp(event["_aws"]["Timestamp"] / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _flatten(value: Any, prefix: str, row: Row) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}{key}.", row)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}{index}.", row)
    elif value is not None:
        row[prefix[:-1]] = value


def run(query: str, lines: Iterable[str]) -> list[Row]:
    """The rows ``query`` returns over ``lines`` (JSON log events, in the order they were written)."""
    rows = [discovered(line) for line in lines if line.strip().startswith("{")]
    for command in _commands(query):
        rows = _apply(command, rows)
    return rows


def referenced_fields(query: str) -> set[str]:
    """The log fields ``query`` names (not the names it defines with ``as``, nor ``@`` fields)."""
    fields: set[str] = set()
    defined: set[str] = set()
    for command in _commands(query):
        tokens = command[1:]
        for index, (kind, text) in enumerate(tokens):
            if kind != "name" or text.startswith("@") or text in {"and", "or", "not", "in", "like", "by", "as"}:
                continue
            if text in {"asc", "desc"} or text in _AGGREGATES or text == "ispresent":
                continue
            if index and tokens[index - 1] == ("name", "as"):
                defined.add(text)
                continue
            fields.add(text)
    return fields - defined


def _commands(query: str) -> list[list[tuple[str, str]]]:
    commands = []
    for part in _split_pipes(query):
        tokens = _tokens(part)
        if not tokens or tokens[0][0] != "name":
            raise QueryError(f"not a command: {part!r}")
        commands.append([("command", tokens[0][1]), *tokens[1:]])
    return commands


def _split_pipes(query: str) -> list[str]:
    parts, current, quote = [], "", ""
    for char in query:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "|":
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while text[position:].strip():
        found = _TOKEN.match(text, position)
        if found is None or found.end() == position:
            raise QueryError(f"cannot read {text[position:]!r}")
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


def _apply(command: list[tuple[str, str]], rows: list[Row]) -> list[Row]:
    name, tokens = command[0][1], command[1:]
    if name in {"fields", "display"}:
        return rows
    if name == "filter":
        parser = _Condition(tokens)
        return [row for row in rows if parser.evaluate(row)]
    if name == "sort":
        return _sort(tokens, rows)
    if name == "limit":
        return rows[: int(tokens[0][1])]
    if name == "stats":
        return _stats(tokens, rows)
    raise QueryError(f"unknown command {name!r}")


def _sort(tokens: list[tuple[str, str]], rows: list[Row]) -> list[Row]:
    field = tokens[0][1]
    descending = len(tokens) > 1 and tokens[1][1] == "desc"
    present = [row for row in rows if field in row]
    return sorted(present, key=lambda row: row[field], reverse=descending) + [r for r in rows if field not in r]


def _stats(tokens: list[tuple[str, str]], rows: list[Row]) -> list[Row]:
    texts = [text for _, text in tokens]
    by = texts.index("by") if "by" in texts else len(texts)
    keys = [text for kind, text in tokens[by + 1 :] if kind == "name"]
    aggregates: list[tuple[str, str | None, str]] = []
    position = 0
    while position < by:
        function, argument = texts[position], None
        if texts[position + 1] != "(":
            raise QueryError(f"not an aggregate: {texts[position]!r}")
        if function not in _AGGREGATES:
            raise QueryError(f"unknown aggregate {function!r}")
        close = texts.index(")", position)
        if close > position + 2:
            argument = texts[position + 2]
        label = f"{function}({argument or ''})"
        position = close + 1
        if position < by and texts[position] == "as":
            label, position = texts[position + 1], position + 2
        if position < by and texts[position] == ",":
            position += 1
        aggregates.append((function, argument, label))
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        if all(key in row for key in keys):
            groups.setdefault(tuple(row[key] for key in keys), []).append(row)
    result = []
    for values, members in groups.items():
        out: Row = dict(zip(keys, values, strict=True))
        for function, argument, label in aggregates:
            out[label] = _aggregate(function, argument, members)
        result.append(out)
    return result


def _aggregate(function: str, argument: str | None, rows: list[Row]) -> Any:
    if function == "count":
        return len(rows) if argument in {None, "*"} else sum(argument in row for row in rows)
    having = [row for row in rows if argument in row]
    if function == "count_distinct":
        return len({row[str(argument)] for row in having})
    ordered = sorted(having, key=lambda row: row["@timestamp"])
    if not ordered:
        return None
    return (ordered[-1] if function == "latest" else ordered[0])[str(argument)]


class _Condition:
    """A ``filter`` condition, read by recursive descent."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self._tokens = tokens

    def evaluate(self, row: Row) -> bool:
        self._position, self._row = 0, row
        value = self._or()
        if self._position != len(self._tokens):
            raise QueryError(f"unexpected {self._tokens[self._position][1]!r}")
        return value

    def _peek(self) -> str | None:
        return self._tokens[self._position][1] if self._position < len(self._tokens) else None

    def _take(self) -> tuple[str, str]:
        if self._position >= len(self._tokens):
            raise QueryError("the condition ends too early")
        token = self._tokens[self._position]
        self._position += 1
        return token

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == "or":
            self._take()
            value = self._and() or value
        return value

    def _and(self) -> bool:
        value = self._not()
        while self._peek() == "and":
            self._take()
            value = self._not() and value
        return value

    def _not(self) -> bool:
        if self._peek() == "not":
            self._take()
            return not self._not()
        return self._comparison()

    def _comparison(self) -> bool:
        if self._peek() == "(":
            self._take()
            value = self._or()
            if self._take()[1] != ")":
                raise QueryError("a parenthesis is not closed")
            return value
        kind, text = self._take()
        if kind != "name":
            raise QueryError(f"a condition starts with {text!r}")
        if text == "ispresent":
            self._take()
            present = self._take()[1] in self._row
            self._take()
            return present
        left = self._row.get(text)
        _, comparison = self._take()
        if comparison == "in":
            listed = self._list()
            return left is not None and left in listed
        kind, raw = self._take()
        if comparison == "like":
            if left is None:
                return False
            if kind == "regex":
                return re.search(raw[1:-1], str(left)) is not None
            return _literal(kind, raw) in str(left)
        right = _literal(kind, raw)
        if left is None:
            return False
        if comparison in {"=", "!="}:
            return (left == right) == (comparison == "=")
        if comparison not in _ORDER or isinstance(left, str) != isinstance(right, str):
            raise QueryError(f"cannot compare with {comparison!r}: {left!r}, {right!r}")
        return bool(_ORDER[comparison](left, right))

    def _list(self) -> list[Any]:
        if self._take()[1] != "[":
            raise QueryError("in needs a [list]")
        values = []
        while True:
            kind, raw = self._take()
            if raw == "]":
                return values
            if raw != ",":
                values.append(_literal(kind, raw))


def _literal(kind: str, raw: str) -> Any:
    if kind == "string":
        return json.loads('"' + raw[1:-1].replace('"', '\\"') + '"') if raw[0] == "'" else json.loads(raw)
    if kind == "number":
        return float(raw) if "." in raw else int(raw)
    raise QueryError(f"not a value: {raw!r}")
