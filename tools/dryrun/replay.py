"""``pipeline-dryrun EVENTS…``: replay recorded events through the Lambda's pipeline, rules and responses.

Each event runs through ``runtime.app.Application.process`` exactly as in the Lambda, with the
services swapped (``tools.dryrun.lanes``): with ``--world`` the ports reach a world (moto or
memory) and every write and send is performed there and recorded; without it (``--backend live``)
reads go to the real account and writes and sends are only planned, in memory. ``--baseline-rules``
and ``--baseline-pipeline`` (another rules directory, another pipeline file: a change that adds a
rule set) add a second lane with its own world, and each event's decisions are compared; once the
two worlds may differ, each event also runs with the baseline rules on the candidate's world (a
probe, undone afterwards), which tells a changed decision from a knock-on. A pipeline one lane's rules
directory holds no rules of (a bundle pulled for another pipeline) is decided with the other lane's
rules in both (``tools.dryrun.coverage``). With a memory world, long
replays are spread over the machine's cores (``tools.dryrun.parallel``) with the same output.
``--report FILE`` also writes the decision report page (``tools.dryrun.report_page``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import NamedTuple, TextIO

from engine.config import AppConfig, display_path
from engine.errors import ConfigError, Problem
from runtime.app import shared_limits
from runtime.layout import PIPELINES_DIR, pipeline_files
from tools.console import EXIT_CHANGED, EXIT_OK, EXIT_USAGE, problem_lines
from tools.dryrun.backends import BackendUnavailable, open_backend
from tools.dryrun.blueprint import blueprint
from tools.dryrun.coverage import LeftOut, Lent, load_lane, rules_dir_problem, uncompared
from tools.dryrun.events import EventFileError, RecordedEvent, load_events
from tools.dryrun.lanes import REFUSED_NOTE, UNREAD_NOTE, Lane, ReplayClock, account_lane, with_placeholders, world_lane
from tools.dryrun.live import AccountAccess, live_clients, process_reads_only, pseudonymized_recordings
from tools.dryrun.mask import Masker, Scrubber
from tools.dryrun.parallel import available_workers, conversation_groups, partition, run_partitioned
from tools.dryrun.report import (
    LATE_REPLAY_NOTE,
    MASKED_SIGNATURE_NOTE,
    NOT_COMPARED,
    REDACTED_SECRET_NOTE,
    STALE_SIGNATURE_NOTE,
    Progress,
    Summary,
    Table,
    change_kind,
    effects,
    event_record,
    masked_note,
    masked_reads,
    shown_masked_note,
    to_json_line,
)
from tools.dryrun.report_file import ReportError, report_meta, write_report
from tools.dryrun.world import WorldSpec, load_world, now_option, secret_values
from tools.needs import Needs, pipeline_needs
from tools.requires import MissingTool

__all__ = ["Rendered", "ReplayOptions", "UsageError", "run_replay"]

PROGRESS_MIN_EVENTS = 100
# With a memory world and at least this many events, --jobs 0 (automatic) uses every core (up to MAX_JOBS).
AUTO_PARALLEL_EVENTS = 2000
MAX_JOBS = 8
BASELINE_PREFIX = "baseline-"


class UsageError(Exception):
    """Arguments that do not make sense together."""


@dataclass(frozen=True)
class ReplayOptions:
    """The replay's command line, checked."""

    events: tuple[Path, ...]
    pipeline: Path | None
    rules: Path
    world: Path | None
    baseline_rules: Path | None
    baseline_pipeline: Path | None
    now: datetime | None
    backend: str
    as_json: bool
    explain: bool
    independent: bool
    show_data: bool
    skip_signature: bool
    fail_on_change: bool
    jobs: int
    report: Path | None = None
    report_title: str | None = None
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def baseline_name(self) -> str | None:
        """What the baseline lane is, for people (``None`` without one)."""
        baselines = [self.baseline_pipeline, self.baseline_rules]
        return " + ".join(display_path(path) for path in baselines if path is not None) or None

    @property
    def live(self) -> bool:
        """Reads come from the account (no world)."""
        return self.world is None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ReplayOptions:
        """Options from parsed arguments; UsageError for combinations that cannot work."""
        baseline_pipeline = getattr(args, "baseline_pipeline", None)
        if args.fail_on_change and args.baseline_rules is None and baseline_pipeline is None:
            raise UsageError(
                "--fail-on-change needs --baseline-rules DIR or --baseline-pipeline FILE (there is nothing to compare)"
            )
        backend = args.backend or ("live" if args.world is None else "moto")
        if backend == "live" and args.world is not None:
            raise UsageError("--backend live reads the account: it takes no --world FILE")
        if backend != "live" and args.world is None:
            raise UsageError(f"--backend {backend} needs --world FILE (without a world, reads come from AWS)")
        live_options = [name for name in ("profile", "region", "endpoint_url") if getattr(args, name, None)]
        if live_options and backend != "live":
            names = ", ".join("--" + name.replace("_", "-") for name in live_options)
            raise UsageError(f"{names}: only for reads from AWS (--backend live, no --world)")
        jobs = int(getattr(args, "jobs", 0) or 0)
        if jobs < 0:
            raise UsageError("--jobs must be 0 (automatic) or a positive number")
        if jobs > 1 and backend != "memory":
            raise UsageError("--jobs above 1 needs --backend memory (moto is the single-process reference)")
        now = None
        if args.now is not None:
            try:
                now = now_option(args.now)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        return cls(
            events=tuple(args.events),
            pipeline=args.pipeline,
            rules=args.rules,
            world=args.world,
            baseline_rules=args.baseline_rules,
            baseline_pipeline=baseline_pipeline,
            now=now,
            backend=backend,
            as_json=args.json,
            explain=bool(getattr(args, "explain", False)),
            independent=args.independent,
            show_data=args.show_data,
            skip_signature=args.skip_signature,
            fail_on_change=args.fail_on_change,
            jobs=jobs,
            report=getattr(args, "report", None),
            report_title=getattr(args, "report_title", None),
            profile=getattr(args, "profile", None),
            region=getattr(args, "region", None),
            endpoint_url=getattr(args, "endpoint_url", None),
        )

    def workers(self, events: int) -> int:
        """How many processes replay ``events`` events."""
        if self.backend != "memory":
            return 1
        if self.jobs:
            return self.jobs
        return min(max(available_workers(), 1), MAX_JOBS) if events >= AUTO_PARALLEL_EVENTS else 1


