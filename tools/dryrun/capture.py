"""Recording webhook events for later replay, with credentials removed and personal data optionally masked.

``recordable(event, mask=…)`` is what gets stored:

- always: headers that carry credentials (``Authorization``, ``Cookie``, ``X-Amz-Security-Token``,
  ``X-Api-Key``…) and ``requestContext.authorizer`` / ``identity`` are dropped. An event holds no auth
  token (Twilio sends an HMAC signature, never the token), so nothing else needs removing;
- ``mask="none"``: the form body as Twilio sent it; a replay checks its signature like the Lambda;
- ``mask="text"``: free-text fields (``Body``, ``ProfileName``, location and button fields) become
  ``[masked]``; the signature cannot match any more and is replaced by ``MASKED_SIGNATURE``, so
  replay these with ``--skip-signature``;
- ``mask="all"``: as ``text``, and every phone number is replaced by a keyed pseudonym
  (``Pseudonyms``): the same number always gets the same pseudonym, so a world put through
  ``Pseudonyms.document`` with the same key still matches the events (``python -m tools.dryrun.capture
  world`` does that, and replaces the world's credentials, so that the pair can be shared).

``S3Capture`` stores each event under ``s3://bucket/prefix/YYYY/MM/DD/HH/<time>-<MessageSid>.json``;
a failed write is logged and never affects the webhook. ``python -m tools.dryrun.capture`` masks
event files or pseudonymizes a world file the same way (docs/recording-events.md).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from tools.dryrun.mask import MASKED_TEXT, PERSONAL_TEXT_KEYS

__all__ = ["MASKED_SIGNATURE", "MASK_MODES", "Pseudonyms", "S3Capture", "recordable", "redacted_secret"]

logger = logging.getLogger("tools.dryrun.capture")

MASK_MODES = ("none", "text", "all")
MASKED_SIGNATURE = "masked-recording"
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-amz-security-token", "x-api-key", "x-amz-date"}
)
_NUMBER = re.compile(r"(?<![0-9A-Za-z_+])(\+?)([0-9]{7,15})(?![0-9A-Za-z_])")


class Pseudonyms:
    """Replaces phone numbers with keyed pseudonyms of the same length (same number, same pseudonym)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def _digits(self, match: re.Match[str]) -> str:
        sign, digits = match.group(1), match.group(2)
        stream = hmac.new(self._key, digits.encode(), hashlib.sha256).hexdigest()
        return sign + "".join(str(int(stream[i : i + 2], 16) % 10) for i in range(0, 2 * len(digits), 2))

    def text(self, value: str) -> str:
        """``value`` with every phone number replaced."""
        return _NUMBER.sub(self._digits, value)

    def document(self, value: Any) -> Any:
        """A JSON document (a world, an item) with every phone number in its strings replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(name)): self.document(item) for name, item in value.items()}
        if isinstance(value, list):
            return [self.document(item) for item in value]
        return value


def _headers(headers: Any) -> Any:
    if not isinstance(headers, Mapping):
        return headers
    return {name: value for name, value in headers.items() if str(name).lower() not in _CREDENTIAL_HEADERS}


def _is_form(event: Mapping[str, Any]) -> bool:
    """Whether the event's body is declared as (or, undeclared, taken for) a urlencoded form."""
    for section in ("headers", "multiValueHeaders"):
        headers = event.get(section)
        for name, value in headers.items() if isinstance(headers, Mapping) else ():
            if str(name).lower() == "content-type":
                text = value[-1] if isinstance(value, list) and value else value
                return str(text).split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
    return True


def _masked_body(event: Mapping[str, Any], pseudonyms: Pseudonyms | None) -> str | None:
    """The form body with its personal fields masked; any other body is dropped (it cannot be masked field by field)."""
    raw = event.get("body")
    if not isinstance(raw, str):
        return None
    if not _is_form(event):
        return ""
    try:
        text = base64.b64decode(raw, validate=True).decode() if event.get("isBase64Encoded") else raw
    except (binascii.Error, UnicodeDecodeError):
        return ""
    pairs = []
    for name, value in parse_qsl(text, keep_blank_values=True):
        if value and name.lower() in PERSONAL_TEXT_KEYS:
            value = MASKED_TEXT
        elif pseudonyms is not None:
            value = pseudonyms.text(value)
        pairs.append((name, value))
    form = urlencode(pairs)
    return base64.b64encode(form.encode()).decode() if event.get("isBase64Encoded") else form


