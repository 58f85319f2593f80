"""A build that cannot get its dependencies ends with the build's error line, not a Python traceback.

The build runs as CI runs it (``scripts/build_lambda.py`` in a process of its own), with pip pointed at a package
index that refuses connections (no configuration file, no retries): nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.expect import ROOT


def test_a_package_index_out_of_reach_fails_the_build_with_an_error_line(tmp_path: Path) -> None:
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("PIP_")},
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [
            sys.executable,
            "scripts/build_lambda.py",
            "--arch",
            "arm64",
            "--stage-dir",
            str(tmp_path / "stage"),
            "--no-zip",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == (
        "error: pip could not resolve the runtime dependencies for the Lambda platform (exit status 1; pip's "
        "message is above); is the package index reachable?"
    )
