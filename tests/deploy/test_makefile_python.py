"""The interpreter the Makefile makes its virtualenvs with: Python 3.11 where installed, whatever ``python3`` is.

A fresh machine "with Python 3.11" (README.md, docs/deploy.md) often has it beside another ``python3`` (Ubuntu 22.04's
is 3.10, which ``requires-python`` refuses; 24.04's is 3.12, whose build ships no bytecode). ``make -n`` prints what
would run, in a copy of the files the targets read, with a PATH holding only the interpreters named here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.expect import ROOT

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs make")


def _planned(tmp_path: Path, interpreters: tuple[str, ...], *target: str) -> list[str]:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, project / name)
    path = tmp_path / "bin"
    path.mkdir()
    for name in interpreters:
        (path / name).symlink_to(sys.executable)
    assert MAKE is not None
    done = subprocess.run(
        [MAKE, "-n", *target], cwd=project, env={"PATH": str(path)}, capture_output=True, text=True, check=True
    )
    return [line for line in done.stdout.splitlines() if " -m venv " in line]


@pytest.mark.parametrize(
    ("target", "venv"),
    [(("install",), ".venv"), (("build-PipelineFunction", "ARTIFACTS_DIR=out"), ".aws-sam/build-venv")],
)
def test_the_virtualenvs_are_made_with_python3_11_where_python3_is_another(
    tmp_path: Path, target: tuple[str, ...], venv: str
) -> None:
    assert _planned(tmp_path, ("python3", "python3.11"), *target) == [f"{tmp_path}/bin/python3.11 -m venv {venv}"]


def test_without_python3_11_the_virtualenv_is_made_with_python3(tmp_path: Path) -> None:
    assert _planned(tmp_path, ("python3",), "install") == ["python3 -m venv .venv"]