def recordable(event: Mapping[str, Any], *, mask: str = "none", pseudonyms: Pseudonyms | None = None) -> dict[str, Any]:
    """A copy of ``event`` fit to store for replay (see the module docstring for ``mask``)."""
    if mask not in MASK_MODES:
        raise ValueError(f"mask must be one of {', '.join(MASK_MODES)}")
    if mask == "all" and pseudonyms is None:
        raise ValueError('mask="all" needs pseudonyms (a key) so that numbers still match the world')
    copy = dict(event)
    for section in ("headers", "multiValueHeaders"):
        copy[section] = _headers(copy.get(section))
    context = copy.get("requestContext")
    if isinstance(context, Mapping):
        copy["requestContext"] = {k: v for k, v in context.items() if k not in ("authorizer", "identity")}
    if mask == "none":
        return copy
    body = _masked_body(copy, pseudonyms if mask == "all" else None)
    if body is not None:
        copy["body"] = body
    for section in ("headers", "multiValueHeaders"):
        headers = copy.get(section)
        if isinstance(headers, Mapping):
            copy[section] = {
                name: (
                    ([MASKED_SIGNATURE] if isinstance(value, list) else MASKED_SIGNATURE)
                    if str(name).lower() == "x-twilio-signature"
                    else value
                )
                for name, value in headers.items()
            }
    return copy


def _message_sid(event: Mapping[str, Any]) -> str:
    try:
        from runtime.apigateway import http_request

        fields = dict(parse_qsl(http_request(event).text()))
    except (ValueError, TypeError):
        fields = {}
    sid = fields.get("MessageSid", "")
    return sid if re.fullmatch(r"[A-Za-z0-9]{2,64}", sid) else uuid.uuid4().hex


class S3Capture:
    """Stores recordable events in S3 (server-side encrypted); never raises into the webhook."""

    def __init__(self, client: Any, uri: str, *, mask: str = "none", pseudonyms: Pseudonyms | None = None) -> None:
        match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
        if match is None:
            raise ValueError(f"{uri!r} is not an s3://bucket/prefix/ URI")
        recordable({}, mask=mask, pseudonyms=pseudonyms)  # checks the options once
        self._client = client
        self._bucket = match.group(1)
        self._prefix = match.group(2) if not match.group(2) or match.group(2).endswith("/") else match.group(2) + "/"
        self._mask = mask
        self._pseudonyms = pseudonyms

    @classmethod
    def from_env(cls, env: Mapping[str, str], client: Any = None) -> S3Capture | None:
        """Capture as ``DRYRUN_CAPTURE_S3_URI`` / ``DRYRUN_CAPTURE_MASK`` / ``DRYRUN_CAPTURE_KEY`` say (None: off)."""
        uri = env.get("DRYRUN_CAPTURE_S3_URI", "").strip()
        if not uri:
            return None
        key = env.get("DRYRUN_CAPTURE_KEY", "")
        pseudonyms = Pseudonyms(key.encode()) if key else None
        if client is None:
            import boto3

            client = boto3.client("s3")
        return cls(client, uri, mask=env.get("DRYRUN_CAPTURE_MASK", "text").strip() or "text", pseudonyms=pseudonyms)

    def record(self, event: Mapping[str, Any], now: datetime | None = None) -> str | None:
        """Store ``event``; return its object key, or None when it could not be stored."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        key = f"{self._prefix}{moment:%Y/%m/%d/%H}/{moment:%Y%m%dT%H%M%S%f}-{_message_sid(event)}.json"
        try:
            body = json.dumps(recordable(event, mask=self._mask, pseudonyms=self._pseudonyms), ensure_ascii=False)
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body.encode(),
                ContentType="application/json",
                ServerSideEncryption="AES256",
            )
        except Exception as exc:  # noqa: BLE001 - capturing is best effort; the webhook must not notice
            logger.warning("event capture failed: %s", type(exc).__name__)
            return None
        return key


def redacted_secret(secret_string: str) -> Any:
    """A secret fit to share: credential fields replaced (``…_sid`` identifiers kept); replay with --skip-signature."""
    try:
        document = json.loads(secret_string)
    except ValueError:
        return "redacted"
    if not isinstance(document, dict):
        return "redacted"
    return {name: value if str(name).lower().endswith("_sid") else "redacted" for name, value in document.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.dryrun.capture``: mask event files, or pseudonymize a world, for sharing."""
    parser = argparse.ArgumentParser(prog="python -m tools.dryrun.capture", description=main.__doc__)
    parser.add_argument("what", choices=("events", "world"), help="the files are events, or one world file")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--mask", choices=MASK_MODES, default="text", help="for events (default: text)")
    parser.add_argument("--key-env", metavar="NAME", help="environment variable holding the pseudonym key")
    args = parser.parse_args(argv)
    key = os.environ.get(args.key_env, "") if args.key_env else ""
    pseudonyms = Pseudonyms(key.encode()) if key else None
    if args.what == "world":
        from tools.dryrun.world import load_world

        if pseudonyms is None:
            parser.error("pseudonymizing a world needs --key-env NAME")
        for path in args.files:
            spec = load_world(path)
            document = {
                **({"now": spec.now.isoformat()} if spec.now else {}),
                **{section: [dict(row) for row in rows] for section, rows in spec.rows.items() if rows},
                "secrets": {name: redacted_secret(value) for name, value in spec.secrets.items()},
            }
            sys.stdout.write(json.dumps(pseudonyms.document(document), ensure_ascii=False, indent=1) + "\n")
        return 0
    from tools.dryrun.events import load_events

    for recorded in load_events(args.files):
        sys.stdout.write(json.dumps(recordable(recorded.event, mask=args.mask, pseudonyms=pseudonyms)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
