"""Write the editor JSON Schemas, ``schemas/pipeline.schema.json`` and ``schemas/rules.schema.json``.

They are generated from the step registry (the schemas ``engine.schema`` builds for the plugins
loaded), with typed scalars relaxed to also accept ``${env:…}`` references and each step's declared example
(``register(example=…)``) offered for its ``with:`` under JSON Schema's ``examples``, so a new step's parameters
appear in editors once it is registered: run ``make schemas`` (``python -m tools.schema_export``) and
commit the result. ``--check`` only compares, exiting 1 when a file is missing or stale. Like the other tools,
it works on the project in the directory it runs in (its ``pipelines/`` and ``schemas/``), installed or not.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.schema import EXPECTED
from tools.console import console_script, load_project_plugins

__all__ = [
    "SCHEMA_DIR",
    "code_descriptions",
    "described_codes",
    "editor_schema",
    "main",
    "published_schemas",
    "render",
    "rendered_schemas",
    "with_examples",
]

SCHEMA_DIR = Path("schemas")
PIPELINES = Path("pipelines")
# What ``null`` means where a rule set's inline test expects an error.
NO_ERROR = "no error: the rules let the event through"
_ENV_REFERENCE = {"type": "string", "pattern": r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$"}


def editor_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in which typed scalars and described patterns also accept an ``${env:…}`` reference."""
    relaxed = copy.deepcopy(schema)

    def relax(node: Any) -> Any:
        if isinstance(node, list):
            return [relax(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: (value if key in ("if", "const", "enum") else relax(value)) for key, value in node.items()}
        if node.get("type") in ("integer", "number", "boolean") or EXPECTED in node:
            return {"anyOf": [node, _ENV_REFERENCE]}
        return node

    return relax(relaxed)  # type: ignore[no-any-return]


def with_examples(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, a pipeline schema, with each step's declared example under ``examples`` in its ``with:`` schema.

    Editors offer an example as a completion; the example is a copy (the registered schema is left as it is).
    """
    from engine import registry

    for rule in schema["$defs"]["step"]["allOf"]:
        spec = registry.get(rule["if"]["properties"]["uses"]["const"])
        if spec is not None and spec.example:
            block = rule["then"]["properties"]
            block["with"] = {**block["with"], "examples": [copy.deepcopy(dict(spec.example))]}
    return schema


def code_descriptions(pipelines: Path = PIPELINES) -> dict[str, str]:
    """Every error code an editor should accept, with what it means and who declares it, by code.

    The codes are the engine's, the registered steps' (``ErrorSpec.description``) and the pipelines' ``errors:`` (their
    ``description:``). Declarers describing one code alike are named together; a code described otherwise by
    another declarer gets each description, and one declared with none names its declarers only.
    """
    import yaml

    from engine import registry
    from engine.errors import ENGINE_ERRORS

    said: dict[str, dict[str, list[str]]] = {}  # by code, the declarers of each description

    def note(code: str, description: str, declarer: str) -> None:
        said.setdefault(code, {}).setdefault(description, []).append(declarer)

    for error in ENGINE_ERRORS:
        note(error.code, error.description, "engine")
    for spec in registry.specs():
        for error in spec.errors:
            note(error.code, error.description, spec.name)
    for path in sorted(pipelines.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        declared = document.get("errors") if isinstance(document, dict) else None
        name = document.get("pipeline") or path.stem if isinstance(document, dict) else path.stem
        for code, entry in declared.items() if isinstance(declared, dict) else ():
            description = entry.get("description") if isinstance(entry, dict) else None
            note(str(code), str(description or ""), f"pipeline {name}")
    return {
        code: "; ".join(
            f"{description} ({', '.join(declarers)})" if description else f"declared by {', '.join(declarers)}"
            for description, declarers in by_description.items()
        )
        for code, by_description in sorted(said.items())
    }


def described_codes(schema: dict[str, Any], descriptions: Mapping[str, str]) -> dict[str, Any]:
    """``schema`` in which each list of the error codes ``descriptions`` holds says what each means (editors show it).

    The list is an ``enum`` (a ``null`` in it is a rule test's "no error"); its ``enumDescriptions`` (an editor's
    keyword, as ``uses``' step summaries) give each entry's meaning, in the same order.
    """

    def describe(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                describe(item)
        elif isinstance(node, dict):
            enum = node.get("enum")
            if isinstance(enum, list) and enum and [code for code in enum if code is not None] == sorted(descriptions):
                node["enumDescriptions"] = [NO_ERROR if code is None else descriptions[code] for code in enum]
            for value in node.values():
                describe(value)

    describe(schema)
    return schema


def published_schemas() -> dict[str, dict[str, Any]]:
    """The editor schemas, by file name under ``schemas/``, for the steps registered now.

    Unlike the schemas loading uses, they name the known error codes, so an editor flags a misspelt one, and say what
    each means.
    """
    from engine.schema import pipeline_schema, rules_schema

    descriptions = code_descriptions()
    codes = sorted(descriptions)
    return {
        "pipeline.schema.json": described_codes(with_examples(editor_schema(pipeline_schema(codes))), descriptions),
        "rules.schema.json": described_codes(editor_schema(rules_schema(codes)), descriptions),
    }


def render(schema: dict[str, Any]) -> str:
    """The file content of a published schema."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def rendered_schemas() -> dict[str, str]:
    """Every published schema's file content, by file name, for the project's plugins (PluginError: where listed)."""
    load_project_plugins()
    return {name: render(schema) for name, schema in published_schemas().items()}


@console_script("python -m tools.schema_export")
def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the published schemas; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.schema_export", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="directory to write to (default: schemas/)")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a schema is missing or stale")
    args = parser.parse_args(argv)
    stale: list[tuple[Path, bool]] = []  # (schema file, whether it is missing)
    for name, text in rendered_schemas().items():
        path = args.out / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append((path, current is None))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        for path, missing in stale:
            if missing:
                print(f"{path} is missing; generate it with `make schemas` and commit the result", file=sys.stderr)
            else:
                print(f"{path} is stale; run `make schemas` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
