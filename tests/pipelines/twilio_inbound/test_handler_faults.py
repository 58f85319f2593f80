"""AWS faults end to end, produced by real mechanisms: moto resources that do not exist, and botocore
event hooks on the application's own clients answering like a throttled or failing AWS (no fake AWS).

Transient codes raise (the exception text carries the code); final codes answer empty TwiML.
A lock taken before the failure is released again (contract §2, trigger-lock).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support.expect import raises_code, twiml_response
from tests.support.webhooks import USER, rest_event, sms_params, whatsapp_params


@dataclass(frozen=True)
class Fault:
    id: str
    operation: str  # service.Operation
    aws_code: str
    status: int
    code: str  # the contract's error code
    table: str | None = None  # only PutItem calls on this table ("stage" / "lock" / "replay")
    handoff: bool = False


T, F = True, False
FAULTS = [
    Fault("query_throughput", "dynamodb.Query", "ProvisionedThroughputExceededException", 400, "DB_TRANSIENT_ERROR"),
    Fault("query_throttling", "dynamodb.Query", "ThrottlingException", 400, "DB_TRANSIENT_ERROR"),
    Fault("query_500", "dynamodb.Query", "InternalServerError", 500, "DB_TRANSIENT_ERROR"),
    Fault("query_503", "dynamodb.Query", "ServiceUnavailable", 503, "DB_TRANSIENT_ERROR"),
    Fault("query_denied", "dynamodb.Query", "AccessDeniedException", 400, "DB_QUERY_ERROR"),
    Fault("query_validation", "dynamodb.Query", "ValidationException", 400, "DB_QUERY_ERROR"),
    Fault(
        "get_throughput", "dynamodb.BatchGetItem", "ProvisionedThroughputExceededException", 400, "DB_TRANSIENT_ERROR"
    ),
    Fault("get_request_limit", "dynamodb.BatchGetItem", "RequestLimitExceeded", 400, "DB_TRANSIENT_ERROR"),
    Fault("get_500", "dynamodb.BatchGetItem", "InternalServerError", 500, "DB_TRANSIENT_ERROR"),
    Fault("get_denied", "dynamodb.BatchGetItem", "AccessDeniedException", 400, "DB_QUERY_ERROR"),
    Fault("get_not_found", "dynamodb.BatchGetItem", "ResourceNotFoundException", 400, "DB_QUERY_ERROR"),
    Fault(
        "secret_throttling", "secretsmanager.GetSecretValue", "ThrottlingException", 400, "SECRET_FETCH_TRANSIENT_ERROR"
    ),
    Fault("secret_500", "secretsmanager.GetSecretValue", "InternalServiceError", 500, "SECRET_FETCH_TRANSIENT_ERROR"),
    Fault("secret_denied", "secretsmanager.GetSecretValue", "AccessDeniedException", 400, "SECRET_FETCH_FAILED"),
    Fault("secret_kms", "secretsmanager.GetSecretValue", "DecryptionFailure", 400, "SECRET_FETCH_FAILED"),
    Fault("secret_not_found", "secretsmanager.GetSecretValue", "ResourceNotFoundException", 400, "SECRET_FETCH_FAILED"),
    Fault(
        "stage_throughput",
        "dynamodb.PutItem",
        "ProvisionedThroughputExceededException",
        400,
        "STAGE_WRITE_TRANSIENT_ERROR",
        "stage",
    ),
    Fault("stage_500", "dynamodb.PutItem", "InternalServerError", 500, "STAGE_WRITE_TRANSIENT_ERROR", "stage"),
    Fault("stage_denied", "dynamodb.PutItem", "AccessDeniedException", 400, "STAGE_WRITE_ERROR", "stage"),
    Fault("stage_validation", "dynamodb.PutItem", "ValidationException", 400, "STAGE_WRITE_ERROR", "stage"),
    Fault(
        "handoff_stage_500", "dynamodb.PutItem", "InternalServerError", 500, "STAGE_WRITE_TRANSIENT_ERROR", "stage", T
    ),
    Fault(
        "lock_throughput",
        "dynamodb.PutItem",
        "ProvisionedThroughputExceededException",
        400,
        "TRIGGER_LOCK_TRANSIENT_ERROR",
        "lock",
    ),
    Fault("lock_503", "dynamodb.PutItem", "ServiceUnavailable", 503, "TRIGGER_LOCK_TRANSIENT_ERROR", "lock"),
    Fault("lock_denied", "dynamodb.PutItem", "AccessDeniedException", 400, "TRIGGER_LOCK_WRITE_ERROR", "lock"),
    Fault("replay_500", "dynamodb.PutItem", "InternalServerError", 500, "STAGE_WRITE_TRANSIENT_ERROR", "replay"),
    Fault("replay_denied", "dynamodb.PutItem", "AccessDeniedException", 400, "STAGE_WRITE_ERROR", "replay"),
    Fault("handoff_replay_denied", "dynamodb.PutItem", "AccessDeniedException", 400, "STAGE_WRITE_ERROR", "replay", T),
    Fault("send_throttled", "sqs.SendMessage", "RequestThrottled", 403, "QUEUE_TRANSIENT_ERROR"),
    Fault("send_500", "sqs.SendMessage", "InternalError", 500, "QUEUE_TRANSIENT_ERROR"),
    Fault("send_503", "sqs.SendMessage", "ServiceUnavailable", 503, "QUEUE_TRANSIENT_ERROR"),
    Fault("send_denied", "sqs.SendMessage", "AccessDenied", 403, "QUEUE_ERROR"),
    Fault("send_kms", "sqs.SendMessage", "KmsAccessDenied", 400, "QUEUE_ERROR"),
    Fault("handoff_send_500", "sqs.SendMessage", "InternalError", 500, "QUEUE_TRANSIENT_ERROR", None, T),
    Fault("handoff_send_denied", "sqs.SendMessage", "AccessDenied", 403, "QUEUE_ERROR", None, T),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.id for fault in FAULTS])
def test_aws_fault(world, lambda_handler, aws, outcomes, fault):
    item = world.add_conversation(hand_off_to_human=fault.handoff)
    world.add_default_secrets()
    tables = {
        "stage": world.resources.stage_table,
        "lock": world.resources.lock_table,
        "replay": world.resources.replay_table,
    }
    where = (lambda params: params.get("TableName") == tables[fault.table]) if fault.table else None
    aws.fail(fault.operation, fault.aws_code, fault.status, where=where)
    event = rest_event("whatsapp", whatsapp_params())

    if fault.code.endswith("TRANSIENT_ERROR"):
        error = raises_code(fault.code, lambda: lambda_handler(event, None))
        assert str(error).startswith(fault.code)
    else:
        assert lambda_handler(event, None) == twiml_response()
    assert outcomes() == [(fault.code, fault.code)]
    # Nothing was triggered, and no lock is left behind for the retry to trip over.
    assert not any(world.all_sent().values())
    assert world.lock_rows() == []
    # Nor a replay record that would refuse the retry (or a replay after a repair) as a replay.
    assert world.replay_rows() == []
    if fault.code.startswith("TRIGGER_LOCK") or fault.operation == "sqs.SendMessage":
        # The stage write ran (it is issued with the lock); a retry finds it and leaves one row.
        assert [row["conversation_id"] for row in world.stage_rows()] == [item["conversation_id"]]
    if fault.code.startswith("QUEUE") and not fault.handoff:
        # The lock had been taken: it was released, conditionally on this message holding it.
        [delete] = [d for d in aws.of("dynamodb.DeleteItem") if d["TableName"] == world.resources.lock_table]
        assert delete["Key"] == {"conversation_id": {"S": item["conversation_id"]}}
        assert "ConditionExpression" in delete
        assert {"S": whatsapp_params()["MessageSid"]} in delete["ExpressionAttributeValues"].values()


def test_read_timeouts_are_retried_within_the_configured_attempts_then_transient(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    aws.time_out("dynamodb.Query")
    raises_code("DB_TRANSIENT_ERROR", lambda: lambda_handler(rest_event("sms", sms_params()), None))
    # pipelines/twilio_inbound.yaml: aws.max_attempts = 2 (first try included).
    assert aws.attempts == ["dynamodb.Query", "dynamodb.Query"]
    assert outcomes() == [("DB_TRANSIENT_ERROR", "DB_TRANSIENT_ERROR")]


def test_send_timeout_releases_the_lock(world, lambda_handler, aws):
    world.add_conversation()
    world.add_default_secrets()
    aws.time_out("sqs.SendMessage")
    raises_code("QUEUE_TRANSIENT_ERROR", lambda: lambda_handler(rest_event("whatsapp", whatsapp_params()), None))
    assert len(aws.attempts) == 2
    assert world.lock_rows() == []
    assert len(world.stage_rows()) == 1


def test_secret_timeout_is_transient(world, lambda_handler, aws):
    world.add_conversation()
    world.add_default_secrets()
    aws.time_out("secretsmanager.GetSecretValue")
    raises_code("SECRET_FETCH_TRANSIENT_ERROR", lambda: lambda_handler(rest_event("whatsapp", whatsapp_params()), None))


# Missing resources: the real errors moto answers with.
MISSING = [
    ("conversations_table", "DB_QUERY_ERROR"),
    ("stage_table", "STAGE_WRITE_ERROR"),
    ("lock_table", "TRIGGER_LOCK_WRITE_ERROR"),
    ("whatsapp_queue", "QUEUE_ERROR"),
    ("handoff_queue", "QUEUE_ERROR"),
]


@pytest.mark.parametrize(("missing", "code"), MISSING)
def test_missing_resource(world, lambda_handler, aws, outcomes, missing, code):
    world.add_conversation(hand_off_to_human=missing == "handoff_queue")
    world.add_default_secrets()
    name, kind = missing.rsplit("_", 1)
    if kind == "table":
        world.delete_table(
            {
                "conversations": world.resources.conversations_table,
                "stage": world.resources.stage_table,
                "lock": world.resources.lock_table,
            }[name]
        )
    else:
        world.delete_queue(name)

    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()

    assert outcomes() == [(code, code)]
    if name != "lock":
        assert world.lock_rows() == []
    if name not in ("whatsapp", "handoff"):
        assert not any(world.all_sent().values())


def test_conversation_vanished_between_query_and_get(world, lambda_handler, aws, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    aws.before("dynamodb.BatchGetItem", lambda params: world.delete_conversation(USER, item["conversation_id"]))
    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert outcomes() == [("CONVERSATION_NOT_FOUND", "CONVERSATION_NOT_FOUND")]
    assert world.stage_rows() == []


def test_unexpected_exception_in_a_client_is_an_internal_error(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()

    def explode(params):
        raise RuntimeError("a bug, not an AWS error")

    aws.before("dynamodb.BatchGetItem", explode)
    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert outcomes() == [("INTERNAL_ERROR", "INTERNAL_ERROR")]


def test_internal_error_after_the_lock_releases_it(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()

    def explode(params):
        raise RuntimeError("a bug while sending")

    aws.before("sqs.SendMessage", explode)
    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert outcomes() == [("INTERNAL_ERROR", "INTERNAL_ERROR")]
    assert world.lock_rows() == []


def test_transient_fault_then_retry_succeeds(world, lambda_handler, aws, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    aws.fail("dynamodb.BatchGetItem", "ProvisionedThroughputExceededException", times=1)
    event = rest_event("whatsapp", whatsapp_params())
    raises_code("DB_TRANSIENT_ERROR", lambda: lambda_handler(event, None))
    assert lambda_handler(event, None) == twiml_response()
    assert outcomes() == [("DB_TRANSIENT_ERROR", "DB_TRANSIENT_ERROR"), ("QUEUED", None)]
    assert world.sent("whatsapp") == [({"conversation_id": item["conversation_id"], "primary_channel": USER}, 10)]


def test_an_error_the_service_models_as_retryable_is_transient(world, lambda_handler, aws, outcomes):
    # botocore retries ReplicatedWriteConflictException (modeled retryable): once the attempts are spent it is
    # transient, so Twilio retries, not a final STAGE_WRITE_ERROR that answers 200 and loses the message.
    world.add_conversation()
    world.add_default_secrets()
    stage = world.resources.stage_table
    aws.fail(
        "dynamodb.PutItem", "ReplicatedWriteConflictException", where=lambda params: params.get("TableName") == stage
    )
    raises_code("STAGE_WRITE_TRANSIENT_ERROR", lambda: lambda_handler(rest_event("whatsapp", whatsapp_params()), None))
    assert outcomes() == [("STAGE_WRITE_TRANSIENT_ERROR", "STAGE_WRITE_TRANSIENT_ERROR")]
    assert world.lock_rows() == [] and world.replay_rows() == []
