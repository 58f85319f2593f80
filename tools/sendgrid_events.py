"""Build SendGrid Inbound Parse requests for tests and tools: the multipart body, and its ECDSA signature.

Signatures are deterministic (RFC 6979), so generated example events are reproducible.

The body has the fields SendGrid's default format posts (``headers``, ``dkim``, ``content-ids``, ``to``,
``from``, ``cc``, ``text``, ``html``, ``sender_ip``, ``spam_report``, ``envelope``, ``attachments``,
``subject``, ``spam_score``, ``attachment-info``, ``charsets``, ``SPF`` and ``attachment1..N`` files), or
the ``send_raw`` ones (the MIME message in ``email``), laid out like a captured SendGrid request. A
``KeyPair`` signs (timestamp + body) the way SendGrid does and hands out its public key in SendGrid's form.
``inbound_parse_event`` wraps a signed request in the API Gateway event the function receives (the one
builder of email events for ``pipeline-event``, ``examples/generate.py`` and the tests).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from steps.sendgrid.ecdsa import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tools.events import http_api_event, rest_event, stage_name

__all__ = [
    "BOUNDARY",
    "DOCS_PUBLIC_KEY",
    "ENVELOPE_FROM",
    "MESSAGE_ID",
    "RECIPIENT",
    "SENDER",
    "Attachment",
    "Email",
    "KeyPair",
    "SignedRequest",
    "encode_form",
    "inbound_parse_body",
    "inbound_parse_event",
    "inbound_parse_fields",
    "public_key_b64",
    "raw_mime_body",
    "signed",
]

BOUNDARY = "xYzZY"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NAME_ESCAPES = str.maketrans({"\n": "%0A", "\r": "%0D", '"': "%22"})
SENDER = "Jane Sender <Jane.Sender@Example.NET>"
ENVELOPE_FROM = "Bounces+Jane@Example.NET"
RECIPIENT = "support@parse.example.com"
MESSAGE_ID = "<CAF=1a2b3c.4d5e@Mail.Example.NET>"
# The example public key in SendGrid's "Securing your Inbound Parse Webhooks" page (a P-256 SPKI, base64 DER).
DOCS_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmgmjvPAR/Lmwn2teL2WJUDIx35PqsnLKjPhPbrKkfMg6vK4NZQB1VeFSKbV7whQbEJRFHjF8"
    "+1zJxsXRP1GbWw=="
)


@dataclass(frozen=True)
class Attachment:
    """A file to attach; ``content_id`` makes it inline."""

    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None


@dataclass(frozen=True)
class Email:
    """The email SendGrid received; each field has a harmless default."""

    sender: str = SENDER
    to: str = RECIPIENT
    cc: str = ""
    subject: str = "Order #1042: where is it?"
    text: str | None = "Hello,\nmy order has not arrived yet.\nJane"
    html: str | None = "<p>Hello,</p><p>my order has <b>not</b> arrived yet.</p><p>Jane</p>"
    message_id: str | None = MESSAGE_ID
    envelope_from: str = ENVELOPE_FROM
    envelope_to: tuple[str, ...] = (RECIPIENT,)
    attachments: tuple[Attachment, ...] = ()
    charset: str = "UTF-8"
    spam_score: str | None = "0.012"
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    spf: str = "pass"
    # The receiving server's DKIM results; None: a passing signature of the sender's own domain.
    dkim: str | None = None

    @property
    def dkim_results(self) -> str:
        """The ``dkim`` field SendGrid posts for this email."""
        if self.dkim is not None:
            return self.dkim
        domain = self.sender.rpartition("@")[2].strip().rstrip(">").lower()  # no parsing: a sender may be hostile
        return f"{{@{domain} : pass}}"


@dataclass(frozen=True)
class SignedRequest:
    """A signed Inbound Parse request: what an HTTP handler receives."""

    body: bytes
    content_type: str
    timestamp: str
    signature: str

    @property
    def headers(self) -> dict[str, str]:
        """The request headers that matter: Content-Type and SendGrid's two signature headers."""
        return {"Content-Type": self.content_type, SIGNATURE_HEADER: self.signature, TIMESTAMP_HEADER: self.timestamp}


