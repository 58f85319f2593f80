"""What the email pipeline writes and sends, held to the contract's shapes (§1 environment, §2 rows and messages).

The email channel shares the stage table, the trigger lock and the trigger message with the Twilio channels
(docs/email.md): the same attributes and types, the same environment (window, lease buffer, stage TTL), the
trigger's exact text with no message attributes, and the handoff's top-level fields.
"""

from __future__ import annotations

import json

from tests.support.email import USER_EMAIL, add_email_world, email_event
from tests.support.expect import HANDOFF_TOP_LEVEL, clock_window, parse_received_at


def test_the_environment_sets_the_emails_window_lease_and_stage_ttl_and_the_trigger_is_the_contracts_text(
    world, cold_start
):
    container = cold_start(BATCH_WINDOW_SECONDS="25", TTL_BUFFER_SECONDS="7", STAGE_TTL_SECONDS="3600")
    item = add_email_world(world)

    with clock_window() as window:
        response = container.handler(email_event(), None)

    assert (response["statusCode"], json.loads(response["body"])) == (200, {"status": "ok", "outcome": "QUEUED"})
    expected = f'{{"conversation_id": "{item["conversation_id"]}", "primary_channel": "{USER_EMAIL}"}}'
    assert world.sent_raw("email") == [expected]
    [send] = container.aws.of("sqs.SendMessage")
    assert send == {"QueueUrl": world.queue_url("email"), "MessageBody": expected, "DelaySeconds": 25}
    [lock] = world.lock_rows()
    assert window[0] + 25 + 7 <= lock["expires_at"] <= window[1] + 25 + 7
    [row] = world.stage_rows()
    assert window[0] <= parse_received_at(row["received_at"]) <= window[1]
    assert window[0] + 3600 <= row["expires_at"] <= window[1] + 3600
    assert (row["channel_type"], row["primary_channel"]) == ("email", USER_EMAIL)


def test_an_email_handoff_carries_the_contracts_fields_with_no_delay_and_no_attributes(world, lambda_handler, aws):
    item = add_email_world(world, hand_off_to_human=True)

    response = lambda_handler(email_event(), None)

    assert json.loads(response["body"]) == {"status": "ok", "outcome": "HANDED_OFF"}
    [raw] = world.sent_raw("handoff")
    message = json.loads(raw)
    assert set(message) == HANDOFF_TOP_LEVEL  # a text that was not cut adds no body_truncated / body_bytes
    [row] = world.stage_rows()
    assert (message["conversation_id"], message["message_sid"], message["received_at"]) == (
        item["conversation_id"],
        row["message_sid"],
        row["received_at"],
    )
    assert (message["channel_type"], message["primary_channel"]) == ("email", USER_EMAIL)
    [send] = aws.of("sqs.SendMessage")
    assert send == {"QueueUrl": world.queue_url("handoff"), "MessageBody": raw, "DelaySeconds": 0}
    assert world.lock_rows() == []
