"""Check the ECDSA signature of a SendGrid Inbound Parse request (a parse "security policy" with signing).

SendGrid signs SHA-256 of the ``X-Twilio-Email-Event-Webhook-Timestamp`` value followed by the raw request
body with a P-256 key, and sends the base64 DER signature in ``X-Twilio-Email-Event-Webhook-Signature``;
the policy's public key is base64 DER SubjectPublicKeyInfo. ``cryptography`` is imported on first use,
not at module import (cold starts), and each distinct key string is loaded once.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

__all__ = [
    "DEFAULT_MAX_AGE_SECONDS",
    "DEFAULT_MAX_FUTURE_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "is_fresh",
    "is_valid_public_key",
    "verify",
]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DEFAULT_MAX_AGE_SECONDS = 300.0
DEFAULT_MAX_FUTURE_SECONDS = 60.0
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_KEY_CHARS = 1024
_MAX_SIGNATURE_CHARS = 256
_PEM_ARMOUR = re.compile(r"-----(BEGIN|END) PUBLIC KEY-----")


def verify(public_key: str, signature: str, timestamp: str, body: bytes) -> bool:
    """True when ``signature`` signs ``timestamp`` + ``body`` with ``public_key``; False for anything malformed."""
    if not _TIMESTAMP.fullmatch(timestamp):
        return False
    key = _load_public_key(public_key)
    raw_signature = _b64decode(signature, _MAX_SIGNATURE_CHARS)
    if key is None or raw_signature is None:
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    digest = hashlib.sha256(timestamp.encode("ascii"))
    digest.update(body)
    try:
        key.verify(raw_signature, digest.digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def is_fresh(
    timestamp: str,
    now: float,
    *,
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS,
) -> bool:
    """True when ``timestamp`` (unix seconds) is within the window around ``now`` (replays age out).

    It may be up to ``max_age_seconds`` before ``now`` and up to ``max_future_seconds`` after it (clock skew).
    """
    if not _TIMESTAMP.fullmatch(timestamp):
        return False
    age = now - int(timestamp)
    return -max_future_seconds <= age <= max_age_seconds


def is_valid_public_key(public_key: str) -> bool:
    """True when ``public_key`` is a P-256 public key as SendGrid gives it (base64 DER; PEM armour allowed)."""
    return _load_public_key(public_key) is not None


@lru_cache(maxsize=64)
def _load_public_key(public_key: str) -> EllipticCurvePublicKey | None:
    """The P-256 key in ``public_key``, or None; cached per key string (one per tenant, reused per request)."""
    der = _b64decode(_PEM_ARMOUR.sub("", public_key), _MAX_KEY_CHARS)
    if der is None:
        return None
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    return key


def _b64decode(value: str, max_chars: int) -> bytes | None:
    """Canonical standard base64 (whitespace ignored), or None."""
    compact = "".join(value.split())
    if not compact or len(compact) > max_chars or not compact.isascii():
        return None
    try:
        decoded = binascii.a2b_base64(compact, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if binascii.b2a_base64(decoded, newline=False) == compact.encode("ascii") else None
