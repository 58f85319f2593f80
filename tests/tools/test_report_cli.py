"""``pipeline-dryrun --report FILE``: the decision report page of a real replay, checked in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from runtime.masking import recordable
from tests.support.browser import WAIT_SECONDS, Browser, launch
from tests.support.dryrun import EVENTS, ROOT, WORLD, run_dryrun
from tests.support.report_page import records_whole
from tools.dryrun.cli import build_parser
from tools.dryrun.events import load_events
from tools.dryrun.replay import run_replay

TOKEN = "9f86d081884c7d659a2feaa0c55ad015"


def report(path: Path, *args: str | Path) -> list[dict[str, Any]]:
    """Replay with ``--json --report path``; the records printed."""
    return [json.loads(line) for line in run_dryrun(*args, "--json", "--report", path).splitlines()]


def embedded(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert match is not None
    return records_whole(json.loads(match.group(1)))


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


def pulled_report(tmp_path: Path, candidate: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The examples replayed against a pulled bundle holding no email rules (their events are not compared)."""
    pulled = tmp_path / "live" / "rules"
    pulled.mkdir(parents=True)
    for path in (ROOT / "rules").glob("*.yaml"):
        if "email_inbound" not in path.read_text():
            shutil.copy(path, pulled / path.name)
    page = tmp_path / "pulled.html"
    return page, report(page, "--world", WORLD, "--rules", candidate, "--baseline-rules", pulled, EVENTS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as opened:
        yield opened


# A page script defining badBreaks(cells): the texts of cells whose lines break between two characters anywhere
# but after '_', '/' or a space (a name split mid-word).
BAD_BREAKS = """const badBreaks = (cells) => {
  const breaks = [];
  for (const td of cells) {
    const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const range = document.createRange();
      let top = null;
      for (let i = 0; i < node.length; i++) {
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getBoundingClientRect();
        if (top !== null && rect.top > top + 1 && !"_/ ".includes(node.data[i - 1])) breaks.push(node.data);
        top = rect.top;
      }
    }
  }
  return breaks;
};
"""


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
        assert browser.run("return document.querySelector('#banners .notes').className") == "banner notes warn"
        assert "routing/greeting_to_human read request.body" in banner

    def test_events_a_pulled_bundle_could_not_compare_are_not_counted_unchanged(
        self, browser: Browser, candidate: Path, tmp_path: Path
    ) -> None:
        """Defect: against a pulled twilio bundle, the email events (decided with the candidate's rules in both
        lanes) were shown and counted as 'unchanged', and the page did not say they were not compared."""
        from selenium.webdriver.support.select import Select

        page, records = pulled_report(tmp_path, candidate)
        emails = [str(i) for i, r in enumerate(records) if r["pipeline"] == "email_inbound"]
        assert emails
        data = embedded(page.read_text())
        assert [ev.get("kind") for ev in data["events"] if ev["record"]["pipeline"] == "email_inbound"] == [
            "not_compared"
        ] * len(emails)
        assert any("holds no rules of email_inbound" in note["text"] for note in data["meta"]["notes"])
        browser.open(page)
        assert browser.problems() == []
        chips = browser.run("return [...document.querySelectorAll('#summary .chip')].map(c => c.textContent)")
        unchanged = sum(r["change_kind"] == "unchanged" and r["pipeline"] != "email_inbound" for r in records)
        assert f"unchanged{unchanged}" in chips and f"not compared{len(emails)}" in chips
        Select(browser.driver.find_element("id", "f-change")).select_by_value("not_compared")
        assert self.rows(browser) == emails

    def test_every_change_badge_fits_its_column_at_1280_px(
        self, browser: Browser, candidate: Path, tmp_path: Path
    ) -> None:
        """Defect: at 1280 px the "not compared" badge was wider than the 6.5em Change column and ran out of it."""
        page, records = pulled_report(tmp_path, candidate)
        assert {"not_compared", "changed", "knock_on"} <= {r["change_kind"] for r in records}
        browser.open(page)
        assert browser.run("return window.innerWidth") <= 1280
        measured = browser.run(
            """return [...document.querySelectorAll('#rows td.c-change .badge')].map((badge) => {
              const td = badge.parentElement, cell = td.getBoundingClientRect(), box = badge.getBoundingClientRect();
              const style = getComputedStyle(td);
              const inner = [cell.left + parseFloat(style.paddingLeft), cell.right - parseFloat(style.paddingRight)];
              return {text: badge.textContent, fits: box.left >= inner[0] - 0.5 && box.right <= inner[1] + 0.5,
                      overflow: td.scrollWidth - td.clientWidth, width: box.width, column: inner[1] - inner[0],
                      one_line: box.height < 2 * parseFloat(getComputedStyle(badge).fontSize)};
            });"""
        )
        kinds = {badge["text"] for badge in measured}
        assert {"not compared", "changed", "knock-on"} <= kinds, measured
        assert [b for b in measured if not (b["fits"] and b["overflow"] <= 0 and b["one_line"])] == []
        assert browser.problems() == []

    def test_the_diagram_counts_only_the_events_of_the_pipeline_it_draws(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        """Both pipelines have a ``parse`` step: the twilio_inbound diagram must not count the email events."""
        page, records = compared
        of_pipeline = Counter(record["pipeline"] for record in records)
        assert set(of_pipeline) == {"twilio_inbound", "email_inbound"}
        browser.open(page)
        assert step_counts(browser)["parse"] == of_pipeline["twilio_inbound"]
        scope = browser.run("return document.getElementById('diagram-scope').textContent")
        assert f"{of_pipeline['email_inbound']} events of email_inbound not counted" in scope
        assert browser.problems() == []

    def test_the_diagram_follows_the_events_shown(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        from selenium.webdriver.support.select import Select
        from selenium.webdriver.support.wait import WebDriverWait

        page, records = compared
        emails = [str(i) for i, record in enumerate(records) if record["pipeline"] == "email_inbound"]
        reached_rules = sum(1 for i in map(int, emails) for entry in records[i]["trace"] if entry["step"] == "rules")
        browser.open(page)
        browser.driver.find_element("id", "f-source").send_keys("13_email")
        WebDriverWait(browser.driver, WAIT_SECONDS, poll_frequency=0.02).until(lambda _: self.rows(browser) == emails)
        assert browser.run("return document.getElementById('pipeline-name').textContent") == "email_inbound"
        counts = step_counts(browser)
        assert counts["parse"] == len(emails) and counts["rules"] == reached_rules
        browser.driver.find_element("id", "f-source").clear()
        Select(browser.driver.find_element("id", "f-pipeline")).select_by_value("email_inbound")
        assert self.rows(browser) == emails
        Select(browser.driver.find_element("id", "f-pipeline")).select_by_value("twilio_inbound")
        assert browser.run("return document.getElementById('pipeline-name').textContent") == "twilio_inbound"
        assert step_counts(browser)["parse"] == len(records) - len(emails)
        assert browser.problems() == []

    def test_a_changed_row_names_both_lanes_deciding_rules_and_versions(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        from selenium.webdriver.support.select import Select

        page, records = compared
        changed = next(i for i, r in enumerate(records) if r.get("change_kind") == "changed")
        record = records[changed]
        assert record["decided_by"]["routing"] == "greeting_to_human"
        baseline_rule = record["baseline_decided_by"]["routing"]
        assert baseline_rule not in (None, "greeting_to_human")
        browser.open(page)
        cell = browser.run(f"return document.querySelector('tr.event[data-index=\"{changed}\"] td.c-rule').textContent")
        assert cell == f"routing/{baseline_rule}\u2192routing/greeting_to_human"
        Select(browser.driver.find_element("id", "f-rule")).select_by_value(f"routing/{baseline_rule}")
        assert str(changed) in self.rows(browser)
        browser.run(f"document.querySelector('tr.event[data-index=\"{changed}\"]').click()")
        facts = browser.run("return document.querySelector('tr.detail .facts').textContent")
        assert f"deciding rulerouting/greeting_to_human (rules {record['rules_version']})" in facts
        assert f"baseline deciding rulerouting/{baseline_rule} (rules {record['baseline_rules_version']})" in facts
        assert browser.problems() == []

    def test_the_header_names_the_rules_version_of_both_lanes_per_pipeline(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        page, records = compared

        def versions(key: str) -> str:
            pipelines = {record["pipeline"]: record[key] for record in records if key in record}
            assert len(pipelines) == 2 and len(set(pipelines.values())) == 2
            return ", ".join(f"{pipeline} {version}" for pipeline, version in pipelines.items())

        browser.open(page)
        header = browser.run("return document.getElementById('meta').textContent")
        assert (
            f"rules {versions('rules_version')} \u00b7 baseline rules (rules {versions('baseline_rules_version')})"
            in header
        )

    def test_keyboard_focus_on_a_highlighted_row_is_visible(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        page, records = compared
        browser.open(page)
        look = """const tr = document.querySelector(`#rows tr.event[data-index="${arguments[0]}"]`);
            const row = getComputedStyle(tr), cell = getComputedStyle(tr.cells[1]);
            return [document.activeElement === tr, row.outlineStyle, cell.backgroundColor];"""
        for kind in ("changed", "knock_on"):
            index = next(i for i, r in enumerate(records) if r.get("change_kind") == kind)
            focused, outline, background = browser.run(look, index)
            assert not focused and outline == "none"
            browser.run(f"document.querySelector('tr.event[data-index=\"{index - 1}\"]').focus()")
            ActionChains(browser.driver).send_keys(Keys.TAB).perform()
            focused, outline, focused_background = browser.run(look, index)
            assert focused and outline == "solid" and focused_background != background, kind

    def test_the_values_rules_read_wrap_inside_their_panel(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        """At 1280 px, the rule inputs of the first event stay left of the Actions panel, one value a line."""
        page, records = compared
        browser.open(page)
        browser.run("document.querySelector('#rows tr.event').click()")
        cells, actions, lines, scroll = browser.run(
            """const inputs = [...document.querySelectorAll('tr.detail [data-part="Rules tried"] td.mono')];
            return [Math.max(...inputs.map(td => td.getBoundingClientRect().right)),
                    document.querySelector('tr.detail [data-part="Actions"]').getBoundingClientRect().left,
                    inputs.map(td => td.querySelectorAll('.input').length),
                    document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth];"""
        )
        assert cells <= actions and scroll == 0
        assert lines == [len(rule["inputs"]) for rule in records[0]["rules"] if rule["inputs"]]

    def test_codes_names_and_versions_show_whole_and_break_only_after_an_underscore_or_slash(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        """At 1280 px every source, outcome, target, pipeline name, deciding rule and rules version is readable in full.

        No cell clips its text (``CONVERSATION_NOT_FOUND`` cut to ``CONVERSATION_NOT_FO``), and a line breaks
        inside one of these names only after an underscore or a slash (never ``twilio_inbo`` / ``und``).
        """
        page, records = compared
        assert {"CONVERSATION_LOCKED", "CONVERSATION_NOT_FOUND"} <= {r["outcome"] for r in records}
        assert len({r["pipeline"] for r in records}) == 2 and len({r["rules_version"] for r in records}) == 2
        browser.open(page)
        clipped, bad_breaks = browser.run(
            BAD_BREAKS
            + """const cells = [...document.querySelectorAll(
                '#rows td.c-source, #rows td.c-outcome, #rows td.c-target, #rows td.c-pipeline, #rows td.c-rule, '
                + '#rows td.c-version')];
            const clipped = cells.filter((td) => td.scrollWidth > td.clientWidth).map((td) => td.textContent);
            return [clipped, badBreaks(cells)];"""
        )
        assert clipped == [] and bad_breaks == []
        browser.driver.set_window_size(800, 900)
        try:
            browser.open(page)
            over = browser.run(
                """return [...document.querySelectorAll('#rows td')]
                  .filter((td) => td.scrollWidth > td.clientWidth).map((td) => td.textContent);"""
            )
        finally:
            browser.driver.set_window_size(1280, 900)
        assert over == [], "at 800 px a name too long for its column overlaps the next one"

    def test_sources_show_below_the_directory_they_share(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        """Defect: every cell showed its whole path, so a long checkout or capture directory (/tmp/tmp.e2rCmucO0q/
        fresh/examples/events/…) wrapped rows to 162 px at 640 px; a cell now shows the source below the directory
        all share, the whole path in its title, the directory in the column's."""
        page, records = compared
        directory = os.path.commonpath([str(record["source"]) for record in records]) + "/"
        browser.open(page)
        shown = browser.run(
            "return [...document.querySelectorAll('#rows td.c-source')].map((td) => [td.textContent, td.title]);"
        )
        assert [title for _, title in shown] == [record["source"] for record in records]
        assert [text for text, _ in shown] == [str(record["source"]).removeprefix(directory) for record in records]
        assert browser.run("return document.querySelector('th.c-source').title") == f"under {directory}"

    @pytest.mark.parametrize("width", [375, 600, 640, 899])
    def test_below_900_px_the_page_stays_readable(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]], width: int
    ) -> None:
        """Defect: below 900 px the nine fixed columns shrank until names broke every few letters (a row 500 px
        tall at 600 px, 'handof/f', 'twilio_inboun/d'), the sticky filters covered a third of a phone's screen, the
        diagram's parallel group and an opened event's panels ran off the page sideways."""
        page, records = compared
        browser.driver.set_window_size(width, 900)
        try:
            browser.open(page)
            measured = browser.run(
                BAD_BREAKS
                + """const visible = (e) => e.getClientRects().length > 0;
                const cells = [...document.querySelectorAll(
                    '#rows td.c-outcome, #rows td.c-target, #rows td.c-pipeline, #rows td.c-rule')].filter(visible);
                const breaks = badBreaks(cells);
                const filters = document.querySelector('.filters');
                const sticky = getComputedStyle(filters).position === 'sticky';
                return {
                  sideways: document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth,
                  clipped: cells.filter((td) => td.scrollWidth > td.clientWidth).map((td) => td.textContent),
                  breaks,
                  tallest: Math.max(...[...document.querySelectorAll('#rows tr.event')].map((tr) => tr.offsetHeight)),
                  covered: sticky ? filters.offsetHeight / window.innerHeight : 0,
                };"""
            )
            browser.run("document.querySelector('#rows tr.event').click()")
            opened = browser.run(
                """return [document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth,
                  [...document.querySelectorAll('tr.detail .facts span')].map((s) => s.textContent)];"""
            )
        finally:
            browser.driver.set_window_size(1280, 900)
        assert measured["sideways"] == 0 and opened[0] == 0, (measured, opened[0])
        assert measured["clipped"] == [] and measured["breaks"] == [], measured
        assert measured["tallest"] <= 160, measured
        assert measured["covered"] <= 0.25, measured
        assert f"pipeline{records[0]['pipeline']}" in opened[1]  # its column may be hidden: the details say it
        assert browser.problems() == []

    @pytest.mark.parametrize("width", [960, 1024, 1100])
    def test_half_a_wide_screen_or_a_small_laptop_shows_names_whole(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]], width: int
    ) -> None:
        """Defect: from 900 px (where all nine columns come back) to about 1160 px, names broke mid-word
        ('CONVERSATIO' / 'N_LOCKED', 'whatsap' / 'p', 'twilio_inbou' / 'nd'): a report beside another window on a
        1920 px screen, or on a 1024 px laptop, was the hardest to read. The columns now come back at 1200 px."""
        page, _ = compared
        browser.driver.set_window_size(width, 900)
        try:
            browser.open(page)
            measured = browser.run(
                BAD_BREAKS
                + """const visible = (e) => e.getClientRects().length > 0;
                const cells = [...document.querySelectorAll(
                    '#rows td.c-source, #rows td.c-outcome, #rows td.c-target, #rows td.c-pipeline, #rows td.c-rule, '
                    + '#rows td.c-version, #columns th')].filter(visible);
                return {
                  sideways: document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth,
                  clipped: cells.filter((td) => td.scrollWidth > td.clientWidth).map((td) => td.textContent),
                  breaks: [...new Set(badBreaks(cells))],
                };"""
            )
        finally:
            browser.driver.set_window_size(1280, 900)
        assert measured == {"sideways": 0, "clipped": [], "breaks": []}
        assert browser.problems() == []

    @pytest.mark.parametrize("width", [1280, 1600])
    def test_an_explanations_trace_shows_each_step_status_and_duration_whole(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]], width: int
    ) -> None:
        """Defect: an opened event's Trace broke every duration and most names mid-word (0.0 / 6 read as 0.0 and 6,
        status_callba / ck, CONVERSATION_LOC / KED): each cell could break anywhere, so the table shrank its first
        columns to a few letters. A duration now stays on one line, a step or status breaks after '_' only."""
        page, records = compared
        browser.driver.set_window_size(width, 900)
        try:
            browser.open(page)
            browser.run("document.querySelectorAll('#rows tr.event').forEach((tr) => tr.click())")
            cells, breaks = browser.run(
                BAD_BREAKS
                + """const cells = [...document.querySelectorAll("tr.detail [data-part='Trace'] tbody tr")]
                  .flatMap((tr) => [...tr.cells].slice(0, 3));
                return [cells.length, [...new Set(badBreaks(cells))]];"""
            )
        finally:
            browser.driver.set_window_size(1280, 900)
        assert cells == 3 * sum(len(record["trace"]) for record in records)
        assert breaks == []
        assert browser.problems() == []

    def test_unreached_steps_keep_readable_counts(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        """Filtered to INVALID_SIGNATURE, the steps after the signature are unreached; their text keeps 4.5:1."""
        from selenium.webdriver.support.select import Select

        page, _ = compared
        browser.open(page)
        Select(browser.driver.find_element("id", "f-outcome")).select_by_value("INVALID_SIGNATURE")
        ratios = browser.run(
            """const rgb = (css) => css.match(/[\\d.]+/g).map(Number);
            const lum = ([r, g, b]) => [r, g, b].map((c) => { c /= 255;
                return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; })
              .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
            return [...document.querySelectorAll('.step.unreached')].map((box) => {
              let opacity = 1;
              for (let n = box; n; n = n.parentElement) opacity *= Number(getComputedStyle(n).opacity);
              const back = rgb(getComputedStyle(box).backgroundColor).slice(0, 3);
              const text = rgb(getComputedStyle(box.querySelector('.counts')).color).slice(0, 3);
              // What the eye sees: the box (and its text) blended over the white page.
              const seen = (c) => c.map((v) => v * opacity + 255 * (1 - opacity));
              const [a, b] = [lum(seen(text)), lum(seen(back))];
              return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            });"""
        )
        assert ratios and min(ratios) >= 4.5, ratios

    def test_a_printed_report_is_landscape_and_keeps_every_column_and_whole_names(
        self, browser: Browser, compared: tuple[Path, list[dict[str, Any]]]
    ) -> None:
        """Defect: a printed page (about 740 px wide, portrait) took the narrow screens' layout, which leaves the
        pipeline, actions and rules version to an opened row: on paper, where no row opens, they were gone (and the
        filters stuck to every page's top). The page now prints landscape, every column kept, no name broken."""
        import base64

        from selenium.webdriver.common.print_page_options import PrintOptions

        page, _ = compared
        browser.open(page)
        pdf = base64.b64decode(browser.driver.print_page(PrintOptions()))
        boxes = {tuple(map(float, box.split())) for box in re.findall(rb"/MediaBox\s*\[([^\]]*)\]", pdf)}
        assert boxes and all(right - left > top - bottom for left, bottom, right, top in boxes), boxes
        # The page as printed: print media, as wide as a landscape Letter page inside Chromium's default margins.
        browser.driver.set_window_size(979, 900)
        try:
            browser.open(page)
            browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
            measured = browser.run(
                BAD_BREAKS
                + """const visible = (e) => e.getClientRects().length > 0;
                const cells = [...document.querySelectorAll('#rows td, #columns th')].filter(visible);
                const names = cells.filter((td) => !td.matches('.c-actions'));
                return {
                  headings: [...document.querySelectorAll('#columns th')].filter(visible).map((th) => th.textContent),
                  clipped: cells.filter((td) => td.scrollWidth > td.clientWidth).map((td) => td.textContent),
                  breaks: badBreaks(names),
                  sticky: getComputedStyle(document.querySelector('.filters')).position,
                };"""
            )
        finally:
            browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
            browser.driver.set_window_size(1280, 900)
        assert measured["headings"] == [
            "#",
            "Source",
            "Pipeline",
            "Outcome",
            "Target",
            "Deciding rule",
            "Actions",
            "Rules",
            "Change",
        ], measured
        assert measured["clipped"] == [] and measured["breaks"] == [], measured
        assert measured["sticky"] == "static"
        assert browser.problems() == []


def step_counts(browser: Browser) -> dict[str, int]:
    """Each drawn step's ``reached`` count."""
    script = "return [...document.querySelectorAll('.step')].map(box => [box.dataset.step, box.dataset.reached])"
    return {step: int(reached) for step, reached in browser.run(script)}


def with_secret(tmp_path: Path, **fields: str) -> Path:
    """The example world with extra fields in the WhatsApp credentials' secret."""
    world = yaml.safe_load(WORLD.read_text())
    world["secrets"]["ai-multi-comms/whatsapp-credentials/acme/support/twilio-prod"].update(fields)
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world))
    return path


@pytest.mark.browser
@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"flag_token": "true", "backup_token": "null"}, id="json-literals"),
        pytest.param({"api_key": "const", "signing_secret": "none"}, id="words-of-the-page-script-and-style"),
    ],
)
def test_credentials_that_read_like_json_or_the_pages_own_code_leave_both_intact(
    browser: Browser, tmp_path: Path, credentials: dict[str, str]
) -> None:
    """Credentials are scrubbed from the records' strings, never from JSON syntax nor the page's script and style."""
    world = with_secret(tmp_path, **credentials)
    page = tmp_path / "report.html"
    records = report(page, "--world", world, "--backend", "memory", "--show-data", EVENTS / "01_whatsapp_text.json")
    assert records[0]["raised"] is False and records[0]["error_code"] is None and records[0]["outcome"] == "QUEUED"
    text = page.read_text()
    assert embedded(text)["events"][0]["record"]["raised"] is False
    for asset in ("report_page.js", "report_page.css"):
        assert (ROOT / "tools" / "dryrun" / asset).read_text() in text
    browser.open(page)
    assert browser.run("return document.documentElement.dataset.ready") == "true"
    assert browser.problems() == []
    assert browser.run("return document.querySelectorAll('#rows tr.event').length") == 1
    assert TOKEN not in text


