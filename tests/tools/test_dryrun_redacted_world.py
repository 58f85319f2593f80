"""A world whose credentials ``pipeline-world`` redacted, replayed without --skip-signature (docs/recording-events.md).

``pipeline-world snapshot`` and ``pseudonymize`` write ``redacted`` in place of every credential (``--keep-secrets``
keeps them). No signature matches a redacted token or key, so every event stops at the signature: that refusal is
the replay's, not production's, and a change gate over it compared nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.dryrun import EVENTS, ROOT, WORLD, replay
from tools.dryrun.world_cli import main as world_cli


def redacted_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """``pipeline-world pseudonymize --mask none`` of the examples' world: numbers and text kept, secrets redacted."""
    world = tmp_path / "world.json"
    assert world_cli(["pseudonymize", "--mask", "none", str(WORLD), "-o", str(world)]) == 0
    capsys.readouterr()
    secrets = json.loads(world.read_text())["secrets"]
    assert {field for secret in secrets.values() for field in secret.values()} >= {"redacted"}
    return world


def test_a_change_gate_over_a_world_with_redacted_secrets_does_not_pass_having_compared_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: ``--fail-on-change`` against a world pipeline-world wrote (secrets redacted), without
    --skip-signature, exited 0 with "0 event(s) changed" while a candidate rule sent every SMS to a person: both
    lanes refused 15 of the 18 example events at the signature ("X-Twilio-Signature does not match the request",
    signature "invalid", as a forgery), so no rule ran. Now they are "unchecked", each says why, and the gate
    exits 2."""
    world = redacted_world(tmp_path, capsys)
    candidate = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", candidate)
    routing = candidate / "40_routing.yaml"
    sms_rule = "rules:\n  - id: sms_to_human\n    when: \"request.channel == 'sms'\"\n    then: {target: handoff}\n"
    routing.write_text(routing.read_text().replace("rules:\n", sms_rule, 1))
    gate = ["--world", world, "--backend", "memory", "--rules", candidate, "--baseline-rules", ROOT / "rules"]

    status, _, err = replay(*gate, "--fail-on-change", EVENTS)

    assert status == 2, err
    assert (
        "pipeline-dryrun: error: --fail-on-change: 15 event(s) stopped at a signature checked with a placeholder the "
        "world holds in place of a credential, so no rule decided them; replay with --skip-signature, or against a "
        "world written with --keep-secrets\n"
    ) in err
    status, out, err = replay(*gate, "--json", EVENTS)
    records = [json.loads(line) for line in out.splitlines()]
    refused = [record for record in records if record["outcome"] == "INVALID_SIGNATURE"]
    # The 16th, an email signed outside its window, is refused for its timestamp before any secret is read.
    stale = [record for record in refused if "timestamp" in record["message"]]
    assert len(refused) == 16 and len(stale) == 1 and stale[0]["signature"] == "invalid"
    for record in (record for record in refused if record not in stale):
        assert record["signature"] == "unchecked", record
        secret = record["notes"][-1].split("'")[2]  # after the world's
        assert record["notes"][-1] == (
            f"signature not checked: the world's secret '{secret}' holds placeholders in place of its credentials "
            "(pipeline-world writes them so without --keep-secrets), so this outcome is the replay's, not "
            "production's; replay with --skip-signature"
        ), record["notes"]
    # With --skip-signature the rules run, and the gate sees the SMS rule's change.
    status, _, err = replay(*gate, "--fail-on-change", "--skip-signature", EVENTS)
    assert status == 1, err


def test_a_forged_event_against_a_world_with_its_secret_stays_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The note is for redacted secrets only: with the examples' own world the forged example stays invalid."""
    status, out, _ = replay("--world", WORLD, "--backend", "memory", "--json", EVENTS / "06_bad_signature.json")
    record = json.loads(out)
    assert (status, record["outcome"], record["signature"]) == (0, "INVALID_SIGNATURE", "invalid")
    assert not any("placeholders" in note for note in record["notes"])
