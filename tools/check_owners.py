"""Which pipelines the project's files belong to (``pipeline-dryrun --check``).

A pipeline file's declared name (``pipeline:``), a rules file's ``pipelines:`` list, and the rule set a pipeline
names that another pipeline's file defines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from engine.config import display_path
from engine.errors import ConfigError, Problem, did_you_mean
from engine.yamlsource import SourceDoc, load_yaml
from runtime.layout import pipeline_files, yaml_files

__all__ = [
    "OwnedSet",
    "declared_name",
    "declared_pipeline_name",
    "owned_elsewhere",
    "pipeline_document",
    "pipeline_names",
    "sets_with_owners",
    "unknown_pipelines",
    "unknown_rule_set",
]


def pipeline_document(path: Path) -> SourceDoc | None:
    """A pipeline file, parsed once for the checks that place their findings in it; None when it cannot be read."""
    try:
        return load_yaml(path, display_path(path), strict=False) if path.is_file() else None
    except ConfigError:
        return None


def declared_name(document: SourceDoc | None) -> str | None:
    """The ``pipeline:`` name a parsed pipeline file declares; None when it names none."""
    name = document.data.get("pipeline") if document is not None and isinstance(document.data, dict) else None
    return name if isinstance(name, str) and name else None


def declared_pipeline_name(path: Path) -> str | None:
    """The ``pipeline:`` name a pipeline file declares; None when it cannot be read or names none."""
    return declared_name(pipeline_document(path))


def pipeline_names(paths: Sequence[Path]) -> list[str]:
    """The names of the checked pipelines and of every pipeline file beside them (``pipeline:``, else the stem)."""
    beside = [found for path in paths for found in pipeline_files(path.parent)]
    return sorted({declared_pipeline_name(path) or path.stem for path in dict.fromkeys([*paths, *beside])})


def unknown_pipelines(rules_dir: Path, known: Sequence[str]) -> list[Problem]:
    """A rules file's ``pipelines:`` entries that name no pipeline (the file would belong to none)."""
    found: list[Problem] = []
    listed = ", ".join(known)
    for path in yaml_files(rules_dir):
        try:
            doc = load_yaml(path, display_path(path), strict=False)
        except ConfigError:
            continue  # a file that does not parse is reported by every pipeline's check
        named = doc.data.get("pipelines") if isinstance(doc.data, dict) else None
        if isinstance(named, list) and not named:
            message = "pipelines: names no pipeline; list the pipelines this file's rule sets belong to, or remove "
            found.append(doc.locator.problem(("pipelines",), message + "the key (every pipeline)"))
        for index, name in enumerate(named if isinstance(named, list) else []):
            if isinstance(name, str) and name not in known:
                message = f"unknown pipeline {name!r}{did_you_mean(name, known)}; pipelines: {listed}"
                found.append(doc.locator.problem(("pipelines", index), message))
    return found


class OwnedSet(NamedTuple):
    """A rule set whose file names the pipelines it belongs to: where, and which."""

    file: str
    line: int
    owners: tuple[str, ...]


def sets_with_owners(rules_dir: Path) -> dict[str, OwnedSet]:
    """The rule sets of ``rules_dir`` whose files list their pipelines (``pipelines:``), by set name."""
    found: dict[str, OwnedSet] = {}
    for path in yaml_files(rules_dir):
        try:
            doc = load_yaml(path, display_path(path), strict=False)
        except ConfigError:
            continue
        data = doc.data if isinstance(doc.data, dict) else {}
        name, owners = data.get("ruleset"), data.get("pipelines")
        if isinstance(name, str) and isinstance(owners, list) and owners:
            line = doc.locator.position(("pipelines",))[0]
            found.setdefault(name, OwnedSet(doc.locator.file, line, tuple(map(str, owners))))
    return found


_UNKNOWN_SET = re.compile(r"unknown rule set '([^']+)'")


def unknown_rule_set(problem: Problem) -> str | None:
    """The rule set ``problem`` says the rules directory lacks, or None."""
    match = _UNKNOWN_SET.search(problem.message)
    return match[1] if match else None


def owned_elsewhere(problem: Problem, pipeline: str | None, sets: Mapping[str, OwnedSet]) -> Problem:
    """``problem``; when it names a rule set that another pipeline's file defines, with that file and the fix."""
    unknown = unknown_rule_set(problem)
    found = sets.get(unknown) if unknown else None
    if found is None or pipeline is None or pipeline in found.owners:
        return problem
    hint = (
        f"{found.file} defines it for {', '.join(found.owners)} only (line {found.line}): "
        f"add {pipeline} to its pipelines:"
    )
    return replace(problem, message=f"{problem.message}; {hint}")
