"""``sendgrid.signature``: check SendGrid's ECDSA signature of the Inbound Parse request.

The verification key is the tenant's security-policy public key, fetched (and cached) by ``secrets.fetch``
into ``Context.private["signing_key"]``. On a mismatch with a cached key, the secret is fetched once more
(a rotated key), at most once per secret per ``refetch_interval_seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.context import Context, StepResult
from engine.errors import StepFailure
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.secrets import FETCH_FAILED, FETCH_TRANSIENT, SigningKey, check_signing_key
from steps.sendgrid.ecdsa import SIGNATURE_HEADER, verify
from steps.sendgrid.parse import INVALID_SIGNATURE

__all__ = ["SendGridSignature"]


def _valid(key: SigningKey, signed: tuple[str, str, bytes]) -> bool:
    signature, timestamp, body = signed
    return verify(key.value.reveal(), signature, timestamp, body)


@register(
    "sendgrid.signature",
    provides="signature",
    requires=("request", "auth"),
    iam=(IamGrant(("secretsmanager:GetSecretValue",), (Resource("secret"),)),),
    errors=(INVALID_SIGNATURE, FETCH_FAILED, FETCH_TRANSIENT),
    deadline_code=FETCH_TRANSIENT.code,
    authenticates=True,
    # The timestamp is signed data, not a credential: a masked recording keeps it for the replay's window.
    auth_headers=(SIGNATURE_HEADER,),
    signature_expires=True,
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "refetch_interval_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
        },
    },
    example={"refetch_interval_seconds": 30},
)
class SendGridSignature:
    """Verify the signature over (timestamp + body); on failure with a cached key, re-fetch it once."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._interval = float(params.get("refetch_interval_seconds", 30))

    def run(self, ctx: Context) -> StepResult:
        signed: tuple[str, str, bytes] = ctx.private["signed"]
        result = check_signing_key(ctx, lambda key: _valid(key, signed), self._interval)
        if result is not None:
            return result
        raise StepFailure(INVALID_SIGNATURE.code, "the SendGrid signature does not match the request")
