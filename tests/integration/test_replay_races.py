"""A first attempt still running when its provider's retry completes the message, against moto's server over HTTP.

Twilio's retry comes after its read timeout (``rt``, 6 s by the recommended overrides) while the first attempt may
run on for up to 12 s; SendGrid retries a 5xx at its own pace. Each attempt runs on a container of its own, with the
wall clock of both frozen in one second (as two containers can be); ``Gate`` holds each attempt at its send, so
the test decides the order: the first attempt has written its stage row, lock and replay record, the retry has
found them, then one fails (its send answered 5xx) and the other completes. Whatever the order, the message is
recorded at rest, and a capture replayed later is ``REPLAY``: nothing written, nothing sent.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from engine.config import load_config
from runtime.app import Application
from tests.support.clock import SteppedClock
from tests.support.email import add_email_world, email_event
from tests.support.faults import ROOT, Attempt, Fault, FaultInjector, new_container
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import World
from tools.sendgrid_events import Email

pytestmark = pytest.mark.integration

ORDERS = ["retry_first", "first_attempt_first"]
# A new container of a pipeline, its wall clock frozen at the given epoch seconds.
Start = Callable[[str, float], tuple[Application, FaultInjector]]


@pytest.fixture
def start(world: World) -> Start:
    """A new container of pipeline ``name``, its wall clock frozen at ``at`` (epoch seconds)."""
    session = boto3.session.Session()
    configs: dict[str, Any] = {}

    def container(name: str, at: float) -> tuple[Application, FaultInjector]:
        if name not in configs:
            configs[name] = load_config(ROOT / "pipelines" / f"{name}.yaml", ROOT / "rules", os.environ)
        application, faults = new_container(world.resources, configs[name], session)
        # Frozen, and its time budget spent only by hand: the order of the calls is the test's, and so is the time.
        application.replace_services(clock=SteppedClock(datetime.fromtimestamp(at, UTC)))
        return application, faults

    return container


def overlap(first: Attempt, retry: Attempt, order: str) -> tuple[str, str]:
    """Finish both attempts in ``order``; their outcomes (first's, retry's)."""
    if order == "retry_first":
        completed = retry.finish()
        return first.finish(), completed
    failed = first.finish()
    return failed, retry.finish()


def race(start: Start, pipeline: str, event: dict[str, Any], order: str) -> tuple[tuple[str, str], FaultInjector, int]:
    """A first attempt whose send fails and its retry, each on a container of its own, in one second, finished in
    ``order``: their outcomes, the retry's faults and the second they ran in."""
    at = int(time.time())
    first_container, first_faults = start(pipeline, at + 0.1)
    retry_container, retry_faults = start(pipeline, at + 0.6)
    first_faults.inject("send", Fault("server_error"))
    first = Attempt(first_container, event)
    retry = Attempt(retry_container, event)
    return overlap(first, retry, order), retry_faults, at


def assert_replay_refused(start: Start, pipeline: str, event: dict[str, Any], at: float) -> None:
    """The same request, replayed on a new container at ``at``: REPLAY, nothing staged or sent."""
    replayer, replayer_faults = start(pipeline, at)
    assert replayer.process(event, None).result.outcome == "REPLAY"
    assert replayer_faults.calls["send"] == 0 and replayer_faults.calls["stage_put"] == 0


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("handoff", "accepted"), [(False, "QUEUED"), (True, "HANDED_OFF")], ids=["trigger", "handoff"])
def test_a_twilio_message_its_retry_completed_stays_recorded_when_the_first_attempt_fails(
    world: World, start: Start, order: str, handoff: bool, accepted: str
) -> None:
    # Before: the first attempt's failure released the record (same second: its recorded_at matched), and the
    # retry, which had found it written, never put it back; a capture replayed after the grace went through again.
    world.add_conversation(hand_off_to_human=handoff)
    event = rest_event("whatsapp", whatsapp_params(f"SM{uuid.uuid4().hex}"))
    outcomes, retry_faults, at = race(start, "twilio_inbound", event, order)
    assert outcomes == ("raised QUEUE_TRANSIENT_ERROR", accepted)
    assert len(world.replay_rows()) == 1 and len(world.stage_rows()) == 1
    assert retry_faults.completed["send"] == 1
    assert_replay_refused(start, "twilio_inbound", event, at + 60)


@pytest.mark.parametrize("order", ORDERS)
def test_an_email_its_retry_completed_stays_confirmed_when_the_first_attempt_fails(
    world: World, start: Start, order: str
) -> None:
    # Before: a first attempt failing after the retry's confirmation (in the same second) deleted the confirmed
    # record; one failing before it deleted the pending record, and the confirmation (conditional on pending) then
    # wrote nothing. Either way the done email could be replayed within the signature's window.
    add_email_world(world)
    event = email_event(Email(message_id=f"<{uuid.uuid4().hex}@mail.example.net>"))
    outcomes, retry_faults, at = race(start, "email_inbound", event, order)
    assert outcomes == ("QUEUE_TRANSIENT_ERROR", "QUEUED")
    [record] = world.replay_rows()
    assert record["state"] == "confirmed"
    assert retry_faults.completed["send"] == 1
    assert_replay_refused(start, "email_inbound", event, at + 120)  # inside the signature's 600 s
