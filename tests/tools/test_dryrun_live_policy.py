"""The read-only promise under IAM: the documented policy is enough for every read command, and nothing it does not
use; a write that escaped the replay's plan is refused and its event said to be undecided.

Moto enforces IAM actions (not DynamoDB or Secrets Manager resources), so each AWS call the tools make is also
recorded, with the resource IAM would check, and compared with the policy's statements filled in for the account.
"""

from __future__ import annotations

import fnmatch
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from tests.support.aws import iam_user
from tools.dryrun.cli import build_parser
from tools.dryrun.live import READ_ONLY_POLICY, AccountAccess
from tools.dryrun.replay import run_replay
from tools.dryrun.world_cli import main as world_cli

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "examples" / "events"
NOW = "2026-11-25T12:00:00Z"
REGION, ACCOUNT = "us-east-1", "123456789012"
SECTIONS = {"conversations": "ConversationsTable", "stage": "StageTable", "lock": "LockTable", "replay": "ReplayTable"}
Call = tuple[str, str]  # (IAM action, the resource's ARN)


def _policy_actions() -> list[str]:
    return sorted({action for statement in READ_ONLY_POLICY["Statement"] for action in _listed(statement["Action"])})


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _calls(service: str, operation: str, params: dict[str, Any]) -> list[Call]:
    """The (action, resource ARN) pairs IAM checks for one call (BatchGetItem: one per table)."""
    action = f"{service}:{operation}"
    if service == "secretsmanager":
        return [(action, f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{params['SecretId']}-AbCdEf")]
    tables = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {}))
    index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
    return [(action, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}{index}") for table in tables]


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict[str, str], list[Call], dict[str, str]]]:
    """The example world in moto, IAM enforced, read by a user allowed the policy's actions only.

    Yields the tables by world section, the calls made through the tools' account sessions, and an admin's key.
    """
    from runtime.aws import DynamoTables
    from tools.dryrun.backends import populate
    from tools.dryrun.world import load_world
    from tools.localaws import provision, put_secrets

    calls: list[Call] = []
    opened = AccountAccess.session

    def recording_session(self: AccountAccess) -> Any:
        session = opened(self)

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.extend(_calls(model.service_model.signing_name, model.name, params))

        session.events.register("before-parameter-build", record)
        return session

    monkeypatch.setattr(AccountAccess, "session", recording_session)
    with set_initial_no_auth_action_count(6)(mock_aws)():  # the calls that make the two users; then IAM decides
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        iam = boto3.client("iam")
        admin, reader = iam_user(iam, "admin", ["*"]), iam_user(iam, "reader", _policy_actions())
        world = load_world(ROOT / "examples" / "world.yaml")
        resources = provision(boto3.client("dynamodb", **admin), boto3.client("sqs", **admin))
        populate(world, DynamoTables(boto3.client("dynamodb", **admin)), resources)
        put_secrets(boto3.client("secretsmanager", **admin), dict(world.secrets))
        for name, value in {**resources.environment(), **{k.upper(): v for k, v in reader.items()}}.items():
            monkeypatch.setenv(name, value)
        yield dict(resources.tables), calls, admin


