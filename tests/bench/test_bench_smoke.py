"""The benchmark at tiny sizes, so that the harness cannot rot. Timings are never asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {
    "cold_start",
    "cold_start_unstamped",
    "cold_start_vs_clients",
    "engine_overhead",
    "engine_overhead_totals_baseline",
    "engine_overhead_bare_baseline",
    "engine_overhead_warning",
    "engine_overhead_threads",
    "shadow_overhead",
    "shadow_overhead_mismatch",
    "round_trips",
    "latency_p50_delayed",
    "latency_p50_boto3_floor",
    "latency_p50_moto",
    "moto_per_event",
    "bytes_read",
    "peak_memory",
    "dryrun_throughput",
}


@pytest.mark.integration
def test_every_figure_runs_at_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-docs", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    document = json.loads(out.read_text())
    assert document["smoke"] is True
    assert document["broken"] == []
    assert document["machine"]["nproc"] >= 1
    figures = {figure["key"]: figure for figure in document["figures"]}
    assert set(figures) == FIGURES
    for figure in figures.values():
        assert math.isfinite(figure["measured"]), figure
        assert figure["passed"] in (True, False, None)
    assert figures["dryrun_throughput"]["details"]["lines"]["memory"] == document["sizes"]["dryrun_events"]
    assert "engine_overhead" in done.stdout
