"""Honest comparisons: a decision the candidate rules changed is told from a knock-on through the evolving world,
and a rule that read a field a masked recording hid says so instead of reporting "0 changed"."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.masking import recordable
from tests.support.dryrun import EVENTS, ROOT, WORLD, run_dryrun
from tools.dryrun.cli import build_parser
from tools.dryrun.events import load_events
from tools.dryrun.replay import run_replay


def replay(*args: str | Path, status: int = 0) -> tuple[list[dict[str, Any]], str]:
    text = run_dryrun(*args, status=status)
    return ([json.loads(line) for line in text.splitlines()] if "--json" in args else []), text


def against_shipped(candidate: Path, backend: str = "memory") -> tuple[str | Path, ...]:
    """The options replaying the examples' world with ``candidate`` rules, compared with the shipped rules."""
    return ("--world", WORLD, "--backend", backend, "--rules", candidate, "--baseline-rules", ROOT / "rules")


def by_source(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["source"].rsplit("/", 1)[-1]: record for record in records}


@pytest.mark.parametrize("backend", ["memory", "moto"])
def test_a_knock_on_is_told_apart_from_a_decision_the_rules_changed(candidate: Path, backend: str) -> None:
    options = against_shipped(candidate, backend)
    records, _ = replay(*options, "--json", EVENTS)
    kinds = {source: record["change_kind"] for source, record in by_source(records).items()}
    assert kinds.pop("08_burst.jsonl#0") == "changed"
    assert kinds.pop("08_burst.jsonl#1") == "knock_on"
    assert set(kinds.values()) == {"unchanged"}
    burst = by_source(records)
    assert (burst["08_burst.jsonl#0"]["baseline_outcome"], burst["08_burst.jsonl#0"]["outcome"]) == (
        "QUEUED",
        "HANDED_OFF",
    )
    assert (burst["08_burst.jsonl#1"]["baseline_outcome"], burst["08_burst.jsonl#1"]["outcome"]) == (
        "BATCHED",
        "QUEUED",
    )
    assert burst["08_burst.jsonl#1"]["changed"] is True  # --fail-on-change counts every changed decision
    # Against the world as loaded, only the rule change shows.
    independent, _ = replay(*options, "--independent", "--json", EVENTS)
    changed = [source for source, r in by_source(independent).items() if r["change_kind"] != "unchanged"]
    assert changed == ["08_burst.jsonl#0"]


def test_the_probe_leaves_the_candidates_world_as_it_would_be_without_a_baseline(candidate: Path) -> None:
    """The probe's writes are undone: the candidate's decisions and actions are the same with or without it."""
    compared, _ = replay(*against_shipped(candidate), "--json", EVENTS)
    alone, _ = replay("--world", WORLD, "--backend", "memory", "--rules", candidate, "--json", EVENTS)
    keep = ("source", "outcome", "target", "actions", "response")
    assert [{k: r[k] for k in keep} for r in compared] == [{k: r[k] for k in keep} for r in alone]


def test_the_table_marks_knock_ons_and_recommends_independent_reviews(candidate: Path) -> None:
    _, text = replay(*against_shipped(candidate), EVENTS)
    assert "--independent compares every event against the same world" in text
    lines = {line.split()[0].rsplit("/", 1)[-1]: line for line in text.splitlines() if "examples/events/" in line}
    assert "CHANGED (was QUEUED[whatsapp])" in lines["08_burst.jsonl#0"]
    assert "KNOCK-ON (was BATCHED[whatsapp])" in lines["08_burst.jsonl#1"]
    assert "2 event(s) changed (1 by the rules, 1 knock-on)" in text
    _, independent = replay(*against_shipped(candidate), "--independent", EVENTS)
    assert "--independent compares" not in independent and "1 event(s) changed\n" in independent


