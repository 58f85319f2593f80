"""Every way a message is lost trips an alarm of template.yaml, as CloudWatch would evaluate it.

The handler runs on moto with faults injected, at chosen times (the metrics' clock); its EMF documents are read as
CloudWatch Logs reads them, what Lambda, API Gateway and SQS record for the same moments is added, and each alarm is
evaluated per period (``tests.deploy.cfn``). Attempts of one message are spaced as the sender spaces them: Twilio
by the registered URL's ``rt`` (1 + ``rc`` attempts), SendGrid on its own schedule over up to 3 days.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import pytest

from engine import registry
from runtime.app import CAPTURE_FAILURE_METRIC, SIGNATURE_MISMATCH_METRIC, UNROUTED_PIPELINE
from runtime.metrics import EmfMetrics, count_line
from runtime.misroute import MISROUTED_METRIC, checker
from tests.deploy.cfn import (
    STACK,
    Datapoint,
    alarm_periods,
    alarm_series,
    api_answer,
    emf_datapoints,
    firing,
    gateway_response,
    lambda_invocation,
    load_template,
    queue_age,
    ref_of,
    resolve,
)
from tests.support.email import add_email_world, email_event
from tests.support.webhooks import rest_event, sms_params, whatsapp_params
from tools.sendgrid_events import KeyPair

TEMPLATE = load_template()
PERIOD = 300
DAY = 86400
HOUR = 3600
# A period's start, in seconds since the epoch: the attempts are placed around period boundaries from here.
EPOCH = 1_800_000_000
assert EPOCH % PERIOD == 0


def _fragment(name: str) -> int:
    url = TEMPLATE["Outputs"]["WhatsAppWebhookUrl"]["Value"]["Fn::Sub"]
    found = re.search(rf"[#&]{name}=(\d+)", url)
    assert found is not None, f"the registered URL sets no {name}"
    return int(found.group(1))


# Twilio's attempts of one message: the first and rc retries, each rt ms after the previous one started.
TWILIO_ATTEMPTS = 1 + _fragment("rc")
TWILIO_RETRY_SECONDS = _fragment("rt") / 1000
FUNCTION_TIMEOUT_SECONDS = TEMPLATE["Globals"]["Function"]["Timeout"]
# Where the first attempt starts: at a period's start, and late enough that the attempts straddle two periods.
STARTS = {"in_one_period": EPOCH, "straddling_two_periods": EPOCH + PERIOD - TWILIO_RETRY_SECONDS - 1}

# A fault on every attempt (operation, AWS error code, the table it hits if one) and the transient code it ends in.
TRANSIENT_FAULTS: dict[str, tuple[str, str, str | None]] = {
    "DB_TRANSIENT_ERROR": ("dynamodb.Query", "ProvisionedThroughputExceededException", None),
    "SECRET_FETCH_TRANSIENT_ERROR": ("secretsmanager.GetSecretValue", "ThrottlingException", None),
    "STAGE_WRITE_TRANSIENT_ERROR": ("dynamodb.PutItem", "ThrottlingException", "stage_table"),
    "TRIGGER_LOCK_TRANSIENT_ERROR": ("dynamodb.PutItem", "ThrottlingException", "lock_table"),
    "QUEUE_TRANSIENT_ERROR": ("sqs.SendMessage", "ThrottlingException", None),
}


class Clock:
    """The time the metrics are stamped with (CloudWatch files each datapoint under its document's timestamp)."""

    def __init__(self) -> None:
        self.now = float(EPOCH)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def deployed(cold_start: Any, capsys: pytest.CaptureFixture[str]) -> tuple[Any, Clock]:
    """A container configured as the template configures it (the stack's name, the metrics namespace), whose
    metrics are stamped with a test clock."""
    import handler

    namespace = resolve(TEMPLATE, {"Ref": "MetricsNamespace"})
    container = cold_start(STACK_NAME=STACK, METRICS_NAMESPACE=namespace)
    clock = Clock()
    handler._application.metrics = EmfMetrics(namespace, stack=STACK, clock=clock)
    capsys.readouterr()
    return container, clock


def attempt(
    container: Any, event: dict[str, Any], at: float, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[Datapoint]]:
    """One delivery of ``event`` at ``at``: the HTTP status the sender sees and every datapoint it leaves."""
    clock.now = at
    started = time.perf_counter()
    try:
        status, failed = container.handler(event, None)["statusCode"], False
    except Exception:  # noqa: BLE001 - a transient fault raises: Lambda's error, API Gateway's 502
        status, failed = 502, True
    ms = (time.perf_counter() - started) * 1000
    points = emf_datapoints(capsys.readouterr().out)
    answered = api_answer(TEMPLATE, at, status, event.get("resource"))
    return status, [*points, *lambda_invocation(TEMPLATE, at, failed=failed, ms=ms), *answered]


def inject(container: Any, world: Any, code: str, *, times: int | None = None) -> None:
    """The AWS fault that ends an event in transient ``code``, on every call (or the first ``times``)."""
    operation, aws_code, table = TRANSIENT_FAULTS[code]
    name = getattr(world.resources, table) if table else None
    container.aws.fail(
        operation, aws_code, 400, times=times, where=None if name is None else lambda call: call["TableName"] == name
    )


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("code", TRANSIENT_FAULTS)
def test_a_twilio_message_whose_every_attempt_meets_a_transient_fault_raises_the_transient_alarm(
    world: Any, deployed: tuple[Any, Clock], capsys: pytest.CaptureFixture[str], code: str, start: str
) -> None:
    container, clock = deployed
    world.add_conversation()
    world.add_default_secrets()
    inject(container, world, code)
    event = rest_event("whatsapp", whatsapp_params())
    points: list[Datapoint] = []
    for number in range(TWILIO_ATTEMPTS):
        status, left = attempt(container, event, STARTS[start] + number * TWILIO_RETRY_SECONDS, clock, capsys)
        assert status == 502, "a transient fault must raise, for Twilio to retry"
        points += left
    assert world.sent("whatsapp") == [], "no trigger: the message is lost once Twilio stops retrying"
    errors = [p for p in points if p.metric == "Errors" and dict(p.dimensions).get("ErrorCode")]
    assert {dict(p.dimensions)["ErrorCode"] for p in errors} == {code}
    fired = firing(TEMPLATE, points)
    assert {"TransientErrorsAlarm", "FunctionErrorsAlarm"} <= fired
    assert "MessageLossAlarm" not in fired  # no final error: only the transient alarms can see this loss
    if start == "straddling_two_periods":
        # Why the default is 2, not 1 + rc: 3 attempts split 2 + 1 over a period boundary.
        assert not alarm_periods(TEMPLATE, "TransientErrorsAlarm", points, {"TransientErrorsAlarmThreshold": "3"})


def test_a_twilio_message_that_a_retry_delivers_raises_no_alarm(
    world: Any, deployed: tuple[Any, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    container, clock = deployed
    world.add_conversation()
    world.add_default_secrets()
    inject(container, world, "QUEUE_TRANSIENT_ERROR", times=1)
    event = rest_event("whatsapp", whatsapp_params())
    first, points = attempt(container, event, EPOCH, clock, capsys)
    second, more = attempt(container, event, EPOCH + TWILIO_RETRY_SECONDS, clock, capsys)
    assert (first, second) == (502, 200)
    assert len(world.sent("whatsapp")) == 1
    assert firing(TEMPLATE, points + more) == set()


@pytest.mark.parametrize("start", STARTS)
def test_a_twilio_message_whose_every_attempt_times_out_raises_the_function_alarms(start: str) -> None:
    # Lambda ends a timed-out invocation before it writes anything: only what AWS records tells of it. The attempts
    # all run the full timeout, so they end as far apart as they start; here the ends are placed on the boundary.
    points = []
    for number in range(TWILIO_ATTEMPTS):
        ended = STARTS[start] + number * TWILIO_RETRY_SECONDS
        points += lambda_invocation(TEMPLATE, ended, failed=True, ms=FUNCTION_TIMEOUT_SECONDS * 1000)
        points += api_answer(TEMPLATE, ended, 502)
    fired = firing(TEMPLATE, points)
    assert {"FunctionErrorsAlarm", "FunctionDurationAlarm"} <= fired
    if start == "straddling_two_periods":
        assert not alarm_periods(TEMPLATE, "FunctionErrorsAlarm", points, {"FunctionErrorsAlarmThreshold": "3"})


def test_an_email_whose_deliveries_meet_a_transient_fault_raises_the_email_alarm_at_the_first(
    world: Any, deployed: tuple[Any, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    # SendGrid retries a 503 on an unpublished schedule for up to 3 days: its deliveries need not share a period.
    container, clock = deployed
    add_email_world(world)
    inject(container, world, "QUEUE_TRANSIENT_ERROR")
    points: list[Datapoint] = []
    deliveries = [EPOCH + hours * 3600 for hours in (0, 1, 5, 24, 71)]
    for at in deliveries:
        status, left = attempt(container, email_event(), at, clock, capsys)
        assert status == 503
        points += left
    assert world.sent("email") == []
    assert alarm_periods(TEMPLATE, "EmailTransientErrorsAlarm", points)[0] == deliveries[0]
    assert "EmailLossAlarm" not in firing(TEMPLATE, points)


def _stdout_gone(line: str) -> None:
    raise BrokenPipeError(32, "Broken pipe")


def test_an_email_whose_deliveries_crash_raises_an_alarm_at_the_first(
    world: Any, deployed: tuple[Any, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    # The function raises on every delivery and writes no metrics document (here the queue refuses the trigger and
    # the document's own write fails; a crash before it, or Lambda's own, is the same): only Lambda's Errors and
    # API Gateway's 502 tell. SendGrid retries a 5xx on its own schedule for up to 3 days, one delivery per period:
    # under FunctionErrorsAlarm's and Api5xxAlarm's 2, and the email is dropped unsaid.
    import handler

    container, clock = deployed
    add_email_world(world)
    container.aws.fail("sqs.SendMessage", "AccessDenied", 403)
    metrics = handler._application.metrics
    handler._application.metrics = EmfMetrics(metrics.namespace, _stdout_gone, clock, metrics.stack)
    points: list[Datapoint] = []
    deliveries = [EPOCH + hours * HOUR for hours in (0, 1, 5, 24, 71)]
    for at in deliveries:
        status, left = attempt(container, email_event(), at, clock, capsys)
        assert status == 502
        points += left
    assert world.sent("email") == []
    assert not [point for point in points if point.metric == "Errors" and point.namespace != "AWS/Lambda"]
    first = {name for name in firing(TEMPLATE, points) if alarm_periods(TEMPLATE, name, points)[0] == deliveries[0]}
    assert first, "an email whose every delivery crashed was dropped and no alarm told anyone"


def test_a_twilio_message_refused_after_a_token_rotation_raises_an_alarm_at_the_first(
    world: Any, deployed: tuple[Any, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    # The token was rotated in Twilio and not (yet) in the tenant's secret: Twilio signs with the new one, every
    # attempt is answered 200 INVALID_SIGNATURE, and Twilio does not retry. A tenant with a message or two in five
    # minutes stays under InvalidSignatureAlarmThreshold (forged requests from anyone count there too).
    container, clock = deployed
    world.add_conversation()
    world.add_default_secrets(token="the-token-before-the-rotation")
    status, points = attempt(container, rest_event("whatsapp", whatsapp_params()), EPOCH, clock, capsys)
    assert status == 200 and world.sent("whatsapp") == [] and world.stage_rows() == []
    assert firing(TEMPLATE, points), "a genuine message was refused for good and no alarm told anyone"


def test_an_email_refused_after_a_key_rotation_raises_an_alarm_at_the_first(
    world: Any, deployed: tuple[Any, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    # SendGrid does not retry a 403: the email is dropped.
    container, clock = deployed
    add_email_world(world, key=KeyPair())
    status, points = attempt(container, email_event(), EPOCH, clock, capsys)
    assert status == 403 and world.sent("email") == []
    assert firing(TEMPLATE, points), "a genuine email was refused for good and no alarm told anyone"


def test_the_signature_mismatch_alarm_watches_every_pipeline_that_authenticates(
    template: dict[str, Any], configs: list[Any]
) -> None:
    authenticating = [
        config.name
        for config in configs
        if any(getattr(registry.get(step.uses), "authenticates", False) for step in config.pipeline.steps())
    ]
    assert "twilio_inbound" in authenticating  # the shipped pipelines that authenticate, whatever others are added
    emitted = set()
    for pipeline in authenticating:
        line = count_line("NS", pipeline, SIGNATURE_MISMATCH_METRIC, timestamp_ms=1, stack=STACK)
        emitted |= {(p.metric, p.dimensions) for p in emf_datapoints(line)}
    watched = {(s.metric, s.dimensions) for s in alarm_series(template, "SignatureMismatchAlarm")}
    assert watched == emitted
    assert {s.namespace for s in alarm_series(template, "SignatureMismatchAlarm")} == {
        resolve(template, {"Ref": "MetricsNamespace"})
    }


def test_unsigned_posts_and_unknown_number_pairs_stay_below_the_alarms(
    world: Any, deployed: tuple[Any, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    # Anyone can post these: they reach no tenant's credential, and only InvalidSignatureAlarm's threshold counts them.
    container, clock = deployed
    world.add_conversation()
    world.add_default_secrets()
    threshold = int(TEMPLATE["Parameters"]["InvalidSignatureAlarmThreshold"]["Default"])
    unsigned = rest_event("whatsapp", whatsapp_params(), signature="")
    stranger = rest_event("whatsapp", whatsapp_params(From="whatsapp:+15550001111"), token="not-the-token")
    points: list[Datapoint] = []
    for number in range(threshold - 1):
        status, left = attempt(container, (unsigned, stranger)[number % 2], EPOCH + number, clock, capsys)
        assert status == 200
        points += left
    assert firing(TEMPLATE, points) == set()


def _stage_throttle_status() -> int:
    """What API Gateway answers a request over the stage's throttling limits: 429 unless a gateway response says."""
    responses = TEMPLATE["Resources"]["WebhookApi"]["Properties"].get("GatewayResponses", {})
    return int(responses.get("THROTTLED", {}).get("StatusCode", 429))


def _twilio_retries(status: int) -> bool:
    """Whether Twilio retries an answer with HTTP ``status``, by the registered URL's retry policy (``rp``)."""
    url = TEMPLATE["Outputs"]["WhatsAppWebhookUrl"]["Value"]["Fn::Sub"]
    found = re.search(r"[#&]rp=([a-z0-9,]+)", url)
    assert found is not None, "the registered URL sets no rp"
    policy = set(found.group(1).split(","))
    return "all" in policy or f"{status // 100}xx" in policy


def test_a_message_throttled_by_the_api_stage_is_retried_and_alarmed() -> None:
    # A flood above ApiThrottlingRateLimit is answered by API Gateway before the function: by default 429, which
    # neither Twilio's retry policy (ct,rt,5xx) nor SendGrid (5xx only) retries. Throttled, it must be a 5xx to be
    # retried; CloudWatch counts a gateway response as 4XXError whatever its status, so an alarm of its own sees it.
    status = _stage_throttle_status()
    assert status >= 500, f"API Gateway's stage throttling answers {status}: the senders do not retry it"
    assert _twilio_retries(status)
    points = []
    for number in range(TWILIO_ATTEMPTS):
        points += gateway_response(TEMPLATE, EPOCH + number * TWILIO_RETRY_SECONDS, "THROTTLED")
    assert "ApiThrottledAlarm" in firing(TEMPLATE, points), "a throttled flood lost messages and no alarm told anyone"


def _routed_queues(configs: list[Any]) -> list[str]:
    """The logical ids of the queues the pipelines route to (the ``ref:<id>`` that ends their placeholder URLs)."""
    urls = {target["queue_url"] for config in configs for target in config.targets.values()}
    return sorted(str(ref_of(url)) for url in urls)


def _age_alarm(template: dict[str, Any], queue: str) -> str:
    """The alarm on the age of ``queue``'s oldest message (found by the queue it watches, whatever its name)."""
    watching = [
        name
        for name, body in template["Resources"].items()
        if body["Type"] == "AWS::CloudWatch::Alarm"
        and any(
            (series.namespace, series.metric, series.dimensions)
            == ("AWS/SQS", "ApproximateAgeOfOldestMessage", (("QueueName", f"{queue}.QueueName"),))
            for series in alarm_series(template, name)
        )
    ]
    assert watching, (
        f"no alarm watches the age of {queue}'s oldest message: add one (docs/extending.md, Add a pipeline: "
        "an ApproximateAgeOfOldestMessage alarm on the queue at QueueAgeAlarmSeconds)"
    )
    return watching[0]


def test_a_trigger_that_nothing_consumes_raises_its_queue_age_alarm_long_before_sqs_deletes_it(
    template: dict[str, Any], configs: list[Any]
) -> None:
    parameter = template["Parameters"]["QueueAgeAlarmSeconds"]
    longest_window = template["Parameters"]["BatchWindowSeconds"]["MaxValue"]
    for queue in _routed_queues(configs):
        alarm = _age_alarm(template, queue)
        retention = template["Resources"][queue]["Properties"]["MessageRetentionPeriod"]
        # SQS reports the oldest message's age every minute while the queue holds it, until it deletes it.
        waiting = [queue_age(queue, EPOCH + age, age) for age in range(60, retention, 60)]
        # A trigger delayed by the longest window W and consumed within minutes of becoming visible.
        consumed = [queue_age(queue, EPOCH + age, age) for age in range(60, longest_window + PERIOD, 60)]
        for threshold in (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]):
            chosen = {"QueueAgeAlarmSeconds": str(threshold)}
            first = alarm_periods(template, alarm, waiting, chosen)[0]
            left = EPOCH + retention - (first + PERIOD)
            assert left >= DAY, f"{alarm} at {threshold} s leaves {left} s to consume the queue before SQS deletes"
            assert alarm_periods(template, alarm, consumed, chosen) == [], f"{alarm} at {threshold} s: W trips it"


def test_a_trigger_that_nothing_consumes_raises_its_queue_age_alarm_while_its_messages_are_still_staged(
    template: dict[str, Any], configs: list[Any]
) -> None:
    # A trigger names a conversation; its consumer reads the messages from the stage table, whose rows expire
    # STAGE_TTL_SECONDS after they are written (the trigger's send). The age alarm that says nothing consumes the
    # queue must come while they are still there, with time to repair the consumer: else they are lost unsaid.
    age, ttl = template["Parameters"]["QueueAgeAlarmSeconds"], template["Parameters"]["StageTtlSeconds"]
    longest_window = template["Parameters"]["BatchWindowSeconds"]["MaxValue"]
    for queue in _routed_queues(configs):
        alarm = _age_alarm(template, queue)
        for threshold in (age["Default"], age["MinValue"], age["MaxValue"]):
            left = _staged_after_alarm(template, queue, threshold, ttl["Default"])
            assert left >= HOUR, f"{alarm} at {threshold} s leaves {left} s before the default stage TTL"
        # The shortest stage TTL still keeps a trigger's messages past its longest window and the earliest alarm.
        assert ttl["MinValue"] > longest_window + age["MinValue"]
        assert _staged_after_alarm(template, queue, age["MinValue"], ttl["MinValue"]) > 0


def _staged_after_alarm(template: dict[str, Any], queue: str, threshold: int, stage_ttl: int) -> int:
    """Seconds a trigger's staged messages are left once its unconsumed queue's age alarm fires at ``threshold``."""
    waiting = [queue_age(queue, EPOCH + seconds, seconds) for seconds in range(60, 4 * DAY, 60)]
    first = alarm_periods(template, _age_alarm(template, queue), waiting, {"QueueAgeAlarmSeconds": str(threshold)})[0]
    return EPOCH + stage_ttl - (first + PERIOD)


def test_every_routed_queue_has_its_age_alarm_and_keeps_its_dead_letters_longer_than_its_messages(
    template: dict[str, Any], configs: list[Any]
) -> None:
    ages = {
        series.dimensions
        for name, body in template["Resources"].items()
        if body["Type"] == "AWS::CloudWatch::Alarm"
        for series in alarm_series(template, name)
        if (series.namespace, series.metric, series.stat) == ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum")
    }
    queues = template["Resources"]
    for queue in _routed_queues(configs):
        assert (("QueueName", f"{queue}.QueueName"),) in ages
        # A message moved to the dead-letter queue keeps its enqueue time: there it must outlive the source's retention.
        dead_letter = queues[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        retention = queues[queue]["Properties"]["MessageRetentionPeriod"]
        assert queues[dead_letter]["Properties"]["MessageRetentionPeriod"] > retention


def test_the_capture_alarm_exists_with_capture_and_watches_every_series_it_is_counted_in(
    template: dict[str, Any], configs: list[Any]
) -> None:
    resource = template["Resources"]["CaptureFailuresAlarm"]
    assert resource["Condition"] == "CaptureOn"
    watched = {(s.metric, s.dimensions) for s in alarm_series(template, "CaptureFailuresAlarm")}
    emitted = set()
    for pipeline in [*(config.name for config in configs), UNROUTED_PIPELINE]:
        line = count_line("NS", pipeline, CAPTURE_FAILURE_METRIC, timestamp_ms=1, stack=STACK)
        emitted |= {(p.metric, p.dimensions) for p in emf_datapoints(line)}
    assert watched == emitted
    namespace = resolve(template, {"Ref": "MetricsNamespace"})
    assert {s.namespace for s in alarm_series(template, "CaptureFailuresAlarm")} == {namespace}


def test_a_capture_setting_the_function_cannot_use_raises_the_capture_alarm_at_the_cold_start(
    world: Any, cold_start: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = resolve(TEMPLATE, {"Ref": "MetricsNamespace"})
    capsys.readouterr()
    container = cold_start(
        STACK_NAME=STACK, METRICS_NAMESPACE=namespace, CAPTURE_S3_URI="s3://captures/prod/", CAPTURE_MASK="all"
    )
    assert __import__("handler")._application.capture is None
    points = emf_datapoints(capsys.readouterr().out)
    assert alarm_periods(TEMPLATE, "CaptureFailuresAlarm", points)
    world.add_conversation()
    world.add_default_secrets()
    assert container.handler(rest_event("whatsapp", whatsapp_params()), None)["statusCode"] == 200


@pytest.mark.parametrize("channel", ["whatsapp", "nowhere"])
def test_an_event_not_captured_raises_the_capture_alarm(
    world: Any, cold_start: Any, capsys: pytest.CaptureFixture[str], channel: str
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    namespace = resolve(TEMPLATE, {"Ref": "MetricsNamespace"})
    container = cold_start(
        STACK_NAME=STACK,
        METRICS_NAMESPACE=namespace,
        CAPTURE_S3_URI="s3://no-such-bucket/prod/",
        CAPTURE_WAIT_MS="2000",
    )
    capsys.readouterr()
    container.handler(rest_event(channel, whatsapp_params()), None)
    points = emf_datapoints(capsys.readouterr().out)
    assert alarm_periods(TEMPLATE, "CaptureFailuresAlarm", points)


@pytest.mark.parametrize("start", STARTS)
def test_a_twilio_message_that_api_gateway_answers_500_on_every_attempt_raises_an_alarm(start: str) -> None:
    # API Gateway answers 500 without running the function when it may not invoke it (its permission gone after a
    # stack change, say): no Lambda metric, no log line, only the API's 5XXError. Twilio's 3 attempts per message
    # stayed under a threshold of 5, so a tenant with one message every few minutes lost every one unalarmed.
    points = []
    for number in range(TWILIO_ATTEMPTS):
        points += api_answer(TEMPLATE, STARTS[start] + number * TWILIO_RETRY_SECONDS, 500, "/whatsapp")
    assert firing(TEMPLATE, points) == {"Api5xxAlarm"}


def test_an_email_that_api_gateway_answers_500_on_every_delivery_raises_an_alarm_at_the_first() -> None:
    # The same 500 without the function (Lambda refused the invocation: API Gateway's permission to invoke it gone,
    # or an event over Lambda's 6 MB payload, an email over about 4.4 MB): no Lambda metric, no log line of the
    # function. SendGrid retries a 5xx on its own schedule, hours apart, one delivery per period: under Api5xxAlarm's
    # 2, while EmailCrashesFilter counted only the 502 of a function that ran and answered nothing. After 3 days
    # SendGrid drops the email.
    deliveries = [EPOCH + hours * HOUR for hours in (0, 1, 5, 24, 71)]
    points = [point for at in deliveries for point in api_answer(TEMPLATE, at, 500, "/email")]
    first = {name for name in firing(TEMPLATE, points) if alarm_periods(TEMPLATE, name, points)[0] == deliveries[0]}
    assert first, "an email API Gateway answered 500 on every delivery was dropped and no alarm told anyone"


def test_an_email_answered_503_by_the_function_and_delivered_on_a_retry_raises_no_crash_alarm() -> None:
    # The function's own 503 (a transient fault, its document counted in EmailTransientErrorsAlarm) is no crash.
    points = [*api_answer(TEMPLATE, EPOCH, 503, "/email"), *api_answer(TEMPLATE, EPOCH + HOUR, 200, "/email")]
    assert "EmailCrashAlarm" not in firing(TEMPLATE, points)


def test_a_5xx_that_twilio_s_retry_gets_past_raises_no_alarm() -> None:
    points = [*api_answer(TEMPLATE, EPOCH, 502, "/whatsapp"), *api_answer(TEMPLATE, EPOCH + 6, 200, "/whatsapp")]
    assert firing(TEMPLATE, points) == set()


def test_no_data_is_no_alarm() -> None:
    # Every watched series is written only when something happens (an error, a capture, a message waiting in a
    # queue, an invocation): a period without data is a quiet one, never a breach.
    alarms = {name: body for name, body in TEMPLATE["Resources"].items() if body["Type"] == "AWS::CloudWatch::Alarm"}
    assert {name: body["Properties"]["TreatMissingData"] for name, body in alarms.items()} == dict.fromkeys(
        alarms, "notBreaching"
    )
    assert firing(TEMPLATE, []) == set()


def test_a_signed_message_posted_to_the_other_channels_path_raises_its_alarm_and_forgeries_do_not(
    world: Any, deployed: tuple[Any, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    # A Messaging Service holding both senders posts an SMS to …/whatsapp: answered 200, staged nowhere, lost.
    container, clock = deployed
    world.add_conversation()
    world.add_default_secrets()
    forged = rest_event("whatsapp", sms_params(sid="SM" + "b" * 32), token="not-the-token")
    stranger = rest_event("whatsapp", sms_params(sid="SM" + "c" * 32, From="+15550001111"))
    points: list[Datapoint] = []
    for number, event in enumerate([forged, stranger] * 5):
        status, left = attempt(container, event, EPOCH + number, clock, capsys)
        assert status == 200
        points += left
    assert firing(TEMPLATE, points) == set(), "posts anyone can send paged on-call"

    status, left = attempt(container, rest_event("whatsapp", sms_params()), EPOCH + 20, clock, capsys)
    assert status == 200 and world.stage_rows() == []
    assert firing(TEMPLATE, [*points, *left]) == {"MisroutedMessagesAlarm"}


def test_the_misrouted_messages_alarm_watches_every_pipeline_that_checks_them(
    template: dict[str, Any], configs: list[Any]
) -> None:
    checking = [config.name for config in configs if checker(config) is not None]
    assert "twilio_inbound" in checking  # the shipped pipelines that check them, whatever others are added
    emitted = set()
    for pipeline in checking:
        line = count_line("NS", pipeline, MISROUTED_METRIC, timestamp_ms=1, stack=STACK)
        emitted |= {(p.metric, p.dimensions) for p in emf_datapoints(line)}
    assert {(s.metric, s.dimensions) for s in alarm_series(template, "MisroutedMessagesAlarm")} == emitted


def test_a_queue_age_alarm_is_found_by_the_queue_it_watches_not_by_its_name(
    template: dict[str, Any], configs: list[Any]
) -> None:
    """Before: the two age-alarm tests looked the alarm up as ``<Queue>AgeAlarm``, a name no doc gives, so a new
    pipeline's queue alarmed as ``WebhookAgeAlarm`` passed the test that every routed queue has an age alarm and failed
    the other two with a bare ``KeyError: 'WebhookQueueAgeAlarm'``; a queue with none said no more."""
    renamed = copy.deepcopy(template)
    resources = renamed["Resources"]
    resources["WhatsAppAgeAlarm"] = resources.pop("WhatsAppQueueAgeAlarm")
    test_a_trigger_that_nothing_consumes_raises_its_queue_age_alarm_long_before_sqs_deletes_it(renamed, configs)
    test_a_trigger_that_nothing_consumes_raises_its_queue_age_alarm_while_its_messages_are_still_staged(
        renamed, configs
    )
    del resources["WhatsAppAgeAlarm"]
    with pytest.raises(AssertionError, match="no alarm watches the age of WhatsAppQueue's oldest message"):
        test_a_trigger_that_nothing_consumes_raises_its_queue_age_alarm_long_before_sqs_deletes_it(renamed, configs)
