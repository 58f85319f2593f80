"""The AWS resources the pipelines need, read from their YAML: what ``tools.localaws.provision`` creates.

Tables come from each pipeline's ``tables:`` (the ``${env:NAME}`` naming each), the GSIs from every
``conversations.lookup`` step's ``indexes:`` (index name and key attributes, on the table the step
queries), queues from ``targets:`` (each ``queue_url: ${env:NAME}``). A new pipeline's tables, indexes and
queues are thereby provisioned for the tests, the dry-run's world and ``pipeline-serve`` with no edit here.

A table's key schema belongs to its role (the name under ``tables:``), which the step that keeps it fixes and
declares (``steps.support.declare_table_key``): a new step's table needs no edit here either. ``LOCAL_NAMES`` keeps
the local names world files and tests know for the built-in roles; another role's table is named after it. The
environment variables are the pipelines' own (contract §1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.config import display_path
from engine.envsubst import ENV_REFERENCE
from engine.errors import ConfigError, Problem
from engine.locator import Locator
from engine.yamlsource import load_yaml
from runtime.layout import PIPELINES_DIR, pipeline_files
from steps.support import table_keys

__all__ = [
    "LOCAL_NAMES",
    "LOOKUP_STEP",
    "ChannelLookup",
    "IndexNeed",
    "Needs",
    "QueueNeed",
    "TableNeed",
    "pipeline_needs",
    "queue_name",
    "shipped_needs",
]

LOOKUP_STEP = "conversations.lookup"


# What the built-in roles' tables are called locally; a role not listed here is called by its own name.
LOCAL_NAMES: Mapping[str, str] = {
    "conversations": "conversations",
    "stage": "conversations-stage",
    "lock": "conversations-trigger-lock",
    "replay": "conversations-replay",
}


@dataclass(frozen=True)
class IndexNeed:
    """A GSI (projection ALL) a lookup step queries."""

    name: str
    hash_key: str
    range_key: str


@dataclass(frozen=True)
class TableNeed:
    """A table: its role, the variable naming it (None: a literal name in the YAML) and its GSIs."""

    role: str
    env: str | None
    name: str
    key: tuple[str, ...]
    expires: bool
    indexes: tuple[IndexNeed, ...] = ()


@dataclass(frozen=True)
class QueueNeed:
    """A queue a target sends to: the variable holding its URL, and its local name."""

    env: str
    name: str


@dataclass(frozen=True)
class ChannelLookup:
    """A channel (``channels:``): its pipeline, parse step (the first), and how its conversation is found.

    ``index`` and ``credentials_attribute`` are None when no ``conversations.lookup`` step names the channel.
    """

    channel: str
    pipeline: str
    parse: str
    index: IndexNeed | None = None
    credentials_attribute: str | None = None


@dataclass(frozen=True)
class Needs:
    """Every table, index and queue the pipelines need, and each channel's lookup."""

    tables: tuple[TableNeed, ...]
    queues: tuple[QueueNeed, ...]
    channels: Mapping[str, ChannelLookup]


def _env_name(value: Any) -> str | None:
    """NAME when ``value`` is exactly ``${env:NAME}`` or ``${env:NAME:-default}``."""
    match = ENV_REFERENCE.fullmatch(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def queue_name(env: str) -> str:
    """A queue's local name from its variable: ``WHATSAPP_QUEUE_URL`` -> ``whatsapp``."""
    return env.removesuffix("_QUEUE_URL").lower().replace("_", "-")


def _steps(steps: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Mapping[str, Any]]]:
    """Every step of a ``steps:`` list (members of ``parallel:`` groups too) with its path."""
    for position, step in enumerate(steps if isinstance(steps, list) else ()):
        if isinstance(step, dict) and "parallel" in step:
            yield from _steps(step["parallel"], (*path, position, "parallel"))
        elif isinstance(step, dict):
            yield (*path, position), step