def test_a_rule_reading_a_masked_field_is_noted_instead_of_a_silent_no_change(candidate: Path, tmp_path: Path) -> None:
    masked = tmp_path / "masked.jsonl"
    masked.write_text(
        "".join(json.dumps(recordable(e.event, mask="text")) + "\n" for e in load_events([EVENTS / "08_burst.jsonl"]))
    )
    options = ("--world", WORLD, "--backend", "memory", "--skip-signature", "--rules", candidate)
    records, _ = replay(*options, "--baseline-rules", ROOT / "rules", "--json", masked)
    assert [r["changed"] for r in records] == [False, False, False], "the rule could not see the greeting"
    for record in records:
        (note,) = [n for n in record["notes"] if "masked" in n]
        assert note.startswith("recording masked (mask=text): routing/greeting_to_human read request.body")
    _, text = replay(*options, "--baseline-rules", ROOT / "rules", masked)
    assert "3 event(s): a rule read a field the recording masked" in text
    # The same events unmasked: the change shows, and nothing is noted.
    plain, _ = replay(*options, "--baseline-rules", ROOT / "rules", "--json", EVENTS / "08_burst.jsonl")
    assert plain[0]["changed"] and not [n for r in plain for n in r["notes"] if "masked" in n]
    # Rules that never read a masked field have nothing to say about it.
    shipped, _ = replay("--world", WORLD, "--backend", "memory", "--skip-signature", "--json", masked)
    assert not [n for r in shipped for n in r["notes"] if "masked" in n]


def test_an_event_noted_for_reading_a_masked_field_keeps_its_rules_version(candidate: Path, tmp_path: Path) -> None:
    """Defect: the note on a masked recording's event rebuilt its run without the rules version: its record said
    ``rules_version: null`` (and ``baseline_rules_version`` too) where the same event unmasked named both."""
    masked = tmp_path / "masked.jsonl"
    masked.write_text(
        "".join(json.dumps(recordable(e.event, mask="text")) + "\n" for e in load_events([EVENTS / "08_burst.jsonl"]))
    )
    options = ("--world", WORLD, "--backend", "memory", "--skip-signature", "--rules", candidate)
    noted, _ = replay(*options, "--baseline-rules", ROOT / "rules", "--json", masked)
    plain, _ = replay(*options, "--baseline-rules", ROOT / "rules", "--json", EVENTS / "08_burst.jsonl")
    assert all(any(note.startswith("recording masked") for note in record["notes"]) for record in noted)
    versions = [(record["rules_version"], record["baseline_rules_version"]) for record in plain]
    assert all(None not in pair for pair in versions)
    assert [(record["rules_version"], record["baseline_rules_version"]) for record in noted] == versions


def test_live_options_need_the_live_backend() -> None:
    out, err = io.StringIO(), io.StringIO()
    for args, message in (
        (["--world", str(WORLD), "--profile", "prod", str(EVENTS)], "--profile: only for reads from AWS"),
        (["--world", str(WORLD), "--backend", "live", str(EVENTS)], "--backend live reads the account"),
        (["--backend", "memory", str(EVENTS)], "--backend memory needs --world FILE"),
    ):
        assert run_replay(build_parser().parse_args(args), out=out, err=err) == 2
        assert message in err.getvalue()


def pipeline_before_read(tmp_path: Path) -> Path:
    """The shipped email pipeline as written before ``sendgrid.read`` existed (a bundle published then, pulled)."""
    document = yaml.safe_load((ROOT / "pipelines" / "email_inbound.yaml").read_text(encoding="utf-8"))
    document["steps"] = [step for step in document["steps"] if step.get("uses") != "sendgrid.read"]
    parse = next(step for step in document["steps"] if step.get("uses") == "sendgrid.parse")
    parse["with"].pop("defer_content", None)
    path = tmp_path / "email_inbound.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_a_baseline_pipeline_file_without_the_read_step_decides_the_emails_as_before(tmp_path: Path) -> None:
    baseline = pipeline_before_read(tmp_path)
    records, _ = replay("--json", "--world", WORLD, "--baseline-pipeline", baseline, EVENTS / "13_email.jsonl")
    decided = [(r["outcome"], r["baseline_outcome"], r["changed"]) for r in records]
    assert decided == [
        ("QUEUED", "QUEUED", False),
        ("EMAIL_REJECTED", "EMAIL_REJECTED", False),
        ("INVALID_SIGNATURE", "INVALID_SIGNATURE", False),
    ]
