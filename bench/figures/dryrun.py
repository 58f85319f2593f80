"""Dry-run replay throughput: ``pipeline-dryrun --backend memory`` over a generated corpus, checked against moto.

The corpus (``tools.dryrun.corpus``) is a world of conversations and a stream of signed events with
bursts, handoffs, errors and status callbacks. Both backends replay it with ``--json``; their outputs
must be identical line for line once the per-step timings (``trace[].ms``) are set aside. Throughput
is events over the wall time of the whole command, process start and world loading included.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.env import REPO_ROOT
from bench.model import Figure, Sizes

__all__ = ["comparable", "measure"]

TARGET_EVENTS_PER_SECOND = 1000.0
SEED = 7


def comparable(line: str) -> Any:
    """One output line with its timings removed."""
    record = json.loads(line)
    for entry in record.get("trace") or []:
        entry.pop("ms", None)
    return record


def _replay(backend: str, world: Path, events: Path) -> tuple[list[str], float, float]:
    """Output lines, wall seconds and CPU seconds (user + system) of one replay."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tools.dryrun.cli", "--world", str(world), "--json", "--backend", backend, str(events)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stdout.splitlines(), wall, cpu


def measure(sizes: Sizes) -> list[Figure]:
    """The throughput figure, with the moto reference's time and the comparison in its details."""
    from tools.dryrun.corpus import generate_corpus

    corpus = generate_corpus(sizes.dryrun_conversations, sizes.dryrun_events, seed=SEED)
    with tempfile.TemporaryDirectory() as folder:
        world, events = corpus.write(Path(folder))
        memory, memory_wall, memory_cpu = _replay("memory", world, events)
        reference, moto_wall, moto_cpu = _replay("moto", world, events)
    count = sizes.dryrun_events
    differing = [
        index
        for index, (ours, theirs) in enumerate(zip(memory, reference, strict=False))
        if comparable(ours) != comparable(theirs)
    ]
    identical = len(memory) == len(reference) == count and not differing
    rate = count / memory_wall
    outcomes: dict[str, int] = {}
    for line in memory:
        outcome = str(json.loads(line).get("outcome"))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return [
        Figure(
            key="dryrun_throughput",
            title=f"dry-run replay, {count} events, {sizes.dryrun_conversations}-conversation world",
            unit="events/s",
            measured=round(rate, 1),
            baseline_label="moto reference backend (same corpus)",
            baseline=round(count / moto_wall, 1),
            ratio=round(rate / (count / moto_wall), 3),
            target=f">= {TARGET_EVENTS_PER_SECOND:.0f} events/s, output identical to moto",
            passed=rate >= TARGET_EVENTS_PER_SECOND and identical,
            note=f"wall time of the whole command; output {'identical' if identical else 'DIFFERS'} to moto",
            details={
                "identical": identical,
                "lines": {"memory": len(memory), "moto": len(reference)},
                "first_differences": differing[:10],
                "memory_wall_s": round(memory_wall, 2),
                "memory_cpu_s": round(memory_cpu, 2),
                "moto_wall_s": round(moto_wall, 2),
                "moto_cpu_s": round(moto_cpu, 2),
                "outcomes": outcomes,
            },
        )
    ]
