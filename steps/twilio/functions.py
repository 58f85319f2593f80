"""Expression functions for Twilio addresses: ``e164('whatsapp:+1415…')`` → ``+1415…``."""

from __future__ import annotations

from steps.functions import register_typed

__all__ = ["e164"]


def e164(value: str | None) -> str | None:
    """The E.164 number of a Twilio address (its channel prefix removed)."""
    if value is None:
        return None
    return value.split(":", 1)[1] if ":" in value else value


register_typed("e164", [["string", "null"]], e164)
