"""``pipeline-world``: worlds fit to share (the same masking as captured events), and what a snapshot needs."""

from __future__ import annotations

import io
import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from runtime.aws import DynamoTables
from runtime.masking import MASKED_TEXT, Pseudonyms
from tests.support.aws import iam_user
from tests.support.dryrun import EVENTS, run_dryrun
from tests.support.webhooks import USER, rest_event, whatsapp_params
from tests.support.world import WA_SECRET, World
from tests.tools.test_third_pipeline import fax_project
from tools.dryrun.event_cli import main as event_cli
from tools.dryrun.events import MAX_NESTING
from tools.dryrun.world_cli import main
from tools.localaws import LocalResources, put_items
from tools.needs import shipped_needs

ROOT = Path(__file__).resolve().parents[2]
WORLD = ROOT / "examples" / "world.yaml"


@contextmanager
def example_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalResources, DynamoTables]]:
    """An in-process moto account holding the example world, its resources named in the environment as deployed."""
    from moto import mock_aws

    from tools.dryrun.backends import populate
    from tools.dryrun.world import load_world
    from tools.localaws import provision

    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        resources = provision(boto3.client("dynamodb"), boto3.client("sqs"))
        tables = DynamoTables(boto3.client("dynamodb"))
        populate(load_world(WORLD), tables, resources)
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        yield resources, tables


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


