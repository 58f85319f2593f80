"""The pipelines' AWS resources, created in an emulator (moto in-process or its server).

Used by the tests, the dry-run's in-memory world and ``pipeline-serve``: the tables, GSIs and queues are
those the pipelines declare (``tools.needs``: by default the project's ``pipelines/*.yaml``), so a new
pipeline's index or queue is created with no edit here. Given an ``environment`` (``pipeline-serve``: the user's),
a table or queue whose variable it sets is made under the name it gives, not the local one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from runtime.aws import error_code
from runtime.dynamowire import to_wire
from steps.support import ExactFloat
from tools.needs import IndexNeed, Needs, TableNeed, shipped_needs

__all__ = [
    "LocalResources",
    "MissingResource",
    "UnusableName",
    "dynamo_safe",
    "local_resources",
    "missing_resources",
    "missing_rules_bucket",
    "stand_in_credentials",
    "provision",
    "provision_rules_bucket",
    "put_items",
    "put_secrets",
    "to_dynamo",
]


EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def stand_in_credentials(*, always: bool = False) -> None:
    """Give boto3 the emulator's stand-in credentials where it finds none (or ``always``, short of set ones).

    An emulator takes any credentials, and boto3 signs no request without some.
    """
    import boto3

    if always or boto3.session.Session().get_credentials() is None:
        for name, value in EMULATOR_CREDENTIALS.items():
            os.environ.setdefault(name, value)


class MissingResource(LookupError):
    """A table role or environment variable that no loaded pipeline declares."""


class UnusableName(ValueError):
    """A variable of the environment set to a value no resource can be made under (a queue URL with no name)."""


@dataclass(frozen=True)
class LocalResources:
    """Names and URLs of the provisioned resources, as the Lambda's environment would carry them.

    ``tables`` maps each role (the name under a pipeline's ``tables:``) to its table; ``variables`` maps each
    environment variable the pipelines read a table name or queue URL from to its value; ``queues`` are the URLs.
    """

    tables: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    queues: tuple[str, ...] = ()

    def environment(self) -> dict[str, str]:
        """The environment variables (contract §1, and any a new pipeline reads) pointing at these resources."""
        return dict(self.variables)

    def table(self, role: str) -> str:
        """The table of ``role``; MissingResource when no pipeline declares it."""
        if role not in self.tables:
            declared = ", ".join(self.tables) or "none"
            raise MissingResource(f"no pipeline declares a {role!r} table under tables: (declared: {declared})")
        return self.tables[role]

    def variable(self, name: str) -> str:
        """The value of environment variable ``name``; MissingResource when no pipeline reads it."""
        if name not in self.variables:
            raise MissingResource(f"no pipeline reads a table name or queue URL from {name}")
        return self.variables[name]

    @property
    def conversations_table(self) -> str:
        return self.table("conversations")

    @property
    def stage_table(self) -> str:
        return self.table("stage")

    @property
    def lock_table(self) -> str:
        return self.table("lock")

    @property
    def replay_table(self) -> str:
        return self.table("replay")

    @property
    def whatsapp_queue_url(self) -> str:
        return self.variable("WHATSAPP_QUEUE_URL")

    @property
    def sms_queue_url(self) -> str:
        return self.variable("SMS_QUEUE_URL")

    @property
    def handoff_queue_url(self) -> str:
        return self.variable("HANDOFF_QUEUE_URL")

    @property
    def email_queue_url(self) -> str:
        return self.variable("EMAIL_QUEUE_URL")


def _table_name(table: TableNeed, prefix: str, environment: Mapping[str, str]) -> str:
    # A name written literally in the pipeline is the pipeline's own; one the environment sets is the user's.
    if table.env is None:
        return table.name
    return environment.get(table.env, "").strip() or f"{prefix}{table.name}"


def given_queue_name(env: str, url: str) -> str:
    """The name of the queue ``url`` (the value of ``env``) points at: its last path segment; UnusableName if none."""
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise UnusableName(f"{env}={url!r} names no queue: a queue URL ends with the queue's name (…/ACCOUNT/NAME)")
    return name


def local_resources(
    queue_url: Callable[[str], str],
    prefix: str = "",
    needs: Needs | None = None,
    environment: Mapping[str, str] | None = None,
) -> LocalResources:
    """The resources ``provision`` creates, named without creating anything; ``queue_url`` maps a queue's name.

    A variable ``environment`` sets (not empty) keeps its value: its table is named so, its queue URL is kept.
    """
    needs = needs if needs is not None else shipped_needs()
    given = {name: value.strip() for name, value in (environment or {}).items() if value.strip()}
    tables = {table.role: _table_name(table, prefix, given) for table in needs.tables}
    variables = {table.env: tables[table.role] for table in needs.tables if table.env is not None}
    urls = {queue.env: given.get(queue.env) or queue_url(f"{prefix}{queue.name}") for queue in needs.queues}
    return LocalResources(tables, {**variables, **urls}, tuple(urls.values()))


def _create_table(dynamodb: Any, **request: Any) -> bool:
    """Create a table; False when it already exists (provisioning again is harmless)."""
    try:
        dynamodb.create_table(**request)
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
        return False
    return True


def _attributes(*keys: str) -> list[dict[str, str]]:
    return [{"AttributeName": key, "AttributeType": "S"} for key in dict.fromkeys(keys)]


def _index(index: IndexNeed) -> dict[str, Any]:
    return {
        "IndexName": index.name,
        "KeySchema": [
            {"AttributeName": index.hash_key, "KeyType": "HASH"},
            {"AttributeName": index.range_key, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


def _create_needed_table(dynamodb: Any, table: TableNeed, name: str) -> bool:
    """Create ``table`` (on demand, string keys, its GSIs with projection ALL); as ``_create_table``."""
    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": _attributes(
            *table.key, *(key for index in table.indexes for key in (index.hash_key, index.range_key))
        ),
        "KeySchema": [
            {"AttributeName": key, "KeyType": kind} for key, kind in zip(table.key, ("HASH", "RANGE"), strict=False)
        ],
    }
    if table.indexes:
        request["GlobalSecondaryIndexes"] = [_index(index) for index in table.indexes]
    return _create_table(dynamodb, **request)


def _add_indexes(dynamodb: Any, table: TableNeed, name: str) -> None:
    """Give an existing table the GSIs it lacks (one per UpdateTable, as DynamoDB allows)."""
    existing = dynamodb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
    present = {index["IndexName"] for index in existing}
    for index in table.indexes:
        if index.name not in present:
            dynamodb.update_table(
                TableName=name,
                AttributeDefinitions=_attributes(index.hash_key, index.range_key),
                GlobalSecondaryIndexUpdates=[{"Create": _index(index)}],
            )


def provision(
    dynamodb: Any,
    sqs: Any,
    prefix: str = "",
    needs: Needs | None = None,
    environment: Mapping[str, str] | None = None,
) -> LocalResources:
    """Create the tables, GSIs and queues ``needs`` lists (default: the project's pipelines'), in an emulator.

    Those that exist are kept; an existing table gets the GSIs it lacks (a pipeline added since it was made).
    A variable ``environment`` sets names its resource (a queue: the last segment of its URL), and keeps its value;
    UnusableName for a queue URL that names no queue. Returns their names, as ``local_resources`` gives them.
    """
    needs = needs if needs is not None else shipped_needs()
    names = local_resources(lambda name: name, prefix, needs, environment)
    given = {name for name, value in (environment or {}).items() if value.strip()}
    queue_names = {
        queue.env: given_queue_name(queue.env, names.variables[queue.env])
        if queue.env in given
        else names.variables[queue.env]
        for queue in needs.queues
    }
    for table in needs.tables:
        name = names.tables[table.role]
        if not _create_needed_table(dynamodb, table, name):
            _add_indexes(dynamodb, table, name)
        elif table.expires:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
            )
    urls = {env: sqs.create_queue(QueueName=name)["QueueUrl"] for env, name in queue_names.items()}
    urls.update({env: names.variables[env] for env in queue_names if env in given})
    return LocalResources(names.tables, {**names.variables, **urls}, tuple(urls.values()))


def missing_resources(dynamodb: Any, sqs: Any, environment: Mapping[str, str], needs: Needs | None = None) -> list[str]:
    """What the pipelines need that the account at hand lacks: tables, their GSIs, queues; one line each.

    Names come from ``environment`` (as the Lambda's); an unset or empty queue variable is not checked.
    """
    needs = needs if needs is not None else shipped_needs()
    lines: list[str] = []
    for table in needs.tables:
        name = environment.get(table.env, "") if table.env is not None else table.name
        where = f"table {name!r} ({table.env or table.role})"
        if not name:
            lines.append(f"{table.env} is not set: no {table.role!r} table")
            continue
        try:
            described = dynamodb.describe_table(TableName=name)["Table"]
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            lines.append(f"{where} does not exist")
            continue
        present = {index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])}
        lines.extend(
            f"{where} has no index {index.name!r} (hash {index.hash_key}, range {index.range_key}), "
            "which a conversations.lookup step queries"
            for index in table.indexes
            if index.name not in present
        )
    for queue in needs.queues:
        url = environment.get(queue.env, "")
        if not url:
            continue
        try:
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        except Exception as exc:
            if "NonExistentQueue" not in error_code(exc):
                raise
            lines.append(f"queue {url} ({queue.env}) does not exist")
    return lines


def provision_rules_bucket(s3: Any, name: str, region: str) -> None:
    """Create the rules bucket ``name`` versioned, as the template's ``RulesBucket``.

    An existing bucket is kept and versioned (every earlier deployment document recoverable, as deployed).
    """
    request: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":  # S3 refuses a location constraint naming its default region
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**request)
    except Exception as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def missing_rules_bucket(s3: Any, environment: Mapping[str, str]) -> list[str]:
    """What the rules bucket ``RULES_BUCKET`` names lacks: the bucket, or its versioning; one line each."""
    name = environment.get("RULES_BUCKET", "").strip()
    if not name:
        return []
    try:
        status = s3.get_bucket_versioning(Bucket=name).get("Status")
    except Exception as exc:
        if error_code(exc) not in ("NoSuchBucket", "404"):
            raise
        return [f"bucket {name!r} (RULES_BUCKET) does not exist"]
    if status != "Enabled":
        return [f"bucket {name!r} (RULES_BUCKET) is not versioned, as the template's RulesBucket is"]
    return []


def dynamo_safe(value: Any) -> Any:
    """Plain JSON values as DynamoDB takes them: floats become Decimal (through their text), at any depth.

    An ``ExactFloat`` (a JSON world's number a float cannot hold) becomes the Decimal of its own digits.
    """
    if isinstance(value, float):
        return value.exact if type(value) is ExactFloat else Decimal(str(value))
    if isinstance(value, dict):
        return {key: dynamo_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [dynamo_safe(item) for item in value]
    return value


def to_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain JSON item in DynamoDB's typed form (as the runtime's ``DynamoTables`` writes one)."""
    return {key: to_wire(dynamo_safe(value)) for key, value in item.items()}


def put_items(dynamodb: Any, table: str, items: Iterable[Mapping[str, Any]]) -> int:
    """Write plain JSON items; return how many."""
    count = 0
    for item in items:
        dynamodb.put_item(TableName=table, Item=to_dynamo(item))
        count += 1
    return count


def put_secrets(secretsmanager: Any, secrets: Mapping[str, Any]) -> None:
    """Create each secret with its JSON value as SecretString (an existing one gets it as its new value)."""
    for name, value in secrets.items():
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            secretsmanager.create_secret(Name=name, SecretString=text)
        except Exception as exc:
            if error_code(exc) != "ResourceExistsException":
                raise
            secretsmanager.put_secret_value(SecretId=name, SecretString=text)
