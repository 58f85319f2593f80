"""Captured traffic replayed at a time of the operator's choosing (``--now``, docs/dry-run.md).

Production recorded every message it accepted (``replay.record``). Replayed at its arrival time (the default) a
captured message is decided by the rules as it was; replayed at a later ``--now`` the record production wrote for it
ends it ``REPLAY`` before any rule runs, in both lanes: a change gate over such events compared nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.dryrun import ROOT, WORLD, replay
from tools.dryrun.event_cli import main as event_cli

SID = "SM" + "7" * 32
ARRIVED = 1795608000  # examples/world.yaml's now, 2026-11-25T12:00:00Z: the event is built to arrive then


@pytest.fixture
def accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """Alice's WhatsApp message as captured, and a world holding the replay record production wrote accepting it."""
    args = ["build", "--channel", "whatsapp", "--from", "+447700900101", "--to", "+14155238886", "--body", "hi"]
    sids = [f"--field={name}={SID}" for name in ("MessageSid", "SmsMessageSid", "SmsSid")]
    assert event_cli([*args, *sids, "--world", str(WORLD)]) == 0
    captured = json.loads(capsys.readouterr().out)
    captured["requestContext"]["requestTimeEpoch"] = ARRIVED * 1000  # as API Gateway stamps it, and the capture keeps
    event = tmp_path / "captured.json"
    event.write_text(json.dumps(captured))
    world = yaml.safe_load(WORLD.read_text())
    record = {"message_sid": SID, "writer": "3f1c", "recorded_at": ARRIVED, "replay_after": ARRIVED + 30}
    world["replay"] = [*world.get("replay", []), {**record, "expires_at": ARRIVED + 7 * 86400}]
    path = tmp_path / "world.json"
    path.write_text(json.dumps(world))
    return event, path


def test_a_change_gate_at_a_later_now_does_not_pass_messages_production_recorded_as_replays_of_themselves(
    tmp_path: Path, accepted: tuple[Path, Path]
) -> None:
    """Defect: with ``--now`` a day after the capture, a candidate sending every WhatsApp message to a person passed
    ``--fail-on-change`` (exit 0, "0 event(s) changed"): production's record of the message ended it REPLAY in both
    lanes, before any rule. Without --now the same gate fails (exit 1: QUEUED[whatsapp] → HANDED_OFF[handoff]). Now
    the event carries a note saying so, and the gate exits 2."""
    event, world = accepted
    candidate = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", candidate)
    routing = candidate / "40_routing.yaml"
    rule = "rules:\n  - id: all_to_human\n    when: \"request.channel == 'whatsapp'\"\n    then: {target: handoff}\n"
    routing.write_text(routing.read_text().replace("rules:\n", rule, 1))
    gate = ["--world", world, "--backend", "memory", "--rules", candidate, "--baseline-rules", ROOT / "rules"]
    # The world's own now, the capture's arrival: decided by the rules, and the gate sees the change.
    assert replay(*gate, "--fail-on-change", event)[0] == 1

    status, _, err = replay(*gate, "--now", "2026-11-26T12:00:00Z", "--fail-on-change", event)

    assert status == 2, err
    assert (
        "pipeline-dryrun: error: --fail-on-change: 1 event(s) ended REPLAY at the replay's time by the record "
        "production wrote accepting them, so no rule decided them; replay them at their arrival (without --now)\n"
    ) in err
    _, out, _ = replay(*gate, "--now", "2026-11-26T12:00:00Z", "--json", event)
    record = json.loads(out)
    assert record["outcome"] == "REPLAY"
    assert (
        "not decided by the rules: production's replay record of this message, written after it arrived "
        "(2026-11-25T12:00:00+00:00), ends it REPLAY at the replay's time (2026-11-26T12:00:00+00:00); replay it "
        "at its arrival (without --now) to decide it as production did"
    ) in record["notes"]


