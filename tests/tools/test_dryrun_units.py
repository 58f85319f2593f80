"""The dry-run's parts: event files, world files, masking, partitions, the corpus and the committed examples."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from engine.errors import ConfigError
from tests.support.dryrun import EVENTS
from tools.dryrun.corpus import generate_corpus, sign, status_form, twilio_rest_event, whatsapp_form
from tools.dryrun.events import MAX_NESTING, EventFileError, load_events
from tools.dryrun.lanes import PLACEHOLDER_SIGNATURE, ReplayClock, with_placeholders
from tools.dryrun.mask import MASKED_TEXT, Masker, Scrubber
from tools.dryrun.parallel import conversation_groups, partition, user_key
from tools.dryrun.world import load_world, secret_values
from tools.sendgrid_events import Email, KeyPair, inbound_parse_body, inbound_parse_event, signed

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_event_files_single_array_json_lines_and_directories_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "b" / "2.json", '[{"n": 1}, {"n": 2}]')
    write(tmp_path / "b" / "1.jsonl", '{"n": 3}\n\n{"n": 4}\n')
    write(tmp_path / "a.json", '{"n": 5}')
    write(tmp_path / "c.json", '{"n": 6}\n{"n": 7}\n')  # JSON Lines in a .json file
    write(tmp_path / "one.json", '[{"n": 8}]')
    write(tmp_path / ".hidden" / "x.json", "not json")
    write(tmp_path / "notes.txt", "ignored")
    events = load_events([tmp_path])
    assert [(Path(e.source).relative_to(tmp_path).as_posix(), e.event["n"]) for e in events] == [
        ("a.json", 5),
        ("b/1.jsonl#0", 3),
        ("b/1.jsonl#1", 4),
        ("b/2.json#0", 1),
        ("b/2.json#1", 2),
        ("c.json#0", 6),
        ("c.json#1", 7),
        ("one.json", 8),
    ]


def test_json_lines_end_at_newlines_only(tmp_path: Path) -> None:
    """A line separator (U+2028, U+2029, U+0085) inside a string is text, as pipeline-event mask writes it raw."""
    texts = ["a\u2028b", "c\u2029d", "e\x85f", "g\r\nh"]
    lines = [json.dumps({"queryStringParameters": {"q": text}}, ensure_ascii=False) for text in texts]
    path = write(tmp_path / "captured.jsonl", "\r\n".join([*lines, "{broken"]) + "\n")
    with pytest.raises(EventFileError) as caught:
        load_events([path])
    assert [str(problem) for problem in caught.value.problems] == [
        f"{path}:5:2: invalid JSON Lines entry: Expecting property name enclosed in double quotes"
    ]
    path.write_text("\n".join(lines) + "\n")
    assert [event.event["queryStringParameters"]["q"] for event in load_events([path])] == texts


def test_unreadable_event_files_are_located(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.json", "  \n")
    broken = write(tmp_path / "broken.json", '{\n  "a": [1,\n}')
    write(tmp_path / "dir" / "x.txt", "")
    with pytest.raises(EventFileError) as caught:
        load_events([empty, broken, tmp_path / "nope", tmp_path / "dir"])
    assert [str(problem) for problem in caught.value.problems] == [
        f"{tmp_path / 'nope'}:1:1: no such file or directory",
        f"{tmp_path / 'dir'}:1:1: no *.json or *.jsonl event files in this directory",
        f"{empty}:1:1: empty event file",
        f"{broken}:3:1: invalid JSON: Expecting value",
    ]


WORLD = """\
now: "2026-11-25T12:00:00Z"
secrets:
  s1: {twilio_account_sid: AC1, twilio_auth_token: " tok-123456 ", twilio_webhook_key: key-abcdef}
  s2: plain-secret-value
conversations:
  - {primary_channel: "+447700900101", conversation_id: c1, score: 0.5}
locks:
  - {conversation_id: c1, message_sid: SM1, expires_at: 1795608040}
