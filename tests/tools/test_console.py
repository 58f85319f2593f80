"""Console scripts whose reader goes away (``| head``) end quietly, with the shell's SIGPIPE status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.console import EXIT_READER_GONE

REPO = Path(__file__).resolve().parents[2]


def to_a_gone_reader(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m`` ``command``, its output a pipe with no reader at all: the first write fails, as after
    ``| head -1`` has exited."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", *command],
            cwd=REPO,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


def test_a_dry_run_whose_reader_is_gone_ends_without_a_traceback() -> None:
    finished = to_a_gone_reader(["tools.dryrun.cli", "--world", "examples/world.yaml", "examples/events"])
    assert "Traceback" not in finished.stderr, finished.stderr
    assert finished.returncode == EXIT_READER_GONE


@pytest.mark.parametrize(
    "command",
    [
        ["tools.dryrun.world_cli", "pseudonymize", "--key-env", "CAPTURE_KEY", "examples/world.yaml"],
        ["tools.dryrun.event_cli", "mask", "examples/events/01_whatsapp_text.json"],
    ],
    ids=["pipeline-world", "pipeline-event"],
)
def test_a_tool_printing_to_a_reader_that_is_gone_ends_quietly(command: list[str]) -> None:
    # Defect: `pipeline-world pseudonymize world.yaml | head` took the broken pipe for a failure of its own, printed
    # `pipeline-world: error: [Errno 32] Broken pipe` and exited 2 (bad arguments), where dry-run.md promises
    # pipeline-world, as pipeline-event and pipeline-dryrun, ends quietly with 141.
    finished = to_a_gone_reader(command, {**os.environ, "CAPTURE_KEY": "0123456789abcdef0123456789abcdef"})
    assert (finished.returncode, finished.stderr) == (EXIT_READER_GONE, "")
