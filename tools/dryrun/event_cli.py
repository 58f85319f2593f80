r"""``pipeline-event``: write webhook events for replay without Python.

``pipeline-event build`` prints an API Gateway event (REST payload 1.0, or 2.0 with ``--http-api``)
carrying a Twilio form, signed with the twilio library exactly as Twilio signs it, or an email as
SendGrid Inbound Parse posts it, signed as SendGrid signs it::

    pipeline-event build --channel whatsapp --from +447700900101 --to +14155238886 \
        --body "Hi" --world examples/world.yaml > my-event.json
    pipeline-event build --channel email --from "Kim Lee <kim@example.org>" --to support@inbound.acme.example \
        --subject "Order 10442" --body "Where is it?" --key-seed examples/acme-sendgrid \
        --world examples/world.yaml > my-email.json

Twilio (``whatsapp``, ``sms``): ``--from``/``--to``/``--body`` (or ``--status``) fill in a form as Twilio
posts it; ``--field NAME=VALUE`` adds a field or replaces the form's own (repeat it for repeated keys);
without ``--from`` and ``--to`` the form is exactly the ``--field`` pairs. The auth token comes from
``--token-env NAME`` (an environment variable: tokens stay out of shell history), or the secret
``--secret NAME`` (from ``--world``, else read from AWS Secrets Manager), or, with ``--world`` alone, the
secret of the conversation the numbers belong to, as the pipeline finds it. The token never appears in the
output.

Email: ``--from`` (the user) and ``--to`` (the parse address) are required; ``--subject``, ``--body`` (the
text part), ``--message-id`` (default: a new one; the pipeline's ``EM`` id comes from it) and
``--spam-score`` fill in the default-format Inbound Parse form, ``--field`` adds or replaces its fields.
The post is signed (ECDSA P-256 over timestamp + body) with the private key in ``--private-key-env NAME``
(a PEM key) or derived from ``--key-seed TEXT`` (test worlds whose public key came from the same seed), at
``--timestamp SECONDS`` or ``--now TIME`` (default: the world's ``now`` with ``--world``, the time its replay
runs at; else the current time); with ``--now`` (or the world's ``now``) the post also arrives then (the
event's request time). With ``--world`` (or ``--secret``) the signature is checked against the
``sendgrid_webhook_public_key`` of the conversation's secret (or of ``--secret``), and a key that does not
match is refused. The private key never appears in the output.

``pipeline-event mask FILES…`` prints the events of FILES as the function's capture stores them
(``runtime.masking``): one JSON line each.

The channels are those of the project's pipelines (``pipelines/*.yaml`` of the working directory), each found
as its pipeline's ``conversations.lookup`` finds it; a channel whose parse step is neither ``twilio.parse`` nor
``sendgrid.parse`` is refused with the channels that can be built.

Exit status: 0 done; 2 bad arguments, an unreadable file, or a token or key that cannot be found or does
not match.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from engine.errors import ConfigError
from runtime.masking import MASK_MODES
from steps.sendgrid import multipart
from steps.sendgrid.ecdsa import is_valid_public_key, verify
from steps.sendgrid.message import read_addressing
from tools.console import EXIT_OK, EXIT_USAGE, console_script, json_line, load_project_plugins, problem_lines
from tools.dryrun.corpus import sms_form, status_form, twilio_http_event, twilio_rest_event, whatsapp_form
from tools.dryrun.events import EventFileError
from tools.dryrun.mask import MASK_MODES_HELP
from tools.dryrun.world import WorldSpec, load_world, now_option
from tools.needs import ChannelLookup, shipped_needs
from tools.sendgrid_events import (
    Email,
    KeyPair,
    SignedRequest,
    encode_form,
    inbound_parse_event,
    inbound_parse_fields,
    signed,
)

__all__ = ["BUILDABLE", "build_event", "main"]

DEFAULT_URL = "https://hooks.example.com/prod"
# A secret saved from a file an editor wrote with one starts with it; the function ignores it (engine.secrets).
BYTE_ORDER_MARK = "\ufeff"
# The parse steps whose requests this tool builds, and the kind of event each reads.
BUILDABLE = {"twilio.parse": "twilio", "sendgrid.parse": "email"}
# Options that only one kind of channel reads (argparse dests; unset is None).
_TWILIO_ONLY = ("status", "sid", "account", "profile_name", "token_env")
_WHATSAPP_ONLY = ("profile_name",)
_MESSAGE_ONLY = ("body", "profile_name")  # a delivery-status callback carries neither
_EMAIL_ONLY = ("subject", "message_id", "spam_score", "private_key_env", "key_seed", "timestamp", "now")
PUBLIC_KEY_FIELD = "sendgrid_webhook_public_key"


class Refused(Exception):
    """An argument or file that cannot give an event; the message says why."""


def _field(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not unix seconds")
    return int(text)


def _score(text: str) -> str:
    try:
        finite = math.isfinite(float(text))
    except ValueError:
        finite = False
    if not finite:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return text


def _parties(args: argparse.Namespace) -> tuple[str, str]:
    """(user, company): a message comes from the user; a status callback from the company's number."""
    fields = dict(args.field or [])
    sender, recipient = (
        value.removeprefix("whatsapp:")
        for value in (args.from_number or fields.get("From", ""), args.to_number or fields.get("To", ""))
    )
    status = args.status or fields.get("MessageStatus")
    return (recipient, sender) if status else (sender, recipient)


