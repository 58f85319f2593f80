"""Safe YAML loading that remembers where every value came from.

``load_yaml`` returns the plain data plus a ``Locator`` that maps a path inside the document
(a tuple of keys and list indexes, as jsonschema reports it) to the 1-based line and column
of the value. Duplicate keys are errors, not silent overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import ConfigError, Problem

__all__ = ["Locator", "SourceDoc", "load_yaml", "parse_yaml"]

PathKey = tuple[Any, ...]


@dataclass
class Locator:
    """Positions of the values (and of the keys) of one YAML document."""

    file: str
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Sequence[Any]) -> tuple[int, int]:
        """The position of the value at ``path``, or of its nearest located ancestor."""
        key = tuple(path)
        while key not in self.values and key:
            key = key[:-1]
        return self.values.get(key, (1, 1))

    def key_position(self, path: Sequence[Any]) -> tuple[int, int]:
        """The position of the key that names ``path`` (falls back to the value's)."""
        return self.keys.get(tuple(path)) or self.position(path)

    def problem(self, path: Sequence[Any], message: str, *, at_key: bool = False, severity: str = "error") -> Problem:
        """A Problem located at ``path`` in this file."""
        line, column = self.key_position(path) if at_key else self.position(path)
        return Problem(self.file, line, column, message, severity)


@dataclass
class SourceDoc:
    """A loaded YAML document: its data and where each value sits."""

    data: Any
    locator: Locator


def _mark(node: Node) -> tuple[int, int]:
    """1-based position of a node's content (inside the quotes of a quoted scalar)."""
    quoted = isinstance(node, ScalarNode) and node.style in ("'", '"')
    return node.start_mark.line + 1, node.start_mark.column + 1 + (1 if quoted else 0)


class _Builder:
    """Turns a composed node tree into plain values, recording positions on the way."""

    def __init__(self, loader: yaml.SafeLoader, locator: Locator) -> None:
        self._loader = loader
        self._locator = locator
        self.problems: list[Problem] = []

    def build(self, node: Node, path: PathKey) -> Any:
        self._locator.values[path] = _mark(node)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            return self._loader.construct_object(node, deep=True)
        raise ConfigError([Problem(self._locator.file, *_mark(node), "unsupported YAML node")])

    def _mapping(self, node: MappingNode, path: PathKey) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
                line, column = _mark(key_node)
                self.problems.append(
                    Problem(self._locator.file, line, column, "YAML merge keys (<<) are not supported")
                )
                continue
            key = self._loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                line, column = _mark(key_node)
                self.problems.append(Problem(self._locator.file, line, column, "mapping keys must be plain scalars"))
                continue
            if key in result:
                line, column = _mark(key_node)
                first_line, _ = self._locator.keys[(*path, key)]
                self.problems.append(
                    Problem(
                        self._locator.file,
                        line,
                        column,
                        f"duplicate key {key!r} (first defined on line {first_line}); remove one of them",
                    )
                )
                continue
            self._locator.keys[(*path, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result


def parse_yaml(text: str, file: str) -> SourceDoc:
    """Parse YAML text safely; raise ConfigError naming file, line and column on any problem."""
    locator = Locator(file)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        builder = _Builder(loader, locator)
        data = builder.build(root, ()) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([Problem(file, line, column, f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, 1, 1, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise ConfigError(builder.problems)
    return SourceDoc(data, locator)


def load_yaml(path: Path, display_name: str | None = None) -> SourceDoc:
    """Read and parse a YAML file; errors name ``display_name`` (default: the path as given)."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(name, 1, 1, f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(name, 1, 1, "file is not valid UTF-8")]) from None
    return parse_yaml(text, name)
