"""``tools.dryrun.live``: the read-only policy a live replay needs; clients that cannot write, whatever calls them."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from engine.calls import CallLimits
from engine.config import load_config
from tests.deploy.cfn import load_template, placeholder
from tests.support.expect import ENV, ROOT
from tests.support.shipped import pipeline_paths
from tools.dryrun.live import READ_ONLY_POLICY, AccountAccess, ReadOnlyViolation, live_clients, secret_resource
from tools.iam import pipeline_grants

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
USER = {"primary_channel": {"S": "+447700900101"}}


def _policy_secrets() -> list[str]:
    return [
        resource.removeprefix("arn:aws:secretsmanager:${Region}:${Account}:secret:")
        for statement in READ_ONLY_POLICY["Statement"]
        if statement["Action"] == "secretsmanager:GetSecretValue"
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
    ]


def test_the_read_only_policy_reads_the_credential_secrets_the_pipelines_declare_and_no_other() -> None:
    template = load_template()
    function_env = template["Resources"]["PipelineFunction"]["Properties"]["Environment"]["Variables"]
    # The patterns the template sets (its …SecretNamePattern parameters' defaults): what a deployment declares.
    env = {**ENV, **{name: placeholder(template, value) for name, value in function_env.items() if "SECRET" in name}}
    configs = [load_config(path, ROOT / "rules", env) for path in pipeline_paths()]
    declared = {grant.name for config in configs for grant in pipeline_grants(config) if grant.kind == "secret"}
    # One resource per channel's credential prefix, as the steps declare them (the template grants the same ones).
    assert sorted(_policy_secrets()) == sorted(secret_resource(pattern) for pattern in declared)
    assert "ai-multi-comms/sms-credentials/*" in _policy_secrets()
    # IAM's * spans '/': a * before the end would also grant the account's other secrets.
    granted = [ARN + name for name in _policy_secrets()]
    others = ["ai-multi-comms/openai-credentials/prod-AbCdEf", "ai-multi-comms/admin/db-credentials/root-AbCdEf"]
    assert [name for name in others if any(fnmatch.fnmatchcase(ARN + name, arn) for arn in granted)] == []
    sms = ARN + "ai-multi-comms/sms-credentials/*"
    assert fnmatch.fnmatchcase(ARN + "ai-multi-comms/sms-credentials/acme/sales/twilio-prod-AbCdEf", sms)


@pytest.mark.parametrize("pattern", ["ai-multi-comms/.+-credentials/.+", "ai-multi-comms/whatsapp-credentials/.*"])
def test_a_secret_pattern_that_is_not_a_fixed_prefix_has_no_iam_resource(pattern: str) -> None:
    with pytest.raises(ValueError, match="fixed prefix"):
        secret_resource(pattern)


@pytest.fixture
def account() -> Iterator[Any]:
    """An in-process moto account with one table and one secret, and the test's own (unguarded) client."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        dynamodb.create_table(
            TableName="conversations",
            KeySchema=[{"AttributeName": "primary_channel", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "primary_channel", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        secrets = boto3.client("secretsmanager", region_name="eu-west-1")
        secrets.create_secret(Name="ai-multi-comms/sms-credentials/acme", SecretString='{"twilio_auth_token": "t"}')
        yield dynamodb


def test_a_live_client_refuses_any_write_before_it_is_sent(account: Any) -> None:
    dynamodb, sqs, secretsmanager = live_clients(CallLimits(), AccountAccess(region="eu-west-1"))
    assert sqs is None
    with pytest.raises(ReadOnlyViolation, match="dynamodb:PutItem is not a read"):
        dynamodb.put_item(TableName="conversations", Item=USER)
    with pytest.raises(ReadOnlyViolation, match="dynamodb:DeleteTable"):
        dynamodb.delete_table(TableName="conversations")
    with pytest.raises(ReadOnlyViolation, match="secretsmanager:PutSecretValue"):
        secretsmanager.put_secret_value(SecretId="ai-multi-comms/sms-credentials/acme", SecretString="{}")
    assert account.scan(TableName="conversations")["Items"] == []
    assert account.describe_table(TableName="conversations")["Table"]["TableStatus"] == "ACTIVE"
    # The reads the replay makes still go through.
    account.put_item(TableName="conversations", Item=USER)
    assert dynamodb.get_item(TableName="conversations", Key=USER)["Item"] == USER
    assert dynamodb.query(
        TableName="conversations",
        KeyConditionExpression="primary_channel = :u",
        ExpressionAttributeValues={":u": USER["primary_channel"]},
    )["Items"] == [USER]
    secret = secretsmanager.get_secret_value(SecretId="ai-multi-comms/sms-credentials/acme")["SecretString"]
    assert json.loads(secret) == {"twilio_auth_token": "t"}


@pytest.mark.parametrize(
    ("given", "env", "region"),
    [
        (None, {"AWS_REGION": "eu-west-2"}, "eu-west-2"),
        (None, {"AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "us-west-1"}, "eu-west-2"),
        (None, {"AWS_DEFAULT_REGION": "us-west-1"}, "us-west-1"),
        ("ap-south-1", {"AWS_REGION": "eu-west-2"}, "ap-south-1"),
    ],
)
def test_the_region_is_the_one_given_else_aws_region_else_botocores_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str | None, env: dict[str, str], region: str
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    dynamodb, _, secretsmanager = live_clients(CallLimits(), AccountAccess(region=given))
    assert dynamodb.meta.region_name == secretsmanager.meta.region_name == region
    assert f"region {region}" in AccountAccess(region=given).describe()


def test_the_banner_says_when_no_region_is_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    assert AccountAccess(endpoint_url="http://127.0.0.1:5000").describe() == (
        "the default credentials, no region configured, endpoint http://127.0.0.1:5000"
    )
