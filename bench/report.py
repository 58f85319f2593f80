"""The benchmark's outputs: a plain-text table, a JSON document, and a Markdown block for the docs."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.model import Figure

__all__ = ["machine", "markdown", "replace_block", "table", "write_json"]

START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


def machine() -> dict[str, Any]:
    """Where the figures were taken: cores, CPU model, Python, OS, load."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": cores,
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average": [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"
    return f"{text} {unit}".strip()


def _ratio(figure: Figure) -> str:
    return "—" if figure.ratio is None else f"{figure.ratio:.2f}x"


def _result(figure: Figure) -> str:
    return {True: "PASS", False: "FAIL", None: "info"}[figure.passed]


def table(figures: Sequence[Figure]) -> str:
    """An aligned plain-text table, then each figure's baseline and note."""
    rows = [("figure", "baseline", "measured", "ratio", "target", "result")]
    rows += [
        (
            figure.key,
            _number(figure.baseline, figure.unit),
            _number(figure.measured, figure.unit),
            _ratio(figure),
            figure.target,
            _result(figure),
        )
        for figure in figures
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines += [f"{figure.key}: {figure.title}; baseline: {figure.baseline_label}; {figure.note}" for figure in figures]
    return "\n".join(lines) + "\n"


def markdown(figures: Sequence[Figure], host: Mapping[str, Any], taken: datetime) -> str:
    """The Markdown block for ``docs/performance.md`` and the README: the machine and the table."""
    load = host.get("load_average")
    lines = [
        f"Taken {taken.strftime('%Y-%m-%d %H:%M UTC')} on {host['nproc']} x {host['cpu']}, "
        f"Python {host['python']} ({host['platform']})" + (f", load average {load[0]} at start." if load else "."),
        "",
        "| figure | baseline (same run) | measured | ratio | target | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for figure in figures:
        baseline = f"{_number(figure.baseline, figure.unit)} — {figure.baseline_label}"
        lines.append(
            f"| {figure.title} | {baseline} | {_number(figure.measured, figure.unit)} | {_ratio(figure)} "
            f"| {figure.target} | {_result(figure)} |"
        )
    return "\n".join(lines) + "\n"


def replace_block(path: Path, block: str) -> bool:
    """Put ``block`` between the results markers of ``path``; False when the file has no markers."""
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda _: f"{START}\n{block}{END}", text, count=1), encoding="utf-8")
    return True


def write_json(
    path: Path, figures: Sequence[Figure], host: Mapping[str, Any], taken: datetime, extra: Mapping[str, Any]
) -> None:
    """Write the results document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "taken_at": taken.astimezone(UTC).isoformat(timespec="seconds"),
        "machine": dict(host),
        **extra,
        "summary": {
            "passed": sum(1 for figure in figures if figure.passed is True),
            "failed": sum(1 for figure in figures if figure.passed is False),
            "informational": sum(1 for figure in figures if figure.passed is None),
        },
        "figures": [figure.as_json() for figure in figures],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
