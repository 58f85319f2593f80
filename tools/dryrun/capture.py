"""Recordings fit to share: event files masked, and worlds masked or pseudonymized the same way.

The function captures events itself (``runtime.capture``, masked by ``runtime.masking``); this module
does the same to files a person holds:

- ``masked_events`` masks event files as the capture would (``pipeline-event mask``);
- ``shareable_world`` masks a world document (``text``: free text in items becomes ``[masked]``, and so does the
  text of every conversation attribute the pipelines do not read;
  ``all``: also every phone number and e-mail address becomes the pseudonym the capture gives it, so
  the pair still matches) and redacts its credentials (``redacted_secret``: everything but ``…_sid``
  identifiers), for ``pipeline-world pseudonymize`` and ``pipeline-world snapshot``;
- ``key_pseudonyms`` reads the key ``--mask all`` pseudonymizes with (``--key-env``), for both commands.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.errors import Problem
from runtime.masking import (
    MASK_MODES,
    MASKED_SIGNATURE,
    MASKED_TEXT,
    PERSONAL_TEXT_KEYS,
    Pseudonyms,
    free_text_masked,
    recordable,
)
from tools.dryrun.events import EventFileError, RecordedEvent, load_events
from tools.dryrun.mask import conversation_attribute_kept
from tools.dryrun.world import REDACTED_CREDENTIAL, SECTIONS, WorldSpec

__all__ = [
    "MASKED_SIGNATURE",
    "MASK_MODES",
    "Pseudonyms",
    "key_pseudonyms",
    "masked_conversation",
    "masked_events",
    "masked_item",
    "recordable",
    "redacted_secret",
    "shareable_world",
    "world_document",
]


def key_pseudonyms(mask: str, key_env: str | None) -> Pseudonyms | None:
    """The pseudonyms of ``mask`` ``all``, keyed by environment variable ``key_env``; None for another mask.

    Only ``all`` pseudonymizes: any other mask leaves the key unread. ValueError, naming the options, when the
    variable holds no key of at least 16 bytes.
    """
    if mask != "all":
        return None
    key = os.environ.get(key_env, "").encode() if key_env else b""
    if len(key) < 16:
        raise ValueError("--mask all needs --key-env NAME: a variable holding a key of at least 16 bytes")
    return Pseudonyms(key)


def redacted_secret(secret_string: str) -> Any:
    """A secret fit to share: credential fields replaced (``…_sid`` identifiers kept); replay with --skip-signature."""
    try:
        document = json.loads(secret_string)
    except ValueError:
        return REDACTED_CREDENTIAL
    if not isinstance(document, dict):
        return REDACTED_CREDENTIAL
    return {
        name: value if str(name).lower().endswith("_sid") else REDACTED_CREDENTIAL for name, value in document.items()
    }


def masked_item(value: Any, key: str | None = None) -> Any:
    """An item with the free text in it (``content``, ``body``… at any depth) replaced by ``[masked]``.

    Strings holding JSON are masked inside the same way.
    """
    personal = key is not None and key.lower() in PERSONAL_TEXT_KEYS
    if isinstance(value, dict):
        return {name: masked_item(item, str(name)) for name, item in value.items()}
    if isinstance(value, list):
        return [masked_item(item, key) for item in value]
    if personal and isinstance(value, str) and value:
        return MASKED_TEXT
    if isinstance(value, str):
        return free_text_masked(value)
    return value


def masked_conversation(row: Any) -> Any:
    """A conversation item fit to share: every attribute the pipelines do not read with its text ``[masked]``.

    The attributes they read (``tools.dryrun.mask.CONVERSATION_KEPT_ATTRIBUTES``, as the dry-run shows them) are
    masked as ``masked_item`` masks them; every other one (message history, ``company_rep``, whatever another
    service added) keeps its structure, numbers and flags.
    """
    if not isinstance(row, dict):
        return masked_item(row)
    return {
        name: masked_item(value, str(name)) if conversation_attribute_kept(str(name)) else _text_hidden(value)
        for name, value in row.items()
    }


def _text_hidden(value: Any) -> Any:
    """``value`` with every non-empty string in it ``[masked]``, keys and everything else kept."""
    if isinstance(value, str):
        return MASKED_TEXT if value else value
    if isinstance(value, dict):
        return {name: _text_hidden(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_text_hidden(item) for item in value]
    return value


def world_document(spec: WorldSpec) -> dict[str, Any]:
    """A loaded world back as a world-file document (secrets as their JSON values)."""
    secrets: dict[str, Any] = {}
    for name, text in spec.secrets.items():
        try:
            secrets[name] = json.loads(text)
        except ValueError:
            secrets[name] = text
    return {
        **({"now": spec.now.isoformat().replace("+00:00", "Z")} if spec.now else {}),
        **{section: [dict(row) for row in rows] for section, rows in spec.rows.items() if rows},
        "secrets": secrets,
    }


def shareable_world(
    document: Mapping[str, Any], *, mask: str, pseudonyms: Pseudonyms | None, keep_secrets: bool = False
) -> dict[str, Any]:
    """A world file's content masked as ``mask`` says, its credentials redacted unless ``keep_secrets``."""
    if mask not in MASK_MODES:
        raise ValueError(f"mask must be one of {', '.join(MASK_MODES)}")
    if mask == "all" and pseudonyms is None:
        raise ValueError('mask="all" needs a pseudonym key')
    shared: dict[str, Any] = dict(document)
    secrets = shared.get("secrets") or {}
    if not keep_secrets:
        shared["secrets"] = {
            name: redacted_secret(value if isinstance(value, str) else json.dumps(value))
            for name, value in secrets.items()
        }
    if mask != "none":
        for section in SECTIONS:
            if section in shared:
                masked = masked_conversation if section == "conversations" else masked_item
                shared[section] = [masked(row) for row in shared[section]]
    if mask == "all" and pseudonyms is not None:
        shared = pseudonyms.document(shared)
    return shared


def masked_events(
    paths: Sequence[Path], *, mask: str, pseudonyms: Pseudonyms | None, auth_headers: Mapping[str, bool]
) -> Iterator[dict[str, Any]]:
    """Every event of ``paths`` (files or directories, as the dry-run reads them) as the capture stores it."""
    recorded = load_events(paths)
    problems = [_not_an_event(found) for found in recorded if not isinstance(found.event, Mapping)]
    if problems:
        raise EventFileError(problems)
    for found in recorded:
        yield recordable(found.event, mask=mask, pseudonyms=pseudonyms, auth_headers=auth_headers)


def _not_an_event(found: RecordedEvent) -> Problem:
    """The problem of an entry of an event file that is not an event object (``null``, a string, a number…)."""
    file, _, index = found.source.partition("#")
    which = f"event #{index}: " if index else ""
    return Problem(
        file,
        1,
        1,
        f"{which}not an API Gateway event (got {_json_type(found.event)}); an event file holds an event "
        "object, an array of them, or one per line",
    )


def _json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, never the value (it may hold personal data)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "a number"
