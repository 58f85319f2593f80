"""Issue 15 (1): a request captured once (a proxy log, a ``mask=none`` capture) cannot be replayed.

Twilio signatures carry no timestamp. Each accepted ``MessageSid`` is recorded (``replay.record``, with the stage
row and the lock) for at least the replay horizon; the record is read in the same ``BatchGetItem`` as the
conversation, and a later identical request is answered with empty TwiML, writing and sending nothing. Within the
retry grace (Twilio retries within 15 s) a repeat is a re-delivery, so Twilio's retries after a fault still complete.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from runtime.app import ANSWER_MARGIN_SECONDS
from tests.support.bundles import BLOCK_RULES, with_new_business_code
from tests.support.expect import clock_window, raises_code, twiml_response
from tests.support.timeline import FixedClock, consume, later
from tests.support.webhooks import rest_event, whatsapp_params
from tools.localaws import to_dynamo

SID = "SM" + "5" * 32
HORIZON = 7 * 86400


def accepted_and_consumed(world, lambda_handler) -> tuple[dict[str, Any], dict[str, Any]]:
    """Message SID accepted and its batch consumed: its event, and the replay record it left."""
    item = world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    lambda_handler(event, None)
    consume(world, item["conversation_id"])
    [record] = world.replay_rows()
    return event, record


def test_a_replay_after_the_batch_completed_writes_and_sends_nothing(world, lambda_handler, aws, outcomes):
    event, record = accepted_and_consumed(world, lambda_handler)
    assert record["message_sid"] == SID and record["expires_at"] - record["recorded_at"] == HORIZON
    aws.calls.clear()

    later(3600)
    assert lambda_handler(event, None) == twiml_response()

    assert outcomes() == [("QUEUED", None), ("REPLAY", None)]
    assert world.stage_rows() == [] and world.lock_rows() == []
    assert len(world.sent("whatsapp")) == 1
    # The record came with the conversation, in one call; nothing was written or sent.
    assert aws.names() == ["dynamodb.Query", "dynamodb.BatchGetItem"]
    [batch] = aws.of("dynamodb.BatchGetItem")
    assert set(batch["RequestItems"]) == {world.resources.conversations_table, world.resources.replay_table}


def test_five_replays_of_a_handoff_send_one_handoff(world, lambda_handler, outcomes):
    world.add_conversation(hand_off_to_human=True)
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    lambda_handler(event, None)
    later(60)
    for _ in range(4):
        lambda_handler(event, None)
    assert outcomes() == [("HANDED_OFF", None)] + [("REPLAY", None)] * 4
    assert len(world.sent("handoff")) == 1


def test_a_replay_of_a_batched_message_is_refused_too(world, lambda_handler, outcomes):
    item = world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "4" * 32)), None)
    batched = rest_event("whatsapp", whatsapp_params(sid=SID, body="second"))
    lambda_handler(batched, None)
    consume(world, item["conversation_id"])
    later(120)
    lambda_handler(batched, None)
    assert outcomes() == [("QUEUED", None), ("BATCHED", None), ("REPLAY", None)]
    assert world.stage_rows() == [] and len(world.sent("whatsapp")) == 1


def test_twilios_retry_after_a_transient_fault_still_completes(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    aws.fail("sqs.SendMessage", "InternalError", 500, times=1)
    raises_code("QUEUE_TRANSIENT_ERROR", lambda: lambda_handler(event, None))
    assert world.replay_rows() == []  # released with the lock
    later(10)
    with clock_window() as window:
        lambda_handler(event, None)
    assert outcomes() == [("QUEUE_TRANSIENT_ERROR", "QUEUE_TRANSIENT_ERROR"), ("QUEUED", None)]
    assert len(world.sent("whatsapp")) == 1
    [record] = world.replay_rows()  # the retry's own acceptance, 10 s on (bracketed: however long the run took)
    assert window[0] + 10 <= record["recorded_at"] <= window[1] + 10


@pytest.mark.parametrize(
    ("fault", "failure"),
    [
        (("sqs.SendMessage", "InternalError", 500), ("QUEUE_TRANSIENT_ERROR", "QUEUE_TRANSIENT_ERROR")),
        (("sqs.SendMessage", "AccessDenied", 403), ("QUEUE_ERROR", "QUEUE_ERROR")),
    ],
)
def test_a_failed_redelivery_leaves_the_first_acceptances_record(world, lambda_handler, aws, outcomes, fault, failure):
    # The record belongs to the run that wrote it: a repeat that fails must not reopen the message to replays.
    event, accepted = accepted_and_consumed(world, lambda_handler)

    later(10)
    operation, code, status = fault
    aws.fail(operation, code, status, times=1)
    with contextlib.suppress(Exception):  # a transient fault is raised for Twilio to retry
        lambda_handler(event, None)
    assert outcomes()[-1] == failure
    assert world.replay_rows() == [accepted]

    later(3600)
    assert lambda_handler(event, None) == twiml_response()
    assert outcomes()[-1] == ("REPLAY", None)
    assert len(world.sent("whatsapp")) == 1


def test_a_release_never_deletes_a_record_another_run_wrote_since(world, lambda_handler, aws, outcomes):
    # This run's record write failed with its outcome unknown (a 5xx: it may have landed), so the run releases it as
    # it fails; meanwhile another delivery recorded the message. The release is conditional on this run's writer id.
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    theirs = {"message_sid": SID, "recorded_at": int(time.time()), "replay_after": 0, "expires_at": 2**31}

    def recorded_by_another_run(params: dict) -> bool:
        if params.get("TableName") != world.resources.replay_table:
            return False
        world.dynamodb.put_item(TableName=world.resources.replay_table, Item=to_dynamo(theirs))
        return True

    aws.fail("dynamodb.PutItem", "InternalServerError", 500, where=recorded_by_another_run)
    raises_code("STAGE_WRITE_TRANSIENT_ERROR", lambda: lambda_handler(event, None))
    assert world.replay_rows() == [theirs]
    assert aws.count("dynamodb.DeleteItem") == 2  # the lock's release, and the record's (which found theirs)


def frozen_at(seconds: float) -> FixedClock:
    """The container's wall clock, frozen ``seconds`` into the current second (moved on by hand)."""
    import handler

    clock = FixedClock(datetime.fromtimestamp(int(time.time()) + seconds, UTC))
    handler._application.replace_services(clock=clock)
    return clock


