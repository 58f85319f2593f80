"""Event capture switched on by configuration: events land in S3 masked, replay to the Lambda's decisions, and the
capture never delays or changes an answer (a failure is one WARNING line and one metric)."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from runtime.aws import DynamoTables
from runtime.capture import CaptureSettings
from runtime.masking import MASKED_SIGNATURE, MASKED_TEXT, Pseudonyms, form_fields
from steps.sendgrid.ecdsa import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.support.dryrun import run_dryrun
from tests.support.email import header_blocks_read
from tests.support.expect import ROOT
from tests.support.webhooks import EMPTY_TWIML, rest_event, whatsapp_params
from tests.support.world import World
from tools.dryrun.backends import populate
from tools.dryrun.events import load_events
from tools.dryrun.world import load_world
from tools.localaws import put_secrets
from tools.sendgrid_events import Email, KeyPair, inbound_parse_body, inbound_parse_event, signed

BUCKET = "webhook-captures"
KEY = "a-capture-key-of-32-characters!!"
# The Twilio examples (form bodies, named by MessageSid); the example emails are signed at the world's time, so the
# captures send one of Kim's, signed as they run (``kims_email``).
EXAMPLES = [event for event in load_events([ROOT / "examples" / "events"]) if "13_email" not in event.source]
WORLD = ROOT / "examples" / "world.yaml"
# How long an answer waits for its capture's write in the tests not about that wait (``unhurried``).
UNHURRIED_WAIT_SECONDS = 60.0
EMAIL_KEY = KeyPair.from_seed("examples/acme-sendgrid")  # examples/world.yaml holds its public key


@pytest.fixture
def s3(world: World) -> Any:
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def examples_world(world: World) -> World:
    """The moto world holding examples/world.yaml (the Lambda's environment points at it)."""
    spec = load_world(WORLD)
    populate(spec, DynamoTables(world.dynamodb), world.resources)
    put_secrets(world.secretsmanager, {name: json.loads(value) for name, value in spec.secrets.items()})
    return world


def stored(s3: Any, prefix: str = "prod/", expected: int | None = None) -> dict[str, dict[str, Any]]:
    """Every captured object under ``prefix`` (key -> event), waiting for ``expected`` of them.

    The wait ends as soon as they are stored; its bound (30 s) is only for a capture that never lands, and far beyond
    what a loaded machine takes to store one (how fast it is, is measured in a benchmark).
    """
    deadline = time.monotonic() + 30
    while True:
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        if expected is None or len(listed) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return {
        item["Key"]: json.loads(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
        for item in sorted(listed, key=lambda item: item["Key"])
    }


def unhurried(container: Any) -> Any:
    """``container`` (just started), its answers waiting for the capture's write until it is done (a minute at most).

    For the tests of what a capture stores or why it failed, not of the wait: with ``CAPTURE_WAIT_MS=2000`` a
    loaded 2-core machine running the suite on two workers left a write (5000-deep JSON masked, then stored)
    "still running after 2000 ms", and the WARNING line said so instead of nothing (or ``NoSuchBucket``). The
    bound itself is tested with writes held by the test (``test_a_slow_write_…``, ``test_the_wait_for_…``).
    """
    capture = __import__("handler")._application.capture
    capture.settings = dataclasses.replace(capture.settings, wait_seconds=UNHURRIED_WAIT_SECONDS)
    return container


def form_of(event: dict[str, Any]) -> dict[str, str]:
    import base64

    body = event["body"]
    text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    return dict(parse_qsl(text, keep_blank_values=True))


def replay(world: Path | str, events: Path, *options: str) -> list[str]:
    output = run_dryrun("--world", world, "--backend", "memory", "--json", *options, events)
    return [record["outcome"] for record in map(json.loads, output.splitlines())]


def download(objects: dict[str, dict[str, Any]], directory: Path) -> Path:
    for key, event in objects.items():
        path = directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(event))
    return directory


def kims_email() -> dict[str, Any]:
    """A new email from Kim to Acme (examples/world.yaml), signed now as SendGrid signs it."""
    email = Email(
        sender="Kim Lee <kim@example.org>",
        to="support@inbound.acme.example",
        envelope_from="kim@example.org",
        envelope_to=("support@inbound.acme.example",),
        message_id=f"<{uuid.uuid4()}@mail.example.org>",
    )
    return inbound_parse_event(signed(EMAIL_KEY, *inbound_parse_body(email)))


def handle_examples(handler: Callable[..., Any]) -> list[dict[str, Any]]:
    """Run every example event, then one of Kim's emails, through the Lambda (none raises); the events, in order."""
    events = [*(recorded.event for recorded in EXAMPLES), kims_email()]
    for event in events:
        handler(event, None)
    return events


def header(event: dict[str, Any], name: str) -> Any:
    return {key.lower(): value for key, value in event["headers"].items()}.get(name.lower())


def test_captured_events_land_under_the_prefix_and_replay_to_the_lambdas_decisions(
    examples_world: World, s3: Any, cold_start: Any, outcomes: Any, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod", CAPTURE_MASK="none"))
    events = handle_examples(container.handler)
    lived = [outcome for outcome, _ in outcomes()]
    assert len(lived) == len(events) and "QUEUED" in lived and "BATCHED" in lived and lived[-1] == "QUEUED"
    objects = stored(s3, expected=len(events))
    assert len(objects) == len(events)
    for (key, event), original in zip(objects.items(), events, strict=True):
        # Named by MessageSid; an email has none (a random id).
        sid = form_fields(original).get("MessageSid") or uuid.UUID(key[-37:-5]).hex
        assert key.startswith(f"prod/{started:%Y/%m/%d}/") and key.endswith(f"-{sid}.json")
        assert event["body"] == original["body"] and event["recording"]["mask"] == "none"
    # Replayed against the world the Lambda started from, at the time it ran: the same decision for every event,
    # signatures checked as the Lambda checked them.
    captured = download(objects, tmp_path / "captured")
    assert replay(WORLD, captured, "--now", started.isoformat()) == lived


def test_a_text_masked_capture_replays_to_the_same_decisions_past_the_signature(
    examples_world: World, s3: Any, cold_start: Any, outcomes: Any, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/"))
    events = handle_examples(container.handler)
    lived = [outcome for outcome, _ in outcomes()]
    objects = stored(s3, expected=len(events))
    texts = [form_of(recorded.event).get("Body") for recorded in EXAMPLES]
    *twilio, email = objects.values()
    for recorded, event in zip(EXAMPLES, twilio, strict=True):
        fields, original = form_of(event), form_of(recorded.event)
        assert fields["From"] == original["From"] and fields.get("ProfileName", "") in ("", MASKED_TEXT)
        assert fields.get("Body") == (MASKED_TEXT if original.get("Body") else original.get("Body"))
        headers = event["headers"]
        assert headers.get("X-Twilio-Signature", headers.get("x-twilio-signature")) == MASKED_SIGNATURE
        assert event["recording"]["mask"] == "text" and ("Body" in event["recording"]["masked"]) == bool(
            original.get("Body")
        )
    # The email's signature is masked; its timestamp (signed data, no credential) is kept for the replay's window.
    assert header(email, SIGNATURE_HEADER) == MASKED_SIGNATURE
    assert header(email, TIMESTAMP_HEADER) == header(events[-1], TIMESTAMP_HEADER)
    shared = json.dumps(list(objects.values()))
    assert not [text for text in texts if text and text in shared]
    captured = download(objects, tmp_path / "captured")
    replayed = replay(WORLD, captured, "--now", started.isoformat(), "--skip-signature")
    # Signatures cannot be checked on a masked recording: only the events the Lambda stopped there differ.
    differ = [(a, b) for a, b in zip(lived, replayed, strict=True) if a != b]
    assert differ and all(a in ("INVALID_SIGNATURE", "SECRET_FETCH_FAILED") for a, _ in differ)
    assert lived[-1] == replayed[-1] == "QUEUED"


def test_mask_all_reads_its_key_from_secrets_manager_and_matches_a_pseudonymized_world(
    examples_world: World, s3: Any, cold_start: Any, outcomes: Any, tmp_path: Path
) -> None:
    from tools.dryrun.capture import shareable_world, world_document

    examples_world.secretsmanager.create_secret(Name="capture/key", SecretString=json.dumps({"pseudonym_key": KEY}))
    arn = examples_world.secretsmanager.describe_secret(SecretId="capture/key")["ARN"]
    started = datetime.now(UTC)
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_MASK="all", CAPTURE_KEY_SECRET=arn))
    events = handle_examples(container.handler)
    lived = [outcome for outcome, _ in outcomes()]
    objects = stored(s3, expected=len(events))
    pseudonyms = Pseudonyms(KEY.encode())
    first = form_of(next(iter(objects.values())))
    assert first["From"] == pseudonyms.text(form_of(EXAMPLES[0].event)["From"]) != form_of(EXAMPLES[0].event)["From"]
    world = tmp_path / "world.json"
    world.write_text(json.dumps(shareable_world(world_document(load_world(WORLD)), mask="all", pseudonyms=pseudonyms)))
    shared = world.read_text() + json.dumps(list(objects.values()))
    email = base64.b64decode(list(objects.values())[-1]["body"]).decode()
    for secret in ("9f86d081884c7d659a2feaa0c55ad015", "+447700900101", "447700900101", "Can I change my delivery"):
        assert secret not in shared
    for personal in ("kim@example.org", "Kim", "Lee"):
        assert personal not in email
    replayed = replay(world, download(objects, tmp_path / "captured"), "--now", started.isoformat(), "--skip-signature")
    differ = [(a, b) for a, b in zip(lived, replayed, strict=True) if a != b]
    assert all(a in ("INVALID_SIGNATURE", "SECRET_FETCH_FAILED") for a, _ in differ)
    assert lived[-1] == replayed[-1] == "QUEUED"


def emf_documents(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"message":"metrics"')
    ]


def test_a_failed_capture_costs_one_warning_line_and_one_metric_never_the_answer(
    world: World, cold_start: Any, outcomes: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params())
    container = unhurried(cold_start(CAPTURE_S3_URI="s3://no-such-bucket/prod/"))
    capsys.readouterr()
    answer = container.handler(event, None)
    assert answer["statusCode"] == 200 and answer["body"] == EMPTY_TWIML
    assert outcomes() == [("QUEUED", None)]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["event capture failed: NoSuchBucket"]
    documents = emf_documents(capsys)
    failures = [doc for doc in documents if "CaptureFailures" in doc]
    assert len(failures) == 1 and failures[0]["CaptureFailures"] == 1
    assert failures[0]["Pipeline"] == "twilio_inbound"
    (directive,) = failures[0]["_aws"]["CloudWatchMetrics"]
    assert directive["Metrics"] == [{"Name": "CaptureFailures", "Unit": "Count"}]
    assert directive["Dimensions"] == [["Pipeline"]]
    assert next(doc for doc in documents if "Invocations" in doc)["Outcome"] == "QUEUED"


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (json.dumps({"pseudonym_key": "too-short"}), "the pseudonym key (CAPTURE_KEY_SECRET) is shorter than 16 bytes"),
        (json.dumps({"other": KEY}), "the pseudonym key (CAPTURE_KEY_SECRET) is empty"),
    ],
)
def test_an_unusable_pseudonym_key_is_named_in_the_warning_line_not_as_a_python_type(
    world: World, s3: Any, cold_start: Any, caplog: pytest.LogCaptureFixture, secret: str, reason: str
) -> None:
    """Defect: a key secret that reads but holds no usable key (too short, no ``pseudonym_key`` field) failed every
    capture with ``event capture failed: ValueError`` (or ``LookupError``): the line CaptureFailuresAlarm points to
    named a Python type, not the setting to fix. It names the setting now (still no data: not the key)."""
    world.add_conversation()
    world.add_default_secrets()
    world.secretsmanager.create_secret(Name="capture/key", SecretString=secret)
    arn = world.secretsmanager.describe_secret(SecretId="capture/key")["ARN"]
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_MASK="all", CAPTURE_KEY_SECRET=arn))
    answer = container.handler(rest_event("whatsapp", whatsapp_params()), None)
    assert answer["body"] == EMPTY_TWIML and stored(s3) == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"event capture failed: {reason}"]
    assert "too-short" not in caplog.text


