"""The invocation ends (answers or raises) within the time the configuration promises, far below Twilio's 15 s.

With ``pipelines/twilio_inbound.yaml``'s ``aws:`` bounds, one AWS call lasts at most
``B = max_attempts x (connect + read) + the backoffs``: botocore's throttling backoff before the second attempt is at
most 1 s (as is the cap the engine puts on AWS's ``x-amz-retry-after``), and doubles at each further retry. No AWS
step starts after ``deadline_seconds`` (D); the step that started just before it may take one ``B``, and a
trigger-lock release after a failure one more:
``T <= D + 2B`` (4 + 2 x 4 = 12 s with the shipped configuration).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff, RetryContext

from engine.calls import CallLimits
from engine.config import AppConfig, load_config
from runtime.app import Application
from runtime.aws import longest_call_seconds, longest_invocation_seconds
from tests.support.expect import ENV
from tests.support.faults import ROOT, BlackHole, Fault, new_container, observe
from tests.support.shipped import deployed_env
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import World
from tools.check import INVOCATION_LIMIT_SECONDS

TWILIO_BUDGET_SECONDS = 15.0
# Time the process itself may add around the AWS calls (a loaded CI machine included).
SLACK_SECONDS = 0.75


def shipped_config() -> AppConfig:
    return load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", os.environ)


@dataclass(frozen=True)
class LambdaContext:
    """The part of the Lambda context the handler reads: the time left before the function times out."""

    deadline: float
    aws_request_id: str = "budget-test"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def timed(application: Application, event: dict[str, Any], context: Any = None) -> tuple[float, str]:
    started = time.monotonic()
    handled = application.process(event, context)
    elapsed = time.monotonic() - started
    if handled.raised is not None:
        return elapsed, f"raise {handled.raised}"
    assert handled.response is not None
    answer = str(handled.response["statusCode"])
    return elapsed, answer


def test_the_promise_holds_with_the_shipped_configuration() -> None:
    config = load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", ENV)
    bound = longest_invocation_seconds(config.pipeline.deadline_seconds, config.aws)
    print(f"\nD = {config.pipeline.deadline_seconds} s, B = {longest_call_seconds(config.aws)} s, D + 2B = {bound} s")
    assert bound <= TWILIO_BUDGET_SECONDS - 3, "leave Twilio's connect time and a cold start room inside 15 s"
    assert bound <= INVOCATION_LIMIT_SECONDS, "pipeline-dryrun --check warns above this"


def test_a_hung_endpoint_is_cut_by_the_real_socket_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    with BlackHole() as hole:
        for name, value in deployed_env(
            {
                "AWS_ENDPOINT_URL": hole.url,
                "CONVERSATIONS_TABLE_NAME": "conversations",
                "STAGE_TABLE_NAME": "conversations-stage",
                "LOCK_TABLE_NAME": "conversations-trigger-lock",
                "WHATSAPP_QUEUE_URL": f"{hole.url}/123456789012/whatsapp",
                "SMS_QUEUE_URL": f"{hole.url}/123456789012/sms",
                "HANDOFF_QUEUE_URL": f"{hole.url}/123456789012/handoff",
                "REPLAY_TABLE_NAME": "replay",
            }
        ).items():
            monkeypatch.setenv(name, value)
        application = Application.from_root(ROOT)
        aws = application.pipeline("twilio_inbound").aws
        elapsed, answer = timed(application, rest_event("whatsapp", whatsapp_params()))
        requests = hole.requests
    print(f"\nevery call hangs: {answer} after {elapsed:.2f} s ({requests} requests reached the endpoint)")
    assert answer.startswith("raise DB_TRANSIENT_ERROR")
    assert requests == aws.max_attempts
    assert aws.max_attempts * aws.read_timeout <= elapsed <= longest_call_seconds(aws) + SLACK_SECONDS


def test_a_long_retry_after_does_not_stretch_a_call(world: World) -> None:
    world.add_conversation()
    world.add_default_secrets()
    application, injector = new_container(world.resources, real_deadline=True)
    injector.inject("*", Fault("throttling", retry_after=10.0))
    elapsed, answer = timed(application, rest_event("whatsapp", whatsapp_params()))
    print(f"\nthrottled, x-amz-retry-after 10 s: {answer} after {elapsed:.2f} s")
    assert answer.startswith("raise DB_TRANSIENT_ERROR")
    assert injector.attempts["query"] == application.pipeline("twilio_inbound").aws.max_attempts
    assert elapsed <= longest_call_seconds(application.pipeline("twilio_inbound").aws) + SLACK_SECONDS


def test_no_step_starts_after_the_lambda_context_deadline(world: World) -> None:
    world.add_conversation()
    world.add_default_secrets()
    application, injector = new_container(world.resources, real_deadline=True)
    injector.inject("*", Fault("slow", delay=0.9))
    context = LambdaContext(time.monotonic() + 2.0)
    elapsed, answer = timed(application, rest_event("whatsapp", whatsapp_params()), context)
    print(f"\nevery call 0.9 s, 2 s left in the Lambda: {answer} after {elapsed:.2f} s, calls {dict(injector.calls)}")
    assert answer.startswith("raise")
    assert injector.calls["stage_put"] == injector.calls["send"] == 0
    assert elapsed <= 2.0 + SLACK_SECONDS


def test_the_lock_is_not_marked_sent_when_the_send_did_not_start_for_lack_of_time(world: World) -> None:
    world.add_conversation()
    world.add_default_secrets()
    application, injector = new_container(world.resources, real_deadline=True)
    for call in ("stage_put", "lock_put", "replay_put"):
        injector.inject(call, Fault("slow", delay=0.8))
    # The stage/lock group is still running when the budget ends, so neither member of the send group may start.
    context = LambdaContext(time.monotonic() + 1.2)
    elapsed, answer = timed(application, rest_event("whatsapp", whatsapp_params()), context)
    print(f"\nthe stage group ends after the budget: {answer} after {elapsed:.2f} s, calls {dict(injector.calls)}")
    assert answer.startswith("raise QUEUE_TRANSIENT_ERROR")
    assert injector.calls["send"] == injector.calls["lock_mark"] == 0


def test_worst_case_ends_within_the_deadline_and_two_calls(world: World) -> None:
    item = world.add_conversation()
    world.add_default_secrets()
    application, injector = new_container(world.resources, real_deadline=True)
    config = application.pipeline("twilio_inbound")
    read = config.aws.read_timeout
    for call in ("query", "secret", "get", "stage_put", "lock_put"):
        injector.inject(call, Fault("slow", delay=0.9))
    injector.inject("send", Fault("hang", delay=read))
    # Both releases hang: the group's undo actions run together, so they cost one call's time, not two.
    injector.inject("lock_release", Fault("hang", delay=read))
    injector.inject("replay_release", Fault("hang", delay=read))
    elapsed, answer = timed(application, rest_event("whatsapp", whatsapp_params()))
    bound = longest_invocation_seconds(config.pipeline.deadline_seconds, config.aws)
    print(f"\nslow calls, then send and both releases hang: {answer} after {elapsed:.2f} s (bound {bound} s)")
    assert answer.startswith("raise QUEUE_TRANSIENT_ERROR")
    assert injector.attempts["send"] == injector.attempts["lock_release"] == config.aws.max_attempts
    assert injector.attempts["replay_release"] == config.aws.max_attempts
    assert elapsed <= bound + SLACK_SECONDS
    assert elapsed < TWILIO_BUDGET_SECONDS
    sid = whatsapp_params()["MessageSid"]
    assert observe(world, item["conversation_id"], sid).lock(sid) == "held, silent"


def test_a_handoff_does_not_send_once_its_whole_conversation_read_ends_past_the_budget(world: World) -> None:
    # The handoff reads the rest of the conversation inside the send step (the rules read only part of it): two
    # calls in one step. The send must not start once the read has used up the budget, or the step in flight takes
    # two calls' time and the releases a third (D + 3B = 16 s: past the 13 s timeout and Twilio's 15 s).
    item = world.add_conversation(hand_off_to_human=True)
    world.add_default_secrets()
    application, injector = new_container(world.resources, real_deadline=True)
    for call in ("query", "secret", "get", "stage_put", "replay_put"):
        injector.inject(call, Fault("slow", delay=0.1))
    injector.inject("dynamodb.GetItem", Fault("slow", delay=0.8))
    context = LambdaContext(time.monotonic() + 1.5)  # a budget of 1 s: the read starts inside it, ends after it
    event = rest_event("whatsapp", whatsapp_params())
    elapsed, answer = timed(application, event, context)
    print(f"\nthe whole-item read ends after the budget: {answer} after {elapsed:.2f} s, calls {dict(injector.calls)}")
    assert injector.calls["dynamodb.GetItem"] == 1
    assert injector.calls["send"] == 0
    assert answer.startswith("raise QUEUE_TRANSIENT_ERROR")
    assert world.replay_rows() == []  # released: Twilio's retry hands the message off

    injector.clear()
    _, retried = timed(application, event)
    assert retried == "200"
    assert len(world.stage_rows()) == 1
    assert [body["conversation_id"] for body, _ in world.sent("handoff")] == [item["conversation_id"]]


def test_a_batch_read_left_unprocessed_round_after_round_ends_within_the_deadline_and_two_calls(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A throttled BatchGetItem answers 200 with its keys unprocessed, and they are read again in the same step: each
    # round is a call of its own, up to B long. Three rounds in the step in flight at the deadline took D + 3B
    # (16 s with the shipped bounds: past the 13 s timeout and Twilio's 15 s), though no write precedes the read.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 1.0)  # botocore's longest wait
    world.add_conversation()
    world.add_default_secrets()
    application, injector = new_container(world.resources, real_deadline=True)
    limits = application.pipeline("twilio_inbound").aws
    for call in ("query", "secret"):
        injector.inject(call, Fault("slow", delay=0.3))
    # Every round: the first attempt gets no answer, the retry is answered late with every key unprocessed.
    stall = limits.connect_timeout + limits.read_timeout
    round_faults = (Fault("hang", delay=stall, times=1), Fault("unprocessed", delay=stall - 0.1, times=1))
    injector.inject("get", *(round_faults * 5))
    budget = 1.0
    context = LambdaContext(time.monotonic() + budget + 0.5)  # the get step starts inside the budget
    elapsed, answer = timed(application, rest_event("whatsapp", whatsapp_params()), context)
    bound = longest_invocation_seconds(budget, limits)
    print(f"\nkeys unprocessed round after round: {answer} after {elapsed:.2f} s (bound {bound} s)")
    assert answer.startswith("raise DB_TRANSIENT_ERROR")
    assert elapsed <= bound + SLACK_SECONDS
    assert world.stage_rows() == [] and world.lock_rows() == [] and world.replay_rows() == []


class _Throttled:
    """botocore's throttling detector, saying yes: the largest backoff base (1 s; other errors 50 ms)."""

    def is_throttling_error_from_context(self, context: Any) -> bool:
        return True


class _Answer:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.status_code = 400


@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("read", [0.5, 1.0, 3.0])
def test_the_longest_call_counts_every_backoff_botocore_may_wait(attempts: int, read: float) -> None:
    # botocore's standard retry mode doubles its throttling backoff at each retry (up to 1, 2, 4, 8 s before the
    # 2nd to 5th attempts), and waits at least AWS's x-amz-retry-after, which the clients lower to the read timeout.
    # The bound counted 1 s (or the read timeout) per retry: past two attempts, a stalled service ran longer than
    # pipeline-dryrun --check said, past the function's timeout.
    limits = CallLimits(connect_timeout=0.5, read_timeout=read, max_attempts=attempts)
    backoff = ExponentialBackoff(random=lambda: 1.0, throttling_detector=_Throttled())
    answer = _Answer({"x-amz-retry-after": str(round(read * 1000))})
    waits = [backoff.delay_amount(RetryContext(attempt_number=n, http_response=answer)) for n in range(1, attempts)]
    assert longest_call_seconds(limits) >= attempts * (0.5 + read) + sum(waits)