def test_a_credential_inside_a_message_is_scrubbed_from_the_records_and_the_page(tmp_path: Path) -> None:
    event = json.loads((EVENTS / "01_whatsapp_text.json").read_text())
    event["body"] = event["body"].replace("Body=", f"Body=token+{TOKEN}+", 1)
    events = tmp_path / "events"
    events.mkdir()
    (events / "leak.json").write_text(json.dumps(event))
    page = tmp_path / "report.html"
    out = run_dryrun(
        "--world", WORLD, "--backend", "memory", "--skip-signature", "--show-data", "--json", "--report", page, events
    )
    assert TOKEN not in out and TOKEN not in page.read_text()
    record = json.loads(out)
    assert "token *** " in json.dumps(record["actions"]) and record["outcome"] == "QUEUED"


def test_a_credential_of_a_secret_saved_with_a_byte_order_mark_is_scrubbed_everywhere(tmp_path: Path) -> None:
    """The pipeline reads such a secret (engine.secrets strips the mark): its token is a credential like any other."""
    world = yaml.safe_load(WORLD.read_text(encoding="utf-8"))
    for name, value in world["secrets"].items():
        if isinstance(value, dict) and value.get("twilio_auth_token") == TOKEN:
            world["secrets"][name] = "\ufeff" + json.dumps(value)
    marked = tmp_path / "world.yaml"
    marked.write_text(yaml.safe_dump(world, allow_unicode=False), encoding="utf-8")
    event = json.loads((EVENTS / "01_whatsapp_text.json").read_text())
    event["body"] = event["body"].replace("Body=", f"Body=token+{TOKEN}+", 1)
    events = tmp_path / "events"
    events.mkdir()
    (events / "leak.json").write_text(json.dumps(event))
    page = tmp_path / "report.html"
    common = ["--world", marked, "--backend", "memory", "--skip-signature", "--show-data"]

    out = run_dryrun(*common, "--json", "--report", page, events)
    table = run_dryrun(*common, "--explain", events)

    record = json.loads(out)
    assert record["outcome"] == "QUEUED" and "token *** " in json.dumps(record["actions"])
    assert TOKEN not in out and TOKEN not in page.read_text() and TOKEN not in table
    assert "token *** " in table