def test_a_slow_write_delays_the_answer_by_the_bound_at_most_and_still_lands(
    world: World, s3: Any, cold_start: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_WAIT_MS="100")
    application = __import__("handler")._application
    container.handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "8" * 32)), None)  # warm: clients created
    assert len(stored(s3, expected=1)) == 1
    released = threading.Event()

    def held(**_: Any) -> None:
        released.wait(10)

    application.capture.client("s3").meta.events.register("before-send.s3.PutObject", held)
    answer = container.handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "9" * 32)), None)
    assert answer["body"] == EMPTY_TWIML
    # Answered while the write is still held: the answer did not wait for it.
    assert len(stored(s3)) == 1
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "event capture failed: write still running after 100 ms" in messages
    assert any("CaptureFailures" in doc for doc in emf_documents(capsys))
    released.set()
    # The write finishes in the background.
    assert len(stored(s3, expected=2)) == 2


def test_events_outside_the_sample_are_not_captured_and_capture_is_off_without_a_uri(
    world: World, s3: Any, cold_start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_SAMPLE_RATE="0")
    container.handler(rest_event("whatsapp", whatsapp_params()), None)
    assert stored(s3) == {}
    monkeypatch.delenv("CAPTURE_S3_URI")
    assert __import__("handler").reload().capture is None