def _lookup(channel: str) -> ChannelLookup:
    """How the pipelines find ``channel``'s conversation; Refused when its events cannot be built here."""
    channels = shipped_needs().channels
    if not channels:
        raise Refused("no pipeline files (*.yaml) found in pipelines/; run pipeline-event in the project's directory")
    lookup = channels.get(channel)
    if lookup is None or lookup.parse not in BUILDABLE:
        buildable = sorted(name for name, found in channels.items() if found.parse in BUILDABLE)
        parsed = f" is parsed by {lookup.parse} (pipeline {lookup.pipeline}), which" if lookup else ""
        raise Refused(
            f"channel {channel!r}{parsed} pipeline-event cannot build; it builds events for the channels of "
            f"{', '.join(sorted(BUILDABLE))}: {', '.join(buildable)}"
        )
    return lookup


def _is_email(args: argparse.Namespace) -> bool:
    return BUILDABLE[_lookup(args.channel).parse] == "email"


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options the channel does not read."""
    others = _TWILIO_ONLY if _is_email(args) else _EMAIL_ONLY
    if args.channel == "sms":
        others = (*others, *_WHATSAPP_ONLY)
    given = ", ".join("--" + name.replace("_", "-") for name in others if getattr(args, name) is not None)
    if given:
        raise Refused(f"{given}: not an option of --channel {args.channel}")
    dropped = ", ".join("--" + name.replace("_", "-") for name in _MESSAGE_ONLY if getattr(args, name) is not None)
    if args.status is not None and dropped:
        raise Refused(f"{dropped}: not an option of a status callback (--status)")
    if args.token_env is not None and (args.secret is not None or args.world is not None):
        other = "--secret" if args.secret is not None else "--world"
        raise Refused(f"--token-env, {other}: give one source of the auth token")


def _check(args: argparse.Namespace) -> None:
    """Refuse argument combinations that make no form."""
    if args.from_number and args.to_number:
        return
    if _is_email(args):
        raise Refused(f"--channel {args.channel} needs --from (the sender) and --to (the parse address)")
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
    # A MessageSid given as a field is the form's sid (Twilio sends SmsMessageSid and SmsSid equal to it), as --sid is.
    given = next((value for name, value in reversed(overrides) if name == "MessageSid"), None)
    sid = args.sid or given or "SM" + hashlib.sha256(seed.encode()).hexdigest()[:32]
    if args.status:
        form = status_form(sid, user, company, args.status, account=account, channel=args.channel)
    elif args.channel == "whatsapp":
        form = whatsapp_form(sid, user, company, args.body or "", account=account, profile_name=args.profile_name or "")
    else:
        form = sms_form(sid, user, company, args.body or "", account=account)
    replaced = {name for name, _ in overrides}
    return [pair for pair in form if pair[0] not in replaced] + list(overrides)


def _world_secret(spec: WorldSpec, name: str | None, channel: str, user: str, company: str) -> tuple[str, str]:
    """(name, SecretString) of ``name``, or of the conversation the pipeline would find for user and company."""
    from steps.conversations import pick_conversation
    from tools.dryrun.memory import as_stored
    from tools.localaws import dynamo_safe

    if name is None:
        lookup = _lookup(channel)
        index, credentials = lookup.index, lookup.credentials_attribute
        if index is None:
            raise Refused(
                f"pipeline {lookup.pipeline} looks up no conversation for channel {channel}: give --secret NAME"
            )
        # As DynamoDB holds them (numbers as Decimal: `task_complete: 1.0` is 1), so the pick is the pipeline's.
        found = [
            as_stored(dynamo_safe(dict(item)))
            for item in spec.rows["conversations"]
            if item.get(index.hash_key) == company and item.get(index.range_key) == user
        ]
        if not found:
            what = "addresses" if BUILDABLE[lookup.parse] == "email" else "numbers"
            raise Refused(f"{spec.file} has no {channel} conversation for these {what}: give --secret NAME")
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
        text = client.get_secret_value(SecretId=name).get("SecretString")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise Refused(f"secret {name!r} could not be read from AWS: {exc}") from None
    if not isinstance(text, str):
        from tools.dryrun.snapshot import BINARY_SECRET

        raise Refused(f"secret {name!r} {BINARY_SECRET}")
    return text


def _secret(args: argparse.Namespace, spec: WorldSpec | None, user: str, company: str) -> tuple[str, str] | None:
    """(name, SecretString) from the world (``--secret`` or the conversation) or AWS; None when neither is named."""
    if spec is not None:
        return _world_secret(spec, args.secret, args.channel, user, company)
    if args.secret:
        return args.secret, _aws_secret(args, args.secret)
    return None


def _credentials(args: argparse.Namespace, spec: WorldSpec | None, user: str, company: str) -> tuple[str, str]:
    """The auth token and the account sid (empty when the secret names none)."""
    if args.token_env:
        token = os.environ.get(args.token_env, "").strip()
        if not token:
            raise Refused(f"the environment variable {args.token_env} is empty or unset")
        return token, ""
    secret = _secret(args, spec, user, company)
    if secret is None:
        raise Refused("say how to sign: --token-env NAME, --secret NAME, or --world FILE")
    try:
        document: Any = json.loads(secret[1].removeprefix(BYTE_ORDER_MARK))
    except ValueError:
        document = secret[1]
    if isinstance(document, str):
        return document.strip(), ""
    found = document.get("twilio_auth_token") if isinstance(document, Mapping) else None
    if not isinstance(found, str) or not found.strip():
        raise Refused("the secret holds no twilio_auth_token")
    return found.strip(), str(document.get("twilio_account_sid") or "")


def _twilio_event(args: argparse.Namespace, spec: WorldSpec | None, host: str, base_path: str) -> dict[str, Any]:
    """A Twilio form posted to ``…/whatsapp`` or ``…/sms``, signed with the auth token."""
    _check(args)
    user, company = _parties(args)
    token, account = _credentials(args, spec, user, company)
    form = _form(args, args.account or account or "AC" + "0" * 32)
    build = twilio_http_event if args.http_api else twilio_rest_event
    return build(args.channel, form, token=token, host=host, base_path=base_path)


def _address(option: str, value: str) -> str:
    """The bare address in ``value`` (``Name <addr>`` or ``addr``)."""
    address = parseaddr(value)[1]
    if "@" not in address:
        raise Refused(f"{option} {value!r} is not an email address")
    return address


def _message_id(args: argparse.Namespace, sender: str) -> str | None:
    """``--message-id`` in angle brackets (empty: none), else a new one in the sender's domain."""
    if args.message_id is not None:
        given = args.message_id.strip().strip("<>")
        return f"<{given}>" if given else None
    seed = f"{sender}|{args.to_number}|{args.subject}|{args.body}|{time.time_ns()}"
    return f"<{hashlib.sha256(seed.encode()).hexdigest()[:24]}@{sender.rpartition('@')[2]}>"


