"""Write examples/events/: webhook events for the people of examples/world.yaml, signed with its tokens.

    .venv/bin/python examples/generate.py          # rewrite examples/events/
    .venv/bin/python examples/generate.py --check  # exit 1 if the committed files differ

The events are API Gateway REST (payload 1.0) events posted to https://hooks.example.com/prod/<channel>
(Host header, X-Forwarded-Proto and requestContext.path, as API Gateway sends them), except one HTTP
API (payload 2.0) event. Twilio signatures are computed by the twilio library over the URL the pipeline
rebuilds, so a replay checks them exactly as the Lambda would. The email events are SendGrid Inbound Parse
posts (multipart, base64 as API Gateway passes binary media types), signed with Acme's example key pair
(``KeyPair.from_seed(EMAIL_KEY_SEED)``, whose public key is the world's secret) at the world's ``now``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from tools.dryrun.corpus import sms_form, status_form, twilio_http_event, twilio_rest_event, whatsapp_form
from tools.dryrun.world import load_world
from tools.sendgrid_events import Email, KeyPair, inbound_parse_body, inbound_parse_event, signed

HERE = Path(__file__).resolve().parent
WORLD = HERE / "world.yaml"
EVENTS = HERE / "events"

ACME_WHATSAPP, ACME_SMS, GLOBEX_WHATSAPP = "+14155238886", "+441632960001", "+441632960002"
ACME_SECRET = "ai-multi-comms/whatsapp-credentials/acme/support/twilio-prod"
GLOBEX_ACCOUNT = "AC0f1e2d3c4b5a69788796a5b4c3d2e1f0"
PEOPLE = {
    "alice": "+447700900101",
    "bob": "+447700900102",
    "carol": "+447700900103",
    "dan": "+447700900104",
    "erin": "+447700900105",
    "frank": "+447700900106",
    "grace": "+447700900107",
    "heidi": "+447700900108",
    "ivan": "+447700900109",
    "judy": "+447700900110",
    "stranger": "+447700900999",
}
REDELIVERED_SID = "SMe4a1c2f9b7d5e3c1a9f7d5b3e1c9a712"
EMAIL_KEY_SEED = "examples/acme-sendgrid"
ACME_PARSE_ADDRESS = "support@inbound.acme.example"


def email_event(email: Email, timestamp: int, key: KeyPair) -> dict[str, Any]:
    """A SendGrid Inbound Parse post of ``email`` to https://hooks.example.com/prod/email, signed at ``timestamp``."""
    request = signed(key, *inbound_parse_body(email), timestamp=timestamp)
    return inbound_parse_event(request, request_id=f"req-email-{timestamp}")


def sid(name: str, prefix: str = "SM") -> str:
    """A stable, realistic-looking Twilio SID for ``name``."""
    return prefix + hashlib.sha256(name.encode()).hexdigest()[:32]