def test_a_bad_capture_setting_turns_capture_off_with_an_error_line_a_metric_and_the_webhook_keeps_working(
    world: World, cold_start: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    capsys.readouterr()
    container = cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_MASK="all")
    application = __import__("handler")._application
    assert application.capture is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "event capture is off: CAPTURE_MASK=all needs the pseudonym key: set CAPTURE_KEY_SECRET (or CAPTURE_KEY)"
    ]
    # At the cold start, before any event: one CaptureFailures per pipeline (none of their events will be captured).
    documents = emf_documents(capsys)
    assert sorted(doc["Pipeline"] for doc in documents) == sorted(config.name for config in application.configs)
    assert all(doc["CaptureFailures"] == 1 and "Invocations" not in doc for doc in documents)
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None)["body"] == EMPTY_TWIML
    assert not [doc for doc in emf_documents(capsys) if "CaptureFailures" in doc]


def test_mask_none_without_replay_records_turns_capture_off_as_its_captures_could_be_posted_again(
    world: World, cold_start: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # mask=none keeps an email's signature as sent (it expires, after max_age_seconds): posted again within that
    # window, only the replay records refuse it. Without them, capturing whole requests is a replay kit.
    world.add_conversation()
    world.add_default_secrets()
    capsys.readouterr()
    cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_MASK="none", REPLAY_TABLE_NAME="")
    application = __import__("handler")._application
    assert application.capture is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "event capture is off: CAPTURE_MASK=none keeps requests whole, which only replay records keep from being "
        "posted again, and pipeline email_inbound declares tables.replay without a name; pipeline twilio_inbound "
        "declares tables.replay without a name (set REPLAY_TABLE_NAME, "
        "or capture with CAPTURE_MASK=text or all)"
    ]
    documents = emf_documents(capsys)
    assert all(doc["CaptureFailures"] == 1 for doc in documents) and documents


