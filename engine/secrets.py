"""A per-container cache of JSON secrets, with a rate-limited forced refresh.

Secret values are wrapped in ``Redacted`` so that no repr, log line or trace can show them. Only string
fields are kept: a field holding anything else (null, true/false, a number, a list, an object) is absent, so
that it can never become a guessable key such as ``false``, ``0`` or ``null``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.clock import Clock
from engine.ports import SecretStore, ServiceError

__all__ = ["CachedSecret", "Redacted", "SecretCache", "SecretFormatError"]


class Redacted:
    """A string that never shows itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value itself; pass it only to the code that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Redacted(***)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"


class SecretFormatError(Exception):
    """The secret exists but its SecretString is not a JSON object."""


@dataclass(frozen=True)
class CachedSecret:
    """A secret's fields; ``cached`` is True when it was served from the cache."""

    fields: Mapping[str, Redacted]
    cached: bool


class SecretCache:
    """Caches parsed secrets per name. Policies (max age, refresh spacing) come with each call."""

    def __init__(self, store: SecretStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._entries: dict[str, tuple[float, Mapping[str, Redacted]]] = {}
        self._last_forced: dict[str, float] = {}

    @property
    def store(self) -> SecretStore:
        """The store secrets are fetched from."""
        return self._store

    def get(self, name: str, max_age_seconds: float) -> CachedSecret:
        """The secret, from the cache when younger than ``max_age_seconds``, else fetched."""
        entry = self._entries.get(name)
        now = self._clock.monotonic()
        if entry is not None and now - entry[0] < max_age_seconds:
            return CachedSecret(entry[1], cached=True)
        return CachedSecret(self._fetch(name, now), cached=False)

    def refresh(self, name: str, min_interval_seconds: float) -> CachedSecret | None:
        """Fetch again, bypassing the cache, unless a forced refresh of ``name`` happened too recently.

        A refresh that failed transiently fetched nothing and does not count: the provider's retry of the
        request (a rotated key, say) must be able to fetch the secret again, not be refused with the stale one.
        """
        now = self._clock.monotonic()
        last = self._last_forced.get(name)
        if last is not None and now - last < min_interval_seconds:
            return None
        self._last_forced[name] = now
        try:
            return CachedSecret(self._fetch(name, now), cached=False)
        except ServiceError as exc:
            if exc.transient:  # put the last forced refresh back as it was
                if last is None:
                    self._last_forced.pop(name, None)
                else:
                    self._last_forced[name] = last
            raise

    def _fetch(self, name: str, now: float) -> Mapping[str, Redacted]:
        raw = self._store.get_secret_string(name)
        try:
            document: Any = json.loads(raw.removeprefix("\ufeff"))  # a byte order mark, as RFC 8259 allows
        except ValueError:
            raise SecretFormatError("SecretString is not valid JSON") from None
        if not isinstance(document, dict):
            raise SecretFormatError("SecretString is not a JSON object")
        # A field that is not a string is an absent one: its JSON text ("false", "0", "null") is no credential.
        fields = {str(k): Redacted(v) for k, v in document.items() if isinstance(v, str)}
        self._entries[name] = (now, fields)
        return fields
