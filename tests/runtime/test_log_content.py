"""What the log lines of hostile or unusual requests carry: decisions, never the request's own text."""

from __future__ import annotations

import json
from types import SimpleNamespace

from tests.support import logscan
from tests.support.webhooks import TOKEN, USER, WEBHOOK_KEY, rest_event, whatsapp_params
from tests.support.world import SMS_SECRET, WA_SECRET

BODY = "Hello there! 👋"


def _with_webhook_key(world) -> None:
    world.add_conversation()
    secret = {"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": TOKEN, "twilio_webhook_key": WEBHOOK_KEY}
    for name in (WA_SECRET, SMS_SECRET):
        world.create_secret(name, json.dumps(secret))


def test_an_unknown_algorithm_in_the_unsigned_settings_header_is_not_written_to_the_logs(world, lambda_handler) -> None:
    """Anyone can send X-Twilio-Webhooks-Signature-Settings: the algorithm it names is request data, not a decision."""
    _with_webhook_key(world)
    named = f"{USER} said {BODY}"
    headers = {"X-Twilio-Webhooks-Signature-Settings": f"key=webhooks_sharedkey_1,algorithm={named}"}
    event = rest_event("whatsapp", whatsapp_params(), token=WEBHOOK_KEY, headers=headers)

    answer = lambda_handler(event, SimpleNamespace(aws_request_id="req-1", get_remaining_time_in_millis=lambda: 6000))

    assert answer["statusCode"] == 200
    lines = logscan.captured()
    events = [json.loads(line) for line in lines if '"message": "event"' in line]
    assert [event.get("error_code") for event in events] == ["INVALID_SIGNATURE"]
    assert not [line for line in lines if "said" in line]
    assert logscan.find_leaks(lines, logscan.SENSITIVE) == []


def _error_lines() -> list[dict[str, object]]:
    return [line for line in map(json.loads, logscan.captured()) if line["level"] == "ERROR"]


def test_a_step_that_raises_is_logged_where_it_raised_but_not_with_a_message_quoting_the_body(
    world, lambda_handler, monkeypatch
) -> None:
    """A bug's exception text may quote what it failed on: the traceback names the type and the frames, not the text."""
    import steps.sqs

    world.add_conversation(hand_off_to_human=True)
    world.add_default_secrets()

    def body_as_number(doc, limit=0):
        # A bug: int() refuses the text, and its ValueError quotes it.
        return int(doc["request"]["body"])

    monkeypatch.setitem(steps.sqs._BODIES, "handoff", (body_as_number, "HANDED_OFF"))

    answer = lambda_handler(rest_event("whatsapp", whatsapp_params()), None)

    assert answer["statusCode"] == 200
    (error,) = _error_lines()
    assert error["message"] == "step send raised ValueError"
    trace = str(error["exception"])
    assert trace.startswith("Traceback (most recent call last):") and trace.endswith("\nValueError")
    assert "in body_as_number" in trace
    assert BODY not in trace and "invalid literal" not in trace
    assert logscan.find_leaks(logscan.captured(), logscan.SENSITIVE) == []


def test_a_bug_while_handling_an_aws_error_does_not_log_the_item_the_aws_message_quotes(
    world, lambda_handler, aws, monkeypatch
) -> None:
    """DynamoDB's ValidationException text can quote the item; a traceback chained to it must not show it."""
    import steps.stage

    world.add_conversation()
    world.add_default_secrets()
    quoted = f"One or more parameter values were invalid: body {BODY!r} from {USER}"
    aws.fail("dynamodb.PutItem", "ValidationException", message=quoted)

    def broken(*_: object, **__: object) -> Exception:
        raise AttributeError("a bug in the error handling")

    monkeypatch.setattr(steps.stage, "service_failure", broken)

    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)

    traces = [str(line["exception"]) for line in _error_lines() if "exception" in line]
    assert traces and any("botocore.exceptions.ClientError" in trace for trace in traces)
    assert all("parameter values were invalid" not in trace for trace in traces)
    assert logscan.find_leaks(logscan.captured(), logscan.SENSITIVE) == []
