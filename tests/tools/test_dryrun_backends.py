"""The memory world answers exactly as the moto world: identical replay output, event for event.

Replays run in this process (``run_replay``); step timings (``ms``) are the only thing left out of the
comparison.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.dryrun import EVENTS, PIPELINE_SETTINGS, ROOT, WORLD, replay_key, run_dryrun
from tests.support.world import World
from tools.dryrun.capture import world_document
from tools.dryrun.corpus import Mix, generate_corpus
from tools.dryrun.events import load_events
from tools.dryrun.world import load_world

EXAMPLES = [str(WORLD), str(EVENTS)]


def replay(world: str, events: str, *options: str) -> list[dict[str, Any]]:
    """The ``--json`` records of a replay, without step timings."""
    records = [json.loads(line) for line in run_dryrun("--world", world, "--json", *options, events).splitlines()]
    for record in records:
        for entry in record["trace"]:
            assert isinstance(entry.pop("ms"), float)
    return records


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PIPELINE_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("options", [(), ("--independent", "--skip-signature", "--show-data")])
def test_examples_replay_the_same_on_moto_and_memory(options: tuple[str, ...]) -> None:
    moto = replay(*EXAMPLES, "--backend", "moto", *options)
    memory = replay(*EXAMPLES, "--backend", "memory", *options)
    assert len(moto) == 18  # 11 files of one event, one of two, two .jsonl files of three
    assert memory == moto
    assert replay(*EXAMPLES, "--backend", "memory", "--jobs", "3", *options) == moto  # emails as well


def test_a_worlds_replay_records_make_replays_on_both_backends(tmp_path: Path) -> None:
    # The world's time is 2026-11-25T12:00:00Z: the WhatsApp message's grace and the email's confirmation are past.
    whatsapp = load_events([EVENTS / "01_whatsapp_text.json"])[0].event
    email = load_events([EVENTS / "13_email.jsonl"])[0].event
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(whatsapp) + "\n" + json.dumps(email) + "\n")
    document = world_document(load_world(WORLD))
    document["replay"] = [
        {"message_sid": replay_key(whatsapp), "recorded_at": 1795607900, "replay_after": 1795607930},
        {"message_sid": replay_key(email), "state": "confirmed", "confirmed_at_ms": 1795607996000},
    ]
    world = tmp_path / "world.json"
    world.write_text(json.dumps(document))
    moto = replay(str(world), str(events), "--backend", "moto")
    assert [record["outcome"] for record in moto] == ["REPLAY", "REPLAY"]
    assert replay(str(world), str(events), "--backend", "memory") == moto
    # Without the records, the same events are accepted.
    assert [record["outcome"] for record in replay(*EXAMPLES[:1], str(events), "--backend", "memory")] == [
        "QUEUED",
        "QUEUED",
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    # Moto takes tens of milliseconds an event, so the corpus is modest unless DRYRUN_LARGE_CORPUS is set
    # (then the benchmark's size: 1,000 conversations, 10,000 events; about 20 minutes on moto).
    conversations, events_count = (1000, 10_000) if os.environ.get("DRYRUN_LARGE_CORPUS") else (30, 120)
    mix = Mix(handoff=0.15, auto_queue=0.1, inactive=0.1, locked=0.1, sms_only=0.1, bad_signature=0.05)
    corpus = generate_corpus(conversations, events_count, seed=11, mix=mix)
    world, events = corpus.write(tmp_path_factory.mktemp("corpus"))
    return str(world), str(events)


def test_a_generated_corpus_replays_the_same_on_moto_memory_and_several_processes(corpus: tuple[str, str]) -> None:
    moto = replay(*corpus, "--backend", "moto")
    memory = replay(*corpus, "--backend", "memory", "--jobs", "1")
    assert memory == moto
    assert replay(*corpus, "--backend", "memory", "--jobs", "3") == moto
    outcomes = {record["outcome"] for record in moto}
    assert {"QUEUED", "BATCHED", "HANDED_OFF", "INVALID_SIGNATURE", "CONVERSATION_LOCKED"} <= outcomes


def test_independent_replays_undo_every_write_on_both_backends(corpus: tuple[str, str]) -> None:
    world, events = corpus
    moto = replay(world, events, "--backend", "moto", "--independent")
    assert replay(world, events, "--backend", "memory", "--independent", "--jobs", "2") == moto
    # Against the world as loaded (no locks), every accepted channel message triggers.
    assert "BATCHED" not in {record["outcome"] for record in moto}


def test_a_baseline_flips_the_events_the_changed_rule_decided(corpus: tuple[str, str], tmp_path: Path) -> None:
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    routing = rules / "40_routing.yaml"
    routing.write_text(routing.read_text().replace("conversation.hand_off_to_human == `true`", "`false`"))
    world, events = corpus
    baseline = replay(world, events, "--backend", "memory")
    compared = replay(
        world, events, "--backend", "memory", "--rules", str(rules), "--baseline-rules", str(ROOT / "rules")
    )
    for before, after in zip(baseline, compared, strict=True):
        assert (after["baseline_outcome"], after["baseline_target"]) == (before["outcome"], before["target"])
        decided_by_the_rule = any(rule["rule"] == "hand_off_to_human" and rule["matched"] for rule in before["rules"])
        assert after["changed"] == decided_by_the_rule
        assert after["changed"] == (after["change"] is not None)
    assert any(record["changed"] for record in compared)


@pytest.mark.parametrize("backend", ["moto", "memory"])
def test_a_world_replay_opens_no_connection_whatever_the_environment_points_at(
    backend: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A profile, an endpoint and credentials that would reach an account: a world replay must reach none of them.
    import socket

    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://dynamodb.eu-west-1.amazonaws.com")
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError(f"a world replay opened a connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    report = tmp_path / "review.html"
    options = ("--backend", backend, "--baseline-rules", str(ROOT / "rules"), "--report", str(report))
    records = replay(*EXAMPLES, *options)
    assert len(records) == 18 and report.is_file()
    assert attempts == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["review.html"]  # the one file asked for


LONG = "12345678901234567890.123"


@pytest.mark.parametrize("options", [(), ("--show-data",)])
def test_numbers_a_float_cannot_hold_reach_the_handoff_the_same_on_both_backends(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    # A JSON world writes the numbers DynamoDB holds (38 significant digits): both backends hand them off whole.
    document = world_document(load_world(WORLD))
    [conversation] = [row for row in document["conversations"] if row.get("hand_off_to_human") is True]
    conversation["balance"] = "@LONG@"
    conversation["ai_config"] = {"limits": ["@LONG@", 0.5], "tiny": "@TINY@"}
    world = tmp_path / "world.json"
    text = json.dumps(document).replace('"@LONG@"', LONG).replace('"@TINY@"', "-1.2345678901234567890123456789E-100")
    world.write_text(text)
    events = str(EVENTS / "03_handoff.json")
    moto = run_dryrun("--world", world, "--json", "--backend", "moto", *options, events).splitlines()
    memory = run_dryrun("--world", world, "--json", "--backend", "memory", *options, events).splitlines()
    assert [json.loads(line)["outcome"] for line in moto] == ["HANDED_OFF"]
    [body] = [action["body"] for action in json.loads(moto[0])["actions"] if action["type"] == "send_message"]
    assert f'"balance":{LONG}' in body
    assert f'"limits":[{LONG},0.5],"tiny":-1.2345678901234567890123456789E-100' in body
    strip = [{**json.loads(line), "trace": None} for line in moto]
    assert [{**json.loads(line), "trace": None} for line in memory] == strip


def test_a_moto_world_is_refused_beside_moto_active_in_this_process_which_it_leaves_as_it_was(world: World) -> None:
    # moto already active in this process (a test's, a notebook's) with the Lambda's tables: the dry-run's world would
    # be that moto's, its rows and messages written among theirs (and theirs read as the world's). It is refused.
    import io

    from tools.dryrun.cli import build_parser
    from tools.dryrun.replay import run_replay

    world.add_conversation()
    world.add_default_secrets()
    tables = (world.resources.conversations_table, world.resources.stage_table, world.resources.lock_table)
    before = {table: world._scan(table) for table in (*tables, world.resources.replay_table)}
    out, err = io.StringIO(), io.StringIO()

    args = build_parser().parse_args(["--world", str(WORLD), "--json", str(EVENTS)])
    status = run_replay(args, out=out, err=err)

    assert status == 2 and out.getvalue() == ""
    assert "moto is already active in this process" in err.getvalue() and "--backend memory" in err.getvalue()
    assert {table: world._scan(table) for table in before} == before
    assert world.all_sent() == {"whatsapp": [], "sms": [], "handoff": [], "email": []}
    # The test's own tables only (every table the pipelines keep, a new step's too): the dry-run made none there.
    assert sorted(world.dynamodb.list_tables()["TableNames"]) == sorted(world.resources.tables.values())
    # The memory world is the dry-run's own: it replays there as anywhere.
    assert len(replay(*EXAMPLES, "--backend", "memory")) == 18
    assert {table: world._scan(table) for table in before} == before
