"""``secrets.auth_token``: the tenant's Twilio signing secret, from a per-container cache."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.context import Context, StepResult
from engine.errors import StepFailure, TransientFault
from engine.ports import AwsCallError
from engine.registry import BuildInfo, register
from engine.secrets import CachedSecret, Redacted, SecretCache, SecretFormatError

__all__ = ["AuthToken", "SigningKey", "fetch_secret", "signing_key"]


class SigningKey:
    """The key a request must be signed with, and whether it came from the cache."""

    __slots__ = ("cached", "field", "secret_name", "value")

    def __init__(self, secret_name: str, field: str, value: Redacted, cached: bool) -> None:
        self.secret_name = secret_name
        self.field = field
        self.value = value
        self.cached = cached


def fetch_secret(
    cache: SecretCache, name: str, *, max_age: float | None = None, refresh_interval: float | None = None
) -> CachedSecret | None:
    """Get (or, with ``refresh_interval``, force-refresh) a secret; AWS errors become domain errors."""
    try:
        if refresh_interval is not None:
            return cache.refresh(name, refresh_interval)
        return cache.get(name, max_age or 0.0)
    except AwsCallError as exc:
        if exc.transient:
            raise TransientFault("SECRET_FETCH_TRANSIENT_ERROR", f"secret fetch failed: {exc.code}") from None
        raise StepFailure("SECRET_FETCH_FAILED", f"secret fetch failed: {exc.code}") from None
    except SecretFormatError as exc:
        raise StepFailure("SECRET_FETCH_FAILED", f"secret is unusable: {exc}") from None


def signing_key(secret: CachedSecret, secret_name: str, field: str) -> SigningKey:
    """The non-blank ``field`` of ``secret`` (surrounding whitespace ignored)."""
    raw = secret.fields.get(field)
    value = raw.reveal().strip() if raw is not None else ""
    if not value:
        raise StepFailure("SECRET_FETCH_FAILED", f"secret has no {field}")
    return SigningKey(secret_name, field, Redacted(value), secret.cached)


@register(
    "secrets.auth_token",
    provides="auth",
    requires=("request", "credential"),
    iam=("secretsmanager:GetSecretValue",),
    deadline_code="SECRET_FETCH_TRANSIENT_ERROR",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "cache_ttl_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
            "token_field": {"type": "string", "minLength": 1},
            "webhook_key_field": {"type": "string", "minLength": 1},
        },
    },
    example={"cache_ttl_seconds": 300},
)
class AuthToken:
    """Fetch the credential secret (cached per secret name) and pick the signing key from it."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._ttl = float(params.get("cache_ttl_seconds", 300))
        self._token_field = str(params.get("token_field", "twilio_auth_token"))
        self._key_field = str(params.get("webhook_key_field", "twilio_webhook_key"))

    def field_for(self, ctx: Context) -> str:
        """The auth token, or the webhook key when the request was signed with a shared key."""
        return self._key_field if ctx.private.get("signature_settings") else self._token_field

    def run(self, ctx: Context) -> StepResult:
        name = ctx.doc["credential"]["secret_name"]
        secret = fetch_secret(ctx.services.secrets, name, max_age=self._ttl)
        assert secret is not None
        key = signing_key(secret, name, self.field_for(ctx))
        ctx.private["signing_key"] = key
        source = "cache" if key.cached else "fetched"
        return StepResult(output={"cached": key.cached, "field": key.field}, decision=source)
