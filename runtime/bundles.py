"""Rule bundles: a pipeline's rule files (and optionally its pipeline file), deployed without a code deploy.

The layout in the rules bucket, under a prefix (``rules/`` by default), per pipeline::

    <prefix><pipeline>/bundles/<id>.json   a bundle; immutable, <id> is the digest of its files
    <prefix><pipeline>/deployment.json     which bundle is live and which one (if any) is shadowed

A bundle's id is ``engine.config.content_digest`` of its files, so a bundle holding the pipeline file
has the id the loaded configuration reports as its version. The deployment document carries a
revision that grows with every change and the recent history of changes (rollback reads it; a change
made by a rollback says so, so that a second rollback steps further back); the bucket's versioning
keeps every earlier deployment document as well. ``live`` null means the rules
packaged beside the handler. This module is the format and the layout only: ``runtime.bundlewatch``
reads bundles in the Lambda, ``tools.rules`` (``pipeline-rules``) publishes and deploys them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from engine.config import content_digest

__all__ = [
    "FORMAT",
    "HISTORY",
    "MAX_BYTES",
    "Bundle",
    "BundleError",
    "Deployment",
    "bundle_key",
    "deployment_key",
    "size_error",
]

FORMAT = 1
# Deployment changes kept in the document itself (older ones remain in the bucket's object versions).
HISTORY = 50
# The most a stored bundle or deployment document may be (the shipped rules are about 10 KB): the function reads,
# parses and verifies a bundle before its first event, and verifying takes about 1.3 s per MB of rules.
MAX_BYTES = 1024 * 1024
_FILE = re.compile(r"(pipelines|rules)/[A-Za-z0-9_.-]+\.ya?ml")
# An entry of the rules directory a bundle was published from that is not read (a directory's name ends in "/").
_UNREAD = re.compile(r"rules/[^/\x00-\x1f\x7f]{1,255}/?")


class BundleError(ValueError):
    """A bundle or deployment document that cannot be used as it is (the message says why)."""


def bundle_key(prefix: str, pipeline: str, bundle_id: str) -> str:
    """The key of a bundle."""
    return f"{prefix}{pipeline}/bundles/{bundle_id}.json"


def deployment_key(prefix: str, pipeline: str) -> str:
    """The key of a pipeline's deployment document."""
    return f"{prefix}{pipeline}/deployment.json"


def size_error(size: int, what: str) -> BundleError | None:
    """The error for a stored object of ``size`` bytes, when that is more than ``MAX_BYTES``."""
    if size <= MAX_BYTES:
        return None
    return BundleError(f"{what} is {size} bytes, more than the {MAX_BYTES} (1 MiB) it may be")


