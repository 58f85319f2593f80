"""Where each value of a configuration file sits: 1-based line and column by path inside the document.

A path is a tuple of keys and list indexes, as jsonschema reports it. ``Locator.position_in`` points
at a character inside a string value (used to point inside a JMESPath expression). Filled in by
``engine.yamlsource`` while parsing; an empty one (a document read from the build's stamp) places
everything at 1:1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem

__all__ = ["Locator", "PathKey", "line_column"]

PathKey = tuple[Any, ...]


@dataclass
class Locator:
    """Positions of the values (and of the keys) of one YAML document.

    ``strings`` keeps, for each string scalar, its source span (start and end index in ``text``),
    its YAML style and its value, so that a character of the value can be located in the source.
    """

    file: str
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    text: str = ""
    strings: dict[PathKey, tuple[int, int, str, str]] = field(default_factory=dict)

    def position(self, path: Sequence[Any]) -> tuple[int, int]:
        """The position of the value at ``path``, or of its nearest located ancestor."""
        key = tuple(path)
        while key not in self.values and key:
            key = key[:-1]
        return self.values.get(key, (1, 1))

    def position_in(self, path: Sequence[Any], offset: int) -> tuple[int, int]:
        """The position of character ``offset`` of the string at ``path`` (the value's start if unknown).

        Exact for plain and quoted scalars on one line and for literal blocks; best effort for
        folded and multi-line scalars and for escapes (falls back to the value's start).
        """
        found = self.strings.get(tuple(path)) if self.text else None
        start, end, style, value = found or (0, 0, "", "")
        absolute = _source_index(_content(self.text, start, end, style), value, offset, style) if found else None
        return line_column(self.text, absolute) if absolute is not None else self.position(path)

    def problem(
        self,
        path: Sequence[Any],
        message: str,
        *,
        at_key: bool = False,
        severity: str = "error",
        offset: int | None = None,
        kind: str = "",
    ) -> Problem:
        """A Problem located at ``path`` in this file (at character ``offset`` of a string value, if given).

        ``at_key`` places it at the key that names ``path`` (falling back to the value's position).
        """
        inside = self.position_in(path, offset) if offset is not None else None
        line, column = inside or (at_key and self.keys.get(tuple(path))) or self.position(path)
        return Problem(self.file, line, column, message, severity, kind)


def line_column(text: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of character ``index`` of ``text``."""
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _content(text: str, start: int, end: int, style: str) -> list[tuple[str, int]]:
    """The characters of a scalar's source with their indexes in ``text``, less quotes and block indentation."""
    if style in ("'", '"'):
        return [(text[index], index) for index in range(start + 1, end - 1)]
    if style not in ("|", ">"):
        return [(text[index], index) for index in range(start, end)]
    body = text.find("\n", start, end) + 1
    if body <= 0:
        return []
    lines = text[body:end].splitlines(keepends=True)
    indent = next((len(line) - len(line.lstrip(" ")) for line in lines if line.strip()), 0)
    chars: list[tuple[str, int]] = []
    index = body
    for line in lines:
        skip = min(indent, len(line) - len(line.lstrip(" ")))
        chars.extend((line[i], index + i) for i in range(skip, len(line)))
        index += len(line)
    return chars


def _source_index(source: list[tuple[str, int]], value: str, offset: int, style: str) -> int | None:
    """Index in the file of character ``offset`` of a scalar's ``value``, given its ``source`` characters.

    Walks both in step: source-only characters are indentation, line breaks (folded to spaces or
    kept) and quote escapes. None when the two cannot be aligned.
    """
    skippable = " \t\r\n" + {"'": "'", '"': "\\"}.get(style, "")
    position = 0
    last = -1
    for index, char in enumerate(value):
        while position < len(source):
            found = source[position][0]
            if found == char or (char == " " and found == "\n"):
                break
            if found not in skippable:
                return None
            position += 1
        if position >= len(source):
            return None
        if index == offset:
            return source[position][1]
        last = last if char.isspace() else source[position][1]  # the end is after the last visible character
        position += 1
    return last + 1 if offset >= len(value) and last >= 0 else None