class Rendered(NamedTuple):
    """One replayed event as output text, with what the summary counts (a tuple: cheap between processes).

    ``record`` is the event's JSON line when a report is being made; ``pipeline`` the pipeline it went to.
    """

    text: str
    outcome: str
    signature: str | None
    change: str | None
    kind: str | None = None
    masked: bool = False
    record: str | None = None
    pipeline: str | None = None
    unread: bool = False
    masked_signature: bool = False
    redacted_signature: bool = False
    late_replay: bool = False
    stale_signature: bool = False


class _Renderer:
    """Replays one event in every lane and renders it (JSON line or table row); picklable results only.

    With a baseline and an evolving world, a probe lane (the baseline rules on the candidate's world)
    runs each event once the two worlds may differ, that is once an event did different things in
    each; until then the worlds are the same and a probe would only repeat the baseline.
    """

    def __init__(
        self,
        options: ReplayOptions,
        lanes: list[Lane],
        table: Table | None,
        scrubber: Scrubber,
        uncompared: frozenset[str] = frozenset(),
    ) -> None:
        self._options = options
        self._uncompared = uncompared  # pipelines decided with the same rules in both lanes
        self._scrubber = scrubber
        self._lane = lanes[0]
        self._baseline = lanes[1] if len(lanes) > 1 else None
        self._probe = lanes[2] if len(lanes) > 2 else None
        self._diverged = False
        self._table = table
        self._masker = Masker(show_data=options.show_data)

    def __call__(self, recorded: RecordedEvent) -> Rendered:
        event, notes = recorded.event, []
        if self._options.skip_signature:
            event, missing = with_placeholders(event, self._lane.auth_headers(event))
            if missing:
                notes.append(f"{', '.join(missing)} was missing; a placeholder stood in for it (--skip-signature)")
        probe = self._probe.run(event, []) if self._probe is not None and self._diverged else None
        run = self._lane.run(event, notes)
        base = self._baseline.run(event, list(notes)) if self._baseline is not None else None
        kind = None
        if base is not None:
            kind = change_kind(base, run, probe)
            if kind == "unchanged" and run.handled.pipeline in self._uncompared:
                kind = NOT_COMPARED  # the same rules decided it twice: nothing was compared
            self._diverged = self._diverged or effects(base) != effects(run)
        note = masked_note(event, masked_reads(run) + (masked_reads(base) if base is not None else []))
        if note is not None:
            run = replace(run, notes=[*run.notes, note])
        masker = self._masker.for_event(recorded.event)
        pipeline = run.handled.pipeline or ""
        record = event_record(
            recorded.source,
            run,
            masker=masker,
            uses=self._lane.uses.get(pipeline, {}),
            skipped_steps=self._lane.skipped_steps.get(pipeline, frozenset()),
            skip_signature=self._options.skip_signature,
            baseline=base,
            kind=kind,
        )
        hidden = shown_masked_note(record, run, base, masker)
        if hidden is not None:
            run = replace(run, notes=[*run.notes, hidden])
            record["notes"] = run.notes
        line = to_json_line(record)
        if self._scrubber.holds(line):
            # Credentials are scrubbed from the record's strings, never from the JSON text: a credential
            # that reads like `true` or `null` must not rewrite the JSON syntax.
            record = self._scrubber.data(record)
            line = to_json_line(record)
        text = line + "\n" if self._table is None else self._scrubber(self._table.row_text(record))
        said = [each for lane in (run, base) if lane is not None for each in lane.notes]  # both lanes' notes
        return Rendered(
            text,
            record["outcome"],
            record["signature"],
            record.get("change"),
            record.get("change_kind"),
            note is not None,
            line if self._options.report else None,
            run.handled.pipeline,
            any(each.startswith((UNREAD_NOTE, REFUSED_NOTE)) for each in said),
            any(each.startswith(MASKED_SIGNATURE_NOTE) for each in said),
            any(each.startswith(REDACTED_SECRET_NOTE) for each in said),
            any(each.startswith(LATE_REPLAY_NOTE) for each in said),
            any(each.startswith(STALE_SIGNATURE_NOTE) for each in said),
        )


