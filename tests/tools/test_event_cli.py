"""``pipeline-event``: signed events from form fields, and event files masked as the capture masks them."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto import mock_aws

from runtime.masking import MASKED_SIGNATURE, MASKED_TEXT
from steps.sendgrid import multipart
from steps.sendgrid.ecdsa import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from steps.sendgrid.message import InboundEmail, id_from_message_id, read_email
from steps.twilio.signature import sign
from tests.support.dryrun import ROOT, WORLD, greeting_rules, run_dryrun
from tools.dryrun.cli import build_parser
from tools.dryrun.event_cli import main
from tools.dryrun.replay import run_replay
from tools.sendgrid_events import KeyPair

TOKEN = "9f86d081884c7d659a2feaa0c55ad015"
ALICE, ACME_WHATSAPP, ACME_SMS, BOB = "+447700900101", "+14155238886", "+441632960001", "+447700900102"
KIM, ACME_PARSE = "Kim Lee <Kim@Example.org>", "support@inbound.acme.example"
EMAIL_SEED = "examples/acme-sendgrid"  # examples/generate.py's seed: the world's email public key is derived from it
EMAIL_SECRET = "ai-multi-comms/email-credentials/acme/support/sendgrid-prod"
WORLD_NOW = 1795608000  # examples/world.yaml's now: 2026-11-25T12:00:00Z


def build(capsys: pytest.CaptureFixture[str], *args: str, status: int = 0) -> Any:
    assert main(["build", *args]) == status
    out, err = capsys.readouterr()
    return json.loads(out) if status == 0 else err


def form(event: dict[str, Any]) -> list[tuple[str, str]]:
    body = event["body"]
    text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    return parse_qsl(text, keep_blank_values=True)


def replay(
    tmp_path: Path, events: Sequence[dict[str, Any]], *options: str, world: Path = WORLD
) -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    output = run_dryrun("--world", world, "--backend", "memory", "--json", *options, path)
    return [json.loads(line) for line in output.splitlines()]


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


def test_a_status_callback_refuses_the_message_options_it_would_drop(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A delivery-status callback carries no Body and no ProfileName: they were silently left out of the form.
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    callback = ("--channel", "whatsapp", "--from", ACME_WHATSAPP, "--to", ALICE, "--status", "read")
    refused = build(capsys, *callback, "--body", "Hi", "--profile-name", "Alice", "--token-env", "ACME_TOKEN", status=2)
    assert refused == "pipeline-event: error: --body, --profile-name: not an option of a status callback (--status)\n"
    assert dict(form(build(capsys, *callback, "--token-env", "ACME_TOKEN")))["MessageStatus"] == "read"


def test_two_sources_of_the_auth_token_are_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # --token-env won silently over --secret and --world: the event was signed with a token the user did not pick.
    monkeypatch.setenv("ACME_TOKEN", "not-the-worlds-token")
    message = ("--channel", "sms", "--from", BOB, "--to", ACME_SMS, "--body", "Hi", "--token-env", "ACME_TOKEN")
    for other in (("--world", str(WORLD)), ("--secret", "x", "--region", "us-east-1")):
        assert build(capsys, *message, *other, status=2) == (
            f"pipeline-event: error: --token-env, {other[0]}: give one source of the auth token\n"
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


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("null\n", ":1:1: not an API Gateway event (got null)"),
        ('"Hi, my number is +447700900101"\n', ":1:1: not an API Gateway event (got a string)"),
        ("[1, 2]\n", ":1:1: event #0: not an API Gateway event (got a number)"),
    ],
)
def test_a_file_that_holds_no_event_objects_is_reported_where_it_is_not_masked_into_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, problem: str
) -> None:
    recorded = tmp_path / "raw.json"
    recorded.write_text(content)
    events = str(ROOT / "examples" / "events" / "01_whatsapp_text.json")
    assert main(["mask", events, str(recorded)]) == 2
    out, err = capsys.readouterr()
    assert f"{recorded}{problem}" in err and "+447700900101" not in err
    assert out == ""  # nothing printed for the readable files either: the whole command is refused


def test_the_profile_name_twilio_repeats_in_channel_metadata_stays_hidden_in_captures_and_dry_run_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    metadata = json.dumps({"type": "whatsapp", "data": {"context": {"ProfileName": "Jane Doe", "WaId": ALICE[1:]}}})
    fields = ("--profile-name", "Jane Doe", "--field", f"ChannelMetadata={metadata}")
    message = build(
        capsys, "--channel", "whatsapp", "--from", ALICE, "--to", ACME_WHATSAPP, *fields, "--world", str(WORLD)
    )
    # A candidate rule that reads it: --explain shows what the rule read, masked.
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    routing = rules / "40_routing.yaml"
    reader = "rules:\n  - id: metadata_reader\n    when: \"contains(request.fields.ChannelMetadata, 'nobody')\"\n"
    routing.write_text(routing.read_text().replace("rules:\n", reader + "    then: {target: handoff}\n", 1))
    (tmp_path / "message.json").write_text(json.dumps(message))
    explained = run_dryrun(
        "--world", WORLD, "--backend", "memory", "--rules", rules, "--explain", tmp_path / "message.json"
    )
    assert "rule:     routing/metadata_reader: no match (request.fields.ChannelMetadata=" in explained
    assert "Jane" not in explained and ALICE[1:] not in explained
    monkeypatch.setenv("CAPTURE_KEY", "a-capture-key-of-32-characters!!")
    for mask in ("text", "all"):
        assert main(["mask", "--mask", mask, "--key-env", "CAPTURE_KEY", str(tmp_path / "message.json")]) == 0
        masked = capsys.readouterr().out
        assert "Jane" not in masked and (ALICE[1:] not in masked) is (mask == "all"), mask


def test_a_key_only_mask_all_uses_is_refused_or_ignored_as_pipeline_world_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: pipeline-event and pipeline-world each read --key-env with a copy of their own, and the copies
    disagreed: `pipeline-event mask --mask text --key-env K` with a key under 16 bytes was refused (exit 2, "the
    pseudonym key must be at least 16 bytes") for a key --mask text never uses, which pipeline-world pseudonymize
    --mask text ignores; with --mask all, only pipeline-world's refusal named the option and variable to fix."""
    events = ROOT / "examples" / "events" / "08_burst.jsonl"
    monkeypatch.setenv("SHORT_KEY", "short")
    assert main(["mask", "--mask", "text", str(events)]) == 0
    unkeyed = capsys.readouterr().out
    assert main(["mask", "--mask", "text", "--key-env", "SHORT_KEY", str(events)]) == 0
    assert capsys.readouterr().out == unkeyed
    assert main(["mask", "--mask", "all", "--key-env", "SHORT_KEY", str(events)]) == 2
    assert capsys.readouterr().err == (
        "pipeline-event: error: --mask all needs --key-env NAME: a variable holding a key of at least 16 bytes\n"
    )


