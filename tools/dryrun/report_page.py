"""The decision report: one self-contained HTML page over a dry-run's ``--json`` records.

``render_report`` embeds the records (only the fields the page reads) as JSON in the page, with the
shape of each pipeline they went through (``PipelineSketch``) and what the run was (``ReportMeta``). What
records repeat is written once (``_Shared``: the rules tried, what each try found, the steps of a trace) and
named by each record, so hundreds of rules tried per event cost the page their names once, not once per event; the
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


class _Distinct:
    """Each distinct JSON value once, in the order first seen: ``place`` is where a value is in ``values``."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._places: dict[str, int] = {}

    def place(self, value: Any) -> int:
        # A value is known by its repr, three times quicker to make than its JSON (a million rules tried make a
        # second's difference): for the JSON values of the records, the same repr is the same JSON, and true is
        # not taken for 1 as == would (two reprs of the same JSON, a tuple's and a list's, only cost a place).
        key = repr(value)
        found = self._places.get(key)
        if found is None:
            found = self._places[key] = len(self.values)
            self.values.append(value)
        return found


# What names a rule tried; its other fields are what the try found.
_RULE_NAME = ("ruleset", "rule")


class _Shared:
    """What the events' records repeat, each distinct value once, for the events to name by place.

    The tables: the rules tried (``ruleset`` and ``rule``), what a try found (``matched``, the values read) and the
    steps of a trace as they ended (all but ``ms``). An event names runs of rules: hundreds of rules tried one after
    the other, reading the same values (a keyword list reading the message's text) and not matching, are one
    ``[first rule, how many, result]`` whatever their number. A rule's name or a step's status is written once in
    the page, not once per event.
    """

    def __init__(self) -> None:
        self.rules, self.results, self.steps = _Distinct(), _Distinct(), _Distinct()

    def runs(self, tried: Sequence[Mapping[str, Any]]) -> list[list[int]]:
        """``[first rule, how many rules from it, result]`` per run of a record's ``rules``, in the order tried."""
        runs: list[list[int]] = []
        for entry in tried:
            rule = self.rules.place({key: entry[key] for key in _RULE_NAME if key in entry})
            result = self.results.place({key: value for key, value in entry.items() if key not in _RULE_NAME})
            last = runs[-1] if runs else None
            if last is not None and last[0] + last[1] == rule and last[2] == result:
                last[1] += 1
            else:
                runs.append([rule, 1, result])
        return runs

    def trace(self, trace: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """``[step, ms]`` per step of a record's ``trace`` (``[step]`` for one without ``ms``)."""
        return [
            [self.steps.place({key: value for key, value in entry.items() if key != "ms"}), *_ms(entry)]
            for entry in trace
        ]

    def tables(self) -> dict[str, list[Any]]:
        """The page's tables, as the script reads them (``data.shared``)."""
        return {"rules": self.rules.values, "results": self.results.values, "steps": self.steps.values}


def _ms(entry: Mapping[str, Any]) -> list[Any]:
    return [entry["ms"]] if "ms" in entry else []


def _event(record: Mapping[str, Any], shared: _Shared) -> dict[str, Any]:
    # The rules tried and the trace name what the page holds once (anything but a list is left as it was).
    named = {key for key in ("rules", "trace") if isinstance(record.get(key), list)}
    event: dict[str, Any] = {
        "record": {key: record[key] for key in RECORD_FIELDS if key in record and key not in named},
        "decided": deciding_rules(record),
    }
    if "rules" in named:
        event["tried"] = shared.runs(record["rules"])
    if "trace" in named:
        event["steps"] = shared.trace(record["trace"])
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
    shared = _Shared()
    events = [_event(record, shared) for record in records]
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
        "shared": shared.tables(),
        "events": events,
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
