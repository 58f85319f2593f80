"""boto3 adapters for the ports, and the one place where AWS errors are classified.

An error is ``transient`` exactly when botocore's standard retry mode would retry it: throttling
codes, HTTP 5xx (and an unmodeled 429), request timeouts, connection and read errors, and the errors a
service models as retryable. A failed call's outcome is unknown (``ServiceError.outcome_unknown``: it may have
been applied) when no attempt got an answer, or an answer was a 5xx; an error answer alone to every attempt
(throttling, a refusal) means nothing was applied. Clients are created once per container
with bounded connect/read timeouts and retry attempts (see ``AwsSettings``); ``lazy_clients`` defers that
to each client's first use (``LazyClient``), since the first client pays botocore's data loading.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import botocore.exceptions
from botocore.config import Config
from botocore.retries import standard
from botocore.retries.standard import (
    ModeledRetryableChecker,
    RetryContext,
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)

from engine.calls import CallLimits
from engine.conditions import AllOf, AnyOf, AttributeEquals, AttributeLessThan, AttributeNotExists, Condition
from engine.ports import ErrorKind, ItemRequest, QueryPage, ServiceError
from runtime.dynamowire import from_wire, plain_value, to_wire

__all__ = [
    "AwsSettings",
    "longest_call_seconds",
    "longest_invocation_seconds",
    "botocore_config",
    "DynamoTables",
    "LazyClient",
    "SecretsManagerStore",
    "SqsQueues",
    "classify",
    "error_code",
    "is_throttle",
    "lazy_clients",
    "MALFORMED_ANSWER",
    "make_client",
    "make_clients",
    "new_session",
    "plain_value",
]

T = TypeVar("T")

# The checks of botocore's standard retry mode that an error answer alone can decide (the DynamoDB checksum
# and IdP checks look at a response that reached the parser). A 429 whose code the operation does not model
# is retried by the botocore versions that have ThrottlingStatusCodeChecker; older ones do not retry it.
_THROTTLED = ThrottledRetryableChecker()
_RETRYABLE = (
    _THROTTLED,
    TransientRetryableChecker(),
    ModeledRetryableChecker(),
    *((standard.ThrottlingStatusCodeChecker(),) if hasattr(standard, "ThrottlingStatusCodeChecker") else ()),
)
_NOT_FOUND = frozenset({"ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_DENIED = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "KMSAccessDeniedException",
        "DecryptionFailure",
    }
)
_INVALID = frozenset(
    {"ValidationException", "InvalidParameterValue", "InvalidParameterException", "InvalidRequestException"}
)

# The code of a 200 answer without what every real answer of its operation carries: not AWS's answer (a page some
# proxy or gateway put in its place, a document cut short), which botocore parses to an empty one without an error.
# botocore does not retry it, so it is final; read as an empty answer, it would be a business "no" made of nothing.
MALFORMED_ANSWER = "MalformedAnswer"

# botocore's standard retry mode: its throttling backoff's cap, in seconds (``ExponentialBackoff``).
_MAX_BACKOFF = 20.0
# BatchGetItem rounds for keys DynamoDB left unprocessed (throttled) before the read counts as a transient failure.
# Each round is a call of its own, up to one bounded call's time: two fit the invocation's bound (T <= D + 2B), as the
# read comes before any write, so no release follows it (a third made D + 3B: past Lambda's timeout and Twilio's 15 s).
_BATCH_ROUNDS = 2

# The pipeline file's ``aws:`` block, as the runtime reads it.
AwsSettings = CallLimits


def botocore_config(settings: CallLimits) -> Config:
    """The botocore Config that enforces ``settings``' time bounds and attempt count."""
    return Config(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # botocore's ``max_attempts`` counts retries only; ``total_max_attempts`` includes the first try.
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        tcp_keepalive=True,
        # The adapters below build every request from fixed shapes (and the tests run them against moto):
        # botocore's client-side check of each request against the model is a fifth of its work per call.
        parameter_validation=False,
    )


def longest_call_seconds(limits: CallLimits) -> float:
    """The longest one AWS call can take under ``limits``, botocore's retries included.

    Every attempt may spend its connect and read timeouts, and each retry waits botocore's throttling backoff
    first, which doubles from one retry to the next (at most 1, 2, 4, 8 s before the 2nd to 5th attempts; 20 s at
    most), or AWS's ``x-amz-retry-after`` lowered to the read timeout (``_retry_after_cap``), when that is longer.
    """
    backoffs = sum(max(min(2.0**retry, _MAX_BACKOFF), limits.read_timeout) for retry in range(limits.max_attempts - 1))
    return limits.max_attempts * (limits.connect_timeout + limits.read_timeout) + backoffs


