"""The fault matrix of the handoff path: no lock, the whole conversation read inside the send step, then Twilio.

The trigger matrix (``test_faults_matrix.py``) never reaches a handoff, whose send step first reads the rest of the
conversation (the rules read only part of it): one more AWS call. Each case is one message of a conversation handed
to a human, on a fresh container whose clients carry the fault; a delivery that raised or crashed is delivered
again (Twilio's retry), a final error is replayed once the fault is repaired. At rest: one stage row, the handoffs
the contract allows (a re-delivered message may re-send its own), and the message recorded against replays.
"""

from __future__ import annotations

import os

import boto3
import pytest
from botocore.retries.standard import ExponentialBackoff

from engine.config import load_config
from tests.support.faults import MATRIX_KINDS, ROOT, TRANSIENT_KINDS, Fault, new_container, twilio_delivery
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import World

CALLS = {
    "query": ("DB_TRANSIENT_ERROR", "DB_QUERY_ERROR"),
    "secret": ("SECRET_FETCH_TRANSIENT_ERROR", "SECRET_FETCH_FAILED"),
    "get": ("DB_TRANSIENT_ERROR", "DB_QUERY_ERROR"),
    "stage_put": ("STAGE_WRITE_TRANSIENT_ERROR", "STAGE_WRITE_ERROR"),
    "replay_put": ("STAGE_WRITE_TRANSIENT_ERROR", "STAGE_WRITE_ERROR"),
    "dynamodb.GetItem": ("DB_TRANSIENT_ERROR", "DB_QUERY_ERROR"),  # the whole conversation, for the handoff
    "send": ("QUEUE_TRANSIENT_ERROR", "QUEUE_ERROR"),
}
KINDS = tuple(fault for _, fault in MATRIX_KINDS)
TRANSIENT = TRANSIENT_KINDS


def expected(call: str, fault: Fault) -> str:
    if fault.kind == "crash":
        return "crash"
    if fault.times == 1:
        return "200 HANDED_OFF"
    transient, final = CALLS[call]
    return f"raise {transient}" if fault.kind in TRANSIENT else f"200 {final}"


def handoffs(call: str, fault: Fault, max_attempts: int) -> int:
    if call == "send" and fault.kind == "response_lost":
        return max_attempts + 1
    return 2 if call == "send" and fault.kind == "crash" else 1


def test_handoff_fault_matrix(
    world: World, monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session
) -> None:
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    world.add_default_secrets()
    config = load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", os.environ)
    failures: list[str] = []
    for number, (call, fault) in enumerate((call, fault) for call in CALLS for fault in KINDS):
        user = f"+1555030{number:04d}"
        item = world.add_user_conversation(user, f"ci-handoff-{number:03d}", hand_off_to_human=True)
        conversation_id = item["conversation_id"]
        sid = f"SM{number + 3000:032d}"
        event = rest_event("whatsapp", whatsapp_params(sid, From=f"whatsapp:{user}", WaId=user.lstrip("+")))
        application, injector = new_container(world.resources, config=config, session=boto_session)
        injector.inject(call, fault)
        first = twilio_delivery(application, event)
        injector.wait_idle()
        injector.clear()
        if first == "crash":
            application, _ = new_container(world.resources, config=config, session=boto_session)
        final = first if first == "200 HANDED_OFF" else twilio_delivery(application, event)
        staged = [row for row in world.stage_rows() if row["conversation_id"] == conversation_id]
        sent = [body for body, _ in world.sent("handoff") if body["conversation_id"] == conversation_id]
        recorded = [row for row in world.replay_rows() if row["message_sid"] == sid]
        checks = {
            "first answer": (first, expected(call, fault)),
            "answer at rest": (final, "200 HANDED_OFF"),
            "stage rows": (len(staged), 1),
            "handoffs": (len(sent), handoffs(call, fault, config.aws.max_attempts)),
            "whole conversation handed off": (all("messages" in body["conversation"] for body in sent), True),
            "replay records": (len(recorded), 1),
        }
        failures += [
            f"{call} / {fault.kind} x{fault.times}: {what} is {got!r}, expected {want!r}"
            for what, (got, want) in checks.items()
            if got != want
        ]
    assert not failures, "\n".join(failures)