def test_a_world_that_keeps_its_credentials_is_written_to_an_owner_only_file_never_printed(tmp_path: Path) -> None:
    # Printed, the tokens would land in a terminal's scrollback or a CI job's log, and a shell redirect makes a file
    # anyone on the machine may read.
    status, out, err = world_cli("pseudonymize", str(WORLD), "--mask", "text", "--keep-secrets")
    assert status == 2 and out == "" and TOKEN not in err
    assert "--keep-secrets needs -o FILE" in err
    target = tmp_path / "kept.json"
    status, out, _ = world_cli("pseudonymize", str(WORLD), "--mask", "text", "--keep-secrets", "-o", str(target))
    kept = target.read_text()
    assert status == 0 and TOKEN not in out and TOKEN in kept and "+447700900101" in kept and "Hi Alice" not in kept
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


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


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (
            ["--rules", "pipelines"],
            "--rules pipelines holds pipeline files (pipeline:, steps:), not rules files (ruleset:): give the rules "
            "directory with --rules, and a pipeline file with --pipeline",
        ),
        (
            ["--pipeline", "rules/40_routing.yaml"],
            "--pipeline rules/40_routing.yaml is a rules file (ruleset:), not a pipeline file: give a file of "
            "pipelines/ with --pipeline, and the rules directory with --rules",
        ),
        (
            ["--pipeline", "pipelines"],
            "--pipeline takes one pipeline file, not a directory: give one of pipelines/*.yaml, or leave --pipeline "
            "out to check them all",
        ),
    ],
)
def test_a_snapshots_rules_path_and_pipeline_path_mixed_up_are_told_apart_as_the_dry_runs_are(
    given: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: pipeline-world snapshot loaded --rules pipelines as rules (30 lines of schema errors), --pipeline
    rules/40_routing.yaml as a pipeline (8) and --pipeline pipelines as a file ('cannot read file: Is a directory'),
    where pipeline-dryrun, given the same, says which option takes which path in one line."""
    monkeypatch.chdir(ROOT)
    for name in (table.env for table in shipped_needs().tables if table.env is not None):
        monkeypatch.setenv(name, name.lower())
    status, out, err = world_cli("snapshot", "--user", "+447700900101", *given)
    assert (status, out) == (2, "")
    assert err == f"pipeline-world: error: {says}\n"


def test_events_and_world_shared_with_the_same_key_replay_to_the_outcomes_of_the_originals(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # docs/recording-events.md, "Sharing a recording with its world", with a key that once gave +447700900102 and
    # +14155238886 pseudonyms starting with 0: twilio.parse refused those events (PARSING_ERROR).
    monkeypatch.setenv("CAPTURE_KEY", "0123456789abcdef0123")
    assert event_cli(["mask", "--mask", "all", "--key-env", "CAPTURE_KEY", str(EVENTS)]) == 0
    shared_events = tmp_path / "shared.jsonl"
    shared_events.write_text(capsys.readouterr().out)
    shared_world = tmp_path / "shared-world.json"
    assert world_cli("pseudonymize", "--key-env", "CAPTURE_KEY", str(WORLD), "-o", str(shared_world))[0] == 0

    def outcomes(world: Path, events: Path) -> list[str]:
        output = run_dryrun("--world", world, "--backend", "memory", "--skip-signature", "--json", events)
        return [json.loads(line)["outcome"] for line in output.splitlines()]

    original = outcomes(WORLD, EVENTS)
    assert "HANDED_OFF" in original and "PARSING_ERROR" not in original
    assert outcomes(shared_world, shared_events) == original


def test_an_endpoint_that_is_no_url_is_a_named_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Every table's variable (a new step's table too), so that only the endpoint is wrong.
    for name in (table.env for table in shipped_needs().tables if table.env is not None):
        monkeypatch.setenv(name, name.lower())
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    status, out, err = world_cli("snapshot", "--endpoint-url", "notaurl", "--user", "+447700900101")
    assert (status, out) == (2, "")
    assert err == "pipeline-world: error: --endpoint-url 'notaurl': Invalid endpoint: notaurl\n"
    status, _, err = world_cli("snapshot", "--profile", "no-such-profile", "--user", "+447700900101")
    assert status == 2 and err.startswith("pipeline-world: error: reading the account failed: The config profile")


def test_a_snapshot_stands_in_for_the_queue_of_a_new_pipeline_as_for_the_shipped_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: a snapshot stood in for the four shipped queue variables only (queue URLs are needed to load a
    pipeline, never to read from), so a third pipeline's ``${env:FAX_QUEUE_URL}`` stopped every snapshot with
    "environment variable FAX_QUEUE_URL is not set", though no queue is read."""
    fax = fax_project(tmp_path)
    for name in (table.env for table in shipped_needs().tables if table.env is not None):
        monkeypatch.setenv(name, name.lower())
    monkeypatch.delenv("FAX_QUEUE_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    options = ("--pipeline", str(fax), "--rules", str(tmp_path / "rules"), "--user", "+447700900101")
    status, out, err = world_cli("snapshot", "--endpoint-url", "notaurl", *options)
    assert (status, out, err) == (2, "", "pipeline-world: error: --endpoint-url 'notaurl': Invalid endpoint: notaurl\n")


def test_a_snapshot_with_a_rules_directory_that_is_not_there_names_its_option(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The engine says the rules directory is missing in a function's terms (a cold start takes no option); the
    command says which of its options gave the path, as pipeline-dryrun's replay does, before reading anything."""
    for name in (table.env for table in shipped_needs().tables if table.env is not None):
        monkeypatch.setenv(name, name.lower())
    missing = tmp_path / "no-such-rules"
    status, out, err = world_cli("snapshot", "--rules", str(missing), "--user", "+447700900101")
    assert (status, out) == (2, "")
    assert err == f"{missing}:1:1: --rules: no such directory; pass the directory holding the rules/*.yaml files\n"


def test_every_mask_help_says_what_each_mode_keeps(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("snapshot", "pseudonymize"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert (
            "none: the body kept (credentials always dropped); text: free text masked; "
            "all: numbers and addresses pseudonymized too" in help_text
        )


READS = ["dynamodb:DescribeTable", "dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem"]


@pytest.mark.parametrize(
    ("denied", "failed"),
    [
        ("dynamodb:Query", "dynamodb.Query: "),
        # Defect: without the tables' key schemas no row read was noted, and the world came out empty, exit 0.
        ("dynamodb:DescribeTable", "dynamodb.DescribeTable: "),
    ],
)
def test_a_snapshot_of_an_account_it_may_not_read_fails_and_writes_no_world(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, denied: str, failed: str
) -> None:
    """Defect: every read refused (AccessDenied) ended each event in DB_QUERY_ERROR, noted, and the snapshot exited 0
    with a world holding no row, which then replayed offline as if the account had none."""
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    from runtime.aws import DynamoTables
    from tools.dryrun.backends import populate
    from tools.dryrun.world import load_world
    from tools.localaws import provision

    @set_initial_no_auth_action_count(6)  # the calls that make the two users; every later one is authorized
    @mock_aws
    def snapshot_as_a_user_denied_one_read() -> tuple[int, str, str]:
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        iam = boto3.client("iam")
        as_admin = iam_user(iam, "admin", ["*"])
        reader = iam_user(iam, "reader", [*(read for read in READS if read != denied), "secretsmanager:GetSecretValue"])
        resources = provision(boto3.client("dynamodb", **as_admin), boto3.client("sqs", **as_admin))
        populate(load_world(WORLD), DynamoTables(boto3.client("dynamodb", **as_admin)), resources)
        for name, value in {**resources.environment(), **{key.upper(): value for key, value in reader.items()}}.items():
            monkeypatch.setenv(name, value)
        event = ROOT / "examples" / "events" / "01_whatsapp_text.json"
        return world_cli("snapshot", "--now", "2026-11-25T12:00:00Z", str(event), "-o", str(tmp_path / "world.json"))

    status, out, err = snapshot_as_a_user_denied_one_read()
    assert (status, out) == (2, "")
    # moto answers a denied DynamoDB call in the query protocol, so botocore reads its code as "403" here.
    assert err.startswith(f"pipeline-world: error: reading the account failed ({failed}"), err
    assert "no world written" in err
    assert not (tmp_path / "world.json").exists()


def test_a_snapshot_says_which_emails_it_read_nothing_for_as_their_signature_is_too_old_at_its_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defect: an email older than its signature's window at the snapshot's time (`--now`, else the time it runs)
    was refused before any read, and the snapshot said nothing: its conversation was silently missing."""

    email = tmp_path / "email.json"
    email.write_text((ROOT / "examples" / "events" / "13_email.jsonl").read_text(encoding="utf-8").splitlines()[0])
    with example_account(monkeypatch):
        late = world_cli("snapshot", "--now", "2026-12-25T00:00:00Z", str(email))
        in_time = world_cli("snapshot", "--now", "2026-11-25T12:00:00Z", str(email))
    status, out, err = late
    assert status == 0 and json.loads(out)["conversations"] == []
    assert (
        f"pipeline-world: note: {email}: INVALID_SIGNATURE at 2026-12-25T00:00:00+00:00 (the signature's timestamp "
        "is outside the accepted window), so no row was read for it; "
        "snapshot it without --now, or with --now at its time\n"
    ) in err
    status, out, err = in_time
    assert status == 0 and "INVALID_SIGNATURE" not in err, err
    assert [row["primary_channel"] for row in json.loads(out)["conversations"]] == ["kim@example.org"]


def test_a_snapshot_without_now_says_a_stale_email_was_refused_on_arrival_instead_of_asking_for_what_it_did(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defect: snapshotting a day's capture (no --now: each event at its arrival time) of an email whose signature was
    already too old when it arrived (a post captured and sent again days later, refused by production too), the note
    said "snapshot it without --now, or with --now at its time": advice already followed, which reads as if the
    snapshot were missing rows. It says now that the email was refused on arrival, as production refused it, so no row
    is needed to replay it; an email that carries no arrival time is still told to take --now at its time."""

    original = json.loads((ROOT / "examples" / "events" / "13_email.jsonl").read_text().splitlines()[0])
    arrived = dict(original, requestContext={**original["requestContext"], "requestTimeEpoch": 1796628232000})
    late, undated = tmp_path / "late.json", tmp_path / "undated.json"
    late.write_text(json.dumps(arrived))
    undated.write_text(json.dumps(original))
    with example_account(monkeypatch):
        status, out, err = world_cli("snapshot", str(late), str(undated))
    assert status == 0 and json.loads(out)["conversations"] == []
    assert (
        f"pipeline-world: note: {late}: INVALID_SIGNATURE at its arrival time, 2026-12-07T07:23:52+00:00 (the "
        "signature's timestamp is outside the accepted window): refused on arrival, as production refused it, so it "
        "needs no row\n"
    ) in err
    assert "snapshot it without --now" not in err
    assert f"pipeline-world: note: {undated}: INVALID_SIGNATURE at " in err
    assert "it carries no arrival time (requestTimeEpoch): snapshot it with --now at its time\n" in err


def test_the_snapshot_help_says_older_emails_need_now(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["snapshot", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "an email signed longer ago than its window" in help_text
    assert "so snapshot older emails without --now, or with --now at their time" in help_text


def test_a_snapshot_taken_after_the_traffic_replays_it_offline_as_the_live_replay_decides_it(
    world: World, tmp_path: Path
) -> None:
    """Defect: without --now a snapshot pinned its world's ``now`` to the time of the snapshot (and read the rows at
    that time), so the offline replay of a capture (recording-events.md, "Replaying real traffic") ran every event
    then instead of at its arrival, as the live replay does: a message production had accepted was ``REPLAY``
    offline while the live replay showed what the rules decide."""
    world.add_default_secrets()
    world.add_conversation()
    arrival = int(time.time()) - 3600  # captured an hour before the snapshot
    sid = "SM" + "4" * 32
    event = rest_event("whatsapp", whatsapp_params(sid))
    event["requestContext"]["requestTimeEpoch"] = arrival * 1000
    captured = tmp_path / "captured"
    captured.mkdir()
    (captured / "a.json").write_text(json.dumps(event))
    # Production accepted it on arrival: the replay record replay.record wrote then.
    record = {"message_sid": sid, "recorded_at": arrival, "replay_after": arrival + 30, "expires_at": arrival + 604800}
    put_items(world.dynamodb, world.resources.replay_table, [record])

    live = json.loads(run_dryrun("--json", captured))
    snapshot = tmp_path / "world.json"
    status, _, err = world_cli("snapshot", "--mask", "none", "--keep-secrets", str(captured), "-o", str(snapshot))
    assert status == 0, err
    # The memory world (equal to moto's): moto is active in this process, the account's.
    offline = json.loads(run_dryrun("--world", snapshot, "--backend", "memory", "--json", captured))
    assert live["outcome"] == "QUEUED" and live["signature"] == "valid"
    assert [row["message_sid"] for row in json.loads(snapshot.read_text())["replay"]] == [sid]
    assert (offline["outcome"], offline["signature"]) == (live["outcome"], live["signature"])


def test_a_days_capture_replayed_at_arrival_times_ignores_a_trigger_lock_taken_after_each_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defect: replaying a captured message at its arrival time (no --now) against live data, the account's trigger
    lock for its conversation belonged to a message that arrived ten minutes later, after the capture: the lock,
    unexpired at the replay's time, was taken as held, and a message production QUEUED (it held the lock then)
    replayed BATCHED, "lock: held by another message". A lock taken after the replay's time did not exist then: live,
    and offline from a snapshot, the message replays QUEUED, as production decided it."""

    arrival = 1795608000  # 2026-11-25T12:00:00Z
    first = json.loads((ROOT / "examples" / "events" / "08_burst.jsonl").read_text().splitlines()[0])
    first["requestContext"]["requestTimeEpoch"] = arrival * 1000
    captured = tmp_path / "captured.json"
    captured.write_text(json.dumps(first))
    conversation = "ci-acme-001#pi-acme-support#2b4d6f8a-0c2e-4a6b-8d0f-2b4d6f8a0c07#447700900107"
    later = {
        "conversation_id": conversation,
        "message_sid": "SM" + "7" * 32,
        "taken_at": arrival + 600,
        "trigger_due_at": arrival + 610,
        "expires_at": arrival + 670,
    }
    with example_account(monkeypatch) as (resources, tables):
        tables.put_item(resources.lock_table, later)
        live = json.loads(run_dryrun("--json", "--skip-signature", captured))
        status, out, _ = world_cli("snapshot", str(captured))
    assert status == 0
    assert [row["message_sid"] for row in json.loads(out)["locks"]] == [later["message_sid"]]
    (tmp_path / "world.json").write_text(out)
    offline = json.loads(run_dryrun("--world", tmp_path / "world.json", "--json", "--skip-signature", captured))
    for record in (live, offline):
        assert (record["outcome"], record["target"]) == ("QUEUED", "whatsapp"), record
        lock = next(a for a in record["actions"] if a["table"] == resources.lock_table)
        assert "condition_failed" not in lock


def test_a_live_replay_whose_lock_row_cannot_be_read_plans_the_lock_with_a_note_as_before(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defect: a live replay plans a conditional write whose row it cannot read (the table not described, the read
    refused) as applying, with a note saying the condition was not checked. The read of the lock's taken_at put in
    front of it (a lock taken after the replay's time is absent) raised instead, so every message of such an account
    ended TRIGGER_LOCK_WRITE_ERROR, "not decided", a write error made of a failed read. The condition is again
    planned as applying, with the note."""

    first = json.loads((ROOT / "examples" / "events" / "08_burst.jsonl").read_text().splitlines()[0])
    captured = tmp_path / "captured.json"
    captured.write_text(json.dumps(first))
    with example_account(monkeypatch) as (resources, _):
        boto3.client("dynamodb").delete_table(
            TableName=resources.lock_table
        )  # an account whose lock table cannot be read
        record = json.loads(run_dryrun("--json", "--skip-signature", captured))
    assert (record["outcome"], record["target"]) == ("QUEUED", "whatsapp"), record
    assert f"put_item on {resources.lock_table}: condition not checked" in " ".join(record["notes"]), record["notes"]


def test_a_snapshot_says_a_secret_stored_as_binary_holds_no_secret_string(world: World) -> None:
    # Defect: a conversation's secret stored as SecretBinary was noted as "could not be read (KeyError)", as if
    # access had failed; pipeline-event build names it (fix_toolsec), and the snapshot now says the same.
    world.add_conversation()
    world.secretsmanager.create_secret(Name=WA_SECRET, SecretBinary=b"\x00binary")
    status, out, err = world_cli("snapshot", "--mask", "none", "--user", USER)
    assert status == 0, err
    assert json.loads(out)["secrets"] == {}
    assert (
        f"pipeline-world: note: secret {WA_SECRET} holds no SecretString (it is stored as binary): store the "
        "credentials as a JSON SecretString, as the function reads them; its events replay with --skip-signature\n"
    ) in err


@pytest.mark.parametrize("operation", ["Query", "GetItem"])
def test_a_snapshot_that_reads_a_garbled_answer_fails_and_writes_no_world(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, operation: str
) -> None:
    """Defect: the snapshot read a user's conversations (Query) and each row whole (GetItem) with the client's own
    calls, past the checks of ``runtime.aws``: a 200 answer that is no answer (a proxy's page) read as a missing row,
    the world silently without the conversation, or ended in a KeyError traceback. It now fails as an unreadable
    account does: exit 2, the operation and MalformedAnswer named, no world written."""
    from moto.core.models import botocore_stubber

    import tools.dryrun.live
    from tests.support.faults import malformed_answer

    live_clients = tools.dryrun.live.live_clients

    def garbling(*args: Any) -> Any:
        dynamodb, sqs, secretsmanager = live_clients(*args)

        def send(request: Any, event_name: str, **_: Any) -> Any:
            if event_name.endswith(f".{operation}"):
                return malformed_answer("dynamodb", request.url)
            return botocore_stubber(event_name, request)

        dynamodb.meta.events.unregister("before-send", botocore_stubber)
        dynamodb.meta.events.register_first("before-send.dynamodb", send)
        return dynamodb, sqs, secretsmanager

    with example_account(monkeypatch):
        monkeypatch.setattr(tools.dryrun.live, "live_clients", garbling)
        status, out, err = world_cli("snapshot", "--user", "+447700900101", "-o", str(tmp_path / "world.json"))
    assert (status, out) == (2, ""), err
    assert err.startswith(f"pipeline-world: error: reading the account failed (dynamodb.{operation}: MalformedAnswer")
    assert "no world written" in err
    assert not (tmp_path / "world.json").exists()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The umask a laptop or CI runner commonly has (022: new files readable by every user), restored after."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_a_world_written_with_its_tokens_is_the_owners_alone_and_replaces_a_planted_symlink(tmp_path: Path) -> None:
    # Defect: -o wrote with the umask's mode (0644: any user of the machine read the production tokens and numbers)
    # and through a symlink planted at the path (overwriting the file it pointed to); nothing said what was written.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / "world.json"
    target.symlink_to(victim)
    status, out, err = world_cli("pseudonymize", str(WORLD), "--mask", "text", "--keep-secrets", "-o", str(target))
    assert (status, out) == (0, "")
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink() and TOKEN in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert err == f"pipeline-world: wrote {target} (readable by its owner only)\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["victim.txt", "world.json"]  # no temporary left
    # A world already there, readable by all, is replaced by one that is not.
    target.chmod(0o644)
    assert world_cli("pseudonymize", str(WORLD), "--mask", "text", "--keep-secrets", "-o", str(target))[0] == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_world_that_cannot_be_written_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "no-such-directory" / "world.json"
    status, out, err = world_cli("pseudonymize", str(WORLD), "--mask", "text", "-o", str(target))
    assert (status, out) == (2, "")
    assert err == f"pipeline-world: error: cannot write {target}: No such file or directory\n"
    assert not target.parent.exists()
    directory = tmp_path / "a-directory"
    directory.mkdir()
    status, _, err = world_cli("pseudonymize", str(WORLD), "--mask", "text", "-o", str(directory))
    assert err == f"pipeline-world: error: cannot write {directory}: Is a directory\n"
    assert status == 2 and list(directory.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-directory"]


def test_a_world_over_a_writable_file_in_a_directory_without_write_permission_says_the_directory_is_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: -o naming a file the user may write, in a directory they may not, was refused 'cannot write FILE:
    Permission denied', though the file itself is writable (ls -l shows it): the file is made beside it and renamed
    over it, which needs the directory. The refusal now names the directory and why it is needed."""
    import tools.private

    directory = tmp_path / "shared"
    directory.mkdir()
    target = directory / "world.json"
    target.write_text("{}\n")
    target.chmod(0o666)
    if os.geteuid() == 0:  # root writes any directory: the refusal the kernel gives another user

        def refused(**kwargs: Any) -> Any:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tools.private.tempfile, "mkstemp", refused)
    directory.chmod(0o555)
    try:
        status, out, err = world_cli("pseudonymize", str(WORLD), "--mask", "text", "-o", str(target))
    finally:
        directory.chmod(0o755)
    assert (status, out) == (2, "")
    assert err == (
        f"pipeline-world: error: cannot write {target}: Permission denied: its directory {directory} is not writable "
        "(the file is made beside it and renamed over it, so that it is never partly written nor readable by others); "
        "write it to a directory you can create files in\n"
    )
    assert target.read_text() == "{}\n"


def test_a_world_written_to_a_device_or_pipe_is_streamed_never_put_in_its_place() -> None:
    # Renamed over /dev/null (root may), the temporary file would have replaced the device.
    status, out, err = world_cli("pseudonymize", str(WORLD), "--mask", "text", "-o", os.devnull)
    assert (status, out, err) == (0, "", f"pipeline-world: wrote {os.devnull}\n")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_world_written_to_the_users_own_descriptor_of_a_file_goes_into_that_file(tmp_path: Path) -> None:
    # Defect: -o /dev/stdout with stdout redirected to a file (`pipeline-world … -o /dev/stdout > world.json`), or
    # -o /dev/fd/N, named a regular file, so the world was put in a temporary file beside the name: in /dev/fd (or
    # /dev, which root may write: /dev/stdout replaced by a file) instead of the user's own open descriptor.
    redirected = tmp_path / "redirected.json"
    descriptor = os.open(redirected, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for target in (f"/proc/self/fd/{descriptor}", f"/dev/fd/{descriptor}"):
            status, out, err = world_cli("pseudonymize", str(WORLD), "--mask", "text", "-o", target)
            assert (status, out, err) == (0, "", f"pipeline-world: wrote {target}\n")
            assert json.loads(redirected.read_text())["conversations"]
    finally:
        os.close(descriptor)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["redirected.json"]


def test_a_symlink_planted_to_another_users_pipe_never_receives_the_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pipe's reader would have read the tokens: only the user's own pipes and terminals are written as streams.
    pipe = tmp_path / "listening"
    os.mkfifo(pipe)
    if os.geteuid() == 0:
        os.chown(pipe, 65534, 65534)
    else:
        monkeypatch.setattr(os, "geteuid", lambda: 65534)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    try:
        target = tmp_path / "world.json"
        target.symlink_to(pipe)
        status, _, err = world_cli("pseudonymize", str(WORLD), "--mask", "text", "--keep-secrets", "-o", str(target))
        assert status == 0 and err == f"pipeline-world: wrote {target} (readable by its owner only)\n"
        assert os.read(reader, 65536) == b""  # nothing was written into the pipe
    finally:
        os.close(reader)
    assert not target.is_symlink() and TOKEN in target.read_text() and stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize(("suffix", "depth"), [(".json", 200_000), (".json", 900), (".yaml", 990)])
def test_a_world_nested_deeper_than_any_world_is_a_located_error_not_a_traceback(
    tmp_path: Path, suffix: str, depth: int
) -> None:
    # Defect: json.loads (past ~1000 levels) or the loader's own walks (past a few hundred) raised RecursionError:
    # a traceback, exit 1, from a file a tool was handed to read.
    deep = "[" * depth + "]" * depth
    path = tmp_path / f"world{suffix}"
    path.write_text(f'{{"conversations": [{{"primary_channel": "+1", "conversation_id": "c", "x": {deep}}}]}}\n')
    status, out, err = world_cli("pseudonymize", str(path), "--mask", "text")
    assert (status, out) == (2, "")
    assert err == f"{path}:1:1: nested more than {MAX_NESTING} levels deep (no world or event is): not read\n"


def test_a_snapshot_writes_a_number_a_float_cannot_hold_with_every_digit(world: World, tmp_path: Path) -> None:
    from decimal import Decimal

    world.add_default_secrets()
    world.add_conversation(balance=Decimal("12345678901234567890.123"), limits={"tiny": Decimal("-1.5E-129")})
    captured = tmp_path / "captured"
    captured.mkdir()
    (captured / "a.json").write_text(json.dumps(rest_event("whatsapp", whatsapp_params("SM" + "5" * 32))))
    snapshot = tmp_path / "world.json"
    status, _, err = world_cli("snapshot", "--mask", "none", "--keep-secrets", str(captured), "-o", str(snapshot))

    assert status == 0, err
    text = snapshot.read_text()
    assert '"balance": 12345678901234567890.123' in text and '"tiny": -1.5e-129' in text
    [row] = json.loads(text, parse_float=Decimal)["conversations"]
    assert row["balance"] == Decimal("12345678901234567890.123")


@pytest.mark.parametrize("mask", ["none", "text", "all"])
def test_a_world_with_a_binary_attribute_is_refused_by_name_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mask: str
) -> None:
    """Defect: a conversation attribute written as YAML binary (which the dry-run reads, as DynamoDB's B type)
    stopped `pipeline-world pseudonymize` with a traceback, `TypeError: Object of type bytes is not JSON
    serializable`: the world it writes is JSON, which holds no bytes. It is refused by name, exit 2, its value not
    shown, and nothing is printed."""
    monkeypatch.setenv("CAPTURE_KEY", KEY)
    text = WORLD.read_text(encoding="utf-8")
    anchor = "    ai_config: {assistant_id: asst_acme_support, temperature: 0.2, max_tokens: 512}\n"
    assert anchor in text
    world = tmp_path / "world.yaml"
    world.write_text(text.replace(anchor, anchor + "    avatar: !!binary OWY4NmQwODE4ODRjN2Q2NTlh\n", 1))
    status, out, err = world_cli("pseudonymize", str(world), "--mask", mask, "--key-env", "CAPTURE_KEY")
    assert (status, out) == (2, "")
    assert err.startswith("pipeline-world: error: conversations[0].avatar: binary data (not shown)"), err
    assert "OWY4NmQw" not in err and "9f86d081" not in err


def test_a_binary_set_is_found_and_refused_as_binary_is_not_a_traceback() -> None:
    """Defect: ``binary_paths`` walked maps and lists only, so a DynamoDB binary set (BS, a set of bytes as boto3
    reads it) was not found where a binary value (B) is: a world document holding one passed pipeline-world's check
    before writing and stopped json.dumps with a traceback (``set is not JSON serializable``). It is named by its
    attribute (a set has no order to index), as a B attribute is, and refused before anything is written."""
    from tools.dryrun.world import binary_paths, dotted
    from tools.dryrun.world_cli import Refused, _write

    document = {
        "conversations": [{"avatar": b"\x00png", "avatars": {b"\x00png", b"\x01gif"}, "tags": {"vip"}}],
        "locks": [{"holders": frozenset({b"\x02"})}],
    }

    assert [dotted(path) for path in binary_paths(document)] == [
        "conversations[0].avatar",
        "conversations[0].avatars",
        "locks[0].holders",
    ]
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(Refused) as refused:
        _write(document, None, out, err)
    assert str(refused.value).startswith(
        "conversations[0].avatar, conversations[0].avatars, locks[0].holders: binary data (not shown)"
    )
    assert (out.getvalue(), err.getvalue()) == ("", "")


def test_an_empty_now_is_refused_as_pipeline_dryrun_and_pipeline_event_refuse_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: pipeline-world snapshot --now "" (a script's unset variable, --now "$AT") was taken for no --now: exit
    0, each event read at its arrival time and no `now` pinned, where pipeline-dryrun and pipeline-event refuse it
    (tools.dryrun.world.now_option). It is refused now in their words, exit 2, and no world written."""
    from tools.dryrun.cli import main as dryrun_cli

    event = ROOT / "examples" / "events" / "01_whatsapp_text.json"
    assert dryrun_cli(["--now", "", str(event)]) == 2
    refused = capsys.readouterr().err.splitlines()[-1].removeprefix("pipeline-dryrun: error: ")
    assert refused == "--now: '' is not an ISO-8601 time (e.g. 2026-12-07T10:00:00Z)"

    with example_account(monkeypatch):
        status, out, err = world_cli("snapshot", "--now", "", str(event), "-o", str(tmp_path / "world.json"))

    assert (status, out, err) == (2, "", f"pipeline-world: error: {refused}\n")
    assert not (tmp_path / "world.json").exists()


def test_a_masked_worlds_conversations_keep_the_text_of_the_attributes_the_pipeline_reads_only(tmp_path: Path) -> None:
    """``--mask text`` masked a conversation's free-text fields by name (``content``, ``body``…): the name of the
    person who took it over (``company_rep``), a customer's name or city, whatever another service added, stayed in
    the world file written to be shared. Only the attributes the pipelines read keep their text now (as the dry-run
    shows them): the masked world still replays as the original does."""
    import yaml

    document = yaml.safe_load(WORLD.read_text())
    [carol] = [row for row in document["conversations"] if row.get("recipient_tel") == "+447700900103"]
    carol["customer_name"] = "Zelda Quillfeather"
    carol["profile"] = {"city": "Quillborough", "visits": 3, "vip": True}
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(document))
    target = tmp_path / "masked.json"

    status, _, err = world_cli("pseudonymize", str(world), "--mask", "text", "--keep-secrets", "-o", str(target))

    assert status == 0, err
    masked = json.loads(target.read_text())
    [row] = [row for row in masked["conversations"] if row.get("recipient_tel") == "+447700900103"]
    assert row["company_rep"] == {"name": MASKED_TEXT, "role": MASKED_TEXT} and row["customer_name"] == MASKED_TEXT
    assert row["profile"] == {"city": MASKED_TEXT, "visits": 3, "vip": True}
    assert row["messages"][0] == {"role": MASKED_TEXT, "content": MASKED_TEXT, "timestamp": 1795100000}
    assert {
        name: row[name] for name in carol if name not in ("company_rep", "customer_name", "profile", "messages")
    } == {
        name: value
        for name, value in carol.items()
        if name not in ("company_rep", "customer_name", "profile", "messages")
    }
    text = target.read_text()
    assert "Priya" not in text and "Zelda" not in text and "Quillborough" not in text
    events = [str(EVENTS / name) for name in ("03_handoff.json", "01_whatsapp_text.json", "13_email.jsonl")]
    decided = [
        (r["outcome"], r["target"])
        for r in map(json.loads, run_dryrun("--world", target, "--json", *events).splitlines())
    ]
    assert decided == [
        (r["outcome"], r["target"])
        for r in map(json.loads, run_dryrun("--world", world, "--json", *events).splitlines())
    ]
