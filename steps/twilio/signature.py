"""``twilio.signature``: check ``X-Twilio-Signature`` with twilio's own ``RequestValidator``.

On a mismatch with a cached key, the secret is fetched once more (a rotated token), at most once per
secret per ``refetch_interval_seconds`` so that forged requests cannot multiply Secrets Manager calls.
``sign`` computes the signature Twilio would send (tests and tools build signed events with it).

A ``mask=none`` recording keeps the signature as its digest only (``runtime.masking.signature_digest``): a
Twilio signature never expires, so a copy of it would be a request valid for ever. The webhook refuses such a
digest like any wrong signature; the step ``pipeline-dryrun`` runs (``for_recordings``) checks it instead.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from copy import copy as copy_of
from typing import Any
from urllib.parse import urlparse

import twilio.request_validator
from twilio.request_validator import RequestValidator, add_port, get_signature_algorithm, remove_port

from engine.context import Context, StepResult
from engine.errors import StepFailure
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.secrets import FETCH_FAILED, FETCH_TRANSIENT, SigningKey, check_signing_key
from steps.twilio.form import FormParams
from steps.twilio.parse import INVALID_SIGNATURE, SIGNATURE_HEADER

__all__ = ["DIGEST_PREFIX", "SignatureCheck", "is_recorded", "is_valid", "sign", "supported_algorithm"]

# How a recording's digested signature starts (``runtime.masking.SIGNATURE_DIGEST_PREFIX``; steps may not import it).
DIGEST_PREFIX = "sha256:"


def is_valid(url: str, form: FormParams, signature: str, key: SigningKey, settings: str | None) -> bool:
    """True when ``signature`` signs ``url`` and every form pair with ``key``."""
    algorithm = get_signature_algorithm(settings) if settings else None
    if algorithm is not None and not supported_algorithm(algorithm):
        return False
    validator = RequestValidator(key.value.reveal())
    # ``validate`` signs the URL without its port and with it, always both; the first is the one Twilio sends for
    # a URL it was given without a port, so when that matches (a form has no body hash) the second is not needed.
    # The comparison is the library's, looked up at each call as ``validate`` looks it up.
    if twilio.request_validator.compare(
        str(validator.compute_signature(remove_port(urlparse(url)), form, algorithm)), signature
    ):
        return True
    return bool(validator.validate(url, form, signature, algorithm=algorithm))


def is_recorded(url: str, form: FormParams, digest: str, key: SigningKey, settings: str | None) -> bool:
    """True when ``digest`` (a recording's ``sha256:…``) is the digest of the signature ``key`` makes over the request.

    As ``RequestValidator.validate``, the URL counts with and without its port.
    """
    if not digest.startswith(DIGEST_PREFIX):
        return False
    algorithm = get_signature_algorithm(settings) if settings else None
    validator = RequestValidator(key.value.reveal())
    parsed = urlparse(url)
    for candidate in (remove_port(parsed), add_port(parsed)):
        try:
            signature = str(validator.compute_signature(candidate, form, algorithm))
        except (KeyError, ValueError):  # an algorithm twilio does not know: no signature can match
            return False
        made = DIGEST_PREFIX + hashlib.sha256(signature.encode("utf-8")).hexdigest()
        # As bytes: compare_digest refuses text that is not ASCII, which a hand-edited recording may hold.
        if hmac.compare_digest(made.encode("ascii"), digest.encode("utf-8", "surrogatepass")):
            return True
    return False


def supported_algorithm(algorithm: str) -> bool:
    """Whether twilio's validator knows ``algorithm``, the text of the (unsigned) settings header.

    Asked through ``compute_signature``, which refuses an unknown one quietly: ``validate`` would log a
    WARNING quoting whatever the request put there.
    """
    try:
        RequestValidator("").compute_signature("", {}, algorithm)
    except (KeyError, ValueError):
        return False
    return True


def sign(url: str, form: Sequence[tuple[str, str]], token: str, algorithm: str | None = None) -> str:
    """The X-Twilio-Signature Twilio sends for ``form`` posted to ``url`` (twilio's own computation)."""
    return str(RequestValidator(token).compute_signature(url, FormParams(list(form)), algorithm))


@register(
    "twilio.signature",
    provides="signature",
    requires=("request", "auth"),
    iam=(IamGrant(("secretsmanager:GetSecretValue",), (Resource("secret"),)),),
    errors=(INVALID_SIGNATURE, FETCH_FAILED, FETCH_TRANSIENT),
    deadline_code=FETCH_TRANSIENT.code,
    authenticates=True,
    auth_headers=(SIGNATURE_HEADER,),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "refetch_interval_seconds": {
                "type": "number",
                "minimum": 0,
                "maximum": 3600,
                "description": "Least time between forced re-fetches of one secret after a failed check.",
            },
        },
    },
    example={"refetch_interval_seconds": 30},
)
class SignatureCheck:
    """Validate the signature; on failure with a cached key, re-fetch the secret once (rotation)."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._interval = float(params.get("refetch_interval_seconds", 30))
        self._recordings = False

    def for_recordings(self) -> SignatureCheck:
        """The check as ``pipeline-dryrun`` runs it: a recording's digested signature is checked too."""
        copy = copy_of(self)
        copy._recordings = True
        return copy

    def run(self, ctx: Context) -> StepResult:
        url = ctx.doc["request"]["url"]
        form: FormParams = ctx.private["form"]
        signature: str = ctx.private["signature"]
        settings: str | None = ctx.private.get("signature_settings")
        check = is_recorded if self._recordings and signature.startswith(DIGEST_PREFIX) else is_valid
        result = check_signing_key(ctx, lambda key: check(url, form, signature, key, settings), self._interval)
        if result is not None:
            return result
        raise StepFailure(INVALID_SIGNATURE.code, "X-Twilio-Signature does not match the request")
