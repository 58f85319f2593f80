"""``pipeline-dryrun … --report FILE``: the replay's ``--json`` records rendered as the decision report page.

The page (``tools.dryrun.report_page``) draws the pipeline most events went through, from its YAML file.
The replay's banner lines become the page's notes; with a baseline and an evolving world, a note says why
``--independent`` suits a review better.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from engine.config import AppConfig, display_path
from tools.dryrun.report import Summary
from tools.dryrun.report_page import PipelineSketch, ReportMeta, render_report
from tools.dryrun.world import WorldSpec

if TYPE_CHECKING:
    from tools.dryrun.replay import ReplayOptions

__all__ = ["report_meta", "write_report"]


def report_meta(options: ReplayOptions, world: WorldSpec | None, banner: Sequence[str], summary: Summary) -> ReportMeta:
    """What the replay was, for the page's header and notes."""
    rules = display_path(options.rules)
    baseline = options.baseline_name
    title = options.report_title or (f"Dry-run: {rules} against {baseline}" if baseline else f"Dry-run: {rules}")
    notes = [line for line in banner if line]
    if summary.masked:
        notes.append(
            f"{summary.masked} event(s) came from masked recordings and a rule read a masked field: "
            "those decisions may differ in production"
        )
    return ReportMeta(
        title=title,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        baseline=baseline,
        world=world.file if world is not None else "live account (read only)",
        notes=tuple(notes),
    )


def _sketch(configs: Sequence[AppConfig], records: Sequence[dict[str, Any]]) -> PipelineSketch:
    """The pipeline most events were routed to (the first one when none was)."""
    used = Counter(record.get("pipeline") for record in records if record.get("pipeline"))
    name = used.most_common(1)[0][0] if used else configs[0].name
    config = next((config for config in configs if config.name == name), configs[0])
    document = yaml.safe_load(Path(config.files[0]).read_text(encoding="utf-8"))
    return PipelineSketch.from_document(document)


def write_report(
    path: Path,
    lines: Sequence[str],
    configs: Sequence[AppConfig],
    meta: ReportMeta,
    scrub: Callable[[str], str],
) -> None:
    """Render the records (``--json`` lines) and write the page to ``path``; OSError when it cannot be written."""
    records = [json.loads(line) for line in lines]
    page = render_report(records, _sketch(configs, records), meta)
    path.write_text(scrub(page), encoding="utf-8")
