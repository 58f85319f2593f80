"""``${env:NAME}`` references in configuration values.

A string that is exactly one reference takes the variable's value parsed as a YAML scalar, so
``delay: ${env:BATCH_WINDOW_SECONDS:-10}`` yields the integer 10 (a whole number only when written in decimal).
References inside longer strings are replaced textually. ``${env:NAME:-default}`` supplies a default for an
unset or empty variable.
An unset reference without a default is a problem (located at the reference) and keeps its text,
so that later checks can recognise it (``is_unresolved``) instead of reporting a knock-on error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.errors import Problem
from engine.locator import Locator

__all__ = ["ENV_REFERENCE", "is_unresolved", "resolve_env"]

ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# Values that YAML evidently reads as a decimal integer, or as the text itself: a word of safe characters
# that is not one of YAML 1.1's booleans or nulls, starting with a letter or with a dot no float starts with (``.+``,
# a pattern; not ``.5``, ``.inf``, ``.nan``). Anything else is left to PyYAML (imported only then).
_INTEGER = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_WORD = re.compile(r"(?:[A-Za-z]|\.(?![0-9_]|(?i:inf|nan)))[A-Za-z0-9_./+\-\[\]]*(?::[A-Za-z0-9_./+\-\[\]]+)*")
_YAML_WORDS = frozenset(
    variant
    for word in ("yes", "no", "true", "false", "on", "off", "null")
    for variant in (word, word.capitalize(), word.upper())
)


def _yaml_scalar(text: str) -> Any:
    """``text`` read as a YAML scalar (a string, number or boolean), else ``text`` itself.

    A whole number is one written in decimal: YAML 1.1 reads ``017`` as octal 15 and ``1:30`` as 90 (base 60),
    which is never what a variable's value meant; those stay text, for the schema to refuse.
    """
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, float, bool)) or _INTEGER.fullmatch(text.strip()) else text


def _scalar(text: str) -> Any:
    """``_yaml_scalar(text)``, without PyYAML for the values that are evidently an integer or a word."""
    if not text:
        return text
    if _INTEGER.fullmatch(text):
        return int(text)
    if _WORD.fullmatch(text) and text not in _YAML_WORDS:
        return text
    return _yaml_scalar(text)


class _Resolver:
    def __init__(self, env: Mapping[str, str], locator: Locator, missing_severity: str) -> None:
        self._env = env
        self._locator = locator
        self._severity = missing_severity
        self.problems: list[Problem] = []

    def lookup(self, match: re.Match[str], path: tuple[Any, ...]) -> str:
        name, default = match.group(1), match.group(2)
        found = self._env.get(name)
        if found and "${env:" in found:  # taken for an unset reference later, its type would go unchecked
            message = f"environment variable {name} holds ${{env:…}}, which is not resolved again; set the value itself"
            self.problems.append(self._locator.problem(path, message, offset=match.start(), kind="env"))
        value = found or default
        if value is not None:  # the text is no longer the file's: a character of it is placed at the value's start
            self._locator.strings.pop(path, None)
            return value
        state = "set to nothing" if name in self._env else "not set"
        message = f"environment variable {name} is {state}; set it or give a default with ${{env:{name}:-VALUE}}"
        self.problems.append(
            self._locator.problem(path, message, severity=self._severity, offset=match.start(), kind="env")
        )
        return match.group(0)

    def resolve(self, value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, dict):
            return {key: self.resolve(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, (*path, index)) for index, item in enumerate(value)]
        if not isinstance(value, str) or "${env:" not in value:
            return value
        whole = ENV_REFERENCE.fullmatch(value)
        if whole:
            resolved = self.lookup(whole, path)
            return resolved if resolved == value else _scalar(resolved)
        return ENV_REFERENCE.sub(lambda m: self.lookup(m, path), value)


def is_unresolved(value: Any) -> bool:
    """True when ``value`` is a string still holding an ``${env:…}`` reference (its variable was unset)."""
    return isinstance(value, str) and ENV_REFERENCE.search(value) is not None


def resolve_env(
    data: Any, env: Mapping[str, str], locator: Locator, *, missing_severity: str = "error"
) -> tuple[Any, list[Problem]]:
    """Replace every ``${env:…}`` reference; return the new data and the problems found."""
    resolver = _Resolver(env, locator, missing_severity)
    return resolver.resolve(data, ()), resolver.problems
