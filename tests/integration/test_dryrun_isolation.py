"""``pipeline-dryrun --world`` (moto, the default backend) beside a moto that is in use: no side effects on it.

A developer's local AWS is often moto's server (``pipeline-serve --endpoint-url``, or a test suite's), and moto's own
variables (``TEST_SERVER_MODE`` and ``TEST_PROXY_MODE`` with their endpoints, ``MOTO_ACCOUNT_ID``) may be set in
the shell that runs the dry-run. The dry-run's world is its own, in its process: run as ops run it, it decides the
examples as without those variables and leaves the server's tables, queues and secrets exactly as they were.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime.aws import DynamoTables
from tests.integration.conftest import Moto, base_env
from tests.support.dryrun import EVENTS, WORLD, run_module, without_settings
from tools.dryrun.backends import populate
from tools.dryrun.world import load_world
from tools.localaws import LocalResources, provision, put_secrets

pytestmark = pytest.mark.integration


def _state(moto_server: Moto, resources: LocalResources) -> dict[str, Any]:
    """Every row of the server's tables, every message of its queues, its secrets' names."""
    dynamodb, sqs = moto_server.client("dynamodb"), moto_server.client("sqs")
    tables = {
        table: sorted(json.dumps(item, sort_keys=True) for item in dynamodb.scan(TableName=table)["Items"])
        for table in dynamodb.list_tables()["TableNames"]
    }
    queues = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        for url in resources.queues
    }
    secrets = sorted(secret["Name"] for secret in moto_server.client("secretsmanager").list_secrets()["SecretList"])
    return {"tables": tables, "queues": queues, "secrets": secrets}


def _outcomes(stdout: str) -> list[tuple[str, str, list[Any]]]:
    return [(r["source"], r["outcome"], r["actions"]) for r in map(json.loads, stdout.splitlines())]


ARGS = ("tools.dryrun.cli", "--world", WORLD, "--json", "--show-data", EVENTS)


@pytest.fixture(scope="module")
def plain() -> str:
    """The examples' replay in an environment that says nothing of moto."""
    done = run_module(*ARGS, env=without_settings(base_env()))
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "variables",
    [
        {"TEST_SERVER_MODE": "true", "TEST_SERVER_MODE_ENDPOINT": "{endpoint}"},
        {"TEST_PROXY_MODE": "true", "TEST_PROXY_MODE_ENDPOINT": "{endpoint}"},
        {"MOTO_ACCOUNT_ID": "111122223333"},
    ],
    ids=["server-mode", "proxy-mode", "account"],
)
def test_a_dryrun_leaves_a_moto_server_in_use_as_it_was_whatever_motos_variables_say(
    moto_server: Moto, plain: str, variables: dict[str, str]
) -> None:
    moto_server.reset()
    resources = provision(moto_server.client("dynamodb"), moto_server.client("sqs"))
    world = load_world(WORLD)
    populate(world, DynamoTables(moto_server.client("dynamodb")), resources)
    put_secrets(moto_server.client("secretsmanager"), {name: json.loads(v) for name, v in world.secrets.items()})
    before = _state(moto_server, resources)
    assert before["tables"][resources.conversations_table]

    env = {name: value.format(endpoint=moto_server.endpoint) for name, value in variables.items()}
    beside = run_module(*ARGS, env=without_settings(base_env(**env)))

    assert beside.returncode == 0, beside.stderr[-2000:]
    assert _outcomes(beside.stdout) == _outcomes(plain)
    assert len(_outcomes(beside.stdout)) == 18
    assert _state(moto_server, resources) == before