def test_a_message_replayed_after_production_recorded_an_earlier_delivery_stays_a_plain_replay(
    accepted: tuple[Path, Path],
) -> None:
    """A record written before the message arrived (an earlier delivery) makes it REPLAY at its arrival too: no
    note, and nothing for the gate to refuse."""
    event, world = accepted
    document = json.loads(world.read_text())
    document["replay"][-1].update(recorded_at=ARRIVED - 120, replay_after=ARRIVED - 90)
    world.write_text(json.dumps(document))
    gate = ["--world", world, "--backend", "memory", "--baseline-rules", ROOT / "rules"]
    status, out, err = replay(*gate, "--now", "2026-11-26T12:00:00Z", "--fail-on-change", "--json", event)
    record = json.loads(out)
    assert (status, record["outcome"]) == (0, "REPLAY"), err
    assert not any(note.startswith("not decided by the rules") for note in record["notes"])


def test_a_change_gate_at_a_now_past_an_emails_signature_window_does_not_pass_it_as_a_forgery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: an email captured as SendGrid signed it, replayed with ``--now`` six days later (past the 4-day
    window of its signed timestamp, inside which production accepted it), ended INVALID_SIGNATURE with signature
    "invalid" in both lanes, and a candidate sending every email to a person passed ``--fail-on-change`` (exit 0,
    "0 event(s) changed"); at its arrival the same gate exits 1. Now the event is "unchecked", says why, and the
    gate exits 2."""
    args = ["build", "--channel", "email", "--from", "Kim Lee <kim@example.org>"]
    args += ["--to", "support@inbound.acme.example"]
    args += ["--subject", "Order 10442", "--body", "Where is my parcel?", "--key-seed", "examples/acme-sendgrid"]
    assert event_cli([*args, "--world", str(WORLD)]) == 0
    event = tmp_path / "email.json"
    event.write_text(capsys.readouterr().out)
    candidate = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", candidate)
    routing = candidate / "60_email_routing.yaml"
    routing.write_text(routing.read_text().replace("default: {target: email}", "default: {target: handoff}"))
    gate = ["--world", WORLD, "--backend", "memory", "--rules", candidate, "--baseline-rules", ROOT / "rules"]
    assert replay(*gate, "--fail-on-change", event)[0] == 1

    status, _, err = replay(*gate, "--now", "2026-12-01T12:00:00Z", "--fail-on-change", event)

    assert status == 2, err
    assert (
        "pipeline-dryrun: error: --fail-on-change: 1 event(s) stopped at a signature whose time was inside its "
        "window when they arrived and is past it at the replay's time, so no rule decided them; replay them at their "
        "arrival (without --now)\n"
    ) in err
    _, out, _ = replay(*gate, "--now", "2026-12-01T12:00:00Z", "--json", event)
    record = json.loads(out)
    assert (record["outcome"], record["signature"]) == ("INVALID_SIGNATURE", "unchecked")
    assert (
        "signature not checked: its signed time was inside the window when the event arrived "
        "(2026-11-25T12:00:00+00:00) and is past it at the replay's time (2026-12-01T12:00:00+00:00); replay it at "
        "its arrival (without --now) to decide it as production did"
    ) in record["notes"]


def test_an_email_whose_signature_was_past_its_window_when_it_arrived_stays_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An email that arrived with its signed time already outside the window was refused by production too: at any
    later ``--now`` its signature stays "invalid", with no note, and a change gate finding nothing else passes."""
    args = ["build", "--channel", "email", "--from", "Kim Lee <kim@example.org>"]
    args += ["--to", "support@inbound.acme.example", "--body", "Where is my parcel?"]
    assert event_cli([*args, "--key-seed", "examples/acme-sendgrid", "--world", str(WORLD)]) == 0
    captured = json.loads(capsys.readouterr().out)
    captured["requestContext"]["requestTimeEpoch"] = (ARRIVED + 5 * 86400) * 1000  # past the 4-day window already
    event = tmp_path / "email.json"
    event.write_text(json.dumps(captured))
    gate = ["--world", WORLD, "--backend", "memory", "--baseline-rules", ROOT / "rules"]
    status, out, err = replay(*gate, "--now", "2026-12-01T12:00:00Z", "--fail-on-change", "--json", event)
    record = json.loads(out)
    assert (status, record["outcome"], record["signature"]) == (0, "INVALID_SIGNATURE", "invalid"), err
    assert not any(note.startswith("signature not checked") for note in record["notes"])
