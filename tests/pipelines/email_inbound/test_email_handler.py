"""The email pipeline end to end through ``handler.handler`` on moto: SendGrid Inbound Parse posts to ``…/email``.

Same conversations table (its email GSI), same stage, lock and trigger flow as the Twilio channels, to the
email queue; JSON answers with the contract's status codes for non-Twilio channels (§5).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from tests.support.email import COMPANY_EMAIL, EMAIL_SECRET, KEY, USER_EMAIL, add_email_world, email_event
from tests.support.expect import ROOT, clock_window
from tests.support.logscan import forbid
from tools.sendgrid_events import Attachment, Email, KeyPair, raw_mime_body, signed


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert response["headers"] == {"Content-Type": "application/json"}
    return response["statusCode"], json.loads(response["body"])


def test_an_email_is_staged_locked_and_triggered(world, lambda_handler, aws, outcomes):
    item = add_email_world(world)
    email = Email(attachments=(Attachment("invoice.pdf", "application/pdf", b"%PDF-1.4 ..."),))

    with clock_window() as window:
        status, body = answer(lambda_handler(email_event(email), None))

    assert (status, body) == (200, {"status": "ok", "outcome": "QUEUED"})
    assert outcomes() == [("QUEUED", None)]
    trigger = {"conversation_id": item["conversation_id"], "primary_channel": USER_EMAIL}
    assert world.sent("email") == [(trigger, 10)]
    assert world.sent("whatsapp") == world.sent("sms") == world.sent("handoff") == []
    [row] = world.stage_rows()
    assert row["message_sid"].startswith("EM") and len(row["message_sid"]) == 34
    assert (row["conversation_id"], row["primary_channel"], row["channel_type"]) == (
        item["conversation_id"],
        USER_EMAIL,
        "email",
    )
    assert row["body"] == email.text
    assert row["num_media"] == 1
    assert row["media"] == [{"filename": "invoice.pdf", "content_type": "application/pdf", "size": 12}]
    assert window[0] + 86400 <= row["expires_at"] <= window[1] + 86400
    [lock] = world.lock_rows()
    assert (lock["conversation_id"], lock["message_sid"]) == (item["conversation_id"], row["message_sid"])
    # Marked sent alongside the send: a later email inside the window batches instead of taking the lock over.
    assert lock["trigger_due_at"] - lock["taken_at"] == 10
    [record] = world.replay_rows()  # confirmed once the run succeeded: a repeat is now a replay
    assert (record["message_sid"], record["state"]) == (row["message_sid"], "confirmed")
    names = aws.names()
    assert names[0] == "dynamodb.Query" and "secretsmanager.GetSecretValue" in names
    [query] = aws.of("dynamodb.Query")
    assert query["IndexName"] == "company-email-address-recipient-email-index"


def test_a_second_email_in_the_window_is_batched_and_a_repeat_is_a_replay(world, lambda_handler, outcomes):
    add_email_world(world)
    first = email_event(Email(message_id="<one@mail.example.net>"))
    second = email_event(Email(message_id="<two@mail.example.net>", text="and another thing"))
    for event in (first, second, first):
        lambda_handler(event, None)
    assert outcomes() == [("QUEUED", None), ("BATCHED", None), ("REPLAY", None)]
    assert "trigger_due_at" in world.lock_rows()[0]
    assert len(world.stage_rows()) == 2
    assert len(world.sent("email")) == 1


def test_the_raw_mime_format_is_accepted_too(world, lambda_handler, outcomes):
    add_email_world(world)
    data, content_type = raw_mime_body(Email())
    event = email_event(body=data)
    request = signed(KEY, data, content_type)
    event["headers"].update(request.headers)
    event["multiValueHeaders"].update({name: [value] for name, value in request.headers.items()})
    status, body = answer(lambda_handler(event, None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    [row] = world.stage_rows()
    assert row["body"].startswith("Hello,")


def test_a_human_handoff_sends_the_whole_context_without_the_bodies_of_the_form(world, lambda_handler, outcomes):
    item = add_email_world(world, hand_off_to_human=True)
    status, body = answer(lambda_handler(email_event(), None))
    assert (status, body["outcome"]) == (200, "HANDED_OFF")
    [(message, delay)] = world.sent("handoff")
    assert delay == 0 and world.sent("email") == [] and world.lock_rows() == []
    assert message["conversation_id"] == item["conversation_id"]
    assert message["channel_type"] == "email" and message["primary_channel"] == USER_EMAIL
    assert message["conversation"]["messages"] == item["messages"]
    assert message["body"] == Email().text
    assert {"to", "from", "subject", "envelope"} <= set(message["request"])
    assert not {"html", "text", "headers"} & set(message["request"])


@pytest.mark.parametrize(
    ("name", "build", "status", "code"),
    [
        ("signed_by_another_key", lambda: email_event(key=KeyPair()), 403, "INVALID_SIGNATURE"),
        ("stale_signature", lambda: email_event(timestamp=int(time.time()) - 5 * 86400), 403, "INVALID_SIGNATURE"),
        ("signed_in_the_future", lambda: email_event(timestamp=int(time.time()) + 3600), 403, "INVALID_SIGNATURE"),
    ],
)
def test_unauthentic_emails_are_refused_and_nothing_is_written(
    world, lambda_handler, aws, outcomes, name, build, status, code
):
    add_email_world(world)
    got, body = answer(lambda_handler(build(), None))
    assert (got, body["error_code"]) == (status, code)
    assert world.stage_rows() == [] and world.lock_rows() == [] and world.sent("email") == []
    if name != "signed_by_another_key":
        assert aws.names() == []  # a replayed or future-dated request costs no AWS call


def test_a_tampered_body_is_refused(world, lambda_handler, outcomes):
    add_email_world(world)
    event = email_event()
    import base64

    data = base64.b64decode(event["body"]).replace(b"not arrived", b"now arrived")
    event["body"] = base64.b64encode(data).decode()
    got, body = answer(lambda_handler(event, None))
    assert (got, body["error_code"]) == (403, "INVALID_SIGNATURE")
    assert world.stage_rows() == []


@pytest.mark.parametrize("header", ["X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"])
def test_a_missing_signature_header_is_refused_before_any_aws_call(world, lambda_handler, aws, outcomes, header):
    add_email_world(world)
    event = email_event()
    del event["headers"][header]
    del event["multiValueHeaders"][header]
    got, body = answer(lambda_handler(event, None))
    assert (got, body["error_code"]) == (403, "INVALID_SIGNATURE")
    assert aws.names() == []


@pytest.mark.parametrize(
    ("overrides", "email", "status", "code"),
    [
        ({"project_status": "paused"}, Email(), 403, "PROJECT_INACTIVE"),
        ({"allowed_channels": ["whatsapp"]}, Email(), 403, "CHANNEL_NOT_ALLOWED"),
        ({"conversation_status": "processing_reply"}, Email(), 409, "CONVERSATION_LOCKED"),
        ({}, Email(spam_score="9.1"), 422, "EMAIL_REJECTED"),
        ({"gsi_recipient_email": "someone.else@example.net"}, Email(), 404, "CONVERSATION_NOT_FOUND"),
    ],
)
def test_business_refusals_answer_their_status_and_write_nothing(
    world, lambda_handler, outcomes, overrides, email, status, code
):
    add_email_world(world, **overrides)
    got, body = answer(lambda_handler(email_event(email), None))
    assert (got, body["status"], body["error_code"]) == (status, "error", code)
    assert isinstance(body["message"], str) and body["message"]
    assert world.stage_rows() == [] and world.sent("email") == []


@pytest.mark.parametrize(
    ("email", "status"),
    [
        # The user's address with a stranger's signature and a failing SPF: a forged From.
        (Email(spf="softfail", dkim="{@attacker.example : pass}", envelope_from="x@attacker.example"), 422),
        (Email(spf="pass", dkim="{@example.net : fail}", envelope_from="bounce@attacker.example"), 422),
        # Vouched for by DKIM alone (a forwarded email fails SPF), by SPF alone, or by a signing subdomain.
        (Email(spf="fail", envelope_from="relay@lists.example.org"), 200),
        (Email(spf="pass", dkim="{@attacker.example : pass}"), 200),
        (Email(spf="none", dkim="{@attacker.example : pass, @mail.example.net : pass}"), 200),
    ],
)
def test_an_email_whose_sender_neither_spf_nor_dkim_vouch_for_is_refused(world, lambda_handler, email, status):
    add_email_world(world)
    got, body = answer(lambda_handler(email_event(email), None))
    if status == 422:
        assert (got, body["error_code"]) == (422, "EMAIL_REJECTED")
        assert "neither SPF nor DKIM" in body["message"]
        assert world.stage_rows() == [] and world.sent("email") == []
    else:
        assert (got, body) == (200, {"status": "ok", "outcome": "QUEUED"})
        assert len(world.stage_rows()) == 1 and len(world.sent("email")) == 1


def test_a_post_that_is_not_an_inbound_parse_form_is_a_parsing_error(world, lambda_handler, aws, outcomes):
    add_email_world(world)
    event = email_event(body=b"From=%2B14155550123&Body=hello")
    got, body = answer(lambda_handler(event, None))
    assert (got, body["error_code"]) == (400, "PARSING_ERROR")
    assert aws.names() == []


def test_a_throttled_lookup_answers_503_and_sendgrids_retry_completes(world, lambda_handler, aws, outcomes):
    add_email_world(world)
    event = email_event()
    aws.fail("dynamodb.Query", "ThrottlingException", 400, times=1)
    got, body = answer(lambda_handler(event, None))
    assert (got, body["error_code"]) == (503, "DB_TRANSIENT_ERROR")
    assert world.stage_rows() == []
    got, body = answer(lambda_handler(event, None))
    assert (got, body["outcome"]) == (200, "QUEUED")
    assert len(world.stage_rows()) == 1 and len(world.sent("email")) == 1


def test_without_an_email_queue_an_accepted_email_is_a_routing_error(world, cold_start, outcomes, monkeypatch):
    monkeypatch.delenv("EMAIL_QUEUE_URL")
    container = cold_start()
    add_email_world(world)
    got, body = answer(container.handler(email_event(), None))
    assert (got, body["error_code"]) == (500, "ROUTING_ERROR")
    assert world.stage_rows() == []


def test_a_rotated_key_is_picked_up_by_a_warm_container(world, lambda_handler, outcomes):
    add_email_world(world)
    lambda_handler(email_event(Email(message_id="<a@x>")), None)
    rotated = KeyPair()
    world.set_secret(EMAIL_SECRET, {"sendgrid_webhook_public_key": rotated.public_key})
    status, body = answer(lambda_handler(email_event(Email(message_id="<b@x>"), key=rotated), None))
    assert (status, body["outcome"]) == (200, "BATCHED")


def test_a_key_added_to_a_secret_cached_without_it_is_fetched_once(world, lambda_handler, aws, outcomes):
    add_email_world(world)
    world.set_secret(EMAIL_SECRET, {"sendgrid_webhook_public_key": "  "})
    status, body = answer(lambda_handler(email_event(Email(message_id="<a@x>")), None))
    assert (status, body["error_code"]) == (500, "SECRET_FETCH_FAILED")
    world.set_secret(EMAIL_SECRET, {"sendgrid_webhook_public_key": KEY.public_key})
    status, body = answer(lambda_handler(email_event(Email(message_id="<b@x>")), None))
    assert (status, body["outcome"]) == (200, "QUEUED")
    assert aws.count("secretsmanager.GetSecretValue") == 2


def test_no_address_subject_or_text_reaches_the_logs(world, lambda_handler):
    add_email_world(world)
    email = Email(subject="Secret subject line", text="A private message body")
    forbid(USER_EMAIL, COMPANY_EMAIL, "Secret subject line", "A private message body")
    assert answer(lambda_handler(email_event(email), None))[0] == 200


@pytest.mark.parametrize("value", [False, True, 0, [], {}, {"x": 1}])
def test_a_public_key_that_is_not_a_string_is_no_key(world, lambda_handler, aws, outcomes, value):
    add_email_world(world)
    world.set_secret(EMAIL_SECRET, {"sendgrid_webhook_public_key": value})
    status, body = answer(lambda_handler(email_event(), None))
    assert (status, body["error_code"]) == (500, "SECRET_FETCH_FAILED")
    assert world.stage_rows() == [] and world.sent("email") == []


FAILING_ROUTING = """\
ruleset: email_routing
kind: routing
pipelines: [email_inbound]
rules:
  - id: broken_rule
    when: "length(conversation.hand_off_to_human) > `0`"
    then: {target: handoff}