class _Collector:
    """Gathers the needs of several pipelines, and every contradiction between them as a located Problem."""

    def __init__(self) -> None:
        self.tables: dict[str, TableNeed] = {}
        self.where: dict[str, str] = {}
        self.queues: dict[str, QueueNeed] = {}
        self.channels: dict[str, ChannelLookup] = {}
        self.problems: list[Problem] = []

    def add_pipeline(self, data: Mapping[str, Any], locator: Locator) -> None:
        tables = data.get("tables")
        for role, value in tables.items() if isinstance(tables, dict) else ():
            self._table(str(role), value, locator)
        targets = data.get("targets")
        for target in targets.values() if isinstance(targets, dict) else ():
            env = _env_name(target.get("queue_url")) if isinstance(target, dict) else None
            if env is not None:
                self.queues.setdefault(env, QueueNeed(env, queue_name(env)))
        steps = list(_steps(data.get("steps"), ("steps",)))
        parse = str(steps[0][1].get("uses", "")) if steps else ""
        name = str(data.get("pipeline") or Path(locator.file).stem)
        found: dict[str, ChannelLookup] = {}
        for path, step in steps:
            if step.get("uses") == LOOKUP_STEP and isinstance(step.get("with"), dict):
                found.update(self._lookup(step["with"], (*path, "with"), locator, name, parse))
        channels = data.get("channels")
        for channel in map(str, channels if isinstance(channels, list) else ()):
            self.channels.setdefault(channel, found.get(channel, ChannelLookup(channel, name, parse)))

    def _table(self, role: str, value: Any, locator: Locator) -> None:
        where = ("tables", role)
        declared = table_keys()
        known = declared.get(role)
        if known is None:
            message = (
                f"table role {role!r} has no known key schema: no loaded step declares it "
                f"(steps.support.declare_table_key); declared roles: {', '.join(sorted(declared)) or 'none'}"
            )
            self.problems.append(locator.problem(where, message))
            return
        env = _env_name(value)
        name = LOCAL_NAMES.get(role, role) if env is not None or not isinstance(value, str) else value
        need = TableNeed(role, env, name, known.key, known.expires)
        before = self.tables.setdefault(role, need)
        if before.env != need.env or before.name != need.name:
            message = f"table {role!r} is named by {value!r} here but differently in {self.where[role]}"
            self.problems.append(locator.problem(where, message))
        self.where.setdefault(role, locator.file)

    def _lookup(
        self, params: Mapping[str, Any], path: tuple[Any, ...], locator: Locator, name: str, parse: str
    ) -> dict[str, ChannelLookup]:
        """Add the indexes of a lookup step's parameters to its table; how it finds each channel."""
        role = str(params.get("table", "conversations"))
        table = self.tables.get(role)
        if table is None:
            message = f"the lookup queries table {role!r}, which no pipeline declares under tables:"
            self.problems.append(locator.problem((*path, "table"), message))
            return {}
        indexes = params.get("indexes")
        found = list(table.indexes)
        lookups: dict[str, ChannelLookup] = {}
        for channel, spec in indexes.items() if isinstance(indexes, dict) else ():
            if not isinstance(spec, dict):
                continue
            index = IndexNeed(str(spec.get("index")), str(spec.get("company_key")), str(spec.get("user_key")))
            same = next((known for known in found if known.name == index.name), None)
            if same is None:
                found.append(index)
            elif same != index:
                message = f"index {index.name!r} has other key attributes in another lookup ({same})"
                self.problems.append(locator.problem((*path, "indexes", channel), message))
            lookups[str(channel)] = ChannelLookup(
                str(channel), name, parse, index, str(spec.get("credentials_attribute"))
            )
        self.tables[role] = TableNeed(table.role, table.env, table.name, table.key, table.expires, tuple(found))
        return lookups


def pipeline_needs(paths: Iterable[Path]) -> Needs:
    """The needs of the pipeline files ``paths``; ConfigError (located) for tables or indexes that contradict.

    A file that cannot be read or parsed is passed over: loading the pipeline reports it.
    """
    collector = _Collector()
    for path in paths:
        try:
            document = load_yaml(path, display_path(path))
        except ConfigError:
            continue
        if isinstance(document.data, dict):
            collector.add_pipeline(document.data, document.locator)
    if collector.problems:
        raise ConfigError(collector.problems)
    return Needs(tuple(collector.tables.values()), tuple(collector.queues.values()), dict(collector.channels))


def shipped_needs() -> Needs:
    """The needs of the project's ``pipelines/*.yaml``: the working directory's, as every tool reads them."""
    return _directory_needs(PIPELINES_DIR.resolve())


@lru_cache(maxsize=8)
def _directory_needs(directory: Path) -> Needs:
    return pipeline_needs(pipeline_files(directory))
