"""Event capture: sampled webhook events, masked as configured, written to S3 while the pipeline runs.

Turned on by the environment (the template's ``EventCapture*`` parameters set it; no code changes):

=====================  ===============================================================================
``CAPTURE_S3_URI``     ``s3://bucket/prefix/``; unset or empty: no capture
``CAPTURE_MASK``       ``none``, ``text`` (default) or ``all`` (``runtime.masking``)
``CAPTURE_SAMPLE_RATE`` the share of events kept, 0 to 1 (default 1); chosen per sender/recipient pair, so a
                       conversation's events are kept or dropped together and its bursts replay whole
``CAPTURE_KEY_SECRET`` Secrets Manager secret holding the pseudonym key for ``all`` (its ``SecretString``,
                       or its ``pseudonym_key`` field); read once per container, by the capture thread
``CAPTURE_KEY``        the key itself, for local runs (``pipeline-serve``); the secret wins
``CAPTURE_WAIT_MS``    the most an answer waits for an unfinished write (default 200)
=====================  ===============================================================================

Off the request's critical path: ``start`` (as the invocation begins) takes the sample decision and hands
the event to one worker thread per container, which masks it and puts it while the pipeline runs;
``Pending.wait`` (once the answer is ready) waits for it at most ``CAPTURE_WAIT_MS``. A write still
running then is left to finish in the background; at most ``MAX_QUEUED`` events wait behind it, further
ones are dropped. The answer never depends on the capture: every failure (S3, the key, a full queue, a
write still running at the bound) is reported by the caller as one WARNING line and one
``CaptureFailures`` metric. Objects are ``prefix/YYYY/MM/DD/HH/<UTC time>-<MessageSid>.json``, so a
directory of them replays in arrival order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any

from runtime.aws import error_code, new_session
from runtime.masking import (
    FORM_MEDIA_TYPE,
    MASK_MODES,
    MAX_ADDRESS_LIST_CHARS,
    MAX_ENVELOPE_CHARS,
    Pseudonyms,
    body_media_type,
    form_values,
    multipart_fields,
    recordable,
)

__all__ = ["CaptureSettings", "EventCapture", "Pending"]

logger = logging.getLogger("runtime.capture")

DEFAULT_WAIT_MS = 200
MAX_QUEUED = 4
# The S3 put's own bounds: a stalled write gives up long before the Lambda's timeout.
CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
MAX_ATTEMPTS = 2
_SID = re.compile(r"[A-Za-z0-9]{2,64}")
_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?")


@dataclass(frozen=True)
class CaptureSettings:
    """Where and how events are captured."""

    bucket: str
    prefix: str
    mask: str = "text"
    sample_rate: float = 1.0
    key_secret: str | None = None
    key: bytes | None = None
    wait_seconds: float = DEFAULT_WAIT_MS / 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CaptureSettings | None:
        """The settings the environment gives; None when capture is off; ValueError naming a bad value."""
        uri = env.get("CAPTURE_S3_URI", "").strip()
        if not uri:
            return None
        match = _URI.fullmatch(uri)
        if match is None:
            raise ValueError(f"CAPTURE_S3_URI={uri!r} is not s3://bucket/prefix/")
        prefix = (match.group(2) or "").lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        mask = env.get("CAPTURE_MASK", "").strip() or "text"
        if mask not in MASK_MODES:
            raise ValueError(f"CAPTURE_MASK={mask!r}: choose one of {', '.join(MASK_MODES)}")
        rate = _number(env, "CAPTURE_SAMPLE_RATE", 1.0)
        if not 0 <= rate <= 1:
            raise ValueError(f"CAPTURE_SAMPLE_RATE={rate}: a share between 0 and 1")
        wait_ms = _number(env, "CAPTURE_WAIT_MS", DEFAULT_WAIT_MS)
        if not 0 <= wait_ms <= 5000:
            raise ValueError(f"CAPTURE_WAIT_MS={wait_ms}: between 0 and 5000")
        secret = env.get("CAPTURE_KEY_SECRET", "").strip() or None
        key = env.get("CAPTURE_KEY", "").encode() or None
        if mask == "all" and secret is None and key is None:
            raise ValueError("CAPTURE_MASK=all needs the pseudonym key: set CAPTURE_KEY_SECRET (or CAPTURE_KEY)")
        if key is not None and len(key) < 16:
            raise ValueError("CAPTURE_KEY must be at least 16 bytes")
        return cls(match.group(1), prefix, mask, rate, secret, key, wait_ms / 1000)

    def sampled(self, event: Any) -> bool:
        """Whether ``event`` is kept: by its sender/recipient pair when it has one, else at random."""
        if self.sample_rate >= 1:
            return True
        if self.sample_rate <= 0:
            return False
        pair = _pair(event) if isinstance(event, Mapping) else ["", ""]
        if not any(pair):
            return random.random() < self.sample_rate
        return zlib.crc32("\n".join(pair).encode()) / 2**32 < self.sample_rate


def _pair(event: Mapping[str, Any]) -> list[str]:
    """The conversation's two parties, sorted: a Twilio form's ``From`` and ``To`` (a status callback swaps them).

    An e-mail's (SendGrid's multipart form) are its author's address and the parse address it was sent to, read as
    ``sendgrid.parse`` reads them (``from``, else the envelope's; the envelope's first ``to``, else the ``to`` field),
    in lower case and without a subaddress, so a display name, a subject or a message id changes nothing.
    """
    email = multipart_fields(event)
    if not email:  # a form-encoded body (an email's text may hold "&To=" in a link: it is no Twilio form)
        fields = form_values(event, ("From", "To"))
        return sorted((fields.get("From", ""), fields.get("To", "")))
    raw = email.get("envelope", "")
    try:
        envelope = json.loads(raw) if len(raw) <= MAX_ENVELOPE_CHARS else None
    except (ValueError, RecursionError):
        envelope = None
    envelope = envelope if isinstance(envelope, dict) else {}
    to = envelope.get("to")
    recipients = [str(address) for address in (to if isinstance(to, list) else [to]) if address]
    sender = _addresses(email.get("from", "")) or _addresses(str(envelope.get("from") or ""))
    company = _addresses(recipients[0] if recipients else email.get("to", ""))
    local, at, domain = (company[0] if company else "").partition("@")
    return sorted((sender[0] if sender else "", local.split("+", 1)[0] + at + domain))


# An address list longer (``MAX_ADDRESS_LIST_CHARS``), or nested deeper, than this is not read, as ``sendgrid.parse``
# does not read it (its sender is then the envelope's): the standard library parses comments and groups recursively
# (RecursionError a few hundred levels down), and the list arrives before the signature is checked. Nor is an envelope
# longer than ``sendgrid.parse`` reads (``MAX_ENVELOPE_CHARS``), or nested too deep for ``json.loads``.
_MAX_ADDRESS_NESTING = 32
_COMMENT_MARKS = re.compile(r"[()]")


def _addresses(text: str) -> list[str]:
    """The addresses of an address list, in lower case; none when it is too long or too deeply nested to read."""
    if not _readable(text):
        return []
    try:
        pairs = getaddresses([text])
    except (RecursionError, LookupError, ValueError, TypeError, AttributeError, AssertionError):
        return []
    return [address.lower() for _, address in pairs if "@" in address]


def _readable(text: str) -> bool:
    """True when an address list is short and shallow enough to parse, by ``sendgrid.parse``'s bound."""
    if len(text) > MAX_ADDRESS_LIST_CHARS:
        return False
    depth = deepest = 0
    for mark in _COMMENT_MARKS.findall(text):
        depth = depth + 1 if mark == "(" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest + text.count(":") <= _MAX_ADDRESS_NESTING


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None


