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