@pytest.mark.parametrize("fail_on_change", [False, True])
def test_a_report_that_cannot_be_written_exits_2_with_the_reason(
    tmp_path: Path, candidate: Path, fail_on_change: bool
) -> None:
    """Not a traceback, and not 1 (which --fail-on-change reads as "a decision changed")."""
    out, err = io.StringIO(), io.StringIO()
    args = ["--world", str(WORLD), "--backend", "memory", "--rules", str(candidate)]
    args += ["--baseline-rules", str(ROOT / "rules"), "--report", str(tmp_path), str(EVENTS)]
    parsed = build_parser().parse_args([*args, *(["--fail-on-change"] if fail_on_change else [])])
    assert run_replay(parsed, out=out, err=err) == 2
    assert (
        err.getvalue().splitlines()[-1] == f"pipeline-dryrun: error: cannot write the report {tmp_path}: Is a directory"
    )


def test_the_explained_table_names_the_baselines_deciding_rule_of_a_changed_event(candidate: Path) -> None:
    table = run_dryrun(
        "--world",
        WORLD,
        "--backend",
        "memory",
        "--independent",
        "--explain",
        "--rules",
        candidate,
        "--baseline-rules",
        ROOT / "rules",
        EVENTS / "08_burst.jsonl",
    )
    changed = table.split("CHANGED (was QUEUED[whatsapp])", 1)[1]
    assert "    decided:  project_status -, channel -, conversation_lock -, routing greeting_to_human" in changed
    assert "    baseline: project_status -, channel -, conversation_lock -, routing channel_queue" in changed