def longest_invocation_seconds(deadline_seconds: float, limits: CallLimits) -> float:
    """The longest one invocation can run, in seconds.

    No AWS step starts after the deadline; the one in flight may take a call's longest, and undoing a failed run's
    writes (concurrently) one more.
    """
    return deadline_seconds + 2 * longest_call_seconds(limits)


class _StatusOnly:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def classify(exc: BaseException, operation: str, operation_model: Any = None) -> ServiceError:
    """Turn a botocore exception into a ServiceError with the right kind.

    ``operation_model`` (botocore's, of the operation that failed) lets an error the service models as
    retryable count as transient, as botocore counts it; without it only the fixed codes and statuses do.
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc) or "Unknown"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        context = RetryContext(
            attempt_number=1,
            operation_model=operation_model,
            parsed_response=dict(exc.response),
            http_response=_StatusOnly(status) if status else None,
        )
        metadata = exc.response.get("ResponseMetadata", {})
        unknown = status >= 500 or bool(metadata.get(_OUTCOME_UNKNOWN))
        kind: ErrorKind
        if any(checker.is_retryable(context) for checker in _RETRYABLE):
            kind = "transient"
        elif code in _NOT_FOUND:
            kind = "not_found"
        elif code in _DENIED:
            kind = "denied"
        elif code in _INVALID:
            kind = "invalid"
        else:
            kind = "permanent"
        return ServiceError(kind, code, operation, unknown)
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        # No answer: the request may have reached the service (a read timeout, a connection closed mid-answer).
        return ServiceError("transient", type(exc).__name__, operation, outcome_unknown=True)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ServiceError("denied", "NoCredentials", operation)
    return ServiceError("permanent", type(exc).__name__, operation)


def is_throttle(parsed: Mapping[str, Any]) -> bool:
    """Whether an error answer is throttling as botocore's standard retry mode knows it (DynamoDB answers 400)."""
    return bool(_THROTTLED.is_retryable(RetryContext(attempt_number=1, parsed_response=dict(parsed))))


def error_code(exc: BaseException) -> str:
    """The code AWS answered a failed call with (a ``ClientError``'s ``Error.Code``); empty for any other failure."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    return str(error.get("Code") or "") if isinstance(error, Mapping) else ""


def _member(answer: Mapping[str, Any], name: str, operation: str, *, write: bool = False) -> Any:
    """``answer[name]``, a member every real answer of ``operation`` carries; else a ``MALFORMED_ANSWER`` error.

    A ``write`` may have been applied all the same (``ServiceError.outcome_unknown``).
    """
    if name not in answer:
        raise ServiceError("permanent", MALFORMED_ANSWER, operation, outcome_unknown=write)
    return answer[name]


def _operation_model(client: Any, exc: BaseException) -> Any:
    """The model of the operation ``exc`` answered, from ``client``'s service model (None when unknown)."""
    name = getattr(exc, "operation_name", None)
    if not isinstance(name, str):
        return None
    try:
        return client.meta.service_model.operation_model(name)
    except Exception:  # noqa: BLE001 - without the model the error is classified by its code and status
        return None


class _Expression:
    """Builds a DynamoDB expression with placeholder names and values."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def condition(self, condition: Condition) -> str:
        if isinstance(condition, AnyOf):
            return " OR ".join(f"({self.condition(part)})" for part in condition.conditions)
        if isinstance(condition, AllOf):
            return " AND ".join(f"({self.condition(part)})" for part in condition.conditions)
        if isinstance(condition, AttributeNotExists):
            return f"attribute_not_exists({self.name(condition.name)})"
        if isinstance(condition, AttributeEquals):
            return f"{self.name(condition.name)} = {self.value(condition.value)}"
        if isinstance(condition, AttributeLessThan):
            return f"{self.name(condition.name)} < {self.value(condition.value)}"
        raise TypeError(f"unknown condition {condition!r}")


class LazyClient:
    """A boto3 client made by ``create`` on first use: exactly once, even when threads race for it."""

    def __init__(self, create: Callable[[], Any], lock: threading.Lock | None = None) -> None:
        self._create = create
        self._lock = lock or threading.Lock()
        self._client: Any = None

    @classmethod
    def of(cls, client: Any) -> LazyClient:
        """``client`` itself when it is a LazyClient, else a holder of that existing client."""
        if isinstance(client, LazyClient):
            return client
        holder = cls(lambda: client)
        holder._client = client
        return holder

    @property
    def created(self) -> bool:
        """Whether the client exists yet."""
        return self._client is not None

    def get(self) -> Any:
        """The client, created now if this is its first use."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._create()
                client = self._client
        return client