class _Scrubbed:
    """A text stream that scrubs credentials from everything written to it."""

    def __init__(self, stream: TextIO, scrubber: Scrubber) -> None:
        self._stream = stream
        self._scrubber = scrubber

    def write(self, text: str) -> int:
        return self._stream.write(self._scrubber(text))

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def raw(self) -> TextIO:
        """The stream itself, for text that is already scrubbed."""
        return self._stream


class _LogHandler(logging.Handler):
    """Engine warnings and errors as one line each on stderr: scrubbed, masked, without traceback."""

    def __init__(self, err: _Scrubbed, masker: Masker) -> None:
        super().__init__(logging.WARNING)
        self._err = err
        self._masker = masker

    def emit(self, record: logging.LogRecord) -> None:
        message = self._masker.text(record.getMessage())
        self._err.write(f"pipeline-dryrun: {record.levelname.lower()}: {message}\n")


@contextmanager
def _engine_logs(err: _Scrubbed, masker: Masker) -> Iterator[None]:
    logger = logging.getLogger("engine")
    handler = _LogHandler(err, masker)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextmanager
def _collector_tuned() -> Iterator[None]:
    """Fewer garbage collections during the replay (a few percent faster), restored afterwards.

    The world and the configuration live until the end, so the collector need not walk them again
    (``gc.freeze``; forked workers also keep sharing their pages); each event makes many short-lived
    containers and no cycles, so young collections can be rarer.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _problems(err: _Scrubbed, problems: list[Problem]) -> int:
    err.write(problem_lines(problems))
    return EXIT_USAGE


def _versions(lanes: list[Lane]) -> list[str]:
    """A line per lane naming each pipeline's rules version (``baseline`` for the second lane)."""
    lines = []
    for label, lane in zip(("rules version", "baseline rules version"), lanes, strict=False):
        versions = ", ".join(f"{config.name} {config.version}" for config in lane.application.configs)
        lines.append(f"{label}: {versions}")
    return lines


def _banner(options: ReplayOptions, world: WorldSpec | None, clock_text: str, lanes: list[Lane]) -> list[str]:
    lines = _versions(lanes)
    if world is not None:
        mode = "each event against the world as loaded" if options.independent else "the world evolves event by event"
        lines.append(f"world {world.file} ({options.backend}), now {clock_text}; {mode}")
    else:
        access = _access(options).describe()
        lines.append(f"live: reading the AWS account ({access}); writes and sends are only planned, in memory")
        lines.append(f"now: {clock_text}")
    if options.baseline_name is not None and not options.independent:
        lines.append(
            "the world evolves: a decision may change because an earlier one did (KNOCK-ON); "
            "--independent compares every event against the same world, best for reviewing a rule change"
        )
    if options.skip_signature:
        lines.append("--skip-signature: signatures are NOT checked")
    if not options.show_data:
        lines.append("phone numbers and message text are masked (--show-data shows them)")
    return [*lines, ""]


