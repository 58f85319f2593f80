r"""``pipeline-event``: write webhook events for replay without Python.

``pipeline-event build`` prints an API Gateway event (REST payload 1.0, or 2.0 with ``--http-api``)
carrying a Twilio form, signed with the twilio library exactly as Twilio signs it::

    pipeline-event build --channel whatsapp --from +447700900101 --to +14155238886 \
        --body "Hi" --world examples/world.yaml > my-event.json

``--from``/``--to``/``--body`` (or ``--status``) fill in a form as Twilio posts it; ``--field NAME=VALUE``
adds a field or replaces the form's own (repeat it for repeated keys); without ``--from`` and ``--to``
the form is exactly the ``--field`` pairs. The auth token comes from ``--token-env NAME`` (an
environment variable: tokens stay out of shell history), or the secret ``--secret NAME`` (from
``--world``, else read from AWS Secrets Manager), or, with ``--world`` alone, the secret of the
conversation the numbers belong to, as the pipeline finds it. The token never appears in the output.

``pipeline-event mask FILES…`` prints the events of FILES as the function's capture stores them
(``runtime.masking``): one JSON line each.

Exit status: 0 done; 2 bad arguments, an unreadable file or a token that cannot be found.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from runtime.masking import DEFAULT_AUTH_HEADERS, MASK_MODES, Pseudonyms
from tools.dryrun.corpus import sms_form, status_form, twilio_http_event, twilio_rest_event, whatsapp_form
from tools.dryrun.events import EventFileError

__all__ = ["build_event", "main"]

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_URL = "https://hooks.example.com/prod"
# Contract §2: the index attributes and credential reference of each channel's lookup.
_LOOKUP = {
    "whatsapp": ("gsi_company_whatsapp_number", "whatsapp_credentials_id"),
    "sms": ("gsi_company_sms_number", "sms_credentials_id"),
}


class Refused(Exception):
    """An argument or file that cannot give an event; the message says why."""


def _field(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def _parties(args: argparse.Namespace) -> tuple[str, str]:
    """(user, company): a message comes from the user; a status callback from the company's number."""
    fields = dict(args.field or [])
    sender, recipient = (
        value.removeprefix("whatsapp:")
        for value in (args.from_number or fields.get("From", ""), args.to_number or fields.get("To", ""))
    )
    status = args.status or fields.get("MessageStatus")
    return (recipient, sender) if status else (sender, recipient)


def _check(args: argparse.Namespace) -> None:
    """Refuse argument combinations that make no form."""
    if args.from_number and args.to_number:
        return
    if args.from_number or args.to_number or args.body is not None or args.status:
        raise Refused("--from and --to go together (or give every field with --field)")
    if not args.field:
        raise Refused("give --from and --to (and --body), or the form's fields with --field NAME=VALUE")


def _form(args: argparse.Namespace, account: str) -> list[tuple[str, str]]:
    overrides: list[tuple[str, str]] = args.field or []
    if not (args.from_number and args.to_number):
        return list(overrides)
    user, company = _parties(args)
    seed = f"{args.channel}|{user}|{company}|{args.body}|{args.status}|{time.time_ns()}"
    sid = args.sid or "SM" + hashlib.sha256(seed.encode()).hexdigest()[:32]
    if args.status:
        form = status_form(sid, user, company, args.status, account=account, channel=args.channel)
    elif args.channel == "whatsapp":
        form = whatsapp_form(sid, user, company, args.body or "", account=account, profile_name=args.profile_name)
    else:
        form = sms_form(sid, user, company, args.body or "", account=account)
    replaced = {name for name, _ in overrides}
    return [pair for pair in form if pair[0] not in replaced] + list(overrides)


def _world_secret(world: Path, name: str | None, channel: str, user: str, company: str) -> tuple[str, Any]:
    from steps.conversations import pick_conversation
    from tools.dryrun.world import load_world

    spec = load_world(world)
    if name is None:
        company_key, credentials = _LOOKUP[channel]
        found = [
            dict(item)
            for item in spec.rows["conversations"]
            if item.get(company_key) == company and item.get("gsi_recipient_tel") == user
        ]
        if not found:
            raise Refused(f"{spec.file} has no {channel} conversation for these numbers: give --secret NAME")
        config = pick_conversation(found).get("channel_config") or {}
        name = config.get(credentials) if isinstance(config, Mapping) else None
        if not isinstance(name, str):
            raise Refused(f"the conversation in {spec.file} names no channel_config.{credentials}")
    if name not in spec.secrets:
        raise Refused(f"{spec.file} has no secret {name!r}")
    return name, spec.secrets[name]


