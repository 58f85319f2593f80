"""The configuration paths given on the command line, checked for the usual mix-ups before anything is loaded.

A rules file given as ``--pipeline`` (or ``--baseline-pipeline``), a directory as either, the pipelines directory as
``--rules``: loaded as asked, each would print a screen of errors about the wrong kind of file. Each is one usage
error instead. (A ``--rules`` path that is no directory is ``coverage.rules_dir_problem``'s,
located at the path.)
"""

from __future__ import annotations

import re
from pathlib import Path

from runtime.layout import yaml_files

__all__ = ["path_mistake"]

# A top-level key, at the start of a line, as rules files (ruleset:) and pipeline files (steps:) begin theirs.
_RULESET = re.compile(r"^ruleset:", re.MULTILINE)
_STEPS = re.compile(r"^steps:", re.MULTILINE)


def _has(path: Path, key: re.Pattern[str]) -> bool:
    try:
        return key.search(path.read_text(encoding="utf-8", errors="replace")) is not None
    except OSError:
        return False


def _rules_mistake(option: str, rules: Path, pipeline_option: str) -> str | None:
    files = yaml_files(rules) if rules.is_dir() else []
    if files and not any(_has(path, _RULESET) for path in files) and any(_has(path, _STEPS) for path in files):
        return (
            f"{option} {rules} holds pipeline files (pipeline:, steps:), not rules files (ruleset:): give the rules "
            f"directory with {option}, and a pipeline file with {pipeline_option}"
        )
    return None


def _pipeline_mistake(option: str, pipeline: Path, rules_option: str) -> str | None:
    if pipeline.is_dir():
        # Without --pipeline every pipeline is checked or replayed; without --baseline-pipeline there is no such all.
        leave_out = f", or leave {option} out to check them all" if option == "--pipeline" else ""
        return f"{option} takes one pipeline file, not a directory: give one of pipelines/*.yaml{leave_out}"
    if pipeline.is_file() and _has(pipeline, _RULESET) and not _has(pipeline, _STEPS):
        return (
            f"{option} {pipeline} is a rules file (ruleset:), not a pipeline file: give a file of pipelines/ with "
            f"{option}, and the rules directory with {rules_option}"
        )
    return None


def path_mistake(*, rules: dict[str, Path | None], pipelines: dict[str, Path | None]) -> str | None:
    """Why a path given (by its option's name) is the wrong kind of path for its option, or None.

    ``rules`` and ``pipelines`` name their options in the same order, each rules option beside its pipeline option
    (``--rules`` and ``--pipeline``, ``--baseline-rules`` and ``--baseline-pipeline``): a message names both.
    """
    pairs = list(zip(rules.items(), pipelines.items(), strict=True))
    found = [_rules_mistake(option, path, other) for (option, path), (other, _) in pairs if path is not None]
    found += [_pipeline_mistake(option, path, other) for (other, _), (option, path) in pairs if path is not None]
    return next((mistake for mistake in found if mistake), None)