class Pending:
    """One event handed to the capture thread; ``wait`` says how it went."""

    def __init__(self, event: Any, moment: datetime) -> None:
        self.event = event
        self.moment = moment
        self.key: str | None = None
        self.failure: str | None = None
        self._done = threading.Event()

    def finish(self, key: str | None, failure: str | None) -> None:
        """Record the result (the capture thread)."""
        self.key, self.failure = key, failure
        self._done.set()

    def wait(self, timeout: float) -> str | None:
        """The failure (None when stored), waiting at most ``timeout`` seconds for the write."""
        if not self._done.wait(timeout):
            return f"write still running after {round(timeout * 1000)} ms"
        return self.failure


class _Clients:
    """boto3 clients for the capture thread, from a session of its own, each created on first use.

    The pipeline's clients share a session that is not safe to create clients from in two threads at once.
    """

    def __init__(self) -> None:
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str) -> Any:
        with self._lock:
            return self._clients.get(service) or self._create(service)

    def _create(self, service: str) -> Any:
        from botocore.config import Config

        if self._session is None:
            self._session = new_session()
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        )
        client = self._clients[service] = self._session.client(service, config=config)
        return client


class EventCapture:
    """Captures sampled events to S3 from a worker thread; see the module docstring."""

    def __init__(
        self,
        settings: CaptureSettings,
        auth_headers: Mapping[str, bool] | None = None,
        client: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._auth_headers = dict(auth_headers or {})
        self.client: Callable[[str], Any] = client or _Clients()
        self._pseudonyms: Pseudonyms | None = None
        self._clock = clock
        self._queue: queue.Queue[Pending | None] = queue.Queue(maxsize=MAX_QUEUED)
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], auth_headers: Mapping[str, bool] | None = None) -> EventCapture | None:
        """Capture as the environment configures it (None: off); ValueError for a bad setting."""
        settings = CaptureSettings.from_env(env)
        return None if settings is None else cls(settings, auth_headers)

    def start(self, event: Any) -> Pending | str | None:
        """Hand ``event`` to the capture thread: its ``Pending``, None when not sampled, or why it was dropped."""
        try:
            if not self.settings.sampled(event):
                return None
            pending = Pending(event, datetime.fromtimestamp(self._clock(), UTC))
            self._ensure_worker()
            self._queue.put_nowait(pending)
        except queue.Full:
            return f"dropped: {MAX_QUEUED} earlier captures are still waiting"
        except Exception as exc:  # noqa: BLE001 - the capture must never reach the webhook's answer
            return f"not started: {type(exc).__name__}"
        return pending

    def _ensure_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="event-capture", daemon=True)
                self._worker.start()

    def close(self) -> None:
        """End the capture thread once it has stored what it was given (a function replaced by a new one)."""
        self._closed = True
        with contextlib.suppress(queue.Full):  # full: the thread ends when it has emptied the queue
            self._queue.put_nowait(None)

    def _work(self) -> None:
        while not (self._closed and self._queue.empty()):
            pending = self._queue.get()
            if pending is None:
                continue
            try:
                pending.finish(self.store(pending.event, pending.moment), None)
            except Exception as exc:  # noqa: BLE001 - reported by the invocation that waits for it
                pending.finish(None, _reason(exc))

    def _key_bytes(self) -> bytes | None:
        if self.settings.key_secret is None:
            return self.settings.key
        secrets = self.client("secretsmanager")
        text = str(secrets.get_secret_value(SecretId=self.settings.key_secret)["SecretString"])
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict):
            text = str(document.get("pseudonym_key", ""))
        return text.strip().encode() or None

    def pseudonyms(self) -> Pseudonyms | None:
        """The keyed pseudonyms for ``mask=all`` (the key is read once per container); ``UnusableKey`` says why not."""
        if self.settings.mask != "all":
            return None
        if self._pseudonyms is None:
            key = self._key_bytes()
            if key is None:
                raise UnusableKey("the pseudonym key (CAPTURE_KEY_SECRET) is empty")
            if len(key) < 16:
                raise UnusableKey("the pseudonym key (CAPTURE_KEY_SECRET) is shorter than 16 bytes")
            self._pseudonyms = Pseudonyms(key)
        return self._pseudonyms

    def object_key(self, event: Any, moment: datetime) -> str:
        """``prefix/YYYY/MM/DD/HH/<time>-<MessageSid>.json`` (a random id when the event names no sid).

        Only a form post (Twilio's) names its sid: any other body (an email's) is read for none, or a link in its
        text (``…&MessageSid=447700900123&…``) would name the object, in the clear, however the object is masked.
        """
        form = isinstance(event, Mapping) and body_media_type(event) == FORM_MEDIA_TYPE
        sid = form_values(event, ("MessageSid",)).get("MessageSid", "") if form else ""
        name = sid if _SID.fullmatch(sid) else uuid.uuid4().hex
        return f"{self.settings.prefix}{moment:%Y/%m/%d/%H}/{moment:%Y%m%dT%H%M%S%f}-{name}.json"

    def store(self, event: Any, moment: datetime) -> str:
        """Mask ``event`` and put it; the object key. Raises on any failure."""
        if not isinstance(event, Mapping):
            raise TypeError("the event is not a JSON object")
        stored = recordable(
            event, mask=self.settings.mask, pseudonyms=self.pseudonyms(), auth_headers=self._auth_headers
        )
        stored["recording"]["captured_at"] = moment.isoformat().replace("+00:00", "Z")
        # Named as the object reads: with ``mask=all`` a number posted as the sid is its pseudonym there too.
        key = self.object_key(stored, moment)
        self.client("s3").put_object(
            Bucket=self.settings.bucket,
            Key=key,
            Body=json.dumps(stored, ensure_ascii=False).encode(),
            ContentType="application/json",
            ServerSideEncryption="AES256",
        )
        return key


class UnusableKey(LookupError):
    """The pseudonym key secret reads, but holds no usable key; the message names the setting, never the key."""


def _reason(exc: Exception) -> str:
    """A failure in words without data: the AWS error code, our own ``UnusableKey``'s message, else the type."""
    if isinstance(exc, UnusableKey):
        return str(exc)
    return error_code(exc) or type(exc).__name__
