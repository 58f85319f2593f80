"""The decision report: one self-contained HTML page over a dry-run's ``--json`` records.

``render_report`` embeds the records (only the fields the page reads) as JSON in the page, with the
shape of each pipeline they went through (``PipelineSketch``) and what the run was (``ReportMeta``); the
page's script (``report_page.js``, styled by ``report_page.css``) draws the pipeline of the events shown
with per-step counts of its own events, a summary, filterable rows rendered in chunks, and each event's
explanation (with a baseline, both lanes' deciding rules and versions). Nothing is fetched: a Content Security
Policy allows only the page's own script and style, and every text is inserted with ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "CHANGE_KINDS",
    "MASKED_READ_NOTES",
    "RECORD_FIELDS",
    "ParallelSketch",
    "PipelineSketch",
    "ReportMeta",
    "StepSketch",
    "change_kind",
    "deciding_rules",
    "render_report",
]

CHANGE_KINDS = ("changed", "knock_on", "unchanged", "not_compared")
# The record fields the page reads; anything else is left out of the page.
RECORD_FIELDS = (
    "source",
    "pipeline",
    "outcome",
    "error_code",
    "raised",
    "status_code",
    "target",
    "queue",
    "actions",
    "trace",
    "rules",
    "signature",
    "message",
    "exception",
    "response",
    "notes",
    "baseline_outcome",
    "baseline_target",
    "baseline_rules_version",
    "change",
    "rules_version",
)
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class StepSketch:
    """One step as drawn: its id, the registered step it uses and its ``when`` condition."""

    id: str
    uses: str
    when: str | None = None


@dataclass(frozen=True)
class ParallelSketch:
    """A ``parallel:`` group: members drawn side by side."""

    members: tuple[StepSketch, ...]


@dataclass(frozen=True)
class PipelineSketch:
    """The pipeline's name and its steps in order."""

    name: str
    steps: tuple[StepSketch | ParallelSketch, ...]

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> PipelineSketch:
        """The sketch of a parsed pipeline YAML document (``pipeline:`` and ``steps:``)."""

        def step(raw: Mapping[str, Any]) -> StepSketch:
            when = raw.get("when")
            return StepSketch(str(raw["id"]), str(raw["uses"]), None if when is None else str(when))

        nodes: list[StepSketch | ParallelSketch] = [
            ParallelSketch(tuple(map(step, raw["parallel"]))) if "parallel" in raw else step(raw)
            for raw in document.get("steps") or ()
        ]
        return cls(str(document.get("pipeline", "")), tuple(nodes))


@dataclass(frozen=True)
class ReportMeta:
    """What the replay was: title, when the report was made, rule versions, baseline, world and notes.

    ``warnings`` are the notes that make the notes banner a warning (rules read values a recording masked, a live
    replay could not read the account).
    """

    title: str
    generated_at: str
    rules_version: str | None = None
    baseline: str | None = None
    baseline_rules_version: str | None = None
    world: str | None = None
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def deciding_rules(record: Mapping[str, Any], *, baseline: bool = False) -> list[str]:
    """``ruleset/rule`` for each rule set that decided: ``decided_by`` if given, else its last matched rule.

    With ``baseline``, the baseline lane's (``baseline_decided_by``; nothing when the record has none).
    """
    decided_by = record.get("baseline_decided_by" if baseline else "decided_by")
    if isinstance(decided_by, Mapping):
        return [f"{ruleset}/{rule}" for ruleset, rule in decided_by.items() if rule is not None]
    if baseline:
        return []
    last: dict[str, str] = {}
    for tried in record.get("rules") or ():
        if tried.get("matched"):
            last[str(tried["ruleset"])] = str(tried["rule"])
    return [f"{ruleset}/{rule}" for ruleset, rule in last.items()]


def change_kind(record: Mapping[str, Any]) -> str | None:
    """``changed``, ``knock_on``, ``unchanged`` or ``not_compared`` against the baseline; None without one."""
    kind = record.get("change_kind")
    if isinstance(kind, str) and kind.replace("-", "_") in CHANGE_KINDS:
        return kind.replace("-", "_")
    if "changed" in record:
        return "changed" if record["changed"] else "unchanged"
    return None


# How the notes of an event whose rules read a value its recording masked begin (tools.dryrun.report.masked_note).
MASKED_READ_NOTES = ("recording masked (mask=", "masked recording: ")


def _about_masking(note: Any) -> bool:
    return isinstance(note, str) and note.startswith(MASKED_READ_NOTES)


