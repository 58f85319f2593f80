"""Write the editor JSON Schemas, ``schemas/pipeline.schema.json`` and ``schemas/rules.schema.json``.

They are generated from the step registry (the schemas ``engine.schema`` builds for the plugins
loaded), with typed scalars relaxed to also accept ``${env:…}`` references, so a new step's parameters
appear in editors once it is registered: run ``make schemas`` (``python -m tools.schema_export``) and
commit the result. ``--check`` only compares, exiting 1 when a file is missing or stale. Like the other tools,
it works on the project in the directory it runs in (its ``pipelines/`` and ``schemas/``), installed or not.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.schema import EXPECTED
from tools.console import console_script, load_project_plugins

__all__ = ["SCHEMA_DIR", "editor_schema", "main", "published_schemas", "render", "rendered_schemas"]

SCHEMA_DIR = Path("schemas")
PIPELINES = Path("pipelines")
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


def known_codes(pipelines: Path = PIPELINES) -> list[str]:
    """Every error code an editor should accept: the engine's, the registered steps', the pipelines' ``errors:``."""
    import yaml

    from engine import registry
    from engine.errors import ENGINE_ERRORS

    codes = {spec.code for spec in ENGINE_ERRORS} | {error.code for spec in registry.specs() for error in spec.errors}
    for path in sorted(pipelines.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        declared = document.get("errors") if isinstance(document, dict) else None
        codes |= {str(code) for code in declared} if isinstance(declared, dict) else set()
    return sorted(codes)


def published_schemas() -> dict[str, dict[str, Any]]:
    """The editor schemas, by file name under ``schemas/``, for the steps registered now.

    Unlike the schemas loading uses, they name the known error codes, so an editor flags a misspelt one.
    """
    from engine.schema import pipeline_schema, rules_schema

    codes = known_codes()
    return {
        "pipeline.schema.json": editor_schema(pipeline_schema(codes)),
        "rules.schema.json": editor_schema(rules_schema(codes)),
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