def test_masked_files_hold_no_cookie_in_any_mode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    event = json.loads((ROOT / "examples" / "events" / "02_sms_http_api.json").read_text())
    event["cookies"] = ["session=SECRET-COOKIE"]
    (tmp_path / "cookie.json").write_text(json.dumps(event))
    monkeypatch.setenv("CAPTURE_KEY", "a-capture-key-of-32-characters!!")
    for mask in ("none", "text", "all"):
        assert main(["mask", "--mask", mask, "--key-env", "CAPTURE_KEY", str(tmp_path / "cookie.json")]) == 0
        masked = json.loads(capsys.readouterr().out)
        assert "cookies" not in masked and "SECRET-COOKIE" not in json.dumps(masked), mask


def test_emails_masked_with_all_keep_no_display_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    emails = ROOT / "examples" / "events" / "13_email.jsonl"
    monkeypatch.setenv("CAPTURE_KEY", "a-capture-key-of-32-characters!!")
    assert main(["mask", "--mask", "all", "--key-env", "CAPTURE_KEY", str(emails)]) == 0
    masked = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    originals = [json.loads(line) for line in emails.read_text().splitlines()]
    for event, original in zip(masked, originals, strict=True):
        assert "Kim Lee <kim@example.org>" in base64.b64decode(original["body"]).decode()
        body, email, _ = posted(event)
        assert b"Kim" not in body and b"Lee" not in body and b"kim@" not in body
        assert email.sender is not None and email.sender.endswith("@example.org")


def email_args(*extra: str) -> list[str]:
    return ["--channel", "email", "--from", KIM, "--to", ACME_PARSE, "--subject", "Order 10442", *extra]