def test_mask_text_needs_no_replay_records(world: World, cold_start: Any) -> None:
    cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_MASK="text", REPLAY_TABLE_NAME="")
    assert __import__("handler")._application.capture is not None


def test_settings_from_the_environment() -> None:
    assert CaptureSettings.from_env({}) is None
    settings = CaptureSettings.from_env({"CAPTURE_S3_URI": "s3://bucket-name/a/b", "CAPTURE_SAMPLE_RATE": "0.25"})
    assert settings is not None and (settings.bucket, settings.prefix, settings.mask) == ("bucket-name", "a/b/", "text")
    assert settings.sample_rate == 0.25 and settings.wait_seconds == 0.2
    for env, problem in (
        ({"CAPTURE_S3_URI": "https://bucket/x"}, "is not s3://bucket/prefix/"),
        ({"CAPTURE_MASK": "some"}, "choose one of none, text, all"),
        ({"CAPTURE_SAMPLE_RATE": "2"}, "between 0 and 1"),
        ({"CAPTURE_SAMPLE_RATE": "half"}, "is not a number"),
        ({"CAPTURE_MASK": "all", "CAPTURE_KEY": "short"}, "at least 16 bytes"),
    ):
        with pytest.raises(ValueError, match=problem):
            CaptureSettings.from_env({"CAPTURE_S3_URI": "s3://bucket-name/p/", **env})


def test_sampling_keeps_a_conversation_whole() -> None:
    settings = CaptureSettings("bucket", "p/", sample_rate=0.5)
    users = [f"+4477009{n:05d}" for n in range(400)]
    kept = []
    for user in users:
        message = rest_event("whatsapp", whatsapp_params(**{"From": f"whatsapp:{user}"}))
        again = rest_event(
            "whatsapp", whatsapp_params(sid="SM" + "7" * 32, body="again", **{"From": f"whatsapp:{user}"})
        )
        callback = rest_event(
            "whatsapp",
            {"MessageSid": "SM1", "MessageStatus": "read", "From": form_of(message)["To"], "To": f"whatsapp:{user}"},
        )
        decisions = {settings.sampled(message), settings.sampled(again), settings.sampled(callback)}
        assert len(decisions) == 1, "every event of one number pair is kept, or none"
        kept.append(decisions.pop())
    assert 0.4 < sum(kept) / len(kept) < 0.6


