"""``pipeline-dryrun EVENTS…``: replay recorded events through the Lambda's pipeline, rules and responses.

Each event runs through ``engine.app.Application.process`` exactly as in the Lambda, with the
services swapped: with ``--world`` the ports reach a world (moto or memory) and every write and send
is performed there and recorded; without it reads go to the real account and writes and sends are
only planned. A ``Lane`` is one rule set's replay; ``--baseline-rules`` adds a second lane with its
own world, and each event's decisions are compared.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any, TextIO

from engine.app import Application
from engine.clock import Clock, FixedClock, SystemClock
from engine.config import AppConfig, display_path, load_config
from engine.context import Services
from engine.dryrun.backends import Backend, open_backend
from engine.dryrun.blueprint import TableSchema, blueprint, table_schema
from engine.dryrun.events import EventFileError, RecordedEvent, load_events
from engine.dryrun.mask import Masker, Scrubber
from engine.dryrun.pipeline import replay_pipeline
from engine.dryrun.recording import Journal, PlanningQueues, PlanningTables, RecordingQueues, RecordingTables
from engine.dryrun.report import Progress, Replayed, Summary, Table, event_record, to_json_line
from engine.dryrun.world import WorldSpec, load_world, parse_instant, secret_values
from engine.errors import ConfigError, Problem
from engine.ports import SecretStore
from engine.secrets import SecretCache

__all__ = ["Lane", "ReplayOptions", "UsageError", "run_replay"]

EXIT_OK, EXIT_CHANGED, EXIT_USAGE = 0, 1, 2
PROGRESS_MIN_EVENTS = 100
BASELINE_PREFIX = "baseline-"
PLACEHOLDER_SIGNATURE = "skipped-by-pipeline-dryrun"


class UsageError(Exception):
    """Arguments that do not make sense together."""


@dataclass(frozen=True)
class ReplayOptions:
    """The replay's command line, checked."""

    events: tuple[Path, ...]
    pipeline: Path
    rules: Path
    world: Path | None
    baseline_rules: Path | None
    now: datetime | None
    backend: str
    as_json: bool
    explain: bool
    independent: bool
    show_data: bool
    skip_signature: bool
    fail_on_change: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ReplayOptions:
        """Options from parsed arguments; UsageError for combinations that cannot work."""
        if args.fail_on_change and args.baseline_rules is None:
            raise UsageError("--fail-on-change needs --baseline-rules DIR (there is nothing to compare against)")
        if args.backend == "memory" and args.world is None:
            raise UsageError("--backend memory needs --world FILE (without a world, reads come from AWS)")
        now = None
        if args.now is not None:
            try:
                now = parse_instant(args.now)
            except ValueError:
                raise UsageError(f"--now: {args.now!r} is not an ISO-8601 time (e.g. 2026-11-25T12:00:00Z)") from None
        return cls(
            events=tuple(args.events),
            pipeline=args.pipeline,
            rules=args.rules,
            world=args.world,
            baseline_rules=args.baseline_rules,
            now=now,
            backend=args.backend,
            as_json=args.json,
            explain=bool(getattr(args, "explain", False)),
            independent=args.independent,
            show_data=args.show_data,
            skip_signature=args.skip_signature,
            fail_on_change=args.fail_on_change,
        )


class _WatchedSecrets:
    """A SecretStore that tells the scrubber every credential it hands out."""

    def __init__(self, inner: SecretStore, scrubber: Scrubber) -> None:
        self._inner = inner
        self._scrubber = scrubber

    def get_secret_string(self, name: str) -> str:
        value = self._inner.get_secret_string(name)
        self._scrubber.add(secret_values({name: value}))
        return value


@dataclass
class Lane:
    """One rule set's replay: the application (the Lambda's, with recording services) and its journal."""

    application: Application
    journal: Journal
    skipped_steps: frozenset[str]
    uses: Mapping[str, str]
    reset: Callable[[], None]
    world: bool

    def run(self, event: Any, notes: list[str]) -> Replayed:
        """Run one event; the world keeps its writes unless the lane resets it (``--independent``)."""
        handled = self.application.process(event, explain=True)
        actions, journal_notes = self.journal.take()
        self.reset()
        all_notes = [*notes, *journal_notes]
        note = _signature_note(handled.result.error_code, handled.result.doc, handled.result.error, self.world)
        if note:
            all_notes.append(note)
        return Replayed(handled, actions, all_notes)