default: {target: email}
"""


def test_a_rule_failing_at_run_time_answers_500_without_its_file_or_error_in_the_answer(world, task_root, json_logs):
    """The answer goes to whoever posted; what failed, where, stays in the function's ERROR line."""
    add_email_world(world)
    container = task_root({"rules/60_email_routing.yaml": FAILING_ROUTING})

    status, body = answer(container.handler(email_event(Email()), None))

    assert status == 500 and body["status"] == "error" and body["error_code"] == "INTERNAL_ERROR"
    assert "broken_rule" not in body["message"] and ".yaml" not in body["message"]
    assert "length()" not in body["message"]
    errors = [line["message"] for line in json_logs(logging.ERROR)]
    assert any("broken_rule" in line and "60_email_routing.yaml" in line for line in errors)
    assert world.stage_rows() == []


def test_a_computed_target_that_is_no_target_is_not_quoted_in_the_answer(world, task_root, outcomes):
    """``target_from`` reads the event or the item: a value that names no target is data, not a target's name."""
    routing = (ROOT / "rules" / "60_email_routing.yaml").read_text()
    from_sender = routing.replace("default: {target: email}", "default: {target_from: request.user_address}")
    container = task_root({"rules/60_email_routing.yaml": from_sender.split("\ntests:")[0] + "\ntests: []\n"})
    add_email_world(world)

    status, body = answer(container.handler(email_event(), None))

    assert (status, body["error_code"]) == (500, "ROUTING_ERROR")
    # What is wrong is the value, not the queues: the message says which target_from gave it, and what it may give.
    assert body["message"] == (
        "target_from request.user_address of rule 'default' gave text, not the name of a target; "
        "it must give one of: email, handoff"
    )
    assert USER_EMAIL not in json.dumps(body)
    assert outcomes() == [("ROUTING_ERROR", "ROUTING_ERROR")]