def _email_to_acme(
    sender: str, message_id: str, subject: str, envelope_to: str = "support@inbound.acme.example"
) -> Any:
    """An Inbound Parse event of an email from ``sender`` to Acme's parse address."""
    sent = Email(
        sender=sender,
        to="support@inbound.acme.example",
        envelope_from=f"bounce-{message_id}@mail.example.org",
        envelope_to=(envelope_to,),
        subject=subject,
        message_id=f"<{message_id}@mail.example.org>",
    )
    return inbound_parse_event(signed(EMAIL_KEY, *inbound_parse_body(sent), timestamp=1795608000))


def test_sampling_keeps_an_email_conversation_whole() -> None:
    """Defect: an email has no Twilio ``From``/``To`` form fields, so each one was kept or dropped at random: at a
    sample rate below 1 an email conversation was captured in part, and a replayed burst showed QUEUED where
    production BATCHED. Its sender and parse address decide, as a number pair does."""
    settings = CaptureSettings("bucket", "p/", sample_rate=0.5)
    kept = []
    for n in range(400):
        user = f"user{n}@example.org"
        events = [
            _email_to_acme(f"User {n} <{user}>", f"{n}-1", "Order"),
            _email_to_acme(user.upper(), f"{n}-2", "Re: Order"),
            _email_to_acme(f'"Someone, else" <{user}>', f"{n}-3", "again", "Support@Inbound.Acme.Example"),
        ]
        decisions = {settings.sampled(event) for event in events}
        assert len(decisions) == 1, "every email between one sender and one parse address is kept, or none"
        kept.append(decisions.pop())
    assert 0.4 < sum(kept) / len(kept) < 0.6


def test_an_email_whose_text_holds_a_link_with_from_or_to_is_sampled_by_its_sender() -> None:
    """Defect: an email was first read as a Twilio form (``From``/``To`` fields), so one whose HTML or text held a
    link such as ``?From=LHR&To=JFK`` (a flight, a route, a transfer) gave a ``To`` made of the rest of the
    multipart body, and was kept or dropped apart from its conversation. Only a form-encoded body is a Twilio form."""
    settings = CaptureSettings("bucket", "p/", sample_rate=0.5)
    link = '<a href="https://fly.example/search?From=LHR&To=JFK">your flight</a>'
    for n in range(100):
        user = f"user{n}@example.org"
        acme = "support@inbound.acme.example"
        text = f"Your flight: https://fly.example/s?From=LHR&To=JFK&n={n}"
        sent = Email(sender=user, to=acme, envelope_to=(acme,), html=link, text=text)
        event = inbound_parse_event(signed(EMAIL_KEY, *inbound_parse_body(sent), timestamp=1795608000))
        assert settings.sampled(event) == settings.sampled(_email_to_acme(user, f"{n}-1", "Order"))


def test_an_email_whose_from_header_cannot_be_read_is_sampled_by_its_envelope_sender() -> None:
    """Defect: sampling read an email's ``from`` header with the standard library's recursive parser unbounded,
    before the signature was checked: a header nested a few hundred levels deep (which ``sendgrid.parse`` does not
    read, taking the envelope's sender) raised RecursionError, so the event was never captured and its invocation
    logged a capture failure (CaptureFailuresAlarm's metric), for anyone who posts such a body. Such a header is
    left, as ``sendgrid.parse`` leaves it: the envelope's sender decides, as for an email with no ``from``."""
    settings = CaptureSettings("bucket", "p/", sample_rate=0.5)
    nested = "(" * 600 + "x" + ")" * 600 + " <someone@example.org>"
    long_list = ", ".join(f"a{n}@example.org" for n in range(4000))
    for n in range(50):
        user = f"user{n}@example.org"
        plain = _email_to_acme(user, f"{n}-1", "Order")
        for unreadable in (nested, long_list):
            sent = Email(sender=unreadable, envelope_from=user, envelope_to=("support@inbound.acme.example",))
            event = inbound_parse_event(signed(EMAIL_KEY, *inbound_parse_body(sent), timestamp=1795608000))
            assert settings.sampled(event) == settings.sampled(plain)


def test_a_captured_email_is_masked_part_by_part_and_still_parses(
    examples_world: World, s3: Any, cold_start: Any, tmp_path: Path
) -> None:
    import base64

    from steps.sendgrid.multipart import parse
    from tests.support.email import add_email_world, email_event
    from tools.sendgrid_events import Attachment, Email

    add_email_world(examples_world)
    email = Email(
        text="My card number is in the attachment", attachments=(Attachment("card.png", "image/png", b"PNG"),)
    )
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/mail/"))
    assert json.loads(container.handler(email_event(email), None)["body"])["outcome"] == "QUEUED"
    [event] = stored(s3, prefix="mail/", expected=1).values()
    text = json.dumps(event)
    for private in ("My card number", "Order #1042", "card.png"):
        assert private not in text, private
    headers = {name.lower(): value for name, value in event["headers"].items()}
    form = parse(base64.b64decode(event["body"]), headers["content-type"])
    assert form.first("text") == MASKED_TEXT and form.first("subject") == MASKED_TEXT
    assert [(part.name, part.size) for part in form.files] == [("attachment1", 0)]


