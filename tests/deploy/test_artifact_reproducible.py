"""The artifact does not depend on where it was built: two build environments at other paths, the same bytes.

Each build runs ``scripts/build_lambda.py`` from a virtualenv of its own (at its own path, holding this one's packages),
as two machines or two checkouts would: whatever a dependency's installation records of the interpreter that
installed it must not reach the artifact, or every build is a new code version to deploy. The builds download the
Lambda wheels: ``RUN_BUILD_TESTS=1`` only.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.support.expect import ROOT

pytestmark = pytest.mark.skipif(
    not os.environ.get("RUN_BUILD_TESTS"), reason="downloads the Lambda wheels (RUN_BUILD_TESTS=1)"
)

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def _build_environment(root: Path) -> Path:
    """A virtualenv at ``root`` whose packages are this environment's; its interpreter."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    return python


def test_builds_from_environments_at_other_paths_are_byte_identical(tmp_path: Path) -> None:
    arch = ARCHES.get(platform.machine().lower())
    if arch is None:
        pytest.skip(f"no Lambda architecture for {platform.machine()}")
    if f"{sys.version_info.major}.{sys.version_info.minor}" != "3.11":
        pytest.skip("the runtime's Python is needed to precompile")
    env = {name: value for name, value in os.environ.items() if name not in ("VIRTUAL_ENV", "PYTHONPATH")}
    trees = []
    for name in ("one", "elsewhere-two"):
        python = _build_environment(tmp_path / name / "venv")
        stage = tmp_path / name / "stage"
        subprocess.run(
            [str(python), "scripts/build_lambda.py", "--arch", arch, "--stage-dir", str(stage), "--no-zip"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=True,
        )
        trees.append({p.relative_to(stage).as_posix(): p.read_bytes() for p in stage.rglob("*") if p.is_file()})
    assert trees[0].keys() == trees[1].keys()
    assert sorted(name for name in trees[0] if trees[0][name] != trees[1][name]) == []
