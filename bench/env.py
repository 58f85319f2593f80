"""The process environment the benchmark runs in: fake AWS credentials, no real account, the repository root."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["FAKE_AWS", "REPO_ROOT", "lambda_environment", "use_fake_aws"]

REPO_ROOT = Path(__file__).resolve().parent.parent

FAKE_AWS: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_UNSET = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "PUBLIC_BASE_URL")


def use_fake_aws() -> None:
    """Point boto3 at fake credentials in us-east-1, so nothing can reach a real account."""
    for name in _UNSET:
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS)


def lambda_environment(resources: Mapping[str, str] | None = None) -> dict[str, str]:
    """The contract's Lambda variables: ``resources`` (from a provisioned world) or placeholder names."""
    values = {
        "CONVERSATIONS_TABLE_NAME": "conversations",
        "STAGE_TABLE_NAME": "conversations-stage",
        "LOCK_TABLE_NAME": "conversations-trigger-lock",
        "WHATSAPP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/whatsapp",
        "SMS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sms",
        "HANDOFF_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/handoff",
        "REPLAY_TABLE_NAME": "replay",
        "BATCH_WINDOW_SECONDS": "10",
        "LOG_LEVEL": "INFO",
    }
    values.update(resources or {})
    return values
