"""The request fields each parse step declares (``request_fields``, which ``--check`` reads) are those it gives."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlencode

from engine.context import Context, Services
from engine.http import HttpRequest
from engine.registry import BuildInfo
from steps.sendgrid.parse import SendGridParse
from steps.sendgrid.read import SendGridRead
from steps.twilio.parse import TwilioParse
from tests.support.timeline import FixedClock
from tests.support.webhooks import whatsapp_params
from tools.sendgrid_events import Email, KeyPair, inbound_parse_body, signed

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def context(event: HttpRequest) -> Context:
    services = Services(tables=cast(Any, None), queues=cast(Any, None), secrets=cast(Any, None), clock=FixedClock(NOW))
    return Context(event=event, services=services, deadline=time.monotonic() + 5)


def test_the_twilio_request_has_exactly_the_fields_its_step_declares() -> None:
    host = "abc123.execute-api.eu-west-1.amazonaws.com"
    headers = {"x-twilio-signature": "sig", "host": host, "content-type": "application/x-www-form-urlencoded"}
    body = urlencode(whatsapp_params()).encode()
    event = HttpRequest("POST", "/prod/whatsapp", headers, body, host=host, domain=host)
    result = TwilioParse({}, BuildInfo(rulesets={}, tables={}, targets={}, channels=("whatsapp",))).run(context(event))
    assert result.output is not None
    assert set(result.output) == TwilioParse.request_fields


def test_the_email_request_has_exactly_the_fields_its_step_declares() -> None:
    body, content_type = inbound_parse_body(Email())
    request = signed(KeyPair(), body, content_type, timestamp=int(NOW.timestamp()))
    headers = {name.lower(): value for name, value in request.headers.items()}
    event = HttpRequest("POST", "/prod/email", headers, body)
    info = BuildInfo(rulesets={}, tables={}, targets={}, channels=("email",))
    ctx = context(event)
    parser = SendGridParse({"defer_content": True}, info)
    result = parser.run(ctx)
    assert result.output is not None
    assert set(result.output) == parser.request_fields
    ctx.doc["request"] = dict(result.output)
    read = SendGridRead({}, info).run(ctx)
    assert read.output is not None
    assert set(read.output) == SendGridRead.request_fields == SendGridParse.request_fields > parser.request_fields
