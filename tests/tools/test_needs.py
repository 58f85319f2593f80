"""``tools.needs``: the tables, GSIs and queues local AWS holds come from the pipelines, not from a list in tools/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from engine.envsubst import ENV_REFERENCE
from engine.errors import ConfigError
from engine.yamlsource import load_yaml
from tests.support.dryrun import ROOT, WORLD, run_dryrun
from tests.support.plugins import STATUS_PLUGIN, plugin_loaded, write_status_events
from tests.support.shipped import pipeline_channels, pipeline_paths
from tools.dryrun.blueprint import blueprint
from tools.localaws import MissingResource, local_resources, missing_resources, provision
from tools.needs import IndexNeed, pipeline_needs, shipped_needs

EMAIL = ROOT / "pipelines" / "email_inbound.yaml"
STATUS = ROOT / "tests" / "fixtures" / "status_webhook"
LETTERS_INDEX = IndexNeed("company-letters-index", "gsi_company_email_address", "gsi_recipient_email")


def lookups(path: Path) -> list[dict[str, Any]]:
    """The ``indexes:`` entries of a pipeline's lookup steps, as written."""
    steps = load_yaml(path).data["steps"]
    return [
        index
        for step in steps
        if step.get("uses") == "conversations.lookup"
        for index in step["with"]["indexes"].values()
    ]


