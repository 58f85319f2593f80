"""The JSON formatter: its timestamp (date and time formatted once a second) and the fields it writes."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

import runtime.logs
from runtime.logs import JsonFormatter


def _record(created: float, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("runtime.app", logging.INFO, __file__, 1, "event", (), None)
    record.created = created
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize("created", [0.0, 1_795_000_000.0, 1_795_000_000.999999, 1_795_000_001.000001, 1_795_000_059.5])
def test_the_time_is_iso_8601_utc_to_the_microsecond(created: float) -> None:
    formatter = JsonFormatter()
    expected = datetime.fromtimestamp(int(created), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    line = json.loads(formatter.format(_record(created)))
    assert line["timestamp"].startswith(expected + ".") and line["timestamp"].endswith("Z")
    assert abs(float(line["timestamp"][len(expected) : -1]) - (created - int(created))) < 2e-6


def test_consecutive_seconds_each_get_their_own_date_and_time() -> None:
    formatter = JsonFormatter()
    first, second = (json.loads(formatter.format(_record(t)))["timestamp"] for t in (1_795_000_000.9, 1_795_000_001.1))
    assert first[:19] != second[:19] and second.endswith(".100000Z")


def test_a_second_cached_by_another_thread_meanwhile_never_dates_this_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect: the cached second was checked, then read again: a thread (the bundle watcher's) caching another second
    in between gave this line that second's date and time."""
    whole = 1_795_000_000

    class Interleaved(tuple):  # the other thread runs right after this line's check of the cached second
        def __getitem__(self, index: Any) -> Any:
            if index == 0:
                monkeypatch.setattr(runtime.logs, "_second", (whole + 60, "2026-11-18T11:07:40"))
            return tuple.__getitem__(self, index)

    monkeypatch.setattr(runtime.logs, "_second", Interleaved((whole, "2026-11-18T11:06:40")))
    line = json.loads(JsonFormatter().format(_record(whole + 0.5)))
    assert line["timestamp"] == "2026-11-18T11:06:40.500000Z"


def test_the_event_line_carries_the_steps_and_no_unknown_field() -> None:
    record = _record(1_795_000_000.0, outcome="QUEUED", steps={"parse": "ok"}, body="secret text")
    line = json.loads(JsonFormatter().format(record))
    assert line["steps"] == {"parse": "ok"} and line["outcome"] == "QUEUED"
    assert "body" not in line


def test_a_logged_exception_chain_shows_each_type_and_frame_never_a_text() -> None:
    """Source lines are code; the texts (here a number and a body, as a bug's exception may quote them) stay out."""
    number, body = "+14155550123", "Hello there!"

    def fail() -> None:
        try:
            raise KeyError(number)
        except KeyError as exc:
            try:
                raise ValueError(body) from exc
            except ValueError:
                raise RuntimeError(body) from None

    def cycle() -> None:
        first, second = ValueError(number), TypeError(body)
        first.__context__, second.__context__ = second, first
        raise first

    lines = []
    for function in (fail, cycle):
        try:
            function()
        except Exception as exc:  # noqa: BLE001 - logged as a handler would
            record = logging.LogRecord("engine.runner", logging.ERROR, __file__, 1, "bug", (), (type(exc), exc, None))
            lines.append(json.loads(JsonFormatter().format(record))["exception"])

    suppressed, cyclic = lines
    assert suppressed.startswith("Traceback (most recent call last):\n")
    assert suppressed.endswith(", in fail\n    raise RuntimeError(body) from None\nRuntimeError")
    assert "KeyError" not in suppressed and number not in suppressed and body not in suppressed
    assert cyclic.startswith("TypeError\n\nDuring handling of the above exception, another exception occurred:\n\n")
    assert cyclic.endswith("\nValueError") and number not in cyclic and body not in cyclic