def _signature_note(code: str | None, doc: Mapping[str, Any], error: Any, world: bool) -> str | None:
    if code not in ("SECRET_FETCH_FAILED", "SECRET_FETCH_TRANSIENT_ERROR"):
        return None
    name = (doc.get("credential") or {}).get("secret_name")
    where = "from the world" if world else "from the account"
    return (
        f"signature not checked: secret {name!r} could not be read {where} ({error.message}); "
        "--skip-signature replays the event anyway"
    )


def _application(
    config: AppConfig, services: Services, skip_signature: bool
) -> tuple[Application, frozenset[str], dict[str, str]]:
    pipeline, skipped = replay_pipeline(config.pipeline, skip_signature=skip_signature)
    uses = {planned.id: planned.uses for planned in pipeline.steps()}
    return Application(replace(config, pipeline=pipeline), services), skipped, uses


def world_lane(
    config: AppConfig,
    backend: Backend,
    world: WorldSpec,
    *,
    prefix: str,
    clock: Clock,
    scrubber: Scrubber,
    independent: bool,
    skip_signature: bool,
) -> Lane:
    """A lane over a fresh world loaded from ``world``."""
    ports = backend.world(world, prefix)
    journal = Journal()
    tables = RecordingTables(ports.tables, journal, ports.schemas, keep_undo=independent)
    services = Services(
        tables=tables,
        queues=RecordingQueues(ports.queues, journal),
        secrets=SecretCache(_WatchedSecrets(ports.secrets, scrubber), clock),
        clock=clock,
    )
    application, skipped, uses = _application(config, services, skip_signature)

    def reset() -> None:
        if independent:
            journal.undo(ports.tables)

    return Lane(application, journal, skipped, uses, reset, world=True)


