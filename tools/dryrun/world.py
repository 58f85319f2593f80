"""World files: the conversations, secrets, locks, stage rows and replay records a dry-run replays against.

A world file is YAML or JSON holding plain JSON values (not DynamoDB-typed)::

    now: "2026-11-25T12:00:00Z"          # optional; --now wins
    conversations: [ {primary_channel: "+4474…", conversation_id: "…", …}, … ]
    secrets: { "<secret name>": {twilio_account_sid: "AC…", twilio_auth_token: "…"}, … }
    locks: [ {conversation_id: "…", message_sid: "SM…", expires_at: 1795000000}, … ]   # optional
    stage: [ {conversation_id: "…", message_sid: "SM…", …}, … ]                         # optional
    replay: [ {message_sid: "SM…" or "EM…", recorded_at: 1795000000, …}, … ]         # optional (replay.record)

Every problem is reported as ``FILE:LINE:COLUMN: message`` (``ConfigError``). Timestamps inside items
must be quoted: an unquoted YAML timestamp would not be the string the other services store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from engine.config import display_path
from engine.errors import ConfigError, Problem
from engine.schema import schema_violations
from engine.yamlsource import Locator, parse_yaml
from steps.support import json_number
from tools.dryrun.events import nesting_problem, too_deep

__all__ = [
    "CREDENTIAL_NAME_PARTS",
    "REDACTED_CREDENTIAL",
    "SECTIONS",
    "WorldSpec",
    "binary_paths",
    "credential_like",
    "dotted",
    "load_world",
    "now_option",
    "parse_instant",
    "redacted_secrets",
    "secret_values",
]

# World section -> the LocalResources attribute naming its table, and the key attributes of its rows.
SECTIONS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "conversations": ("conversations_table", ("primary_channel", "conversation_id")),
    "locks": ("lock_table", ("conversation_id",)),
    "stage": ("stage_table", ("conversation_id", "message_sid")),
    "replay": ("replay_table", ("message_sid",)),
}

_KEY_STRING = {"type": "string", "minLength": 1}
# What a problem message shows instead of a value written under ``secrets:`` (of at least four characters
# when it appears outside the secrets, as the dry-run's scrubber counts a credential).
REDACTED = "***"
_SHORTEST_CREDENTIAL = 4


def _rows(required: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": list(required),
            "properties": {name: _KEY_STRING for name in required},
        },
    }


WORLD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "now": {"type": "string", "description": "ISO-8601 time the replay runs at"},
        "conversations": _rows(SECTIONS["conversations"][1]),
        "secrets": {"type": "object", "additionalProperties": {"type": ["object", "string"]}},
        "locks": _rows(SECTIONS["locks"][1]),
        "stage": _rows(SECTIONS["stage"][1]),
        "replay": _rows(SECTIONS["replay"][1]),
    },
}


def parse_instant(text: str) -> datetime:
    """An ISO-8601 (or RFC 3339: t, z in either case) time; a time without a zone is UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text.strip().upper())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def now_option(text: str) -> datetime:
    """``--now TEXT`` of any tool, read as ``parse_instant`` reads; ValueError naming the option and a form it takes."""
    try:
        return parse_instant(text)
    except ValueError:
        raise ValueError(f"--now: {text!r} is not an ISO-8601 time (e.g. 2026-12-07T10:00:00Z)") from None


@dataclass(frozen=True)
class WorldSpec:
    """A loaded world file: rows per section, secrets as their ``SecretString``, and ``now``."""

    file: str
    rows: Mapping[str, tuple[Mapping[str, Any], ...]]
    secrets: Mapping[str, str]
    now: datetime | None
    _locator: list[Locator] = field(default_factory=list, repr=False, compare=False)
    _text: str = field(default="", repr=False, compare=False)

    def problem(self, path: tuple[Any, ...], message: str) -> Problem:
        """A Problem located at ``path`` inside the world file."""
        if not self._locator:
            try:
                self._locator.append(parse_yaml(self._text, self.file).locator)
            except ConfigError:
                self._locator.append(Locator(self.file))
        return self._locator[0].problem(path, message)


# What pipeline-world writes in place of a credential (snapshot, pseudonymize) unless --keep-secrets.
REDACTED_CREDENTIAL = "redacted"