def _email_body(args: argparse.Namespace) -> tuple[bytes, str]:
    """The Inbound Parse body (default format) and its Content-Type, ``--field`` pairs replacing or added."""
    sender, parse_address = _address("--from", args.from_number), _address("--to", args.to_number)
    email = Email(
        sender=args.from_number,
        to=args.to_number,
        subject=args.subject or "",
        text=args.body,
        html=None,
        message_id=_message_id(args, sender),
        envelope_from=sender,
        envelope_to=(parse_address,),
        spam_score=args.spam_score,
    )
    fields, files = inbound_parse_fields(email)
    overrides: list[tuple[str, str]] = args.field or []
    replaced = {name for name, _ in overrides}
    return encode_form([pair for pair in fields if pair[0] not in replaced] + list(overrides), files)


def _email_parties(body: bytes, content_type: str) -> tuple[str, str]:
    """(user, company) as ``sendgrid.parse`` reads them from the body; empty when it cannot."""
    try:
        email = read_addressing(multipart.parse(body, content_type), body)
    except multipart.MultipartError:
        return "", ""
    return (email.sender or "").lower(), email.company_address


def _signing_key(args: argparse.Namespace) -> KeyPair:
    """The key pair of ``--key-seed`` or ``--private-key-env``; no message ever quotes the key."""
    if args.key_seed is not None:
        return KeyPair.from_seed(args.key_seed)
    if not args.private_key_env:
        raise Refused("say how to sign an email: --private-key-env NAME (a PEM private key) or --key-seed TEXT")
    name = args.private_key_env
    pem = os.environ.get(name, "").strip()
    if not pem:
        raise Refused(f"the environment variable {name} is empty or unset")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise Refused(f"the environment variable {name} holds no unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise Refused(f"the key in {name} is not a P-256 (prime256v1) EC key, as SendGrid signs with")
    return KeyPair(key)


def _check_public_key(name: str, text: str, request: SignedRequest) -> None:
    """Refuse a signature the pipeline would find invalid with secret ``name``'s public key."""
    try:
        document: Any = json.loads(text.removeprefix(BYTE_ORDER_MARK))
    except ValueError:
        document = None
    found = document.get(PUBLIC_KEY_FIELD) if isinstance(document, Mapping) else None
    public_key = found.strip() if isinstance(found, str) else ""
    if not is_valid_public_key(public_key):
        raise Refused(f"secret {name!r} holds no {PUBLIC_KEY_FIELD} (a P-256 public key, base64)")
    if not verify(public_key, request.signature, request.timestamp, request.body):
        raise Refused(
            f"the private key does not match the {PUBLIC_KEY_FIELD} of secret {name!r}: "
            "the pipeline would answer INVALID_SIGNATURE"
        )


def _email_event(args: argparse.Namespace, spec: WorldSpec | None, host: str, base_path: str) -> dict[str, Any]:
    """An Inbound Parse post to ``…/email``, signed; refused when the world's (or --secret's) key would reject it."""
    try:
        now = None if args.now is None else int(now_option(args.now).timestamp())
    except ValueError as exc:
        raise Refused(str(exc)) from None
    _check(args)
    key = _signing_key(args)
    body, content_type = _email_body(args)
    world_now = int(spec.now.timestamp()) if spec is not None and spec.now is not None else None
    stamp = next((t for t in (args.timestamp, now, world_now) if t is not None), int(time.time()))
    request = signed(key, body, content_type, timestamp=stamp)
    secret = _secret(args, spec, *_email_parties(body, content_type))
    if secret is not None:
        _check_public_key(*secret, request)
    # Posted at --now (or the world's now), it arrives then: a replay at each event's arrival runs it at that time.
    # --timestamp is the signature's alone (a skewed or stale one); the post arrives now.
    arrival = next((t for t in (now, world_now) if t is not None), None)
    return inbound_parse_event(
        request,
        host=host,
        path=f"{base_path}/{args.channel}",
        http_api=args.http_api,
        request_time_ms=None if arrival is None else arrival * 1000,
    )


def build_event(args: argparse.Namespace) -> dict[str, Any]:
    """The signed event ``args`` describe; Refused with the reason when it cannot be built."""
    _check_options(args)
    scheme, _, rest = args.url.rstrip("/").partition("://")
    host, _, path = rest.partition("/")
    if scheme != "https" or not host:
        raise Refused(f"--url {args.url!r}: give the public https:// base the webhook is registered under")
    spec = load_world(args.world) if args.world is not None else None
    build = _email_event if _is_email(args) else _twilio_event
    return build(args, spec, host, "/" + path if path else "")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline-event", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build",
        help="print a signed webhook event built from form fields",
        description="Print a signed webhook event: a Twilio form (whatsapp, sms), signed with the auth token of "
        "--token-env, --secret or --world, or a SendGrid Inbound Parse email, signed with the private key of "
        "--private-key-env or --key-seed (and checked against the public key of --world or --secret).",
    )
    # Outside a project there are none to choose from: the build says where to run instead of refusing every name.
    channels = sorted(shipped_needs().channels) or None
    build.add_argument("--channel", choices=channels, required=True, help="a channel of pipelines/*.yaml")
    build.add_argument("--from", dest="from_number", metavar="SENDER", help="the user's number (E.164) or address")
    build.add_argument(
        "--to", dest="to_number", metavar="RECIPIENT", help="the company's number (E.164) or parse address"
    )
    build.add_argument("--body", help="the message text, an email's text part (none: a media-only or empty message)")
    build.add_argument("--field", type=_field, action="append", metavar="NAME=VALUE", help="a form field")
    build.add_argument(
        "--world",
        type=Path,
        help="world file the secret (or the conversation) is read from (email: the key is checked against it)",
    )
    build.add_argument("--secret", metavar="NAME", help="the secret holding twilio_auth_token (email: the public key)")
    build.add_argument("--url", default=DEFAULT_URL, help=f"public base URL of the webhook (default {DEFAULT_URL})")
    build.add_argument("--http-api", action="store_true", help="an HTTP API (payload 2.0) event")
    build.add_argument("--profile", help="AWS profile for --secret without --world")
    build.add_argument(
        "--region",
        help="AWS region for --secret without --world (default: AWS_REGION, else AWS_DEFAULT_REGION or the profile's)",
    )
    build.add_argument("--endpoint-url", help="AWS endpoint for --secret without --world")
    twilio = build.add_argument_group("whatsapp and sms")
    twilio.add_argument("--status", help="a delivery-status callback (sent, delivered, read…) instead of a message")
    twilio.add_argument("--profile-name", help="WhatsApp ProfileName")
    twilio.add_argument("--sid", help="the MessageSid (default: a new one)")
    twilio.add_argument("--account", help="the AccountSid (default: the secret's twilio_account_sid)")
    twilio.add_argument("--token-env", metavar="NAME", help="environment variable holding the auth token")
    email = build.add_argument_group("email (SendGrid Inbound Parse, posted to …/email)")
    email.add_argument("--subject", help="the subject (default: empty)")
    email.add_argument(
        "--message-id",
        metavar="ID",
        help="the Message-ID the pipeline's EM id comes from (default: a new one; '': none)",
    )
    email.add_argument("--spam-score", type=_score, metavar="SCORE", help="SendGrid's spam_score (default: none)")
    key = email.add_mutually_exclusive_group()
    key.add_argument("--private-key-env", metavar="NAME", help="environment variable holding the PEM P-256 private key")
    key.add_argument(
        "--key-seed",
        metavar="TEXT",
        help="derive the key from TEXT (KeyPair.from_seed, as examples/generate.py does): only for test worlds "
        "whose public key was derived from the same seed",
    )
    when = email.add_mutually_exclusive_group()
    when.add_argument("--timestamp", type=_seconds, metavar="SECONDS", help="the signature's timestamp (unix seconds)")
    when.add_argument(
        "--now",
        metavar="TIME",
        help="the signature's time, ISO-8601, UTC without an offset (default: the world's now with --world, else "
        "the current time)",
    )
    mask = commands.add_parser("mask", help="print event files as the capture stores them, masked")
    mask.add_argument(
        "files", nargs="+", type=Path, metavar="FILES", help="event files (.json, .jsonl) or directories of them"
    )
    mask.add_argument("--mask", choices=MASK_MODES, default="text", help=f"{MASK_MODES_HELP} (default: text)")
    mask.add_argument("--key-env", metavar="NAME", help="environment variable holding the pseudonym key (all)")
    return parser