@pytest.mark.parametrize(
    ("code", "status", "released"),
    [("ProvisionedThroughputExceededException", 400, False), ("InternalServerError", 500, True)],
    ids=["refused", "outcome_unknown"],
)
def test_a_copy_whose_record_write_failed_keeps_the_record_a_copy_wrote_in_the_same_second(
    world, lambda_handler, aws, outcomes, code, status, released
):
    # Ownership was the acceptance's second (recorded_at): a second copy whose own write failed in that same second
    # deleted the first copy's record as it failed, and a capture replayed after the grace was accepted again. A
    # write refused with an error answer (throttled) wrote nothing: it releases nothing. One whose outcome is unknown
    # releases only a record carrying its own run's writer id.
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    clock = frozen_at(0.1)
    lambda_handler(event, None)
    [accepted] = world.replay_rows()

    clock.advance(0.8)  # the same second
    aws.calls.clear()
    aws.fail("dynamodb.PutItem", code, status, where=lambda params: params["TableName"] == world.resources.replay_table)
    raises_code("STAGE_WRITE_TRANSIENT_ERROR", lambda: lambda_handler(event, None))
    assert world.replay_rows() == [accepted]
    record_releases = [p for p in aws.of("dynamodb.DeleteItem") if p["TableName"] == world.resources.replay_table]
    assert len(record_releases) == int(released)

    clock.advance(3600)
    assert lambda_handler(event, None) == twiml_response()
    assert outcomes()[-1] == ("REPLAY", None)
    assert len(world.sent("whatsapp")) == 1