def redacted_secrets(secrets: Mapping[str, str]) -> frozenset[str]:
    """The names of ``secrets`` holding a credential redacted (``REDACTED_CREDENTIAL``): no signature matches it."""
    found: set[str] = set()
    for name, marked in secrets.items():
        document = _secret_document(marked)
        values = document.values() if isinstance(document, dict) else [document]
        if REDACTED_CREDENTIAL in values:
            found.add(name)
    return frozenset(found)


def _secret_document(marked: str) -> Any:
    """A secret's JSON value, else its text, read as the pipeline reads it (engine.secrets): no byte order mark."""
    text = marked.removeprefix("\ufeff")
    try:
        return json.loads(text)
    except ValueError:
        return text


def secret_values(secrets: Mapping[str, str]) -> list[str]:
    """The credential values in ``secrets``, to keep out of output.

    A secret that is not a JSON object is a credential as a whole. In a JSON object, a field is a
    credential when its name says so (``…token``, ``…key``, ``…secret``, ``…password``, ``…auth…``, see
    ``CREDENTIAL_NAME_PARTS``) or its value looks like one (``credential_like``), whatever the name the
    pipeline reads it by; ``…_sid`` identifiers and settings such as ``environment: test`` or ``enabled:
    "true"`` are not (scrubbing those would rewrite ordinary words). Values under four characters are left.
    """
    values: list[str] = []
    for marked in secrets.values():
        document = _secret_document(marked)
        if isinstance(document, dict):
            values.extend(
                value.strip()
                for name, value in document.items()
                if isinstance(value, str) and _credential_field(str(name).lower(), value.strip())
            )
        elif isinstance(document, str):
            values.append(document.strip())
    return [value for value in values if len(value) >= 4]


# A secret field whose name holds one of these is a credential, whatever its value.
CREDENTIAL_NAME_PARTS = ("token", "key", "secret", "pass", "pwd", "auth", "credential", "sign", "private", "cert")
_CREDENTIAL_LIKE_LENGTH = 16


def credential_like(value: str) -> bool:
    """A value shaped like a generated credential: 16 characters or more, no space, letters and digits."""
    return (
        len(value) >= _CREDENTIAL_LIKE_LENGTH
        and not any(char.isspace() for char in value)
        and any(char.isdigit() for char in value)
        and any(char.isalpha() for char in value)
    )


def _credential_field(name: str, value: str) -> bool:
    if name.endswith("_sid"):
        return False
    return any(part in name for part in CREDENTIAL_NAME_PARTS) or credential_like(value)


def _timestamps(value: Any, path: tuple[Any, ...], found: list[tuple[Any, ...]]) -> None:
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(item) in _NESTED or isinstance(item, date):
                _timestamps(item, (*path, key), found)
    elif kind is list:
        for index, item in enumerate(value):
            if type(item) in _NESTED or isinstance(item, date):
                _timestamps(item, (*path, index), found)
    elif isinstance(value, date):
        found.append(path)


_NESTED = frozenset({dict, list})