class _ClientPort:
    """A port over one boto3 client, or a ``LazyClient`` of one (created on first use)."""

    def __init__(self, client: Any) -> None:
        self._holder = LazyClient.of(client)

    @property
    def client(self) -> Any:
        """The boto3 client (tests hook botocore events on it)."""
        return self._holder.get()

    def _call(self, operation: str, function: Callable[[], T]) -> T:
        """``function()``, a call of this client; a botocore error becomes a ServiceError (``classify``)."""
        try:
            return function()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise classify(exc, operation, _operation_model(self.client, exc)) from exc


class DynamoTables(_ClientPort):
    """The Tables port over a boto3 DynamoDB client (or a ``LazyClient`` of one)."""

    @staticmethod
    def _to_wire(item: Mapping[str, Any]) -> dict[str, Any]:
        return {key: to_wire(value) for key, value in item.items()}

    @staticmethod
    def _from_wire(item: Mapping[str, Any]) -> dict[str, Any]:
        return {key: from_wire(value) for key, value in item.items()}

    @staticmethod
    def _projection(expression: _Expression, attributes: Sequence[str] | None) -> dict[str, Any]:
        if not attributes:
            return {}
        return {"ProjectionExpression": ", ".join(expression.name(a) for a in attributes)}

    def query_pages(
        self,
        table: str,
        index: str,
        key: Mapping[str, str],
        attributes: Sequence[str] | None = None,
    ) -> Iterator[QueryPage]:
        expression = _Expression()
        key_condition = " AND ".join(f"{expression.name(k)} = {expression.value(v)}" for k, v in key.items())
        request: dict[str, Any] = {
            "TableName": table,
            "IndexName": index,
            "KeyConditionExpression": key_condition,
            **self._projection(expression, attributes),
        }
        request["ExpressionAttributeNames"] = expression.names
        request["ExpressionAttributeValues"] = self._to_wire(expression.values)
        while True:
            page: dict[str, Any] = self._call("dynamodb.Query", partial(self.client.query, **request))
            last = page.get("LastEvaluatedKey")
            items = _member(page, "Items", "dynamodb.Query")
            yield QueryPage([self._from_wire(item) for item in items], bool(last))
            if not last:
                return
            request = {**request, "ExclusiveStartKey": last}

    def get_item(
        self,
        table: str,
        key: Mapping[str, str],
        *,
        consistent: bool = True,
        attributes: Sequence[str] | None = None,
    ) -> dict[str, Any] | None:
        expression = _Expression()
        request: dict[str, Any] = {
            "TableName": table,
            "Key": self._to_wire(key),
            "ConsistentRead": consistent,
            # A real answer then always carries ConsumedCapacity, found or not: an answer without it (garbled, a
            # proxy's page) is told from "no such item", which is otherwise an empty answer too.
            "ReturnConsumedCapacity": "TOTAL",
            **self._projection(expression, attributes),
        }
        if expression.names:
            request["ExpressionAttributeNames"] = expression.names
        response = self._call("dynamodb.GetItem", lambda: self.client.get_item(**request))
        _member(response, "ConsumedCapacity", "dynamodb.GetItem")
        item = response.get("Item")
        return self._from_wire(item) if item else None

    def get_items(self, requests: Sequence[ItemRequest]) -> list[dict[str, Any] | None]:
        tables: dict[str, dict[str, Any]] = {}
        wanted: dict[str, tuple[str, ...]] = {}
        for request in requests:
            entry = tables.get(request.table)
            if entry is None:
                entry = tables[request.table] = {"Keys": [], "ConsistentRead": request.consistent}
                if request.attributes:
                    # The key comes back too (to match items to requests) and is dropped if it was not asked for.
                    expression = _Expression()
                    names = (*request.attributes, *(k for k in request.key if k not in request.attributes))
                    entry.update(self._projection(expression, names), ExpressionAttributeNames=expression.names)
                    wanted[request.table] = tuple(request.attributes)
            elif entry["ConsistentRead"] != request.consistent or wanted.get(request.table) != (
                tuple(request.attributes) if request.attributes else None
            ):
                raise ValueError(f"requests for table {request.table} must share their read options")
            entry["Keys"].append(self._to_wire(request.key))
        found: dict[str, list[dict[str, Any]]] = {}
        pending: dict[str, Any] = tables
        for _ in range(_BATCH_ROUNDS):
            response = self._call("dynamodb.BatchGetItem", partial(self.client.batch_get_item, RequestItems=pending))
            for table, items in _member(response, "Responses", "dynamodb.BatchGetItem").items():
                found.setdefault(table, []).extend(self._from_wire(item) for item in items)
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
        else:
            raise ServiceError("transient", "UnprocessedKeys", "dynamodb.BatchGetItem")
        results: list[dict[str, Any] | None] = []
        for request in requests:
            match = next(
                (
                    item
                    for item in found.get(request.table, [])
                    if all(item.get(k) == v for k, v in request.key.items())
                ),
                None,
            )
            keep = wanted.get(request.table)
            results.append(match if match is None or keep is None else {k: match[k] for k in keep if k in match})
        return results

    def _conditional(
        self, operation: str, call: Callable[..., Any], request: dict[str, Any], condition: Condition | None
    ) -> bool:
        if condition is not None:
            expression = _Expression()
            request["ConditionExpression"] = expression.condition(condition)
            request["ExpressionAttributeNames"] = expression.names
            if expression.values:
                request["ExpressionAttributeValues"] = self._to_wire(expression.values)
        try:
            self._call(operation, lambda: call(**request))
        except ServiceError as exc:
            if exc.code == "ConditionalCheckFailedException":
                return self._own_write_found(request, exc)
            raise
        return True

    @staticmethod
    def _own_write_found(request: Mapping[str, Any], exc: ServiceError) -> bool:
        """Whether a failed condition met exactly the item this put writes (``ALL_OLD`` returns what is there).

        Then botocore retried a put whose first attempt was applied though its answer was lost: the write is ours.
        """
        cause = exc.__cause__
        found = getattr(cause, "response", {}).get("Item") if cause is not None else None
        return "Item" in request and found == request["Item"]

    def put_item(self, table: str, item: Mapping[str, Any], condition: Condition | None = None) -> bool:
        request = {"TableName": table, "Item": self._to_wire(item)}
        if condition is not None:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return self._conditional("dynamodb.PutItem", self.client.put_item, request, condition)

    def delete_item(self, table: str, key: Mapping[str, str], condition: Condition | None = None) -> bool:
        request = {"TableName": table, "Key": self._to_wire(key)}
        return self._conditional("dynamodb.DeleteItem", self.client.delete_item, request, condition)


