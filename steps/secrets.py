"""``secrets.fetch``: the tenant's verification secret, from a per-container cache.

The secret's name comes from the document (``credential.secret_name`` by default); the field used as the
signing key is ``field``, or the one ``field_from`` names for this request (Twilio's shared-key signing
names another field, say). The key goes to ``Context.private["signing_key"]``, never to the document.

A field the request names is named by unauthenticated data: a secret without it means the request cannot be
authentic (the tenant never configured that key), so the signature step refuses it (``INVALID_SIGNATURE``)
rather than this step failing the event as a lost message (``SECRET_FETCH_FAILED``) that anyone could provoke.

A cached copy that lacks the field (or holds it blank) may predate the field being filled in, so it is
fetched once more before the request fails; like the re-fetch after a failed check (a rotated key), at
most once per secret per ``refetch_interval_seconds``. A freshly fetched secret without it fails at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.context import Context, StepResult
from engine.errors import ErrorSpec, StepFailure
from engine.ports import ServiceError
from engine.registry import BuildInfo, IamGrant, Resource, register
from engine.secrets import CachedSecret, Redacted, SecretCache, SecretFormatError
from steps.support import expression_param, service_failure

__all__ = [
    "FETCH_FAILED",
    "FETCH_TRANSIENT",
    "SecretFetch",
    "SigningKey",
    "check_signing_key",
    "fetch_secret",
    "fetch_signing_key",
    "signing_key",
]

FETCH_FAILED = ErrorSpec(
    "SECRET_FETCH_FAILED", description="the secret is missing, unreadable or has no key", loses_message=True
)
FETCH_TRANSIENT = ErrorSpec(
    "SECRET_FETCH_TRANSIENT_ERROR", transient=True, description="Secrets Manager did not answer"
)


class SigningKey:
    """The key a request must be signed with, and whether it came from the cache.

    ``absent``: the secret has no such (request-named) field, so no signature can be valid. ``requested``: the
    request named the field (so a secret without it, re-fetched as well, makes the key absent, never an error).
    """

    __slots__ = ("absent", "cached", "field", "requested", "secret_name", "value")

    def __init__(
        self,
        secret_name: str,
        field: str,
        value: Redacted,
        cached: bool,
        *,
        absent: bool = False,
        requested: bool = False,
    ) -> None:
        self.secret_name = secret_name
        self.field = field
        self.value = value
        self.cached = cached
        self.absent = absent
        self.requested = requested


def fetch_secret(
    cache: SecretCache, name: str, *, max_age: float | None = None, refresh_interval: float | None = None
) -> CachedSecret | None:
    """Get (or, with ``refresh_interval``, force-refresh) a secret; service errors become step errors."""
    try:
        if refresh_interval is not None:
            return cache.refresh(name, refresh_interval)
        return cache.get(name, max_age or 0.0)
    except ServiceError as exc:
        raise service_failure(exc, FETCH_TRANSIENT.code, FETCH_FAILED.code, "secret fetch") from None
    except SecretFormatError as exc:
        # What to repair, as the event line's error_cause (never a value): the secret's text is no JSON object.
        raise StepFailure(
            FETCH_FAILED.code, f"secret is unusable: {exc}", cause="SecretString:not-json-object"
        ) from None


def _field_value(secret: CachedSecret, field: str) -> str:
    """The field's text (stripped); empty when absent (``SecretCache`` keeps string fields only)."""
    raw = secret.fields.get(field)
    return raw.reveal().strip() if raw is not None else ""


def signing_key(secret: CachedSecret, secret_name: str, field: str, *, requested: bool = False) -> SigningKey:
    """The non-blank string ``field`` of ``secret`` (surrounding whitespace ignored).

    Without it: SECRET_FETCH_FAILED, or for a ``requested`` field (named by the request) an absent key.
    """
    value = _field_value(secret, field)
    if not value and not requested:
        raise StepFailure(FETCH_FAILED.code, f"secret has no {field}", cause=f"{field}:absent")
    return SigningKey(secret_name, field, Redacted(value), secret.cached, absent=not value, requested=requested)


