"""Entries of the rules directory the cold start does not read (``pipeline-dryrun --check``).

The engine reads the files of ``rules/`` ending in ``.yaml`` or ``.yml``, as the file system spells them
(``runtime.layout.yaml_files``): ``50_vip.YAML``, ``50_vip.yaml.bak`` or a subdirectory's files never run.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import display_path
from engine.errors import Problem
from runtime.layout import yaml_files

__all__ = ["unread_entries"]

_EXTENSIONS = (".yaml", ".yml")


def unread_entries(rules_dir: Path) -> list[Problem]:
    """A warning at each entry of ``rules_dir`` the cold start does not read, but hidden ones (an editor's, git's)."""
    if not rules_dir.is_dir():
        return []
    read = set(yaml_files(rules_dir))
    found: list[Problem] = []
    for path in sorted(rules_dir.iterdir()):
        if path in read or path.name.startswith("."):
            continue
        if path.is_dir():
            message = (
                f"this directory is not read: only the files directly in {display_path(rules_dir)}/ are, so the "
                f"rule sets of its files never run; move them into {display_path(rules_dir)}/, or the directory "
                "out of it"
            )
        elif path.suffix.lower() in _EXTENSIONS:
            message = (
                f"this file is not read: only the files of {display_path(rules_dir)}/ ending in .yaml or .yml "
                f"(lower-case) are, so its rule sets never run; rename it to {path.stem}{path.suffix.lower()}"
            )
        else:
            message = (
                f"this file is not read: only the files of {display_path(rules_dir)}/ ending in .yaml or .yml are, "
                f"so its rule sets never run; rename it to end in .yaml if it holds rules, or move it out of "
                f"{display_path(rules_dir)}/"
            )
        found.append(Problem(display_path(path), 1, 1, message, "warning"))
    return found
