"""``pipeline-rules``' audit trail: who made each change (the AWS caller identity), and what a version changed."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from runtime.bundles import Bundle, bundle_key
from tests.support.bundles import BUCKET, PIPELINE, VIP_ROUTING, Ops, make_bucket, working_copy

ALICE = "arn:aws:sts::123456789012:assumed-role/ops/alice"


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Ops]:
    with mock_aws():
        s3 = boto3.client("s3")
        make_bucket(s3)
        yield Ops(s3, working_copy(tmp_path / "ops"))


@pytest.fixture
def as_alice(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell's credentials are those of alice's session of the role ``ops`` (as SSO or assume-role gives them)."""
    boto3.client("iam").create_role(RoleName="ops", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    session = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/ops", RoleSessionName="alice")
    credentials = session["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # as in a new process: the credentials read afresh


def _published_by(ops: Ops, bundle_id: str) -> str:
    body = ops.s3.get_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, bundle_id))["Body"].read()
    return Bundle.from_json(body, bundle_id).published_by


def test_who_deploys_is_the_aws_caller_identity_unless_given(ops: Ops, as_alice: None) -> None:
    """Defect: ``--by`` defaulted to the login name (``root`` on a build box or in a container), so ``list`` said
    "root made it live"; the principal S3 records the write for is what an auditor asks for."""
    live = ops.publish("--live", "--note", "first")
    assert _published_by(ops, live) == ALICE
    assert ops.deployment().updated_by == ALICE
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish("--note", "VIPs")
    for command in (("shadow", candidate), ("promote",), ("rollback",)):
        status, _, err = ops.rules(*command)
        assert (status, err.count("caller identity")) == (0, 0), err
        assert ops.deployment().updated_by == ALICE, command
    status, out, _ = ops.rules("list")
    assert status == 0
    history = [line for line in out.splitlines() if line.startswith("  r")]
    assert len(history) == 4 and all(f"  {ALICE}: live " in line for line in history), history
    assert f"{candidate}  " in out and f"  {ALICE}  " in out

    # Given, --by is recorded as given (the operator's words), with no STS call needed.
    assert ops.rules("promote", candidate, "--by", "bob (change 42)")[0] == 0
    assert ops.deployment().updated_by == "bob (change 42)"


def test_without_sts_who_deploys_is_the_login_name_and_it_says_so(ops: Ops) -> None:
    """STS that cannot be reached (here: an endpoint nothing listens on) leaves the login name, said on stderr."""
    status, _, err = ops.rules("--endpoint-url", "http://127.0.0.1:9", "publish", "--live")
    assert status == 0, err
    login = getpass.getuser()
    assert ops.deployment().updated_by == login
    assert (
        f"pipeline-rules: note: the AWS caller identity could not be read (EndpointConnectionError): recorded as "
        f"by {login!r}, the login name; pass --by NAME to name who"
    ) in err
    assert err.count("caller identity") == 1  # one STS call for the command (the bundle and the deployment)