def _replay(*args: str | Path, status: int = 0) -> tuple[list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    done = run_replay(build_parser().parse_args([str(EVENTS), "--json", *map(str, args)]), out=out, err=err)
    assert done == status, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def _granted(tables: dict[str, str]) -> list[Call]:
    """The policy's (action, ARN pattern) pairs, filled in for this account and its tables."""
    # The policy names the tables the tools read; a table only a step writes (a new step's) has no placeholder, and a
    # read of one would be a call no grant covers.
    named = {f"${{{SECTIONS[s]}}}": t for s, t in tables.items() if s in SECTIONS}
    fill = {"${Region}": REGION, "${Account}": ACCOUNT, **named}
    pairs: list[Call] = []
    for statement in READ_ONLY_POLICY["Statement"]:
        for resource in _listed(statement["Resource"]):
            for placeholder, value in fill.items():
                resource = resource.replace(placeholder, value)
            pairs += [(action, resource) for action in _listed(statement["Action"])]
    return pairs


def _covers(grant: Call, call: Call) -> bool:
    return grant[0] == call[0] and fnmatch.fnmatchcase(call[1], grant[1])


def test_every_read_command_works_with_the_documented_policy_which_grants_only_what_they_use(
    account: tuple[dict[str, str], list[Call], dict[str, str]], tmp_path: Path
) -> None:
    """Defect: the policy granted Query on the stage, lock and replay tables, BatchGetItem on the stage and lock
    tables, and GetItem, BatchGetItem and DescribeTable on the conversations' indexes: nothing reads them so."""
    tables, calls, _ = account
    decided, _ = _replay("--now", NOW)
    by_source = {Path(record["source"]).name: record for record in decided}
    assert by_source["08_burst.jsonl#1"]["outcome"] == "BATCHED"
    assert by_source["13_email.jsonl#0"]["outcome"] == "QUEUED"
    assert by_source["03_handoff.json"]["outcome"] == "HANDED_OFF"
    _replay("--baseline-rules", "rules", "--independent", "--explain")
    _replay("--skip-signature", "--report", tmp_path / "report.html")
    arrived, _ = _replay()
    assert not [note for record in (*decided, *arrived) for note in record["notes"] if "not decided" in note]
    for args in (["--now", NOW, str(EVENTS)], ["--user", "+447700900101"]):
        out, err = io.StringIO(), io.StringIO()
        assert world_cli(["snapshot", *args, "-o", str(tmp_path / "world.json")], out=out, err=err) == 0, err.getvalue()

    granted = _granted(tables)
    assert sorted({call for call in calls if not any(_covers(grant, call) for grant in granted)}) == []
    unused = [grant for grant in granted if not any(_covers(grant, call) for call in calls)]
    assert unused == [], unused


def test_a_write_that_escapes_the_plan_is_refused_and_leaves_its_event_undecided(
    account: tuple[dict[str, str], list[Call], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: a write that reached the account's client (a new port method, say) was refused, but where the pipeline
    swallows a failed write (the record of a refused message), the event was reported as decided
    (CONVERSATION_LOCKED, PROJECT_INACTIVE) with no note, and --fail-on-change passed."""
    from tools.dryrun.recording import PlanningTables

    def leaking_put(self: Any, table: str, item: Any, condition: Any = None) -> bool:
        return bool(self._inner.put_item(table, item, condition))  # the overlay bypassed: straight to the client

    tables, _, as_admin = account
    monkeypatch.setattr(PlanningTables, "put_item", leaking_put)
    admin = boto3.client("dynamodb", **as_admin)
    written = {name: admin.scan(TableName=name)["Count"] for name in tables.values()}
    records, err = _replay("--now", NOW)
    assert "ReadOnlyViolation" in err
    by_source = {Path(record["source"]).name: record for record in records}
    refused = "not decided: the replay refused a write that bypassed its plan (dynamodb:PutItem; nothing was sent)"
    for source in ("01_whatsapp_text.json", "04_locked_conversation.json", "05_inactive_project.json"):
        assert any(note.startswith(refused) for note in by_source[source]["notes"]), by_source[source]
    assert not any(note.startswith(refused) for note in by_source["06_bad_signature.json"]["notes"])
    assert {name: admin.scan(TableName=name)["Count"] for name in tables.values()} == written
    _, err = _replay("--now", NOW, "--baseline-rules", "rules", "--fail-on-change", status=2)
    assert "not decided" in err


def plugin_writing_with_its_own_client(
    account: tuple[dict[str, str], list[Call], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> Callable[[], int]:
    """Make twilio.parse write a stage row with a boto3 client of its own, under credentials that could write; the
    stage table's row count, read as an admin, is returned."""
    from steps.twilio.parse import TwilioParse

    tables, _, as_admin = account
    stage = tables["stage"]
    parse = TwilioParse.run

    def run_with_its_own_client(self: TwilioParse, ctx: Any) -> Any:
        own = boto3.session.Session().client("dynamodb")
        own.put_item(TableName=stage, Item={"conversation_id": {"S": "plugin"}, "message_sid": {"S": "SMplugin"}})
        return parse(self, ctx)

    monkeypatch.setattr(TwilioParse, "run", run_with_its_own_client)
    for name, value in as_admin.items():  # credentials that could write
        monkeypatch.setenv(name.upper(), value)
    admin = boto3.client("dynamodb", **as_admin)
    return lambda: int(admin.scan(TableName=stage)["Count"])


def test_a_step_with_its_own_aws_client_cannot_write_during_a_live_replay_whatever_the_credentials(
    account: tuple[dict[str, str], list[Call], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: only the replay's own clients refused writes; a plugin step that made its own boto3 client (against
    docs/extending.md's advice, but nothing stops it) wrote to the live account when the credentials allowed it."""
    stage_rows = plugin_writing_with_its_own_client(account, monkeypatch)
    before = stage_rows()
    records, err = _replay("--now", NOW)
    assert stage_rows() == before
    assert "ReadOnlyViolation" in err
    whatsapp = next(record for record in records if record["source"].endswith("01_whatsapp_text.json"))
    refused = "not decided: the replay refused a write that bypassed its plan (dynamodb:PutItem; nothing was sent)"
    assert whatsapp["outcome"] == "INTERNAL_ERROR"
    assert any(note.startswith(refused) for note in whatsapp["notes"]), whatsapp["notes"]
    email = next(record for record in records if record["source"].endswith("13_email.jsonl#0"))
    assert email["outcome"] == "QUEUED" and email["notes"] == []


def test_a_step_with_its_own_aws_client_cannot_write_during_a_snapshot_whatever_the_credentials(
    account: tuple[dict[str, str], list[Call], dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The snapshot runs the same steps as the live replay, so every client of the process is guarded there too: a
    plugin step's own client writes nothing, whatever the credentials allow (docs/dry-run.md)."""
    stage_rows = plugin_writing_with_its_own_client(account, monkeypatch)
    before = stage_rows()
    out, err = io.StringIO(), io.StringIO()
    status = world_cli(["snapshot", "--now", NOW, str(EVENTS), "-o", str(tmp_path / "world.json")], out=out, err=err)
    assert status == 0, err.getvalue()
    assert stage_rows() == before
