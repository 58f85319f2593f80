"""Faults on the two AWS calls a status callback makes (the swapped credential lookup, the secret), then Twilio.

A status callback writes nothing, but it reads as a message does: a fault there is answered with the same codes
(transient ones raise, so Twilio retries; final ones answer empty TwiML), and the retry after it is acknowledged
as ``STATUS_CALLBACK`` with still nothing written or sent.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from tests.support.expect import twiml_response
from tests.support.faults import FINAL_CODE, TRANSIENT_CODE, TRANSIENT_KINDS, Fault, FaultInjector
from tests.support.webhooks import rest_event, status_params
from tests.support.world import World

KINDS = ("throttling", "server_error", "read_timeout", "access_denied", "not_found", "malformed")
CASES = [(call, kind) for call in ("query", "secret") for kind in KINDS]


@pytest.mark.parametrize(("call", "kind"), CASES, ids=[f"{call}-{kind}" for call, kind in CASES])
def test_a_status_callback_meets_a_fault_with_the_calls_code_and_its_retry_writes_nothing(
    world: World, lambda_handler: Any, outcomes: Any, monkeypatch: pytest.MonkeyPatch, call: str, kind: Any
) -> None:
    import handler

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    world.add_conversation()
    world.add_default_secrets()
    resources = world.resources
    injector = FaultInjector(handler._application, resources)
    event = rest_event("sms", status_params(channel="sms"))
    injector.inject(call, Fault(kind))
    if kind in TRANSIENT_KINDS:
        code = TRANSIENT_CODE[call]
        with pytest.raises(Exception, match=f"^{code}"):
            lambda_handler(event, None)
    else:
        code = FINAL_CODE[call]
        assert lambda_handler(event, None) == twiml_response()
    assert outcomes() == [(code, code)]

    injector.clear()
    assert lambda_handler(event, None) == twiml_response()
    assert outcomes()[-1] == ("STATUS_CALLBACK", None)
    assert world.stage_rows() == [] and world.lock_rows() == [] and world.replay_rows() == []
    assert not any(world.all_sent().values())
    assert set(injector.calls) <= {"query", "secret"}
