"""A replay lane's configurations when its rules directory holds one pipeline's rules only (a pulled bundle).

A rules bundle holds one pipeline's rule files: those naming it under ``pipelines:`` and those naming
none. Pulled as a baseline (``pipeline-rules pull BUNDLE --out DIR``), it holds none of the other
pipelines' rules, so those pipelines cannot load with it. A pipeline that does not load with a lane's
rules directory, which names it nowhere while the other lane's directory does, is loaded with the other
lane's directory instead: its events decide the same in both lanes (they are not compared), and the
replay says so. Every other loading problem is reported as without a baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from engine.config import AppConfig, display_path, load_config
from engine.errors import ConfigError, Problem

__all__ = ["Lent", "load_lane", "named_pipelines"]


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


def named_pipelines(rules_dir: Path) -> frozenset[str]:
    """The pipelines the rules files of ``rules_dir`` name under ``pipelines:`` (unreadable files left out)."""
    from engine.yamlsource import load_yaml

    named: set[str] = set()
    for path in sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")]):
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
        if other is None or name in named_pipelines(rules) or name not in named_pipelines(other):
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
