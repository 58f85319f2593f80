"""The dry-run's promise, event by event: ``pipeline-dryrun`` says what production does.

Every outcome a Twilio or SendGrid request can have (queued, batched, handed off, status callback, replay, each
rule's refusal, not found, bad signatures, parse errors) against worlds whose conversations hold odd values, run
both ways (``tests.support.differential``): the command's ``--json`` output against the real handler on moto.
Outcome, error code, response (status, content type, body), deciding rules and rules version, every table's rows
and every queue's messages with their delays must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.differential import dryrun_decisions, production_decisions, table_sections
from tests.support.dryrun import PIPELINE_SETTINGS
from tests.support.plugins import STATUS_PLUGIN, plugin_loaded
from tests.support.shipped import pipeline_paths
from tests.support.webhooks import (
    ACCOUNT,
    COMPANY_SMS,
    COMPANY_WA,
    http_api_event,
    rest_event,
    sms_params,
    status_params,
    whatsapp_params,
)
from tests.support.world import World, conversation
from tools.localaws import local_resources
from tools.needs import pipeline_needs

T0 = 1795608000  # 2026-11-25T12:00:00Z
TOKEN = "0123456789abcdef0123456789abcdef"
STATUS_PIPELINE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "status_webhook" / "pipelines" / "status_inbound.yaml"
)
WA = "ai-multi-comms/whatsapp-credentials/acme/p/twilio-prod"
SMS = "ai-multi-comms/sms-credentials/acme/p/twilio-prod"
MISSING = "ai-multi-comms/whatsapp-credentials/acme/gone/twilio-prod"


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PIPELINE_SETTINGS:
        if name != "BATCH_WINDOW_SECONDS":
            monkeypatch.delenv(name, raising=False)


def _user(n: int) -> str:
    return f"+4477009003{n:02d}"


def _sid(user: int, n: int) -> str:
    return f"SM{user:02d}{n:02d}" + "a" * 28


def _conversation(n: int, **extra: Any) -> dict[str, Any]:
    user = _user(n)
    fields: dict[str, Any] = {
        "primary_channel": user,
        "conversation_id": f"ci-acme#pi-p#c{n:02d}#{user.lstrip('+')}",
        "gsi_recipient_tel": user,
        "recipient_tel": user,
        "channel_config": {"whatsapp_credentials_id": WA, "sms_credentials_id": SMS},
    }
    return conversation(**{**fields, **extra})


def _agree(world: World, world_file: Path, events_file: Path, session: Any, *options: str) -> list[dict[str, Any]]:
    dryrun = dryrun_decisions(world_file, events_file, "--backend", "memory", *options)
    production = production_decisions(world, world_file, events_file, session)
    for dry, real in zip(dryrun, production, strict=True):
        assert dry == real, dry["source"]
    return production


def _files(tmp_path: Path, document: dict[str, Any], events: list[Any]) -> tuple[Path, Path]:
    world_file, events_file = tmp_path / "world.json", tmp_path / "events.jsonl"
    world_file.write_text(json.dumps(document))
    events_file.write_text("".join(json.dumps(event) + "\n" for event in events))
    return world_file, events_file


def _at(event: dict[str, Any], at: float) -> dict[str, Any]:
    context = event["requestContext"]
    if "timeEpoch" in context:
        context["timeEpoch"] = int(at * 1000)
    else:
        context["requestTimeEpoch"] = int(at * 1000)
    return event


def _wa(user: int, n: int, at: float = T0, *, token: str = TOKEN, **extra: str) -> dict[str, Any]:
    params = whatsapp_params(_sid(user, n), f"message {n}")
    params.update(From=f"whatsapp:{_user(user)}", To=f"whatsapp:{COMPANY_WA}", WaId=_user(user).lstrip("+"))
    params.update(extra)
    return _at(rest_event("whatsapp", params, token=token), at)


def _sms(user: int, n: int, at: float = T0, **extra: str) -> dict[str, Any]:
    params = sms_params(_sid(user, n), f"text {n}", From=_user(user), To=COMPANY_SMS)
    params.update(extra)
    return _at(rest_event("sms", params, token=TOKEN), at)


TWILIO_WORLD: dict[str, Any] = {
    "secrets": {
        WA: {"twilio_account_sid": ACCOUNT, "twilio_auth_token": f"  {TOKEN}\n"},
        SMS: {"twilio_account_sid": ACCOUNT, "twilio_auth_token": TOKEN},
    },
    "conversations": [
        _conversation(1),
        _conversation(2, project_status="archived"),
        _conversation(3, allowed_channels=["sms"]),
        _conversation(4, conversation_status="processing_reply"),
        _conversation(5, hand_off_to_human=True),
        _conversation(6, auto_queue_reply_message=True),
        _conversation(7, auto_queue_reply_message_from_number=_user(7)),
        _conversation(8, allowed_channels="whatsapp", hand_off_to_human="true", auto_queue_reply_message=1),
        _conversation(9, channel_config={"whatsapp_credentials_id": MISSING, "sms_credentials_id": SMS}),
        _conversation(10, channel_config={"sms_credentials_id": SMS}),
        _conversation(11, allowed_channels={"whatsapp": True}),
        _conversation(12, project_status=None, conversation_status=None),
        {
            key: value
            for key, value in _conversation(13).items()
            if key not in ("recipient_tel", "hand_off_to_human", "allowed_channels")
        },
        _conversation(14, conversation_status="processing_reply", project_status="paused"),
        _conversation(
            15, hand_off_to_human=True, messages=[{"role": "user", "content": "y" * 100_000, "n": i} for i in range(4)]
        ),
        _conversation(16, hand_off_to_human=True, tags=["a", "b"], score=0.1 + 0.2, nothing={}, empty=""),
    ],
    "locks": [],
}


def _twilio_events() -> list[dict[str, Any]]:
    missing_sid = whatsapp_params(_sid(1, 50))
    del missing_sid["MessageSid"]
    media = dict(
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/m/0",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/m/1",
        MediaContentType1="audio/ogg",
        Body="",
    )
    http = whatsapp_params(_sid(1, 60), "over the HTTP API")
    http.update(From=f"whatsapp:{_user(1)}", To=f"whatsapp:{COMPANY_WA}")
    unsigned = _wa(1, 70)
    del unsigned["headers"]["X-Twilio-Signature"]
    del unsigned["multiValueHeaders"]["X-Twilio-Signature"]
    status = status_params(_sid(1, 80), "read")
    status.update(From=f"whatsapp:{COMPANY_WA}", To=f"whatsapp:{_user(1)}")
    wrong_path = _wa(1, 90)
    wrong_path["path"] = wrong_path["path"].replace("whatsapp", "telegram")
    wrong_path["requestContext"]["path"] = wrong_path["requestContext"]["path"].replace("whatsapp", "telegram")
    return [
        _wa(1, 0),
        _wa(1, 1, T0 + 1),  # batched
        _sms(1, 2, T0 + 2),  # its own lock (the same conversation: batched)
        _wa(1, 3, T0 + 3, **media),
        _wa(2, 0),
        _wa(3, 0),
        _sms(3, 1),
        _wa(4, 0),
        _wa(5, 0),
        _sms(6, 0),
        _wa(7, 0),
        _wa(8, 0),
        _wa(9, 0),
        _wa(10, 0),
        _wa(11, 0),
        _wa(12, 0),
        _wa(13, 0),
        _wa(14, 0),
        _wa(15, 0),
        _wa(16, 0),
        _wa(17, 0),  # nobody
        _wa(1, 40, token="forged-token-forged-token-forged"),
        _wa(1, 41, From="", WaId=""),
        rest_event("whatsapp", missing_sid, token=TOKEN),
        _at(http_api_event("whatsapp", http, token=TOKEN), T0 + 5),
        _at(unsigned, T0 + 6),
        _at(rest_event("whatsapp", status, token=TOKEN), T0 + 7),
        _at(wrong_path, T0 + 8),
        _wa(1, 0, T0 + 9),  # re-delivered inside the grace
        _wa(1, 0, T0 + 100),  # a replay
        _wa(4, 0, T0 + 100),  # a refusal's replay
        _sms(1, 99, T0 + 11),  # the trigger is due within the margin: a trigger of its own
    ]


def test_twilio_outcomes_are_decided_as_production_decides_them(
    world: World, boto_session: boto3.session.Session, tmp_path: Path
) -> None:
    world_file, events_file = _files(tmp_path, TWILIO_WORLD, _twilio_events())
    decided = _agree(world, world_file, events_file, boto_session)
    assert {decision["outcome"] for decision in decided} == {
        "QUEUED",
        "BATCHED",
        "HANDED_OFF",
        "STATUS_CALLBACK",
        "REPLAY",
        "PROJECT_INACTIVE",
        "CHANNEL_NOT_ALLOWED",
        "CONVERSATION_LOCKED",
        "CONVERSATION_NOT_FOUND",
        "MISSING_CREDENTIAL_CONFIG",
        "SECRET_FETCH_FAILED",
        "INVALID_SIGNATURE",
        "PARSING_ERROR",
    }


def _email_world() -> dict[str, Any]:
    from tests.support.email import EMAIL_SECRET, KEY, USER_EMAIL, email_conversation

    def person(name: str, **extra: Any) -> dict[str, Any]:
        address = f"{name}@example.org"
        return email_conversation(
            primary_channel=address,
            conversation_id=f"ci#pi#{name}#{address}",
            gsi_recipient_email=address,
            recipient_email=address,
            **extra,
        )

    return {
        "secrets": {EMAIL_SECRET: {"sendgrid_webhook_public_key": KEY.public_key}},
        "conversations": [
            email_conversation(conversation_id=f"ci#pi#jane#{USER_EMAIL}"),
            person("locked", conversation_status="processing_reply"),
            person("whatsapp-only", allowed_channels=["whatsapp"]),
            person("queued", auto_queue_reply_message=True),
            person("nokey", channel_config={"email_credentials_id": EMAIL_SECRET + "-gone"}),
            person("nocred", channel_config={}),
        ],
    }


def _email_events() -> list[dict[str, Any]]:
    from tests.support.email import USER_EMAIL, email_event
    from tools.sendgrid_events import Attachment, Email, KeyPair

    def at(email: Email, moment: int, **options: Any) -> dict[str, Any]:
        event = email_event(email, timestamp=moment, **options)
        event["requestContext"]["requestTimeEpoch"] = moment * 1000
        return event

    def mail(n: int, sender: str = f"Jane <{USER_EMAIL}>", **extra: Any) -> Email:
        return Email(**{"sender": sender, "message_id": f"<m{n}@example.net>", **extra})

    tagged = Email(sender=f"Jane <{USER_EMAIL}>", message_id="<m30@example.net>", to="support+vip@parse.example.com")
    return [
        at(mail(1), T0),
        at(mail(2, attachments=(Attachment("a.pdf", "application/pdf", b"%PDF-1.4"),), text=None), T0 + 1),
        at(mail(3, sender="Locked <locked@example.org>"), T0 + 2),
        at(mail(4, sender="W <whatsapp-only@example.org>"), T0 + 3),
        at(mail(5, sender="Q <queued@example.org>"), T0 + 4),
        at(mail(6, sender="K <nokey@example.org>"), T0 + 5),
        at(mail(7, sender="C <nocred@example.org>"), T0 + 6),
        at(mail(8, extra_headers={"Auto-Submitted": "auto-replied"}), T0 + 7),
        at(mail(9, spf="fail", dkim="{@example.net : fail}"), T0 + 8),
        at(mail(10, sender="MAILER-DAEMON@example.net"), T0 + 9),
        at(mail(11, text="x" * 200_000), T0 + 10),
        at(mail(12), T0 + 11, key=KeyPair()),  # signed with another key
        at(mail(13), T0 + 12, path="/prod/e-mail"),
        at(mail(14), T0 + 13, body=b"not a multipart body"),
        at(mail(15, message_id=None), T0 + 14),
        at(tagged, T0 + 15),
        at(mail(1), T0 + 40),  # its replay
        at(mail(3, sender="Locked <locked@example.org>"), T0 + 41),  # its refusal's replay
    ]


def test_email_outcomes_are_decided_as_production_decides_them(
    world: World, boto_session: boto3.session.Session, tmp_path: Path
) -> None:
    world_file, events_file = _files(tmp_path, _email_world(), _email_events())
    decided = _agree(world, world_file, events_file, boto_session)
    assert {decision["outcome"] for decision in decided} == {
        "QUEUED",
        "BATCHED",
        "HANDED_OFF",
        "REPLAY",
        "CHANNEL_NOT_ALLOWED",
        "CONVERSATION_LOCKED",
        "CONVERSATION_NOT_FOUND",
        "MISSING_CREDENTIAL_CONFIG",
        "SECRET_FETCH_FAILED",
        "EMAIL_REJECTED",
        "INVALID_SIGNATURE",
        "PARSING_ERROR",
    }


def test_one_email_posted_from_two_senders_is_decided_as_production_decides_it_on_several_processes(
    world: World, boto_session: boto3.session.Session, tmp_path: Path
) -> None:
    """Defect: ``--jobs`` (automatic from 2,000 events) split the events by sender, but an email's replay record is
    keyed by its Message-ID and parse address, not its sender: the same email posted again with another From (a
    mailing list rewriting it, say) was decided in another process, without the first one's record, and accepted a
    second time where production (and the replay on one process) found it a replay."""
    from tests.support.email import EMAIL_SECRET, KEY, email_conversation, email_event
    from tools.sendgrid_events import Email

    def person(name: str) -> dict[str, Any]:
        address = f"{name}@example.org"
        return email_conversation(
            primary_channel=address,
            conversation_id=f"ci#pi#{name}#{address}",
            gsi_recipient_email=address,
            recipient_email=address,
        )

    def posted(sender: str, n: int) -> dict[str, Any]:
        email = Email(sender=f"{sender} <{sender}@example.org>", message_id=f"<m{n}@lists.example.org>")
        event = email_event(email, timestamp=T0 + n)
        event["requestContext"]["requestTimeEpoch"] = (T0 + n) * 1000
        return event

    document = {
        "secrets": {EMAIL_SECRET: {"sendgrid_webhook_public_key": KEY.public_key}},
        "conversations": [person("ann"), person("bob"), person("cy")],
    }
    events = [posted("ann", 1), posted("bob", 1), posted("cy", 2), posted("ann", 3), posted("bob", 2)]
    world_file, events_file = _files(tmp_path, document, events)

    decided = _agree(world, world_file, events_file, boto_session, "--jobs", "3")

    assert [decision["outcome"] for decision in decided] == ["QUEUED", "REPLAY", "QUEUED", "BATCHED", "REPLAY"]


def test_the_comparison_follows_a_table_a_new_step_keeps() -> None:
    """Before: the comparison knew today's four tables by name; the dry-run's write to a new step's table (``statuses``,
    a plugin's) failed every comparison with "unknown table", and production's rows there were never compared."""
    with plugin_loaded(STATUS_PLUGIN):
        needs = pipeline_needs([*pipeline_paths(), STATUS_PIPELINE])
        resources = local_resources(lambda name: f"https://queues/{name}", "dryrun-", needs)
        sections = table_sections(resources)
    # The built-in tables under their world file sections, the new one under its role (and so would a shipped one).
    assert (
        sections.items()
        >= {
            "dryrun-conversations": "conversations",
            "dryrun-conversations-stage": "stage",
            "dryrun-conversations-trigger-lock": "locks",
            "dryrun-conversations-replay": "replay",
            "dryrun-statuses": "statuses",
        }.items()
    )
    assert len(sections) == len(needs.tables)
