"""Expected responses and row shapes, straight from the contract."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import yaml

from runtime.metrics import emf_line
from tests.support.shipped import deployed_env
from tests.support.webhooks import EMPTY_TWIML

ROOT = Path(__file__).resolve().parents[2]

# The handoff message's top-level keys (shared/CONTRACT.md §2, SQS messages), for every channel.
HANDOFF_TOP_LEVEL = frozenset(
    {
        "conversation_id",
        "message_sid",
        "channel_type",
        "primary_channel",
        "body",
        "received_at",
        "request",
        "conversation",
    }
)

# The error codes of the contract (shared/CONTRACT.md §4), as the Twilio pipeline must know them.
CONTRACT_TRANSIENT_CODES = frozenset(
    {
        "DB_TRANSIENT_ERROR",
        "SECRET_FETCH_TRANSIENT_ERROR",
        "STAGE_WRITE_TRANSIENT_ERROR",
        "TRIGGER_LOCK_TRANSIENT_ERROR",
        "QUEUE_TRANSIENT_ERROR",
    }
)
CONTRACT_CODES = CONTRACT_TRANSIENT_CODES | frozenset(
    {
        "PARSING_ERROR",
        "INVALID_SIGNATURE",
        "CONVERSATION_NOT_FOUND",
        "MISSING_CREDENTIAL_CONFIG",
        "DB_QUERY_ERROR",
        "SECRET_FETCH_FAILED",
        "PROJECT_INACTIVE",
        "CHANNEL_NOT_ALLOWED",
        "CONVERSATION_LOCKED",
        "ROUTING_ERROR",
        "STAGE_WRITE_ERROR",
        "TRIGGER_LOCK_WRITE_ERROR",
        "QUEUE_ERROR",
        "INTERNAL_ERROR",
    }
)
ISO_MILLIS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# The contract's required variables, with placeholder resources (for loading the shipped configuration), and any
# other variable the shipped pipelines require (a new step's table).
ENV = deployed_env(
    {
        "CONVERSATIONS_TABLE_NAME": "conversations",
        "STAGE_TABLE_NAME": "stage",
        "LOCK_TABLE_NAME": "lock",
        "WHATSAPP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/whatsapp",
        "SMS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/sms",
        "HANDOFF_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/handoff",
        "REPLAY_TABLE_NAME": "replay",
    }
)
CONTRACT_LOCKED_TEXT = "I'm processing your previous message. Please wait for my response before sending more."


def twiml_response(body: str = EMPTY_TWIML) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"Content-Type": "text/xml"}, "body": body, "isBase64Encoded": False}


def locked_reply_text() -> str:
    """The holding reply as the rules YAML states it."""
    document = yaml.safe_load((ROOT / "rules" / "30_conversation_lock.yaml").read_text())
    replies = [
        rule["then"]["reply"] for rule in document["rules"] if rule["then"].get("error") == "CONVERSATION_LOCKED"
    ]
    assert len(replies) == 1
    return str(replies[0])


def locked_twiml(text: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(text)}</Message></Response>'


def raises_code(code: str, call: Callable[[], Any]) -> BaseException:
    """Run ``call``; it must raise an exception whose text contains ``code``."""
    with pytest.raises(Exception) as caught:
        call()
    assert code in str(caught.value), str(caught.value)
    return caught.value


@contextmanager
def clock_window() -> Iterator[list[int]]:
    """Yields [start, end] epoch seconds bracketing the block (end filled in on exit)."""
    window = [int(time.time()), 0]
    yield window
    window[1] = int(time.time()) + 1


def parse_received_at(value: str) -> int:
    assert ISO_MILLIS_Z.match(value), value
    return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp())


def outcomes(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str | None]]:
    """(outcome, error_code) of every handled event, from the application's per-event log line."""
    return [
        (record.__dict__["outcome"], record.__dict__["error_code"])
        for record in caplog.records
        if record.name == "runtime.app" and record.getMessage() == "event"
    ]


def emf_document_of(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The EMF document ``emf_line`` writes for these arguments, parsed."""
    document: dict[str, Any] = json.loads(emf_line(*args, **kwargs))
    return document


def step_ids(pipeline: str = "twilio_inbound") -> list[str]:
    """The ids of a shipped pipeline's steps in order, parallel members in place (so tests follow the YAML)."""
    import yaml

    document = yaml.safe_load((ROOT / "pipelines" / f"{pipeline}.yaml").read_text(encoding="utf-8"))
    return [member["id"] for step in document["steps"] for member in step.get("parallel", [step])]


def steps_until(last: str, pipeline: str = "twilio_inbound") -> list[str]:
    """The ids of a pipeline's steps up to and including ``last``."""
    ids = step_ids(pipeline)
    return ids[: ids.index(last) + 1]


def version_sources(root: Path, pipeline: str = "twilio_inbound") -> list[Path]:
    """The files a pipeline's rules version covers: its pipeline file, then the shared rule files and its own."""
    rules = []
    for path in sorted((root / "rules").glob("*.yaml")):
        owners = yaml.safe_load(path.read_text(encoding="utf-8")).get("pipelines")
        if owners is None or pipeline in owners:
            rules.append(path)
    return [root / "pipelines" / f"{pipeline}.yaml", *rules]
