"""Faults injected at the HTTP boundary of an application's own boto3 clients (botocore event hooks).

Every pipeline AWS call gets a logical name (``CALLS``). A ``Fault`` on a call acts per HTTP attempt, in
``before-send``, which means botocore's own retries meet it too; ``crash`` acts in ``after-call``, once the
call has succeeded. The injector takes moto's in-process ``before-send`` handler off the clients and calls it
itself when no fault answers (every ``before-send`` handler runs, so moto would otherwise apply a request
the fault claims never arrived); without ``mock_aws`` the request goes over HTTP as usual.

- ``throttling``, ``server_error``, ``access_denied``, ``not_found``: AWS's error answer for that service;
- ``read_timeout``: the request never reaches AWS and the read times out (``ReadTimeoutError``);
- ``response_lost``: AWS applies the request, then the read times out (the answer is lost);
- ``malformed``: a 200 answer whose body is not the operation's answer (a proxy's page, a truncated document):
  the request never reaches AWS;
- ``unprocessed`` (BatchGetItem): DynamoDB answers 200 (after ``delay`` seconds) with every key of the request
  unprocessed, as it does when the read is throttled; the request never reaches AWS;
- ``slow``: AWS answers after ``delay`` seconds; ``hang``: the read times out after ``delay`` seconds;
- ``crash``: the call succeeds, then the process dies (``SimulatedCrash``, a BaseException no
  ``except Exception`` catches, so no compensation runs, as in a real process death).

A ``Gate`` holds a client's calls of one operation until the test opens it: interleavings of concurrent
deliveries are driven by explicit order, never by sleeps racing each other.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from moto.core.models import botocore_stubber

from engine.errors import RetryableFailure
from tests.support.webhooks import EMPTY_TWIML
from tools.localaws import to_dynamo

if TYPE_CHECKING:
    from runtime.app import Application, Handled

__all__ = [
    "CALLS",
    "BlackHole",
    "FAULT_KINDS",
    "FINAL_CODE",
    "EndState",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "Gate",
    "MATRIX_KINDS",
    "MatrixRow",
    "RELEASE_CODE",
    "SimulatedCrash",
    "TRANSIENT_CODE",
    "TRANSIENT_KINDS",
    "error_answer",
    "malformed_answer",
    "unprocessed_answer",
    "expected_triggers",
    "new_container",
    "observe",
    "twilio_delivery",
]

CALLS = (
    "query",
    "secret",
    "get",
    "stage_put",
    "lock_put",
    "replay_put",
    "replay_confirm",
    "lock_release",
    "replay_release",
    "send",
    "lock_mark",
)
FaultKind = Literal[
    "throttling",
    "server_error",
    "read_timeout",
    "response_lost",
    "access_denied",
    "not_found",
    "malformed",
    "unprocessed",
    "slow",
    "hang",
    "crash",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

# The code each call's failure ends an event with: transient (the provider retries) or final.
TRANSIENT_CODE = {
    "query": "DB_TRANSIENT_ERROR",
    "secret": "SECRET_FETCH_TRANSIENT_ERROR",
    "get": "DB_TRANSIENT_ERROR",
    "stage_put": "STAGE_WRITE_TRANSIENT_ERROR",
    "lock_put": "TRIGGER_LOCK_TRANSIENT_ERROR",
    "replay_put": "STAGE_WRITE_TRANSIENT_ERROR",
    "send": "QUEUE_TRANSIENT_ERROR",
}
FINAL_CODE = {
    "query": "DB_QUERY_ERROR",
    "secret": "SECRET_FETCH_FAILED",
    "get": "DB_QUERY_ERROR",
    "stage_put": "STAGE_WRITE_ERROR",
    "lock_put": "TRIGGER_LOCK_WRITE_ERROR",
    "replay_put": "STAGE_WRITE_ERROR",
    "send": "QUEUE_ERROR",
}
# What releases a call's side effect, and the code its failure raises (the run must then be retried).
RELEASE_CODE = {"lock_release": "TRIGGER_LOCK_TRANSIENT_ERROR", "replay_release": "STAGE_WRITE_TRANSIENT_ERROR"}

_SERVICE_IDS = {"dynamodb": "dynamodb", "sqs": "sqs", "secretsmanager": "secrets-manager"}
_CONTENT_TYPES = {
    "dynamodb": "application/x-amz-json-1.0",
    "sqs": "application/x-amz-json-1.0",
    "secretsmanager": "application/x-amz-json-1.1",
}
# (HTTP status, __type, x-amzn-query-error) as each service answers the fault.
_ERRORS: dict[str, dict[str, tuple[int, str, str | None]]] = {
    "throttling": {
        "dynamodb": (400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", None),
        "secretsmanager": (400, "ThrottlingException", None),
        "sqs": (400, "com.amazonaws.sqs#ThrottlingException", "ThrottlingException;Sender"),
    },
    "server_error": {
        "dynamodb": (500, "com.amazonaws.dynamodb.v20120810#InternalServerError", None),
        "secretsmanager": (500, "InternalServiceError", None),
        "sqs": (500, "com.amazonaws.sqs#InternalError", "InternalError;Receiver"),
    },
    "access_denied": {
        "dynamodb": (400, "com.amazon.coral.service#AccessDeniedException", None),
        "secretsmanager": (400, "AccessDeniedException", None),
        "sqs": (403, "com.amazon.coral.service#AccessDeniedException", "AccessDenied;Sender"),
    },
    "not_found": {
        "dynamodb": (400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", None),
        "secretsmanager": (400, "ResourceNotFoundException", None),
        "sqs": (400, "com.amazonaws.sqs#QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue;Sender"),
    },
}


class SimulatedCrash(BaseException):
    """The process died right after an AWS call succeeded."""


@dataclass(frozen=True)
class Fault:
    """A fault on one logical call: ``times`` HTTP attempts (or calls, for ``crash``) are hit; None: all.

    ``delay`` is the wait of ``slow``, ``hang`` and ``unprocessed``; ``retry_after`` (seconds) adds AWS's
    ``x-amz-retry-after`` header to an error answer.
    """

    kind: FaultKind
    times: int | None = None
    delay: float = 0.0
    retry_after: float | None = None


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


def error_answer(service: str, kind: str, url: str) -> AWSResponse:
    """The HTTP answer ``service`` gives for ``kind`` (throttling, server_error, access_denied, not_found)."""
    status, error_type, query_error = _ERRORS[kind][service]
    headers = {"Content-Type": _CONTENT_TYPES[service], "x-amzn-RequestId": "fault-injected"}
    if query_error:
        headers["x-amzn-query-error"] = query_error
    body = json.dumps({"__type": error_type, "message": f"injected {kind}"}).encode()
    return AWSResponse(url, status, cast(Any, headers), _Body(body))


def malformed_answer(service: str, url: str) -> AWSResponse:
    """A 200 answer from ``service`` whose body is no answer at all: a page some proxy or gateway put in its place."""
    headers = {"Content-Type": _CONTENT_TYPES[service], "x-amzn-RequestId": "fault-injected"}
    return AWSResponse(url, 200, cast(Any, headers), _Body(b"<html><body>Bad Gateway</body></html>"))


def unprocessed_answer(request: Any) -> AWSResponse:
    """DynamoDB's 200 answer to the BatchGetItem ``request`` with none of its keys processed (a throttled read)."""
    pending = json.loads(request.body)["RequestItems"]
    body = json.dumps({"Responses": {table: [] for table in pending}, "UnprocessedKeys": pending}).encode()
    headers = {"Content-Type": _CONTENT_TYPES["dynamodb"], "x-amzn-RequestId": "fault-injected"}
    return AWSResponse(request.url, 200, cast(Any, headers), _Body(body))


