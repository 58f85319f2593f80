"""Property-based tests of the shipped ``twilio.parse`` step, fed by the runtime's API Gateway adapter.

Any JSON value can arrive as an event: the adapter gives a request or ``EventError`` (answered by the
runtime), and the step a parsed request or its ``PARSING_ERROR`` / ``INVALID_SIGNATURE``, nothing else; a
parsed request can always be signature-checked, and verifies exactly when what was signed reached the
step unchanged. Whatever form Twilio signs (any text, blank values, repeated keys), the parsed request verifies.
"""

from __future__ import annotations

import base64
import time
from typing import Any, cast
from urllib.parse import urlencode

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.clock import SystemClock
from engine.config import load_config
from engine.context import Context, Services
from engine.errors import StepFailure
from engine.http import HttpRequest
from engine.secrets import Redacted
from runtime.apigateway import EventError, forwarded_scheme, http_request
from steps.secrets import SigningKey
from steps.twilio.signature import is_valid
from tests.support.expect import ENV
from tests.support.faults import ROOT
from tests.support.webhooks import HOST, TOKEN, http_api_event, rest_event, sign, whatsapp_params

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PARSE = load_config(ROOT / "pipelines" / "twilio_inbound.yaml", ROOT / "rules", ENV).pipeline.steps()[0]
assert PARSE.uses == "twilio.parse"
KEY = SigningKey("secret", "twilio_auth_token", Redacted(TOKEN), cached=False)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
paths = st.sampled_from(["/prod/whatsapp", "/prod/sms", "/whatsapp", "/", "", "/prod/email", "//sms//"]) | st.text()
EVENT_FIELDS = {
    "version": st.sampled_from(["1.0", "2.0"]) | json_values,
    "rawPath": paths | json_values,
    "rawQueryString": st.text(max_size=30) | json_values,
    "path": paths | json_values,
    "httpMethod": st.sampled_from(["POST", "GET", "post"]) | json_values,
    "headers": st.dictionaries(st.text(max_size=30), st.text(max_size=60) | json_values, max_size=5) | json_values,
    "multiValueHeaders": st.dictionaries(st.text(max_size=30), st.lists(st.text(max_size=40)) | json_values)
    | json_values,
    "queryStringParameters": st.dictionaries(st.text(max_size=8), st.text(max_size=8) | json_values) | json_values,
    "multiValueQueryStringParameters": st.dictionaries(st.text(max_size=8), st.lists(st.text()) | json_values)
    | json_values,
    "requestContext": st.fixed_dictionaries(
        {}, optional={"path": paths | json_values, "domainName": st.text() | json_values, "http": json_values}
    )
    | json_values,
    "body": st.text(max_size=200) | st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()) | json_values,
    "isBase64Encoded": st.booleans() | json_values,
}
events = st.fixed_dictionaries({}, optional=EVENT_FIELDS) | json_values


def run_parse(event: Any) -> Context:
    services = Services(tables=cast(Any, None), queues=cast(Any, None), secrets=cast(Any, None), clock=SystemClock())
    ctx = Context(event=http_request(event), services=services, deadline=time.monotonic() + 5)
    result = PARSE.step.run(ctx)
    assert result.output is not None
    ctx.doc["request"] = dict(result.output)
    return ctx


def assert_defined(event: Any) -> bool | None:
    """The parse ends with a defined error (None), or a request whose signature check answers (its verdict)."""
    try:
        ctx = run_parse(event)
    except EventError:
        return None
    except StepFailure as failure:
        assert failure.code in ("PARSING_ERROR", "INVALID_SIGNATURE"), failure
        return None
    form, signature = ctx.private["form"], ctx.private["signature"]
    verdict = is_valid(ctx.doc["request"]["url"], form, signature, KEY, ctx.private["signature_settings"])
    assert isinstance(verdict, bool)
    return verdict


@FUZZ
@given(events)
def test_any_event_is_a_request_or_an_event_error(event: Any) -> None:
    try:
        request = http_request(event)
    except EventError:
        return
    assert isinstance(request, HttpRequest)
    assert isinstance(request.body, bytes) and isinstance(request.query, str)
    assert (request.unreadable is None) or (request.body == b"" and isinstance(request.unreadable, str))


@FUZZ
@given(events)
@example({"path": "/prod/whatsapp", "multiValueQueryStringParameters": {"a": 5}})
@example({"rawPath": "/prod/whatsapp", "version": "2.0", "rawQueryString": 7})
@example({"path": "/prod/whatsapp", "headers": None, "body": None})
def test_any_event_gets_a_defined_parse_result(event: Any) -> None:
    assert_defined(event)


