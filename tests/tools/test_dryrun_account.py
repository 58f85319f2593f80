"""Without ``--world``: reads come from the account (here moto's server), writes and sends are only planned."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from runtime.aws import DynamoTables
from runtime.masking import Pseudonyms, recordable
from steps.sendgrid.ecdsa import TIMESTAMP_HEADER
from tests.support.dryrun import ROOT, WORLD, child_env, replay_key, run_dryrun, run_module
from tools.dryrun.backends import populate
from tools.dryrun.events import load_events
from tools.dryrun.world import load_world
from tools.localaws import LocalResources, provision, put_secrets, to_dynamo

NOW = "2026-11-25T12:00:00Z"

pytestmark = pytest.mark.integration


class Account:
    def __init__(self, endpoint: str, resources: LocalResources) -> None:
        self.endpoint = endpoint
        self.resources = resources

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def rows(self, table: str) -> list[dict[str, Any]]:
        return sorted(self.client("dynamodb").scan(TableName=table)["Items"], key=json.dumps)

    def messages(self, queue_url: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        return sum(
            int(attributes[name]) for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed")
        )


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    """moto's server holding the examples' world, as if it were the real account."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    account = Account(f"http://{host}:{port}", None)  # type: ignore[arg-type]
    try:
        dynamodb = account.client("dynamodb")
        account.resources = provision(dynamodb, account.client("sqs"))
        world = load_world(WORLD)
        populate(world, DynamoTables(dynamodb), account.resources)
        put_secrets(account.client("secretsmanager"), world.secrets)
        yield account
    finally:
        server.stop()