def binary_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where ``value`` holds bytes (YAML's ``!!binary``, DynamoDB's B type), as key and index paths.

    A set holding bytes (DynamoDB's BS type, as boto3 reads it) is named by its own path: a set has no order to index.
    """
    if isinstance(value, bytes | bytearray):
        yield path
    elif isinstance(value, set | frozenset):
        if any(isinstance(item, bytes | bytearray) for item in value):
            yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from binary_paths(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from binary_paths(item, (*path, index))


def dotted(path: tuple[Any, ...]) -> str:
    """``path`` written as ``section[row].attribute``."""
    return "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" if index else str(part) for index, part in enumerate(path)
    )


def _binary_problems(spec: WorldSpec, secrets: Any) -> list[Problem]:
    """A problem at each binary value (YAML's ``!!binary``) inside a secret's fields, its value never shown.

    A secret's text is JSON, which holds no bytes.
    """
    message = "binary data (!!binary), which a secret's JSON text cannot hold (not shown); write the field as text"
    return [
        spec.problem(path, f"{dotted(path)}: {message}")
        for name, secret in (secrets.items() if isinstance(secrets, dict) else ())
        if isinstance(secret, dict | list)
        for path in binary_paths(secret, ("secrets", name))
    ]


def _read(path: Path, name: str) -> tuple[Any, str, Locator | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(name, 1, 1, f"cannot read world file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(name, 1, 1, "world file is not valid UTF-8")]) from None
    if path.suffix.lower() == ".json":
        # json is much faster than the position-tracking YAML loader on large worlds; positions are
        # worked out from the YAML parse only when a problem needs one.
        try:
            # A number a float cannot hold keeps its digits (an ExactFloat), as DynamoDB would hold it.
            data = json.loads(text, parse_float=json_number)
        except json.JSONDecodeError as exc:
            raise ConfigError([Problem(name, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}")]) from None
        except RecursionError:
            raise ConfigError([nesting_problem(name)]) from None
        if too_deep(data):
            raise ConfigError([nesting_problem(name)])
        return data, text, None
    try:
        doc = parse_yaml(text, name)
    except RecursionError:  # the YAML reader allows 1000 levels; building them may recurse deeper than Python goes
        raise ConfigError([nesting_problem(name)]) from None
    if too_deep(doc.data):
        raise ConfigError([nesting_problem(name)])
    return doc.data, text, doc.locator


def load_world(path: Path) -> WorldSpec:
    """Read and check a world file; raise ConfigError listing every problem."""
    name = display_path(path)
    data, text, locator = _read(path, name)
    if data is None:
        data = {}
    spec = WorldSpec(name, {}, {}, None, [locator] if locator else [], text)
    problems: list[Problem] = []
    now: datetime | None = None
    if isinstance(data, dict) and "now" in data:
        raw_now = data["now"]
        if isinstance(raw_now, datetime):
            now = raw_now if raw_now.tzinfo else raw_now.replace(tzinfo=UTC)
            data = {**data, "now": now.isoformat()}
        elif isinstance(raw_now, str):
            try:
                now = parse_instant(raw_now)
            except ValueError:
                problems.append(spec.problem(("now",), f"now: {raw_now!r} is not an ISO-8601 time"))
    stamps: list[tuple[Any, ...]] = []
    if isinstance(data, dict):
        for section in ("conversations", "secrets", "locks", "stage", "replay"):
            _timestamps(data.get(section), (section,), stamps)
    problems.extend(
        spec.problem(where, "unquoted timestamp: quote it so that it stays the string the table holds")
        for where in stamps
    )
    problems.extend(_binary_problems(spec, data.get("secrets") if isinstance(data, dict) else None))
    schema = _schema(spec, data, locator)
    problems.extend(schema)
    if not schema:
        problems.extend(_duplicates(spec, data))
        problems.extend(_number_problems(spec, data))
    if problems:
        raise ConfigError(_scrubbed(problems, data))
    rows = {section: tuple(data.get(section) or ()) for section in SECTIONS}
    secrets = {
        str(secret): value if isinstance(value, str) else json.dumps(value)
        for secret, value in (data.get("secrets") or {}).items()
    }
    return WorldSpec(name, rows, secrets, now, spec._locator, text)


def _plainly_valid(data: Any) -> bool:
    """A quick structural check; when it passes, the JSON Schema would find nothing (large worlds load fast)."""
    if not isinstance(data, dict) or not set(data) <= {"now", "secrets", *SECTIONS}:
        return False
    if not isinstance(data.get("now", ""), str) or not isinstance(data.get("secrets", {}), dict):
        return False
    if not all(isinstance(value, (dict, str)) for value in data.get("secrets", {}).values()):
        return False
    for section, (_, keys) in SECTIONS.items():
        rows = data.get(section, [])
        if not isinstance(rows, list):
            return False
        for row in rows:
            if not isinstance(row, dict) or not all(isinstance(row.get(key), str) and row[key] for key in keys):
                return False
    return True


def _scrubbed(problems: list[Problem], data: Any) -> list[Problem]:
    """``problems`` with every value written under ``secrets`` replaced by ``***`` (one pasted elsewhere too)."""
    found: list[str] = []
    _scalars(data.get("secrets") if isinstance(data, dict) else data, found)
    values = sorted({value for value in found if len(value) >= _SHORTEST_CREDENTIAL}, key=len, reverse=True)
    if not values:
        return problems
    pattern = re.compile("|".join(re.escape(value) for value in values))
    return [replace(problem, message=pattern.sub(REDACTED, problem.message)) for problem in problems]


def _scalars(value: Any, found: list[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _scalars(item, found)
    elif isinstance(value, list):
        for item in value:
            _scalars(item, found)
    elif value is not None and not isinstance(value, bool):
        found.append(str(value))


def _schema_problems(data: Any, locator: Locator) -> list[Problem]:
    """Every violation of the world schema in ``data``, as located Problems in file order."""
    return [violation.problem for violation in schema_violations(data, WORLD_SCHEMA, locator)]


def _schema(spec: WorldSpec, data: Any, locator: Locator | None) -> list[Problem]:
    if _plainly_valid(data):
        return []
    if not isinstance(data, dict):
        return [spec.problem((), f"document: expected object, got {_kind(data)} (not shown){_MAPPING}")]
    found = _secret_problems(spec, data)
    others = {key: value for key, value in data.items() if key != "secrets"}
    if locator is None and not _schema_problems(others, Locator(spec.file)):
        return found
    spec.problem((), "")  # builds the locator from the text of a file read as JSON
    return sorted(
        [*found, *_schema_problems(others, spec._locator[0])], key=lambda problem: (problem.line, problem.column)
    )


_MAPPING = "; write a mapping of key: value lines"
# YAML's ``!!binary`` loads as bytes: named as such, not taken for null.
_KINDS = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (bytes, "binary data"),
    (list, "array"),
    (dict, "object"),
)


def _kind(value: Any) -> str:
    return next((name for kind, name in _KINDS if isinstance(value, kind)), "null")


def _secret_problems(spec: WorldSpec, data: dict[str, Any]) -> list[Problem]:
    """A ``secrets`` that is no mapping, and each secret neither text nor a mapping: named, their values never shown.

    The schema's messages quote the value they refuse (a placeholder would read as the value), and a credential may
    hide in any shape the secrets were written in.
    """
    secrets = data.get("secrets", {})
    if not isinstance(secrets, dict):
        return [spec.problem(("secrets",), f"secrets: expected object, got {_kind(secrets)} (not shown){_MAPPING}")]
    return [
        spec.problem(
            ("secrets", name),
            f"secrets.{name}: expected object or string, got {_kind(value)} (not shown); write the secret's text in "
            "quotes, or a mapping of its fields",
        )
        for name, value in secrets.items()
        if not isinstance(value, (dict, str))
    ]


# The attributes this project's own tables hold as numbers (epoch seconds or milliseconds), as its steps write them:
# the conditions and checks that read them compare numbers, so a quoted one would decide differently.
NUMBERS: Mapping[str, tuple[str, ...]] = {
    "locks": ("expires_at", "taken_at", "trigger_due_at"),
    "replay": ("recorded_at", "replay_after", "expires_at", "confirmed_at_ms"),
    "stage": ("expires_at", "num_media"),
}


def _number_problems(spec: WorldSpec, data: Mapping[str, Any]) -> list[Problem]:
    """A problem for each attribute of ``NUMBERS`` that holds anything but a number (a quoted epoch, say)."""
    problems: list[Problem] = []
    for section, names in NUMBERS.items():
        for index, row in enumerate(data.get(section) or ()):
            for name in names:
                value = row.get(name)
                if name not in row or (isinstance(value, int | float) and not isinstance(value, bool)):
                    continue
                hint = "write it unquoted" if isinstance(value, str) else "write the number"
                message = (
                    f"{section}[{index}].{name}: expected a number (the table holds it as one, as the pipeline "
                    f"writes it), got {type(value).__name__}; {hint}"
                )
                problems.append(spec.problem((section, index, name), message))
    return problems


def _duplicates(spec: WorldSpec, data: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for section, (_, keys) in SECTIONS.items():
        seen: dict[tuple[Any, ...], int] = {}
        for index, row in enumerate(data.get(section) or ()):
            key = tuple(row[name] for name in keys)
            if key in seen:
                problems.append(
                    spec.problem(
                        (section, index),
                        f"{section}[{index}] has the same key ({', '.join(keys)}) as {section}[{seen[key]}]",
                    )
                )
            seen.setdefault(key, index)
    return problems
