"""Recorded webhook events: files and directories of API Gateway events (payload 1.0 or 2.0).

A file holds one event (a JSON object), a JSON array of events, or JSON Lines (one event per line;
``*.jsonl`` always, ``*.json`` when it is not a single JSON document). Directories are read
recursively for ``*.json`` and ``*.jsonl`` files, in name order. An event's ``source`` is its file
path, plus ``#N`` (0-based) when the file holds several events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import Problem
from runtime.masking import MAX_NESTING, too_deep

__all__ = [
    "MAX_NESTING",
    "EventFileError",
    "RecordedEvent",
    "arrival_time",
    "event_files",
    "load_events",
    "nesting_problem",
    "read_event_file",
    "too_deep",
]

EVENT_SUFFIXES = (".json", ".jsonl")


# A file handed to a tool that nests deeper than runtime.masking.MAX_NESTING would exhaust the recursion of the JSON
# reader or of the walks that check and mask what it holds (a RecursionError traceback): it is refused when read.
def nesting_problem(name: str, line: int = 1) -> Problem:
    """The problem of a file (or a JSON Lines entry at ``line``) nested more than ``MAX_NESTING`` levels deep."""
    return Problem(name, line, 1, f"nested more than {MAX_NESTING} levels deep (no world or event is): not read")


@dataclass(frozen=True)
class RecordedEvent:
    """One event to replay and where it came from."""

    source: str
    event: Any


class EventFileError(Exception):
    """Event files that cannot be read; ``problems`` locate each one (``FILE:LINE:COLUMN: message``)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


def event_files(paths: Iterable[Path]) -> tuple[list[Path], list[Problem]]:
    """The event files named by ``paths`` (directories expanded), and the paths that do not exist."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = [
                candidate
                for candidate in path.rglob("*")
                if candidate.suffix.lower() in EVENT_SUFFIXES
                and candidate.is_file()
                and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
            ]
            if not found:
                problems.append(Problem(str(path), 1, 1, "no *.json or *.jsonl event files in this directory"))
            files.extend(sorted(found))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), 1, 1, "no such file or directory"))
    return files, problems


def _json_lines(text: str, name: str) -> tuple[list[Any], list[Problem]]:
    events: list[Any] = []
    problems: list[Problem] = []
    # Lines end at "\n" only: U+2028, U+2029 or U+0085 inside a string (written raw by ensure_ascii=False) is text.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(name, number, exc.colno, f"invalid JSON Lines entry: {exc.msg}"))
            continue
        except RecursionError:
            problems.append(nesting_problem(name, number))
            continue
        if too_deep(event):
            problems.append(nesting_problem(name, number))
        else:
            events.append(event)
    return events, problems


def read_event_file(path: Path) -> tuple[list[RecordedEvent], list[Problem]]:
    """The events of one file, or the problems that make it unreadable."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        return [], [Problem(name, 1, 1, f"cannot read event file: {exc.strerror}")]
    except UnicodeDecodeError as exc:
        return [], [Problem(name, 1, 1, f"event file is not valid UTF-8 (byte {exc.start})")]
    if not text.strip():
        return [], [Problem(name, 1, 1, "empty event file")]
    events: list[Any]
    if path.suffix.lower() == ".jsonl":
        events, problems = _json_lines(text, name)
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                return [], [Problem(name, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}")]
            events, problems = _json_lines(text, name)
        except RecursionError:
            return [], [nesting_problem(name)]
        else:
            if too_deep(document, MAX_NESTING + isinstance(document, list)):  # an array of events: one level more
                return [], [nesting_problem(name)]
            events, problems = (document if isinstance(document, list) else [document]), []
    if problems:
        return [], problems
    if not events:
        return [], [Problem(name, 1, 1, "the file holds no events")]
    if len(events) == 1:
        return [RecordedEvent(name, events[0])], []
    return [RecordedEvent(f"{name}#{index}", event) for index, event in enumerate(events)], []


def load_events(paths: Iterable[Path]) -> list[RecordedEvent]:
    """Every event of ``paths``, in order; raise EventFileError listing every unreadable file."""
    files, problems = event_files(paths)
    events: list[RecordedEvent] = []
    for path in files:
        found, file_problems = read_event_file(path)
        events.extend(found)
        problems.extend(file_problems)
    if problems:
        raise EventFileError(problems)
    return events


def arrival_time(event: Any) -> datetime | None:
    """When API Gateway received ``event`` (``requestContext.requestTimeEpoch``, or ``timeEpoch`` for payload 2.0)."""
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    epoch = context.get("requestTimeEpoch", context.get("timeEpoch")) if isinstance(context, Mapping) else None
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        return None
    try:
        return datetime.fromtimestamp(epoch / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
