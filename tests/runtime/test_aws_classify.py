"""An AWS error is transient exactly when botocore's standard retry mode would retry it (contract §4).

The oracle is botocore's own ``StandardRetryConditions``, asked about the same answer to the same operation;
the error reaches the adapter as it does in the Lambda (a client configured as the Lambda's, its answer given by
a botocore hook).
Before the fix, an error the service models as retryable (DynamoDB's ``ReplicatedWriteConflictException``)
and a 429 whose code the operation does not model were final: a stage write answered 200 and lost the message.

A failed write's outcome is unknown (it may have been applied) when an attempt got no answer or a 5xx one;
error answers alone (throttling) mean nothing was written: ``replay.record`` releases a record only then.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff, RetryContext, StandardRetryConditions

from engine.calls import CallLimits
from engine.ports import ServiceError
from runtime.aws import DynamoTables, SecretsManagerStore, SqsQueues, botocore_config, make_client
from tests.support.aws import error_response
from tests.support.faults import error_answer

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/q"
CALLS: dict[str, Callable[[Any], Any]] = {
    "dynamodb.PutItem": lambda client: DynamoTables(client).put_item("t", {"k": "v"}),
    "dynamodb.DeleteItem": lambda client: DynamoTables(client).delete_item("t", {"k": "v"}),
    "dynamodb.Query": lambda client: list(DynamoTables(client).query_pages("t", "i", {"k": "v"})),
    "sqs.SendMessage": lambda client: SqsQueues(client).send_message(QUEUE_URL, "{}", 0),
    "secretsmanager.GetSecretValue": lambda client: SecretsManagerStore(client).get_secret_string("s"),
}
CASES = [
    ("dynamodb.PutItem", "ProvisionedThroughputExceededException", 400),
    ("dynamodb.PutItem", "ReplicatedWriteConflictException", 400),
    ("dynamodb.DeleteItem", "ReplicatedWriteConflictException", 400),
    ("dynamodb.PutItem", "TransactionConflictException", 400),
    ("dynamodb.PutItem", "ValidationException", 400),
    ("dynamodb.PutItem", "InternalServerError", 500),
    ("dynamodb.Query", "ThrottlingException", 400),
    ("dynamodb.Query", "SlowDownPlease", 429),
    ("dynamodb.Query", "ResourceNotFoundException", 400),
    ("sqs.SendMessage", "RequestThrottled", 403),
    ("sqs.SendMessage", "TooManyRequests", 429),
    ("sqs.SendMessage", "AccessDenied", 403),
    ("secretsmanager.GetSecretValue", "InternalServiceError", 500),
    ("secretsmanager.GetSecretValue", "TooManyRequests", 429),
    ("secretsmanager.GetSecretValue", "ResourceNotFoundException", 400),
]


def _botocore_retries(client: Any, operation: str, code: str, status: int) -> bool:
    http, parsed = error_response(code, status)
    context = RetryContext(
        attempt_number=1,
        operation_model=client.meta.service_model.operation_model(operation),
        parsed_response=parsed,
        http_response=http,
    )
    return bool(StandardRetryConditions(max_attempts=2).is_retryable(context))


@pytest.mark.parametrize(("call", "code", "status"), CASES, ids=[f"{c}-{code}-{s}" for c, code, s in CASES])
def test_an_error_is_transient_exactly_when_botocore_retries_it(call: str, code: str, status: int) -> None:
    service, operation = call.split(".")
    client = boto3.session.Session(region_name="us-east-1").client(service, config=botocore_config(CallLimits()))
    client.meta.events.register(
        f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}",
        lambda **_: error_response(code, status),
    )

    with pytest.raises(ServiceError) as raised:
        CALLS[call](client)

    assert raised.value.code == code
    assert raised.value.transient == _botocore_retries(client, operation, code, status)


# What each attempt of a PutItem meets: an error answer, or no answer (the read timed out).
ATTEMPTS = {
    "throttled twice": (("throttling", "throttling"), False),
    "refused": (("access_denied",), False),
    "throttled, then refused": (("throttling", "access_denied"), False),
    "5xx twice": (("server_error", "server_error"), True),
    "timed out twice": (("read_timeout", "read_timeout"), True),
    "timed out, then throttled": (("read_timeout", "throttling"), True),
    "5xx, then throttled": (("server_error", "throttling"), True),
}


@pytest.mark.parametrize(("answers", "unknown"), ATTEMPTS.values(), ids=ATTEMPTS.keys())
def test_a_write_may_have_been_applied_when_an_attempt_got_no_answer_or_a_5xx(
    monkeypatch: pytest.MonkeyPatch, answers: tuple[str, ...], unknown: bool
) -> None:
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    session = boto3.session.Session(region_name="us-east-1")
    client = make_client("dynamodb", session, botocore_config(CallLimits()), lambda **_: None)
    left = list(answers)

    def answer(request: Any, **_: Any) -> AWSResponse:
        kind = left.pop(0)
        if kind == "read_timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        return error_answer("dynamodb", kind, request.url)

    client.meta.events.register_first("before-send.dynamodb.PutItem", answer)

    with pytest.raises(ServiceError) as raised:
        DynamoTables(client).put_item("t", {"k": "v"})

    assert left == []
    assert raised.value.outcome_unknown is unknown


def refused_port() -> int:
    """A local port nothing listens on (bound, then closed): a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_refused_connection_is_retried_then_transient(monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    # No answer at all (the endpoint refuses the connection, as a VPC endpoint being replaced does): botocore retries
    # it, and once the attempts are spent the call is transient, so the provider retries the delivery.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    limits = CallLimits()
    session = boto3.session.Session(region_name="us-east-1")
    service = call.split(".")[0]
    client = session.client(service, endpoint_url=f"http://127.0.0.1:{refused_port()}", config=botocore_config(limits))
    attempts: list[str] = []
    client.meta.events.register("before-send", lambda **_: attempts.append(call))

    with pytest.raises(ServiceError) as raised:
        CALLS[call](client)

    assert (raised.value.kind, raised.value.code) == ("transient", "EndpointConnectionError")
    assert len(attempts) == limits.max_attempts