def _auth_headers() -> dict[str, bool]:
    """The headers every registered step declares as authenticating a request: what the capture masks too."""
    from engine import registry
    from runtime.app import declared_auth_headers

    load_project_plugins()
    return declared_auth_headers(registry.specs())


@console_script("pipeline-event")
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    load_project_plugins()  # before --channel lists the pipelines' channels: a plugin may declare their tables
    try:
        args = _parser().parse_args(argv)
    except ConfigError as exc:
        sys.stderr.write(problem_lines(exc.problems))
        return EXIT_USAGE
    try:
        if args.command == "build":
            sys.stdout.write(json_line(json.dumps(build_event(args), ensure_ascii=False)) + "\n")
            return EXIT_OK
        from tools.dryrun.capture import key_pseudonyms, masked_events

        pseudonyms = key_pseudonyms(args.mask, args.key_env)
        events = masked_events(args.files, mask=args.mask, pseudonyms=pseudonyms, auth_headers=_auth_headers())
        for event in events:
            sys.stdout.write(json_line(json.dumps(event, ensure_ascii=False)) + "\n")
    except Refused as exc:
        sys.stderr.write(f"pipeline-event: error: {exc}\n")
        return EXIT_USAGE
    except (ConfigError, EventFileError) as exc:
        sys.stderr.write(problem_lines(exc.problems))
        return EXIT_USAGE
    except ValueError as exc:
        sys.stderr.write(f"pipeline-event: error: {exc}\n")
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