class SqsQueues(_ClientPort):
    """The Queues port over a boto3 SQS client (or a ``LazyClient`` of one)."""

    def send_message(self, queue_url: str, body: str, delay_seconds: int) -> str:
        response = self._call(
            "sqs.SendMessage",
            lambda: self.client.send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay_seconds),
        )
        # An answer without its MessageId says nothing of the message: it is no proof of a trigger sent.
        return str(_member(response, "MessageId", "sqs.SendMessage", write=True))


class SecretsManagerStore(_ClientPort):
    """The SecretStore port over a boto3 Secrets Manager client (or a ``LazyClient`` of one)."""

    def get_secret_string(self, name: str) -> str:
        response = self._call("secretsmanager.GetSecretValue", lambda: self.client.get_secret_value(SecretId=name))
        value = response.get("SecretString")
        if value is None:
            raise ServiceError("invalid", "NoSecretString", "secretsmanager.GetSecretValue")
        return str(value)


_SERVICES = ("dynamodb", "sqs", "secretsmanager")


def make_client(service: str, session: Any, config: Config, cap: Callable[..., None]) -> Any:
    """One ``session`` client with ``config``, its ``needs-retry`` answers capped by ``cap`` first.

    Its error answers say when an earlier attempt that it retried may have been applied (``classify``).
    """
    client = session.client(service, config=config)
    service_id = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"needs-retry.{service_id}", cap)
    client.meta.events.register(f"needs-retry.{service_id}", _note_outcome_unknown)
    client.meta.events.register(f"after-call.{service_id}", _report_outcome_unknown)
    return client