# The fault matrices' columns: each fault kind as the tables in docs/guarantees.md name it.
MATRIX_KINDS = (
    ("throttled once", Fault("throttling", times=1)),
    ("throttling", Fault("throttling")),
    ("5xx", Fault("server_error")),
    ("read timeout", Fault("read_timeout")),
    ("response lost", Fault("response_lost")),
    ("access denied", Fault("access_denied")),
    ("missing resource", Fault("not_found")),
    ("crash after", Fault("crash", times=1)),
)
# The kinds botocore retries and the pipeline answers as transient (the provider retries).
TRANSIENT_KINDS = frozenset({"throttling", "server_error", "read_timeout", "response_lost"})


@dataclass(frozen=True)
class MatrixRow:
    """A fault matrix's row: a call to break; ``setup`` faults make the pipeline reach it (a release only runs
    after a failure)."""

    label: str
    call: str
    setup: dict[str, Fault] = field(default_factory=dict)


def expected_triggers(row: MatrixRow, fault: Fault, max_attempts: int) -> int:
    """Triggers at rest: one, plus the ones a lost answer or a crash made the sender repeat (contract §2)."""
    if row.call == "send" and fault.kind == "response_lost":
        return max_attempts + 1
    if row.call in ("send", "lock_mark") and fault.kind == "crash":
        return 2
    return 1