class _Describer:
    """Key schemas of real tables (DescribeTable, once per table); None when they cannot be read."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._known: dict[str, TableSchema | None] = {}

    def __call__(self, table: str) -> TableSchema | None:
        if table not in self._known:
            try:
                self._known[table] = table_schema(self._client.describe_table(TableName=table)["Table"])
            except Exception:  # noqa: BLE001 - any failure means "unknown": the plan then says so
                self._known[table] = None
        return self._known[table]


def account_lane(
    config: AppConfig,
    clients: tuple[Any, Any, Any],
    *,
    clock: Clock,
    scrubber: Scrubber,
    independent: bool,
    skip_signature: bool,
) -> Lane:
    """A lane that reads the real account and plans every write and send."""
    from engine.aws import DynamoTables, SecretsManagerStore

    dynamodb, _, secretsmanager = clients
    journal = Journal()
    tables = PlanningTables(DynamoTables(dynamodb), journal, _Describer(dynamodb))
    services = Services(
        tables=tables,
        queues=PlanningQueues(journal),
        secrets=SecretCache(_WatchedSecrets(SecretsManagerStore(secretsmanager), scrubber), clock),
        clock=clock,
    )
    application, skipped, uses = _application(config, services, skip_signature)
    return Lane(application, journal, skipped, uses, tables.reset if independent else lambda: None, world=False)


def with_placeholder_signature(event: Any) -> tuple[Any, bool]:
    """``event`` with a placeholder X-Twilio-Signature when it has none (``--skip-signature``)."""
    if not isinstance(event, Mapping):
        return event, False
    for section in ("headers", "multiValueHeaders"):
        headers = event.get(section)
        if isinstance(headers, Mapping):
            for name, value in headers.items():
                if str(name).lower() == "x-twilio-signature" and value:
                    return event, False
    headers = event.get("headers")
    patched = dict(event)
    patched["headers"] = {
        **(headers if isinstance(headers, Mapping) else {}),
        "X-Twilio-Signature": PLACEHOLDER_SIGNATURE,
    }
    return patched, True


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


class _LogHandler(logging.Handler):
    """Engine warnings and errors as one scrubbed line each on stderr (no traceback, no data)."""

    def __init__(self, err: _Scrubbed) -> None:
        super().__init__(logging.WARNING)
        self._err = err

    def emit(self, record: logging.LogRecord) -> None:
        self._err.write(f"pipeline-dryrun: {record.levelname.lower()}: {record.getMessage()}\n")


@contextmanager
def _engine_logs(err: _Scrubbed) -> Iterator[None]:
    logger = logging.getLogger("engine")
    handler = _LogHandler(err)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _problems(err: _Scrubbed, problems: list[Problem]) -> int:
    for problem in problems:
        err.write(f"{problem}\n")
    return EXIT_USAGE


def _banner(options: ReplayOptions, world: WorldSpec | None, clock_text: str) -> list[str]:
    lines = []
    if world is not None:
        mode = "each event against the world as loaded" if options.independent else "the world evolves event by event"
        lines.append(f"world {world.file} ({options.backend}), now {clock_text}; {mode}")
    else:
        lines.append("no world: reading the AWS account of the default credentials; writes and sends are only planned")
    if options.skip_signature:
        lines.append("--skip-signature: signatures are NOT checked")
    if not options.show_data:
        lines.append("phone numbers and message text are masked (--show-data shows them)")
    return [*lines, ""]


def run_replay(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """Replay the events named in ``args``; return the exit status (0, 1 on a change with --fail-on-change, 2)."""
    scrubber = Scrubber()
    errors = _Scrubbed(err, scrubber)
    try:
        options = ReplayOptions.from_args(args)
    except UsageError as exc:
        errors.write(f"pipeline-dryrun: error: {exc}\n")
        return EXIT_USAGE
    try:
        events = load_events(options.events)
        world = load_world(options.world) if options.world else None
    except EventFileError as exc:
        return _problems(errors, exc.problems)
    except ConfigError as exc:
        return _problems(errors, exc.problems)
    if world is not None:
        scrubber.add(secret_values(world.secrets))
    moment = options.now or (world.now if world else None)
    clock: Clock = FixedClock(moment) if moment else SystemClock()
    rule_sets = [options.rules, *([options.baseline_rules] if options.baseline_rules else [])]
    prefixes = ["", BASELINE_PREFIX]
    try:
        configs = []
        for rules, prefix in zip(rule_sets, prefixes, strict=False):
            env = dict(os.environ)
            if world is not None:
                env.update(blueprint(prefix)[0].environment())
            configs.append(load_config(options.pipeline, rules, env))
    except ConfigError as exc:
        return _problems(errors, exc.problems)
    for problem in configs[0].warnings:
        errors.write(f"{problem}\n")
    with ExitStack() as stack:
        stack.enter_context(_engine_logs(errors))
        try:
            lanes = _lanes(options, configs, world, clock, scrubber, stack)
        except ConfigError as exc:
            return _problems(errors, exc.problems)
        summary = _replay(options, events, lanes, world, clock, out=_Scrubbed(out, scrubber), err=errors)
    if options.fail_on_change and summary.changed:
        return EXIT_CHANGED
    return EXIT_OK


def _lanes(
    options: ReplayOptions,
    configs: list[AppConfig],
    world: WorldSpec | None,
    clock: Clock,
    scrubber: Scrubber,
    stack: ExitStack,
) -> list[Lane]:
    if world is not None:
        backend = stack.enter_context(open_backend(options.backend, configs[0].aws))
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
    from engine.aws import make_clients

    clients = make_clients(configs[0].aws)
    return [
        account_lane(
            config,
            clients,
            clock=clock,
            scrubber=scrubber,
            independent=options.independent,
            skip_signature=options.skip_signature,
        )
        for config in configs
    ]


def _replay(
    options: ReplayOptions,
    events: list[RecordedEvent],
    lanes: list[Lane],
    world: WorldSpec | None,
    clock: Clock,
    *,
    out: _Scrubbed,
    err: _Scrubbed,
) -> Summary:
    lane, baseline = lanes[0], (lanes[1] if len(lanes) > 1 else None)
    masker = Masker(show_data=options.show_data)
    summary = Summary()
    table = None
    if not options.as_json:
        table = Table(out, [event.source for event in events], explain=options.explain, baseline=baseline is not None)
        table.header(_banner(options, world, clock.now().isoformat()))
    progress = Progress(err, len(events), enabled=err.isatty() and len(events) >= PROGRESS_MIN_EVENTS)
    started = perf_counter()
    for done, recorded in enumerate(events, start=1):
        event, notes = recorded.event, []
        if options.skip_signature:
            event, patched = with_placeholder_signature(event)
            if patched:
                notes.append("X-Twilio-Signature was missing; a placeholder stood in for it (--skip-signature)")
        run = lane.run(event, notes)
        base = baseline.run(event, list(notes)) if baseline is not None else None
        record = event_record(
            recorded.source,
            run,
            masker=masker,
            uses=lane.uses,
            skipped_steps=lane.skipped_steps,
            skip_signature=options.skip_signature,
            baseline=base,
        )
        summary.add(record)
        if table is None:
            out.write(to_json_line(record) + "\n")
        else:
            table.row(record)
        progress.update(done)
    progress.close()
    if table is not None:
        baseline_name = display_path(options.baseline_rules) if options.baseline_rules else None
        table.summary(summary, elapsed=perf_counter() - started, baseline_name=baseline_name)
    out.flush()
    return summary