def variant(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    """A copy of the email pipeline with ``replacements`` made in its text."""
    text = EMAIL.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "pipelines" / "email_inbound.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def letters(tmp_path: Path) -> Path:
    """The email pipeline querying an index and sending to a queue that no other pipeline names."""
    return variant(
        tmp_path,
        ("index: company-email-address-recipient-email-index", f"index: {LETTERS_INDEX.name}"),
        ("${env:EMAIL_QUEUE_URL:-}", "${env:LETTERS_QUEUE_URL:-}"),
    )


def test_the_needs_are_those_of_the_pipelines_in_the_working_directory(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / EMAIL.name).write_bytes(EMAIL.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert set(shipped_needs().channels) == {"email"}
    monkeypatch.chdir(ROOT)
    assert sorted(shipped_needs().channels) == pipeline_channels()


def test_the_shipped_pipelines_give_every_index_their_lookups_query_and_the_contract_variables() -> None:
    needs = shipped_needs()
    (conversations,) = [table for table in needs.tables if table.role == "conversations"]
    declared = {
        IndexNeed(i["index"], i["company_key"], i["user_key"]) for path in pipeline_paths() for i in lookups(path)
    }
    assert set(conversations.indexes) == declared
    # The contract's tables (and the replay table) by their variables; a table a new step keeps by the variable its
    # pipeline's tables: entry reads.
    named = {
        role: reference.group(1)
        for path in pipeline_paths()
        for role, value in load_yaml(path).data["tables"].items()
        if (reference := ENV_REFERENCE.fullmatch(str(value)))
    }
    assert {table.role: table.env for table in needs.tables} == {
        **named,
        "conversations": "CONVERSATIONS_TABLE_NAME",
        "stage": "STAGE_TABLE_NAME",
        "lock": "LOCK_TABLE_NAME",
        "replay": "REPLAY_TABLE_NAME",
    }
    assert {"WHATSAPP_QUEUE_URL", "SMS_QUEUE_URL", "HANDOFF_QUEUE_URL", "EMAIL_QUEUE_URL"} <= {
        queue.env for queue in needs.queues
    }
    channels = {channel: lookup.credentials_attribute for channel, lookup in needs.channels.items()}
    assert channels["whatsapp"] == "whatsapp_credentials_id" and channels["email"] == "email_credentials_id"


def test_the_local_names_stay_those_world_files_and_tests_know() -> None:
    resources = local_resources(lambda name: f"https://queues/{name}")
    assert (resources.conversations_table, resources.stage_table, resources.lock_table, resources.replay_table) == (
        "conversations",
        "conversations-stage",
        "conversations-trigger-lock",
        "conversations-replay",
    )
    assert resources.whatsapp_queue_url == "https://queues/whatsapp"
    assert resources.email_queue_url == "https://queues/email"
    assert resources.environment()["HANDOFF_QUEUE_URL"] == "https://queues/handoff"


def test_a_new_pipelines_index_and_queue_are_provisioned_with_no_tools_edit(tmp_path: Path) -> None:
    needs = pipeline_needs([letters(tmp_path)])
    with mock_aws():
        dynamodb, sqs = boto3.client("dynamodb", "us-east-1"), boto3.client("sqs", "us-east-1")
        resources = provision(dynamodb, sqs, "t-", needs)
        table = dynamodb.describe_table(TableName=resources.conversations_table)["Table"]
        assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == [LETTERS_INDEX.name]
        url = resources.environment()["LETTERS_QUEUE_URL"]
        assert url.endswith("/t-letters") and url in sqs.list_queues()["QueueUrls"]
        assert missing_resources(dynamodb, sqs, resources.environment(), needs) == []
    assert "EMAIL_QUEUE_URL" not in resources.environment()
    with pytest.raises(MissingResource, match="no pipeline reads a table name or queue URL from WHATSAPP_QUEUE_URL"):
        _ = resources.whatsapp_queue_url
    schemas = blueprint("t-", needs)[1]
    assert LETTERS_INDEX.name in schemas["t-conversations"].indexes


def test_provisioning_again_adds_the_index_a_new_pipeline_queries_and_a_lacking_one_is_named(tmp_path: Path) -> None:
    with mock_aws():
        dynamodb, sqs = boto3.client("dynamodb", "us-east-1"), boto3.client("sqs", "us-east-1")
        resources = provision(dynamodb, sqs)
        needs = pipeline_needs([*pipeline_paths(), letters(tmp_path)])
        env = {**resources.environment(), "LETTERS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/gone"}
        assert missing_resources(dynamodb, sqs, env, needs) == [
            "table 'conversations' (CONVERSATIONS_TABLE_NAME) has no index 'company-letters-index' (hash "
            "gsi_company_email_address, range gsi_recipient_email), which a conversations.lookup step queries",
            "queue https://sqs.us-east-1.amazonaws.com/123456789012/gone (LETTERS_QUEUE_URL) does not exist",
        ]
        provision(dynamodb, sqs, needs=needs)
        indexes = dynamodb.describe_table(TableName="conversations")["Table"]["GlobalSecondaryIndexes"]
        assert LETTERS_INDEX.name in {index["IndexName"] for index in indexes}


def test_a_world_holds_the_index_of_the_pipeline_replayed(tmp_path: Path) -> None:
    """Before: every event of a pipeline querying an index not in tools/ ended DB_QUERY_ERROR (ResourceNotFound)."""
    pipeline = letters(tmp_path)
    for backend in ("moto", "memory"):
        out = run_dryrun(
            "--json", "--backend", backend, "--world", WORLD, "--pipeline", pipeline, "examples/events/13_email.jsonl"
        )
        first = json.loads(out.splitlines()[0])
        assert (first["outcome"], first["target"]) == ("QUEUED", "email"), first
        assert first["queue"].endswith("/letters")


def test_contradicting_indexes_and_unknown_table_roles_are_located(tmp_path: Path) -> None:
    other = variant(
        tmp_path / "other",
        ("company_key: gsi_company_email_address", "company_key: gsi_company_letters"),
        ("index: company-email-address-recipient-email-index", "index: company-sms-number-recipient-tel-index"),
    )
    with pytest.raises(ConfigError) as raised:
        pipeline_needs([*pipeline_paths(), other])
    (problem,) = raised.value.problems
    assert problem.file.endswith("email_inbound.yaml") and "index 'company-sms-number-recipient-tel-index'" in str(
        problem
    )
    replay = next(line for line in EMAIL.read_text(encoding="utf-8").splitlines() if line.startswith("  replay: "))
    odd = variant(tmp_path / "odd", (replay, "  outbox: ${env:OUTBOX_TABLE_NAME}"))
    with pytest.raises(ConfigError) as raised:
        pipeline_needs([odd])
    (problem,) = raised.value.problems
    assert "table role 'outbox' has no known key schema" in problem.message and "replay" in problem.message


def test_a_new_step_s_own_table_is_provisioned_and_replayed_with_no_tools_edit(tmp_path: Path) -> None:
    """Before: another role than the built-in ones stopped every tool ("no known key schema (TABLE_ROLES…)")."""
    pipeline = STATUS / "pipelines" / "status_inbound.yaml"
    with plugin_loaded(STATUS_PLUGIN):
        _provisioned_and_replayed(pipeline, tmp_path)


def _provisioned_and_replayed(pipeline: Path, tmp_path: Path) -> None:
    needs = pipeline_needs([pipeline])
    with mock_aws():
        dynamodb, sqs = boto3.client("dynamodb", "us-east-1"), boto3.client("sqs", "us-east-1")
        resources = provision(dynamodb, sqs, "t-", needs)
        name = resources.environment()["STATUS_TABLE_NAME"]
        schema = dynamodb.describe_table(TableName=name)["Table"]["KeySchema"]
        assert schema == [{"AttributeName": "message_sid", "KeyType": "HASH"}]
    events, world = write_status_events(tmp_path)
    rules = STATUS / "rules"
    for backend in ("moto", "memory"):
        out = run_dryrun(
            "--json", "--backend", backend, "--world", world, "--pipeline", pipeline, "--rules", rules, events
        )
        kept, ignored = map(json.loads, out.splitlines())
        assert (kept["outcome"], kept["status_code"]) == ("STATUS_CALLBACK", 200), kept
        (write,) = kept["actions"]
        assert write["type"] == "put_item" and write["item"]["message_sid"] == "m-1", write
        # Its own rule set, which names the pipeline, decides before anything is written.
        assert (ignored["outcome"], ignored["status_code"], ignored["actions"]) == ("STATUS_IGNORED", 422, [])
