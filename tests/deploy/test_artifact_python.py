"""The artifact built by a Python that is not the runtime's: it builds, without ``.pyc`` files (docs/deploy.md).

The runtime's Python is the build's target (``PYTHON_VERSION``, as the template's ``Runtime``); this machine's
Python is 3.11, so the mismatch is made the other way round: the same build, for a runtime of another version. Its
dependencies are the wheels of that version, which this Python cannot import, and any bytecode this Python writes
is of no use to that runtime. The build downloads the Lambda wheels: ``RUN_BUILD_TESTS=1`` only.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("RUN_BUILD_TESTS"), reason="downloads the Lambda wheels (RUN_BUILD_TESTS=1)"
)

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def test_a_build_on_another_python_makes_an_artifact_without_bytecode(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = ARCHES.get(platform.machine().lower())
    if arch is None:
        pytest.skip(f"no Lambda architecture for {platform.machine()}")
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    monkeypatch.setattr(build, "PYTHON_VERSION", other)
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # as on a build machine: bytecode is written
    stage = tmp_path / "stage"

    status = build.main(["--arch", arch, "--stage-dir", str(stage), "--no-zip"])

    out = capsys.readouterr().out
    assert status == 0, out[-2000:]
    tag = f"cpython-{other.replace('.', '')}"
    assert any(tag in path.name for path in stage.rglob("*.so")), "the dependencies are the runtime's wheels"
    assert (stage / "config.stamp.json").is_file() and (stage / "handler.py").is_file()
    assert sorted(path.relative_to(stage).as_posix() for path in stage.rglob("*.pyc")) == []
    assert f"is not {other}; .pyc files not precompiled" in out
