"""Lanes: one rule set's replay, running each event through the Lambda's own ``Application.process``.

A lane holds every pipeline being replayed (the Lambda's routing by path included).

A lane's services are the Lambda's with their side effects redirected: over a world (moto or memory)
every write and send is performed there and recorded; over the real account (no world) reads are
real and writes and sends are only planned (kept in an in-memory overlay that later reads see).
``ReplayClock`` keeps the replay deterministic: wall time is ``--now`` (or the world's); without either, each
event runs at the time API Gateway received it (a captured event is decided as it was on arrival, so the
replay record production wrote for it is not taken for an earlier acceptance), else at the current time.
Elapsed time does not advance, so secret-cache ages, refresh rate limits and step deadlines do not depend on
how fast the replay runs.

``Lane.probe(configs)`` runs other rule sets against a lane's world as it stands, leaving no trace:
each probed event's writes are undone (or, over the account, forgotten). A baseline comparison uses
it to tell a decision the candidate rules changed from a knock-on effect of an earlier change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.conditions import Condition
from engine.config import AppConfig
from engine.context import Services
from engine.http import last_segment
from engine.ports import ItemRequest, QueryPage, SecretStore, ServiceError, Tables
from engine.runner import RunResult
from engine.secrets import SecretCache
from runtime.apigateway import request_path
from runtime.app import Application, auth_headers, failed_authentication
from runtime.aws import error_code
from runtime.masking import MASKED_SIGNATURE, RECORDING_KEY, SIGNATURE_DIGEST_PREFIX
from runtime.misroute import INVALID_SIGNATURE, message_sid
from steps.replay import KEY, REPLAY, WRITER, replay_of
from steps.sendgrid.ecdsa import TIMESTAMP_HEADER
from steps.sendgrid.parse import STALE_SIGNATURE, SendGridParse
from steps.support import table_keys, written_at_attributes
from tools.dryrun.backends import Backend, WorldPorts
from tools.dryrun.blueprint import TableSchema, table_schema
from tools.dryrun.events import arrival_time
from tools.dryrun.mask import Scrubber
from tools.dryrun.memory import holds
from tools.dryrun.pipeline import replay_pipeline
from tools.dryrun.recording import (
    Journal,
    PlanningQueues,
    PlanningTables,
    ReadsPassedThrough,
    RecordingQueues,
    RecordingTables,
)
from tools.dryrun.report import (
    LATE_REPLAY_NOTE,
    MASKED_SIGNATURE_NOTE,
    REDACTED_SECRET_NOTE,
    STALE_SIGNATURE_NOTE,
    Replayed,
)
from tools.dryrun.world import WorldSpec, redacted_secrets, secret_values

__all__ = [
    "PLACEHOLDER_SIGNATURE",
    "Lane",
    "ReplayClock",
    "TableDescriber",
    "REFUSED_NOTE",
    "UNREAD_NOTE",
    "account_lane",
    "with_placeholders",
    "world_lane",
]

PLACEHOLDER_SIGNATURE = "skipped-by-pipeline-dryrun"
# The note of an event a live replay could not decide: a read of the account failed (the replay's access).
UNREAD_NOTE = "not decided: the replay could not read the account"
# The note of an event whose run called a write on the account's clients (refused there: nothing was sent).
REFUSED_NOTE = "not decided: the replay refused a write that bypassed its plan"
# The id of every dry-run run (``Services.ids``): events replay one at a time, so no two runs race for a record,
# and the same event writes the same rows in every lane and every run of the tool.
DRY_RUN_ID = "pipeline-dryrun"


def _dry_run_id() -> str:
    return DRY_RUN_ID


class ReplayClock:
    """Wall time fixed at ``at``; when None, the arrival time of the event running, else the system's.

    The monotonic clock stands still.
    """

    def __init__(self, at: datetime | None) -> None:
        self._at = None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC))
        self._arrival: datetime | None = None

    def describe(self) -> str:
        """The replay's time, in words: the fixed time, or how each event's is chosen."""
        if self._at is not None:
            return self._at.isoformat()
        return "each event's arrival time (API Gateway's requestTimeEpoch; else the current time)"

    def arriving(self, event: Any) -> None:
        """Run what follows at ``event``'s arrival time, when the replay was given no time and the event says."""
        self._arrival = arrival_time(event)

    def now(self) -> datetime:
        return self._at or self._arrival or datetime.now(UTC)

    def monotonic(self) -> float:
        return 0.0