def posted(event: dict[str, Any]) -> tuple[bytes, InboundEmail, multipart.MultipartForm]:
    """The raw body of an email event, and the email and form the pipeline's parser reads from it."""
    body = base64.b64decode(event["body"])
    headers = {name.lower(): value for name, value in event["headers"].items()}
    parsed = multipart.parse(body, headers["content-type"])
    return body, read_email(parsed, body), parsed


def signature_of(event: dict[str, Any]) -> tuple[str, str]:
    headers = {name.lower(): value for name, value in event["headers"].items()}
    return headers[SIGNATURE_HEADER.lower()], headers[TIMESTAMP_HEADER.lower()]


def pem_key() -> tuple[str, str]:
    """A fresh P-256 private key as PEM, and its public key as SendGrid hands it out."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode(), KeyPair(key).public_key


def key_material(pem: str) -> list[str]:
    """The base64 lines of a PEM: what would show if the key leaked in any layout."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_an_email_built_with_the_worlds_seed_is_signed_as_sendgrid_signs_it_and_replays(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed = ("--key-seed", EMAIL_SEED, "--world", str(WORLD))
    message = build(
        capsys, *email_args("--body", "Where is my parcel?", "--message-id", "kim-7@mail.example.org", *seed)
    )
    http_api = build(capsys, *email_args("--body", "And the invoice?", "--http-api", *seed))
    spam = build(capsys, *email_args("--body", "Click here", "--field", "spam_score=9.1", *seed))
    stale = build(capsys, *email_args("--body", "Late", "--timestamp", str(WORLD_NOW - 7 * 86400), *seed))

    body, email, _ = posted(message)
    assert (email.sender, email.recipients, email.subject, email.text) == (
        "kim@example.org",
        (ACME_PARSE,),
        "Order 10442",
        "Where is my parcel?",
    )
    assert email.message_id == id_from_message_id("kim-7@mail.example.org", ACME_PARSE)
    assert message["requestContext"]["path"] == "/prod/email" and message["isBase64Encoded"] is True
    signature, timestamp = signature_of(message)
    assert timestamp == str(WORLD_NOW)  # the world's now: the time its replay runs at
    assert verify(KeyPair.from_seed(EMAIL_SEED).public_key, signature, timestamp, body)
    assert http_api["version"] == "2.0" and http_api["rawPath"] == "/prod/email"
    assert posted(http_api)[1].message_id != email.message_id  # a new Message-ID by default
    assert posted(spam)[2].first("spam_score") == "9.1"

    records = replay(tmp_path, [message, http_api, spam, stale])
    assert [(r["outcome"], r["signature"]) for r in records] == [
        ("QUEUED", "valid"),
        ("BATCHED", "valid"),
        ("EMAIL_REJECTED", "valid"),
        ("INVALID_SIGNATURE", "invalid"),
    ]
    assert records[0]["actions"][0]["item"]["message_sid"] == email.message_id
    assert records[3]["message"] == "the signature's timestamp is outside the accepted window"


def test_an_email_signed_with_a_pem_key_from_the_environment_replays_against_a_world_with_its_public_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem, public_key = pem_key()
    monkeypatch.setenv("SENDGRID_TEST_KEY", pem)
    world = tmp_path / "world.yaml"
    world.write_text(WORLD.read_text().replace(KeyPair.from_seed(EMAIL_SEED).public_key, public_key))
    key = ("--private-key-env", "SENDGRID_TEST_KEY")
    assert main(["build", *email_args("--body", "Hello", *key, "--world", str(world))]) == 0
    out, err = capsys.readouterr()
    event = json.loads(out)
    body, _, _ = posted(event)
    assert verify(public_key, *signature_of(event), body)
    assert not any(line in out + err for line in key_material(pem))
    assert replay(tmp_path, [event], world=world)[0]["outcome"] == "QUEUED"

    assert main(["build", *email_args(*key, "--now", "2026-11-25T11:58:00Z")]) == 0  # no world: nothing to check
    out, err = capsys.readouterr()
    assert signature_of(json.loads(out))[1] == str(WORLD_NOW - 120)
    assert not any(line in out + err for line in key_material(pem))