def fetch_signing_key(
    cache: SecretCache, name: str, field: str, *, max_age: float, refetch_interval: float, requested: bool = False
) -> SigningKey:
    """The ``field`` of secret ``name``, from the cache when there; a cached copy without it is fetched again.

    That re-fetch shares the rate limit of ``check_signing_key``'s (one per secret per ``refetch_interval``).
    """
    secret = fetch_secret(cache, name, max_age=max_age)
    assert secret is not None
    if secret.cached and not _field_value(secret, field):
        fresh = fetch_secret(cache, name, refresh_interval=refetch_interval)
        secret = fresh if fresh is not None else secret
    return signing_key(secret, name, field, requested=requested)


def check_signing_key(ctx: Context, valid: Callable[[SigningKey], bool], refetch_interval: float) -> StepResult | None:
    """The signature step's result when ``valid`` accepts the fetched key, or else the key fetched once more.

    The re-fetch (a rotated key) happens only when the key came from the cache, and at most once per secret
    per ``refetch_interval`` so that forged requests cannot multiply Secrets Manager calls. None: neither is valid
    (always so for an absent key: ``secrets.fetch`` has already fetched it once more if it was cached).
    """
    key: SigningKey = ctx.private["signing_key"]
    if key.absent:
        return None
    if valid(key):
        return StepResult(output={"valid": True, "refetched": False}, decision="valid")
    if key.cached:
        fresh = fetch_secret(ctx.services.secrets, key.secret_name, refresh_interval=refetch_interval)
        if fresh is not None:
            renewed = signing_key(fresh, key.secret_name, key.field, requested=key.requested)
            ctx.private["signing_key"] = renewed
            if not renewed.absent and valid(renewed):
                return StepResult(output={"valid": True, "refetched": True}, decision="valid after re-fetch")
    return None


@register(
    "secrets.fetch",
    provides="auth",
    requires=("credential",),
    iam=(IamGrant(("secretsmanager:GetSecretValue",), (Resource("secret"),)),),
    errors=(FETCH_FAILED, FETCH_TRANSIENT),
    deadline_code=FETCH_TRANSIENT.code,
    authenticates=True,
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["field"],
        "properties": {
            "cache_ttl_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
            "secrets": {"type": "string", "description": "The secret-name pattern (under secrets:) read here."},
            "name_from": {
                "type": "string",
                "description": "JMESPath giving the secret's name (default: credential.secret_name).",
            },
            "field": {"type": "string", "minLength": 1, "description": "The field of the secret's JSON that signs."},
            "field_from": {
                "type": "string",
                "description": "JMESPath naming another field for this request (null: use field).",
            },
            "refetch_interval_seconds": {
                "type": "number",
                "minimum": 0,
                "maximum": 3600,
                "description": "Least time between forced re-fetches of one secret when its cached copy lacks "
                "the field (the signature step's re-fetches count too).",
            },
        },
    },
    example={"cache_ttl_seconds": 300, "field": "twilio_auth_token", "refetch_interval_seconds": 30},
)
class SecretFetch:
    """Fetch the credential secret (cached per secret name) and pick the signing key from it."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._ttl = float(params.get("cache_ttl_seconds", 300))
        self._interval = float(params.get("refetch_interval_seconds", 30))
        self._field = str(params["field"])
        self._name = expression_param(params, "name_from", "credential.secret_name")
        self._field_from = expression_param(params, "field_from", "") if params.get("field_from") is not None else None

    def run(self, ctx: Context) -> StepResult:
        name = self._name.search(ctx.doc)
        if not isinstance(name, str) or not name:
            raise StepFailure(FETCH_FAILED.code, "no secret name for this request")
        chosen = self._field_from.search(ctx.doc) if self._field_from is not None else None
        requested = isinstance(chosen, str) and bool(chosen)
        field = chosen if isinstance(chosen, str) and chosen else self._field
        key = fetch_signing_key(
            ctx.services.secrets, name, field, max_age=self._ttl, refetch_interval=self._interval, requested=requested
        )
        ctx.private["signing_key"] = key
        source = "cache" if key.cached else "fetched"
        return StepResult(output={"cached": key.cached, "field": key.field}, decision=source)
