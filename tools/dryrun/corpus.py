"""Signed Twilio webhook events and worlds to replay them against: builders and a corpus generator.

Builders (used by ``examples/generate.py`` and the tests): ``whatsapp_form``, ``sms_form``,
``status_form`` give Twilio's form pairs; ``twilio_rest_event`` (API Gateway REST, payload 1.0) and
``twilio_http_event`` (HTTP API, payload 2.0) wrap them in an event (``tools.events``) signed with the
twilio library over the URL the pipeline rebuilds. ``generate_corpus(conversations, events, seed=…)`` makes a realistic
world and a stream of events for it, deterministically for a seed::

    corpus = generate_corpus(1000, 10_000, seed=7)
    world_path, events_path = corpus.write(Path("bench-results/corpus"))
    # pipeline-dryrun --world bench-results/corpus/world.json --json bench-results/corpus/events.jsonl

or ``python -m tools.dryrun.corpus --conversations 1000 --events 10000 OUT_DIR``.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from steps.twilio.signature import sign
from tools.events import http_api_event, rest_event, stage_name

__all__ = [
    "DEFAULT_NOW",
    "HOST",
    "Corpus",
    "Mix",
    "generate_corpus",
    "sign",
    "sms_form",
    "status_form",
    "twilio_http_event",
    "twilio_rest_event",
    "whatsapp_form",
]

HOST = "hooks.example.com"
HTTP_API_HOST = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
BASE_PATH = "/prod"
DEFAULT_NOW = "2026-11-25T12:00:00Z"
API_VERSION = "2010-04-01"
Form = list[tuple[str, str]]


def _media(media: Sequence[tuple[str, str]]) -> Form:
    pairs: Form = []
    for index, (url, content_type) in enumerate(media):
        pairs += [(f"MediaContentType{index}", content_type), (f"MediaUrl{index}", url)]
    return pairs


def whatsapp_form(
    sid: str,
    user: str,
    company: str,
    body: str,
    *,
    account: str,
    profile_name: str = "",
    media: Sequence[tuple[str, str]] = (),
) -> Form:
    """An inbound WhatsApp message as Twilio posts it (``media``: (url, content type) pairs)."""
    return [
        *_media(media),
        ("SmsMessageSid", sid),
        ("NumMedia", str(len(media))),
        ("ProfileName", profile_name),
        ("MessageType", "image" if media and not body else "text"),
        ("SmsSid", sid),
        ("WaId", user.lstrip("+")),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", f"whatsapp:{company}"),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", sid),
        ("AccountSid", account),
        ("From", f"whatsapp:{user}"),
        ("ApiVersion", API_VERSION),
    ]


def sms_form(
    sid: str, user: str, company: str, body: str, *, account: str, media: Sequence[tuple[str, str]] = ()
) -> Form:
    """An inbound SMS (or MMS, with ``media``) as Twilio posts it."""
    return [
        *_media(media),
        ("ToCountry", "GB"),
        ("ToState", ""),
        ("SmsMessageSid", sid),
        ("NumMedia", str(len(media))),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", body),
        ("FromCountry", "GB"),
        ("To", company),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", account),
        ("From", user),
        ("ApiVersion", API_VERSION),
    ]


def status_form(sid: str, user: str, company: str, status: str, *, account: str, channel: str) -> Form:
    """A status callback for a message the company sent (``From`` is the company's number)."""
    prefix = "whatsapp:" if channel == "whatsapp" else ""
    pairs: Form = [
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", f"{prefix}{user}"),
        ("MessageSid", sid),
        ("AccountSid", account),
        ("From", f"{prefix}{company}"),
        ("ApiVersion", API_VERSION),
    ]
    if channel == "whatsapp":
        pairs += [("ChannelPrefix", "whatsapp"), ("ChannelToAddress", user)]
    return pairs


def _idempotency(signature: str) -> str:
    return "idem-" + base64.b32encode(signature.encode()).decode().lower()[:24]


def _signed(
    channel: str, form: Sequence[tuple[str, str]], token: str, host: str, base_path: str, signature: str | None
) -> tuple[str, str]:
    """``{base_path}/{channel}`` and its ``X-Twilio-Signature`` (``signature``, else the twilio library's)."""
    path = f"{base_path}/{channel}"
    return path, signature if signature is not None else sign(f"https://{host}{path}", form, token)


def twilio_rest_event(
    channel: str,
    form: Sequence[tuple[str, str]],
    *,
    token: str,
    host: str = HOST,
    base_path: str = BASE_PATH,
    signature: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (payload 1.0) event posted to ``https://{host}{base_path}/{channel}``, signed."""
    public_path, sig = _signed(channel, form, token, host, base_path, signature)
    headers = {
        "Accept": "*/*",
        "Content-Type": "application/x-www-form-urlencoded",
        "Host": host,
        "I-Twilio-Idempotency-Token": _idempotency(sig),
        "User-Agent": "TwilioProxy/1.1",
        "X-Forwarded-For": "54.172.60.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        "X-Home-Region": "us1",
        "X-Twilio-Signature": sig,
    }
    return rest_event(
        "POST",
        public_path,
        host=host,
        headers=headers,
        body=urlencode(list(form)),
        stage=stage_name(base_path),
        source_ip=None,
        request_id="req-" + _idempotency(sig)[5:17],
    )


def twilio_http_event(
    channel: str,
    form: Sequence[tuple[str, str]],
    *,
    token: str,
    host: str = HTTP_API_HOST,
    base_path: str = BASE_PATH,
    signature: str | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event: lower-case headers, base64 form body, stage in ``rawPath``."""
    raw_path, sig = _signed(channel, form, token, host, base_path, signature)
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "host": host,
        "i-twilio-idempotency-token": _idempotency(sig),
        "user-agent": "TwilioProxy/1.1",
        "x-forwarded-proto": "https",
        "x-home-region": "us1",
        "x-twilio-signature": sig,
    }
    return http_api_event(
        "POST",
        raw_path,
        host=host,
        headers=headers,
        body=urlencode(list(form)),
        stage=stage_name(base_path),
        source_ip="54.172.60.1",
    )


@dataclass(frozen=True)
class Mix:
    """How a generated corpus is made up (fractions of conversations, then of events)."""

    handoff: float = 0.05
    auto_queue: float = 0.03
    inactive: float = 0.04
    locked: float = 0.04
    sms_only: float = 0.04
    burst: float = 0.3
    sms: float = 0.3
    media_only: float = 0.05
    bad_signature: float = 0.02
    status_callback: float = 0.02
    unknown_sender: float = 0.01
    http_api: float = 0.2


@dataclass(frozen=True)
class Corpus:
    """A world document (the world-file format) and the events to replay against it."""

    world: dict[str, Any]
    events: list[dict[str, Any]]

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``world.json`` and ``events.jsonl`` into ``directory``; return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        world_path, events_path = directory / "world.json", directory / "events.jsonl"
        world_path.write_text(json.dumps(self.world, indent=1) + "\n", encoding="utf-8")
        with events_path.open("w", encoding="utf-8") as stream:
            for event in self.events:
                stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        return world_path, events_path


_WORDS = (
    *("hi", "hello", "thanks", "order", "delivery", "price", "booking", "tomorrow", "today"),
    *("please", "help", "where", "when", "can", "I", "my", "the", "is"),
)


def _hex(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


def _conversation(rng: random.Random, index: int, tenant: dict[str, str], mix: Mix) -> dict[str, Any]:
    user = f"+4477{index:08d}"
    roll = rng.random()
    kinds = [
        ("handoff", mix.handoff),
        ("auto_queue", mix.auto_queue),
        ("inactive", mix.inactive),
        ("locked", mix.locked),
        ("sms_only", mix.sms_only),
    ]
    kind = "open"
    for name, share in kinds:
        if roll < share:
            kind = name
            break
        roll -= share
    uuid = f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}"
    return {
        "primary_channel": user,
        "conversation_id": f"ci-{tenant['id']}-000#pi-{tenant['id']}-001#{uuid}#{user.lstrip('+')}",
        "gsi_company_whatsapp_number": tenant["whatsapp"],
        "gsi_company_sms_number": tenant["sms"],
        "gsi_recipient_tel": user,
        "recipient_tel": user,
        "channel_config": {
            "whatsapp_credentials_id": tenant["whatsapp_secret"],
            "sms_credentials_id": tenant["sms_secret"],
        },
        "project_status": "paused" if kind == "inactive" else "active",
        "allowed_channels": ["sms"] if kind == "sms_only" else ["whatsapp", "sms"],
        "conversation_status": "processing_reply" if kind == "locked" else "open",
        "hand_off_to_human": kind == "handoff",
        "auto_queue_reply_message": kind == "auto_queue",
        "auto_queue_reply_message_from_number": None,
        "created_at": f"2026-11-{1 + index % 24:02d}T{index % 24:02d}:00:00Z",
        "task_complete": 0,
        "ai_config": {"assistant_id": f"asst_{tenant['id']}", "temperature": 0.2, "max_tokens": 512},
        "company_rep": {"name": "Sam", "role": "agent"},
        "messages": [
            {"role": "assistant", "content": "How can I help?", "timestamp": 1795000000 + index},
            {"role": "user", "content": " ".join(rng.choices(_WORDS, k=5)), "timestamp": 1795000060 + index},
        ],
    }


def _tenants(rng: random.Random, count: int) -> list[dict[str, str]]:
    tenants = []
    for index in range(count):
        tenant_id = f"t{index:03d}"
        tenants.append(
            {
                "id": tenant_id,
                "whatsapp": f"+4420{7000000 + index:07d}",
                "sms": f"+4420{8000000 + index:07d}",
                "account": "AC" + _hex(rng, 32),
                "token": _hex(rng, 32),
                "whatsapp_secret": f"ai-multi-comms/whatsapp-credentials/{tenant_id}/p1/twilio-prod",
                "sms_secret": f"ai-multi-comms/sms-credentials/{tenant_id}/p1/twilio-prod",
            }
        )
    return tenants


def generate_corpus(
    conversations: int = 1000,
    events: int = 10_000,
    *,
    seed: int = 0,
    now: str = DEFAULT_NOW,
    tenants: int | None = None,
    mix: Mix | None = None,
) -> Corpus:
    """A world of ``conversations`` conversations (spread over tenants) and ``events`` signed events for it.

    Events follow ``mix``: WhatsApp and SMS text, media-only messages, bursts on one conversation
    (QUEUED then BATCHED), handoffs, inactive projects, locked conversations, a channel a
    conversation does not allow, bad signatures, status callbacks, unknown senders, REST 1.0 and
    HTTP API 2.0 events. The same arguments always give the same corpus.
    """
    rng = random.Random(seed)
    shares = mix or Mix()
    companies = _tenants(rng, tenants or max(1, conversations // 100))
    items = [_conversation(rng, index, companies[index % len(companies)], shares) for index in range(conversations)]
    secrets: dict[str, Any] = {}
    for tenant in companies:
        value = {"twilio_account_sid": tenant["account"], "twilio_auth_token": tenant["token"]}
        secrets[tenant["whatsapp_secret"]] = value
        secrets[tenant["sms_secret"]] = value
    world = {"now": now, "conversations": items, "secrets": secrets}
    stream: list[dict[str, Any]] = []
    previous = 0
    for number in range(events):
        index = previous if number and rng.random() < shares.burst else rng.randrange(conversations)
        previous = index
        stream.append(_event(rng, number, items[index], companies[index % len(companies)], shares))
    return Corpus(world, stream)


def _event(rng: random.Random, number: int, item: dict[str, Any], tenant: dict[str, str], mix: Mix) -> dict[str, Any]:
    sid = "SM" + _hex(rng, 32)
    user = item["primary_channel"]
    channel = "sms" if rng.random() < mix.sms else "whatsapp"
    body = " ".join(rng.choices(_WORDS, k=rng.randint(1, 12)))
    media: list[tuple[str, str]] = []
    if rng.random() < mix.media_only:
        body = ""
        media = [
            (
                f"https://api.twilio.com/{API_VERSION}/Accounts/{tenant['account']}/Messages/{sid}"
                f"/Media/ME{_hex(rng, 32)}",
                "image/jpeg",
            )
        ]
    if rng.random() < mix.unknown_sender:
        user = f"+4479{number:08d}"
    company = tenant[channel]
    if rng.random() < mix.status_callback:
        form = status_form(
            sid, user, company, rng.choice(["sent", "delivered", "read"]), account=tenant["account"], channel=channel
        )
    elif channel == "whatsapp":
        form = whatsapp_form(sid, user, company, body, account=tenant["account"], profile_name="Customer", media=media)
    else:
        form = sms_form(sid, user, company, body, account=tenant["account"], media=media)
    token = "0" * 32 if rng.random() < mix.bad_signature else tenant["token"]
    build = twilio_http_event if rng.random() < mix.http_api else twilio_rest_event
    return build(channel, form, token=token)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.dryrun.corpus``: write a generated world and events to a directory."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.dryrun.corpus", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("out", type=Path, help="directory for world.json and events.jsonl")
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--now", default=DEFAULT_NOW)
    args = parser.parse_args(argv)
    world, events = generate_corpus(args.conversations, args.events, seed=args.seed, now=args.now).write(args.out)
    sys.stdout.write(f"{world}\n{events}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
