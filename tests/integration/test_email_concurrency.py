"""Concurrent SendGrid posts against moto's server over HTTP, each on a container of its own, released at once.

SendGrid may post an email again while its first post still runs (its timeout is shorter than a slow run), and
distinct emails of one conversation arrive together. Distinct emails share one trigger; copies of one email stage
it once, every copy that completes may send its own trigger, and the email's record ends confirmed: a later
repeat is ``REPLAY``.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from tests.integration.conftest import process_concurrently
from tests.support.email import add_email_world, email_event
from tests.support.world import World
from tools.sendgrid_events import Email

pytestmark = pytest.mark.integration


def post_concurrently(events: Sequence[dict[str, Any]]) -> list[str]:
    """Each event on a container of its own, all started together; the outcome of each."""
    return process_concurrently("email_inbound", events, lambda handled: handled.result.outcome)


def triggers(world: World) -> list[dict[str, Any]]:
    """The email queue's messages (all still delayed by the window), read from moto's server in this process."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    name = world.resources.email_queue_url.rsplit("/", 1)[1]
    backend = sqs_backends[DEFAULT_ACCOUNT_ID][world.dynamodb.meta.region_name]
    return [json.loads(message.body) for message in backend.queues[name]._messages]


def email(index: int) -> dict[str, Any]:
    return email_event(Email(message_id=f"<{uuid.uuid4().hex}.{index}@mail.example.net>", text=f"email {index}"))


def test_distinct_emails_of_one_conversation_share_one_trigger(world: World) -> None:
    item = add_email_world(world)
    outcomes = post_concurrently([email(index) for index in range(6)])
    assert Counter(outcomes) == {"QUEUED": 1, "BATCHED": 5}
    assert len(world.stage_rows()) == 6
    assert triggers(world) == [{"conversation_id": item["conversation_id"], "primary_channel": item["primary_channel"]}]
    assert {row["state"] for row in world.replay_rows()} == {"confirmed"}


def test_copies_of_one_email_posted_at_once_stage_it_once_and_end_confirmed(world: World) -> None:
    add_email_world(world)
    event = email(0)
    outcomes = post_concurrently([event] * 6)
    # A copy that reads the record after another confirmed it is a replay; every other copy is a re-delivery.
    assert set(outcomes) <= {"QUEUED", "REPLAY"} and "QUEUED" in outcomes
    assert len(world.stage_rows()) == 1
    assert 1 <= len(triggers(world)) == outcomes.count("QUEUED")
    [record] = world.replay_rows()
    assert record["state"] == "confirmed"
    assert post_concurrently([event]) == ["REPLAY"]
    assert len(triggers(world)) == outcomes.count("QUEUED")