class KeyPair:
    """A P-256 key pair standing in for a SendGrid security policy's."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())

    @classmethod
    def from_seed(cls, seed: str) -> KeyPair:
        """The same key pair for the same seed (examples only: anyone who knows the seed can sign)."""
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's group order
        secret = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big") % (order - 1) + 1
        return cls(ec.derive_private_key(secret, ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        """The public key as SendGrid hands it out (``policy.signature.public_key``)."""
        return public_key_b64(self.private_key.public_key())

    def sign(self, timestamp: str, body: bytes) -> str:
        """The ``X-Twilio-Email-Event-Webhook-Signature`` value for ``timestamp`` and ``body``."""
        algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        signature = self.private_key.sign(timestamp.encode("ascii") + body, algorithm)
        return base64.b64encode(signature).decode("ascii")


def public_key_b64(key: ec.EllipticCurvePublicKey) -> str:
    """Base64 of the key's DER SubjectPublicKeyInfo (no PEM armour), as SendGrid gives it."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def signed(key: KeyPair, body: bytes, content_type: str, *, timestamp: int | str | None = None) -> SignedRequest:
    """``body`` signed with ``key`` at ``timestamp`` (unix seconds; now by default)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return SignedRequest(body, content_type, stamp, key.sign(stamp, body))


def inbound_parse_event(
    request: SignedRequest,
    *,
    host: str = "hooks.example.com",
    path: str = "/prod/email",
    http_api: bool = False,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    request_id: str | None = None,
    request_time_ms: int | None = None,
) -> dict[str, Any]:
    """The API Gateway event of ``request`` posted by SendGrid to ``https://{host}{path}``.

    REST (payload 1.0; the multipart body base64, as API Gateway passes binary media types), or HTTP API
    (2.0) with ``http_api``; the stage is the segment before the channel's. ``headers`` add to (or replace)
    SendGrid's, ``body`` replaces the signed body (a post altered on the way). A REST event's request id is
    random and its time now unless ``request_id`` is given; ``request_time_ms`` is its arrival time (an HTTP API
    event's too).
    """
    sent = {
        "Host": host,
        "User-Agent": "Sendlib/1.0",
        "X-Forwarded-Proto": "https",
        **request.headers,
        **(headers or {}),
    }
    data = request.body if body is None else body
    stage = stage_name(path.rpartition("/")[0])
    if http_api:
        return http_api_event(
            "POST", path, host=host, headers=sent, body=data, stage=stage, request_time_ms=request_time_ms
        )
    return rest_event(
        "POST",
        path,
        host=host,
        headers=sent,
        body=data,
        stage=stage,
        base64_body=True,
        source_ip=None,
        request_id=request_id,
        request_time_ms=request_time_ms,
    )


def encode_form(
    fields: Sequence[tuple[str, str | bytes]],
    files: Sequence[tuple[str, Attachment]] = (),
    *,
    boundary: str = BOUNDARY,
) -> tuple[bytes, str]:
    """A multipart/form-data body (str values as UTF-8) and its Content-Type, laid out as SendGrid does.

    Field and file names are written as browsers write them (``_quoted_name``): a quote or a line break in one
    cannot end the parameter or the header line, so each part has one Content-Disposition naming it.
    """
    dash = b"--" + boundary.encode("ascii")
    chunks: list[bytes] = []
    for name, value in fields:
        data = value.encode("utf-8") if isinstance(value, str) else value
        disposition = f"Content-Disposition: form-data; name={_quoted_name(name)}\r\n\r\n"
        chunks += [dash, b"\r\n", disposition.encode(), data, b"\r\n"]
    for name, attachment in files:
        filename = _quoted_name(attachment.filename, of_file=True)
        disposition = f"Content-Disposition: form-data; name={_quoted_name(name)}; filename={filename}\r\n"
        head = disposition + f"Content-Type: {attachment.content_type}\r\n\r\n"
        chunks += [dash, b"\r\n", head.encode("utf-8"), attachment.data, b"\r\n"]
    chunks += [dash, b"--\r\n"]
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _quoted_name(name: str, *, of_file: bool = False) -> str:
    """A field (or file) name quoted as the WHATWG multipart/form-data encoding writes it, as browsers and curl do.

    A field name's line breaks become CRLF; then LF, CR and ``"`` are written ``%0A``, ``%0D`` and ``%22``, and
    nothing else is escaped: readers keep those escapes as written. A backslash is written as it is, so a MIME
    reader takes two in a row, or one before the closing quote, for an escape (as it does in a browser's form).
    """
    if not of_file:
        name = _LINE_BREAK.sub("\r\n", name)
    return '"' + name.translate(_NAME_ESCAPES) + '"'


def inbound_parse_body(email: Email | None = None, *, boundary: str = BOUNDARY) -> tuple[bytes, str]:
    """The default-format (parsed) Inbound Parse body for ``email``, and its Content-Type."""
    fields, files = inbound_parse_fields(email or Email())
    return encode_form(fields, files, boundary=boundary)


def inbound_parse_fields(email: Email) -> tuple[list[tuple[str, str | bytes]], list[tuple[str, Attachment]]]:
    """The default-format form fields (in SendGrid's order) and file parts for ``email``, for ``encode_form``."""
    files = [(f"attachment{number}", attachment) for number, attachment in enumerate(email.attachments, start=1)]
    info = {
        name: {"filename": a.filename, "name": a.filename, "type": a.content_type}
        | ({"content-id": a.content_id} if a.content_id else {})
        for name, a in files
    }
    content_ids = {a.content_id: name for name, a in files if a.content_id}
    report = "Spam detection software has NOT identified this incoming email as spam."
    values: dict[str, str | None] = {
        "headers": _headers(email),
        "dkim": email.dkim_results,
        "content-ids": json.dumps(content_ids) if content_ids else None,
        "to": email.to,
        "from": email.sender,
        "cc": email.cc or None,
        "text": email.text,
        "html": email.html,
        "sender_ip": "192.0.2.25",
        "spam_report": report if email.spam_score is not None else None,
        "envelope": json.dumps({"to": list(email.envelope_to), "from": email.envelope_from}),
        "attachments": str(len(files)),
        "subject": email.subject,
        "spam_score": email.spam_score,
        "attachment-info": json.dumps(info) if info else None,
    }
    encoded = [name for name in ("to", "from", "cc", "subject", "text", "html") if values[name] is not None]
    values["charsets"] = json.dumps(dict.fromkeys(encoded, email.charset))
    values["SPF"] = email.spf
    fields: list[tuple[str, str | bytes]] = [
        (name, value.encode(email.charset) if name in encoded else value)
        for name, value in values.items()
        if value is not None
    ]
    return fields, files


def raw_mime_body(email: Email | None = None, *, boundary: str = BOUNDARY) -> tuple[bytes, str]:
    """The ``send_raw`` Inbound Parse body for ``email`` (MIME message in ``email``), and its Content-Type."""
    email = email or Email()
    fields: list[tuple[str, str | bytes]] = [
        ("dkim", email.dkim_results),
        ("email", _mime(email)),
        ("to", email.to),
        ("from", email.sender),
        ("sender_ip", "192.0.2.25"),
        ("envelope", json.dumps({"to": list(email.envelope_to), "from": email.envelope_from})),
        ("subject", email.subject),
        ("charsets", json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8"})),
        ("SPF", email.spf),
    ]
    if email.spam_score is not None:
        fields.append(("spam_score", email.spam_score))
    return encode_form(fields, boundary=boundary)


def _headers(email: Email) -> str:
    """The raw header block SendGrid puts in ``headers``."""
    lines = [
        "Received: from mail.example.net (mail.example.net [192.0.2.25]) by mx.sendgrid.net with ESMTP id abc123",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=s1;",
        " h=from:to:subject; bh=AAAA; b=BBBB",
        "MIME-Version: 1.0",
        f"From: {email.sender}",
        "Date: Tue, 3 Jun 2025 05:42:51 +0100",
        *([f"Message-ID: {email.message_id}"] if email.message_id is not None else []),
        f"Subject: {email.subject}",
        f"To: {email.to}",
        *([f"Cc: {email.cc}"] if email.cc else []),
        *(f"{name}: {value}" for name, value in email.extra_headers.items()),
        'Content-Type: multipart/alternative; boundary="000000000000a1b2c3"',
    ]
    return "\n".join(lines) + "\n"


def _mime(email: Email) -> bytes:
    """The email as the raw MIME message SendGrid received."""
    message = EmailMessage()
    message["From"] = email.sender
    message["To"] = email.to
    if email.cc:
        message["Cc"] = email.cc
    message["Subject"] = email.subject
    if email.message_id is not None:
        message["Message-ID"] = email.message_id
    for name, value in email.extra_headers.items():
        message[name] = value
    if email.text is not None:
        message.set_content(email.text, charset=email.charset.lower())
    if email.html is not None:
        if email.text is None:
            message.set_content(email.html, subtype="html")
        else:
            message.add_alternative(email.html, subtype="html")
    for attachment in email.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
            cid=f"<{attachment.content_id}>" if attachment.content_id else None,
        )
    return message.as_bytes(policy=SMTP)
