"""A build-time proof that configuration files passed JSON Schema validation, so a cold start can skip it.

Importing ``jsonschema`` and validating the files is the largest part of loading configuration. The
files do not change between build and cold start, so the build validates them once and records, in
``config.stamp.json`` beside ``pipelines/`` and ``rules/``, for each file: the digest of its text, the
digest of the schema it was validated against, and for each ``${env:…}`` reference the schema of the
value it stands for (the one part that is only known in the deployed environment).

At load, a file is vouched for when its text and schema digests match and every environment value
satisfies its recorded schema (a small checker for typed scalars). Anything else (no stamp, a changed
file or schema, a value the checker cannot decide) means full validation, with its usual messages:
the stamp can make loading faster, never more lenient. The build writes it (``python -m tools.stamp ROOT``).

Each entry also carries the file's parsed document as JSON (when JSON holds it exactly), so that a
cold start whose file text still matches skips YAML parsing too (``Stamp.document``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "STAMP_FILE", "Stamp", "checkable", "digest", "leaf_holds", "schema_digest"]

STAMP_FILE = "config.stamp.json"
FORMAT = 1
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "deprecated", "x-expected"})
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


def digest(text: str) -> str:
    """The digest of a file's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def schema_digest(schema: Mapping[str, Any]) -> str:
    """The digest of a schema's canonical JSON."""
    return digest(json.dumps(schema, sort_keys=True, separators=(",", ":")))


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


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema means it: a boolean equals only a boolean (``False`` is not ``0``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


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
    if "enum" in schema and not any(_json_equal(value, choice) for choice in schema["enum"]):
        return False
    if "const" in schema and not _json_equal(value, schema["const"]):
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
    """A loaded stamp: the files (by path relative to its directory) it vouches for; ``config.Prevalidated``."""

    def __init__(self, root: Path, files: Mapping[str, Mapping[str, Any]]) -> None:
        self._root = root
        self._files = files
        # Each schema's digest by id, with the schema itself: held, its id cannot pass to another schema.
        self._schemas: dict[int, tuple[Mapping[str, Any], str]] = {}

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
        known = self._schemas.get(id(schema))
        if known is None:
            known = self._schemas[id(schema)] = (schema, schema_digest(schema))
        return known[1]

    def document(self, path: Path, text: str) -> tuple[bool, Any]:
        """Whether the stamp holds the parsed document of ``text`` (read from ``path``), and that document."""
        entry = self._entry(path)
        if entry is None or "document" not in entry or entry.get("text") != digest(text):
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
        if entry is None or entry.get("text") != digest(text):
            return False
        if entry.get("schema") != self._schema_digest(schema):
            return False
        for leaf in entry.get("env", []):
            found, value = _value_at(resolved, tuple(leaf["path"]))
            if not found or not all(leaf_holds(value, part) is True for part in leaf["schemas"]):
                return False
        return True