def test_an_emails_text_never_names_its_capture(examples_world: World, s3: Any, cold_start: Any) -> None:
    """Defect: the capture's object was named by the body's ``MessageSid`` as a Twilio form's is read, whatever the
    body: an email whose text (or HTML) held a link such as ``…?ref=7&MessageSid=447700900123&lang=en`` was stored
    as ``…-447700900123.json``, its text and a phone number in the clear in the key (listings, access logs), though
    the object itself had them masked. Only a form-encoded body is a Twilio form: an email's capture gets a random
    name, as any event naming no sid does."""
    from tests.support.email import add_email_world, email_event

    add_email_world(examples_world)
    link = "https://portal.example/track?ref=7&MessageSid=447700900123&lang=en"
    email = Email(text=f"Please call me, my tracking link: {link}", html=f'<a href="{link}">track</a>')
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/mail/"))
    assert json.loads(container.handler(email_event(email), None)["body"])["outcome"] == "QUEUED"
    [(key, event)] = stored(s3, prefix="mail/", expected=1).items()
    assert "447700900123" not in json.dumps(event)  # the object itself is masked
    assert "447700900123" not in key
    assert re.fullmatch(r"mail/\d{4}/\d{2}/\d{2}/\d{2}/\d{8}T\d{12}-[0-9a-f]{32}\.json", key), key


def test_an_emails_text_never_names_its_capture_unmasked_either(
    examples_world: World, s3: Any, cold_start: Any
) -> None:
    """The case above with ``CAPTURE_MASK=none``: since the name is read from the stored copy (masked, with ``text``,
    so the link is gone from it), only this case still shows that an email's body is never read for a sid. Unmasked,
    the object holds the link (it is meant to), but its key, which listings and access logs show, names no word of it.
    """
    from tests.support.email import add_email_world, email_event

    add_email_world(examples_world)
    link = "https://portal.example/track?ref=7&MessageSid=447700900123&lang=en"
    email = Email(text=f"Please call me, my tracking link: {link}", html=f'<a href="{link}">track</a>')
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/mail/", CAPTURE_MASK="none"))
    assert json.loads(container.handler(email_event(email), None)["body"])["outcome"] == "QUEUED"
    [(key, event)] = stored(s3, prefix="mail/", expected=1).items()
    assert event["recording"]["mask"] == "none"
    assert re.fullmatch(r"mail/\d{4}/\d{2}/\d{2}/\d{2}/\d{8}T\d{12}-[0-9a-f]{32}\.json", key), key


def test_a_mask_all_capture_is_named_as_its_object_reads(world: World, s3: Any, cold_start: Any) -> None:
    """Defect: the object was named by the ``MessageSid`` of the event as posted, not as masked: with ``mask=all`` a
    post whose ``MessageSid`` was a phone number (anyone may post one; it is captured before any check) was stored
    with the number pseudonymized inside and in the clear in its key. The name is read from the masked copy."""
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_MASK="all", CAPTURE_KEY=KEY))
    number = "447700900123"
    container.handler(rest_event("whatsapp", whatsapp_params(sid=number)), None)
    [(key, event)] = stored(s3, expected=1).items()
    pseudonym = Pseudonyms(KEY.encode()).text(number)
    assert form_of(event)["MessageSid"] == pseudonym != number
    assert number not in key and key.endswith(f"-{pseudonym}.json")


class _Invocation:
    """A Lambda context with ``seconds`` left, whenever it is asked."""

    def __init__(self, seconds: float) -> None:
        self.aws_request_id = "req-1"
        self._ms = seconds * 1000

    def get_remaining_time_in_millis(self) -> float:
        return self._ms