class _WatchedSecrets:
    """A SecretStore that tells the scrubber every credential it hands out.

    With ``failures`` (a live replay), a read that failed for want of access (no credentials, denied, no answer), not
    for the secret's own sake, is noted there.
    """

    def __init__(self, inner: SecretStore, scrubber: Scrubber, failures: list[str] | None = None) -> None:
        self._inner = inner
        self._scrubber = scrubber
        self._failures = failures

    def get_secret_string(self, name: str) -> str:
        try:
            value = self._inner.get_secret_string(name)
        except ServiceError as exc:
            # A secret the account lacks, or holds in a form no one can use, is production's answer as well.
            if self._failures is not None and exc.kind not in ("not_found", "invalid"):
                self._failures.append(f"{exc.operation}: {exc.code}")
            raise
        self._scrubber.add(secret_values({name: value}))
        return value


class _WatchedReads:
    """The account's tables, noting in ``failures`` every read that failed (``operation: code``).

    No row of the account is missing for lack of a read: a read that fails (no credentials, access denied, a table
    name the account lacks, an endpoint that does not answer) is the replay's failure, never production's.
    """

    def __init__(self, inner: Tables, failures: list[str]) -> None:
        self._inner = inner
        self._failures = failures

    def _noted(self, exc: ServiceError) -> ServiceError:
        self._failures.append(f"{exc.operation}: {exc.code}")
        return exc

    def query_pages(
        self, table: str, index: str, key: Mapping[str, str], attributes: Sequence[str] | None = None
    ) -> Iterator[QueryPage]:
        try:
            yield from self._inner.query_pages(table, index, key, attributes)
        except ServiceError as exc:
            raise self._noted(exc) from None

    def get_item(
        self, table: str, key: Mapping[str, str], *, consistent: bool = True, attributes: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        try:
            return self._inner.get_item(table, key, consistent=consistent, attributes=attributes)
        except ServiceError as exc:
            raise self._noted(exc) from None

    def get_items(self, requests: Sequence[ItemRequest]) -> list[dict[str, Any] | None]:
        try:
            return self._inner.get_items(requests)
        except ServiceError as exc:
            raise self._noted(exc) from None

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        return self._inner.put_item(table, item, condition)

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        return self._inner.delete_item(table, key, condition)


@dataclass
class Lane:
    """One rule set's replay: the application (the Lambda's, with recording services) and its journal.

    ``uses`` and ``skipped_steps`` are per pipeline: step id → registered step, and the ids
    ``--skip-signature`` replaced.
    """

    application: Application
    journal: Journal
    skipped_steps: Mapping[str, frozenset[str]]
    uses: Mapping[str, Mapping[str, str]]
    reset: Callable[[], None]
    world: bool
    prober: Callable[[Sequence[AppConfig]], Lane] | None = field(default=None, repr=False)
    # A live lane's failed reads of the account (``operation: code``), collected per event.
    read_failures: list[str] | None = field(default=None, repr=False)
    # A live lane's writes refused by the account's clients (``service:Operation``), collected per event.
    refused_writes: list[str] | None = field(default=None, repr=False)
    # The world's secrets holding a credential redacted (pipeline-world without --keep-secrets): no signature matches.
    redacted: frozenset[str] = frozenset()

    def probe(self, configs: Sequence[AppConfig]) -> Lane:
        """A lane running ``configs`` against this lane's world as it stands; its own writes never stay."""
        if self.prober is None:
            raise ValueError("this lane cannot be probed")
        return self.prober(configs)

    def auth_headers(self, event: Any) -> tuple[str, ...]:
        """The headers carrying authentication for the pipeline ``event`` is routed to."""
        config = self.application.route(last_segment(request_path(event)))
        return tuple(auth_headers([config])) if config is not None else ()

    def run(self, event: Any, notes: list[str]) -> Replayed:
        """Run one event; the world keeps its writes unless the lane resets it (``--independent``)."""
        clock = self.application.services.clock
        if isinstance(clock, ReplayClock):
            clock.arriving(event)
        for collected in (self.read_failures, self.refused_writes):
            if collected is not None:
                collected.clear()
        handled = self.application.process(event, explain=True)
        version = self.application.pipeline(handled.pipeline).version if handled.pipeline else None
        actions, journal_notes = self.journal.take()
        self.reset()
        all_notes = [*notes, *journal_notes]
        result = handled.result
        if result.error is not None and result.error_code in ("SECRET_FETCH_FAILED", "SECRET_FETCH_TRANSIENT_ERROR"):
            name = (result.doc.get("credential") or {}).get("secret_name")
            where = "from the world" if self.world else "from the account"
            all_notes.append(
                f"signature not checked: secret {name!r} could not be read {where} ({result.error.message}); "
                "--skip-signature replays the event anyway"
            )
        refused = (
            self._redacted_note(result)
            or self._stale_note(event, handled.pipeline, result)
            or self._signature_note(event, handled.pipeline, result, handled.verdict)
        )
        if refused is not None:
            all_notes.append(refused)
        late = self._late_replay_note(event, handled.pipeline, result)
        if late is not None:
            all_notes.append(late)
        if result.error is not None and self.read_failures:
            failed = ", ".join(dict.fromkeys(self.read_failures))
            all_notes.append(
                f"{UNREAD_NOTE} ({failed}): this outcome is the replay's, not the rules' (production read it); check "
                "the credentials, --profile, --region, --endpoint-url and the table variables"
            )
        if self.refused_writes:
            refused = ", ".join(dict.fromkeys(self.refused_writes))
            all_notes.append(
                f"{REFUSED_NOTE} ({refused}; nothing was sent): this outcome is not what production would decide; "
                "a step or port reached the account's client instead of the planned tables and queues"
            )
        return Replayed(handled, actions, all_notes, version)

    def _late_replay_note(self, event: Any, pipeline: str | None, result: RunResult) -> str | None:
        """The note for a message that production's record of its own acceptance ends REPLAY at a later replay time.

        Replayed at its arrival the record (written after) does not count; at a later ``--now`` it does, in every
        lane, so no rule decides the message. A record an earlier delivery left (a replay at its arrival too), or one
        this replay wrote, is no such record.
        """
        clock, arrived = self.application.services.clock, arrival_time(event)
        if result.outcome != REPLAY or pipeline is None or arrived is None or clock.now() <= arrived:
            return None
        table = self.application.pipeline(pipeline).tables.get("replay")
        sid = message_sid(result.doc)
        if not table or sid is None:
            return None
        try:
            record = self.application.services.tables.get_item(table, {KEY: sid})
        except ServiceError:
            return None
        if record is None or record.get(WRITER) == DRY_RUN_ID or replay_of(record, arrived.timestamp()):
            return None
        at = clock.now().isoformat()
        return (
            f"{LATE_REPLAY_NOTE}, written after it arrived ({arrived.isoformat()}), ends it REPLAY at the replay's "
            f"time ({at}); replay it at its arrival (without --now) to decide it as production did"
        )

    def _stale_note(self, event: Any, pipeline: str | None, result: RunResult) -> str | None:
        """The note for an event whose signed time was in its window at its arrival, past it at the replay's time."""
        clock, arrived = self.application.services.clock, arrival_time(event)
        stale = result.error is not None and result.error.message == STALE_SIGNATURE
        if not stale or pipeline is None or arrived is None or clock.now() <= arrived:
            return None
        named = _lowered_headers(event)
        signed = named.get(TIMESTAMP_HEADER.lower())
        steps = self.application.pipeline(pipeline).pipeline.steps()
        parsers = [step.step for step in steps if isinstance(step.step, SendGridParse)]
        if not isinstance(signed, str) or not any(parser.fresh_at(signed, arrived.timestamp()) for parser in parsers):
            return None
        return (
            f"{STALE_SIGNATURE_NOTE} when the event arrived ({arrived.isoformat()}) and is past it at the replay's "
            f"time ({clock.now().isoformat()}); replay it at its arrival (without --now) to decide it as production did"
        )

    def _redacted_note(self, result: RunResult) -> str | None:
        """The note for an event refused by a signature checked with a credential the world holds redacted."""
        name = (result.doc.get("credential") or {}).get("secret_name")
        if result.error_code != INVALID_SIGNATURE or name not in self.redacted:
            return None
        return (
            # Not the placeholder's word itself: a credential of the world, it is scrubbed from all output.
            f"{REDACTED_SECRET_NOTE} {name!r} holds placeholders in place of its credentials (pipeline-world writes "
            "them so without --keep-secrets), so this outcome is the replay's, not production's; replay with "
            "--skip-signature"
        )

    def _signature_note(
        self, event: Any, pipeline: str | None, result: RunResult, verdict: str | None = None
    ) -> str | None:
        """The note for an event a signature step refused, when its recording says why that may be the replay's.

        ``verdict``: the signature check of a message refused as another channel's (``Handled.verdict``), a refusal
        of its own.

        A masked recording (``mask=text`` or ``all``) holds ``MASKED_SIGNATURE`` in place of every authentication
        header, which no secret signs: the refusal is the replay's, not production's. A signature a whole one
        (``mask=none``) keeps as its digest (Twilio's, which signs the URL) matches only over the URL the function
        checked it with (``PUBLIC_BASE_URL``, else the event's host): the note names the URL checked.
        """
        if pipeline is None:
            return None
        refused = failed_authentication(self.application.pipeline(pipeline), result)
        if not refused and verdict != INVALID_SIGNATURE:
            return None
        values = _lowered_headers(event)
        auth = self.auth_headers(event)
        masked = [name for name in auth if values.get(name.lower()) == MASKED_SIGNATURE]
        recording = event.get(RECORDING_KEY)
        mode = recording.get("mask") if isinstance(recording, Mapping) else None
        if not masked:
            digested = any(str(values.get(name.lower(), "")).startswith(SIGNATURE_DIGEST_PREFIX) for name in auth)
            return _url_note(result) if digested else None
        return (
            f"{MASKED_SIGNATURE_NOTE} ({', '.join(masked)}: {MASKED_SIGNATURE}"
            + (f", mask={mode}" if mode else "")
            + "), so this outcome is the replay's, not production's; replay masked recordings with --skip-signature"
        )


def _lowered_headers(event: Any) -> dict[str, Any]:
    """An event's ``headers``, by their names in lower case; none when it holds no such map."""
    headers = event.get("headers") if isinstance(event, Mapping) else None
    return {str(name).lower(): value for name, value in headers.items()} if isinstance(headers, Mapping) else {}


def _url_note(result: RunResult) -> str | None:
    """The URL a whole recording's signature was checked over (its query string left out: it may hold a credential)."""
    request = result.doc.get("request")
    url = request.get("url") if isinstance(request, Mapping) else None
    if not isinstance(url, str) or not url:
        return None
    base, query, _ = url.partition("?")
    return (
        f"signature checked over {base}{query and '?…'}: a recording's signature matches only the URL the function "
        "checked it over; if the function sets PUBLIC_BASE_URL, replay with the same value"
    )


def _application(
    configs: Sequence[AppConfig], services: Services, skip_signature: bool
) -> tuple[Application, dict[str, frozenset[str]], dict[str, dict[str, str]]]:
    adapted: list[AppConfig] = []
    skipped: dict[str, frozenset[str]] = {}
    uses: dict[str, dict[str, str]] = {}
    for config in configs:
        pipeline, replaced = replay_pipeline(config.pipeline, skip_signature=skip_signature)
        adapted.append(replace(config, pipeline=pipeline))
        skipped[config.name] = replaced
        uses[config.name] = {planned.id: planned.uses for planned in pipeline.steps()}
    return Application(adapted, services), skipped, uses


class _AsOfReplayTime(ReadsPassedThrough):
    """Tables whose conditional writes take a row written after the replay's time as absent (it did not exist then).

    A captured event replays at its arrival time, against rows as they are now: the trigger lock of its conversation
    may be held by a message that arrived later, which production had not seen. Only rows the account (or the loaded
    world) holds count: a row this replay wrote is the world's own evolution, in the replay's order. ``written`` maps
    a table to its key attributes and the attribute holding when a row was written
    (``steps.support.written_at_attributes``). Reads pass through.
    """

    def __init__(self, inner: Tables, written: Mapping[str, tuple[tuple[str, ...], str]], clock: ReplayClock) -> None:
        self._inner = inner
        self._written = written
        self._clock = clock
        self._own: set[tuple[str, tuple[Any, ...]]] = set()

    def forget(self) -> None:
        """Forget which rows this replay wrote (its writes were undone, or its plan dropped)."""
        self._own.clear()

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        declared = self._written.get(table)
        if declared is None:
            return self._inner.put_item(table, item, condition)
        names, attribute = declared
        key = {name: item[name] for name in names if name in item}
        slot = (table, tuple(key.values()))
        applied = None
        if condition is not None and slot not in self._own:
            try:
                current = self._inner.get_item(table, key)
            except ServiceError:
                current = None  # unreadable: the tables below decide, as without a replay time (planned, noted)
            written = current.get(attribute) if current is not None else None
            if isinstance(written, (int, float, Decimal)) and written > self._clock.now().timestamp():
                applied = holds(condition, None) and self._inner.put_item(table, item, None)
        if applied is None:
            applied = self._inner.put_item(table, item, condition)
        if applied:
            self._own.add(slot)
        return applied

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        return self._inner.delete_item(table, key, condition)


def _written_tables(configs: Sequence[AppConfig]) -> dict[str, tuple[tuple[str, ...], str]]:
    """The tables of ``configs`` whose role declares when a row was written: its key attributes and that attribute."""
    keys, written = table_keys(), written_at_attributes()
    return {
        name: (keys[role].key, written[role])
        for config in configs
        for role, name in config.tables.items()
        if role in keys and role in written and name
    }


def _warm_cache(store: SecretStore, names: Sequence[str], scrubber: Scrubber, clock: ReplayClock) -> SecretCache:
    """A secret cache holding ``names`` already, as a warm container's would."""
    cache = SecretCache(_WatchedSecrets(store, scrubber), clock)
    for name in names:
        try:
            cache.get(name, math.inf)
        except Exception:  # noqa: BLE001 - an unusable secret fails each event that needs it, as it would live
            continue
    return cache


def _world_lane(
    configs: Sequence[AppConfig],
    ports: WorldPorts,
    world: WorldSpec,
    *,
    clock: ReplayClock,
    scrubber: Scrubber,
    independent: bool,
    skip_signature: bool,
) -> Lane:
    journal = Journal()
    tables = RecordingTables(ports.tables, journal, ports.schemas, keep_undo=independent)
    cache = _warm_cache(ports.secrets, list(world.secrets), scrubber, clock)
    timely = _AsOfReplayTime(tables, _written_tables(configs), clock)
    services = Services(
        tables=timely, queues=RecordingQueues(ports.queues, journal), secrets=cache, clock=clock, ids=_dry_run_id
    )
    application, skipped, uses = _application(configs, services, skip_signature)

    def reset() -> None:
        if independent:
            journal.undo(ports.tables)
            timely.forget()

    def prober(others: Sequence[AppConfig]) -> Lane:
        return _world_lane(
            others, ports, world, clock=clock, scrubber=scrubber, independent=True, skip_signature=skip_signature
        )

    redacted = redacted_secrets(world.secrets)
    return Lane(application, journal, skipped, uses, reset, world=True, prober=prober, redacted=redacted)


def world_lane(
    configs: Sequence[AppConfig],
    backend: Backend,
    world: WorldSpec,
    *,
    prefix: str,
    clock: ReplayClock,
    scrubber: Scrubber,
    independent: bool,
    skip_signature: bool,
) -> Lane:
    """A lane over a fresh world loaded from ``world``, its secrets already in the cache (a warm container)."""
    return _world_lane(
        configs,
        backend.world(world, prefix),
        world,
        clock=clock,
        scrubber=scrubber,
        independent=independent,
        skip_signature=skip_signature,
    )


class TableDescriber:
    """Key schemas of real tables (DescribeTable, once per table); None when they cannot be read.

    ``failures`` holds why, by table (the error code, or the exception's name).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._known: dict[str, TableSchema | None] = {}
        self.failures: dict[str, str] = {}

    def __call__(self, table: str) -> TableSchema | None:
        if table not in self._known:
            try:
                self._known[table] = table_schema(self._client.describe_table(TableName=table)["Table"])
            except Exception as exc:  # noqa: BLE001 - any failure means "unknown": the plan then says so
                self._known[table] = None
                self.failures[table] = error_code(exc) or type(exc).__name__
        return self._known[table]


def _planning_lane(
    configs: Sequence[AppConfig],
    reads: Tables,
    describe: Callable[[str], TableSchema | None],
    secrets: SecretCache,
    *,
    clock: ReplayClock,
    independent: bool,
    skip_signature: bool,
    read_failures: list[str] | None = None,
    refused_writes: list[str] | None = None,
) -> Lane:
    journal = Journal()
    tables = PlanningTables(reads, journal, describe)
    timely = _AsOfReplayTime(tables, _written_tables(configs), clock)
    services = Services(tables=timely, queues=PlanningQueues(journal), secrets=secrets, clock=clock, ids=_dry_run_id)
    application, skipped, uses = _application(configs, services, skip_signature)

    def prober(others: Sequence[AppConfig]) -> Lane:
        # Reads see this lane's planned rows (then the account); the probe's own plans are forgotten after each event.
        return _planning_lane(
            others,
            tables,
            describe,
            secrets,
            clock=clock,
            independent=True,
            skip_signature=skip_signature,
            read_failures=read_failures,
            refused_writes=refused_writes,
        )

    def reset() -> None:
        if independent:
            tables.reset()
            timely.forget()

    return Lane(
        application,
        journal,
        skipped,
        uses,
        reset,
        world=False,
        prober=prober,
        read_failures=read_failures,
        refused_writes=refused_writes,
    )


def account_lane(
    configs: Sequence[AppConfig],
    clients: tuple[Any, Any, Any],
    *,
    clock: ReplayClock,
    scrubber: Scrubber,
    independent: bool,
    skip_signature: bool,
    reads: Callable[[Tables], Tables] | None = None,
    refused: list[str] | None = None,
) -> Lane:
    """A lane that reads the real account and plans every write and send (an in-memory overlay, never a write).

    ``reads`` wraps the account's tables (``tools.dryrun.snapshot`` notes every row read through it); ``refused``
    collects the writes refused during an event (``tools.dryrun.live.process_reads_only`` shares it).
    """
    from runtime.aws import DynamoTables, SecretsManagerStore
    from tools.dryrun.live import note_refused_writes

    dynamodb, _, secretsmanager = clients
    account: Tables = DynamoTables(dynamodb)
    if reads is not None:
        account = reads(account)
    failures: list[str] = []
    refused = refused if refused is not None else []
    for client in (dynamodb, secretsmanager):
        note_refused_writes(client, refused)
    secrets = SecretCache(_WatchedSecrets(SecretsManagerStore(secretsmanager), scrubber, failures), clock)
    return _planning_lane(
        configs,
        _WatchedReads(account, failures),
        TableDescriber(dynamodb),
        secrets,
        clock=clock,
        independent=independent,
        skip_signature=skip_signature,
        read_failures=failures,
        refused_writes=refused,
    )


def with_placeholders(event: Any, headers: Sequence[str]) -> tuple[Any, list[str]]:
    """``event`` with a placeholder value for each of ``headers`` it lacks (``--skip-signature``), and their names."""
    if not isinstance(event, Mapping) or not headers:
        return event, []
    present = set()
    for section in ("headers", "multiValueHeaders"):
        found = event.get(section)
        if isinstance(found, Mapping):
            present |= {str(name).lower() for name, value in found.items() if value}
    missing = [name for name in headers if name.lower() not in present]
    if not missing:
        return event, []
    current = event.get("headers")
    patched = dict(event)
    patched["headers"] = {
        **(current if isinstance(current, Mapping) else {}),
        **{name: PLACEHOLDER_SIGNATURE for name in missing},
    }
    return patched, missing
