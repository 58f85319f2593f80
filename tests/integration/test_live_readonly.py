"""Replays against live data, read-only: ``pipeline-dryrun --backend live`` and ``pipeline-world snapshot`` against
moto's server over HTTP, through a proxy that records every AWS operation and refuses (and reports) any write."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.aws import DynamoTables
from tests.integration.conftest import ROOT, Moto, base_env
from tests.support.dryrun import WORLD, greeting_rules, replay_key, run_module, without_settings
from tests.support.proxy import RecordingProxy, recording_proxy
from tools.dryrun.backends import populate
from tools.dryrun.live import READ_ONLY_ACTIONS, READ_ONLY_POLICY
from tools.dryrun.world import load_world
from tools.localaws import LocalResources, provision, put_secrets, to_dynamo

pytestmark = pytest.mark.integration

NOW = "2026-11-25T12:00:00Z"
TOKEN = "9f86d081884c7d659a2feaa0c55ad015"
# The operations a read-only replay or snapshot may send; anything else is refused by the proxy and fails the test.
READS = frozenset(
    {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "secretsmanager:GetSecretValue",
    }
)


@pytest.fixture(scope="module")
def account(moto_server: Moto) -> LocalResources:
    """moto's server holding the examples' world, as if it were the production account."""
    moto_server.reset()
    resources = provision(moto_server.client("dynamodb"), moto_server.client("sqs"))
    world = load_world(WORLD)
    populate(world, DynamoTables(moto_server.client("dynamodb")), resources)
    put_secrets(moto_server.client("secretsmanager"), {name: json.loads(v) for name, v in world.secrets.items()})
    return resources


@pytest.fixture
def proxy(moto_server: Moto) -> Iterator[RecordingProxy]:
    with recording_proxy(moto_server.endpoint, READS) as running:
        yield running


def run(module: str, *args: str | Path, resources: LocalResources) -> subprocess.CompletedProcess[str]:
    return run_module(module, *args, env=without_settings(base_env(**resources.environment())))


def table_rows(moto_server: Moto, resources: LocalResources) -> dict[str, list[Any]]:
    dynamodb = moto_server.client("dynamodb")
    return {
        table: sorted(dynamodb.scan(TableName=table)["Items"], key=json.dumps)
        for table in (resources.conversations_table, resources.stage_table, resources.lock_table)
    }


def by_source(stdout: str) -> dict[str, dict[str, Any]]:
    return {r["source"].removeprefix("examples/events/"): r for r in map(json.loads, stdout.splitlines())}


def test_a_live_replay_only_reads_and_still_sees_its_own_writes(
    moto_server: Moto, account: LocalResources, proxy: RecordingProxy, tmp_path: Path
) -> None:
    candidate = greeting_rules(tmp_path)
    before = table_rows(moto_server, account)
    args = ("--backend", "live", "--endpoint-url", proxy.url, "--now", NOW, "--json")
    done = run("tools.dryrun.cli", *args, "examples/events", resources=account)
    assert done.returncode == 0, done.stderr
    compared = run(
        "tools.dryrun.cli",
        *args,
        "--rules",
        candidate,
        "--baseline-rules",
        "rules",
        "examples/events",
        resources=account,
    )
    assert compared.returncode == 0, compared.stderr
    # Only reads crossed the wire, and every one of them is in the documented read-only policy.
    assert proxy.refused == []
    assert set(proxy.operations) <= READS <= READ_ONLY_ACTIONS
    assert {"dynamodb:Query", "dynamodb:GetItem", "secretsmanager:GetSecretValue"} <= set(proxy.operations)
    assert table_rows(moto_server, account) == before
    # The overlay: later events see earlier events' planned writes.
    records = by_source(done.stdout)
    burst = [records[f"08_burst.jsonl#{n}"] for n in range(3)]
    assert [r["outcome"] for r in burst] == ["QUEUED", "BATCHED", "BATCHED"]
    assert burst[1]["actions"][1]["condition_failed"] is True  # the lock the first one planned is held
    assert records["10_lock_held.json"]["outcome"] == "BATCHED"  # a lock row that exists in the account
    assert records["11_redelivered.json"]["actions"][0].get("condition_failed") is True
    assert TOKEN not in done.stdout + done.stderr
    # The probe over the live overlay: the rule change and its knock-on are told apart.
    kinds = {source: r["change_kind"] for source, r in by_source(compared.stdout).items() if r["changed"]}
    assert kinds == {"08_burst.jsonl#0": "changed", "08_burst.jsonl#1": "knock_on"}


def test_a_snapshot_replays_offline_to_the_live_decisions(
    moto_server: Moto, account: LocalResources, proxy: RecordingProxy, tmp_path: Path
) -> None:
    live = run(
        "tools.dryrun.cli", "--endpoint-url", proxy.url, "--now", NOW, "--json", "examples/events", resources=account
    )
    full, shared = tmp_path / "full.json", tmp_path / "shared.json"
    snap = ("snapshot", "--endpoint-url", proxy.url, "--now", NOW, "examples/events")
    kept = run("tools.dryrun.world_cli", *snap, "--mask", "none", "--keep-secrets", "-o", full, resources=account)
    assert kept.returncode == 0, kept.stderr
    masked = run("tools.dryrun.world_cli", *snap, "-o", shared, resources=account)
    assert masked.returncode == 0, masked.stderr
    assert proxy.refused == [] and set(proxy.operations) <= READS
    assert "secret ai-multi-comms/whatsapp-credentials/globex/sales/twilio-prod could not be read" in masked.stderr
    # The full snapshot replays offline exactly as the live replay decided.
    offline = run(
        "tools.dryrun.cli", "--world", full, "--backend", "memory", "--json", "examples/events", resources=account
    )
    assert offline.returncode == 0, offline.stderr
    keep = ("outcome", "target", "actions", "response", "signature")
    assert {s: {k: r[k] for k in keep} for s, r in by_source(offline.stdout).items()} == {
        s: {k: r[k] for k in keep} for s, r in by_source(live.stdout).items()
    }
    # The shared one holds no credential or message text, and replays with --skip-signature.
    text = shared.read_text()
    assert TOKEN not in text and "Hi Alice, how can I help?" not in text and '"redacted"' in text
    world = json.loads(text)
    assert (len(world["conversations"]), len(world["locks"]), len(world["stage"])) == (11, 3, 1)
    replayed = run(
        "tools.dryrun.cli",
        "--world",
        shared,
        "--backend",
        "memory",
        "--skip-signature",
        "--json",
        "examples/events",
        resources=account,
    )
    assert replayed.returncode == 0, replayed.stderr
    outcomes = {s: r["outcome"] for s, r in by_source(replayed.stdout).items()}
    assert (
        outcomes["08_burst.jsonl#1"] == "BATCHED" and outcomes["04_locked_conversation.json"] == "CONVERSATION_LOCKED"
    )


def test_a_snapshot_holds_the_replay_records_so_an_offline_replay_refuses_the_same_replays(
    moto_server: Moto, account: LocalResources, proxy: RecordingProxy, tmp_path: Path
) -> None:
    # Production accepted a WhatsApp message (replay after its 30 s grace) and an email (confirmed) before NOW.
    events = tmp_path / "events"
    events.mkdir()
    shutil.copy(ROOT / "examples" / "events" / "01_whatsapp_text.json", events / "a.json")
    email_line = (ROOT / "examples" / "events" / "13_email.jsonl").read_text().splitlines()[0]
    (events / "b.json").write_text(email_line)
    sids = [replay_key(json.loads((events / name).read_text())) for name in ("a.json", "b.json")]
    accepted = 1795607996  # one second after the email's signature, four before NOW
    records = [
        {"message_sid": sids[0], "recorded_at": accepted - 60, "replay_after": accepted - 30},
        {"message_sid": sids[1], "recorded_at": accepted, "state": "confirmed", "confirmed_at_ms": accepted * 1000},
    ]
    dynamodb = moto_server.client("dynamodb")
    for record in records:
        item = {**record, "expires_at": accepted + 604800}
        dynamodb.put_item(TableName=account.replay_table, Item=to_dynamo(item))
    full = tmp_path / "full.json"
    try:
        live = run("tools.dryrun.cli", "--endpoint-url", proxy.url, "--now", NOW, "--json", events, resources=account)
        snap = ("snapshot", "--endpoint-url", proxy.url, "--now", NOW, "--mask", "none", "--keep-secrets", events)
        kept = run("tools.dryrun.world_cli", *snap, "-o", full, resources=account)
    finally:
        for sid in sids:
            dynamodb.delete_item(TableName=account.replay_table, Key=to_dynamo({"message_sid": sid}))
    assert live.returncode == 0 and kept.returncode == 0, live.stderr + kept.stderr
    assert proxy.refused == [] and set(proxy.operations) <= READS
    world = json.loads(full.read_text())
    assert sorted(row["message_sid"] for row in world["replay"]) == sorted(sids)
    assert "2 replay" in kept.stderr
    offline = run("tools.dryrun.cli", "--world", full, "--backend", "memory", "--json", events, resources=account)
    assert offline.returncode == 0, offline.stderr
    outcomes = [json.loads(line)["outcome"] for line in live.stdout.splitlines()]
    assert outcomes == ["REPLAY", "REPLAY"]
    assert [json.loads(line)["outcome"] for line in offline.stdout.splitlines()] == outcomes


def test_a_snapshot_of_a_users_conversations(account: LocalResources, proxy: RecordingProxy, tmp_path: Path) -> None:
    target = tmp_path / "alice.json"
    done = run(
        "tools.dryrun.world_cli",
        *("snapshot", "--endpoint-url", proxy.url, "--user", "+447700900101", "--mask", "none", "-o", target),
        resources=account,
    )
    assert done.returncode == 0, done.stderr
    assert proxy.refused == [] and set(proxy.operations) <= READS
    world = json.loads(target.read_text())
    assert [item["primary_channel"] for item in world["conversations"]] == ["+447700900101"]
    assert [lock["conversation_id"] for lock in world["locks"]] == [world["conversations"][0]["conversation_id"]]
    assert world["secrets"][world["conversations"][0]["channel_config"]["whatsapp_credentials_id"]] == {
        "twilio_account_sid": "AC5ef8732a3c49700934481addd5ce1659",
        "twilio_auth_token": "redacted",
    }


def test_the_documented_read_only_policy_is_the_one_the_code_names() -> None:
    docs = (ROOT / "docs" / "dry-run.md").read_text()
    match = re.search(r"<!-- read-only-policy -->\s*```json\n(.*?)```", docs, re.S)
    assert match is not None, "docs/dry-run.md shows the read-only policy"
    assert json.loads(match.group(1)) == READ_ONLY_POLICY
    actions = {
        action
        for statement in READ_ONLY_POLICY["Statement"]
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }
    assert actions == READ_ONLY_ACTIONS and all(s["Effect"] == "Allow" for s in READ_ONLY_POLICY["Statement"])