def _aws_secret(args: argparse.Namespace, name: str) -> str:
    import botocore.exceptions

    from tools.dryrun.live import AccountAccess

    access = AccountAccess(args.profile, args.region, args.endpoint_url)
    endpoint = {"endpoint_url": access.endpoint_url} if access.endpoint_url else {}
    try:
        client = access.session().client("secretsmanager", **endpoint)
        return str(client.get_secret_value(SecretId=name)["SecretString"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise Refused(f"secret {name!r} could not be read from AWS: {exc}") from None


def _credentials(args: argparse.Namespace, user: str, company: str) -> tuple[str, str]:
    """The auth token and the account sid (empty when the secret names none)."""
    if args.token_env:
        token = os.environ.get(args.token_env, "").strip()
        if not token:
            raise Refused(f"the environment variable {args.token_env} is empty or unset")
        return token, ""
    if args.world is not None:
        _, text = _world_secret(args.world, args.secret, args.channel, user, company)
    elif args.secret:
        text = _aws_secret(args, args.secret)
    else:
        raise Refused("say how to sign: --token-env NAME, --secret NAME, or --world FILE")
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = text
    if isinstance(document, str):
        return document.strip(), ""
    found = document.get("twilio_auth_token") if isinstance(document, Mapping) else None
    if not isinstance(found, str) or not found.strip():
        raise Refused("the secret holds no twilio_auth_token")
    return found.strip(), str(document.get("twilio_account_sid") or "")


def build_event(args: argparse.Namespace) -> dict[str, Any]:
    """The signed event ``args`` describe; Refused with the reason when it cannot be built."""
    _check(args)
    user, company = _parties(args)
    token, account = _credentials(args, user, company)
    form = _form(args, args.account or account or "AC" + "0" * 32)
    base = args.url.rstrip("/")
    scheme, _, rest = base.partition("://")
    host, _, path = rest.partition("/")
    if scheme != "https" or not host:
        raise Refused(f"--url {args.url!r}: give the public https:// base the webhook is registered under")
    build = twilio_http_event if args.http_api else twilio_rest_event
    return build(args.channel, form, token=token, host=host, base_path="/" + path if path else "")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline-event", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="print a signed webhook event built from form fields")
    build.add_argument("--channel", choices=sorted(_LOOKUP), required=True)
    build.add_argument("--from", dest="from_number", metavar="NUMBER", help="the user's number (E.164)")
    build.add_argument("--to", dest="to_number", metavar="NUMBER", help="the company's number (E.164)")
    build.add_argument("--body", help="the message text (none: a media-only or empty message)")
    build.add_argument("--status", help="a delivery-status callback (sent, delivered, read…) instead of a message")
    build.add_argument("--profile-name", default="", help="WhatsApp ProfileName")
    build.add_argument("--sid", help="the MessageSid (default: a new one)")
    build.add_argument("--account", help="the AccountSid (default: the secret's twilio_account_sid)")
    build.add_argument("--field", type=_field, action="append", metavar="NAME=VALUE", help="a form field")
    build.add_argument("--token-env", metavar="NAME", help="environment variable holding the auth token")
    build.add_argument("--secret", metavar="NAME", help="the secret holding twilio_auth_token")
    build.add_argument("--world", type=Path, help="world file the secret (or the conversation) is read from")
    build.add_argument("--url", default=DEFAULT_URL, help=f"public base URL of the webhook (default {DEFAULT_URL})")
    build.add_argument("--http-api", action="store_true", help="an HTTP API (payload 2.0) event")
    build.add_argument("--profile", help="AWS profile for --secret without --world")
    build.add_argument("--region", help="AWS region for --secret without --world")
    build.add_argument("--endpoint-url", help="AWS endpoint for --secret without --world")
    mask = commands.add_parser("mask", help="print event files as the capture stores them, masked")
    mask.add_argument("files", nargs="+", type=Path)
    mask.add_argument("--mask", choices=MASK_MODES, default="text", help="(default: text)")
    mask.add_argument("--key-env", metavar="NAME", help="environment variable holding the pseudonym key (all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            sys.stdout.write(json.dumps(build_event(args), ensure_ascii=False) + "\n")
            return EXIT_OK
        key = os.environ.get(args.key_env, "") if args.key_env else ""
        pseudonyms = Pseudonyms(key.encode()) if key else None
        if args.mask == "all" and pseudonyms is None:
            raise Refused("--mask all needs --key-env NAME (a variable holding a key of at least 16 bytes)")
        from tools.dryrun.capture import masked_events

        events = masked_events(args.files, mask=args.mask, pseudonyms=pseudonyms, auth_headers=DEFAULT_AUTH_HEADERS)
        for event in events:
            sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    except Refused as exc:
        sys.stderr.write(f"pipeline-event: error: {exc}\n")
        return EXIT_USAGE
    except (ConfigError, EventFileError) as exc:
        sys.stderr.write("".join(f"{problem}\n" for problem in exc.problems))
        return EXIT_USAGE
    except ValueError as exc:
        sys.stderr.write(f"pipeline-event: error: {exc}\n")
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
