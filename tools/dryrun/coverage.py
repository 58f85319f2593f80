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

Replayed or checked by default (no ``--pipeline``), a pipeline other than the contract's default whose rule sets
a rules directory (not the function's own ``rules/``) lacks, which names it nowhere under ``pipelines:``, is left
out (``LeftOut``, said on stderr): the contract's default is the Twilio pipeline alone, so a directory holding its
rules only (a pulled bundle, or rules written from the contract) replays as that default would, the other
pipelines' events answered as unknown paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from engine.config import AppConfig, display_path, load_config
from engine.errors import ConfigError, Problem
from runtime.layout import PIPELINES_DIR, RULES_DIR, yaml_files

__all__ = [
    "LeftOut",
    "Lent",
    "left_out",
    "load_lane",
    "may_leave_out",
    "named_pipelines",
    "rules_dir_problem",
    "uncompared",
]


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


# CONTRACT §6: ``--pipeline``'s default, the pipeline a replay or check by default always holds.
CONTRACT_PIPELINE = PIPELINES_DIR / "twilio_inbound.yaml"


class LeftOut(NamedTuple):
    """A pipeline file not replayed (or checked) by default: ``rules`` holds none of its rules."""

    pipeline: str
    path: Path
    rules: Path
    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        return (
            f"pipeline-dryrun: {display_path(self.rules)} holds no rules of {self.pipeline}: "
            f"{display_path(self.path)} is left out (its paths are unknown here); give --pipeline to include it"
        )


def may_leave_out(path: Path, rules: Path) -> bool:
    """Whether ``left_out`` may leave the pipeline at ``path`` out with ``rules``, whatever its problems.

    Not the contract's own default pipeline, nor with the function's own rules directory (all of whose pipelines
    it loads at its cold start): a caller asks before finding the problems.
    """
    return path.resolve() != CONTRACT_PIPELINE.resolve() and rules.resolve() != RULES_DIR.resolve()


def left_out(path: Path, rules: Path, problems: Sequence[Problem]) -> LeftOut | None:
    """The pipeline at ``path`` as left out of a default replay or check with ``rules``, or None.

    Left out when its ``problems`` are only rule sets that no file of the directory defines (for any pipeline),
    and no file there names it; never when ``may_leave_out`` says not.
    """
    from tools.check import declared_pipeline_name, unknown_rule_set

    if not may_leave_out(path, rules):
        return None
    errors = [problem for problem in problems if problem.severity == "error"]
    unknown = {unknown_rule_set(problem) for problem in errors}
    if not errors or None in unknown:
        return None
    name = declared_pipeline_name(path) or path.stem
    documents = _documents(rules)  # read once for both questions
    if unknown & _defined_rule_sets(documents) or name in _named(documents):
        return None
    return LeftOut(name, path, rules, tuple(problems))


def rules_dir_problem(rules_dir: Path, option: str, *, baseline: bool) -> Problem | None:
    """Why ``rules_dir``, given as ``option``, cannot be used (missing, a file; a baseline without rules), or None.

    The candidate's directory may hold no rules files (pipelines that use no rule set); a baseline's must.
    """
    if not rules_dir.exists():
        reason = "no such directory"
    elif not rules_dir.is_dir():
        reason = "not a directory"
    elif baseline and not yaml_files(rules_dir):
        reason = "the directory holds no rules files (*.yaml, *.yml)"
    else:
        return None
    message = f"{option}: {reason}; pass the directory holding the rules/*.yaml files"
    return Problem(display_path(rules_dir), 1, 1, message)


def _documents(rules_dir: Path) -> list[dict[object, object]]:
    """The rules files of ``rules_dir`` that read as mappings (unreadable files left out)."""
    from engine.yamlsource import load_yaml

    documents: list[dict[object, object]] = []
    for path in yaml_files(rules_dir):
        try:
            data = load_yaml(path, strict=False).data
        except ConfigError:
            continue
        if isinstance(data, dict):
            documents.append(data)
    return documents


def _named(documents: Sequence[dict[object, object]]) -> frozenset[str]:
    """The pipelines rules ``documents`` (``_documents``) name under ``pipelines:``."""
    named: set[str] = set()
    for data in documents:
        listed = data.get("pipelines")
        if isinstance(listed, list):
            named.update(str(name) for name in listed)
    return frozenset(named)


def named_pipelines(rules_dir: Path) -> frozenset[str]:
    """The pipelines the rules files of ``rules_dir`` name under ``pipelines:`` (unreadable files left out)."""
    return _named(_documents(rules_dir))


def _defined_rule_sets(documents: Sequence[dict[object, object]]) -> frozenset[str]:
    """The rule sets rules ``documents`` (``_documents``) define, whichever pipelines they name."""
    return frozenset(str(data["ruleset"]) for data in documents if isinstance(data.get("ruleset"), str))


def load_lane(
    files: Sequence[Path],
    rules: Path,
    env: Mapping[str, str],
    other: Path | None = None,
    *,
    by_default: bool = False,
) -> tuple[list[AppConfig], list[Lent], list[LeftOut]]:
    """Each pipeline file with ``rules`` (or, holding none of its rules, ``other``'s); ConfigError lists every problem.

    Returns the configurations in the order of ``files``, the pipelines loaded with ``other``, and (``files`` being
    the default, every pipeline) those left out because neither directory holds their rules.
    """
    from tools.check import declared_pipeline_name

    configs: list[AppConfig] = []
    lent: list[Lent] = []
    left: list[LeftOut] = []
    problems: list[Problem] = []
    for path in files:
        try:
            configs.append(load_config(path, rules, env))
            continue
        except ConfigError as exc:
            failed = exc.problems
        name = declared_pipeline_name(path) or path.stem
        if other is None or not _lends(name, rules, other):
            omitted = left_out(path, rules, failed) if by_default else None
            if omitted is None:
                problems.extend(failed)
            else:
                left.append(omitted)
            continue
        try:
            configs.append(load_config(path, other, env))
            lent.append(Lent(name, rules, other))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems or (left and not configs):
        # With every pipeline left out there is nothing to replay: their problems are the answer.
        raise ConfigError(
            list(dict.fromkeys([*problems, *(problem for omitted in left for problem in omitted.problems)]))
        )
    return configs, lent, left


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