def test_the_wait_for_a_slow_write_never_runs_past_the_invocations_time(
    world: World, s3: Any, cold_start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # CAPTURE_WAIT_MS may be up to 5 s, but an invocation with 1 s left may wait only until its answer margin
    # (0.5 s before the end): past its timeout the Lambda is killed and the answer, already decided, is lost.
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_WAIT_MS="5000")
    application = __import__("handler")._application
    container.handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "8" * 32)), None)  # warm: clients created

    # The write is held until the test lets it go (not slept through: a write still sleeping after the test would
    # run outside moto, against the network, and log into a later test).
    release = threading.Event()

    def slow(**_: Any) -> None:
        release.wait(10)  # a hang guard only: the test releases it

    application.capture.client("s3").meta.events.register("before-send.s3.PutObject", slow)
    try:
        answer = container.handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "9" * 32)), _Invocation(1.0))
    finally:
        release.set()
    assert answer["body"] == EMPTY_TWIML
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "event capture failed: write still running after 500 ms" in messages
    # Not waited for is not lost: the held write lands once it may.
    assert [key.endswith("SM" + "9" * 32 + ".json") for key in stored(s3, expected=2)] == [False, True]


def test_a_capture_kept_as_sent_cannot_be_replayed_once_the_replay_record_has_expired(
    world: World, s3: Any, cold_start: Any, outcomes: Callable[[], list[tuple[str, str | None]]]
) -> None:
    # The bucket keeps captures EventCaptureRetentionDays (14 by default), synced copies for ever; the replay record
    # lives ReplayHorizonSeconds (7 days). A Twilio signature never expires: a capture that holds one is a request
    # anyone who can read it may post again once the record is gone.
    world.add_conversation()
    world.add_default_secrets()
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/", CAPTURE_MASK="none"))
    event = rest_event("whatsapp", whatsapp_params())
    assert container.handler(event, None)["body"] == EMPTY_TWIML
    assert len(world.sent("whatsapp")) == 1
    (captured,) = stored(s3, expected=1).values()
    assert captured["body"] == event["body"], "mask=none keeps the body as sent"
    # The horizon passes: DynamoDB's TTL deletes the record (and a consumer has taken the batch and the lock).
    for row in world.replay_rows():
        key = {"message_sid": {"S": row["message_sid"]}}
        world.dynamodb.delete_item(TableName=world.resources.replay_table, Key=key)
    for row in world.lock_rows():
        key = {"conversation_id": {"S": row["conversation_id"]}}
        world.dynamodb.delete_item(TableName=world.resources.lock_table, Key=key)
    reposted = {key: value for key, value in captured.items() if key != "recording"}
    assert container.handler(reposted, None)["body"] == EMPTY_TWIML
    assert outcomes()[-1] == ("INVALID_SIGNATURE", "INVALID_SIGNATURE"), "only the signature's digest was kept"
    assert len(world.sent("whatsapp")) == 1, "the capture, posted again, was triggered again"
    assert len(world.stage_rows()) == 1


def test_the_dry_run_checks_a_digested_signature_and_refuses_one_that_does_not_sign_the_request(
    tmp_path: Path,
) -> None:
    from runtime.masking import recordable

    original = next(recorded.event for recorded in EXAMPLES if form_of(recorded.event).get("Body"))
    (tmp_path / "sent").mkdir()
    (tmp_path / "sent" / "event.json").write_text(json.dumps(original))
    kept = recordable(original, mask="none")
    tampered = {**kept, "body": kept["body"].replace("Body=", "Body=X", 1)}
    assert tampered["body"] != kept["body"]
    (tmp_path / "captured").mkdir()
    (tmp_path / "captured" / "1-kept.json").write_text(json.dumps(kept))
    (tmp_path / "captured" / "2-tampered.json").write_text(json.dumps(tampered))
    (outcome,) = replay(WORLD, tmp_path / "sent", "--independent")
    assert outcome != "INVALID_SIGNATURE"
    assert replay(WORLD, tmp_path / "captured", "--independent") == [outcome, "INVALID_SIGNATURE"]


