"""Console scripts whose reader goes away (``| head``) end quietly, with the shell's SIGPIPE status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.console import EXIT_READER_GONE

REPO = Path(__file__).resolve().parents[2]


def test_a_dry_run_whose_reader_is_gone_ends_without_a_traceback() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader at all: the first write fails, as after `| head -1` has exited
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "tools.dryrun.cli", "--world", "examples/world.yaml", "examples/events"],
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in finished.stderr, finished.stderr
    assert finished.returncode == EXIT_READER_GONE