"""

# A tenant's JSON secret: credentials (by name, or by shape under a name of the pipeline's own) and settings.
SETTINGS_BESIDE_CREDENTIALS = {
    "twilio_account_sid": "AC5ef8732a3c49700934481addd5ce1659",
    "environment": "test",
    "webhook_enabled": "true",
    "region": "eu-west-1",
    "dashboard_password": "hunter22",
    "sendgrid_webhook_public_key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
    "hmac": "9f86d081884c7d659a2feaa0c55ad015",
}


def test_world_files_load_from_yaml_and_json(tmp_path: Path) -> None:
    spec = load_world(write(tmp_path / "world.yaml", WORLD))
    assert spec.now is not None and spec.now.isoformat() == "2026-11-25T12:00:00+00:00"
    assert spec.rows["conversations"][0]["score"] == 0.5 and spec.rows["stage"] == ()
    assert json.loads(spec.secrets["s1"])["twilio_auth_token"] == " tok-123456 "
    assert sorted(secret_values(spec.secrets)) == ["key-abcdef", "plain-secret-value", "tok-123456"]
    assert secret_values({"s": json.dumps(SETTINGS_BESIDE_CREDENTIALS)}) == [
        "hunter22",
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        "9f86d081884c7d659a2feaa0c55ad015",
    ]
    import yaml

    as_json = load_world(write(tmp_path / "world.json", json.dumps(yaml.safe_load(WORLD))))
    assert as_json.rows == spec.rows and as_json.secrets == spec.secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("conversations:\n  - {conversation_id: c1}\n", "world.{ext}:2:5: "),
        ("conversations: {}\n", "world.{ext}:1:16: "),
        ("now: soon\n", "world.{ext}:1:6: now: 'soon' is not an ISO-8601 time"),
        ("locks:\n  - {conversation_id: a}\n  - {conversation_id: a}\n", "world.{ext}:3:5: locks[1] has the same key"),
        ("tables: []\n", "world.{ext}:1:1: "),
    ],
)
def test_world_problems_are_located(tmp_path: Path, text: str, expected: str) -> None:
    import yaml

    for ext, content in (("yaml", text), ("json", json.dumps(yaml.safe_load(text), indent=1))):
        if ext == "json" and "now: soon" in text:
            continue
        path = write(tmp_path / f"world.{ext}", content)
        with pytest.raises(ConfigError) as caught:
            load_world(path)
        messages = [str(problem) for problem in caught.value.problems]
        if ext == "yaml":
            assert any(message.startswith(str(tmp_path / expected.format(ext=ext))) for message in messages), messages
        else:
            assert all(message.startswith(str(path) + ":") for message in messages), messages


def test_masking_hides_numbers_and_free_text_everywhere() -> None:
    masker = Masker(show_data=False)
    item = {
        "conversation_id": "ci-1#pi-1#6f0c2a52-5d0e-4d8e#447700900101",
        "primary_channel": "+447700900101",
        "from": "whatsapp:+447700900101",
        "WaId": "447700900101",
        "Body": "call me on +44 7700 900101",
        "body": "",
        "message_sid": "SM447700900101447700900101abcdef12",
        "messages": [{"role": "user", "content": "my number is 07700900101"}],
        "num_media": 2,
        "expires_at": 1795608000,
        "Latitude": 51.5,
        "received_at": "2026-11-25T12:00:00.000Z",
    }
    assert masker.data(item) == {
        "conversation_id": "ci-1#pi-1#6f0c2a52-5d0e-4d8e#**********01",
        "primary_channel": "+**********01",
        "from": "whatsapp:+**********01",
        "WaId": "**********01",
        "Body": MASKED_TEXT,
        "body": "",
        "message_sid": "SM447700900101447700900101abcdef12",
        "messages": [{"role": "user", "content": MASKED_TEXT}],
        "num_media": 2,
        "expires_at": 1795608000,
        "Latitude": MASKED_TEXT,
        "received_at": "2026-11-25T12:00:00.000Z",
    }
    body = json.dumps({"conversation_id": "c#447700900101", "body": "hello"}, separators=(",", ":"))
    assert masker.body(body) == '{"conversation_id":"c#**********01","body":"[masked]"}'
    assert masker.inputs({"conversation.recipient_tel": "+447700900101", "request.body": "hi"}) == {
        "conversation.recipient_tel": "+**********01",
        "request.body": MASKED_TEXT,
    }
    shown = Masker(show_data=True)
    assert shown.data(item) == item and shown.body(body) == body


def test_masking_looks_inside_strings_that_hold_json() -> None:
    # Twilio's WhatsApp posts repeat the ProfileName and the sender's number (WaId) in ChannelMetadata.
    metadata = '{"type":"whatsapp","data":{"context":{"ProfileName":"Jane Doe","WaId":"14155550123"}}}'
    masker = Masker(show_data=False)
    shown = masker.data({"fields": {"ChannelMetadata": metadata, "ProfileName": "Jane Doe"}})
    assert json.loads(shown["fields"]["ChannelMetadata"]) == {
        "type": "whatsapp",
        "data": {"context": {"ProfileName": MASKED_TEXT, "WaId": "*********23"}},
    }
    assert masker.inputs({"request.fields.ChannelMetadata": metadata}) == {
        "request.fields.ChannelMetadata": shown["fields"]["ChannelMetadata"]
    }
    nested = json.dumps({"conversation_id": "c#14155550123", "fields": {"ChannelMetadata": metadata}})
    assert "Jane" not in masker.body(nested) and "14155550123" not in masker.body(nested)
    assert masker.text('{"type": "whatsapp"}') == '{"type": "whatsapp"}'  # nothing to hide: kept as written
    assert masker.text("[not json") == "[not json" and Masker(show_data=True).text(metadata) == metadata


def test_masking_hides_every_string_inside_json_but_structural_keys() -> None:
    # WhatsApp Flows answers (FlowData) and interactive replies carry what the user typed under unpredictable keys.
    flow = json.dumps({"screen_0_full_name_0": "Jane Doe", "flow_token": "t-1", "n": {"k": ["a street"]}})
    masker = Masker(show_data=False)
    interactive = '{"type":"button_reply","title":"Yes"}'
    shown = masker.data({"fields": {"FlowData": flow, "InteractiveData": interactive, "NewData": flow}})
    assert shown["fields"]["FlowData"] == MASKED_TEXT
    assert json.loads(shown["fields"]["NewData"]) == {
        "screen_0_full_name_0": MASKED_TEXT,
        "flow_token": MASKED_TEXT,
        "n": {"k": [MASKED_TEXT]},
    }
    assert shown["fields"]["InteractiveData"] == MASKED_TEXT
    assert json.loads(masker.text(interactive)) == {"type": "button_reply", "title": MASKED_TEXT}
    assert "Jane" not in masker.body(json.dumps({"request": {"FlowData": flow, "Other": flow}}))


@pytest.mark.parametrize(
    ("secrets", "where"),
    [
        ("secrets:\n  - name: acme/twilio\n    twilio_auth_token: {token}\n", "world.yaml:2:3: "),
        ("secrets: {token}\n", "world.yaml:1:10: "),
        ("secrets:\n  acme/twilio: [{token}]\n", "world.yaml:2:16: "),
        ("secrets:\n  acme/twilio: {{twilio_auth_token: {token}}}\nconversations: {token}\n", "world.yaml:3:16: "),
        ("- secrets: {{acme/twilio: {{twilio_auth_token: {token}}}}}\n", "world.yaml:1:1: "),
    ],
)
def test_a_world_problem_never_shows_a_credential_whatever_shape_the_secrets_take(
    tmp_path: Path, secrets: str, where: str
) -> None:
    for token in ("9f86d081884c7d659a2feaa0c55ad015", "86409923775"):
        with pytest.raises(ConfigError) as caught:
            load_world(write(tmp_path / "world.yaml", secrets.format(token=token)))
        messages = "\n".join(str(problem) for problem in caught.value.problems)
        assert token not in messages and where in messages, messages


@pytest.mark.parametrize(
    ("written", "kind"),
    [("86409923775", "integer"), ("0.5", "number"), ("true", "boolean"), ('["9f86d081884c7d65"]', "array")],
)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_secret_of_the_wrong_type_is_named_and_no_value_is_shown(
    tmp_path: Path, written: str, kind: str, suffix: str
) -> None:
    """Defect: a secret written as a number showed as `got integer 0` (a placeholder read as its value), a boolean as
    its value; the message names the secret and its type only."""
    name = "ai-multi-comms/whatsapp-credentials/acme"
    text = f'{{"secrets": {{"{name}": {written}}}}}\n'
    with pytest.raises(ConfigError) as caught:
        load_world(write(tmp_path / f"world{suffix}", text))
    (problem,) = caught.value.problems
    assert problem.message == (
        f"secrets.{name}: expected object or string, got {kind} (not shown); write the secret's text in quotes, "
        "or a mapping of its fields"
    )
    assert (problem.line, problem.column) == (1, text.index(written) + 1)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ("{twilio_auth_token: !!binary OWY4NmQwODE4ODRjN2Q2NTlhMmZlYWEwYzU1YWQwMTU=}", "twilio_auth_token"),
        ("{twilio_auth_token: x, keys: [!!binary OWY4NmQwODE4ODRjN2Q2NTlh]}", "keys[0]"),
    ],
)
def test_a_binary_field_of_a_secret_is_refused_at_its_value_and_not_shown(
    tmp_path: Path, fields: str, where: str
) -> None:
    """Defect: a secret field written as YAML binary (``!!binary …``) passed the checks and then stopped every tool
    that loads the world (pipeline-dryrun, pipeline-serve, pipeline-event, pipeline-world) with a traceback,
    ``TypeError: Object of type bytes is not JSON serializable``, exit 1 (the dry-run's "a decision changed"). A
    secret's text is JSON, which holds no bytes: the field is refused where it is written, exit 2, its value never
    shown."""
    name = "ai-multi-comms/whatsapp-credentials/acme"
    text = f"conversations: []\nsecrets:\n  {name}: {fields}\n"
    with pytest.raises(ConfigError) as caught:
        load_world(write(tmp_path / "world.yaml", text))
    (problem,) = caught.value.problems
    assert problem.message == (
        f"secrets.{name}.{where}: binary data (!!binary), which a secret's JSON text cannot hold (not shown); "
        "write the field as text"
    )
    assert (problem.line, problem.column) == (3, text.splitlines()[2].index("!!binary ") + len("!!binary ") + 1)
    assert "OWY4NmQw" not in str(problem)


@pytest.mark.parametrize(
    ("text", "where", "expected"),
    [
        ("secrets:\n  {name}: !!binary {value}\n", "secrets.{name}", "object or string"),
        ("secrets: !!binary {value}\n", "secrets", "object"),
    ],
)
def test_a_binary_secret_is_named_binary_data_not_null(tmp_path: Path, text: str, where: str, expected: str) -> None:
    """Defect: a whole secret (or ``secrets:``) written as YAML binary was refused as "expected object or string, got
    null": the value is binary data, and the message sent its writer looking for an empty value."""
    name, value = "ai-multi-comms/whatsapp-credentials/acme", "OWY4NmQwODE4ODRjN2Q2NTlhMmZlYWEwYzU1YWQwMTU="
    written = text.format(name=name, value=value)
    with pytest.raises(ConfigError) as caught:
        load_world(write(tmp_path / "world.yaml", written))
    (problem,) = caught.value.problems
    assert problem.message.startswith(f"{where.format(name=name)}: expected {expected}, got binary data (not shown)")
    assert value[:8] not in str(problem) and "9f86d081" not in str(problem)


def test_the_scrubber_removes_every_known_credential() -> None:
    scrub = Scrubber(["abc"])  # too short to be a credential
    scrub.add(["9f86d081884c7d65", "9f86d081"])
    assert scrub("token 9f86d081884c7d65 and 9f86d081 and abc") == "token *** and *** and abc"


def test_the_scrubber_finds_a_credential_in_any_case_and_as_typed_encoded() -> None:
    token = "9f86d081884c7d659a2feaa0c55ad015"
    scrub = Scrubber([token, "a+b/c=d?"])
    longer = base64.b64encode(f"{token} was the token".encode()).decode()  # starts with the token's groups
    text = f"{token.upper()} {quote('a+b/c=d?', safe='')} {quote_plus('a+b/c=d?')} {longer}"
    scrubbed = scrub(text)
    assert scrubbed.startswith("*** *** *** ***") and token[:8] not in scrubbed.lower()
    assert scrub.holds(json.dumps({"body": token.upper()})) and not scrub.holds("9f86d081 is no token")


def test_the_scrubber_finds_a_credential_base64_encoded_anywhere_in_a_longer_text() -> None:
    """Base64 of a credential was found only when the credential began the encoded text: the token of an HTTP Basic
    header (``Basic base64(AccountSid:token)``, as curl -u or a pasted request shows it) starts 35 bytes in, and
    the scrubber left it whole (2 of the 3 alignments a credential can have inside encoded text)."""
    sid, token = "AC5ef8732a3c49700934481addd5ce1659", "9f86d081884c7d659a2feaa0c55ad015"
    scrub = Scrubber([token])
    for before in ("", "x", "xy", f"{sid}:"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(f"{before}{token} and more".encode()).decode()
            scrubbed = scrub(f"Authorization: Basic {encoded}")
            assert "***" in scrubbed and encoded not in scrubbed, (before, encoded)
            assert scrub.holds(json.dumps({"body": encoded}))
    # Ordinary base64 keeps every character.
    other = base64.b64encode(f"{sid}:{'0' * 32} and more".encode()).decode()
    assert scrub(other) == other and not scrub.holds(other)


def test_the_scrubber_rewrites_the_strings_of_data_never_its_syntax() -> None:
    scrub = Scrubber(["true", "null", 'to"ken\\x'])
    record = {"raised": True, "error_code": None, "notes": ["it is true", "true"], "true": 'a to"ken\\x b', "n": 3}
    line = json.dumps(record)
    assert scrub.holds(line) and scrub.holds("the null check") and not scrub.holds('{"raised": false}')
    cleaned = scrub.data(record)
    assert cleaned == {"raised": True, "error_code": None, "notes": ["it is ***", "***"], "***": "a *** b", "n": 3}
    assert json.loads(json.dumps(cleaned)) == cleaned
    assert Scrubber().data(record) is record
    many = Scrubber(f"credential-{n:04}" for n in range(100))
    assert many.holds("x credential-0042 y") and not many.holds("credential-9999")


def test_skip_signature_gives_unsigned_events_a_placeholder() -> None:
    headers = ("X-Twilio-Signature",)
    signed = {"headers": {"x-twilio-signature": "abc"}}
    assert with_placeholders(signed, headers) == (signed, [])
    patched, missing = with_placeholders({"headers": None, "body": ""}, headers)
    assert missing == ["X-Twilio-Signature"] and patched["headers"] == {"X-Twilio-Signature": PLACEHOLDER_SIGNATURE}
    assert with_placeholders(["not", "an", "event"], headers) == (["not", "an", "event"], [])


def test_the_replay_clock_is_deterministic() -> None:
    from datetime import UTC, datetime

    clock = ReplayClock(datetime(2026, 11, 25, 12, 0))
    assert clock.now() == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert clock.monotonic() == clock.monotonic()


def test_events_that_can_touch_the_same_rows_share_a_partition() -> None:
    conversations = [
        {"primary_channel": "+1", "gsi_recipient_tel": "+1", "conversation_id": "shared"},
        {"primary_channel": "+2", "gsi_recipient_tel": "+2", "conversation_id": "shared"},
        {"primary_channel": "+3", "gsi_recipient_tel": "+3", "conversation_id": "own"},
    ]
    groups = conversation_groups(conversations)
    assert groups["+1"] == groups["+2"] != groups["+3"]
    form = whatsapp_form("SM1", "+2", "+14155238886", "hi", account="AC1")
    callback = status_form("SM2", "+2", "+14155238886", "read", account="AC1", channel="whatsapp")
    assert user_key(twilio_rest_event("whatsapp", form, token="t")) == "+2"
    assert user_key(twilio_rest_event("whatsapp", callback, token="t")) == "+2"
    assert user_key({"body": None}) is None
    events = [
        twilio_rest_event("whatsapp", whatsapp_form(f"SM{n}", f"+{n % 3 + 1}", "+1415", "x", account="AC"), token="t")
        for n in range(12)
    ]
    parts = partition(events, groups, 4)
    assert sorted(index for part in parts for index in part) == list(range(12))
    owner = {index: number for number, part in enumerate(parts) for index in part}
    assert len({owner[index] for index in range(12) if index % 3 in (0, 1)}) == 1  # users +1 and +2


@pytest.mark.parametrize("http_api", [False, True])
def test_emails_are_spread_over_workers_by_sender_and_joined_to_their_conversations(http_api: bool) -> None:
    key = KeyPair.from_seed("partition")

    def email_from(sender: str) -> dict[str, Any]:
        # Each sender's own email (one Message-ID posted from two senders is one message: one worker).
        body, content_type = inbound_parse_body(Email(sender=f"Kim <{sender}>", message_id=f"<{sender}>"))
        return inbound_parse_event(signed(key, body, content_type, timestamp=0), http_api=http_api)

    conversations = [
        {"primary_channel": "a@example.org", "gsi_recipient_email": "a@example.org", "conversation_id": "shared"},
        {"primary_channel": "+1", "gsi_recipient_tel": "+1", "conversation_id": "shared"},
    ]
    groups = conversation_groups(conversations)
    assert groups["a@example.org"] == groups["+1"]
    assert user_key(email_from("A@Example.org")) == "a@example.org"
    events = [email_from(f"user{n % 4}@example.org") for n in range(8)]
    events += [
        email_from("a@example.org"),
        twilio_rest_event("whatsapp", whatsapp_form("SM9", "+1", "+1415", "x", account="AC"), token="t"),
    ]
    parts = partition(events, groups, 4)
    owner = {index: number for number, part in enumerate(parts) for index in part}
    assert sorted(owner) == list(range(10))
    assert len({owner[index] for index in range(8)}) == 4  # four senders, four workers
    assert owner[8] == owner[9]  # an email and a WhatsApp message of one conversation


def test_the_corpus_is_deterministic_and_signed_with_the_worlds_tokens() -> None:
    first, second = generate_corpus(20, 50, seed=3), generate_corpus(20, 50, seed=3)
    assert first == second and first != generate_corpus(20, 50, seed=4)
    assert len(first.world["conversations"]) == 20 and len(first.events) == 50
    tokens = {value["twilio_auth_token"] for value in first.world["secrets"].values()}
    event = next(e for e in first.events if e.get("version") != "2.0")
    from urllib.parse import parse_qsl

    form = parse_qsl(event["body"], keep_blank_values=True)
    url = f"https://{event['headers']['Host']}{event['requestContext']['path']}"
    assert event["headers"]["X-Twilio-Signature"] in {sign(url, form, token) for token in tokens} | {
        sign(url, form, "0" * 32)
    }


def test_the_committed_example_events_are_a_fresh_generation() -> None:
    spec = importlib.util.spec_from_file_location("examples_generate", ROOT / "examples" / "generate.py")
    assert spec is not None and spec.loader is not None
    module: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.build_files()
    committed = {path.name: path.read_text() for path in (ROOT / "examples" / "events").iterdir()}
    assert committed == files


def test_the_progress_bar_draws_only_when_enabled_and_clears_itself() -> None:
    import io

    from tools.dryrun.report import Progress

    ticks = iter([0.0, 0.05, 0.5, 1.0])
    err = io.StringIO()
    progress = Progress(err, 4, enabled=True, clock=lambda: next(ticks))
    for done in range(1, 5):
        progress.update(done)
    progress.close()
    frames = err.getvalue().split("\r")
    assert "[" + "#" * 7 + "." * 23 + "] 1/4 events" in frames[1]
    assert frames[-3].endswith("] 4/4 events") and frames[-1] == ""
    quiet = io.StringIO()
    Progress(quiet, 4, enabled=False).update(1)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("kim@example.org", "k***@example.org"),
        ("k\u00edm.lee@example.org", "k***@example.org"),
        ("\u043a\u0438\u043c@example.org", "\u043a***@example.org"),
        ("kim@example.\u0440\u0444", "k***@example.\u0440\u0444"),
        ("o'brien@example.org", "o***@example.org"),
        ('"kim lee"@example.org', '"***@example.org'),
        ("ci-1#pi-1#6f0c2a52#j\u00f6rg@example.org", "ci-1#pi-1#6f0c2a52#j***@example.org"),
    ],
)
def test_an_address_is_masked_whatever_the_script_of_its_local_part(address: str, masked: str) -> None:
    """The capture's own masking takes RFC 6531 local parts (runtime.masking): so must the dry-run's output."""
    assert Masker(show_data=False).text(address) == masked
    assert Masker(show_data=False).data({"primary_channel": address}) == {"primary_channel": masked}


