"""Where a world lives: moto in this process (the reference) or plain dicts (``--backend memory``).

Both provision the replayed pipelines' resources from ``tools.localaws.provision`` (names, keys, indexes,
queue URLs: ``tools.needs``) and load the world file's rows and secrets; the steps then reach them through
the same ports. The moto backend runs with an AWS environment of its own (fake credentials, no profile, no
configured endpoint), so nothing the user's environment says can send a call to a real account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from unittest import mock

from boto3.dynamodb.types import DYNAMODB_CONTEXT

from engine.errors import ConfigError, Problem
from engine.ports import Queues, SecretStore, ServiceError, Tables
from runtime.aws import AwsSettings, botocore_config
from tools.dryrun.blueprint import REGION, TableSchema, blueprint
from tools.dryrun.memory import ITEM_SIZE_LIMIT, MemoryQueues, MemorySecrets, MemoryTables, as_stored, item_size
from tools.dryrun.world import SECTIONS, WorldSpec
from tools.localaws import LocalResources, MissingResource, dynamo_safe
from tools.needs import Needs
from tools.requires import require

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "WorldPorts", "open_backend", "populate"]

BACKENDS = ("moto", "memory")


class BackendUnavailable(Exception):
    """The backend cannot hold a world of its own in this process (the replay is refused, exit 2)."""


@dataclass(frozen=True)
class WorldPorts:
    """A loaded world: the ports the pipeline runs on, its resources and their key schemas."""

    tables: Tables
    queues: Queues
    secrets: SecretStore
    resources: LocalResources
    schemas: Mapping[str, TableSchema]


class Backend(Protocol):
    """Creates loaded worlds; each call gives an independent world (a ``prefix`` keeps names apart)."""

    name: str

    def world(self, spec: WorldSpec, prefix: str = "") -> WorldPorts:
        """A new world holding ``spec``; raise ConfigError for rows the tables refuse."""
        ...


_TYPE_NAMES = {"S": "text", "N": "a number", "B": "binary"}


def _index_key_problems(
    spec: WorldSpec, section: str, index: int, row: Mapping[str, Any], schema: TableSchema
) -> list[Problem]:
    """A problem for each index key attribute of ``row`` whose type its index does not take (DynamoDB refuses the row).

    Moto takes such a row and then fails or misses the index's queries; an unquoted ``+4477…`` in YAML is the usual
    cause (YAML reads it as a number).
    """
    indexes: dict[str, str] = {}
    for spec_index in schema.indexes.values():
        for name in (spec_index.hash_key, spec_index.range_key):
            if name is not None:
                indexes.setdefault(name, spec_index.name)
    problems = []
    for name, index_name in indexes.items():
        if name not in row:
            continue
        wanted, value = schema.attribute_types.get(name, "S"), row[name]
        fits = {
            "S": isinstance(value, str),
            "N": isinstance(value, int | float | Decimal) and not isinstance(value, bool),
            "B": isinstance(value, bytes),
        }.get(wanted, True)
        if not fits:
            hint = "; quote it" if wanted == "S" else ""
            message = (
                f"{section}[{index}].{name}: DynamoDB refuses this row: {name} is a key of index {index_name}, "
                f"which takes {_TYPE_NAMES.get(wanted, wanted)}{hint}"
            )
            problems.append(spec.problem((section, index, name), message))
    return problems


_NUMBER_RANGE = "38 significant digits, magnitudes 1E-130 to 1E+126"


def _unholdable_numbers(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    """The path of each number inside ``value`` that DynamoDB cannot hold (too many digits, too large or small)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _unholdable_numbers(item, (*path, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _unholdable_numbers(item, (*path, position))
    elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        try:
            number = DYNAMODB_CONTEXT.create_decimal(dynamo_safe(value))
        except ArithmeticError:  # boto3's context traps rounding, overflow and underflow
            yield path
        else:
            if not number.is_finite():
                yield path


def _number_problems(spec: WorldSpec, section: str, index: int, row: Mapping[str, Any]) -> list[Problem]:
    """A problem at each number of ``row`` DynamoDB cannot hold: it refuses the row (boto3 raises on it first)."""
    problems = []
    for path in _unholdable_numbers(row, (section, index)):
        label = f"{section}[{index}]" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in path[2:]
        )
        message = f"{label}: DynamoDB cannot hold this number ({_NUMBER_RANGE}); write it as text"
        problems.append(spec.problem(path, message))
    return problems


def populate(
    spec: WorldSpec, tables: Tables, resources: LocalResources, schemas: Mapping[str, TableSchema] | None = None
) -> None:
    """Write the world's rows into ``resources``' tables; ConfigError (located) for rows DynamoDB refuses.

    With ``schemas`` (the tables' key schemas by name), an index key of the wrong type is refused as DynamoDB
    refuses it, at the attribute, before anything is written.
    """
    problems: list[Problem] = []
    for section, (attribute, _) in SECTIONS.items():
        if not spec.rows[section]:
            continue
        try:
            table = getattr(resources, attribute)
        except MissingResource as exc:
            problems.append(spec.problem((section,), f"{section}: {exc}"))
            continue
        schema = schemas.get(table) if schemas is not None else None
        for index, row in enumerate(spec.rows[section]):
            if schema is not None and (wrong := _index_key_problems(spec, section, index, row, schema)):
                problems.extend(wrong)
                continue
            if wrong := _number_problems(spec, section, index, row):
                problems.extend(wrong)
                continue
            try:
                item = dynamo_safe(dict(row))
                # Told as what it is: moto's refusal names no reason, and the memory world's must be the same.
                if (size := item_size(as_stored(item))) > ITEM_SIZE_LIMIT:
                    message = f"{section}[{index}]: DynamoDB refuses this row: {size} bytes, over its item size limit"
                    problems.append(spec.problem((section, index), f"{message} (400 KB)"))
                    continue
                tables.put_item(table, item)
            except ServiceError as exc:
                problems.append(spec.problem((section, index), f"DynamoDB refuses this row ({exc.code})"))
            except (TypeError, ValueError) as exc:
                problems.append(spec.problem((section, index), f"DynamoDB cannot hold this row: {exc}"))
    if problems:
        raise ConfigError(problems)


class MemoryBackend:
    """Worlds in dicts: fast, and answering as moto does."""

    name = "memory"

    def __init__(self, needs: Needs | None = None) -> None:
        self._needs = needs

    def world(self, spec: WorldSpec, prefix: str = "") -> WorldPorts:
        resources, schemas = blueprint(prefix, self._needs)
        tables = MemoryTables(schemas)
        queues = MemoryQueues(list(resources.queues))
        populate(spec, tables, resources, schemas)
        return WorldPorts(tables, queues, MemorySecrets(spec.secrets), resources, schemas)


# Everything boto3 would otherwise read from the user's environment is replaced while moto runs.
# moto's own variables are dropped too: TEST_SERVER_MODE / TEST_PROXY_MODE would turn the world into a moto server's
# or proxy's (reset at the start and the end: someone's local AWS wiped), MOTO_ACCOUNT_ID would change its account.
_MOTO_VARIABLES = ("MOTO_", "TEST_SERVER_MODE", "TEST_PROXY_MODE")
_ISOLATED_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MotoBackend:
    """Worlds in moto's in-process AWS, reached through the same boto3 adapters as the Lambda's."""

    name = "moto"

    def __init__(self, session: Any, settings: AwsSettings, needs: Needs | None = None) -> None:
        self._session = session
        self._settings = settings
        self._needs = needs
        self._secrets: set[str] = set()

    def _client(self, service: str) -> Any:
        endpoint = f"https://{service}.{REGION}.amazonaws.com"
        return self._session.client(service, endpoint_url=endpoint, config=botocore_config(self._settings))

    def world(self, spec: WorldSpec, prefix: str = "") -> WorldPorts:
        from runtime.aws import DynamoTables, SecretsManagerStore, SqsQueues
        from tools.localaws import provision, put_secrets

        dynamodb, sqs, secretsmanager = self._client("dynamodb"), self._client("sqs"), self._client("secretsmanager")
        expected, schemas = blueprint(prefix, self._needs)
        resources = provision(dynamodb, sqs, prefix, self._needs)
        if resources != expected:
            raise RuntimeError(f"moto provisioned {resources}, expected {expected}")
        tables = DynamoTables(dynamodb)
        populate(spec, tables, resources, schemas)
        # Secrets are only read, so worlds of one replay share them (their names cannot be prefixed).
        put_secrets(secretsmanager, {name: value for name, value in spec.secrets.items() if name not in self._secrets})
        self._secrets.update(spec.secrets)
        return WorldPorts(tables, SqsQueues(sqs), SecretsManagerStore(secretsmanager), resources, schemas)


@contextmanager
def open_backend(name: str, settings: AwsSettings | None = None, needs: Needs | None = None) -> Iterator[Backend]:
    """The backend called ``name`` (``moto`` or ``memory``), for as long as the block runs.

    ``settings`` bound the moto clients' calls as the pipeline's ``aws:`` block bounds the Lambda's; ``needs``
    are the resources each world holds (default: the shipped pipelines'). BackendUnavailable for moto while a moto
    mock is already active in this process.
    """
    if name == "memory":
        yield MemoryBackend(needs)
        return
    if name != "moto":
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    require("moto", "a world on the moto backend (--backend moto, the default)")
    from moto.core.models import MockAWS

    if getattr(MockAWS, "_nested_count", 0):
        # moto holds one AWS per process: opened inside a mock already active, the world would be that mock's tables
        # and queues (provisioned among them, written among their rows, reading theirs), and would outlive the replay.
        raise BackendUnavailable(
            "--backend moto: moto is already active in this process (a test's or a notebook's mock, say): the world "
            "would share its tables and queues, writing among them and reading theirs; use --backend memory (it "
            "answers as moto does), or run pipeline-dryrun in a process of its own"
        )
    isolated = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", *_MOTO_VARIABLES))}
    isolated.update(_ISOLATED_ENV)
    with mock.patch.dict(os.environ, isolated, clear=True):
        import boto3

        # moto in this process, whatever moto's variables say (``mock_aws()`` would follow TEST_SERVER_MODE).
        with MockAWS():
            session = boto3.session.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
            )
            yield MotoBackend(session, settings or AwsSettings(), needs)
