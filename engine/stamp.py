"""A build-time proof that configuration files passed JSON Schema validation, so a cold start can skip it.

Importing ``jsonschema`` and validating the files is the largest part of loading configuration. The
files do not change between build and cold start, so the build validates them once and records, in
``config.stamp.json`` beside ``pipelines/`` and ``rules/``, for each file: the digest of its text, the
digest of the schema it was validated against, and for each ``${env:…}`` reference the schema of the
value it stands for (the one part that is only known in the deployed environment).

At load, a file is vouched for when its text and schema digests match and every environment value
satisfies its recorded schema (a small checker for typed scalars). Anything else (no stamp, a changed
file or schema, a value the checker cannot decide) means full validation, with its usual messages:
the stamp can make loading faster, never more lenient. Write it with ``python -m engine.stamp [ROOT]``.

Each entry also carries the file's parsed document as JSON (when JSON holds it exactly), so that a
cold start whose file text still matches skips YAML parsing too (``Stamp.document``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["STAMP_FILE", "Stamp", "checkable", "env_paths", "leaf_holds", "main", "schema_digest", "write_stamp"]

STAMP_FILE = "config.stamp.json"
FORMAT = 1
_ENV = "${env:"
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "deprecated"})
# Keywords that only constrain arrays and objects: an environment value is always a scalar.
_CONTAINERS = frozenset(
    {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains"}
    | {"properties", "patternProperties", "additionalProperties", "required", "propertyNames"}
    | {"minProperties", "maxProperties", "dependentRequired", "dependentSchemas"}
)
_CHECKED = frozenset(
    {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
    | {"minLength", "maxLength", "pattern"}
)
_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}
Path_ = tuple[Any, ...]
_NOT_JSON = object()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def schema_digest(schema: Mapping[str, Any]) -> str:
    """The digest of a schema's canonical JSON."""
    return _digest(json.dumps(schema, sort_keys=True, separators=(",", ":")))


def env_paths(data: Any, path: Path_ = ()) -> Iterator[Path_]:
    """The paths of the string values that hold an ``${env:…}`` reference."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from env_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from env_paths(value, (*path, index))
    elif isinstance(data, str) and _ENV in data:
        yield path


def _value_at(data: Any, path: Path_) -> tuple[bool, Any]:
    for part in path:
        inside = part in data if isinstance(data, dict) else isinstance(part, int) and 0 <= part < len(data)
        if not isinstance(data, (dict, list)) or not inside:
            return False, None
        data = data[part]
    return True, data


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    if name == "number":
        return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, _TYPES.get(name, ()))


def checkable(schema: Mapping[str, Any]) -> bool:
    """True when ``leaf_holds`` decides ``schema`` fully: scalar keywords only, a pattern that compiles."""
    if not set(schema) <= _CHECKED | _ANNOTATIONS | _CONTAINERS:
        return False
    try:
        re.compile(str(schema.get("pattern", "")))
    except re.error:
        return False
    return True


def leaf_holds(value: Any, schema: Mapping[str, Any]) -> bool | None:
    """Whether ``value`` satisfies a scalar ``schema``; None when the schema is beyond this checker."""
    if not checkable(schema) or isinstance(value, (dict, list)):
        return None
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, str(name)) for name in names):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if _is_type(value, "number") and not (
        value >= schema.get("minimum", value)
        and value <= schema.get("maximum", value)
        and ("exclusiveMinimum" not in schema or value > schema["exclusiveMinimum"])
        and ("exclusiveMaximum" not in schema or value < schema["exclusiveMaximum"])
    ):
        return False
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            return False
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return False
    return True


class Stamp:
    """A loaded stamp: which files (by path relative to its directory) it vouches for."""

    def __init__(self, root: Path, files: Mapping[str, Mapping[str, Any]]) -> None:
        self._root = root
        self._files = files
        self._schemas: dict[int, str] = {}

    @classmethod
    def read(cls, path: Path) -> Stamp | None:
        """The stamp at ``path``; None when there is none or it cannot be used."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            return None
        files = document.get("files")
        return cls(path.resolve().parent, files) if isinstance(files, dict) else None

    def _schema_digest(self, schema: Mapping[str, Any]) -> str:
        key = id(schema)
        if key not in self._schemas:
            self._schemas[key] = schema_digest(schema)
        return self._schemas[key]

    def document(self, path: Path, text: str) -> tuple[bool, Any]:
        """Whether the stamp holds the parsed document of ``text`` (read from ``path``), and that document."""
        entry = self._entry(path)
        if entry is None or "document" not in entry or entry.get("text") != _digest(text):
            return False, None
        return True, entry["document"]

    def _entry(self, path: Path) -> Mapping[str, Any] | None:
        try:
            name = path.resolve().relative_to(self._root).as_posix()
        except ValueError:
            return None
        entry = self._files.get(name)
        return entry if isinstance(entry, Mapping) else None

    def vouches(self, path: Path, text: str, resolved: Any, schema: Mapping[str, Any]) -> bool:
        """True when ``text`` (read from ``path``, ``resolved`` after ``${env:…}``) needs no schema validation."""
        entry = self._entry(path)
        if entry is None or entry.get("text") != _digest(text):
            return False
        if entry.get("schema") != self._schema_digest(schema):
            return False
        for leaf in entry.get("env", []):
            found, value = _value_at(resolved, tuple(leaf["path"]))
            if not found or not all(leaf_holds(value, part) is True for part in leaf["schemas"]):
                return False
        return True


