"""Entries of the rules and pipelines directories the cold start does not read (``pipeline-dryrun --check``).

The engine reads the files of ``rules/`` and ``pipelines/`` ending in ``.yaml`` or ``.yml``, as the file system
spells them (``runtime.layout.yaml_files``): ``50_vip.YAML``, ``50_vip.yaml.bak`` or a subdirectory's files never
run. A team's notes beside them (a README, ``*.md``, ``*.txt``, ``*.rst``) are not taken for files meant to be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from engine.config import display_path
from engine.errors import Problem
from runtime.layout import PIPELINES_DIR, yaml_files

__all__ = ["unread_entries", "unread_pipeline_entries", "unread_pipelines_dir"]

_EXTENSIONS = (".yaml", ".yml")
# A team's notes kept beside the files (README.md, CHANGES.rst): documentation, not configuration meant to be read.
_NOTES = (".md", ".txt", ".rst")


class _Held(NamedTuple):
    """What a directory's files hold, in the words of its warnings."""

    of_a_file: str  # "its rule sets never run"
    of_files: str  # "the rule sets of its files never run"
    holds: str  # "if it holds rules"


_RULES = _Held("its rule sets never run", "the rule sets of its files never run", "if it holds rules")
_PIPELINES = _Held("its pipeline never runs", "the pipelines of its files never run", "if it holds a pipeline")


def unread_entries(rules_dir: Path) -> list[Problem]:
    """A warning at each entry of ``rules_dir`` the cold start does not read, but hidden ones (an editor's, git's)."""
    return _unread(rules_dir, _RULES)


def unread_pipeline_entries(pipelines: Sequence[Path]) -> list[Problem]:
    """A warning at each entry the cold start does not read of the ``pipelines/`` directories ``pipelines`` are in.

    A task root's pipelines directory is named ``pipelines`` (``runtime.layout.PIPELINES_DIR``); a pipeline file
    elsewhere (a directory of events and worlds, say) sits in no directory the cold start reads.
    """
    directories = dict.fromkeys(path.parent for path in pipelines if path.parent.name == PIPELINES_DIR.name)
    return [problem for directory in directories for problem in unread_pipelines_dir(directory)]


def unread_pipelines_dir(pipelines_dir: Path) -> list[Problem]:
    """A warning at each entry of ``pipelines_dir`` the cold start does not read, but hidden ones."""
    return _unread(pipelines_dir, _PIPELINES)


def _unread(directory: Path, held: _Held) -> list[Problem]:
    if not directory.is_dir():
        return []
    read = set(yaml_files(directory))
    shown = display_path(directory)
    found: list[Problem] = []
    for path in sorted(directory.iterdir()):
        if path in read or path.name.startswith(".") or _is_notes(path):
            continue
        if path.is_dir():
            message = (
                f"this directory is not read: only the files directly in {shown}/ are, so {held.of_files}; "
                f"move them into {shown}/, or the directory out of it"
            )
        elif path.suffix.lower() in _EXTENSIONS:
            message = (
                f"this file is not read: only the files of {shown}/ ending in .yaml or .yml "
                f"(lower-case) are, so {held.of_a_file}; rename it to {path.stem}{path.suffix.lower()}"
            )
        else:
            message = (
                f"this file is not read: only the files of {shown}/ ending in .yaml or .yml are, "
                f"so {held.of_a_file}; rename it to end in .yaml {held.holds}, or move it out of "
                f"{shown}/"
            )
        found.append(Problem(display_path(path), 1, 1, message, "warning"))
    return found


def _is_notes(path: Path) -> bool:
    """True for a file of notes: a README of any extension, or Markdown, text or reStructuredText."""
    return path.is_file() and (path.stem.upper() == "README" or path.suffix.lower() in _NOTES)
