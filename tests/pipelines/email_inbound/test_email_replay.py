"""A captured SendGrid post cannot be replayed, inside the signature's window either; SendGrid's retries complete.

SendGrid signs a timestamp, but a post stays valid for ``EMAIL_SIGNATURE_MAX_AGE_SECONDS`` (4 days, covering
SendGrid's 72 hours of retries), so time cannot tell its retry from a replay. The email's record
(``replay.record`` with ``until: confirmed``) is pending until the run has succeeded (a repeat is a re-delivery,
so the retry of a run that died completes the email) and confirmed after (a repeat is a replay: 200, nothing
written or sent).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from unittest.mock import ANY

import pytest

from engine.config import inspect_config
from tests.deploy.cfn import load_template
from tests.support.email import COMPANY_EMAIL, USER_EMAIL, add_email_world, email_conversation, email_event
from tests.support.expect import ENV
from tests.support.faults import ROOT, SimulatedCrash
from tests.support.timeline import consume, later
from tools.localaws import put_items
from tools.sendgrid_events import MESSAGE_ID, Email


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return response["statusCode"], json.loads(response["body"])


def crash_on_send(aws) -> None:
    """The process dies when the trigger is about to be sent (the next SendMessage only)."""
    crashed: list[bool] = []

    def die(**_: Any) -> None:
        if not crashed:
            crashed.append(True)
            raise SimulatedCrash

    aws.clients["sqs"].meta.events.register("before-call.sqs.SendMessage", die)


def test_a_replay_inside_the_window_after_the_batch_was_taken_writes_and_sends_nothing(
    world, lambda_handler, aws, outcomes
):
    item = add_email_world(world)
    event = email_event()
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "QUEUED"})
    [record] = world.replay_rows()
    assert record["state"] == "confirmed" and record["message_sid"] == world.stage_rows()[0]["message_sid"]
    consume(world, item["conversation_id"])
    aws.calls.clear()

    later(300)  # well inside the signature's window
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "REPLAY"})

    assert outcomes() == [("QUEUED", None), ("REPLAY", None)]
    assert world.stage_rows() == [] and world.lock_rows() == []
    assert len(world.sent("email")) == 1
    assert aws.names() == ["dynamodb.Query", "dynamodb.BatchGetItem"]  # the record came with the conversation


def test_a_batched_email_is_confirmed_too(world, lambda_handler, outcomes):
    item = add_email_world(world)
    first = email_event(Email(message_id="<one@mail.example.net>"))
    second = email_event(Email(message_id="<two@mail.example.net>", text="and another thing"))
    lambda_handler(first, None)
    lambda_handler(second, None)
    consume(world, item["conversation_id"])
    for event in (second, first):
        lambda_handler(event, None)
    assert outcomes() == [("QUEUED", None), ("BATCHED", None), ("REPLAY", None), ("REPLAY", None)]
    assert {row["state"] for row in world.replay_rows()} == {"confirmed"}
    assert world.stage_rows() == [] and len(world.sent("email")) == 1


def test_sendgrids_retry_after_a_run_that_died_completes_the_email(world, lambda_handler, aws, outcomes):
    add_email_world(world)
    event = email_event()
    crash_on_send(aws)
    with pytest.raises(SimulatedCrash):
        lambda_handler(event, None)
    [pending] = world.replay_rows()
    assert pending["state"] == "pending" and world.sent("email") == []

    later(300)  # SendGrid's retry, minutes later
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "QUEUED"})
    [record] = world.replay_rows()
    assert record["state"] == "confirmed"
    assert len(world.stage_rows()) == 1 and len(world.sent("email")) == 1

    later(310)
    assert answer(lambda_handler(event, None))[1]["outcome"] == "REPLAY"
    assert len(world.sent("email")) == 1


def test_a_failed_run_releases_its_record_so_the_retry_completes(world, lambda_handler, aws, outcomes):
    add_email_world(world)
    event = email_event()
    aws.fail("sqs.SendMessage", "InternalError", 500, times=1)
    refused = {"status": "error", "error_code": "QUEUE_TRANSIENT_ERROR", "message": ANY}
    assert answer(lambda_handler(event, None)) == (503, refused) and world.replay_rows() == []
    later(120)
    assert answer(lambda_handler(event, None))[1]["outcome"] == "QUEUED"
    assert [row["state"] for row in world.replay_rows()] == ["confirmed"] and len(world.sent("email")) == 1


def test_a_confirmation_that_fails_leaves_the_record_pending_and_the_answer_stands(
    world, lambda_handler, aws, outcomes, caplog
):
    add_email_world(world)
    event = email_event()
    aws.fail(
        "dynamodb.PutItem",
        "ProvisionedThroughputExceededException",
        400,
        where=lambda params: params.get("Item", {}).get("state") == {"S": "confirmed"},
    )
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "QUEUED"})
    [record] = world.replay_rows()
    assert record["state"] == "pending"
    assert "confirmation confirm replay record failed: ProvisionedThroughputExceededException" in caplog.text
    # That one email's repeats are re-deliveries, as without a record: never refused, never lost.
    later(30)
    assert answer(lambda_handler(event, None))[1]["outcome"] == "QUEUED"
    assert len(world.stage_rows()) == 1


@pytest.mark.parametrize("message_id", [MESSAGE_ID, None], ids=["message_id", "no_message_id"])
def test_one_email_sent_to_two_parse_addresses_reaches_both_conversations(world, lambda_handler, outcomes, message_id):
    support = add_email_world(world)
    sales = email_conversation(
        conversation_id=f"ci-bbb-000#pi-bbb-000#{uuid.uuid4()}#{USER_EMAIL}",
        gsi_company_email_address="sales@parse.other.example",
    )
    put_items(world.dynamodb, world.resources.conversations_table, [sales])
    to = f"{COMPANY_EMAIL}, sales@parse.other.example"
    # SendGrid posts the email once per parse address: same Message-ID, one envelope recipient each.
    posts = [
        email_event(Email(to=to, message_id=message_id, envelope_to=(address,)))
        for address in (COMPANY_EMAIL, "sales@parse.other.example")
    ]
    for event in posts:
        assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "QUEUED"})

    rows = {row["conversation_id"]: row for row in world.stage_rows()}
    assert set(rows) == {support["conversation_id"], sales["conversation_id"]}
    assert rows[support["conversation_id"]]["message_sid"] != rows[sales["conversation_id"]]["message_sid"]
    assert sorted(message["conversation_id"] for message, _ in world.sent("email")) == sorted(rows)
    assert sorted(record["message_sid"] for record in world.replay_rows()) == sorted(
        row["message_sid"] for row in rows.values()
    )

    later(60)  # a re-delivery of either post is still the same message
    for event in reversed(posts):
        assert answer(lambda_handler(event, None))[1]["outcome"] == "REPLAY"
    assert len(world.stage_rows()) == 2 and len(world.sent("email")) == 2


# --- refusals ----------------------------------------------------------------------------------------------------

REFUSALS = [
    ({"conversation_status": "processing_reply"}, "CONVERSATION_LOCKED", 409),
    ({"project_status": "paused"}, "PROJECT_INACTIVE", 403),
    ({"allowed_channels": ["whatsapp"]}, "CHANNEL_NOT_ALLOWED", 403),
]


@pytest.mark.parametrize(("refusing", "code", "status"), REFUSALS)
@pytest.mark.parametrize("after", [1, 120])
def test_a_refused_email_replayed_after_the_conversation_changed_is_a_replay(
    world, lambda_handler, outcomes, refusing, code, status, after
):
    # SendGrid does not retry a 4xx: a repeat of a refused post is a capture replayed, inside the signature's window
    # as well, and must not be decided afresh once the conversation changed (the reply sent, the project resumed).
    item = add_email_world(world, **refusing)
    event = email_event()
    got, body = answer(lambda_handler(event, None))
    assert (got, body["error_code"]) == (status, code)
    [record] = world.replay_rows()
    assert record["state"] == "confirmed" and record["refused"] == code

    put_items(
        world.dynamodb,
        world.resources.conversations_table,
        [{**item, "conversation_status": "open", "project_status": "active", "allowed_channels": ["email"]}],
    )
    later(after)
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "REPLAY"})
    assert world.stage_rows() == [] and world.sent("email") == [] and world.lock_rows() == []


def test_a_transient_failure_is_not_recorded_and_sendgrids_retry_completes(world, lambda_handler, aws, outcomes):
    # SendGrid retries a 5xx: that email must stay open to its retry, never be recorded as refused.
    add_email_world(world)
    event = email_event()
    aws.fail("dynamodb.BatchGetItem", "ThrottlingException", 400, times=1)
    got, body = answer(lambda_handler(event, None))
    assert (got, body["error_code"]) == (503, "DB_TRANSIENT_ERROR")
    assert world.replay_rows() == []
    later(60)
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "QUEUED"})
    assert len(world.stage_rows()) == 1 and len(world.sent("email")) == 1


def test_a_screening_refusal_is_recorded_too(world, lambda_handler, outcomes):
    # SendGrid does not retry a 422 either: a repeat is a replay, whatever the screening rules say by then.
    add_email_world(world)
    event = email_event(Email(spam_score="9.1"))
    assert answer(lambda_handler(event, None))[1]["error_code"] == "EMAIL_REJECTED"
    [record] = world.replay_rows()
    assert record["refused"] == "EMAIL_REJECTED"
    later(5)
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "REPLAY"})


def test_sendgrids_retry_hours_after_a_transient_failure_completes_and_a_later_repeat_is_a_replay(
    world, lambda_handler, aws, outcomes
):
    # SendGrid retries a 5xx for up to 72 hours; a retry it did not re-sign still verifies, and once the email is
    # done its record, kept longer than the signature window, answers any repeat.
    add_email_world(world)
    event = email_event()
    aws.fail("sqs.SendMessage", "ThrottlingException", 400, times=1)
    got, body = answer(lambda_handler(event, None))
    assert (got, body["error_code"]) == (503, "QUEUE_TRANSIENT_ERROR")
    later(20 * 3600)
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "QUEUED"})
    later(2 * 86400)
    assert answer(lambda_handler(event, None)) == (200, {"status": "ok", "outcome": "REPLAY"})
    assert len(world.stage_rows()) == 1 and len(world.sent("email")) == 1


@pytest.mark.parametrize(
    ("max_age", "horizon", "refused"), [("700000", None, True), ("86400", "3600", True), ("86400", None, False)]
)
def test_a_signature_window_longer_than_the_replay_horizon_stops_the_configuration(
    max_age: str, horizon: str | None, refused: bool
) -> None:
    env = {**ENV, "EMAIL_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/email"}
    env["EMAIL_SIGNATURE_MAX_AGE_SECONDS"] = max_age
    if horizon is not None:
        env["REPLAY_HORIZON_SECONDS"] = horizon
    errors = inspect_config(ROOT / "pipelines" / "email_inbound.yaml", ROOT / "rules", env).errors
    if not refused:
        assert list(errors) == []
        return
    [error] = errors
    text = (ROOT / "pipelines" / "email_inbound.yaml").read_text().splitlines()
    assert (error.file, text[error.line - 1].strip().split(":")[0]) == (
        "pipelines/email_inbound.yaml",
        "max_age_seconds",
    )
    assert "is longer than the replay horizon" in error.message


def test_a_post_signed_ahead_of_our_clock_cannot_outlive_its_record_at_the_least_horizon(world, cold_start, outcomes):
    # SendGrid's clock may run up to 60 s ahead of ours (max_future_seconds), so a post stays valid up to 60 s past
    # the time its record's horizon counts from. At the template's least ReplayHorizonSeconds (the 4-day window
    # itself) the record expired first: once TTL had deleted it, the post sent again was QUEUED again.
    least = int(load_template()["Parameters"]["ReplayHorizonSeconds"]["MinValue"])
    container = cold_start(REPLAY_HORIZON_SECONDS=str(least))
    item = add_email_world(world)
    event = email_event(timestamp=int(time.time()) + 55)
    assert answer(container.handler(event, None)) == (200, {"status": "ok", "outcome": "QUEUED"})
    consume(world, item["conversation_id"])
    [record] = world.replay_rows()

    later(int(record["expires_at"]) - time.time() + 2)  # the record's life is over: TTL deletes it
    world.dynamodb.delete_item(
        TableName=world.resources.replay_table, Key={"message_sid": {"S": record["message_sid"]}}
    )
    got, body = answer(container.handler(event, None))

    assert (got, body.get("error_code"), body.get("outcome")) == (403, "INVALID_SIGNATURE", None)  # expired with it
    assert world.stage_rows() == [] and len(world.sent("email")) == 1