@pytest.mark.parametrize("where", ["title", "rules directory"])
def test_a_name_that_is_not_utf8_is_shown_replaced_not_a_traceback(tmp_path: Path, where: str) -> None:
    """A title or rules directory whose bytes are not UTF-8 (lone surrogates in argv) still makes the page."""
    name = os.fsdecode(b"review-\xff")
    rules = tmp_path / (name if where == "rules directory" else "rules")
    shutil.copytree(ROOT / "rules", rules)
    title = ["--report-title", f"Dry-run {name}"] if where == "title" else []
    page = tmp_path / "report.html"
    run_dryrun("--world", WORLD, "--backend", "memory", "--rules", rules, *title, "--report", page, EVENTS)
    text = page.read_text(encoding="utf-8")
    assert "review-\ufffd" in re.search(r"<title>(.*)</title>", text).group(1)  # type: ignore[union-attr]
    assert embedded(text)["meta"]["title"].endswith("review-\udcff")


def test_a_sender_writing_the_mask_in_an_unmasked_recording_is_not_taken_for_masked_data(
    candidate: Path, tmp_path: Path
) -> None:
    """A mask=none capture keeps every value: a body of "[masked]" is the sender's own text, not a masked one."""
    event = json.loads((EVENTS / "01_whatsapp_text.json").read_text())
    event["body"] = re.sub(r"Body=[^&]*", "Body=%5Bmasked%5D", event["body"])
    recorded = tmp_path / "captured.jsonl"
    recorded.write_text(json.dumps(recordable(event, mask="none")) + "\n")
    page = tmp_path / "report.html"
    options = ("--world", WORLD, "--backend", "memory", "--skip-signature", "--rules", candidate)
    (record,) = report(page, *options, recorded)
    assert record["decided_by"]["routing"] == "channel_queue" and record["notes"] == []
    data = embedded(page.read_text())
    assert "masked" not in data["events"][0] and not any(note["masked"] for note in data["meta"]["notes"])


