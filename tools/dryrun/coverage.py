"""A replay lane's configurations when its rules directory holds one pipeline's rules only (a pulled bundle).

A rules bundle holds one pipeline's rule files: those naming it under ``pipelines:`` and those naming
none. Pulled as a baseline (``pipeline-rules pull BUNDLE --out DIR``), it holds none of the other
pipelines' rules, so those pipelines cannot load with it. A pipeline that does not load with a lane's
rules directory, which names it nowhere while the other lane's directory does, is loaded with the other
lane's directory instead, provided its own directory holds other pipelines' rules (a bundle, not a
wrong directory): its events decide the same in both lanes (they are not compared), and the replay
says so; with ``--fail-on-change`` such events fail the replay (``uncompared``), since a gate that
compared nothing must not pass. Every other loading problem is reported as without a baseline.

A rules directory given on the command line must exist, and a baseline's must hold rules files
(``rules_dir_problem``): a wrong path is refused with its option named rather than reported as the
pipelines' unknown rule sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from engine.config import AppConfig, display_path, load_config
from engine.errors import ConfigError, Problem

__all__ = ["Lent", "load_lane", "named_pipelines", "rule_files", "rules_dir_problem", "uncompared"]


class Lent(NamedTuple):
    """A pipeline loaded with the other lane's rules (``lender``) because ``rules`` holds none of its own."""

    pipeline: str
    rules: Path
    lender: Path

    def __str__(self) -> str:
        return (
            f"pipeline-dryrun: {display_path(self.rules)} holds no rules of {self.pipeline}: its events are decided "
            f"with {display_path(self.lender)} in both lanes (not compared)"
        )


def rule_files(rules_dir: Path) -> list[Path]:
    """The rules files of ``rules_dir`` (``*.yaml``, ``*.yml``), in name order."""
    return sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])


def rules_dir_problem(rules_dir: Path, option: str, *, baseline: bool) -> Problem | None:
    """Why ``rules_dir``, given as ``option``, cannot be used (missing, a file; a baseline without rules), or None.

    The candidate's directory may hold no rules files (pipelines that use no rule set); a baseline's must.
    """
    if not rules_dir.exists():
        reason = "no such directory"
    elif not rules_dir.is_dir():
        reason = "not a directory"
    elif baseline and not rule_files(rules_dir):
        reason = "the directory holds no rules files (*.yaml, *.yml)"
    else:
        return None
    message = f"{option}: {reason}; pass the directory holding the rules/*.yaml files"
    return Problem(display_path(rules_dir), 1, 1, message)


def named_pipelines(rules_dir: Path) -> frozenset[str]:
    """The pipelines the rules files of ``rules_dir`` name under ``pipelines:`` (unreadable files left out)."""
    from engine.yamlsource import load_yaml

    named: set[str] = set()
    for path in rule_files(rules_dir):
        try:
            data = load_yaml(path, strict=False).data
        except ConfigError:
            continue
        listed = data.get("pipelines") if isinstance(data, dict) else None
        if isinstance(listed, list):
            named.update(str(name) for name in listed)
    return frozenset(named)


def load_lane(
    files: Sequence[Path], rules: Path, env: Mapping[str, str], other: Path | None = None
) -> tuple[list[AppConfig], list[Lent]]:
    """Each pipeline file with ``rules`` (or, holding none of its rules, ``other``'s); ConfigError lists every problem.

    Returns the configurations in the order of ``files``, and the pipelines loaded with ``other``.
    """
    from tools.check import declared_pipeline_name

    configs: list[AppConfig] = []
    lent: list[Lent] = []
    problems: list[Problem] = []
    for path in files:
        try:
            configs.append(load_config(path, rules, env))
            continue
        except ConfigError as exc:
            failed = exc.problems
        name = declared_pipeline_name(path) or path.stem
        if other is None or not _lends(name, rules, other):
            problems.extend(failed)
            continue
        try:
            configs.append(load_config(path, other, env))
            lent.append(Lent(name, rules, other))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return configs, lent


def _lends(pipeline: str, rules: Path, other: Path) -> bool:
    """Whether ``rules`` holds other pipelines' rules and none of ``pipeline``'s, which ``other`` holds."""
    held = named_pipelines(rules)
    return bool(held) and pipeline not in held and pipeline in named_pipelines(other)


def uncompared(lent: Iterable[Lent], events: Mapping[str, int]) -> list[Problem]:
    """A problem per lent pipeline that ``events`` (count by pipeline) went to: none of its events was compared."""
    return [
        Problem(
            display_path(note.rules),
            1,
            1,
            f"--fail-on-change: none of the {events[note.pipeline]} event(s) of {note.pipeline} was compared "
            f"(this directory holds no rules of {note.pipeline}; both lanes decided them with "
            f"{display_path(note.lender)}); compare with a rules directory that holds its rules, or replay "
            "only the other pipelines' events",
        )
        for note in lent
        if events.get(note.pipeline)
    ]