def _object(data: bytes, what: str) -> dict[str, Any]:
    error = size_error(len(data), what)
    if error is not None:
        raise error
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise BundleError(f"{what} is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"{what} is not a format-{FORMAT} document")
    return document


class Bundle(NamedTuple):
    """A pipeline's files as published: ``files`` maps ``rules/<name>.yaml`` (and ``pipelines/<name>.yaml``) to text.

    ``unread`` names the entries of the rules directory it was published from that are not read (``rules/55_vip.YAML``,
    ``rules/old/``: ``runtime.layout.listing``), so left out; they are no part of its id, and the function names them.
    """

    pipeline: str
    files: Mapping[str, str]
    published_at: str = ""
    published_by: str = ""
    note: str = ""
    unread: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The digest of the bundle's files."""
        return content_digest(self.files.items())

    @property
    def pipeline_file(self) -> str | None:
        """The name of the pipeline file the bundle carries, if any."""
        return next((name for name in sorted(self.files) if name.startswith("pipelines/")), None)

    def to_json(self) -> bytes:
        """The bundle as stored."""
        document = {
            "format": FORMAT,
            "pipeline": self.pipeline,
            "id": self.id,
            "published_at": self.published_at,
            "published_by": self.published_by,
            "note": self.note,
            **({"unread": list(self.unread)} if self.unread else {}),
            "files": dict(sorted(self.files.items())),
        }
        return json.dumps(document, indent=1, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, expected_id: str | None = None) -> Bundle:
        """A stored bundle; BundleError when it is malformed or its files are not the ones its id names."""
        document = _object(data, "the bundle")
        files = document.get("files")
        if not isinstance(files, dict) or not all(isinstance(text, str) for text in files.values()):
            raise BundleError("the bundle has no files")
        wrong = [name for name in files if not isinstance(name, str) or not _FILE.fullmatch(name)]
        if wrong or len([name for name in files if name.startswith("pipelines/")]) > 1:
            raise BundleError("the bundle holds files other than one pipeline file and rules/*.yaml")
        bundle = cls(
            str(document.get("pipeline", "")),
            files,
            str(document.get("published_at", "")),
            str(document.get("published_by", "")),
            str(document.get("note", "")),
            _unread(document.get("unread")),
        )
        if bundle.id != (expected_id or document.get("id")):
            raise BundleError(f"the bundle's files do not match its id (their digest is {bundle.id})")
        return bundle

    def write(self, root: Path) -> None:
        """Write the files under ``root`` (``root/rules``, and ``root/pipelines`` when it carries the pipeline file).

        ``root/rules`` is made even for a bundle without rules files; ``pipelines/`` only when there is a file for it.
        """
        (root / "rules").mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")


def _unread(named: Any) -> tuple[str, ...]:
    """The entries a bundle names as not read; what is not such a name is left out (a note only, never refused).

    Every one is kept (a bundle is at most ``MAX_BYTES``): the line naming them says how many it leaves out.
    """
    entries = named if isinstance(named, list) else []
    return tuple(entry for entry in entries if isinstance(entry, str) and _UNREAD.fullmatch(entry))


class Deployment(NamedTuple):
    """Which bundle decides (``live``; None: the packaged rules) and which one is shadowed, at ``revision``.

    ``rollback`` marks a revision made by ``pipeline-rules rollback``.
    """

    revision: int = 0
    live: str | None = None
    shadow: str | None = None
    updated_at: str = ""
    updated_by: str = ""
    note: str = ""
    history: tuple[Mapping[str, Any], ...] = ()
    rollback: bool = False

    def entry(self) -> dict[str, Any]:
        """The state, as an entry of the history."""
        entry = {
            "revision": self.revision,
            "live": self.live,
            "shadow": self.shadow,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            "note": self.note,
        }
        return {**entry, "rollback": True} if self.rollback else entry

    def change(
        self, *, live: str | None, shadow: str | None, at: str, by: str, note: str = "", rollback: bool = False
    ) -> Deployment:
        """The next revision: this one moves onto the history."""
        history = (self.entry(), *self.history)[:HISTORY] if self.revision else ()
        return Deployment(self.revision + 1, live, shadow, at, by, note, history, rollback)

    def made(self, role: str, bundle_id: str | None) -> Mapping[str, Any] | None:
        """The revision (as an entry of the history) that made ``bundle_id`` the ``role`` (``live`` or ``shadow``).

        The oldest of the latest run of revisions naming it so, this one first: a later revision that changed only
        the other role did not make it. None when no revision kept names it so.
        """
        made = None
        for entry in (self.entry(), *self.history):
            if entry.get(role) == bundle_id:
                made = entry
            elif made is not None:
                break
        return made

    def earlier_live(self) -> Sequence[str | None]:
        """The live bundles of earlier revisions, newest first, each once (None: the packaged rules)."""
        seen: list[str | None] = []
        for entry in self.history:
            live = entry.get("live")
            if live != self.live and live not in seen:
                seen.append(live)
        return seen

    def rollback_chain(self) -> Sequence[str | None]:
        """The live bundles a rollback goes back to, newest first: a rollback undoes the changes after its target.

        Read from the history kept, oldest first, as a stack: a new live bundle is pushed; a rollback pops back
        to its target (or pushes it, when the target is not on the stack).
        """
        stack: list[str | None] = []
        for entry in (*reversed(self.history), self.entry()):
            live = entry.get("live")
            if entry.get("rollback") is True and live in stack:
                del stack[len(stack) - stack[::-1].index(live) :]
            elif not stack or stack[-1] != live:
                stack.append(live)
        return stack[-2::-1]

    def to_json(self) -> bytes:
        """The document as stored."""
        document = {"format": FORMAT, **self.entry(), "history": list(self.history)}
        return json.dumps(document, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Deployment:
        """A stored deployment document; BundleError when it is malformed."""
        document = _object(data, "the deployment document")
        live, shadow, revision = document.get("live"), document.get("shadow"), document.get("revision")
        history = document.get("history", [])
        ids = all(v is None or isinstance(v, str) for v in (live, shadow))
        # A revision is a count: not negative, and not a bool (which isinstance takes for an int).
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0 or not ids:
            raise BundleError("the deployment document needs a revision number and bundle ids (or null)")
        return cls(
            revision,
            live,
            shadow,
            str(document.get("updated_at", "")),
            str(document.get("updated_by", "")),
            str(document.get("note", "")),
            tuple(entry for entry in history if isinstance(entry, dict)) if isinstance(history, list) else (),
            document.get("rollback") is True,
        )
