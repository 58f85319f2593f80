"""Reading the real account (a replay with ``--backend live``, a world snapshot): clients and the IAM they need.

Only read operations are ever called: ``dynamodb:Query``, ``GetItem`` and ``BatchGetItem`` for rows, ``DescribeTable``
for a table's key (to check a planned conditional write against the current row), and
``secretsmanager:GetSecretValue`` for signing secrets. Writes and sends are planned in memory by
``tools.dryrun.recording.PlanningTables`` / ``PlanningQueues``; no SQS client is even created. In depth, every
client ``live_clients`` makes refuses any other operation before a request is built (``ReadOnlyViolation``), so no
code path — a plugin step, a new port method — can write with them, whatever the credentials allow.
``process_reads_only`` extends that to every other client of the process while a replay or snapshot runs.
``READ_ONLY_POLICY`` is the IAM policy to give whoever runs it (docs/dry-run.md shows it filled in): each table gets
only the reads made on it (a test records them under IAM enforcement); its secrets are
the template's credential prefixes (``CREDENTIAL_SECRETS``, the patterns it sets: a test keeps them equal).
A recording made with ``mask=all`` (numbers and addresses are keyed pseudonyms) matches no row of the account:
``pseudonymized_files`` names its files (a live replay refuses them: ``pseudonymized_recordings``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from engine.calls import CallLimits
from engine.errors import Problem
from runtime.aws import botocore_config
from runtime.masking import RECORDING_KEY
from tools.dryrun.events import RecordedEvent

__all__ = [
    "CREDENTIAL_SECRETS",
    "READ_ONLY_ACTIONS",
    "READ_ONLY_POLICY",
    "AccountAccess",
    "ReadOnlyViolation",
    "live_clients",
    "note_refused_writes",
    "process_reads_only",
    "pseudonymized_files",
    "pseudonymized_recordings",
    "secret_resource",
]

_TABLE_READS = ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"]
READ_ONLY_ACTIONS = frozenset({*_TABLE_READS, "secretsmanager:GetSecretValue"})
# The credential prefixes the template's …SecretNamePattern parameters default to (the patterns it sets for
# ``secrets:``; unset, WhatsApp and SMS accept any name).
CREDENTIAL_SECRETS = (
    "ai-multi-comms/whatsapp-credentials/.+",
    "ai-multi-comms/sms-credentials/.+",
    "ai-multi-comms/email-credentials/.+",
)
_FIXED_PREFIX = re.compile(r"[A-Za-z0-9/_=.@-]+/")


def secret_resource(pattern: str) -> str:
    """The IAM resource name (``prefix/*``) for a secret-name pattern (``prefix/.+``).

    IAM's ``*`` also matches ``/``, so it may only stand at the end, after a fixed prefix; other patterns are refused.
    """
    prefix = pattern.removesuffix(".+")
    if prefix == pattern or not _FIXED_PREFIX.fullmatch(prefix):
        raise ValueError(f"secret-name pattern {pattern!r} is not a fixed prefix ending in '/' followed by .+")
    return prefix + "*"


_TABLE = "arn:aws:dynamodb:${Region}:${Account}:table/"
_SECRET = "arn:aws:secretsmanager:${Region}:${Account}:secret:"
READ_ONLY_POLICY: Mapping[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadConversations",
            "Effect": "Allow",
            "Action": _TABLE_READS,
            "Resource": f"{_TABLE}${{ConversationsTable}}",
        },
        {
            "Sid": "FindConversations",
            "Effect": "Allow",
            "Action": "dynamodb:Query",
            "Resource": f"{_TABLE}${{ConversationsTable}}/index/*",
        },
        {
            "Sid": "ReadStageAndLocks",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:DescribeTable"],
            "Resource": [f"{_TABLE}${{StageTable}}", f"{_TABLE}${{LockTable}}"],
        },
        {
            "Sid": "ReadReplayRecords",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"],
            "Resource": f"{_TABLE}${{ReplayTable}}",
        },
        {
            "Sid": "ReadSigningSecrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": [_SECRET + secret_resource(pattern) for pattern in CREDENTIAL_SECRETS],
        },
    ],
}


class ReadOnlyViolation(RuntimeError):
    """An operation outside ``READ_ONLY_ACTIONS`` was called on a read-only client; no request was sent."""


def _refuse_writes(client: Any) -> None:
    """Make ``client`` raise ``ReadOnlyViolation`` for any operation but the reads, before its request is built."""
    service = client.meta.service_model.signing_name

    def check(model: Any = None, **_: Any) -> None:
        action = f"{service}:{model.name}"
        if action not in READ_ONLY_ACTIONS:
            raise ReadOnlyViolation(
                f"{action} is not a read: reading the account calls only {', '.join(sorted(READ_ONLY_ACTIONS))} "
                "(nothing was sent)"
            )

    client.meta.events.register("before-parameter-build", check)


def note_refused_writes(client: Any, refused: list[str]) -> None:
    """Append to ``refused`` each operation of ``client`` that is not a read, as it is called (and refused).

    A failed write the pipeline tolerates (a best-effort record) would otherwise leave no trace in the event's result.
    """
    service = client.meta.service_model.signing_name

    def note(model: Any = None, **_: Any) -> None:
        action = f"{service}:{model.name}"
        if action not in READ_ONLY_ACTIONS:
            refused.append(action)

    client.meta.events.register_first("before-parameter-build", note)


# Operations of any service that only read, by their names' verbs; and the services credentials come from (a
# profile's role or SSO session), which change nothing in the account.
_READ_VERBS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "Head", "Select")
_CREDENTIAL_SERVICES = frozenset({"sts", "sso", "sso-oidc"})


@contextmanager
def process_reads_only(refused: list[str]) -> Iterator[None]:
    """While it runs, every AWS client of the process refuses what is not a read, before a request is built.

    That covers clients the replay did not make (a plugin step's own): each refused operation is appended to
    ``refused`` and raises ``ReadOnlyViolation``. Reads of any service, and the credential services, go through.
    """
    from botocore.client import BaseClient

    call = BaseClient._make_api_call

    def guarded(client: Any, operation: str, params: Any) -> Any:
        model = client.meta.service_model
        if model.service_name not in _CREDENTIAL_SERVICES and not operation.startswith(_READ_VERBS):
            action = f"{model.signing_name}:{operation}"
            refused.append(action)
            raise ReadOnlyViolation(
                f"{action} is not a read: a replay of the account writes nothing (nothing was sent)"
            )
        return call(client, operation, params)

    with mock.patch.object(BaseClient, "_make_api_call", guarded):
        yield


@dataclass(frozen=True)
class AccountAccess:
    """Which account to read: a named profile, a region and an endpoint (an emulator), each optional."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    def session(self) -> Any:
        """A boto3 session for the profile and region.

        The region is the one given, else ``AWS_REGION`` (as Lambda and the AWS SDKs name it), else botocore's own
        (``AWS_DEFAULT_REGION``, the profile's); the credentials are the profile's, else the default chain.
        """
        import boto3

        region = self.region or os.environ.get("AWS_REGION") or None
        return boto3.session.Session(profile_name=self.profile, region_name=region)

    def describe(self) -> str:
        """The account in words, for the replay's banner."""
        parts = [f"profile {self.profile}" if self.profile else "the default credentials"]
        region = self.session().region_name
        parts.append(f"region {region}" if region else "no region configured")
        if self.endpoint_url:
            parts.append(f"endpoint {self.endpoint_url}")
        return ", ".join(parts)


def live_clients(limits: CallLimits, access: AccountAccess) -> tuple[Any, None, Any]:
    """DynamoDB and Secrets Manager clients for ``access`` that only read (no SQS client: sends are only planned)."""
    session = access.session()
    config = botocore_config(limits)
    endpoint = {"endpoint_url": access.endpoint_url} if access.endpoint_url else {}
    dynamodb = session.client("dynamodb", config=config, **endpoint)
    secretsmanager = session.client("secretsmanager", config=config, **endpoint)
    for client in (dynamodb, secretsmanager):
        _refuse_writes(client)
    return dynamodb, None, secretsmanager


def _file_of(source: str) -> str:
    """The event file of a ``source`` (``FILE``, or ``FILE#N`` for one of several events)."""
    return re.sub(r"#\d+$", "", source)


def pseudonymized_files(events: Sequence[RecordedEvent]) -> list[str]:
    """The files holding events recorded with ``mask=all``: their numbers and addresses match no row of an account."""
    files: dict[str, None] = {}
    for recorded in events:
        recording = recorded.event.get(RECORDING_KEY) if isinstance(recorded.event, Mapping) else None
        if isinstance(recording, Mapping) and recording.get("mask") == "all":
            files[_file_of(recorded.source)] = None
    return list(files)


def pseudonymized_recordings(events: Sequence[RecordedEvent]) -> list[Problem]:
    """Why a live replay of ``events`` cannot work: a problem per file recorded with ``mask=all``."""
    return [
        Problem(
            name,
            1,
            1,
            "recorded with mask=all: its phone numbers and addresses are pseudonyms, which no conversation of the "
            "account has; replay it against a world pseudonymized with the capture's key "
            "(pipeline-world pseudonymize --key-env NAME WORLD -o FILE, then --world FILE)",
        )
        for name in pseudonymized_files(events)
    ]
