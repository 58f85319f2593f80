"""A genuine signed request re-aimed elsewhere (another channel, stage or base path, an extra query, another scheme,
or a status callback's signature on the message endpoint) is refused, writing and sending nothing; the same request
is accepted once. (A foreign Host is refused before any AWS call: ``test_security.py``.)

Each case starts from what Twilio signed (``twilio``'s own ``RequestValidator``) and changes only what an attacker
holding a capture can change: where it is posted, and the headers the platform does not set itself. (A port in
the Host is not among them: twilio's validator checks the URL without its port, so it names this same endpoint,
where the replay record refuses a repeat.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.webhooks import HOST, STAGE, rest_event, sms_params, status_params, whatsapp_params

SIGNED = f"https://{HOST}/{STAGE}/whatsapp"


def _posted_to(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(event: dict[str, Any]) -> dict[str, Any]:
        event["path"] = path.removeprefix(f"/{STAGE}")
        event["requestContext"]["path"] = path
        return event

    return change


def _with_query(event: dict[str, Any]) -> dict[str, Any]:
    event["queryStringParameters"] = {"tenant": "other"}
    event["multiValueQueryStringParameters"] = {"tenant": ["other"]}
    return event


def _with_headers(**headers: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(event: dict[str, Any]) -> dict[str, Any]:
        for name, value in headers.items():
            event["headers"][name.replace("_", "-")] = value
            event["multiValueHeaders"][name.replace("_", "-")] = [value]
        return event

    return change


REAIMED: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "a WhatsApp message posted to /sms": (rest_event("whatsapp", whatsapp_params()), _posted_to(f"/{STAGE}/sms")),
    "an SMS posted to /whatsapp": (rest_event("sms", sms_params()), _posted_to(f"/{STAGE}/whatsapp")),
    "another stage": (rest_event("whatsapp", whatsapp_params()), _posted_to("/dev/whatsapp")),
    "a base path before the stage": (rest_event("whatsapp", whatsapp_params()), _posted_to(f"/x/{STAGE}/whatsapp")),
    "an extra query parameter": (rest_event("whatsapp", whatsapp_params()), _with_query),
    "X-Forwarded-Proto http": (rest_event("whatsapp", whatsapp_params()), _with_headers(X_Forwarded_Proto="http")),
    "a status callback's signature on the message endpoint": (
        rest_event("whatsapp", status_params(), signed_url=f"https://{HOST}/{STAGE}/status"),
        lambda event: event,
    ),
}


@pytest.mark.parametrize("case", REAIMED)
def test_a_signed_request_re_aimed_elsewhere_is_refused_and_writes_nothing(
    world: Any, lambda_handler: Any, outcomes: Any, case: str
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    event, change = REAIMED[case]
    lambda_handler(change(copy.deepcopy(event)), None)
    [(outcome, code)] = outcomes()
    assert code in ("INVALID_SIGNATURE", "PARSING_ERROR"), (case, outcome)
    assert world.stage_rows() == [] and world.replay_rows() == [] and not any(world.all_sent().values())


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
def test_the_request_as_twilio_signed_it_is_accepted(
    world: Any, lambda_handler: Any, outcomes: Any, channel: str
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event(channel, whatsapp_params() if channel == "whatsapp" else sms_params()), None)
    assert outcomes() == [("QUEUED", None)]