def _if_keys(schema: Any) -> set[str]:
    """Property names that any ``if`` of ``schema`` looks at (a value there can switch a branch)."""
    found: set[str] = set()
    if isinstance(schema, dict):
        condition = schema.get("if")
        if isinstance(condition, dict):
            found |= set(condition.get("properties", {})) | set(condition.get("required", []))
        for value in schema.values():
            found |= _if_keys(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _if_keys(value)
    return found


def _same(a: Any, b: Any) -> bool:
    """``a == b`` with the same types throughout (``1``, ``1.0`` and ``True`` differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _as_json(data: Any) -> Any:
    """``data`` when JSON holds it exactly (keys and order included), else ``_NOT_JSON``."""
    try:
        copied = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError):
        return _NOT_JSON
    return copied if _same(copied, data) else _NOT_JSON


def _replace(data: Any, path: Path_, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _entry(text: str, data: Any, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The stamp entry of one file, or None when it cannot be vouched for."""
    import copy

    from jsonschema import Draft202012Validator

    from engine.schema import editor_schema

    if any(True for _ in Draft202012Validator(editor_schema(schema)).iter_errors(data)):
        return None
    paths = list(env_paths(data))
    switches = _if_keys(schema)
    if any(path and path[-1] in switches for path in paths):
        return None
    probe = copy.deepcopy(data)
    for path in paths:
        _replace(probe, path, {"\u0000probe": True})
    leaves: dict[Path_, list[dict[str, Any]]] = {path: [] for path in paths}
    for error in Draft202012Validator(schema).iter_errors(probe):
        where = tuple(error.absolute_path)
        if where not in leaves or error.validator not in ("type", "enum", "const") or error.context:
            return None
        leaves[where].append(dict(error.schema))
    if any(not found or not all(checkable(part) for part in found) for found in leaves.values()):
        return None
    entry = {
        "text": _digest(text),
        "schema": schema_digest(schema),
        "env": [{"path": list(path), "schemas": found} for path, found in leaves.items()],
    }
    document = _as_json(data)
    if document is not _NOT_JSON:
        entry["document"] = document
    return entry


def write_stamp(root: Path, pipeline: Path, rules_dir: Path) -> tuple[Path, list[str]]:
    """Validate and stamp the pipeline and rules files under ``root``; return the stamp and the files left out."""
    import steps  # noqa: F401 - registers the built-in steps (the pipeline schema is assembled from them)
    from engine.errors import ConfigError
    from engine.schema import pipeline_schema, rules_schema
    from engine.yamlsource import parse_yaml

    schemas = [(pipeline, pipeline_schema())]
    rules_schema_ = rules_schema()
    schemas += [(path, rules_schema_) for path in sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])]
    files: dict[str, Any] = {}
    left_out: list[str] = []
    base = root.resolve()
    for path, schema in schemas:
        name = path.resolve().relative_to(base).as_posix()
        text = path.read_text(encoding="utf-8")
        try:
            entry = _entry(text, parse_yaml(text, name).data, schema)
        except ConfigError:
            entry = None
        if entry is None:
            left_out.append(name)
        else:
            files[name] = entry
    stamp = root / STAMP_FILE
    stamp.write_text(json.dumps({"format": FORMAT, "files": files}, indent=1) + "\n", encoding="utf-8")
    return stamp, left_out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m engine.stamp [ROOT]``: write ``ROOT/config.stamp.json`` for ``pipelines/`` and ``rules/``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m engine.stamp", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("root", nargs="?", type=Path, default=Path("."), help="the task root (default: .)")
    args = parser.parse_args(argv)
    from engine.app import PIPELINE_FILE, RULES_DIR

    stamp, left_out = write_stamp(args.root, args.root / PIPELINE_FILE, args.root / RULES_DIR)
    for name in left_out:
        sys.stderr.write(
            f"{name}: not stamped (schema problems, or a value the stamp cannot check); validated at load\n"
        )
    sys.stdout.write(f"{stamp}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