def _event(record: Mapping[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {
        "record": {key: record[key] for key in RECORD_FIELDS if key in record},
        "decided": deciding_rules(record),
    }
    if "baseline_decided_by" in record:
        event["baseline_decided"] = deciding_rules(record, baseline=True)
    kind = change_kind(record)
    if kind is not None:
        event["kind"] = kind
    masked = [note for note in record.get("notes") or () if _about_masking(note)]
    if masked:
        event["masked"] = masked
    return event


def _sketch(node: StepSketch | ParallelSketch) -> dict[str, Any]:
    if isinstance(node, ParallelSketch):
        return {"parallel": [_sketch(member) for member in node.members]}
    return {"id": node.id, "uses": node.uses, "when": node.when}


def _pipeline(sketch: PipelineSketch) -> dict[str, Any]:
    return {"name": sketch.name, "steps": [_sketch(node) for node in sketch.steps]}


@cache
def _asset(name: str) -> tuple[str, str]:
    """The text of a file beside this module and its CSP hash source."""
    text = (_HERE / name).read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return text, f"'sha256-{digest}'"


def _script_json(value: Any) -> str:
    r"""JSON that cannot end its script block: "</script>" or "<!--" in data stays data (``<`` is ``\u003c``)."""
    text = json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters that reorder or hide the text around them, shown as their \u escape: by the title here and by the page's
# script (report_page.js reads this pattern, written in the syntax both regular expression engines share).
HIDDEN_PATTERN = (
    r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200e\u200f"
    r"\u2028-\u202e\u2060-\u2069\ufeff]"
)
_HIDDEN = re.compile(HIDDEN_PATTERN)


def _html_text(text: str) -> str:
    r"""``text`` escaped for HTML, as the page's script shows texts.

    A lone surrogate (a name whose bytes were not UTF-8) shows as U+FFFD, a character that would reorder or hide
    the text around it (a right-to-left override) as its ``\u`` escape.
    """
    visible = _HIDDEN.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    return html.escape(_LONE_SURROGATE.sub("\ufffd", visible))


_BODY = """<header><h1 id="title"></h1><p id="meta" class="muted"></p></header>
<main>
<div id="banners"></div>
<section><h2>Pipeline <span id="pipeline-name" class="mono"></span>
<span id="diagram-scope" class="muted"></span></h2><div id="diagram" class="diagram"></div></section>
<section><h2>Summary</h2><div id="summary" class="summary"></div></section>
<section id="events"><h2>Events</h2>
<div class="filters">
<label>Outcome<select id="f-outcome"></select></label>
<label id="f-pipeline-label">Pipeline<select id="f-pipeline"></select></label>
<label>Deciding rule<select id="f-rule"></select></label>
<label id="f-change-label">Change<select id="f-change"></select></label>
<label>Source<input id="f-source" type="search" placeholder="part of a source" autocomplete="off"></label>
<span id="count" class="count" role="status" aria-live="polite" aria-atomic="true"></span>
</div>
<table class="events">
<caption class="visually-hidden">Events, one a row: Enter, Space or a click opens its explanation below it</caption>
<thead><tr id="columns"></tr></thead><tbody id="rows"></tbody></table>
<p id="empty" class="muted" hidden></p>
<div id="more" hidden><button type="button" id="more-button"></button></div>
</section>
</main>
<noscript>This report needs JavaScript to show its events.</noscript>
"""


def render_report(
    records: Sequence[Mapping[str, Any]],
    pipeline: PipelineSketch,
    meta: ReportMeta,
    *,
    others: Sequence[PipelineSketch] = (),
) -> str:
    """One self-contained HTML document reporting ``records`` (``--json`` objects) replayed through ``pipeline``.

    ``others`` are the other pipelines some records went through: the diagram draws the pipeline of the
    events shown and counts only that pipeline's events.
    """
    css, style_hash = _asset("report_page.css")
    js, script_hash = _asset("report_page.js")
    data = {
        "meta": {
            "title": meta.title,
            "generated_at": meta.generated_at,
            "rules_version": meta.rules_version,
            "baseline": meta.baseline,
            "baseline_rules_version": meta.baseline_rules_version,
            "world": meta.world,
            "notes": [
                *({"text": note, "masked": True} for note in meta.warnings),
                *({"text": note, "masked": False} for note in meta.notes),
            ],
        },
        "hidden": HIDDEN_PATTERN,
        "pipeline": _pipeline(pipeline),
        "pipelines": [_pipeline(sketch) for sketch in (pipeline, *others)],
        "events": [_event(record) for record in records],
    }
    policy = (
        f"default-src 'none'; script-src {script_hash}; style-src {style_hash}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    return "".join(
        (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<meta name="referrer" content="no-referrer">\n<link rel="icon" href="data:,">\n',
            f"<title>{_html_text(meta.title)}</title>\n<style>{css}</style>\n</head>\n<body>\n",
            _BODY,
            f'<script type="application/json" id="report-data">{_script_json(data)}</script>\n',
            f"<script>{js}</script>\n</body>\n</html>\n",
        )
    )
