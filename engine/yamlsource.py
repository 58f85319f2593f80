"""Safe YAML loading that remembers where every value came from.

``load_yaml`` returns the plain data plus a ``Locator`` (``engine.locator``) that places each value, and each
character of a string value, at its line and column. Duplicate keys are errors, not silent overrides.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import ConfigError, Problem
from engine.locator import Locator, PathKey, line_column

__all__ = ["Locator", "SourceDoc", "load_yaml", "parse_yaml"]


@dataclass
class SourceDoc:
    """A loaded YAML document: its data, where each value sits, and (lenient loads only) its problems."""

    data: Any
    locator: Locator
    problems: list[Problem] = field(default_factory=list)


def _mark(node: Node) -> tuple[int, int]:
    """1-based position of a node's content (inside the quotes of a quoted scalar)."""
    quoted = isinstance(node, ScalarNode) and node.style in ("'", '"')
    return node.start_mark.line + 1, node.start_mark.column + 1 + (1 if quoted else 0)


# A node's properties, before its content: an anchor (&name) and a tag (!tag or !!str), each with its spaces.
_PROPERTIES = re.compile(r"(?:[&!][^\s]*\s+)*")
_PLAIN_COLLECTIONS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
_TOO_MANY_REPEATS = "YAML aliases (*name) repeat more than 100000 values; write the values out"


class _Builder:
    """Turns a composed node tree into plain values, recording positions on the way."""

    def __init__(self, loader: Any, locator: Locator) -> None:
        self._loader = loader
        self._locator = locator
        self.problems: list[Problem] = []
        # Nodes built, and a count of those built again through an alias (a "billion laughs" would never end).
        self._seen: set[int] = set()
        self._repeats = itertools.count(1)
        self._bom = int(locator.text.startswith("\ufeff"))  # libyaml's character indexes do not count the mark

    def build(self, node: Node, path: PathKey) -> Any:
        if id(node) in self._seen and next(self._repeats) > 100_000:
            raise ConfigError([Problem(self._locator.file, *_mark(node), _TOO_MANY_REPEATS)])
        self._seen.add(id(node))
        self._locator.values[path] = _mark(node)
        if isinstance(node, MappingNode | SequenceNode) and node.tag not in _PLAIN_COLLECTIONS:
            self._problem(
                node, f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not supported here; remove it"
            )
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)  # the one other kind of node
        value = self._loader.construct_object(node, deep=True)
        if value != value:  # .nan: every comparison with it is false, so it would pass any bounds
            self._problem(node, f"{node.value} (not a number) is no value for a setting; write a number")
        properties = _PROPERTIES.match(self._locator.text, node.start_mark.index + self._bom)
        start = properties.end() if properties else node.start_mark.index + self._bom
        if start > node.start_mark.index + self._bom:  # the value is placed past its anchor or tag
            self._locator.values[path] = line_column(self._locator.text, start + (node.style in ("'", '"')))
        if isinstance(value, str):
            self._locator.strings[path] = (start, node.end_mark.index + self._bom, node.style or "", value)
        return value

    def _problem(self, node: Node, message: str) -> None:
        self.problems.append(Problem(self._locator.file, *_mark(node), message))

    def _mapping(self, node: MappingNode, path: PathKey) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
                self._problem(key_node, "YAML merge keys (<<) are not supported; write the merged keys out here")
                continue
            key = self._loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                self._problem(key_node, "mapping keys must be plain scalars")
                continue
            if key in result:
                first, _ = self._locator.keys[(*path, key)]
                self._problem(key_node, f"duplicate key {key!r} (first defined on line {first}); remove one of them")
                continue
            self._locator.keys[(*path, key)] = _mark(key_node)
            aliased = id(value_node) in self._seen
            result[key] = self.build(value_node, (*path, key))
            if aliased:  # an alias (*name) is placed where it is written, not at its anchor
                alias = self._locator.text.index("*", key_node.end_mark.index + self._bom)
                self._locator.values[(*path, key)] = line_column(self._locator.text, alias)
        return result


# libyaml's loader when PyYAML has it (about 20 times faster: this is on the cold-start path).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_CONTROL_CHARACTER = "invalid YAML: the control character {}, invisible in most editors, is not allowed; delete it"
_NOT_UTF8 = "not UTF-8 text: the file was saved in another encoding (Latin-1, Windows-1252…); save it as UTF-8"
_TAGGED_VALUE = re.compile(r"(?:^|:|-)[ \t]+([!`@])")  # a tag, or a character YAML reserves (JMESPath's ` and @)


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    """A YAML syntax error, located, with the usual fix when the cause is a common one."""
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    reason = exc.problem or exc.context or "invalid YAML"
    lines = text.splitlines()
    for number in dict.fromkeys(m.line for m in (exc.context_mark, exc.problem_mark) if m is not None):
        tagged = _TAGGED_VALUE.search(lines[number]) if number < len(lines) else None
        if tagged:
            read_as = "a YAML tag" if tagged[1] == "!" else "YAML markup, not text"
            hint = f"a value starting with {tagged[1]} is read as {read_as}; put the whole value in double quotes"
            return Problem(file, number + 1, tagged.start(1) + 1, f"invalid YAML: {hint}")
    hint = ""
    if exc.context == "while scanning a quoted scalar" and exc.context_mark is not None:
        hint = f"; the quote opened on line {exc.context_mark.line + 1} is not closed"
    elif reason.startswith("mapping values are not allowed"):
        hint = "; a plain value cannot contain ': ' (put the value in quotes) or the indentation is off"
    elif mark is not None and mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        hint = "; indent with spaces, not tabs"
    return Problem(file, line, column, f"invalid YAML: {reason}{hint}")


def parse_yaml(text: str, file: str, *, strict: bool = True) -> SourceDoc:
    """Parse YAML text safely; raise ConfigError naming file, line and column on any problem.

    With ``strict=False`` only a syntax error raises; duplicate or unsupported keys are returned in
    ``SourceDoc.problems`` (the first value of a duplicated key is kept) so that checking can go on.
    """
    locator = Locator(file, text=text)
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        builder = _Builder(loader, locator)
        data = builder.build(root, ()) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(exc, text, file)]) from None
    except yaml.reader.ReaderError as exc:  # at the character: libyaml's position counts bytes
        where, code = line_column(text, text.find(chr(exc.character))), f"U+{exc.character:04X}"
        raise ConfigError([Problem(file, *where, _CONTROL_CHARACTER.format(code))]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, 1, 1, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if builder.problems and strict:
        raise ConfigError(builder.problems)
    return SourceDoc(data, locator, builder.problems)


def load_yaml(path: Path, display_name: str | None = None, *, strict: bool = True) -> SourceDoc:
    """Read and parse a YAML file; errors name ``display_name`` (default: the path as given)."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(name, 1, 1, f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        replaced = path.read_bytes().decode("utf-8", "replace")
        raise ConfigError([Problem(name, *line_column(replaced, replaced.find("\ufffd")), _NOT_UTF8)]) from None
    return parse_yaml(text, name, strict=strict)