@pytest.mark.parametrize("http_api", [False, True], ids=["rest", "http_api"])
def test_an_email_built_at_now_arrives_then_and_replays_at_that_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, http_api: bool
) -> None:
    # The post was signed at --now but arrived at the wall clock's time (or at none, as HTTP API events had no
    # timeEpoch): replayed against a world that pins no time (each event at its arrival), it was refused as stale.
    world = tmp_path / "world.yaml"
    world.write_text("".join(line for line in WORLD.read_text().splitlines(True) if not line.startswith("now:")))
    at = "2026-06-01T09:00:00Z"
    shape = ("--http-api",) if http_api else ()
    event = build(
        capsys, *email_args("--body", "Hello", "--key-seed", EMAIL_SEED, "--world", str(world), "--now", at, *shape)
    )
    stamp = 1780304400  # 2026-06-01T09:00:00Z
    assert signature_of(event)[1] == str(stamp)
    context = event["requestContext"]
    assert context["timeEpoch" if http_api else "requestTimeEpoch"] == stamp * 1000

    [record] = replay(tmp_path, [event], world=world)
    assert (record["outcome"], record["signature"]) == ("QUEUED", "valid")
    [stage] = [action["item"] for action in record["actions"] if action["type"] == "put_item"][:1]
    assert stage["received_at"] == "2026-06-01T09:00:00.000Z"


