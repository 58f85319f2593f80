"""The dry-run decides as production does: ``pipeline-dryrun`` against the real handler on moto.

The same world and events go through the command (``--backend memory``, which the backend tests keep equal to
moto's) and through ``handler`` on moto in this process (``tests.support.differential``); every event's outcome,
target, deciding rules, response and effects (every table's rows, every queue's messages) must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.differential import dryrun_decisions, production_decisions
from tests.support.dryrun import EVENTS, PIPELINE_SETTINGS, WORLD, greeting_rules
from tests.support.webhooks import (
    ACCOUNT,
    COMPANY_SMS,
    COMPANY_WA,
    rest_event,
    sms_params,
    status_params,
    whatsapp_params,
)
from tests.support.world import World, conversation
from tools.dryrun.events import load_events


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PIPELINE_SETTINGS:
        if name != "BATCH_WINDOW_SECONDS":
            monkeypatch.delenv(name, raising=False)


def _events_file(tmp_path: Path, events: list[Any]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return path


def _agree(world: World, world_file: Path, events_file: Path, session: Any) -> list[dict[str, Any]]:
    dryrun = dryrun_decisions(world_file, events_file, "--backend", "memory")
    production = production_decisions(world, world_file, events_file, session)
    for dry, real in zip(dryrun, production, strict=True):
        assert dry == real, dry["source"]
    return production


def test_the_examples_are_decided_as_production_decides_them(
    world: World, boto_session: boto3.session.Session, tmp_path: Path
) -> None:
    events = _events_file(tmp_path, [recorded.event for recorded in load_events([EVENTS])])
    decided = _agree(world, WORLD, events, boto_session)
    assert len(decided) == 18


T0 = 1795608000  # 2026-11-25T12:00:00Z
SECRET_OK = "ai-multi-comms/whatsapp-credentials/acme/p/twilio-prod"
SECRET_NO_TOKEN = "ai-multi-comms/whatsapp-credentials/acme/no-token/twilio-prod"
SECRET_BLANK = "ai-multi-comms/whatsapp-credentials/acme/blank/twilio-prod"
SECRET_TEXT = "ai-multi-comms/whatsapp-credentials/acme/text/twilio-prod"
SECRET_SMS = "ai-multi-comms/sms-credentials/acme/p/twilio-prod"
TOKEN = "0123456789abcdef0123456789abcdef"


def _conversation(user: str, suffix: str, secret: str = SECRET_OK, **extra: Any) -> dict[str, Any]:
    return conversation(
        primary_channel=user,
        conversation_id=f"ci-acme#pi-p#{suffix}#{user.lstrip('+')}",
        gsi_recipient_tel=user,
        recipient_tel=user,
        channel_config={"whatsapp_credentials_id": secret, "sms_credentials_id": SECRET_SMS},
        **extra,
    )


def _user(n: int) -> str:
    return f"+4477009002{n:02d}"


def _variations_world() -> dict[str, Any]:
    long_text = "x" * 50_000
    conversations = [
        # 1: several conversations of the pair: the newest open one wins (offsets and formats differ).
        _conversation(_user(1), "a-old", created_at="2026-11-20T10:00:00Z"),
        _conversation(_user(1), "b-new", created_at="2026-11-20T11:30:00+02:00", hand_off_to_human=True),
        _conversation(_user(1), "c-done", created_at="2026-11-24T10:00:00Z", task_complete=1),
        _conversation(_user(1), "d-null", created_at=None),
        # 2: odd attribute values.
        _conversation(
            _user(2),
            "odd",
            hand_off_to_human=None,
            auto_queue_reply_message="",
            auto_queue_reply_message_from_number=[],
            task_complete="1",
            messages=[{"role": "user", "content": long_text, "score": 0.75, "n": 12345678901234567890}],
            ai_config={"temperature": 0.2, "max_tokens": 512, "ratio": 1.5e-7, "empty": "", "none": None},
        ),
        # 3: auto-queue from this number (a list), numbers as floats.
        _conversation(_user(3), "autoq", auto_queue_reply_message_from_number=[_user(3)], task_complete=0.0),
        # 4: a lock held by another message, its trigger due later; 5: an expired lock; 6: an unmarked old lock.
        _conversation(_user(4), "held"),
        _conversation(_user(5), "expired"),
        _conversation(_user(6), "orphan"),
        # 7: secrets without a usable token.
        _conversation(_user(7), "no-token", secret=SECRET_NO_TOKEN),
        _conversation(_user(8), "blank-token", secret=SECRET_BLANK),
        _conversation(_user(9), "text-secret", secret=SECRET_TEXT),
        # 10: the project paused, 11: the channel not allowed, 12: a reply being prepared.
        _conversation(_user(10), "paused", project_status="paused"),
        _conversation(_user(11), "sms-only", allowed_channels=["sms"]),
        _conversation(_user(12), "busy", conversation_status="processing_reply"),
        # 13: a lock whose expiry is text, 14: a lock held by the very message (its retry).
        _conversation(_user(13), "text-lock"),
        _conversation(_user(14), "own-lock"),
        # 15: the project status missing, allowed channels null.
        {**_conversation(_user(15), "sparse", allowed_channels=None), "project_status": "active"},
    ]
    del conversations[-1]["hand_off_to_human"]
    lock = "ci-acme#pi-p#{}#{}"
    return {
        "now": None,
        "secrets": {
            SECRET_OK: {"twilio_account_sid": ACCOUNT, "twilio_auth_token": TOKEN},
            SECRET_SMS: {"twilio_account_sid": ACCOUNT, "twilio_auth_token": TOKEN},
            SECRET_NO_TOKEN: {"twilio_account_sid": ACCOUNT},
            SECRET_BLANK: {"twilio_account_sid": ACCOUNT, "twilio_auth_token": "   "},
            SECRET_TEXT: TOKEN,
        },
        "conversations": conversations,
        "locks": [
            {
                "conversation_id": lock.format("held", _user(4).lstrip("+")),
                "message_sid": "SM" + "f" * 32,
                "expires_at": T0 + 60,
                "taken_at": T0 - 2,
                "trigger_due_at": T0 + 8,
            },
            {
                "conversation_id": lock.format("expired", _user(5).lstrip("+")),
                "message_sid": "SM" + "e" * 32,
                "expires_at": T0 - 1,
            },
            {
                "conversation_id": lock.format("orphan", _user(6).lstrip("+")),
                "message_sid": "SM" + "d" * 32,
                "expires_at": T0 + 60,
                "taken_at": T0 - 100,
            },
            # (A lock whose expires_at is text is left out: moto raises TypeError comparing it, where DynamoDB
            # finds the condition false, as the memory world does.)
            {
                "conversation_id": lock.format("own-lock", _user(14).lstrip("+")),
                "message_sid": _sid(14, 0),
                "expires_at": T0 + 60,
                "taken_at": T0,
                "trigger_due_at": T0 + 10,
            },
        ],
        "replay": [
            {"message_sid": _sid(2, 9), "recorded_at": T0 - 100, "replay_after": T0 - 70, "expires_at": T0 + 9999},
            {"message_sid": _sid(3, 9), "recorded_at": T0 - 1, "replay_after": T0 + 29, "expires_at": T0 + 9999},
        ],
    }


def _sid(user: int, n: int) -> str:
    return f"SM{user:02d}{n:02d}" + "0" * 28


def _event(user: int, n: int, at: float, channel: str = "whatsapp", **extra: str) -> dict[str, Any]:
    prefix = "whatsapp:" if channel == "whatsapp" else ""
    company = COMPANY_WA if channel == "whatsapp" else COMPANY_SMS
    params = whatsapp_params(_sid(user, n), f"message {n}") if channel == "whatsapp" else sms_params(_sid(user, n))
    params.update(From=f"{prefix}{_user(user)}", To=f"{prefix}{company}", WaId=_user(user).lstrip("+"), **extra)
    event = rest_event(channel, params, token=TOKEN)
    event["requestContext"]["requestTimeEpoch"] = int(at * 1000)
    return event


def _status(user: int, n: int, at: float) -> dict[str, Any]:
    params = status_params(_sid(user, n), "read")
    params.update(From=f"whatsapp:{COMPANY_WA}", To=f"whatsapp:{_user(user)}")
    event = rest_event("whatsapp", params, token=TOKEN)
    event["requestContext"]["requestTimeEpoch"] = int(at * 1000)
    return event


def _variation_events() -> list[dict[str, Any]]:
    events = [
        _event(1, 0, T0),
        _event(2, 0, T0),
        _event(2, 9, T0),  # its record's grace is past: a replay
        _event(3, 9, T0),  # inside its record's grace: a re-delivery
        _event(3, 0, T0),
        *(_event(user, 0, T0) for user in range(4, 16)),
        _status(5, 0, T0 + 1),
        _event(1, 0, T0 + 1),  # re-delivered
        # A burst across the batching window (W = 10 s): queued, batched, then due within the margin, queued.
        _event(5, 1, T0 + 2),
        _event(5, 2, T0 + 4),
        _event(5, 3, T0 + 9),
        _event(5, 4, T0 + 40),
        _event(2, 1, T0 + 45, channel="sms"),
        _event(16, 0, T0 + 50),  # nobody
        _event(1, 0, T0 + 100),  # past the grace: a replay
    ]
    return events


@pytest.mark.parametrize(
    "settings",
    [{}, {"BATCH_WINDOW_SECONDS": "3", "PUBLIC_BASE_URL": "https://hooks.example.com/prod", "TTL_BUFFER_SECONDS": "5"}],
)
def test_generated_variations_are_decided_as_production_decides_them(
    world: World,
    boto_session: boto3.session.Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, str],
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    document = _variations_world()
    del document["now"]
    world_file = tmp_path / "world.json"
    world_file.write_text(json.dumps(document))
    decided = _agree(world, world_file, _events_file(tmp_path, _variation_events()), boto_session)
    outcomes = [decision["outcome"] for decision in decided]
    assert {"QUEUED", "HANDED_OFF", "REPLAY", "STATUS_CALLBACK", "SECRET_FETCH_FAILED"} <= set(outcomes)
    # A window shorter than the lock's due margin never batches (any trigger may be read before a stage row lands).
    assert ("BATCHED" in outcomes) == ("BATCH_WINDOW_SECONDS" not in settings)


def _email_world() -> dict[str, Any]:
    from tests.support.email import EMAIL_SECRET, KEY, USER_EMAIL, email_conversation

    open_one = email_conversation(conversation_id=f"ci#pi#open#{USER_EMAIL}", created_at="2026-11-20T10:00:00Z")
    newer_done = email_conversation(
        conversation_id=f"ci#pi#done#{USER_EMAIL}", created_at="2026-11-24T10:00:00Z", task_complete=1
    )
    human = email_conversation(
        primary_channel="kim@example.org",
        conversation_id="ci#pi#human#kim@example.org",
        gsi_recipient_email="kim@example.org",
        recipient_email="kim@example.org",
        hand_off_to_human=True,
        messages=[{"role": "user", "content": "z" * 20_000, "timestamp": 1.5}],
    )
    paused = email_conversation(
        primary_channel="pat@example.org",
        conversation_id="ci#pi#paused#pat@example.org",
        gsi_recipient_email="pat@example.org",
        project_status="paused",
    )
    return {
        "secrets": {EMAIL_SECRET: {"sendgrid_webhook_public_key": KEY.public_key}},
        "conversations": [open_one, newer_done, human, paused],
        "replay": [],
    }


def _email_events() -> list[dict[str, Any]]:
    from tests.support.email import USER_EMAIL, email_event
    from tools.sendgrid_events import Email

    def at(email: Email, moment: int) -> dict[str, Any]:
        event = email_event(email, timestamp=moment)
        event["requestContext"]["requestTimeEpoch"] = moment * 1000
        return event

    first = Email(sender=f"Jane <{USER_EMAIL}>", message_id="<a1@example.net>")
    return [
        at(first, T0),
        at(Email(sender=f"Jane <{USER_EMAIL}>", message_id="<a2@example.net>"), T0 + 2),  # batched
        at(first, T0 + 5),  # re-delivered before its record was confirmed? (it was: a replay)
        at(Email(sender="Kim <kim@example.org>", message_id="<k1@example.org>"), T0 + 6),  # handed off
        at(Email(sender="Pat <pat@example.org>", message_id="<p1@example.org>"), T0 + 7),  # paused
        at(Email(sender="Pat <pat@example.org>", message_id="<p1@example.org>"), T0 + 8),  # its refusal's replay
        at(Email(sender=f"Jane <{USER_EMAIL}>", message_id="<a3@example.net>", spam_score="9.9"), T0 + 9),
        at(Email(sender="nobody@example.com", message_id="<n1@example.com>"), T0 + 10),
        at(Email(sender=f"Jane <{USER_EMAIL}>", message_id="<a4@example.net>"), T0 + 30),  # past the window
        at(Email(sender=f"Jane <{USER_EMAIL}>", message_id="<a5@example.net>"), T0 - 5 * 86400),  # too old
    ]


def test_emails_are_decided_as_production_decides_them(
    world: World, boto_session: boto3.session.Session, tmp_path: Path
) -> None:
    world_file = tmp_path / "world.json"
    world_file.write_text(json.dumps(_email_world()))
    decided = _agree(world, world_file, _events_file(tmp_path, _email_events()), boto_session)
    outcomes = [decision["outcome"] for decision in decided]
    assert {"QUEUED", "BATCHED", "HANDED_OFF", "REPLAY", "PROJECT_INACTIVE", "EMAIL_REJECTED"} <= set(outcomes)


def test_a_candidate_rule_change_is_decided_as_production_would_decide_it_once_deployed(
    world: World, boto_session: boto3.session.Session, tmp_path: Path, task_root: Any
) -> None:
    # The function deployed with the candidate rules (its task root's rules/ replaced) against the dry-run's --rules.
    from tests.support.dryrun import GREETING_RULE, ROOT

    routing = (ROOT / "rules" / "40_routing.yaml").read_text().replace("rules:\n", GREETING_RULE, 1)
    task_root({"rules/40_routing.yaml": routing})
    candidate = greeting_rules(tmp_path)
    events = _events_file(tmp_path, [recorded.event for recorded in load_events([EVENTS])])
    dryrun = dryrun_decisions(WORLD, events, "--backend", "memory", "--rules", str(candidate))
    production = production_decisions(world, WORLD, events, boto_session)
    for dry, real in zip(dryrun, production, strict=True):
        assert dry == real, dry["source"]
    assert any(decision["decided_by"].get("routing") == "greeting_to_human" for decision in production)
