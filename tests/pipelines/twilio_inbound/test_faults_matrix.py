"""The fault matrix: every AWS call of the pipeline x transient, permanent and crash faults, then Twilio's retry.

Each case is one WhatsApp message for a conversation of its own, delivered to a fresh container whose clients
carry the fault. Then, as Twilio would with the recommended ``#rc=2&rp=ct,rt,5xx`` overrides, a delivery that
raised or crashed (API Gateway answers 5xx) is delivered again with the fault gone (a crash on a new container).
A final error answered 200 is not retried by Twilio: the message is replayed once the fault is repaired, to show
it recovers. After every case: exactly one stage row, at least one pending trigger, and the lock at rest is held
only by a message that sent one.

The matrix is printed (``pytest -s``) and must equal the block in ``docs/guarantees.md``
(``UPDATE_GUARANTEES=1`` rewrites it).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.retries.standard import ExponentialBackoff

from engine.config import load_config
from tests.support.clock import slow_machine
from tests.support.faults import (
    FINAL_CODE,
    MATRIX_KINDS,
    RELEASE_CODE,
    ROOT,
    TRANSIENT_CODE,
    TRANSIENT_KINDS,
    EndState,
    Fault,
    MatrixRow,
    expected_triggers,
    new_container,
    observe,
    twilio_delivery,
)
from tests.support.logscan import forbid
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import World

GUARANTEES = Path(__file__).resolve().parents[3] / "docs" / "guarantees.md"


ROWS = (
    MatrixRow("GSI query", "query"),
    MatrixRow("secret", "secret"),
    MatrixRow("batch get (item + replay record)", "get"),
    MatrixRow("stage put", "stage_put"),
    MatrixRow("lock put", "lock_put"),
    MatrixRow("replay record put", "replay_put"),
    MatrixRow("lock release, send throttled", "lock_release", {"send": Fault("throttling")}),
    MatrixRow("lock release, send denied", "lock_release", {"send": Fault("access_denied")}),
    MatrixRow("replay record release, send denied", "replay_release", {"send": Fault("access_denied")}),
    MatrixRow("send", "send"),
    MatrixRow("lock marked sent (best effort)", "lock_mark"),
)
KINDS = MATRIX_KINDS


def expected_answer(row: MatrixRow, fault: Fault) -> str:
    """The contract's answer to the first delivery."""
    if fault.kind == "crash":
        return "crash"
    if row.call in RELEASE_CODE:
        if row.setup["send"].kind == "throttling":
            return "raise QUEUE_TRANSIENT_ERROR"
        released = fault.times == 1
        return "200 QUEUE_ERROR" if released else f"raise {RELEASE_CODE[row.call]}"
    if fault.times == 1 or row.call == "lock_mark":
        return "200 QUEUED"
    if fault.kind in TRANSIENT_KINDS:
        return f"raise {TRANSIENT_CODE[row.call]}"
    return f"200 {FINAL_CODE[row.call]}"


def expected_lock_between(row: MatrixRow, fault: Fault, answer: str) -> str:
    """The lock right after the first delivery: a silent holder only where no code can still run."""
    if answer == "200 QUEUED":
        return "held, sent"
    if fault.kind == "crash":
        # Group members (stage, lock, replay record) run to their ends before the crash, and so do their releases,
        # which run together: a crash after the record's release finds the lock released too.
        silent = ("stage_put", "lock_put", "replay_put")
        return "held, silent" if row.call in silent else "held, sent" if row.call in ("send", "lock_mark") else "free"
    if row.call == "lock_release" and fault.times is None and fault.kind != "response_lost":
        return "held, silent"
    return "free"


@dataclass(frozen=True)
class Result:
    row: MatrixRow
    kind: str
    fault: Fault
    attempts: int
    answer: str
    between: str
    retry: str
    final_answer: str
    at_rest: EndState
    lock_at_rest: str


def drain(application: Any) -> None:
    """Wait until the worker threads of a crashed container have finished what they had been handed.

    A crash in one member of a parallel group leaves the others running: the state observed after it is then the
    same on every run (all members' calls applied). Every worker must pass the barrier, so it passes only once
    each has finished its earlier work.
    """
    for loaded in application.configs:
        pool = loaded.pipeline._pool
        if pool is None:
            continue
        width = pool._max_workers
        barrier = threading.Barrier(width + 1, timeout=10)
        for _ in range(width):
            pool.submit(barrier.wait)
        barrier.wait()


