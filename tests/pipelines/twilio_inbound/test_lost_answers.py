"""A write applied by DynamoDB whose answer was lost is still this run's write when botocore's retry meets it."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from engine.config import load_config
from tests.support.faults import ROOT, Fault, new_container, observe
from tests.support.timeline import LaterClock
from tests.support.webhooks import rest_event, whatsapp_params


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


def answered(application: Any, event: dict[str, Any]) -> str:
    handled = application.process(event, None)
    return f"{handled.response['statusCode']} {handled.result.outcome}"


def test_a_replay_record_whose_answer_was_lost_is_released_when_the_run_fails_for_good(
    world: Any, boto_session: Any
) -> None:
    # The first PutItem lands but its answer is lost; botocore's second attempt fails the condition on the
    # record the first one wrote. Taken for another run's record, it was never released: the re-drive after the
    # repair was answered REPLAY and the message lost.
    world.add_default_secrets()
    user = "+15550209001"
    cid = world.add_user_conversation(user, "ci-lost-001")["conversation_id"]
    sid = f"SM{9001:032d}"
    event = rest_event("whatsapp", whatsapp_params(sid, From=f"whatsapp:{user}", WaId=user.lstrip("+")))
    config = load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", os.environ)

    application, injector = new_container(world.resources, config=config, session=boto_session)
    injector.inject("replay_put", Fault("response_lost", times=1))
    injector.inject("send", Fault("access_denied"))
    assert answered(application, event) == "200 QUEUE_ERROR"
    assert [row for row in world.replay_rows() if row["message_sid"] == sid] == []

    repaired, _ = new_container(world.resources, config=config, session=boto_session)
    repaired.replace_services(clock=LaterClock(120))
    assert answered(repaired, event) == "200 QUEUED"
    at_rest = observe(world, cid, sid)
    assert (at_rest.staged, at_rest.triggers) == (1, 1)


@pytest.mark.parametrize("then", ["access_denied", "not_found"])
def test_a_lock_write_applied_before_a_final_error_is_released(world: Any, boto_session: Any, then: str) -> None:
    # The first PutItem is applied but answered 5xx; botocore's retry is refused for good. The call's outcome is
    # unknown (it may hold the lock) yet its error is final, and the lock was released only after a transient one:
    # the message, answered 200 TRIGGER_LOCK_WRITE_ERROR (Twilio does not retry), held the lock without a trigger,
    # and its conversation's next messages were BATCHED under it with none pending.
    world.add_default_secrets()
    user = "+15550209002"
    cid = world.add_user_conversation(user, "ci-lost-002")["conversation_id"]
    sid = f"SM{9002:032d}"
    event = rest_event("whatsapp", whatsapp_params(sid, From=f"whatsapp:{user}", WaId=user.lstrip("+")))
    config = load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", os.environ)

    application, injector = new_container(world.resources, config=config, session=boto_session)
    injector.inject("lock_put", Fault("response_lost", times=1), Fault(then))  # type: ignore[arg-type]
    assert answered(application, event) == "200 TRIGGER_LOCK_WRITE_ERROR"
    assert observe(world, cid, sid).lock(sid) == "free"

    injector.clear()
    later = f"SM{9003:032d}"
    follower = rest_event("whatsapp", whatsapp_params(later, From=f"whatsapp:{user}", WaId=user.lstrip("+")))
    assert answered(application, follower) == "200 QUEUED"  # not BATCHED under a lock with no trigger
    assert observe(world, cid, later).triggers == 1