HOSTILE = (
    '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    '<svg onload="window.__pwned=3"></svg><a href="javascript:window.__pwned=4">a</a>\u2028\u2029'
)


@pytest.mark.browser
def test_markup_in_captured_events_and_in_rules_stays_text_in_the_page(browser: Browser, tmp_path: Path) -> None:
    """A sender's Body, ProfileName and form fields, a capture's file name and a rule's message and reply are data."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    channel = rules / "20_channel.yaml"
    hostile_rule = f"message: {json.dumps(HOSTILE)}\n      reply: {json.dumps(HOSTILE)}"
    text, replaced = re.subn(r"when: .*", "when: \"request.body != 'ok'\"", channel.read_text(), count=1)
    assert replaced == 1
    channel.write_text(text.replace("message: the conversation does not allow this channel", hostile_rule))
    event = json.loads((EVENTS / "01_whatsapp_text.json").read_text())
    form = urlencode({"Body": HOSTILE, "ProfileName": HOSTILE, HOSTILE: HOSTILE})
    event["body"] = re.sub(r"Body=[^&]*&?|ProfileName=[^&]*&?", "", event["body"]) + "&" + form
    captured = tmp_path / "captured"
    captured.mkdir()
    (captured / '<img src=x onerror="window.__pwned=5">.json').write_text(json.dumps(event))
    page = tmp_path / "report.html"
    options = ("--world", WORLD, "--backend", "memory", "--skip-signature", "--show-data", "--rules", rules)
    # One line: the output's lines end at "\n" only (U+2028 inside a string is not a line end).
    (line,) = run_dryrun(*options, "--json", "--report", page, captured).rstrip("\n").split("\n")
    record = json.loads(line)
    assert record["outcome"] == "CHANNEL_NOT_ALLOWED" and record["message"] == HOSTILE
    assert {"request.body": HOSTILE} in [rule["inputs"] for rule in record["rules"]]
    browser.open(page)
    assert browser.run("return document.documentElement.dataset.ready") == "true"
    browser.run("document.querySelectorAll('#rows tr.event').forEach((tr) => tr.click())")
    assert browser.run("return window.__pwned") is None
    assert browser.run("return document.querySelectorAll('body img, body svg, body a, body iframe').length") == 0
    explained = browser.run("return document.querySelector('tr.detail').textContent")
    assert '<img src=x onerror=\\"window.__pwned=2\\">' in explained and "<Message>" in explained
    assert browser.problems() == []


@pytest.mark.browser
def test_events_a_live_replay_could_not_decide_are_a_warning_not_a_quiet_unchanged(
    browser: Browser, candidate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: a live replay that could not read the account (tables missing) decided nothing, and its summary said
    "1 event(s) not decided" (``--fail-on-change`` exits 2), but the page counted the event "unchanged" under plain
    notes: a reviewer read "nothing changed". The notes banner now warns, with the CLI's count."""
    from moto import mock_aws

    from tests.support.expect import ENV

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    page = tmp_path / "report.html"
    event = EVENTS / "01_whatsapp_text.json"
    with mock_aws():
        out = run_dryrun(
            "--now",
            "2026-11-25T12:00:00Z",
            "--rules",
            candidate,
            "--baseline-rules",
            ROOT / "rules",
            "--report",
            page,
            event,
        )
    assert "1 event(s) not decided: the replay could not read the account" in out
    browser.open(page)
    assert browser.problems() == []
    assert browser.run("return document.querySelector('#banners .notes').className") == "banner notes warn"
    notes = browser.run("return document.querySelector('#banners .notes').textContent")
    assert "1 event(s) not decided: the replay could not read the account" in notes


