"""``pipeline-dryrun --report`` at an operations team's scale: hundreds of rules, hundreds of events.

What the page costs is measured in bytes, never timed: these machines are shared and noisy.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import launch
from tests.support.dryrun import ROOT, run_dryrun
from tests.support.report_page import records_whole
from tests.tools.test_check_scale import grown_routing
from tests.tools.test_report_page import drawn_counts, part_rows, step_counts
from tools.dryrun.corpus import generate_corpus
from tools.dryrun.report_page import RECORD_FIELDS

EVENTS = 80
# Keyword rules added above the shipped routing rules: every event that reaches routing tries them all.
MANY_RULES = 300


@dataclass(frozen=True)
class Replayed:
    """A replay's ``--json`` records and the report page it wrote."""

    records: list[dict[str, Any]]
    page: str


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated world and ``EVENTS`` signed events for it."""
    return generate_corpus(EVENTS // 4, EVENTS, seed=3).write(tmp_path_factory.mktemp("corpus"))


def replayed(directory: Path, corpus: tuple[Path, Path], added_rules: int) -> Replayed:
    """The corpus replayed with the shipped rules and ``added_rules`` more, with ``--json --report``."""
    shutil.copytree(ROOT / "rules", directory / "rules")
    grown_routing(directory, added_rules)
    world, events = corpus
    page = directory / "report.html"
    lines = run_dryrun("--world", world, "--rules", directory / "rules", "--json", "--report", page, events)
    return Replayed([json.loads(line) for line in lines.splitlines()], page.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, corpus: tuple[Path, Path]) -> Replayed:
    return replayed(tmp_path_factory.mktemp("shipped"), corpus, 0)


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory, corpus: tuple[Path, Path]) -> Replayed:
    return replayed(tmp_path_factory.mktemp("grown"), corpus, MANY_RULES)


def test_the_page_stays_small_per_event_however_many_rules_each_event_tries(shipped: Replayed, grown: Replayed) -> None:
    """Defect: the page embedded every rule each event tried with the values it read, and every step of its trace,
    the same names and values repeated for every event: 2,500 events against 500 rules made a page of 105 to 138 MB
    (here 3,572 bytes an event with the shipped rules, 28,436 with 300 more: 6,630 bytes more for each rule added).
    Each distinct rule, result and step is now in the page once and an event names the runs of them it tried: about
    2 kB an event here, and a rule added costs the page its name once (47 bytes), not once per event."""
    per_event = len(shipped.page.encode()) / EVENTS, len(grown.page.encode()) / EVENTS
    assert max(per_event) < 3_000, per_event
    per_rule = (len(grown.page.encode()) - len(shipped.page.encode())) / MANY_RULES
    assert per_rule < 100, per_rule
    assert sum(len(record["rules"]) for record in grown.records) > EVENTS * MANY_RULES / 2


def test_the_page_still_holds_every_record_whole(grown: Replayed) -> None:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', grown.page, re.S)
    assert match is not None
    data = records_whole(json.loads(match.group(1)))
    expected = [{key: record[key] for key in RECORD_FIELDS if key in record} for record in grown.records]
    assert [event["record"] for event in data["events"]] == expected


def rules_tried(record: dict[str, Any]) -> list[list[str]]:
    """The rows of an explanation's "Rules tried": each rule, then what it read (``path = JSON`` each) if anything."""
    rows = []
    for rule in record["rules"]:
        rows.append([rule["ruleset"], rule["rule"], "matched" if rule["matched"] else "no"])
        read = (
            f"{path} = {json.dumps(value, separators=(',', ':'), ensure_ascii=False)}"
            for path, value in rule["inputs"].items()
        )
        rows.extend([["".join(read)]] if rule["inputs"] else [])
    return rows


def to_fixed(ms: float) -> str:
    """``ms.toFixed(2)`` as the page shows a duration: a tie rounds up (0.125 shows 0.13, where Python says 0.12)."""
    return str(Decimal(ms).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@pytest.mark.browser
def test_an_event_that_tried_hundreds_of_rules_shows_each_with_what_it_read(grown: Replayed, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(grown.page, encoding="utf-8")
    index, record = max(enumerate(grown.records), key=lambda found: len(found[1]["rules"]))
    with launch() as browser:
        browser.open(page)
        assert browser.run("return document.documentElement.dataset.ready") == "true"
        assert drawn_counts(browser) == step_counts([r for r in grown.records if r["pipeline"] == "twilio_inbound"])
        browser.run("document.querySelector(`tr.event[data-index='${arguments[0]}']`).click()", index)
        assert len(record["rules"]) > MANY_RULES
        assert part_rows(browser, "Rules tried") == rules_tried(record)
        trace = [[t["step"], t["status"], to_fixed(t["ms"]), t["decision"] or ""] for t in record["trace"]]
        assert part_rows(browser, "Trace") == trace
        assert browser.problems() == []
