"""The email fault matrix: every AWS call of the email pipeline x transient, permanent and crash faults, then SendGrid.

Each case is one email for a conversation of its own, delivered to a fresh container whose clients carry the fault
(botocore hooks on the application's clients, against moto). SendGrid retries every 5xx (transient and final AWS
faults alike) and a crash (API Gateway answers 502), so such a delivery is posted again once the fault is gone (a
crash on a new container). Then the same post once more, as a capture replayed: the email is done, so it is
``REPLAY``. After every case: exactly one stage row, the trigger(s) the contract allows, the lock held by the email
that sent one, and the email's replay record confirmed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.retries.standard import ExponentialBackoff

from engine.config import load_config
from tests.support.clock import slow_machine
from tests.support.email import add_email_world, add_user_conversation, email_event
from tests.support.faults import (
    FINAL_CODE,
    MATRIX_KINDS,
    RELEASE_CODE,
    ROOT,
    TRANSIENT_CODE,
    TRANSIENT_KINDS,
    Fault,
    MatrixRow,
    SimulatedCrash,
    expected_triggers,
    new_container,
)
from tests.support.world import World
from tools.sendgrid_events import Email

# Calls whose failure is logged and leaves the answer as it was.
BEST_EFFORT = ("lock_mark", "replay_confirm")


ROWS = (
    MatrixRow("GSI query", "query"),
    MatrixRow("secret", "secret"),
    MatrixRow("batch get (item + replay record)", "get"),
    MatrixRow("stage put", "stage_put"),
    MatrixRow("lock put", "lock_put"),
    MatrixRow("replay record put", "replay_put"),
    MatrixRow("lock release, send denied", "lock_release", {"send": Fault("access_denied")}),
    MatrixRow("replay record release, send denied", "replay_release", {"send": Fault("access_denied")}),
    MatrixRow("send", "send"),
    MatrixRow("lock marked sent", "lock_mark"),
    MatrixRow("replay record confirmed", "replay_confirm"),
)
KINDS = MATRIX_KINDS


def expected_answer(row: MatrixRow, fault: Fault) -> str:
    """The contract's answer to the first post (JSON: 503 for transient codes, 500 for the other faults)."""
    if fault.kind == "crash":
        return "crash"
    if row.call in RELEASE_CODE:
        return "500 QUEUE_ERROR" if fault.times == 1 else f"503 {RELEASE_CODE[row.call]}"
    if fault.times == 1 or row.call in BEST_EFFORT:
        return "200 QUEUED"
    if fault.kind in TRANSIENT_KINDS:
        return f"503 {TRANSIENT_CODE[row.call]}"
    return f"500 {FINAL_CODE[row.call]}"


def expected_at_rest(row: MatrixRow, fault: Fault) -> str:
    """The answer after SendGrid's retry: the email completed, or REPLAY when the dead run had confirmed it."""
    return "200 REPLAY" if row.call == "replay_confirm" and fault.kind == "crash" else "200 QUEUED"


def expected_repeat(row: MatrixRow, fault: Fault) -> str:
    """A later repeat of the done email: REPLAY, unless its confirmation failed (logged; a re-delivery then).

    A confirmation whose answer was lost was applied: botocore's retry meets its own item and counts it written.
    """
    if row.call == "replay_confirm" and fault.kind not in ("crash", "response_lost") and fault.times is None:
        return "200 QUEUED"
    return "200 REPLAY"


def deliver(application: Any, event: dict[str, Any]) -> str:
    """Post ``event`` as API Gateway would; the answer as ``STATUS OUTCOME`` or ``crash``."""
    try:
        handled = application.process(event, None)
    except SimulatedCrash:
        return "crash"
    assert handled.raised is None, handled.raised
    assert handled.response is not None
    body = json.loads(handled.response["body"])
    return f"{handled.response['statusCode']} {body.get('outcome') or body.get('error_code')}"


@dataclass(frozen=True)
class Result:
    row: MatrixRow
    kind: str
    fault: Fault
    answer: str
    final_answer: str
    staged: int
    triggers: int
    lock: str
    record: str
    repeat: str


