"""A throttled BatchGetItem (the conversation and its replay record) answers 200 with keys left unprocessed.

DynamoDB does not answer a batch read's throttling with an error: the keys it could not read come back under
``UnprocessedKeys``, which botocore does not retry. The adapter reads them again (one more round); keys still
unprocessed after that are a transient fault (the provider retries), never a conversation taken for missing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.email import add_email_world, email_event
from tests.support.faults import Fault, FaultInjector
from tests.support.webhooks import EMPTY_TWIML, rest_event, whatsapp_params
from tests.support.world import World
from tools.sendgrid_events import Email


def injector_of(world: World) -> FaultInjector:
    import handler

    resources = world.resources
    return FaultInjector(handler._application, resources)


def test_keys_left_unprocessed_are_read_again_in_the_same_call(
    world: World, lambda_handler: Any, outcomes: Any
) -> None:
    world.add_default_secrets()
    item = world.add_conversation()
    injector = injector_of(world)
    injector.inject("get", Fault("unprocessed", times=1))
    answer = lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    assert (answer["statusCode"], answer["body"]) == (200, EMPTY_TWIML)
    assert outcomes() == [("QUEUED", None)]
    assert injector.calls["get"] == 2
    assert [body["conversation_id"] for body, _ in world.sent("whatsapp")] == [item["conversation_id"]]


def test_a_read_that_stays_unprocessed_is_transient_and_twilios_retry_completes_it_once(
    world: World, lambda_handler: Any, outcomes: Any
) -> None:
    world.add_default_secrets()
    item = world.add_conversation()
    injector = injector_of(world)
    event = rest_event("whatsapp", whatsapp_params())
    injector.inject("get", Fault("unprocessed"))
    with pytest.raises(Exception, match=r"^DB_TRANSIENT_ERROR"):
        lambda_handler(event, None)
    assert outcomes() == [("DB_TRANSIENT_ERROR", "DB_TRANSIENT_ERROR")]
    # Two rounds at most: each is a bounded call of its own (tests/runtime/test_time_budget.py).
    assert injector.calls["get"] == 2
    assert world.stage_rows() == [] and world.lock_rows() == [] and world.replay_rows() == []
    assert not any(world.all_sent().values())

    injector.clear()
    assert lambda_handler(event, None)["body"] == EMPTY_TWIML
    assert outcomes()[-1] == ("QUEUED", None)
    assert len(world.stage_rows()) == 1
    assert [body["conversation_id"] for body, _ in world.sent("whatsapp")] == [item["conversation_id"]]


def test_an_email_read_that_stays_unprocessed_answers_503_and_sendgrids_retry_completes_it_once(
    world: World, lambda_handler: Any, outcomes: Any
) -> None:
    item = add_email_world(world)
    injector = injector_of(world)
    event = email_event(Email(message_id="<unprocessed-1@mail.example.net>"))
    injector.inject("get", Fault("unprocessed"))
    answer = lambda_handler(event, None)
    assert (answer["statusCode"], json.loads(answer["body"])["error_code"]) == (503, "DB_TRANSIENT_ERROR")
    assert world.stage_rows() == [] and world.replay_rows() == []

    injector.clear()
    assert lambda_handler(event, None)["statusCode"] == 200
    assert outcomes()[-1] == ("QUEUED", None)
    assert len(world.stage_rows()) == 1
    assert [body["conversation_id"] for body, _ in world.sent("email")] == [item["conversation_id"]]
