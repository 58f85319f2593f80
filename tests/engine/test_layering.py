"""The layering the tree shows is true in the imports: engine < steps < runtime < tools, each below the next.

Every import statement of every module is read (lazy imports inside functions included), so a core that
quietly grows a dependency on a plugin, the AWS SDK or a tool fails here.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The core's third-party dependencies: nothing that knows AWS, Lambda, Twilio or a test double.
ENGINE_ALLOWED = {"engine", "jmespath", "yaml", "jsonschema"}
FORBIDDEN = {
    "engine": {"steps", "runtime", "tools", "handler", "boto3", "botocore", "twilio", "moto", "cryptography"},
    "steps": {"runtime", "tools", "handler", "boto3", "botocore", "moto"},
    "runtime": {"steps", "tools", "handler", "moto", "twilio"},
}


def imported(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports (relative imports resolve to its own package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(path.relative_to(ROOT).parts[0] if node.level else (node.module or "").split(".")[0])
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_what_sits_above_it(package: str) -> None:
    offending = {
        path.relative_to(ROOT).as_posix(): sorted(imported(path) & FORBIDDEN[package]) for path in modules(package)
    }
    assert {name: found for name, found in offending.items() if found} == {}


def test_the_engine_imports_only_the_standard_library_and_its_own_dependencies() -> None:
    outside = {
        path.relative_to(ROOT).as_posix(): sorted(imported(path) - ENGINE_ALLOWED - set(sys.stdlib_module_names))
        for path in modules("engine")
    }
    assert {name: found for name, found in outside.items() if found} == {}


def code_lines(path: Path) -> int:
    """Lines of code in ``path``: not blank, not a comment, not part of a docstring (explaining is not growth)."""
    text = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(
            node, clean=False
        ):
            first = node.body[0]
            docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return sum(
        1
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and number not in docstrings
    )


def test_the_engine_stays_small() -> None:
    lines = sum(code_lines(path) for path in modules("engine"))
    assert lines <= 2423, (
        f"engine/ has {lines} lines of code; move what is not generic core to runtime/, steps/ or tools/"
    )


def test_code_lines_leave_out_docstrings_comments_and_blank_lines(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text('"""Doc\nstring."""\n\n# comment\ndef f() -> int:\n    """Doc."""\n    return 1\n')
    assert code_lines(module) == 2