def run_case(world: World, number: int, row: MatrixRow, kind: str, fault: Fault, **container: Any) -> Result:
    user = f"user{number:03d}@example.net"
    conversation_id = add_user_conversation(world, user, f"ci-fault-{number:03d}")["conversation_id"]
    event = email_event(Email(sender=user, envelope_from=user, message_id=f"<case-{number}@mail.example.net>"))

    application, injector = new_container(world.resources, **container)
    for call, setup in row.setup.items():
        injector.inject(call, setup)
    injector.inject(row.call, fault)
    answer = deliver(application, event)
    injector.wait_idle()
    injector.clear()

    final_answer = answer
    if answer == "crash":
        application, _ = new_container(world.resources, **container)
        final_answer = deliver(application, event)
    elif not answer.startswith("200"):
        final_answer = deliver(application, event)

    stage = [row for row in world.stage_rows() if row["conversation_id"] == conversation_id]
    sids = {row["message_sid"] for row in stage}
    triggers = sum(1 for body, _ in world.sent("email") if body["conversation_id"] == conversation_id)
    locks = [lock for lock in world.lock_rows() if lock["conversation_id"] == conversation_id]
    lock = "free" if not locks else "held, sent" if locks[0]["message_sid"] in sids and triggers else "other"
    records = [record for record in world.replay_rows() if record["message_sid"] in sids]
    record = records[0].get("state", "?") if records else "none"
    repeat = deliver(application, event)
    return Result(row, kind, fault, answer, final_answer, len(stage), triggers, lock, record, repeat)


def test_email_fault_matrix(world: World, monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session) -> None:
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    add_email_world(world)
    config = load_config(ROOT / "pipelines" / "email_inbound.yaml", ROOT / "rules", os.environ)
    results = [
        run_case(world, row_index * len(KINDS) + kind_index, row, kind, fault, config=config, session=boto_session)
        for row_index, row in enumerate(ROWS)
        for kind_index, (kind, fault) in enumerate(KINDS)
    ]
    for r in results:
        print(
            f"| {r.row.label} | {r.kind} | {r.answer} | {r.final_answer} | {r.staged} | {r.triggers} | {r.lock} "
            f"| {r.record} | {r.repeat} |"
        )
    failures: list[str] = []
    for r in results:
        checks = {
            "first answer": (r.answer, expected_answer(r.row, r.fault)),
            "answer at rest": (r.final_answer, expected_at_rest(r.row, r.fault)),
            "stage rows": (r.staged, 1),
            "triggers": (r.triggers, expected_triggers(r.row, r.fault, config.aws.max_attempts)),
            "lock at rest": (r.lock, "held, sent"),
            "replay record": (r.record, "pending" if expected_repeat(r.row, r.fault) == "200 QUEUED" else "confirmed"),
            "a repeat": (r.repeat, expected_repeat(r.row, r.fault)),
        }
        failures += [
            f"{r.row.label} / {r.kind}: {what} is {got!r}, expected {want!r}"
            for what, (got, want) in checks.items()
            if got != want
        ]
    assert not failures, "\n".join(failures)


def test_a_case_ends_as_the_matrix_says_however_slow_the_machine(
    world: World, monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session
) -> None:
    # The matrix is about faults, not time: a loaded machine must not spend the pipeline's 4 s deadline in its
    # containers and turn a case's answer into another step's transient error.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    slow_machine(monkeypatch, 1.0)  # each read of the real deadline clock a second later: spent by the fifth
    add_email_world(world)
    config = load_config(ROOT / "pipelines" / "email_inbound.yaml", ROOT / "rules", os.environ)
    row, (kind, fault) = ROWS[5], KINDS[3]  # the replay record put, its reads timing out
    r = run_case(world, 0, row, kind, fault, config=config, session=boto_session)
    assert (r.answer, r.final_answer, r.repeat) == ("503 STAGE_WRITE_TRANSIENT_ERROR", "200 QUEUED", "200 REPLAY")
    assert (r.staged, r.triggers, r.lock, r.record) == (1, 1, "held, sent", "confirmed")