@pytest.mark.parametrize("depth", [900, 5000])
def test_a_field_holding_json_nested_past_any_real_one_is_captured_masked_not_a_failed_capture(
    world: World, s3: Any, cold_start: Any, outcomes: Any, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    # Defect: the masking read a field's JSON text (ChannelMetadata, sent by anyone, before any signature check)
    # without bound: nested past ~1000 levels json.loads, past a few hundred the masking's own walk, raised
    # RecursionError, so such a request was never captured, each one a CaptureFailures count toward the alarm.
    world.add_conversation()
    world.add_default_secrets()
    deep = "[" * depth + "]" * depth
    event = rest_event("whatsapp", whatsapp_params(ChannelMetadata=deep))
    container = unhurried(cold_start(CAPTURE_S3_URI=f"s3://{BUCKET}/prod/"))
    assert container.handler(event, None)["statusCode"] == 200 and outcomes() == [("QUEUED", None)]
    (captured,) = stored(s3, expected=1).values()
    assert form_of(captured)["ChannelMetadata"] == MASKED_TEXT and "ChannelMetadata" in captured["recording"]["masked"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def _peak_bytes(work: Callable[[], Any]) -> int:
    """The most memory ``work`` held at once (tracemalloc), beyond what existed before it started."""
    import tracemalloc

    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_sampling_a_huge_form_reads_only_the_fields_that_pick_the_pair() -> None:
    """Defect: the sample decision is taken as the invocation begins, before any path, size or signature check, and
    it parsed the whole form (every pair, every percent escape) to read ``From`` and ``To``: a 6 MB post from
    anyone, to any path, held 244 MB (6 MB of empty fields) or 488 MB (one value of 6 MB of ``%41``) for seconds,
    on a 512 MB function. Only ``From``/``To`` pairs of a length a number can have are read; the decision of a
    genuine message is the same."""
    settings = CaptureSettings("bucket", "p/", sample_rate=0.5)
    six_mb = 6 * 1024 * 1024
    decisions = set()
    for user in (f"+4477009{n:05d}" for n in range(40)):
        params = whatsapp_params(**{"From": f"whatsapp:{user}"})
        genuine = rest_event("whatsapp", params)
        storm = rest_event("whatsapp", params, body=form_body(params) + "&Body=" + "%41" * (six_mb // 3))
        tiny = rest_event("whatsapp", params, body=form_body(params) + "&a" * (six_mb // 2))
        decision = settings.sampled(genuine)
        decisions.add(decision)
        for forged in (storm, tiny):
            assert settings.sampled(forged) == decision, "the same pair is sampled the same way"
    assert decisions == {True, False}
    for forged in (storm, tiny):
        assert _peak_bytes(lambda event=forged: settings.sampled(event)) < 24 * 1024 * 1024


def test_sampling_a_multipart_post_of_many_parts_reads_no_more_than_sendgrid_parse_would() -> None:
    """Defect: sampling parsed the header block of every part of a ``multipart/form-data`` body before anything
    else ran: a 6 MB post of 100000 empty parts, to any path, took 4.5 s (a third of a CPU on Lambda: past the
    13 s timeout). ``sendgrid.parse`` refuses a form of more than 1024 parts, so no more are read."""
    from tools.sendgrid_events import encode_form

    settings = CaptureSettings("bucket", "p/", sample_rate=0.5)
    fields = [("from", "user1@example.org"), ("to", "support@inbound.acme.example")]
    body, content_type = encode_form(fields + [(f"f{n}", "") for n in range(20000)])
    event = inbound_parse_event(_unsigned_post(body, content_type))
    small, small_type = encode_form(fields)
    decision = settings.sampled(inbound_parse_event(_unsigned_post(small, small_type)))
    with header_blocks_read() as read:
        assert settings.sampled(event) == decision
    assert len(read) <= 1024


def form_body(params: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _unsigned_post(body: bytes, content_type: str) -> Any:
    from tools.sendgrid_events import SignedRequest

    return SignedRequest(body, content_type, "1795608000", "c2lnbmF0dXJl")


@pytest.mark.parametrize(
    "envelope",
    ["[" * 100000, json.dumps({"to": ["elsewhere@inbound.acme.example"] * 20000, "from": "x@example.org"})],
    ids=["deep", "over-256-kib"],
)
def test_an_email_whose_envelope_sendgrid_parse_does_not_read_is_sampled_without_it(envelope: str) -> None:
    """Defect: sampling read the ``envelope`` field with ``json.loads`` unbounded, before anything checked the post:
    one nested 100000 levels deep raised RecursionError, so the event was not captured and its invocation counted a
    capture failure (``CaptureFailuresAlarm``'s metric), for anyone who posts such a body; one of megabytes was read
    whole. ``sendgrid.parse`` leaves an envelope over 256 KiB or too deep unread, and so does sampling."""
    from tools.sendgrid_events import encode_form

    settings = CaptureSettings("bucket", "p/", sample_rate=0.5)
    decisions = set()
    for n in range(40):
        fields = [("from", f"user{n}@example.org"), ("to", "support@inbound.acme.example")]
        plain = inbound_parse_event(_unsigned_post(*encode_form(fields)))
        odd = inbound_parse_event(_unsigned_post(*encode_form([*fields, ("envelope", envelope)])))
        decision = settings.sampled(plain)
        assert settings.sampled(odd) == decision
        decisions.add(decision)
    assert decisions == {True, False}
