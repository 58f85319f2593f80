"""``pipeline-dryrun … --report FILE``: the replay's ``--json`` records rendered as the decision report page.

The page (``tools.dryrun.report_page``) draws the pipelines the events went through, from their YAML files.
The replay's banner lines become the page's notes; with a baseline and an evolving world, a note says why
``--independent`` suits a review better.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from engine.config import AppConfig, display_path
from tools.dryrun.coverage import Lent
from tools.dryrun.report import Summary
from tools.dryrun.report_page import PipelineSketch, ReportMeta, render_report
from tools.dryrun.world import WorldSpec
from tools.private import write_private

if TYPE_CHECKING:
    from tools.dryrun.replay import ReplayOptions

__all__ = ["ReportError", "Scrub", "report_meta", "write_report"]

# Removes credentials from the strings of a value (``tools.dryrun.mask.Scrubber.data``).
Scrub = Callable[[Any], Any]


def report_meta(
    options: ReplayOptions,
    world: WorldSpec | None,
    banner: Sequence[str],
    summary: Summary,
    lent: Iterable[Lent] = (),
) -> ReportMeta:
    """What the replay was, for the page's header and notes; ``lent``: the pipelines not compared, and why."""
    rules = display_path(options.rules)
    baseline = options.baseline_name
    title = options.report_title or (f"Dry-run: {rules} against {baseline}" if baseline else f"Dry-run: {rules}")
    notes = [line for line in banner if line]
    notes.extend(summary.signature_lines())
    warnings = []
    if summary.masked:
        warnings.append(
            f"{summary.masked} event(s) came from masked recordings and a rule read a masked field: "
            "those decisions may differ in production"
        )
    if summary.unread:
        # As the summary says it: such an event compares the replay's failed read with itself, not two decisions.
        warnings.append(
            f"{summary.unread} event(s) not decided: the replay could not read the account; their outcomes are the "
            "replay's, not the rules', and nothing was compared for them (see each event's notes)"
        )
    lent = list(lent)
    notes.extend(str(note).removeprefix("pipeline-dryrun: ") for note in lent)
    return ReportMeta(
        title=title,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        baseline=baseline,
        world=world.file if world is not None else "live account (read only)",
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


class ReportError(Exception):
    """The report could not be made or written; the message says which file and why."""


def _sketches(configs: Sequence[AppConfig], records: Sequence[dict[str, Any]], scrub: Scrub) -> list[PipelineSketch]:
    """Every pipeline the events went through, the most used first (the first pipeline when none was)."""
    used = Counter(record.get("pipeline") for record in records if record.get("pipeline"))
    by_name = {config.name: config for config in configs}
    names = [name for name, _ in used.most_common() if name in by_name] or [configs[0].name]
    sketches = []
    for name in names:
        config = by_name[name]
        try:
            document = yaml.safe_load(Path(config.files[0]).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ReportError(f"cannot read the pipeline file {config.files[0]}: {exc}") from None
        sketches.append(PipelineSketch.from_document(scrub(document)))
    return sketches


def _scrubbed(meta: ReportMeta, scrub: Scrub) -> ReportMeta:
    """``meta`` with its texts scrubbed (the title and notes may quote anything)."""
    texts = {
        item.name: scrub(value) if isinstance(value, (str, tuple)) else value
        for item in fields(meta)
        for value in (getattr(meta, item.name),)
    }
    return replace(meta, **{**texts, "notes": tuple(texts["notes"]), "warnings": tuple(texts["warnings"])})


def write_report(
    path: Path,
    lines: Sequence[str],
    configs: Sequence[AppConfig],
    meta: ReportMeta,
    scrub: Scrub,
) -> bool:
    """Render the records and write the page to ``path``; ReportError when it cannot be made or written.

    The page holds what the records hold (with ``--show-data``, numbers and message text): it is written readable by
    its owner only (``tools.private``); False when ``path`` was a stream (a pipe, a terminal), not a file.

    ``lines`` are the replay's ``--json`` lines, already scrubbed; ``scrub`` removes credentials from the
    strings of a value, and is applied to everything else the page shows (never to its own script or style).
    """
    try:
        records = [json.loads(line) for line in lines]
    except ValueError as exc:
        raise ReportError(f"cannot make the report {path}: a record is not JSON ({exc})") from None
    drawn, *others = _sketches(configs, records, scrub)
    page = render_report(records, drawn, _scrubbed(meta, scrub), others=others)
    try:
        return write_private(path, page)
    except OSError as exc:
        raise ReportError(f"cannot write the report {path}: {exc.strerror or exc}") from None
