"""A baseline that cannot show what an edit changes (docs/dry-run.md, "Comparing rule sets")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.dryrun import EVENTS, ROOT, WORLD, replay


def test_a_baseline_that_is_the_candidates_own_rules_directory_is_said_to_compare_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: after editing rules/ (every SMS to a person), ``--baseline-rules rules`` (the candidate's own
    directory, where the docs extract the committed rules to /tmp/baseline/rules) replayed every event against
    itself: "0 event(s) changed", ``--fail-on-change`` exited 0, and nothing said why. A note on stderr, before and
    after the replay, says so and how to make a baseline (the exit status is kept: a check comparing a directory
    with itself may be meant, and CI reads the note)."""
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    routing = tmp_path / "rules" / "40_routing.yaml"
    rule = "rules:\n  - id: sms_to_human\n    when: \"request.channel == 'sms'\"\n    then: {target: handoff}\n"
    routing.write_text(routing.read_text().replace("rules:\n", rule, 1))
    monkeypatch.chdir(tmp_path)

    said = (
        "--baseline-rules rules is the --rules directory itself, so every event is compared with the rules it is "
        "decided by; extract the rules to compare with elsewhere: mkdir -p /tmp/baseline && git archive HEAD rules | "
        "tar -x -C /tmp/baseline, then --baseline-rules /tmp/baseline/rules"
    )
    for baseline in ("rules", "./rules/", str(tmp_path / "rules")):
        for gate in ([], ["--fail-on-change"]):
            status, out, err = replay("--world", WORLD, "--baseline-rules", baseline, *gate, EVENTS)
            assert status == 0 and "0 event(s) changed" in out, err
            assert err == f"pipeline-dryrun: note: {said}\n" * 2
    # A copy of the committed rules elsewhere compares them: the SMS rule's changes fail the gate.
    shutil.copytree(ROOT / "rules", tmp_path / "baseline")
    assert replay("--world", WORLD, "--baseline-rules", tmp_path / "baseline", "--fail-on-change", EVENTS)[0] == 1
