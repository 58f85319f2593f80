"""The Lambda's deadline reached while an AWS call of the email pipeline is in flight, then SendGrid's retry.

Each case makes one call of one email slow enough to end past the invocation's budget (the Lambda context's
remaining time less the answer's margin). No later AWS step starts: the post is answered 503 (SendGrid retries it)
unless only best-effort work was left, and the retry completes the email: one stage row, one trigger, the lock held
by the email that sent it, the record confirmed. Time is the container's stepped clock, which only the slow call moves
on: how fast the machine runs the other steps cannot decide which step the deadline falls in.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from engine.config import load_config
from tests.support.clock import SteppedClock, install_clock, slow_machine
from tests.support.email import add_email_world, add_user_conversation, email_event
from tests.support.faults import ROOT, Fault, new_container
from tests.support.world import World
from tools.sendgrid_events import Email

CALLS = ("query", "secret", "get", "stage_put", "lock_put", "replay_put", "send", "lock_mark", "replay_confirm")
# Calls after which only the trigger's delivery or best-effort work remains: the post is answered at once.
LAST = ("send", "lock_mark", "replay_confirm")


@dataclass(frozen=True)
class LambdaContext:
    """The Lambda context's time left, on the container's clock (a ``SteppedClock``: only the slow call spends it)."""

    deadline: float
    clock: SteppedClock
    aws_request_id: str = "deadline-test"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock.monotonic()) * 1000))


def answer(application: Any, event: dict[str, Any], context: Any = None) -> str:
    handled = application.process(event, context)
    assert handled.raised is None and handled.response is not None
    body = json.loads(handled.response["body"])
    return f"{handled.response['statusCode']} {body.get('outcome') or body.get('error_code')}"


@pytest.mark.parametrize("call", CALLS)
def test_a_call_in_flight_at_the_deadline_leaves_state_the_retry_completes(
    world: World, boto_session: Any, call: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_machine(monkeypatch, 0.25)  # a loaded machine: the slow call alone must decide when the budget is spent
    add_email_world(world)
    config = load_config(ROOT / "pipelines" / "email_inbound.yaml", ROOT / "rules", os.environ)
    user = f"deadline.{call.replace('_', '.')}@example.net"
    item = add_user_conversation(world, user, "ci-deadline")
    event = email_event(Email(sender=user, envelope_from=user, message_id=f"<{uuid.uuid4().hex}@mail.example.net>"))

    application, injector = new_container(world.resources, config=config, session=boto_session)
    clock = install_clock(application)
    injector.sleep = clock.advance  # the call is slow on the container's clock, whatever the machine does
    injector.inject(call, Fault("slow", delay=1.5))
    first = answer(application, event, LambdaContext(clock.monotonic() + 0.5 + 0.9, clock))  # a budget of 0.9 s
    injector.wait_idle()
    injector.clear()
    assert first == "200 QUEUED" if call in LAST else first.startswith("503 "), first

    final = first if first == "200 QUEUED" else answer(application, event)  # SendGrid's retry
    assert final == "200 QUEUED"
    [row] = world.stage_rows()
    assert [body for body, _ in world.sent("email")] == [
        {"conversation_id": item["conversation_id"], "primary_channel": user}
    ]
    [lock] = world.lock_rows()
    assert lock["message_sid"] == row["message_sid"]
    assert [record["state"] for record in world.replay_rows()] == ["confirmed"]
    assert answer(application, event) == "200 REPLAY"