def test_a_redelivery_that_completes_the_message_takes_its_record_over(world, lambda_handler, aws, outcomes):
    # The first attempt may still be running on another container, and release its record when it fails: the
    # re-delivery that completed the message writes the record as its own (one more write, re-deliveries only),
    # keeping the first acceptance's replay_after.
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    lambda_handler(event, None)
    [first] = world.replay_rows()
    writes = aws.count("dynamodb.PutItem")

    later(10)
    aws.calls.clear()
    lambda_handler(event, None)
    assert outcomes() == [("QUEUED", None), ("QUEUED", None)]
    [taken] = world.replay_rows()
    assert taken["writer"] != first["writer"] and taken["replay_after"] == first["replay_after"]
    assert aws.count("dynamodb.PutItem") == writes + 1 and aws.count("dynamodb.DeleteItem") == 0
    assert aws.of("dynamodb.PutItem")[-1]["Item"]["writer"] == {"S": taken["writer"]}


@pytest.mark.parametrize(("seconds", "outcome"), [(10, "QUEUED"), (31, "REPLAY")])
def test_a_repeat_within_the_retry_grace_is_a_redelivery(world, lambda_handler, outcomes, seconds, outcome):
    # A crash after the stage group leaves the record but no trigger: Twilio's retry (within 15 s) must complete it.
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    lambda_handler(event, None)
    [first] = world.replay_rows()
    assert first["replay_after"] - 30 <= int(time.time()) + 1  # the acceptance's (next whole) second
    later(seconds)
    lambda_handler(event, None)
    assert outcomes() == [("QUEUED", None), (outcome, None)]
    assert len(world.stage_rows()) == 1
    assert len(world.sent("whatsapp")) == (2 if outcome == "QUEUED" else 1)
    # A repeat never moves the first acceptance's time: replays cannot keep a message in its grace.
    [record] = world.replay_rows()
    assert record["replay_after"] == first["replay_after"]


def test_a_repeat_inside_the_grace_is_a_redelivery_whatever_the_acceptances_fraction_of_a_second(
    world, lambda_handler, outcomes
):
    # The grace ran from the acceptance's whole second: accepted at .9 s, a repeat 29.5 s later (inside the 30 s
    # grace; with retry_grace_seconds 15, Twilio's own retry after 14.5 s) was refused as a replay, and a message
    # whose first run died after recording it was lost.
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    clock = frozen_at(0.9)
    lambda_handler(event, None)
    [first] = world.replay_rows()

    clock.advance(29.5)
    lambda_handler(event, None)
    assert outcomes() == [("QUEUED", None), ("QUEUED", None)]
    assert len(world.sent("whatsapp")) == 2
    [record] = world.replay_rows()
    assert record["replay_after"] == first["replay_after"]

    clock.advance(0.6)  # 30.1 s after the acceptance: past the grace
    lambda_handler(event, None)
    assert outcomes()[-1] == ("REPLAY", None)
    assert len(world.sent("whatsapp")) == 2


def test_a_status_callback_is_not_recorded(world, lambda_handler, outcomes):
    from tests.support.webhooks import status_params

    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", status_params()), None)
    assert outcomes() == [("STATUS_CALLBACK", None)] and world.replay_rows() == []


@pytest.mark.parametrize(
    ("refused", "reopened", "code"),
    [
        ({"conversation_status": "processing_reply"}, {"conversation_status": "open"}, "CONVERSATION_LOCKED"),
        ({"project_status": "paused"}, {"project_status": "active"}, "PROJECT_INACTIVE"),
    ],
)
def test_a_refused_message_cannot_be_replayed_once_the_conversation_changed(
    world, lambda_handler, outcomes, refused, reopened, code
):
    first = world.add_conversation(**refused)
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    lambda_handler(event, None)
    [record] = world.replay_rows()
    assert (record["message_sid"], record["refused"]) == (SID, code)
    world.add_conversation(**{**first, **reopened})
    assert len(world.conversations()) == 1

    later(3600)
    assert lambda_handler(event, None) == twiml_response()
    assert outcomes() == [(code, code), ("REPLAY", None)]
    assert world.stage_rows() == [] and world.all_sent() == {name: [] for name in world.all_sent()}


