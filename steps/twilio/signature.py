"""``twilio.signature``: check ``X-Twilio-Signature`` with twilio's own ``RequestValidator``.

On a mismatch with a cached key, the secret is fetched once more (a rotated token), at most once per
secret per ``refetch_interval_seconds`` so that forged requests cannot multiply Secrets Manager calls.
``sign`` computes the signature Twilio would send (tests and tools build signed events with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twilio.request_validator import RequestValidator, get_signature_algorithm

from engine.context import Context, StepResult
from engine.errors import StepFailure
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.secrets import FETCH_FAILED, FETCH_TRANSIENT, SigningKey, check_signing_key
from steps.twilio.form import FormParams
from steps.twilio.parse import INVALID_SIGNATURE, SIGNATURE_HEADER

__all__ = ["SignatureCheck", "is_valid", "sign"]


def is_valid(url: str, form: FormParams, signature: str, key: SigningKey, settings: str | None) -> bool:
    """True when ``signature`` signs ``url`` and every form pair with ``key``."""
    algorithm = get_signature_algorithm(settings) if settings else None
    return bool(RequestValidator(key.value.reveal()).validate(url, form, signature, algorithm=algorithm))


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
            "secrets": {"type": "string", "description": "The secret-name pattern (under secrets:) re-read here."},
        },
    },
    example={"refetch_interval_seconds": 30},
)
class SignatureCheck:
    """Validate the signature; on failure with a cached key, re-fetch the secret once (rotation)."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._interval = float(params.get("refetch_interval_seconds", 30))

    def run(self, ctx: Context) -> StepResult:
        url = ctx.doc["request"]["url"]
        form: FormParams = ctx.private["form"]
        signature: str = ctx.private["signature"]
        settings: str | None = ctx.private.get("signature_settings")
        result = check_signing_key(ctx, lambda key: is_valid(url, form, signature, key, settings), self._interval)
        if result is not None:
            return result
        raise StepFailure(INVALID_SIGNATURE.code, "X-Twilio-Signature does not match the request")
