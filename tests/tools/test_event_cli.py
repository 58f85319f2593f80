"""``pipeline-event``: signed events from form fields, and event files masked as the capture masks them."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from runtime.masking import MASKED_SIGNATURE, MASKED_TEXT
from steps.twilio.signature import sign
from tools.dryrun.cli import build_parser
from tools.dryrun.event_cli import main
from tools.dryrun.replay import run_replay

ROOT = Path(__file__).resolve().parents[2]
WORLD = ROOT / "examples" / "world.yaml"
TOKEN = "9f86d081884c7d659a2feaa0c55ad015"
ALICE, ACME_WHATSAPP, ACME_SMS, BOB = "+447700900101", "+14155238886", "+441632960001", "+447700900102"


def build(capsys: pytest.CaptureFixture[str], *args: str, status: int = 0) -> Any:
    assert main(["build", *args]) == status
    out, err = capsys.readouterr()
    return json.loads(out) if status == 0 else err


def form(event: dict[str, Any]) -> list[tuple[str, str]]:
    body = event["body"]
    text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    return parse_qsl(text, keep_blank_values=True)


def replay(tmp_path: Path, events: Sequence[dict[str, Any]], *options: str) -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["--world", str(WORLD), "--backend", "memory", "--json", *options, str(path)])
    assert run_replay(args, out=out, err=err) == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_an_event_built_from_fields_is_signed_with_the_worlds_secret_and_replays(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    message = build(
        capsys,
        "--channel",
        "whatsapp",
        "--from",
        ALICE,
        "--to",
        ACME_WHATSAPP,
        "--body",
        "Hi there",
        "--world",
        str(WORLD),
    )
    sms = build(
        capsys,
        "--channel",
        "sms",
        "--from",
        BOB,
        "--to",
        ACME_SMS,
        "--body",
        "Open?",
        "--world",
        str(WORLD),
        "--http-api",
    )
    callback = build(
        capsys,
        "--channel",
        "whatsapp",
        "--from",
        ACME_WHATSAPP,
        "--to",
        ALICE,
        "--status",
        "read",
        "--world",
        str(WORLD),
    )
    fields = dict(form(message))
    assert (fields["From"], fields["To"], fields["Body"]) == (
        f"whatsapp:{ALICE}",
        f"whatsapp:{ACME_WHATSAPP}",
        "Hi there",
    )
    assert fields["AccountSid"] == "AC5ef8732a3c49700934481addd5ce1659" and fields["MessageSid"].startswith("SM")
    assert message["headers"]["X-Twilio-Signature"] == sign(
        "https://hooks.example.com/prod/whatsapp", form(message), TOKEN
    )
    assert sms["version"] == "2.0" and dict(form(sms))["From"] == BOB
    assert dict(form(callback))["MessageStatus"] == "read"
    assert TOKEN not in json.dumps([message, sms, callback])
    records = replay(tmp_path, [message, sms, callback])
    assert [(r["outcome"], r["signature"]) for r in records] == [
        ("QUEUED", "valid"),
        ("QUEUED", "valid"),
        ("STATUS_CALLBACK", "valid"),
    ]


def test_fields_replace_the_forms_own_or_make_the_whole_form(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    media = build(
        capsys,
        *("--channel", "whatsapp", "--from", ALICE, "--to", ACME_WHATSAPP, "--token-env", "ACME_TOKEN"),
        *("--field", "NumMedia=1", "--field", "MediaUrl0=https://api.twilio.com/m.jpg"),
        *("--field", "MediaContentType0=image/jpeg", "--sid", "SM" + "a" * 32),
    )
    fields = form(media)
    assert ("NumMedia", "1") in fields and ("NumMedia", "0") not in fields and dict(fields)["Body"] == ""
    raw = build(
        capsys,
        *("--channel", "sms", "--secret", "ai-multi-comms/sms-credentials/acme/support/twilio-prod"),
        *("--world", str(WORLD), "--field", f"From={BOB}", "--field", f"To={ACME_SMS}"),
        *("--field", "MessageSid=SM" + "b" * 32, "--field", "Body=one", "--field", "Body=two"),
    )
    assert form(raw) == [
        ("From", BOB),
        ("To", ACME_SMS),
        ("MessageSid", "SM" + "b" * 32),
        ("Body", "one"),
        ("Body", "two"),
    ]
    records = replay(tmp_path, [media, raw])
    assert [(r["outcome"], r["signature"]) for r in records] == [("QUEUED", "valid"), ("QUEUED", "valid")]


def test_what_cannot_be_signed_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "say how to sign" in build(capsys, "--channel", "sms", "--from", BOB, "--to", ACME_SMS, status=2)
    stranger = build(
        capsys, "--channel", "sms", "--from", "+447700900999", "--to", ACME_SMS, "--world", str(WORLD), status=2
    )
    assert "has no sms conversation for these numbers" in stranger
    assert "has no secret 'nope'" in build(
        capsys, "--channel", "sms", "--from", BOB, "--to", ACME_SMS, "--world", str(WORLD), "--secret", "nope", status=2
    )
    assert "--from and --to go together" in build(
        capsys, "--channel", "sms", "--from", BOB, "--token-env", "X", status=2
    )


def test_event_files_are_masked_as_the_capture_masks_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mask", str(ROOT / "examples" / "events" / "08_burst.jsonl")]) == 0
    masked = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(masked) == 3
    for event in masked:
        assert dict(form(event))["Body"] == MASKED_TEXT and event["headers"]["X-Twilio-Signature"] == MASKED_SIGNATURE
        assert event["recording"]["mask"] == "text"
    assert main(["mask", "--mask", "all", str(ROOT / "examples" / "events")]) == 2
    assert "--mask all needs --key-env NAME" in capsys.readouterr().err
