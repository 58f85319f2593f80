"""Recording events for replay: credentials removed, personal data masked, and the recordings still replay."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from moto import mock_aws

from tools.dryrun.capture import MASKED_SIGNATURE, Pseudonyms, S3Capture, main, recordable
from tools.dryrun.cli import build_parser
from tools.dryrun.events import load_events
from tools.dryrun.replay import run_replay

ROOT = Path(__file__).resolve().parents[2]
# The Twilio examples: their form bodies are masked field by field (an email's multipart body is dropped).
EVENTS = [recorded for recorded in load_events([ROOT / "examples" / "events"]) if "13_email" not in recorded.source]
KEY = "a-capture-key-of-32-characters!!"


def form(event: dict[str, Any]) -> dict[str, str]:
    body = event["body"]
    text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    return dict(parse_qsl(text, keep_blank_values=True))


def test_credentials_are_removed_and_the_rest_is_kept() -> None:
    event = {
        **EVENTS[0].event,
        "headers": {**EVENTS[0].event["headers"], "Authorization": "Bearer abc", "Cookie": "session=1"},
        "requestContext": {**EVENTS[0].event["requestContext"], "authorizer": {"claims": {}}, "identity": {"ip": "1"}},
    }
    kept = recordable(event)
    assert "Authorization" not in kept["headers"] and "Cookie" not in kept["headers"]
    assert "authorizer" not in kept["requestContext"] and "identity" not in kept["requestContext"]
    assert (
        kept["body"] == event["body"]
        and kept["headers"]["X-Twilio-Signature"] == event["headers"]["X-Twilio-Signature"]
    )


def test_masking_text_and_numbers() -> None:
    http_api = next(e.event for e in EVENTS if e.event.get("version") == "2.0")
    for event in (EVENTS[0].event, http_api):
        masked = form(recordable(event, mask="text"))
        assert masked["Body"] == "[masked]" and masked["From"] == form(event)["From"]
        pseudonyms = Pseudonyms(KEY.encode())
        hidden = recordable(event, mask="all", pseudonyms=pseudonyms)
        fields = form(hidden)
        assert fields["From"] != form(event)["From"] and fields["From"] == pseudonyms.text(form(event)["From"])
        assert fields["Body"] == "[masked]"
        signature = hidden["headers"].get("X-Twilio-Signature") or hidden["headers"].get("x-twilio-signature")
        assert signature == MASKED_SIGNATURE
    with pytest.raises(ValueError, match="needs pseudonyms"):
        recordable(EVENTS[0].event, mask="all")


def replay(world: str, events: str, *options: str) -> list[tuple[str, str | None]]:
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["--world", world, "--backend", "memory", "--json", *options, events])
    assert run_replay(args, out=out, err=err) == 0, err.getvalue()
    return [(r["outcome"], r["target"]) for r in map(json.loads, out.getvalue().splitlines())]


def test_captured_masked_events_replay_against_a_pseudonymized_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAPTURE_KEY", KEY)
    with mock_aws():
        s3 = boto3.session.Session(region_name="us-east-1").client("s3")
        s3.create_bucket(Bucket="webhook-captures")
        capture = S3Capture.from_env(
            {
                "DRYRUN_CAPTURE_S3_URI": "s3://webhook-captures/prod",
                "DRYRUN_CAPTURE_MASK": "all",
                "DRYRUN_CAPTURE_KEY": KEY,
            },
            client=s3,
        )
        assert capture is not None
        start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        keys = [capture.record(recorded.event, start + timedelta(seconds=n)) for n, recorded in enumerate(EVENTS)]
        assert all(key and key.startswith("prod/") for key in keys)
        captured = tmp_path / "captured"
        for key in keys:
            assert key is not None
            target = captured / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket="webhook-captures", Key=key)["Body"].read())
    assert main(["world", str(ROOT / "examples" / "world.yaml"), "--key-env", "CAPTURE_KEY"]) == 0
    world = tmp_path / "world.json"
    world.write_text(capsys.readouterr().out)
    shared = world.read_text() + "".join(path.read_text() for path in captured.rglob("*.json"))
    for secret in ("9f86d081884c7d659a2feaa0c55ad015", "+447700900101", "447700900101", "Can I change my delivery"):
        assert secret not in shared
    original = replay(str(ROOT / "examples" / "world.yaml"), str(ROOT / "examples" / "events"), "--skip-signature")
    # Objects are named by time, so the directory reads back in capture order (the email examples come last).
    assert replay(str(world), str(captured), "--skip-signature") == original[: len(EVENTS)]


@pytest.mark.parametrize("mask", ["text", "all"])
def test_a_body_that_is_not_a_form_is_dropped_when_masking(mask: str) -> None:
    [email, *_] = [recorded.event for recorded in load_events([ROOT / "examples" / "events" / "13_email.jsonl"])]
    masked = recordable(email, mask=mask, pseudonyms=Pseudonyms(KEY.encode()))
    assert masked["body"] == "" and email["body"]


def test_a_failed_capture_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def put_object(self, **request: Any) -> None:
            raise OSError("network down")

    capture = S3Capture(Broken(), "s3://bucket/prefix", mask="text")
    assert capture.record(EVENTS[0].event) is None
    assert "event capture failed: OSError" in caplog.text
    assert S3Capture.from_env({}) is None