@pytest.fixture(scope="module")
def summarized(tmp_path_factory: pytest.TempPathFactory, candidate: Path) -> tuple[Path, str]:
    """The examples replayed (table output, with its summary) against the shipped rules, and the report page."""
    page = tmp_path_factory.mktemp("summarized") / "report.html"
    options = ("--world", WORLD, "--backend", "memory", "--rules", candidate, "--baseline-rules", ROOT / "rules")
    return page, run_dryrun(*options, "--report", page, EVENTS)


@pytest.mark.browser
def test_the_page_says_for_how_many_events_the_signature_was_not_checked_as_the_summary_does(
    browser: Browser, summarized: tuple[Path, str]
) -> None:
    """Defect: the summary counts the events whose signature could not be checked (their secret or conversation
    unreadable), the page only said so inside each event's explanation: nothing on it added up to the CLI's count."""
    page, out = summarized
    (line,) = [line for line in out.splitlines() if line.startswith("signature not checked for ")]
    assert line == "signature not checked for 2 event(s)"
    browser.open(page)
    assert browser.problems() == []
    notes = browser.run("return [...document.querySelectorAll('#banners .notes li')].map((li) => li.textContent)")
    assert any(note.startswith(line) for note in notes), notes


@pytest.mark.browser
def test_the_page_counts_each_change_from_and_to_as_the_summary_does_and_filters_by_it(
    browser: Browser, summarized: tuple[Path, str]
) -> None:
    """Defect: the summary lists what the changed events changed from and to ("QUEUED[whatsapp] → HANDED_OFF[handoff]
    1"); the page had only the changed and knock-on totals, so a replay with hundreds of changes gave no overview of
    them. Each is now a chip of the summary and a choice of the Change filter."""
    from selenium.webdriver.support.select import Select

    page, out = summarized
    summary = out.split("\nagainst the baseline (", 1)[1].splitlines()[1:]
    expected = [(label, int(n)) for label, n in (line.strip().rsplit("  ", 1) for line in summary if " → " in line)]
    assert len(expected) == 2
    browser.open(page)
    assert browser.problems() == []
    chips = browser.run(
        "return [...document.querySelectorAll('#summary .chip.change')].map((c) => [c.firstChild.textContent,"
        " Number(c.querySelector('.n').textContent)])"
    )
    assert sorted(map(tuple, chips)) == sorted(expected)
    for label, n in expected:
        browser.run(
            "[...document.querySelectorAll('#summary .chip.change')].find((c) => c.firstChild.textContent"
            " === arguments[0]).click()",
            label,
        )
        assert browser.run("return document.querySelectorAll('#rows tr.event').length") == n
        assert browser.run("return document.getElementById('count').dataset.matching") == str(n)
        Select(browser.driver.find_element("id", "f-change")).select_by_value("")
        Select(browser.driver.find_element("id", "f-change")).select_by_visible_text(f"{label} ({n})")
        assert browser.run("return document.querySelectorAll('#rows tr.event').length") == n
    assert browser.problems() == []