def build_files(world_path: Path = WORLD) -> dict[str, str]:
    """File name → content of every example event file."""
    world = load_world(world_path)
    credentials = json.loads(world.secrets[ACME_SECRET])
    token, account = credentials["twilio_auth_token"], credentials["twilio_account_sid"]

    def whatsapp(person: str, name: str, body: str, **extra: Any) -> list[tuple[str, str]]:
        return whatsapp_form(
            extra.pop("message_sid", sid(name)),
            PEOPLE[person],
            extra.pop("company", ACME_WHATSAPP),
            body,
            account=extra.pop("account", account),
            profile_name=person.title(),
            **extra,
        )

    photo_sid = sid("frank-1")
    photo = f"https://api.twilio.com/2010-04-01/Accounts/{account}/Messages/{photo_sid}/Media/{sid('frank-1', 'ME')}"
    events: dict[str, Any] = {
        "01_whatsapp_text.json": twilio_rest_event(
            "whatsapp", whatsapp("alice", "alice-1", "Hi! Can I change my delivery address?"), token=token
        ),
        "02_sms_http_api.json": twilio_http_event(
            "sms",
            sms_form(sid("bob-1"), PEOPLE["bob"], ACME_SMS, "What time do you open tomorrow?", account=account),
            token=token,
        ),
        "03_handoff.json": twilio_rest_event(
            "whatsapp", whatsapp("carol", "carol-1", "Thanks Priya, the order number is 10442."), token=token
        ),
        "04_locked_conversation.json": twilio_rest_event(
            "whatsapp", whatsapp("dan", "dan-1", "Also, can you check my invoice?"), token=token
        ),
        "05_inactive_project.json": twilio_rest_event(
            "whatsapp", whatsapp("erin", "erin-1", "Is the winter promo still on?"), token=token
        ),
        "06_bad_signature.json": twilio_rest_event(
            "whatsapp", whatsapp("alice", "alice-forged", "Please refund me to this account"), token="0" * 32
        ),
        "07_media_only.json": twilio_rest_event(
            "whatsapp",
            whatsapp("frank", "frank-1", "", message_sid=photo_sid, media=[(photo, "image/jpeg")]),
            token=token,
        ),
        "08_burst.jsonl": [
            twilio_rest_event("whatsapp", whatsapp("grace", f"grace-{index}", text), token=token)
            for index, text in enumerate(["Hi", "I have a question", "about my last order"], start=1)
        ],
        "09_secret_missing.json": twilio_rest_event(
            "whatsapp",
            whatsapp("heidi", "heidi-1", "Do you ship to Spain?", company=GLOBEX_WHATSAPP, account=GLOBEX_ACCOUNT),
            token="globex-token-that-is-not-in-the-world",
        ),
        "10_lock_held.json": twilio_rest_event("whatsapp", whatsapp("ivan", "ivan-2", "One more thing!"), token=token),
        "11_redelivered.json": twilio_rest_event(
            "whatsapp", whatsapp("judy", "judy-1", "Is my order on its way?", message_sid=REDELIVERED_SID), token=token
        ),
        "12_callback_and_stranger.json": [
            twilio_rest_event(
                "whatsapp",
                status_form(
                    sid("reply-to-alice"),
                    PEOPLE["alice"],
                    ACME_WHATSAPP,
                    "delivered",
                    account=account,
                    channel="whatsapp",
                ),
                token=token,
            ),
            twilio_rest_event("whatsapp", whatsapp("stranger", "stranger-1", "hello?"), token=token),
        ],
    }
    key = KeyPair.from_seed(EMAIL_KEY_SEED)
    now = int(world.now.timestamp()) if world.now else 0

    def kim(subject: str, text: str, message_id: str, **extra: Any) -> Email:
        return Email(
            sender="Kim Lee <kim@example.org>",
            to=ACME_PARSE_ADDRESS,
            envelope_from="kim@example.org",
            envelope_to=(ACME_PARSE_ADDRESS,),
            subject=subject,
            text=text,
            html=None,
            message_id=f"<{message_id}@mail.example.org>",
            **extra,
        )

    events["13_email.jsonl"] = [
        email_event(kim("Order 10442", "Hi, my parcel has not arrived yet.", "kim-1"), now - 5, key),
        email_event(kim("WIN A PRIZE", "Click here to claim.", "kim-2", spam_score="8.7"), now - 4, key),
        email_event(kim("Order 10442", "Signed a week ago.", "kim-3"), now - 7 * 86400, key),
    ]
    files: dict[str, str] = {}
    for name, content in events.items():
        if name.endswith(".jsonl"):
            files[name] = "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in content)
        else:
            files[name] = json.dumps(content, ensure_ascii=False, indent=2) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    """Write (or, with --check, compare) examples/events/."""
    parser = argparse.ArgumentParser(description="Generate the signed example events from examples/world.yaml.")
    parser.add_argument("--check", action="store_true", help="exit 1 when examples/events/ differs")
    args = parser.parse_args(argv)
    files = build_files()
    present = {path.name: path.read_text(encoding="utf-8") for path in EVENTS.glob("*.json*")}
    if args.check:
        stale = sorted(set(present) ^ set(files) | {name for name in files if present.get(name) != files[name]})
        for name in stale:
            sys.stderr.write(f"examples/events/{name} differs from a fresh generation\n")
        return 1 if stale else 0
    EVENTS.mkdir(exist_ok=True)
    for name in set(present) - set(files):
        (EVENTS / name).unlink()
    for name, content in files.items():
        (EVENTS / name).write_text(content, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