@pytest.mark.parametrize("written", ["2026-11-25T12:00:00z", "2026-11-25t12:00:00z"])
def test_a_time_in_rfc_3339_s_lower_case_is_the_time_it_names(tmp_path: Path, written: str) -> None:
    # --now and a world's now refused RFC 3339's lower-case z (exit 2), which rules and the conversation lookup read.
    from tests.support.dryrun import WORLD as EXAMPLE_WORLD
    from tests.support.dryrun import run_dryrun

    event = ROOT / "examples" / "events" / "01_whatsapp_text.json"
    options = ("--world", EXAMPLE_WORLD, "--backend", "memory", "--json")
    upper = json.loads(run_dryrun(*options, "--now", "2026-11-25T12:00:00Z", event))
    lower = json.loads(run_dryrun(*options, "--now", written, event))
    assert (lower["outcome"], lower["actions"]) == (upper["outcome"], upper["actions"])
    spec = load_world(write(tmp_path / "world.yaml", f'now: "{written}"\n'))
    assert spec.now is not None and spec.now.isoformat() == "2026-11-25T12:00:00+00:00"


@pytest.mark.parametrize("depth", [200_000, 900])
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_an_event_nested_deeper_than_any_event_is_a_located_error_not_a_traceback(
    tmp_path: Path, suffix: str, depth: int
) -> None:
    # Defect: json.loads (past ~1000 levels) raised RecursionError out of every tool reading events, and a shallower
    # one that parsed raised it from the masking's walks (pipeline-dryrun, pipeline-event mask): a traceback.
    event = json.loads((EVENTS / "01_whatsapp_text.json").read_text())
    text = json.dumps(event)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    path = write(tmp_path / f"deep{suffix}", f"{json.dumps(event)}\n{text}\n" if suffix == ".jsonl" else text)
    with pytest.raises(EventFileError) as caught:
        load_events([path])
    line = 2 if suffix == ".jsonl" else 1
    assert [str(problem) for problem in caught.value.problems] == [
        f"{path}:{line}:1: nested more than {MAX_NESTING} levels deep (no world or event is): not read"
    ]


def test_a_rule_input_holding_a_number_a_float_cannot_hold_is_written_whole_masked_or_not() -> None:
    from decimal import Decimal

    from steps.support import json_safe
    from tools.dryrun.report import to_json_line

    inputs = json_safe({"conversation.balance": Decimal("12345678901234567890.123")})
    for masker in (Masker(show_data=False), Masker(show_data=True)):
        assert (
            to_json_line({"inputs": masker.inputs(inputs)})
            == '{"inputs": {"conversation.balance": 12345678901234567890.123}}'
        )
