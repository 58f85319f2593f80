"""Write the editor JSON Schemas, ``schemas/pipeline.schema.json`` and ``schemas/rules.schema.json``.

They are generated from the step registry (``engine.schema.published_schemas``), so a new step's
parameters appear in editors once it is registered: run ``make schemas`` (``python -m
engine.schema_export``) and commit the result. ``--check`` only compares, exiting 1 when a file is
missing or stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_DIR", "main", "render", "rendered_schemas"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def render(schema: dict[str, Any]) -> str:
    """The file content of a published schema."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def rendered_schemas() -> dict[str, str]:
    """Every published schema's file content, by file name, for the built-in steps."""
    import steps  # noqa: F401 - registers the built-in steps
    from engine.schema import published_schemas

    return {name: render(schema) for name, schema in published_schemas().items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the published schemas; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m engine.schema_export", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="directory to write to (default: schemas/)")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a schema is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered_schemas().items():
        path = args.out / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        for path in stale:
            print(f"{path} is stale; run `make schemas` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
