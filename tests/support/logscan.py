"""A pytest plugin: no log line at INFO or above may carry a token, a body, a phone number, an address or a name.

Every record that reaches the root logger during a test is formatted as the Lambda logs it
(``runtime.logs.JsonFormatter``); the test fails in teardown when a line contains one of the sensitive
values the tests use (``SENSITIVE``, plus whatever the test passed to ``forbid``). A value matches only as
a whole token, so the token ``12345`` does not match inside ``"ms": 123456.7``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator

import pytest

from runtime.logs import JsonFormatter
from tests.support.email import COMPANY_EMAIL, USER_EMAIL
from tests.support.webhooks import COMPANY_SMS, COMPANY_WA, TOKEN, USER, WEBHOOK_KEY

__all__ = ["SENSITIVE", "LogScanner", "captured", "find_leaks", "forbid"]

SENSITIVE: frozenset[str] = frozenset(
    {
        TOKEN,
        WEBHOOK_KEY,
        USER,
        USER.lstrip("+"),
        COMPANY_WA,
        COMPANY_WA.lstrip("+"),
        COMPANY_SMS,
        COMPANY_SMS.lstrip("+"),
        "Hello there! 👋",
        "Hi, is this open?",
        USER_EMAIL,
        COMPANY_EMAIL,
        # Names and an email's subject and text are personal too (whatsapp_params' ProfileName, Email's defaults).
        "Jane Doe",
        "Jane Sender",
        "Order #1042: where is it?",
        "my order has not arrived yet",
    }
)


def _pattern(values: Iterable[str]) -> re.Pattern[str]:
    alternatives = sorted({value for value in values if value}, key=len, reverse=True)
    body = "|".join(re.escape(value) for value in alternatives)
    return re.compile(rf"(?<![\w.+])(?:{body})(?![\w.])")


def find_leaks(lines: Iterable[str], values: Iterable[str]) -> list[tuple[str, str]]:
    """Every (value, line) where a sensitive value appears in a line, raw or JSON-decoded."""
    pattern = _pattern(values)
    leaks: list[tuple[str, str]] = []
    for line in lines:
        texts = [line]
        try:
            decoded = json.loads(line)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            texts.append(" ".join(str(value) for value in decoded.values()))
        for text in texts:
            match = pattern.search(text)
            if match:
                leaks.append((match.group(0), line))
                break
    return leaks


class LogScanner(logging.Handler):
    """Collects every record at INFO and above, formatted when it is emitted (ids are bound then)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []
        self.extra: set[str] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._guard:
            self.lines.append(line)

    def reset(self) -> None:
        with self._guard:
            self.lines.clear()
            self.extra.clear()

    def leaks(self) -> list[tuple[str, str]]:
        with self._guard:
            lines = list(self.lines)
        return find_leaks(lines, SENSITIVE | self.extra)


_SCANNER = LogScanner()


def forbid(*values: str) -> None:
    """Also treat ``values`` (a test's own tokens, bodies or numbers) as sensitive for the current test."""
    _SCANNER.extra.update(value for value in values if value)


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    if _SCANNER not in root.handlers:
        root.addHandler(_SCANNER)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)


@pytest.fixture(autouse=True)
def _no_sensitive_values_in_logs() -> Iterator[None]:
    _SCANNER.reset()
    yield
    leaks = _SCANNER.leaks()
    _SCANNER.reset()
    if leaks:
        shown = "\n".join(f"{value!r} in {line}" for value, line in leaks[:5])
        pytest.fail(f"{len(leaks)} log line(s) at INFO+ carry a token, body or phone number:\n{shown}", pytrace=False)


def captured() -> list[str]:
    """The lines captured so far in the current test."""
    with _SCANNER._guard:
        return list(_SCANNER.lines)