def mutate_signed(params: dict[str, str], field: str, value: str) -> dict[str, Any]:
    params = {**params, field: value}
    return rest_event("whatsapp", params)


@FUZZ
@given(
    st.sampled_from(["From", "To", "MessageSid", "Body", "NumMedia", "MediaUrl0", "MessageStatus", "WaId"]),
    st.text(max_size=40),
)
@example("NumMedia", "²")
@example("NumMedia", "-1")
@example("From", "whatsapp:")
@example("MediaUrl99999999999999999999", "x")
def test_hostile_field_values_get_a_defined_parse_result(field: str, value: str) -> None:
    # The event is signed over the changed field: a request that parses verifies.
    assert assert_defined(mutate_signed(whatsapp_params(), field, value)) in (True, None)


header_values = st.text(max_size=60) | st.sampled_from(
    ["hooks.example.com\r\nX-Twilio-Signature: forged", "evil.example.com", "\ud800", "HOOKS.EXAMPLE.COM.", "a b"]
)


@FUZZ
@given(
    st.sampled_from(["Host", "X-Forwarded-Proto", "X-Twilio-Signature", "X-Twilio-Webhooks-Signature-Settings"]),
    header_values,
)
def test_hostile_headers_get_a_defined_parse_result(header: str, value: str) -> None:
    event = rest_event("whatsapp", whatsapp_params())
    unchanged = event["headers"].get(header)
    event["headers"][header] = value
    event["multiValueHeaders"][header] = [value]
    verdict = assert_defined(event)
    if header != "X-Twilio-Webhooks-Signature-Settings" and verdict is not None:
        # What the signature covers (host, scheme) or the signature itself: valid only when unchanged (an empty
        # Host falls back to the platform's domain name; an X-Forwarded-Proto not naming http or https, to https).
        if header == "X-Forwarded-Proto":
            assert verdict is (forwarded_scheme(value) == "https")
        else:
            assert verdict is ((value or unchanged) == unchanged)


@FUZZ
@given(st.sampled_from(["requestContext.path", "rawQueryString", "domainName"]), st.text(max_size=40))
@example("requestContext.path", "/prod/\ud800/whatsapp")
@example("rawQueryString", "a=\udfff")
def test_hostile_urls_get_a_defined_parse_result(where: str, value: str) -> None:
    if where == "requestContext.path":
        event = rest_event("whatsapp", whatsapp_params())
        event["requestContext"]["path"] = value + "/whatsapp"
    else:
        event = http_api_event("whatsapp", whatsapp_params(), raw_query="x=1")
        if where == "rawQueryString":
            event["rawQueryString"] = value
        else:
            del event["headers"]["host"]
            event["requestContext"]["domainName"] = value
    assert_defined(event)


form_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
# The fields that identify the message must have Twilio's exact shape, once (test_identity_fields covers them);
# any other pair Twilio signs must verify.
IDENTITY_FIELDS = frozenset({"MessageSid", "SmsMessageSid", "SmsSid", "AccountSid", "From", "To"})
extra_pairs = st.lists(st.tuples(form_text.filter(lambda key: key not in IDENTITY_FIELDS), form_text), max_size=12)


@FUZZ
@given(extra_pairs, st.sampled_from(["rest", "rest-base64", "http-api"]))
def test_whatever_twilio_signs_verifies(extra: list[tuple[str, str]], shape: str) -> None:
    pairs = [*whatsapp_params().items(), *extra]
    if shape == "http-api":
        host = "abc123.execute-api.us-east-1.amazonaws.com"
        url = f"https://{host}/prod/whatsapp"
        event = http_api_event("whatsapp", whatsapp_params(), host=host)
        event["body"] = base64.b64encode(urlencode(pairs).encode()).decode()
        event["headers"]["x-twilio-signature"] = sign(url, pairs)
    else:
        event = rest_event("whatsapp", pairs, base64_body=shape == "rest-base64")
        url = f"https://{HOST}/prod/whatsapp"
    ctx = run_parse(event)
    assert ctx.doc["request"]["url"] == url
    assert is_valid(url, ctx.private["form"], ctx.private["signature"], KEY, None)
    assert not is_valid(
        url, ctx.private["form"], ctx.private["signature"], SigningKey("s", "f", Redacted("x"), False), None
    )