def normalized(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without what legitimately differs: timings, queue URLs, notes, where a secret came from."""
    for record in records:
        record.pop("queue")
        record.pop("notes")
        for entry in record["trace"]:
            entry.pop("ms")
            if entry["step"] == "auth_token":
                entry.pop("decision")
    return records


def test_reads_are_real_and_writes_are_planned_never_performed(account: Account) -> None:
    env = child_env(
        **account.resources.environment(),
        AWS_ENDPOINT_URL=account.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    before = {table: account.rows(table) for table in (account.resources.stage_table, account.resources.lock_table)}
    done = run_module("tools.dryrun.cli", "--json", "--now", NOW, "examples/events", env=env)
    assert done.returncode == 0, done.stderr
    planned = [json.loads(line) for line in done.stdout.splitlines()]
    for secret in load_world(WORLD).secrets.values():
        token = json.loads(secret).get("twilio_auth_token", "never-printed")
        assert token not in done.stdout and token not in done.stderr
    # Nothing was written or sent...
    assert {table: account.rows(table) for table in before} == before
    for queue in (
        account.resources.whatsapp_queue_url,
        account.resources.sms_queue_url,
        account.resources.handoff_queue_url,
        account.resources.email_queue_url,
    ):
        assert account.messages(queue) == 0
    # ...yet the plan is what the world replay performs: the conditional writes were checked against the
    # rows that exist (a held lock batches, a staged message is not staged twice), and planned rows are
    # seen by the next events (a burst batches).
    replayed = run_dryrun("--world", "examples/world.yaml", "--backend", "memory", "--json", "examples/events")
    performed = [json.loads(line) for line in replayed.splitlines()]
    assert normalized(planned) == normalized(performed)
    assert planned[0]["source"] == "examples/events/01_whatsapp_text.json"


@pytest.mark.parametrize(
    ("source", "record"),
    [
        ("01_whatsapp_text.json", lambda at: {"recorded_at": at, "replay_after": at + 30}),
        ("13_email.jsonl", lambda at: {"recorded_at": at, "state": "confirmed", "confirmed_at_ms": at * 1000 + 40}),
    ],
)
def test_captured_traffic_is_decided_as_it_arrived_not_refused_as_a_replay_of_itself(
    account: Account, tmp_path: Path, source: str, record: Callable[[int], dict[str, Any]]
) -> None:
    # Production accepted the captured message and recorded it (replay.record); replaying the capture later, without
    # --now, decides it as on its arrival. A copy that arrived later than that was a replay: still REPLAY.
    [event, *_] = [recorded.event for recorded in load_events([ROOT / "examples" / "events" / source])]
    sid = replay_key(event)
    arrived = int(event["headers"].get(TIMESTAMP_HEADER, datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp())) + 1
    row = {"message_sid": sid, "expires_at": arrived + 604800, **record(arrived)}
    dynamodb = account.client("dynamodb")
    dynamodb.put_item(TableName=account.resources.replay_table, Item=to_dynamo(row))
    copies = []
    for seconds in (0, 300):
        copy = json.loads(json.dumps(event))
        copy["requestContext"]["requestTimeEpoch"] = (arrived + seconds) * 1000
        copies.append(copy)
    events = tmp_path / "captured.jsonl"
    events.write_text("".join(json.dumps(copy) + "\n" for copy in copies))
    env = child_env(
        **account.resources.environment(),
        AWS_ENDPOINT_URL=account.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        done = run_module("tools.dryrun.cli", "--json", events, env=env)
    finally:
        dynamodb.delete_item(TableName=account.resources.replay_table, Key=to_dynamo({"message_sid": sid}))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["outcome"] for line in done.stdout.splitlines()] == ["QUEUED", "REPLAY"]


def test_a_live_replay_takes_its_region_from_aws_region(account: Account, tmp_path: Path) -> None:
    env = child_env(
        **account.resources.environment(),
        AWS_ENDPOINT_URL=account.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",  # as Lambda and the contract name it; no AWS_DEFAULT_REGION, no profile
        AWS_CONFIG_FILE=str(tmp_path / "none"),
    )
    done = run_module("tools.dryrun.cli", "--json", "--now", NOW, "examples/events/01_whatsapp_text.json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "QUEUED"


def test_a_pseudonymized_recording_is_refused_live_and_replays_against_its_pseudonymized_world(
    account: Account, tmp_path: Path
) -> None:
    key = "a-capture-key-of-32-characters!!"
    pseudonyms = Pseudonyms(key.encode())
    captured = tmp_path / "captured"
    captured.mkdir()
    (recorded,) = load_events([ROOT / "examples" / "events" / "01_whatsapp_text.json"])
    (captured / "a.json").write_text(json.dumps(recordable(recorded.event, mask="text")))
    masked_all = [
        recordable(event.event, mask="all", pseudonyms=pseudonyms)
        for event in load_events([ROOT / "examples" / "events" / "08_burst.jsonl"])
    ]
    (captured / "b.jsonl").write_text("".join(json.dumps(event) + "\n" for event in masked_all))
    env = child_env(
        **account.resources.environment(),
        AWS_ENDPOINT_URL=account.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        CAPTURE_KEY=key,
    )
    live = run_module("tools.dryrun.cli", "--json", "--skip-signature", "--now", NOW, captured, env=env)
    # No event of it could match a conversation of the account: refused, naming the file and the way to replay it.
    assert live.returncode == 2 and live.stdout == ""
    (line,) = live.stderr.splitlines()
    assert line.startswith(f"{captured / 'b.jsonl'}:1:1: recorded with mask=all")
    assert "pipeline-world pseudonymize" in line and "--world" in line
    # A snapshot of it finds no row either, and says why.
    snapshot = run_module("tools.dryrun.world_cli", "snapshot", "--now", NOW, captured, env=env)
    assert snapshot.returncode == 0, snapshot.stderr
    assert f"note: {captured / 'b.jsonl'}: recorded with mask=all" in snapshot.stderr
    assert f"note: {captured / 'a.json'}" not in snapshot.stderr
    assert [row["primary_channel"] for row in json.loads(snapshot.stdout)["conversations"]] == ["+447700900101"]
    # The way it names works: against the world pseudonymized with the capture's key, every event is decided.
    world = tmp_path / "shared-world.json"
    made = run_module("tools.dryrun.world_cli", "pseudonymize", "--key-env", "CAPTURE_KEY", WORLD, "-o", world, env=env)
    assert made.returncode == 0, made.stderr
    offline = run_module(
        "tools.dryrun.cli", "--world", world, "--json", "--skip-signature", "--now", NOW, captured / "b.jsonl", env=env
    )
    assert offline.returncode == 0, offline.stderr
    outcomes = [json.loads(line)["outcome"] for line in offline.stdout.splitlines()]
    assert outcomes == ["QUEUED", "BATCHED", "BATCHED"]


@pytest.mark.parametrize("mistake", ["no credentials", "a table name the account lacks"])
def test_a_gate_that_could_not_read_the_account_fails_instead_of_passing(account: Account, mistake: str) -> None:
    # Both lanes end every event in the same DB error when the replay cannot read the account: nothing changed, yet
    # nothing was decided by the rules. The gate must fail (exit 2), and each event says why it was not decided.
    import os

    environment = {**account.resources.environment(), "AWS_ENDPOINT_URL": account.endpoint}
    environment.update(AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    environment["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    if mistake == "no credentials":
        environment.pop("AWS_ACCESS_KEY_ID", None)
    else:
        environment.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        environment["CONVERSATIONS_TABLE_NAME"] = "conversations-typo"
    event = ROOT / "examples" / "events" / "01_whatsapp_text.json"
    options = ("--json", "--now", NOW, "--baseline-rules", "rules", "--fail-on-change", event)
    done = run_module("tools.dryrun.cli", *options, env=child_env(**environment))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "could not read the account" in done.stderr
    [record] = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["outcome"].startswith("DB_")
    assert any(note.startswith("not decided: the replay could not read the account") for note in record["notes"])
    # Without the gate, the replay still runs to the end (exit 0), and its summary says so.
    done = run_module("tools.dryrun.cli", "--now", NOW, event, env=child_env(**environment))
    assert done.returncode == 0, done.stderr
    assert "1 event(s) not decided: the replay could not read the account" in done.stdout