class FaultInjector:
    """Names, counts and breaks the AWS calls of an application's clients.

    The table names tell the ``PutItem`` and ``DeleteItem`` calls apart; a lock ``PutItem`` that carries
    ``trigger_due_at`` is the holder marking its lock sent (``lock_mark``), and a replay ``PutItem`` of a
    ``confirmed`` record is an email run confirming its record (``replay_confirm``).
    """

    def __init__(self, application: Any, resources: Any) -> None:
        """``resources``: the world's (``stage_table``, ``lock_table``, ``replay_table``), which name the writes."""
        services = application.services
        self._clients = {
            "dynamodb": services.tables.client,
            "sqs": services.queues.client,
            "secretsmanager": services.secrets.store.client,
        }
        self._tables = {resources.stage_table: "stage", resources.lock_table: "lock", resources.replay_table: "replay"}
        self._faults: dict[str, tuple[Fault, ...]] = {}
        self._hits: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.order: list[str] = []
        # How a ``slow``, ``hang`` or ``unprocessed`` call waits: real time, or a stepped clock's ``advance``.
        self.sleep: Callable[[float], None] = time.sleep
        self._idle = threading.Condition()
        self._in_flight = 0
        for service, client in self._clients.items():
            service_id = _SERVICE_IDS[service]
            events = client.meta.events
            events.register(f"before-parameter-build.{service_id}", self._tagger(service))
            events.unregister("before-send", botocore_stubber)
            events.register_first(f"before-send.{service_id}", self._sender(service))
            events.register(f"after-call.{service_id}", self._finisher(service))
            events.register(f"after-call-error.{service_id}", self._error_finisher())

    def inject(self, call: str, *faults: Fault) -> None:
        """Apply ``faults`` in turn to the later attempts of ``call`` (``"*"``: every call), until ``clear``.

        Each fault hits ``times`` attempts (or calls, for ``crash``), then the next one takes over; a fault
        with ``times=None`` hits all remaining attempts. A crash cannot share a sequence with other faults.
        """
        if len(faults) > 1 and any(fault.kind == "crash" for fault in faults):
            raise ValueError("a crash fault must be injected alone")
        self._faults[call] = faults
        for name in list(self._hits):
            if call in ("*", name):
                self._hits[name] = 0

    def clear(self) -> None:
        """Remove every fault (counters are kept)."""
        self._faults.clear()

    def reset_counts(self) -> None:
        """Zero every counter."""
        for counter in (self.calls, self.attempts, self.completed, self._hits):
            counter.clear()
        self.order.clear()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no call is in flight (a crash may leave a parallel call running)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"{self._in_flight} AWS call(s) still in flight after {timeout} s")

    def _name(self, service: str, operation: str, params: Mapping[str, Any]) -> str:
        role = self._tables.get(str(params.get("TableName", "")))
        names = {
            ("dynamodb", "Query"): "query",
            ("dynamodb", "BatchGetItem"): "get",
            ("secretsmanager", "GetSecretValue"): "secret",
            ("sqs", "SendMessage"): "send",
        }
        if (service, operation) in names:
            return names[(service, operation)]
        if service == "dynamodb" and role is not None:
            if operation == "PutItem":
                item = params.get("Item", {})
                if role == "lock" and "trigger_due_at" in item:
                    return "lock_mark"
                if role == "replay" and item.get("state") == {"S": "confirmed"}:
                    return "replay_confirm"
                return f"{role}_put"
            if operation == "DeleteItem" and role in ("lock", "replay"):
                return f"{role}_release"
        return f"{service}.{operation}"

    def _sequence(self, call: str) -> tuple[Fault, ...]:
        return self._faults.get(call) or self._faults.get("*") or ()

    def _take(self, call: str, crash: bool) -> Fault | None:
        """The fault for the next attempt of ``call`` (counted), or None."""
        sequence = self._sequence(call)
        if not sequence or (sequence[0].kind == "crash") != crash:
            return None
        with self._idle:
            seen = self._hits[call]
            for fault in sequence:
                if fault.times is None or seen < fault.times:
                    self._hits[call] += 1
                    return fault
                seen -= fault.times
        return None

    def _tagger(self, service: str) -> Any:
        def tag(params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            call = self._name(service, model.name, params)
            context["fault_call"] = call
            with self._idle:
                self._in_flight += 1
                self.calls[call] += 1
                self.order.append(call)

        return tag

    def _sender(self, service: str) -> Any:
        def send(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
            call = str((request.context or {}).get("fault_call", event_name))
            with self._idle:
                self.attempts[call] += 1
            fault = self._take(call, crash=False)
            if fault is None:
                return botocore_stubber(event_name, request)
            if fault.kind == "slow":
                self.sleep(fault.delay)
                return botocore_stubber(event_name, request)
            if fault.kind == "hang":
                self.sleep(fault.delay)
                raise ReadTimeoutError(endpoint_url=request.url)
            if fault.kind == "read_timeout":
                raise ReadTimeoutError(endpoint_url=request.url)
            if fault.kind == "response_lost":
                if botocore_stubber(event_name, request) is None:
                    raise RuntimeError("response_lost needs moto's in-process mock (mock_aws) to apply the request")
                raise ReadTimeoutError(endpoint_url=request.url)
            if fault.kind == "malformed":
                return malformed_answer(service, request.url)
            if fault.kind == "unprocessed":
                self.sleep(fault.delay)
                return unprocessed_answer(request)
            answer = error_answer(service, fault.kind, request.url)
            if fault.retry_after is not None:
                answer.headers["x-amz-retry-after"] = str(round(fault.retry_after * 1000))
            return answer

        return send

    def _finisher(self, service: str) -> Any:
        def finish(parsed: Mapping[str, Any], context: Mapping[str, Any], **_: Any) -> None:
            call = str(context.get("fault_call", service))
            with self._idle:
                self._in_flight -= 1
                self.completed[call] += 1
                self._idle.notify_all()
            if "Error" not in parsed and self._take(call, crash=True):
                raise SimulatedCrash(f"process died right after {call} succeeded")

        return finish

    def _error_finisher(self) -> Any:
        def finish(**_: Any) -> None:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

        return finish


class Gate:
    """Holds every call of ``operation`` on ``client`` (a boto3 client) until ``open``; ``reached`` once one waits."""

    def __init__(self, client: Any, operation: str, timeout: float = 30.0) -> None:
        self.reached = threading.Event()
        self._opened = threading.Event()
        self._timeout = timeout
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service_id}.{operation}", self._hold)

    def _hold(self, **_: Any) -> None:
        self.reached.set()
        if not self._opened.wait(self._timeout):
            raise TimeoutError(f"the gate stayed closed for {self._timeout} s")

    def wait(self) -> None:
        """Until a call waits at the gate."""
        if not self.reached.wait(self._timeout):
            raise TimeoutError(f"no call reached the gate in {self._timeout} s")

    def open(self) -> None:
        """Let the held call (and every later one) through."""
        self._opened.set()


def outcome(handled: Handled) -> str:
    """The event's outcome, ``raised CODE`` when the handler raised (the provider retries)."""
    return f"raised {handled.result.outcome}" if handled.raised else handled.result.outcome


class Attempt:
    """One delivery running in a thread of its own, held at its send (a ``Gate``) until the test lets it go."""

    def __init__(self, application: Application, event: dict[str, Any]) -> None:
        self.gate = Gate(application.services.queues.client, "SendMessage")  # type: ignore[attr-defined]
        self.handled: Handled | None = None
        self._thread = threading.Thread(target=self._run, args=(application, event))
        self._thread.start()
        self.gate.wait()

    def _run(self, application: Application, event: dict[str, Any]) -> None:
        self.handled = application.process(event, None)

    def finish(self) -> str:
        """Let the attempt send and wait for its end: its ``outcome``."""
        self.gate.open()
        self._thread.join(30)
        assert self.handled is not None
        return outcome(self.handled)


@dataclass(frozen=True)
class EndState:
    """What one message left behind: its stage rows, its conversation's triggers and lock holder."""

    staged: int
    triggers: int
    holder: str | None

    def lock(self, message_sid: str) -> str:
        """``free``, ``held, sent`` (by this message, a trigger is pending), ``held, silent`` or ``other``."""
        if self.holder is None:
            return "free"
        if self.holder != message_sid:
            return "other"
        return "held, sent" if self.triggers else "held, silent"


def observe(world: Any, conversation_id: str, message_sid: str, queue: str = "whatsapp") -> EndState:
    """The end state of ``message_sid`` in ``world`` (a ``tests.support.world.World``), read consistently."""
    key = to_dynamo({"conversation_id": conversation_id})
    staged = world.dynamodb.query(
        TableName=world.resources.stage_table,
        KeyConditionExpression="conversation_id = :c AND message_sid = :m",
        ExpressionAttributeValues=to_dynamo({":c": conversation_id, ":m": message_sid}),
        ConsistentRead=True,
    )["Count"]
    lock = world.dynamodb.get_item(TableName=world.resources.lock_table, Key=key, ConsistentRead=True).get("Item")
    triggers = sum(1 for body, _ in world.sent(queue) if body.get("conversation_id") == conversation_id)
    return EndState(int(staged), triggers, lock["message_sid"]["S"] if lock else None)


ROOT = Path(__file__).resolve().parents[2]


def new_container(
    resources: Any, config: Any = None, session: Any = None, *, real_deadline: bool = False
) -> tuple[Any, FaultInjector]:
    """A fresh Lambda container (new clients, cold secret cache) and its injector.

    ``config`` (an ``AppConfig``, loaded from the environment when None) and ``session`` (a boto3 session,
    whose loaded service models new clients share) only save time: neither holds per-container state.
    Its deadline clock stands still (``tests.support.clock.install_clock``), as the conftest's containers' do,
    so load cannot spend the pipeline's budget; ``real_deadline`` keeps the real clock (tests about it).
    """
    from engine.config import load_config
    from runtime.app import Application, live_services
    from tests.support.clock import install_clock

    loaded = config or load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", os.environ)
    application = Application([loaded], live_services(loaded.aws, session=session))
    if not real_deadline:
        install_clock(application)
    injector = FaultInjector(application, resources)
    return application, injector


def twilio_delivery(application: Any, event: dict[str, Any]) -> str:
    """Deliver a Twilio ``event`` as the Lambda runtime would: ``200 OUTCOME``, ``raise CODE`` or ``crash``.

    A raise is a ``RetryableFailure`` naming the outcome (API Gateway answers 5xx, Twilio retries); any answer is
    the contract's 200 with empty TwiML.
    """
    try:
        handled = application.process(event, None)
    except SimulatedCrash:
        return "crash"
    if handled.raised is not None:
        assert isinstance(handled.raised, RetryableFailure), handled.raised
        assert str(handled.raised).startswith(handled.result.outcome)
        return f"raise {handled.raised.code}"
    assert handled.response == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/xml"},
        "body": EMPTY_TWIML,
        "isBase64Encoded": False,
    }
    return f"200 {handled.result.outcome}"


class BlackHole:
    """A TCP endpoint that accepts connections, reads requests and never answers (a hung AWS endpoint).

    ``requests`` counts the HTTP requests that reached it (each ``POST`` line).
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, name="black-hole", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> BlackHole:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self._connections:
            connection.close()
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                pass
            else:
                connection.setblocking(False)
                self._connections.append(connection)
            for connection in self._connections:
                try:
                    data = connection.recv(65536)
                except OSError:
                    continue
                self.requests += data.count(b"POST ")