def test_a_report_of_unmasked_data_is_its_owners_alone_and_replaces_a_planted_symlink(tmp_path: Path) -> None:
    # Defect: --report wrote the page (--show-data: phone numbers and message text) with the umask's mode (0644: any
    # user of the machine read it) and through a symlink planted at its name; nothing said where it was written.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    page = tmp_path / "review.html"
    page.symlink_to(victim)
    previous = os.umask(0o022)
    try:
        out, err = io.StringIO(), io.StringIO()
        args = ["--world", str(WORLD), "--backend", "memory", "--show-data", "--report", str(page), str(EVENTS)]
        assert run_replay(build_parser().parse_args(args), out=out, err=err) == 0
    finally:
        os.umask(previous)
    assert victim.read_text() == "precious\n"
    assert not page.is_symlink() and "+447700900101" in page.read_text()
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert err.getvalue().splitlines()[-1] == f"pipeline-dryrun: wrote the report {page} (readable by its owner only)"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["review.html", "victim.txt"]


@pytest.mark.parametrize("mark", ["\u2028", "\u2029", "\x85"])
def test_a_credential_holding_a_line_break_json_lines_escape_is_scrubbed_from_the_records(
    tmp_path: Path, mark: str
) -> None:
    """--json escapes U+2028, U+2029 and U+0085 (one record, one line): the scrubber finds a credential so written."""
    token = f"9f86d081{mark}884c7d659a2f"
    world = yaml.safe_load(WORLD.read_text(encoding="utf-8"))
    world["secrets"]["tenant/extra"] = json.dumps({"api_key": token})
    marked = tmp_path / "world.yaml"
    marked.write_text(yaml.safe_dump(world, allow_unicode=False), encoding="utf-8")
    event = json.loads((EVENTS / "01_whatsapp_text.json").read_text())
    event["body"] = event["body"].replace("Body=", f"Body={urlencode({'t': token})[2:]}+", 1)
    events = tmp_path / "events"
    events.mkdir()
    (events / "leak.json").write_text(json.dumps(event))
    page = tmp_path / "report.html"

    out = run_dryrun(
        "--world", marked, "--backend", "memory", "--skip-signature", "--show-data", "--json", "--report", page, events
    )

    record = json.loads(out)
    assert record["outcome"] == "QUEUED" and "*** Hi!" in out
    assert "884c7d659a2f" not in out and "884c7d659a2f" not in page.read_text()
