"""``pipeline-world``: worlds fit to share (the same masking as captured events), and what a snapshot needs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from runtime.masking import MASKED_TEXT, Pseudonyms
from tools.dryrun.world_cli import main

ROOT = Path(__file__).resolve().parents[2]
WORLD = ROOT / "examples" / "world.yaml"
KEY = "a-capture-key-of-32-characters!!"
TOKEN = "9f86d081884c7d659a2feaa0c55ad015"


def world_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(args), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_a_pseudonymized_world_holds_no_credential_number_or_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPTURE_KEY", KEY)
    status, out, _ = world_cli("pseudonymize", str(WORLD), "--key-env", "CAPTURE_KEY")
    assert status == 0
    world = json.loads(out)
    alice = world["conversations"][0]
    assert alice["primary_channel"] == Pseudonyms(KEY.encode()).text("+447700900101") != "+447700900101"
    assert alice["conversation_id"].endswith(alice["primary_channel"].lstrip("+"))
    assert alice["messages"][0]["content"] == MASKED_TEXT and alice["project_status"] == "active"
    secret = world["secrets"]["ai-multi-comms/whatsapp-credentials/acme/support/twilio-prod"]
    assert secret == {"twilio_account_sid": "AC5ef8732a3c49700934481addd5ce1659", "twilio_auth_token": "redacted"}
    assert TOKEN not in out and "+447700900101" not in out and world["now"] == "2026-11-25T12:00:00Z"
    status, out, _ = world_cli("pseudonymize", str(WORLD), "--mask", "text", "--keep-secrets")
    assert status == 0 and TOKEN in out and "+447700900101" in out and "Hi Alice" not in out


def test_what_a_command_needs_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    status, _, err = world_cli("pseudonymize", str(WORLD))
    assert status == 2 and "--mask all needs --key-env NAME" in err
    for name in ("CONVERSATIONS_TABLE_NAME", "LOCK_TABLE_NAME", "STAGE_TABLE_NAME"):
        monkeypatch.delenv(name, raising=False)
    status, _, err = world_cli("snapshot")
    assert status == 2 and "name the events whose rows to read" in err
    status, _, err = world_cli("snapshot", "--user", "+447700900101")
    assert status == 2 and "set CONVERSATIONS_TABLE_NAME, LOCK_TABLE_NAME, STAGE_TABLE_NAME" in err
    status, _, err = world_cli("pseudonymize", str(ROOT / "no-such-world.yaml"), "--mask", "text")
    assert status == 2 and "cannot read world file" in err
