"""Twilio's form parameters, as its request validator reads them."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["FormParams"]


class FormParams:
    """Form pairs as the Twilio validator reads them: every key, and every value of a repeated key."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def getall(self, name: str) -> list[str]:
        """Every value sent under ``name``."""
        return self._values[name]

    def first(self, name: str) -> str | None:
        """The first value sent under ``name``, or None."""
        values = self._values.get(name)
        return values[0] if values else None

    def as_fields(self) -> dict[str, str | list[str]]:
        """A JSON object of the form: one value, or a list for a repeated key."""
        return {name: values[0] if len(values) == 1 else list(values) for name, values in self._values.items()}
