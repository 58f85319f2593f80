"""Writing the build's stamp (``config.stamp.json``): which configuration files passed JSON Schema validation.

The build runs ``python -m tools.stamp ROOT`` in the artifact after copying its code, ``pipelines/``, ``rules/``
and its plugin list (``runtime.plugins``) into it. That loads the plugins the artifact records and every pipeline
with them, as the cold start will (``${env:…}`` values aside, which are only known where the function runs), and
refuses the artifact when any fails to load (exit status 2) or, all else loading, an inline rule test fails (exit
status 1), the statuses ``pipeline-dryrun --check`` gives them: each finding is printed
``FILE:LINE:COLUMN: message``. A plugin that cannot be imported ends it as it ends every tool (exit status 2, one
``python -m tools.stamp: error: …`` line). A cold start then reads the stamp (``runtime.stamp``) and skips
validating the files it vouches for. A file is left out (and validated at load as usual) when it has schema
problems, or when it holds an ``${env:…}`` value whose schema is beyond the stamp's scalar checker.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from runtime.layout import yaml_files
from runtime.stamp import FORMAT, STAMP_FILE, Path_, checkable, digest, schema_digest
from tools.console import console_script

__all__ = ["ConfigProblems", "config_problems", "env_paths", "main", "write_stamp"]

_NOT_JSON = object()
_ENV = "${env:"


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
    from jsonschema import Draft202012Validator

    from tools.schema_export import editor_schema

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
        "text": digest(text),
        "schema": schema_digest(schema),
        "env": [{"path": list(path), "schemas": found} for path, found in leaves.items()],
    }
    document = _as_json(data)
    if document is not _NOT_JSON:
        entry["document"] = document
    return entry


def write_stamp(root: Path, pipelines: Sequence[Path], rules_dir: Path) -> tuple[Path, list[str]]:
    """Validate and stamp the pipeline and rules files under ``root``; return the stamp and the files left out.

    The steps must be registered (``runtime.plugins.load_plugins``): the pipeline schema is assembled from them.
    """
    from engine.errors import ConfigError
    from engine.schema import pipeline_schema, rules_schema
    from engine.yamlsource import parse_yaml

    pipeline_schema_ = pipeline_schema()
    schemas = [(pipeline, pipeline_schema_) for pipeline in pipelines]
    rules_schema_ = rules_schema()
    schemas += [(path, rules_schema_) for path in yaml_files(rules_dir)]
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


class ConfigProblems(NamedTuple):
    """What keeps a configuration from loading, one located line each; ``tests_only``: only inline tests failed."""

    lines: list[str]
    tests_only: bool


def config_problems(pipelines: Sequence[Path], rules_dir: Path) -> ConfigProblems:
    """What keeps any of ``pipelines`` (with ``rules_dir``) from loading, located; unset ``${env:…}`` values aside.

    The steps must be registered (``runtime.plugins.load_plugins``).
    """
    from runtime.verify import pipeline_clashes, verify

    found: dict[str, None] = {str(problem): None for problem in pipeline_clashes(pipelines)}
    failed: set[str] = set()
    for pipeline in pipelines:
        verification = verify(pipeline, rules_dir, {}, missing_env="warning")
        failed.update(str(problem) for verdict in verification.verdicts for problem in verdict.failures)
        for problem in verification.errors:
            found[str(problem)] = None
    return ConfigProblems(list(found), bool(found) and failed.issuperset(found))


_PROG = "python -m tools.stamp"


@console_script(_PROG)
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.stamp [ROOT]``: check, then stamp, ``ROOT``'s ``pipelines/`` and ``rules/``.

    A plugin that cannot be imported ends it as it ends every tool (``console_script``): one line, exit status 2.
    """
    import argparse

    from engine.errors import Problem
    from runtime.layout import NO_PIPELINES, PIPELINES_DIR, RULES_DIR, pipeline_files
    from tools.console import EXIT_CHANGED, EXIT_USAGE, load_project_plugins

    parser = argparse.ArgumentParser(prog=_PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("root", nargs="?", type=Path, default=Path("."), help="the task root (default: .)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        said = "not a directory" if args.root.exists() else "no such directory"
        sys.stderr.write(f"{parser.prog}: error: {args.root}: {said}\n")
        return EXIT_USAGE
    load_project_plugins(args.root)
    pipelines = pipeline_files(args.root / PIPELINES_DIR)
    if pipelines:
        problems = config_problems(pipelines, args.root / RULES_DIR)
    else:  # the cold start refuses a root with no pipeline file to read (runtime.app.load_pipelines)
        problems = ConfigProblems([str(Problem(str(args.root / PIPELINES_DIR), 1, 1, NO_PIPELINES))], False)
    if problems.lines:
        sys.stdout.write("".join(f"{problem}\n" for problem in problems.lines))
        count = len(problems.lines)
        sys.stderr.write(f"{_PROG}: error: {count} problem(s): the configuration would fail the cold start\n")
        # As pipeline-dryrun --check ends: 1 when only inline tests failed, 2 for a configuration that does not load.
        return EXIT_CHANGED if problems.tests_only else EXIT_USAGE
    stamp, left_out = write_stamp(args.root, pipelines, args.root / RULES_DIR)
    for name in left_out:
        sys.stderr.write(
            f"{name}: not stamped (schema problems, or a value the stamp cannot check); validated at load\n"
        )
    sys.stdout.write(f"{stamp}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