def test_a_key_that_does_not_match_the_conversations_public_key_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_seed = build(capsys, *email_args("--key-seed", "not-acme", "--world", str(WORLD)), status=2)
    assert wrong_seed == (
        f"pipeline-event: error: the private key does not match the sendgrid_webhook_public_key of secret "
        f"'{EMAIL_SECRET}': the pipeline would answer INVALID_SIGNATURE\n"
    )
    pem, _ = pem_key()
    monkeypatch.setenv("SENDGRID_TEST_KEY", pem)
    assert main(["build", *email_args("--private-key-env", "SENDGRID_TEST_KEY", "--world", str(WORLD))]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "does not match the sendgrid_webhook_public_key" in err
    assert not any(line in err for line in key_material(pem))


def test_a_key_is_checked_against_the_secret_read_from_aws(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        secret = json.dumps({"sendgrid_webhook_public_key": KeyPair.from_seed(EMAIL_SEED).public_key})
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=EMAIL_SECRET, SecretString=secret)
        aws = ("--secret", EMAIL_SECRET, "--region", "us-east-1")
        assert (
            "X-Twilio-Email-Event-Webhook-Signature"
            in build(capsys, *email_args("--key-seed", EMAIL_SEED, *aws))["headers"]
        )
        assert "does not match" in build(capsys, *email_args("--key-seed", "not-acme", *aws), status=2)


@pytest.mark.parametrize("score", ["nan", "inf", "Infinity", "abc"])
def test_a_spam_score_that_is_no_finite_number_is_refused(capsys: pytest.CaptureFixture[str], score: str) -> None:
    # float() reads "nan" and "inf": they were posted as SendGrid's spam_score, which is always a finite number.
    with pytest.raises(SystemExit) as exited:
        main(["build", *email_args("--key-seed", EMAIL_SEED, "--spam-score", score)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: argument --spam-score: {score!r} is not a number\n")


def test_what_cannot_sign_an_email_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert build(capsys, *email_args("--world", str(WORLD)), status=2) == (
        "pipeline-event: error: say how to sign an email: "
        "--private-key-env NAME (a PEM private key) or --key-seed TEXT\n"
    )
    assert "SENDGRID_UNSET is empty or unset" in build(
        capsys, *email_args("--private-key-env", "SENDGRID_UNSET"), status=2
    )
    monkeypatch.setenv("NOT_A_KEY", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    assert "NOT_A_KEY holds no unencrypted PEM private key" in build(
        capsys, *email_args("--private-key-env", "NOT_A_KEY"), status=2
    )
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setenv("P384_KEY", p384.decode())
    assert "is not a P-256 (prime256v1) EC key" in build(capsys, *email_args("--private-key-env", "P384_KEY"), status=2)
    stranger = ("--channel", "email", "--from", "ann@example.org", "--to", ACME_PARSE, "--key-seed", EMAIL_SEED)
    assert "has no email conversation for these addresses" in build(capsys, *stranger, "--world", str(WORLD), status=2)
    assert "--channel email needs --from" in build(capsys, "--channel", "email", "--key-seed", EMAIL_SEED, status=2)
    assert "--from 'Kim' is not an email address" in build(
        capsys, "--channel", "email", "--from", "Kim", "--to", ACME_PARSE, "--key-seed", EMAIL_SEED, status=2
    )
    assert "--status, --token-env: not an option of --channel email" in build(
        capsys, *email_args("--key-seed", EMAIL_SEED, "--status", "read", "--token-env", "X"), status=2
    )
    assert "--subject, --key-seed: not an option of --channel sms" in build(
        capsys, "--channel", "sms", "--from", BOB, "--to", ACME_SMS, "--subject", "x", "--key-seed", "s", status=2
    )
    assert "--profile-name: not an option of --channel sms" in build(
        capsys, "--channel", "sms", "--from", BOB, "--to", ACME_SMS, "--profile-name", "Bob", status=2
    )


def test_emails_masked_as_text_have_their_signature_masked_as_the_capture_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emails = ROOT / "examples" / "events" / "13_email.jsonl"
    assert main(["mask", str(emails)]) == 0
    for event in (json.loads(line) for line in capsys.readouterr().out.splitlines()):
        headers = {name.lower(): value for name, value in event["headers"].items()}
        assert headers["x-twilio-email-event-webhook-signature"] == MASKED_SIGNATURE
        assert headers["x-twilio-email-event-webhook-timestamp"].isdigit()  # signed data, kept for the replay
        body, email, _ = posted(event)
        assert b"Kim Lee" not in body and email.sender == "kim@example.org"


def test_the_channels_are_the_pipelines_and_one_without_a_known_parse_step_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tools.dryrun.event_cli as event_cli
    from tools.needs import pipeline_needs

    text = (ROOT / "pipelines" / "email_inbound.yaml").read_text(encoding="utf-8")
    fax = tmp_path / "fax_inbound.yaml"
    fax.write_text(
        text.replace("channels: [email]", "channels: [fax]")
        .replace("sendgrid.parse", "fax.parse")
        .replace("        email:\n", "        fax:\n")
    )
    monkeypatch.setattr(
        event_cli, "shipped_needs", lambda: pipeline_needs([fax, ROOT / "pipelines/twilio_inbound.yaml"])
    )
    err = build(capsys, "--channel", "fax", "--from", KIM, "--to", ACME_PARSE, status=2)
    assert err == (
        "pipeline-event: error: channel 'fax' is parsed by fax.parse (pipeline email_inbound), which pipeline-event "
        "cannot build; it builds events for the channels of sendgrid.parse, twilio.parse: sms, whatsapp\n"
    )
    with pytest.raises(SystemExit):
        main(["build", "--channel", "email", "--from", KIM, "--to", ACME_PARSE])
    assert "invalid choice: 'email' (choose from 'fax', 'sms', 'whatsapp')" in capsys.readouterr().err


def test_the_conversation_signing_an_event_is_the_one_the_pipeline_finds_whatever_type_its_numbers_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Two conversations of the pair with their own secrets: the newer one is complete, written `task_complete: 1.0`
    # (DynamoDB holds the number 1 either way), so the pipeline finds the older, open one and checks its token.
    import yaml

    document = yaml.safe_load(WORLD.read_text())
    alice = next(item for item in document["conversations"] if item["primary_channel"] == ALICE)
    done_secret = "ai-multi-comms/whatsapp-credentials/acme/old/twilio-prod"
    document["secrets"][done_secret] = {"twilio_account_sid": "AC" + "1" * 32, "twilio_auth_token": "f" * 32}
    done = {
        **alice,
        "conversation_id": alice["conversation_id"].replace("6f0c", "7f0c"),
        "created_at": "2026-11-24T09:15:00Z",
        "task_complete": 1.0,
        "channel_config": {"whatsapp_credentials_id": done_secret},
    }
    document["conversations"].append(done)
    world = tmp_path / "world.json"
    world.write_text(json.dumps(document))
    event = build(
        capsys, "--channel", "whatsapp", "--from", ALICE, "--to", ACME_WHATSAPP, "--body", "Hi", "--world", str(world)
    )
    [record] = replay(tmp_path, [event], world=world)
    assert (record["signature"], record["outcome"]) == ("valid", "QUEUED")


def test_the_mask_help_says_what_each_mode_keeps_and_what_files_it_reads(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["mask", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert exited.value.code == 0
    assert "FILES event files (.json, .jsonl) or directories of them" in help_text
    assert (
        "none: the body kept (credentials always dropped); text: free text masked; "
        "all: numbers and addresses pseudonymized too" in help_text
    )


def test_a_token_is_read_from_a_secret_saved_with_a_byte_order_mark(capsys: pytest.CaptureFixture[str]) -> None:
    """As the function reads it (engine.secrets): before, the whole JSON text became the token, signing nothing."""
    with mock_aws():
        name = "ai-multi-comms/whatsapp-credentials/acme/proj-1/twilio-prod"
        secret = "\ufeff" + json.dumps({"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": TOKEN})
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=name, SecretString=secret)
        args = ("--channel", "whatsapp", "--from", ALICE, "--to", ACME_WHATSAPP, "--body", "Hi")
        event = build(capsys, *args, "--secret", name, "--region", "us-east-1")
    url = "https://" + event["headers"]["Host"] + event["requestContext"]["path"]
    assert event["headers"]["X-Twilio-Signature"] == sign(url, form(event), TOKEN)


def test_a_capture_masked_again_never_claims_less_masking_nor_gets_pseudonyms_twice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An ops person puts a day's capture through ``pipeline-event mask`` again before sharing it (the default
    ``--mask text``, or ``all`` to be sure): the recording must still say what it holds. A mask=all capture stays
    refused by a live replay and keeps the pseudonyms the world was pseudonymized with; a mask=text capture re-masked
    with none still needs --skip-signature and still notes the rules that read its masked body."""
    monkeypatch.setenv("CAPTURE_KEY", "a-capture-key-of-32-characters!!")
    message = ROOT / "examples" / "events" / "01_whatsapp_text.json"
    assert main(["mask", "--mask", "all", "--key-env", "CAPTURE_KEY", str(message)]) == 0
    captured = tmp_path / "captured-all.json"
    captured.write_text(capsys.readouterr().out)
    once = json.loads(captured.read_text())
    once["recording"]["captured_at"] = "2026-11-25T12:00:00.000001Z"
    captured.write_text(json.dumps(once))
    for mask in ("none", "text", "all"):
        assert main(["mask", "--mask", mask, "--key-env", "CAPTURE_KEY", str(captured)]) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["recording"]["mask"] == "all", mask
        assert again["recording"]["captured_at"] == once["recording"]["captured_at"], mask
        assert set(once["recording"]["masked"]) <= set(again["recording"]["masked"]), mask
        assert dict(form(again))["From"] == dict(form(once))["From"] != f"whatsapp:{ALICE}", mask
        shared = tmp_path / f"shared-{mask}.json"
        shared.write_text(json.dumps(again))
        out, err = io.StringIO(), io.StringIO()
        parsed = build_parser().parse_args(["--backend", "live", "--skip-signature", str(shared)])
        assert run_replay(parsed, out=out, err=err) == 2, mask
        assert f"{shared}:1:1: recorded with mask=all" in err.getvalue(), mask
    # A text capture re-masked with none: its body is still [masked], its signature still a placeholder.
    assert main(["mask", str(message)]) == 0
    text = tmp_path / "captured-text.json"
    text.write_text(capsys.readouterr().out)
    assert main(["mask", "--mask", "none", str(text)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["recording"]["mask"] == "text" and "Body" in again["recording"]["masked"]
    assert again["headers"]["X-Twilio-Signature"] == MASKED_SIGNATURE
    (tmp_path / "again.json").write_text(json.dumps(again))
    rules = greeting_rules(tmp_path)
    record = json.loads(
        run_dryrun(
            "--world",
            WORLD,
            "--backend",
            "memory",
            "--rules",
            rules,
            "--skip-signature",
            "--json",
            tmp_path / "again.json",
        )
    )
    assert any(
        note.startswith("recording masked (mask=text): routing/greeting_to_human read request.body")
        for note in record["notes"]
    ), record["notes"]


def test_a_masked_recording_replayed_with_signatures_checked_says_so_instead_of_looking_forged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Defect: a mask=text (or all) capture replayed without --skip-signature ended every message and email
    INVALID_SIGNATURE, "signature does not match the request", with nothing to say the recording had masked the
    signature: a day of real traffic read as a day of forgeries. Now such an event's signature is ``unchecked``, with
    a note naming the masked header and --skip-signature, counted in the summary; a real refusal stays invalid."""
    masked = tmp_path / "masked.jsonl"
    assert (
        main(
            [
                "mask",
                str(ROOT / "examples" / "events" / "01_whatsapp_text.json"),
                str(ROOT / "examples" / "events" / "13_email.jsonl"),
            ]
        )
        == 0
    )
    masked.write_text(capsys.readouterr().out)
    forged = ROOT / "examples" / "events" / "06_bad_signature.json"
    output = run_dryrun("--world", WORLD, "--backend", "memory", "--json", masked, forged)
    records = [json.loads(line) for line in output.splitlines()]
    *recorded, stale, real = records
    assert len(recorded) == 3
    for record in recorded:
        assert record["outcome"] == "INVALID_SIGNATURE" and record["signature"] == "unchecked", record
        assert any(
            note.startswith("signature not checked: the recording masked it (")
            and "replay masked recordings with --skip-signature" in note
            for note in record["notes"]
        ), record["notes"]
    # Refused for what the recording kept: an email signed too long ago (its timestamp), a forged signature.
    for refused in (stale, real):
        assert refused["signature"] == "invalid" and not any("recording masked" in n for n in refused["notes"])
    assert "timestamp" in stale["message"]
    readable = run_dryrun("--world", WORLD, "--backend", "memory", masked)
    assert "signature not checked for 3 event(s)\n" in readable


def test_the_change_gate_does_not_pass_a_masked_capture_whose_every_event_stopped_at_the_signature(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Defect: ``--fail-on-change`` over a mask=text capture replayed without --skip-signature exited 0: both lanes
    stopped every event at the masked signature (INVALID_SIGNATURE), so no rule ran and the gate passed having
    compared nothing. Such events are not decided by the rules: the gate exits 2 and says why and what to do."""
    assert main(["mask", str(ROOT / "examples" / "events")]) == 0
    masked = tmp_path / "masked.jsonl"
    masked.write_text(capsys.readouterr().out)
    candidate = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", candidate)
    routing = candidate / "40_routing.yaml"
    sms_rule = "rules:\n  - id: sms_to_human\n    when: \"request.channel == 'sms'\"\n    then: {target: handoff}\n"
    routing.write_text(routing.read_text().replace("rules:\n", sms_rule, 1))
    gate = ["--world", str(WORLD), "--backend", "memory", "--rules", str(candidate), "--baseline-rules", "rules"]
    out, err = io.StringIO(), io.StringIO()
    assert run_replay(build_parser().parse_args([*gate, "--fail-on-change", str(masked)]), out=out, err=err) == 2
    assert (
        "pipeline-dryrun: error: --fail-on-change: 15 event(s) stopped at a signature their recording masked, so no "
        "rule decided them; replay masked recordings with --skip-signature\n"
    ) in err.getvalue()
    # With --skip-signature the rules run, and the gate sees the SMS rule's change.
    out, err = io.StringIO(), io.StringIO()
    skipped = build_parser().parse_args([*gate, "--fail-on-change", "--skip-signature", str(masked)])
    assert run_replay(skipped, out=out, err=err) == 1, err.getvalue()


def test_a_whole_capture_refused_for_the_url_says_which_url_its_signature_was_checked_over(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defect: a mask=none capture of a function with PUBLIC_BASE_URL set (Twilio signs the public URL; API Gateway's
    Host is another) replayed without that variable ended every Twilio event INVALID_SIGNATURE, "does not match the
    request", with nothing to tell a forged day from a wrong URL. The note names the URL checked and the setting."""
    event = json.loads((ROOT / "examples" / "events" / "01_whatsapp_text.json").read_text())
    gateway = "abc123.execute-api.us-east-1.amazonaws.com"
    event["headers"]["Host"] = event["multiValueHeaders"]["Host"][0] = gateway
    event["requestContext"]["domainName"] = gateway
    (tmp_path / "raw.json").write_text(json.dumps(event))
    assert main(["mask", "--mask", "none", str(tmp_path / "raw.json")]) == 0
    whole = tmp_path / "whole.json"
    whole.write_text(capsys.readouterr().out)
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    [record] = map(json.loads, run_dryrun("--world", WORLD, "--backend", "memory", "--json", whole).splitlines())
    assert record["outcome"] == "INVALID_SIGNATURE" and record["signature"] == "invalid"
    assert (
        f"signature checked over https://{gateway}/prod/whatsapp: a recording's signature matches only the URL the "
        "function checked it over; if the function sets PUBLIC_BASE_URL, replay with the same value"
    ) in record["notes"]
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://hooks.example.com/prod")
    [record] = map(json.loads, run_dryrun("--world", WORLD, "--backend", "memory", "--json", whole).splitlines())
    assert (record["outcome"], record["signature"], record["notes"]) == ("QUEUED", "valid", [])


def test_a_secret_stored_as_binary_is_refused_by_name_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: a secret holding SecretBinary (no SecretString) ended the command with KeyError: 'SecretString'.
    with mock_aws():
        name = "ai-multi-comms/whatsapp-credentials/acme/proj-1/twilio-prod"
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=name, SecretBinary=TOKEN.encode())
        args = ("--channel", "whatsapp", "--from", ALICE, "--to", ACME_WHATSAPP, "--body", "Hi")
        error = build(capsys, *args, "--secret", name, "--region", "us-east-1", status=2)
    assert error == (
        f"pipeline-event: error: secret {name!r} holds no SecretString (it is stored as binary): "
        "store the credentials as a JSON SecretString, as the function reads them\n"
    )
    assert TOKEN not in error


def test_outside_a_project_building_an_event_says_to_run_in_the_projects_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: argparse refused every channel with "invalid choice: 'whatsapp' (choose from )".
    monkeypatch.chdir(tmp_path)
    err = build(capsys, "--channel", "whatsapp", "--from", "+447700900101", "--to", "+14155238886", status=2)
    assert err == (
        "pipeline-event: error: no pipeline files (*.yaml) found in pipelines/; "
        "run pipeline-event in the project's directory\n"
    )


# Characters JSON leaves raw without ensure_ascii that str.splitlines() (U+0085, U+2028, U+2029) or a JavaScript
# reader (U+2028, U+2029) takes for a line break.
LINE_BREAKING = "one\u2028two\u2029three\x85four"


def test_masked_event_lines_stay_one_line_each_whatever_characters_they_hold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = json.loads((ROOT / "examples" / "events" / "01_whatsapp_text.json").read_text(encoding="utf-8"))
    event["headers"]["X-Note"] = LINE_BREAKING
    (tmp_path / "odd.json").write_text(json.dumps(event), encoding="utf-8")
    assert main(["mask", "--mask", "none", str(tmp_path / "odd.json")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1, lines
    assert not {"\u2028", "\u2029", "\x85"} & set(out)
    assert json.loads(lines[0])["headers"]["X-Note"] == LINE_BREAKING


def test_dryrun_json_lines_stay_one_line_each_whatever_characters_they_hold(
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
        LINE_BREAKING,
        "--world",
        str(WORLD),
    )
    (tmp_path / "odd.jsonl").write_text(json.dumps(message) + "\n", encoding="utf-8")
    out = run_dryrun("--world", WORLD, "--backend", "memory", "--json", "--show-data", tmp_path / "odd.jsonl")
    lines = out.splitlines()
    assert len(lines) == 1, lines
    assert not {"\u2028", "\u2029", "\x85"} & set(out)
    record = json.loads(lines[0])
    assert record["outcome"] == "QUEUED"
    assert LINE_BREAKING in json.dumps(record, ensure_ascii=False)


def test_a_message_sid_given_as_a_field_is_the_sid_of_the_whole_form(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Defect: ``--field MessageSid=SM…`` on a form built from --from/--to replaced MessageSid alone; the form kept
    its own SmsMessageSid and SmsSid (which Twilio always sends equal to it), so the event replayed PARSING_ERROR
    ("SmsMessageSid differs from MessageSid") instead of being the message meant. It is now the form's sid, as
    ``--sid`` is; a field given for an alias still replaces it."""
    sid = "SM" + "c" * 32
    event = build(
        capsys,
        *("--channel", "whatsapp", "--from", ALICE, "--to", ACME_WHATSAPP, "--body", "hi"),
        *("--world", str(WORLD), "--field", f"MessageSid={sid}"),
    )
    fields = dict(form(event))
    assert (fields["MessageSid"], fields["SmsMessageSid"], fields["SmsSid"]) == (sid, sid, sid)
    assert [(r["outcome"], r["signature"]) for r in replay(tmp_path, [event])] == [("QUEUED", "valid")]
    odd = build(
        capsys,
        *("--channel", "whatsapp", "--from", ALICE, "--to", ACME_WHATSAPP, "--body", "hi"),
        *("--world", str(WORLD), "--field", f"MessageSid={sid}", "--field", "SmsSid=SM" + "d" * 32),
    )
    assert dict(form(odd))["SmsSid"] == "SM" + "d" * 32