def run_case(world: World, number: int, row: MatrixRow, kind: str, fault: Fault, **container: Any) -> Result:
    user = f"+1555010{number:04d}"
    forbid(user, user.lstrip("+"))
    conversation_id = world.add_user_conversation(user, f"ci-fault-{number:03d}")["conversation_id"]
    sid = f"SM{number:032d}"
    params = whatsapp_params(sid, body=f"fault case {number}", From=f"whatsapp:{user}", WaId=user.lstrip("+"))
    forbid(f"fault case {number}")
    event = rest_event("whatsapp", params)

    application, injector = new_container(world.resources, **container)
    for call, setup in row.setup.items():
        injector.inject(call, setup)
    injector.inject(row.call, fault)
    answer = twilio_delivery(application, event)
    if answer == "crash":
        drain(application)
    injector.wait_idle()
    attempts = injector.attempts[row.call]
    between = observe(world, conversation_id, sid).lock(sid)
    injector.clear()

    retry, final_answer = "no (answered)", answer
    if answer == "crash":
        retry = "yes, new container"
        application, _ = new_container(world.resources, **container)
        final_answer = twilio_delivery(application, event)
    elif answer.startswith("raise"):
        retry = "yes"
        final_answer = twilio_delivery(application, event)
    elif answer != "200 QUEUED":
        retry = "no; replayed after repair"
        final_answer = twilio_delivery(application, event)
    at_rest = observe(world, conversation_id, sid)
    return Result(row, kind, fault, attempts, answer, between, retry, final_answer, at_rest, at_rest.lock(sid))


def markdown(results: list[Result]) -> str:
    header = (
        "| call | fault | attempts | first answer | lock after it | Twilio retries | then "
        "| staged | triggers | lock |\n"
        "| --- | --- | --: | --- | --- | --- | --- | --: | --: | --- |\n"
    )
    lines = [
        f"| {r.row.label} | {r.kind} | {r.attempts} | {r.answer} | {r.between} | {r.retry} | {r.final_answer} "
        f"| {r.at_rest.staged} | {r.at_rest.triggers} | {r.lock_at_rest} |"
        for r in results
    ]
    return header + "\n".join(lines) + "\n"


def sync_block(path: Path, name: str, text: str) -> str | None:
    """The block ``name`` of ``path`` (between its markers); rewritten first when UPDATE_GUARANTEES is set."""
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    document = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(re.escape(start) + r"(.*?)" + re.escape(end), re.S)
    if os.environ.get("UPDATE_GUARANTEES"):
        document = pattern.sub(lambda _: start + text + end, document)
        path.write_text(document, encoding="utf-8")
    match = pattern.search(document)
    return match.group(1) if match else None


def test_fault_matrix(world: World, monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session) -> None:
    # botocore's backoff between attempts only costs time here; the time-budget tests keep it.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    world.add_default_secrets()
    config = load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", os.environ)
    results: list[Result] = []
    for row_index, row in enumerate(ROWS):
        for kind_index, (kind, fault) in enumerate(KINDS):
            number = row_index * len(KINDS) + kind_index
            results.append(run_case(world, number, row, kind, fault, config=config, session=boto_session))
    table = markdown(results)
    print("\n" + table)

    max_attempts = config.aws.max_attempts
    failures: list[str] = []
    for r in results:
        expected_attempts = 1 if r.fault.kind in ("access_denied", "not_found", "crash") else max_attempts
        answer = expected_answer(r.row, r.fault)
        checks = {
            "attempts": (r.attempts, expected_attempts),
            "first answer": (r.answer, answer),
            "lock after the first answer": (r.between, expected_lock_between(r.row, r.fault, answer)),
            "answer at rest": (r.final_answer, "200 QUEUED"),
            "stage rows": (r.at_rest.staged, 1),
            "triggers": (r.at_rest.triggers, expected_triggers(r.row, r.fault, max_attempts)),
            "lock at rest": (r.lock_at_rest, "held, sent"),
        }
        failures += [
            f"{r.row.label} / {r.kind}: {what} is {got!r}, expected {want!r}"
            for what, (got, want) in checks.items()
            if got != want
        ]
    assert not failures, "\n".join(failures)
    assert sync_block(GUARANTEES, "fault-matrix", table) == table, (
        "docs/guarantees.md's fault matrix is stale: run with UPDATE_GUARANTEES=1"
    )


def test_a_case_ends_as_the_matrix_says_however_slow_the_machine(
    world: World, monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session
) -> None:
    # The matrix is about faults, not time: a loaded machine must not spend the pipeline's 4 s deadline in its
    # containers and turn a case's answer into another step's transient error.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    slow_machine(monkeypatch, 1.0)  # each read of the real deadline clock a second later: spent by the fifth
    world.add_default_secrets()
    config = load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", os.environ)
    row, (kind, fault) = ROWS[5], KINDS[3]  # the replay record put, its reads timing out
    r = run_case(world, 0, row, kind, fault, config=config, session=boto_session)
    assert (r.answer, r.final_answer) == ("raise STAGE_WRITE_TRANSIENT_ERROR", "200 QUEUED")
    assert (r.at_rest.staged, r.at_rest.triggers, r.lock_at_rest) == (1, 1, "held, sent")