def test_a_refusal_whose_record_cannot_be_written_is_still_answered(world, lambda_handler, aws, outcomes):
    world.add_conversation(conversation_status="processing_reply")
    world.add_default_secrets()
    aws.fail("dynamodb.PutItem", "ProvisionedThroughputExceededException", 400, times=10)
    reply = lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID)), None)
    assert "Please wait" in reply["body"]
    assert outcomes() == [("CONVERSATION_LOCKED", "CONVERSATION_LOCKED")] and world.replay_rows() == []


def test_a_message_lost_to_a_fault_is_not_recorded_as_refused(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    aws.fail("sqs.SendMessage", "AccessDenied", 403, times=10)
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID)), None)
    assert outcomes() == [("QUEUE_ERROR", "QUEUE_ERROR")]
    assert world.replay_rows() == []  # free: a replay after the repair completes the message


def test_a_refusal_with_a_new_business_code_is_recorded_too(world, task_root, outcomes):
    # A rule deciding a code declared under errors: refuses as the shipped ones do: the refusals step records it
    # without its codes: being edited too (a rules bundle may not change that step's parameters).
    from tests.support.expect import ROOT

    pipeline = with_new_business_code((ROOT / "pipelines" / "twilio_inbound.yaml").read_text())
    container = task_root({"pipelines/twilio_inbound.yaml": pipeline, "rules/35_user_block.yaml": BLOCK_RULES})
    first = world.add_conversation(user_blocked=True)
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(sid=SID))
    container.handler(event, None)
    [record] = world.replay_rows()
    assert (record["message_sid"], record["refused"]) == (SID, "USER_BLOCKED")

    world.add_conversation(**{**first, "user_blocked": False})
    later(3600)
    assert container.handler(event, None) == twiml_response()
    assert outcomes() == [("USER_BLOCKED", "USER_BLOCKED"), ("REPLAY", None)]
    assert world.stage_rows() == [] and world.all_sent() == {name: [] for name in world.all_sent()}


def test_a_rule_deciding_a_code_that_loses_messages_is_not_recorded_as_a_refusal(world, task_root, outcomes):
    # ROUTING_ERROR (rules.route's, loses_message): a replay after the repair must still complete the message.
    from tests.support.expect import ROOT

    pipeline = (
        (ROOT / "pipelines" / "twilio_inbound.yaml")
        .read_text()
        .replace("conversation_lock]", "conversation_lock, user_block]", 1)
    )
    rules = BLOCK_RULES.replace("error: USER_BLOCKED", "error: ROUTING_ERROR")
    container = task_root({"pipelines/twilio_inbound.yaml": pipeline, "rules/35_user_block.yaml": rules})
    world.add_conversation(user_blocked=True)
    world.add_default_secrets()
    container.handler(rest_event("whatsapp", whatsapp_params(sid=SID)), None)
    assert outcomes() == [("ROUTING_ERROR", "ROUTING_ERROR")] and world.replay_rows() == []


@pytest.mark.parametrize("run_later", [later, frozen_at], ids=["later", "frozen_at"])
def test_a_container_run_later_spends_no_time_budget_on_a_slow_machine(world, lambda_handler, aws, outcomes, run_later):
    # later() and frozen_at move the wall clock; the deadline clock must stay the fixtures' stepped one, or a loaded
    # machine spends the budget of the event run later: here 0.1 s left by the Lambda, and a secret fetch of 0.2 s.
    world.add_conversation()
    world.add_default_secrets()
    run_later(60)
    aws.before("secretsmanager.GetSecretValue", lambda _: time.sleep(0.2))
    context = SimpleNamespace(
        aws_request_id="req-later", get_remaining_time_in_millis=lambda: (ANSWER_MARGIN_SECONDS + 0.1) * 1000
    )
    assert lambda_handler(rest_event("whatsapp", whatsapp_params(sid=SID)), context) == twiml_response()
    assert outcomes() == [("QUEUED", None)]