# Set in a call's request context once one of its attempts may have been applied, and copied into the
# ResponseMetadata of the error answer the call ends with: a throttled retry of a timed-out write is no proof
# that the write was not applied.
_OUTCOME_UNKNOWN = "OutcomeUnknown"


def _note_outcome_unknown(
    request_dict: Any = None, response: Any = None, caught_exception: Any = None, **_: Any
) -> None:
    """``needs-retry``: mark the call when this attempt got no answer, or a 5xx one."""
    status = getattr(response[0], "status_code", 0) if response else 0
    if request_dict is not None and (caught_exception is not None or status >= 500):
        request_dict["context"][_OUTCOME_UNKNOWN] = True


def _report_outcome_unknown(parsed: Any = None, context: Any = None, **_: Any) -> None:
    """``after-call``: the error answer of a marked call carries the mark to ``classify``."""
    if context and context.get(_OUTCOME_UNKNOWN) and isinstance(parsed, dict) and "Error" in parsed:
        parsed.setdefault("ResponseMetadata", {})[_OUTCOME_UNKNOWN] = True


def new_session(env: Mapping[str, str] | None = None) -> Any:
    """A boto3 session in botocore's region, else in ``AWS_REGION`` (the contract's variable, which botocore ignores).

    Every client of the function comes from one (Lambda sets both variables; elsewhere either one is enough).
    """
    import boto3

    environment = os.environ if env is None else env
    region = None if environment.get("AWS_DEFAULT_REGION") else environment.get("AWS_REGION") or None
    return boto3.session.Session(region_name=region)


def make_clients(settings: AwsSettings, session: Any | None = None) -> tuple[Any, Any, Any]:
    """DynamoDB, SQS and Secrets Manager clients sharing one bounded botocore config."""
    factory = session or new_session()
    config = botocore_config(settings)
    cap = _retry_after_cap(round(settings.read_timeout * 1000))
    dynamodb, sqs, secretsmanager = (make_client(service, factory, config, cap) for service in _SERVICES)
    return dynamodb, sqs, secretsmanager


class _ClientFactory:
    """Creates the clients of ``make_clients`` one at a time, from one session made on first need."""

    def __init__(self, settings: AwsSettings, session: Any | None, prepare: Callable[[Any], None]) -> None:
        self._session = session
        self._config = botocore_config(settings)
        self._cap = _retry_after_cap(round(settings.read_timeout * 1000))
        self._prepare = prepare
        # One lock for all three: a boto3 session is not safe to create clients from concurrently.
        self.lock = threading.Lock()

    def create(self, service: str) -> Any:
        """A new client of ``service``, prepared; call with ``lock`` held."""
        if self._session is None:
            self._session = new_session()
        client = make_client(service, self._session, self._config, self._cap)
        self._prepare(client)
        return client


def lazy_clients(
    settings: AwsSettings, session: Any | None = None, prepare: Callable[[Any], None] = lambda client: None
) -> tuple[LazyClient, LazyClient, LazyClient]:
    """The clients of ``make_clients``, each created (then passed to ``prepare``) on its first use."""
    factory = _ClientFactory(settings, session, prepare)
    dynamodb, sqs, secretsmanager = (LazyClient(partial(factory.create, name), factory.lock) for name in _SERVICES)
    return dynamodb, sqs, secretsmanager


_RETRY_AFTER = "x-amz-retry-after"


def _retry_after_cap(limit_ms: int) -> Callable[..., None]:
    """A ``needs-retry`` hook that lowers a throttled answer's ``x-amz-retry-after`` to ``limit_ms``.

    botocore waits up to that header's value (plus 5 s) before its retry, which alone would outlast
    Twilio's 15-second budget; the caller's own retry (Twilio's) takes over a longer wait instead.
    """

    def cap(response: Any = None, **_: Any) -> None:
        headers: Any = getattr(response[0], "headers", None) if response else None
        value = headers.get(_RETRY_AFTER) if headers is not None else None
        if value is not None and str(value).isdigit() and int(value) > limit_ms:
            headers[_RETRY_AFTER] = str(limit_ms)

    return cap
