"""``pipeline-dryrun --report FILE``: the decision report page of a real replay, checked in headless Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.masking import recordable
from tests.support.browser import Browser, launch
from tests.support.dryrun import EVENTS, ROOT, WORLD, run_dryrun
from tools.dryrun.events import load_events

TOKEN = "9f86d081884c7d659a2feaa0c55ad015"


def report(path: Path, *args: str | Path) -> list[dict[str, Any]]:
    """Replay with ``--json --report path``; the records printed."""
    return [json.loads(line) for line in run_dryrun(*args, "--json", "--report", path).splitlines()]


def embedded(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, candidate: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The examples replayed on moto with candidate rules against the shipped ones, and the report page."""
    page = tmp_path_factory.mktemp("report") / "report.html"
    records = report(page, "--world", WORLD, "--rules", candidate, "--baseline-rules", ROOT / "rules", EVENTS)
    return page, records


def test_the_page_holds_every_record_of_the_replay_and_what_the_replay_was(
    compared: tuple[Path, list[dict[str, Any]]],
) -> None:
    page, records = compared
    text = page.read_text()
    data = embedded(text)
    assert [event["record"]["source"] for event in data["events"]] == [record["source"] for record in records]
    assert [event.get("kind") for event in data["events"]] == [record["change_kind"] for record in records]
    assert data["pipeline"]["name"] == "twilio_inbound" and data["pipeline"]["steps"][0]["id"] == "parse"
    assert data["meta"]["baseline"] == "rules" and data["meta"]["world"].endswith("examples/world.yaml")
    assert any("--independent" in note["text"] for note in data["meta"]["notes"])
    assert TOKEN not in text and "+447700900107" not in text and "I have a question" not in text
    assert not re.search(r"""(src|href)=["']https?:""", text)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as opened:
        yield opened


class TestInBrowser:
    pytestmark = pytest.mark.browser

    @staticmethod
    def rows(browser: Browser) -> list[str]:
        return list(
            browser.run("return [...document.querySelectorAll('#rows > tr.event')].map(tr => tr.dataset.index)")
        )

    def test_rows_diff_and_filters_of_a_real_replay(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        from selenium.webdriver.support.select import Select

        page, records = compared
        browser.open(page)
        assert browser.run("return document.documentElement.dataset.ready") == "true"
        assert browser.problems() == []
        assert self.rows(browser) == [str(i) for i in range(len(records))]
        burst = next(i for i, r in enumerate(records) if r["source"].endswith("08_burst.jsonl#0"))
        for css, expected in (("kind-changed", [burst]), ("kind-knock-on", [burst + 1])):
            found = browser.run(f"return [...document.querySelectorAll('tr.{css}')].map(tr => tr.dataset.index)")
            assert found == [str(i) for i in expected], css
        cell = browser.run("return document.querySelector('tr.kind-changed td.c-outcome').textContent")
        assert cell == "QUEUED\u2192HANDED_OFF"
        assert browser.run("return document.querySelector('tr.kind-knock-on .badge').textContent") == "knock-on"
        Select(browser.driver.find_element("id", "f-outcome")).select_by_value("HANDED_OFF")
        handed = [str(i) for i, r in enumerate(records) if r["outcome"] == "HANDED_OFF"]
        assert len(handed) == 2 and self.rows(browser) == handed
        Select(browser.driver.find_element("id", "f-outcome")).select_by_value("")
        Select(browser.driver.find_element("id", "f-rule")).select_by_value("routing/greeting_to_human")
        assert self.rows(browser) == [str(burst)]
        Select(browser.driver.find_element("id", "f-rule")).select_by_value("")
        Select(browser.driver.find_element("id", "f-change")).select_by_value("knock_on")
        assert self.rows(browser) == [str(burst + 1)]
        browser.driver.find_element("css selector", "tr.event").click()
        trace = browser.run("return document.querySelector(\"tr.detail [data-part='Trace']\").textContent")
        assert "parse" in trace and "route" in trace
        assert browser.problems() == []

    def test_a_masked_recording_shows_the_banner(self, browser: Browser, candidate: Path, tmp_path: Path) -> None:
        masked = tmp_path / "masked.jsonl"
        events = load_events([EVENTS / "08_burst.jsonl"])
        masked.write_text("".join(json.dumps(recordable(e.event, mask="text")) + "\n" for e in events))
        page = tmp_path / "masked.html"
        report(page, "--world", WORLD, "--backend", "memory", "--skip-signature", "--rules", candidate, masked)
        browser.open(page)
        assert browser.problems() == []
        banner = browser.run("return document.querySelector('.masked-banner').textContent")
        assert "3 of 3 events carry notes about masked data" in banner
        assert "routing/greeting_to_human read request.body" in banner
