from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

# Fake credentials and a region for every boto3 client the tests create; never a real account.
for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)

from moto import mock_aws  # noqa: E402

from engine.localaws import provision  # noqa: E402
from tests.support.world import World  # noqa: E402


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """An in-process moto world with the contract's resources, and the Lambda environment pointing at it."""
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        secretsmanager = boto3.client("secretsmanager")
        resources = provision(dynamodb, sqs)
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("BATCH_WINDOW_SECONDS", "10")
        yield World(dynamodb, sqs, secretsmanager, resources)


@pytest.fixture
def lambda_handler(world: World) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """``handler.handler`` on a fresh container (configuration reloaded, empty secret cache)."""
    import handler

    handler.reload()
    return handler.handler
