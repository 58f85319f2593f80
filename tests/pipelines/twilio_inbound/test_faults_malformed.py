"""A 200 answer that is no answer: a page some proxy or gateway put in AWS's place, a document cut short.

botocore parses such a body to nothing and raises nothing, so the adapters must tell it from a real answer: a real
Query answer always carries ``Items``, a BatchGetItem answer ``Responses``, a GetItem answer asked for it
``ConsumedCapacity`` (found or not), a SendMessage answer ``MessageId``. Read as an empty answer, a garbled read was
the business answer CONVERSATION_NOT_FOUND (no alarm, and for SendGrid a 404 it never retries), and a garbled send
was QUEUED (or HANDED_OFF) with nothing sent, its lock marked as if a trigger were pending. Each is the step's final
code now (the contract: transient only where botocore retries), which MessageLossAlarm counts, and the lock and the
replay record are released, so the message completes exactly once when it is delivered again after the repair
(SendGrid retries the 500 by itself). A garbled secret answer was SECRET_FETCH_FAILED already.

Writes are not here: a real PutItem answer is an empty document, which a garbled one cannot be told from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.email import add_email_world, email_event
from tests.support.faults import Fault, FaultInjector
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import World
from tools.sendgrid_events import Email


@dataclass(frozen=True)
class Case:
    id: str
    call: str
    channel: str  # whatsapp (a trigger), handoff (whatsapp, handed to a human) or email
    code: str


CASES = (
    Case("query", "query", "whatsapp", "DB_QUERY_ERROR"),
    Case("get", "get", "whatsapp", "DB_QUERY_ERROR"),
    Case("secret", "secret", "whatsapp", "SECRET_FETCH_FAILED"),
    Case("send", "send", "whatsapp", "QUEUE_ERROR"),
    Case("handoff_send", "send", "handoff", "QUEUE_ERROR"),
    # The rest of the conversation, read for the handoff after the rules (stage row and replay record written).
    Case("handoff_whole_read", "dynamodb.GetItem", "handoff", "DB_QUERY_ERROR"),
    Case("email_query", "query", "email", "DB_QUERY_ERROR"),
    Case("email_get", "get", "email", "DB_QUERY_ERROR"),
    Case("email_send", "send", "email", "QUEUE_ERROR"),
)


def answer(response: dict[str, Any]) -> str:
    """``STATUS CODE`` of an answer: a JSON answer's code or outcome, else (TwiML) the status alone."""
    if response["headers"].get("Content-Type") == "text/xml":
        return f"{response['statusCode']} {response['body']}"
    body = json.loads(response["body"])
    return f"{response['statusCode']} {body.get('error_code') or body.get('outcome')}"


def emf_documents(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_garbled_answer_is_a_final_fault_and_the_message_completes_once_delivered_again(
    world: World, lambda_handler: Any, outcomes: Any, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    import handler

    if case.channel == "email":
        item = add_email_world(world)
        event = email_event(Email(message_id="<garbled-1@mail.example.net>"))
        queue, success, first = "email", "200 QUEUED", f"500 {case.code}"
    else:
        world.add_default_secrets()
        item = world.add_conversation(hand_off_to_human=case.channel == "handoff")
        event = rest_event("whatsapp", whatsapp_params())
        queue, success = case.channel, "200 HANDED_OFF" if case.channel == "handoff" else "200 QUEUED"
        first = '200 <?xml version="1.0" encoding="UTF-8"?><Response />'
        success = first
    conversation_id = item["conversation_id"]
    resources = world.resources
    injector = FaultInjector(handler._application, resources)
    capsys.readouterr()

    injector.inject(case.call, Fault("malformed"))
    assert answer(lambda_handler(event, None)) == first
    assert outcomes() == [(case.code, case.code)]
    (document,) = emf_documents(capsys)
    assert (document["Outcome"], document["ErrorCode"], document["Errors"]) == (case.code, case.code, 1)
    # Nothing pending: no trigger, no lock, no replay record that would refuse the message delivered again.
    assert not any(world.all_sent().values())
    assert world.lock_rows() == [] and world.replay_rows() == []

    injector.clear()
    # Twilio does not retry a 200: the message is delivered again once the fault is repaired; SendGrid retries a 500.
    assert answer(lambda_handler(event, None)) == success
    staged = [row for row in world.stage_rows() if row["conversation_id"] == conversation_id]
    sent = [body for body, _ in world.sent(queue) if body["conversation_id"] == conversation_id]
    assert (len(staged), len(sent)) == (1, 1)
    assert outcomes()[-1] == ("HANDED_OFF" if case.channel == "handoff" else "QUEUED", None)