def _same_rules_dir(rules: Path, baseline: Path | None) -> str | None:
    """Why a ``--baseline-rules`` that is the ``--rules`` directory itself compares nothing (None when it is not)."""
    if baseline is None or rules.resolve() != baseline.resolve():
        return None
    return (
        f"--baseline-rules {display_path(baseline)} is the --rules directory itself, so every event is compared with "
        "the rules it is decided by; extract the rules to compare with elsewhere: mkdir -p /tmp/baseline && git "
        "archive HEAD rules | tar -x -C /tmp/baseline, then --baseline-rules /tmp/baseline/rules"
    )


def run_replay(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """Replay the events named in ``args``; return the exit status (0, 1 on a change with --fail-on-change, 2)."""
    scrubber = Scrubber()
    errors = _Scrubbed(err, scrubber)
    try:
        options = ReplayOptions.from_args(args)
    except UsageError as exc:
        errors.write(f"pipeline-dryrun: error: {exc}\n")
        return EXIT_USAGE
    unusable = [rules_dir_problem(options.rules, "--rules", baseline=False)]
    if options.baseline_rules is not None:
        unusable.append(rules_dir_problem(options.baseline_rules, "--baseline-rules", baseline=True))
    if any(unusable):
        return _problems(errors, [problem for problem in unusable if problem is not None])
    # With another pipeline file the same rules compare that file; without, each event is compared with itself.
    itself = None if options.baseline_pipeline is not None else _same_rules_dir(options.rules, options.baseline_rules)
    if itself is not None:
        errors.write(f"pipeline-dryrun: note: {itself}\n")
    try:
        events = load_events(options.events)
        world = load_world(options.world) if options.world else None
    except EventFileError as exc:
        return _problems(errors, exc.problems)
    except ConfigError as exc:
        return _problems(errors, exc.problems)
    if options.live and (pseudonymized := pseudonymized_recordings(events)):
        return _problems(errors, pseudonymized)
    if world is not None:
        scrubber.add(secret_values(world.secrets))
    clock = ReplayClock(options.now or (world.now if world else None))
    pipelines = [options.pipeline] if options.pipeline is not None else pipeline_files(PIPELINES_DIR)
    if not pipelines:
        errors.write(f"pipeline-dryrun: error: no pipeline files in {PIPELINES_DIR}/; pass --pipeline FILE\n")
        return EXIT_USAGE
    try:
        configs, needs, lent, left = _lane_configs(options, pipelines, world)
    except ConfigError as exc:
        return _problems(errors, exc.problems)
    except UsageError as exc:
        errors.write(f"pipeline-dryrun: error: {exc}\n")
        return EXIT_USAGE
    for note in dict.fromkeys([*map(str, left), *map(str, lent)]):
        errors.write(f"{note}\n")
    for problem in (problem for config in configs[0] for problem in config.warnings):
        errors.write(f"{problem}\n")
    with ExitStack() as stack:
        stack.enter_context(_engine_logs(errors, Masker(show_data=options.show_data)))
        try:
            lanes = _with_probe(configs, _lanes(options, configs[:2], world, clock, scrubber, stack, needs))
        except ConfigError as exc:
            return _problems(errors, exc.problems)
        except (UsageError, MissingTool, BackendUnavailable) as exc:
            errors.write(f"pipeline-dryrun: error: {exc}\n")
            return EXIT_USAGE
        output = _Scrubbed(out, scrubber)
        uncompared = frozenset(note.pipeline for note in lent)
        summary, records, routed = _replay(
            options, events, lanes, world, clock, scrubber, uncompared, out=output, err=errors
        )
    if options.report is not None:
        banner = _banner(options, world, clock.describe(), lanes)
        meta = report_meta(options, world, banner, summary, lent)
        try:
            private = write_report(options.report, records, configs[0], meta, scrubber.data)
        except ReportError as exc:
            errors.write(f"pipeline-dryrun: error: {exc}\n")
            return EXIT_USAGE
        errors.write(
            f"pipeline-dryrun: wrote the report {options.report}{' (readable by its owner only)' if private else ''}\n"
        )
    if itself is not None:
        errors.write(f"pipeline-dryrun: note: {itself}\n")  # again below the replay, where the summary is read
    return _gate(summary, lent, routed, errors) if options.fail_on_change else EXIT_OK


def _lane_configs(
    options: ReplayOptions, pipelines: list[Path], world: WorldSpec | None
) -> tuple[list[list[AppConfig]], Needs, dict[Lent, None], dict[LeftOut, None]]:
    """Each lane's configurations (the candidate's, then the baseline's and its probe's) and what they all need.

    Also the pipelines a lane loaded with the other lane's rules (``Lent``) or left out (``LeftOut``); ConfigError or
    UsageError when a lane cannot load.
    """
    # Each lane: its pipeline files, its rules, the other lane's rules (for a pipeline its own hold none of), prefix.
    lanes_of: list[tuple[list[Path], Path, Path | None, str]] = [(pipelines, options.rules, None, "")]
    if options.baseline_rules is not None or options.baseline_pipeline is not None:
        baseline_rules = options.baseline_rules or options.rules
        lanes_of[0] = (pipelines, options.rules, baseline_rules, "")
        baseline = (_baseline_pipelines(options, pipelines), baseline_rules, options.rules)
        lanes_of.append((*baseline, BASELINE_PREFIX))
        if not options.independent:
            # The probe: the baseline over the candidate's world, so with the candidate's resource names.
            lanes_of.append((*baseline, ""))
    # The world holds what every replayed pipeline needs (tables, indexes, queues), whichever lane runs it.
    needs = pipeline_needs(dict.fromkeys(path for files, *_ in lanes_of for path in files))
    configs = []
    lent: dict[Lent, None] = {}
    left: dict[LeftOut, None] = {}
    for files, rules, other, prefix in lanes_of:
        env = dict(os.environ)
        if world is not None:
            env.update(blueprint(prefix, needs)[0].environment())
        loaded, borrowed, omitted = load_lane(files, rules, env, other, by_default=options.pipeline is None)
        configs.append(loaded)
        lent.update(dict.fromkeys(borrowed))
        left.update(dict.fromkeys(omitted))
    return configs, needs, lent, left


def _gate(summary: Summary, lent: Iterable[Lent], routed: Mapping[str, int], errors: _Scrubbed) -> int:
    """``--fail-on-change``'s exit status: 2 when some events were not compared, else 1 on a change, else 0."""
    not_compared = uncompared(lent, routed)
    if not_compared:
        return _problems(errors, not_compared)
    if summary.unread:
        # Both lanes failing the same read agree on nothing: a gate must not pass what it did not check.
        errors.write(
            f"pipeline-dryrun: error: --fail-on-change: {summary.unread} event(s) not decided: the replay could not "
            "read the account (see each event's notes); nothing was compared for them\n"
        )
        return EXIT_USAGE
    if summary.masked_signatures:
        # Stopped at a signature no secret signs (the recording masked it): no rule ran in either lane.
        errors.write(
            f"pipeline-dryrun: error: --fail-on-change: {summary.masked_signatures} event(s) stopped at a signature "
            "their recording masked, so no rule decided them; replay masked recordings with --skip-signature\n"
        )
        return EXIT_USAGE
    if summary.late_replays:
        # Production's record of each message's own acceptance ended it before the rules, in both lanes.
        errors.write(
            f"pipeline-dryrun: error: --fail-on-change: {summary.late_replays} event(s) ended REPLAY at the replay's "
            "time by the record production wrote accepting them, so no rule decided them; replay them at their "
            "arrival (without --now)\n"
        )
        return EXIT_USAGE
    if summary.stale_signatures:
        # The replay's time, not production's, put each signed time past its window: no rule ran in either lane.
        errors.write(
            f"pipeline-dryrun: error: --fail-on-change: {summary.stale_signatures} event(s) stopped at a signature "
            "whose time was inside its window when they arrived and is past it at the replay's time, so no rule "
            "decided them; replay them at their arrival (without --now)\n"
        )
        return EXIT_USAGE
    if summary.redacted_signatures:
        # Stopped at a signature checked with a credential pipeline-world redacted: no rule ran in either lane.
        errors.write(
            f"pipeline-dryrun: error: --fail-on-change: {summary.redacted_signatures} event(s) stopped at a signature "
            "checked with a placeholder the world holds in place of a credential, so no rule decided them; replay with "
            "--skip-signature, or against a world written with --keep-secrets\n"
        )
        return EXIT_USAGE
    return EXIT_CHANGED if summary.changed else EXIT_OK


def _pipeline_name(path: Path) -> str:
    from engine.yamlsource import load_yaml

    data = load_yaml(path, display_path(path)).data
    name = data.get("pipeline") if isinstance(data, dict) else None
    return name if isinstance(name, str) else path.stem


def _baseline_pipelines(options: ReplayOptions, pipelines: list[Path]) -> list[Path]:
    """The baseline lane's pipeline files: ``--baseline-pipeline`` in place of the pipeline of its name."""
    baseline = options.baseline_pipeline
    if baseline is None:
        return pipelines
    if len(pipelines) == 1:
        return [baseline]
    name = _pipeline_name(baseline)
    names = [_pipeline_name(path) for path in pipelines]
    if name not in names:
        raise UsageError(f"--baseline-pipeline is pipeline {name!r}, which is not replayed ({', '.join(names)})")
    return [baseline if found == name else path for path, found in zip(pipelines, names, strict=True)]


def _lanes(
    options: ReplayOptions,
    configs: list[list[AppConfig]],
    world: WorldSpec | None,
    clock: ReplayClock,
    scrubber: Scrubber,
    stack: ExitStack,
    needs: Needs,
) -> list[Lane]:
    if world is not None:
        backend = stack.enter_context(open_backend(options.backend, shared_limits(configs[0]), needs))
        return [
            world_lane(
                config,
                backend,
                world,
                prefix=prefix,
                clock=clock,
                scrubber=scrubber,
                independent=options.independent,
                skip_signature=options.skip_signature,
            )
            for config, prefix in zip(configs, ["", BASELINE_PREFIX], strict=False)
        ]
    import botocore.exceptions

    try:
        clients = live_clients(shared_limits(configs[0]), _access(options))
    except botocore.exceptions.BotoCoreError as exc:
        raise UsageError(f"without --world, reads come from AWS, but no client could be made: {exc}") from None
    refused: list[str] = []
    stack.enter_context(process_reads_only(refused))
    return [
        account_lane(
            config,
            clients,
            clock=clock,
            scrubber=scrubber,
            independent=options.independent,
            skip_signature=options.skip_signature,
            refused=refused,
        )
        for config in configs
    ]


def _access(options: ReplayOptions) -> AccountAccess:
    return AccountAccess(options.profile, options.region, options.endpoint_url)


def _with_probe(configs: list[list[AppConfig]], lanes: list[Lane]) -> list[Lane]:
    """The lanes, plus the probe (``configs[2]``, the baseline rules on the candidate's world) when there is one."""
    return [*lanes, lanes[0].probe(configs[2])] if len(configs) > 2 else lanes


def _replay(
    options: ReplayOptions,
    events: list[RecordedEvent],
    lanes: list[Lane],
    world: WorldSpec | None,
    clock: ReplayClock,
    scrubber: Scrubber,
    uncompared: frozenset[str],
    *,
    out: _Scrubbed,
    err: _Scrubbed,
) -> tuple[Summary, list[str], Counter[str]]:
    """Replay and write every event; the summary, each event's JSON line (with a report), the events per pipeline.

    ``uncompared``: the pipelines both lanes decided with the same rules (their events' ``change_kind``).
    """
    summary = Summary()
    records: list[str] = []
    routed: Counter[str] = Counter()
    table = None
    if not options.as_json:
        table = Table(out, [event.source for event in events], explain=options.explain, baseline=len(lanes) > 1)
        table.header(_banner(options, world, clock.describe(), lanes))
    render = _Renderer(options, lanes, table, scrubber, uncompared)
    workers = options.workers(len(events))
    rendered: Iterator[Rendered]
    if workers > 1 and world is not None:
        groups = conversation_groups(world.rows["conversations"])
        parts = partition([recorded.event for recorded in events], groups, workers)
        # Workers are forked: nothing written so far may still sit in a buffer they would inherit.
        out.flush()
        err.flush()
        rendered = run_partitioned(events, parts, render)
    else:
        rendered = (render(recorded) for recorded in events)
    progress = Progress(err, len(events), enabled=err.isatty() and len(events) >= PROGRESS_MIN_EVENTS)
    started = perf_counter()
    with _collector_tuned():
        for done, item in enumerate(rendered, start=1):
            out.raw.write(item.text)  # scrubbed where it was rendered (in the workers, when there are several)
            summary.add(
                item.outcome,
                item.signature,
                item.change,
                item.kind,
                item.masked,
                item.unread,
                item.masked_signature,
                item.redacted_signature,
                item.late_replay,
                item.stale_signature,
            )
            if item.record is not None:
                records.append(item.record)
            if item.pipeline is not None:
                routed[item.pipeline] += 1
            progress.update(done)
    progress.close()
    if table is not None:
        table.summary(summary, elapsed=perf_counter() - started, baseline_name=options.baseline_name)
    out.flush()
    return summary, records, routed
