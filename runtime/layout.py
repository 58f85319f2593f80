"""Where a task root keeps its configuration: every ``pipelines/*.yaml`` and the ``rules/`` they share.

The engine reads the files of ``rules/`` and ``pipelines/`` ending in ``.yaml`` or ``.yml``, as the file system
spells them: ``50_vip.YAML``, ``50_vip.yaml.bak`` or a subdirectory's files never run. ``listing`` tells the two
apart in one listing of the directory, reading no file; the cold start (``runtime.app``) and ``pipeline-dryrun
--check`` (``tools.check_files``) say the same of each entry not read (``unread_message``). A team's notes beside
the files (a README, ``*.md``, ``*.txt``, ``*.rst``) and hidden entries (an editor's, git's) are not taken for
files meant to be read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "NO_PIPELINES",
    "PIPELINES_DIR",
    "PIPELINES_HELD",
    "RULES_DIR",
    "RULES_HELD",
    "Held",
    "Listing",
    "NAMED_AT_MOST",
    "Unread",
    "listing",
    "named_briefly",
    "pipeline_files",
    "unread_message",
    "unread_named",
    "yaml_files",
]

PIPELINES_DIR = Path("pipelines")
RULES_DIR = Path("rules")
# Why a task root with no pipeline file to read is refused: by the cold start, and by the build's stamp before it.
NO_PIPELINES = "no pipeline files (*.yaml) found"

_EXTENSIONS = (".yaml", ".yml")
# The entries a log line names at most, each with its fix: 100 make a line of some 25 KB (70 KB with names of 255
# characters), where 3,000 made one of 684 KB, past the 256 KB CloudWatch Logs takes as one event.
NAMED_AT_MOST = 100
# A team's notes kept beside the files (README.md, CHANGES.rst): documentation, not configuration meant to be read.
_NOTES = (".md", ".txt", ".rst")


class Unread(NamedTuple):
    """An entry of a directory that is not read: its name, and whether it is a directory."""

    name: str
    is_dir: bool = False


class Listing(NamedTuple):
    """A directory's YAML files (``read``, in name order) and the entries not read (``unread``, by name)."""

    read: list[Path]
    unread: list[Unread]


class Held(NamedTuple):
    """What a directory's files hold, in the words of its messages."""

    of_a_file: str  # "its rule sets never run"
    of_files: str  # "the rule sets of its files never run"
    holds: str  # "if it holds rules"


RULES_HELD = Held("its rule sets never run", "the rule sets of its files never run", "if it holds rules")
PIPELINES_HELD = Held("its pipeline never runs", "the pipelines of its files never run", "if it holds a pipeline")


def listing(directory: Path) -> Listing:
    """``directory``'s entries in one listing, no file read (an entry's type is the listing's); empty when none."""
    read: list[Path] = []
    unread: list[Unread] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(_EXTENSIONS):  # as glob("*.yaml") and glob("*.yml") match
                    read.append(directory / name)
                elif not name.startswith(".") and not _is_notes(entry):
                    unread.append(Unread(name, _is(entry.is_dir)))
    except OSError:  # no such directory, or not a directory: nothing in it is read
        return Listing([], [])
    return Listing(sorted(read), sorted(unread))


def _is(kind: Callable[[], bool]) -> bool:
    """An entry's ``is_dir`` or ``is_file``: False for one that cannot be looked at (a symlink loop).

    Such an entry never ends the listing: the entries beside it are still read.
    """
    try:
        return kind()
    except OSError:
        return False


def _is_notes(entry: os.DirEntry[str]) -> bool:
    """True for a file of notes: a README of any extension, or Markdown, text or reStructuredText."""
    stem, suffix = os.path.splitext(entry.name)
    return (stem.upper() == "README" or suffix.lower() in _NOTES) and _is(entry.is_file)


def unread_message(entry: Unread, shown: str, held: Held) -> str:
    """Why ``entry`` of the directory ``shown`` (as it is named to the reader) is not read, and the fix."""
    if entry.is_dir:
        return (
            f"this directory is not read: only the files directly in {shown}/ are, so {held.of_files}; "
            f"move them into {shown}/, or the directory out of it"
        )
    stem, suffix = os.path.splitext(entry.name)
    if suffix.lower() in _EXTENSIONS:
        return (
            f"this file is not read: only the files of {shown}/ ending in .yaml or .yml "
            f"(lower-case) are, so {held.of_a_file}; rename it to {stem}{suffix.lower()}"
        )
    return (
        f"this file is not read: only the files of {shown}/ ending in .yaml or .yml are, "
        f"so {held.of_a_file}; rename it to end in .yaml {held.holds}, or move it out of {shown}/"
    )


def unread_named(directory: str, entries: list[Unread], held: Held) -> dict[str, str]:
    """Each of ``entries`` of a task root's ``directory`` (``rules``), by its name there, with why and the fix."""
    return {f"{directory}/{entry.name}": unread_message(entry, directory, held) for entry in entries}


def named_briefly(named: dict[str, str]) -> tuple[str, list[str]]:
    """``named`` (``unread_named``) as a log line gives it: its names and the problems of those named.

    At most ``NAMED_AT_MOST`` are named, then how many more are left out ("and 2900 more").
    """
    shown = list(named)[:NAMED_AT_MOST]
    more = len(named) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else ""), [f"{name}: {named[name]}" for name in shown]


def yaml_files(directory: Path) -> list[Path]:
    """The YAML files of ``directory`` (``*.yaml``, ``*.yml``), in name order."""
    return listing(directory).read


def pipeline_files(directory: Path) -> list[Path]:
    """The pipeline files of ``directory``."""
    return yaml_files(directory)
