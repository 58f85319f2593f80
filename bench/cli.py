"""``python -m bench [--smoke] [--only KEYS] [--json PATH] [--no-docs]``: run the figures, print and save them.

The exit status is 0 whatever the timings (a benchmark never fails a build on a number); it is 1
only when the harness itself breaks, which is what the smoke run is there to catch.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.env import REPO_ROOT, use_fake_aws
from bench.model import Figure, Sizes

__all__ = ["FIGURES", "main"]

Measure = Callable[[Sizes], list[Figure]]


def _figure(module: str) -> Measure:
    def measure(sizes: Sizes) -> list[Figure]:
        from importlib import import_module

        function: Measure = import_module(f"bench.figures.{module}").measure
        return function(sizes)

    return measure


FIGURES: dict[str, Measure] = {
    name: _figure(name)
    for name in ("cold_start", "overhead", "shadow", "round_trips", "moto_events", "bytes_read", "memory", "dryrun")
}
DOCS = (REPO_ROOT / "docs" / "performance.md", REPO_ROOT / "README.md")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: exercise every figure in seconds")
    parser.add_argument("--only", help=f"comma-separated figures to run ({', '.join(FIGURES)})")
    parser.add_argument("--json", type=Path, help="results file (default bench-results/latest.json, or smoke.json)")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md and README.md")
    parser.add_argument("--dryrun-events", type=int, help="events in the dry-run corpus (default 10,000)")
    return parser


def _quiet_logging() -> None:
    """The engine's JSON log lines at INFO, as deployed, written nowhere (they are part of the cost)."""
    from runtime.logs import setup_logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.StreamHandler(open(os.devnull, "w", encoding="utf-8")))  # noqa: SIM115 - lives as long as the process
    setup_logging("INFO")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected figures; print the table; write JSON (and the docs on a full run)."""
    args = _parser().parse_args(argv)
    selected = [name.strip() for name in args.only.split(",")] if args.only else list(FIGURES)
    unknown = [name for name in selected if name not in FIGURES]
    if unknown:
        _parser().error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    sizes = Sizes.tiny() if args.smoke else Sizes.full()
    if args.dryrun_events:
        sizes = dataclasses.replace(sizes, dryrun_events=args.dryrun_events)
    use_fake_aws()
    _quiet_logging()
    from bench.report import machine, markdown, replace_block, table, write_json

    host = machine()
    taken = datetime.now(UTC)
    figures: list[Figure] = []
    broken: list[str] = []
    for name in selected:
        started = time.perf_counter()
        load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        try:
            produced = FIGURES[name](sizes)
            for figure in produced:
                figure.details["load_average_at_start"] = load
            figures.extend(produced)
        except Exception:  # noqa: BLE001 - report every broken figure, then fail the run
            broken.append(name)
            traceback.print_exc()
        sys.stderr.write(f"bench: {name} took {time.perf_counter() - started:.1f} s\n")
    sys.stdout.write(table(figures))
    out = args.json or REPO_ROOT / "bench-results" / ("smoke.json" if args.smoke else "latest.json")
    extra = {"smoke": args.smoke, "sizes": dataclasses.asdict(sizes), "broken": broken}
    write_json(out, figures, host, taken, extra)
    sys.stdout.write(f"\nresults: {out}\n")
    if not (args.smoke or args.only or args.no_docs or broken):
        block = markdown(figures, host, taken)
        for path in DOCS:
            if replace_block(path, block):
                sys.stdout.write(f"updated: {path.relative_to(REPO_ROOT)}\n")
    if broken:
        sys.stderr.write(f"bench: figure(s) failed to run: {', '.join(broken)}\n")
        return 1
    return 0
