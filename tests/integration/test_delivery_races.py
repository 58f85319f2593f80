"""Two deliveries of one conversation interleaved at an AWS call, against moto's server over HTTP.

Each delivery runs on a container of its own with a frozen wall clock; ``Attempt`` holds one at its send (a
``Gate``) while the other runs, so the order is the test's, never a race of sleeps. The lease expiring under
a slow holder, a holder failing after another message was batched under it, and a re-delivery failing after
its copy completed: every accepted message stays staged once and read by a trigger, and no lock is left to a
message that sent nothing.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from engine.config import load_config
from runtime.app import Application
from tests.support.clock import SteppedClock
from tests.support.faults import ROOT, Attempt, Fault, FaultInjector, new_container, outcome
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import World

pytestmark = pytest.mark.integration

# The world fixture's window (W) and the pipeline's lease buffer: a lock taken at t expires at t + 70.
LEASE_SECONDS = 10 + 60


@pytest.fixture
def container(world: World) -> Any:
    """A new Twilio container whose wall clock is frozen at ``at`` (epoch seconds), and its fault injector."""
    session = boto3.session.Session()
    config = load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", os.environ)

    def start(at: float) -> tuple[Application, FaultInjector]:
        application, faults = new_container(world.resources, config, session)
        # Frozen, and its time budget spent only by hand: the order of the calls is the test's, and so is the time.
        application.replace_services(clock=SteppedClock(datetime.fromtimestamp(at, UTC)))
        return application, faults

    return start


def message(sid: str) -> dict[str, Any]:
    return rest_event("whatsapp", whatsapp_params(sid, body="race"))


def new_sid() -> str:
    return f"SM{uuid.uuid4().hex}"


def state(world: World) -> tuple[list[str], list[str], int]:
    """Staged message ids, the lock's holder (if any) and the triggers sent to the WhatsApp queue."""
    staged = sorted(row["message_sid"] for row in world.stage_rows())
    holders = [row["message_sid"] for row in world.lock_rows()]
    return staged, holders, len(world.sent(world.resources.whatsapp_queue_url.rsplit("/", 1)[1]))


def test_a_lease_that_expires_under_a_slow_holder_is_taken_over_and_both_messages_trigger(
    world: World, container: Any
) -> None:
    world.add_conversation()
    at, slow, later = int(time.time()), new_sid(), new_sid()
    holder = Attempt(container(at)[0], message(slow))
    assert outcome(container(at + LEASE_SECONDS + 1)[0].process(message(later), None)) == "QUEUED"
    assert holder.finish() == "QUEUED"
    staged, holders, triggers = state(world)
    assert staged == sorted([slow, later]) and triggers == 2
    assert holders == [later], "the slow holder's sent mark must not take the lease back"
    [lock] = world.lock_rows()
    assert lock["trigger_due_at"] == at + LEASE_SECONDS + 1 + 10


def test_a_holder_that_fails_after_a_message_was_batched_under_it_triggers_on_its_retry(
    world: World, container: Any
) -> None:
    world.add_conversation()
    at, first, second = int(time.time()), new_sid(), new_sid()
    application, faults = container(at)
    faults.inject("send", Fault("server_error"))
    holder = Attempt(application, message(first))
    assert outcome(container(at + 1)[0].process(message(second), None)) == "BATCHED"
    assert holder.finish() == "raised QUEUE_TRANSIENT_ERROR"
    assert state(world) == (sorted([first, second]), [], 0), "released, so that Twilio's retry can trigger"
    assert outcome(container(at + 7)[0].process(message(first), None)) == "QUEUED"
    assert state(world) == (sorted([first, second]), [first], 1)


def test_a_copy_that_fails_after_its_twin_completed_leaves_the_message_staged_recorded_and_triggered(
    world: World, container: Any
) -> None:
    world.add_conversation()
    at, sid = int(time.time()), new_sid()
    failing, faults = container(at)
    faults.inject("send", Fault("server_error"))
    first = Attempt(failing, message(sid))
    twin = Attempt(container(at)[0], message(sid))
    assert twin.finish() == "QUEUED"
    assert first.finish() == "raised QUEUE_TRANSIENT_ERROR"
    staged, holders, triggers = state(world)
    assert staged == [sid] and triggers == 1
    assert [row["message_sid"] for row in world.replay_rows()] == [sid]
    # The failed copy released the lock its twin had re-taken (one holder id): the next message triggers again,
    # which the contract allows (docs/guarantees.md, duplicate triggers); nothing is batched without a trigger.
    assert holders == []
    assert outcome(container(at + 2)[0].process(message(new_sid()), None)) == "QUEUED"


def test_a_handoff_racing_a_queued_message_leaves_the_lock_to_the_queued_one(world: World, container: Any) -> None:
    item = world.add_conversation()
    at, queued, handed = int(time.time()), new_sid(), new_sid()
    holder = Attempt(container(at)[0], message(queued))
    world.add_conversation(**{**item, "hand_off_to_human": True})  # a person takes the conversation over
    assert outcome(container(at + 1)[0].process(message(handed), None)) == "HANDED_OFF"
    assert holder.finish() == "QUEUED"
    staged, holders, triggers = state(world)
    # The contract stages every accepted message, the handed-off one too: the queued one's batch holds both rows.
    assert staged == sorted([queued, handed]) and holders == [queued] and triggers == 1
    [(handoff, delay)] = world.sent(world.resources.handoff_queue_url.rsplit("/", 1)[1])
    assert handoff["message_sid"] == handed and delay == 0
