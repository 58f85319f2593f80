"""Entries of the rules and pipelines directories the cold start does not read (``pipeline-dryrun --check``).

The engine reads the files of ``rules/`` and ``pipelines/`` ending in ``.yaml`` or ``.yml``, as the file system
spells them (``runtime.layout.listing``): ``50_vip.YAML``, ``50_vip.yaml.bak`` or a subdirectory's files never
run. A team's notes beside them (a README, ``*.md``, ``*.txt``, ``*.rst``) are not taken for files meant to be read.
Which entries those are, and what is said of each, is ``runtime.layout``'s: the cold start logs the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.config import display_path
from engine.errors import Problem
from runtime.layout import PIPELINES_DIR, PIPELINES_HELD, RULES_HELD, Held, listing, unread_message

__all__ = ["unread_entries", "unread_pipeline_entries", "unread_pipelines_dir"]


def unread_entries(rules_dir: Path) -> list[Problem]:
    """A warning at each entry of ``rules_dir`` the cold start does not read, but hidden ones (an editor's, git's)."""
    return _unread(rules_dir, RULES_HELD)


def unread_pipeline_entries(pipelines: Sequence[Path]) -> list[Problem]:
    """A warning at each entry the cold start does not read of the ``pipelines/`` directories ``pipelines`` are in.

    A task root's pipelines directory is named ``pipelines`` (``runtime.layout.PIPELINES_DIR``); a pipeline file
    elsewhere (a directory of events and worlds, say) sits in no directory the cold start reads.
    """
    directories = dict.fromkeys(path.parent for path in pipelines if path.parent.name == PIPELINES_DIR.name)
    return [problem for directory in directories for problem in unread_pipelines_dir(directory)]


def unread_pipelines_dir(pipelines_dir: Path) -> list[Problem]:
    """A warning at each entry of ``pipelines_dir`` the cold start does not read, but hidden ones."""
    return _unread(pipelines_dir, PIPELINES_HELD)


def _unread(directory: Path, held: Held) -> list[Problem]:
    shown = display_path(directory)
    return [
        Problem(display_path(directory / entry.name), 1, 1, unread_message(entry, shown, held), "warning")
        for entry in listing(directory).unread
    ]
