"""Reading the real account (a replay with ``--backend live``, a world snapshot): clients and the IAM they need.

Only read operations are ever called: ``dynamodb:Query``, ``GetItem`` and ``BatchGetItem`` for rows, ``DescribeTable``
for a table's key (to check a planned conditional write against the current row), and
``secretsmanager:GetSecretValue`` for signing secrets. Writes and sends are planned in memory by
``tools.dryrun.recording.PlanningTables`` / ``PlanningQueues``; no SQS client is even created.
``READ_ONLY_POLICY`` is the IAM policy to give whoever runs it (docs/dry-run.md shows it filled in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.calls import CallLimits
from runtime.aws import botocore_config

__all__ = ["READ_ONLY_ACTIONS", "READ_ONLY_POLICY", "AccountAccess", "live_clients"]

_TABLE_READS = ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"]
READ_ONLY_ACTIONS = frozenset({*_TABLE_READS, "secretsmanager:GetSecretValue"})
_TABLE = "arn:aws:dynamodb:${Region}:${Account}:table/"
READ_ONLY_POLICY: Mapping[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadConversations",
            "Effect": "Allow",
            "Action": _TABLE_READS,
            "Resource": [f"{_TABLE}${{ConversationsTable}}", f"{_TABLE}${{ConversationsTable}}/index/*"],
        },
        {
            "Sid": "ReadStageLocksAndReplayRecords",
            "Effect": "Allow",
            "Action": _TABLE_READS,
            "Resource": [f"{_TABLE}${{StageTable}}", f"{_TABLE}${{LockTable}}", f"{_TABLE}${{ReplayTable}}"],
        },
        {
            "Sid": "ReadSigningSecrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:${Region}:${Account}:secret:ai-multi-comms/*-credentials/*",
        },
    ],
}


@dataclass(frozen=True)
class AccountAccess:
    """Which account to read: a named profile, a region and an endpoint (an emulator), each optional."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    def session(self) -> Any:
        """A boto3 session for the profile and region (the default credential chain when None)."""
        import boto3

        return boto3.session.Session(profile_name=self.profile, region_name=self.region)

    def describe(self) -> str:
        """The account in words, for the replay's banner."""
        parts = [f"profile {self.profile}" if self.profile else "the default credentials"]
        if self.region:
            parts.append(f"region {self.region}")
        if self.endpoint_url:
            parts.append(f"endpoint {self.endpoint_url}")
        return ", ".join(parts)


def live_clients(limits: CallLimits, access: AccountAccess) -> tuple[Any, None, Any]:
    """DynamoDB and Secrets Manager clients for ``access`` (no SQS client: sends are only planned)."""
    session = access.session()
    config = botocore_config(limits)
    endpoint = {"endpoint_url": access.endpoint_url} if access.endpoint_url else {}
    return (
        session.client("dynamodb", config=config, **endpoint),
        None,
        session.client("secretsmanager", config=config, **endpoint),
    )
