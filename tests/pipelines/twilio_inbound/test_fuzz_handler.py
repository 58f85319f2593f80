"""Hostile events through the whole pipeline (moto world): every event gets a defined response, and only
requests whose signature verifies with the tenant's token ever lead to a write or a send.

Two generators: hypothesis composes mutations of signed events (tampering ones and re-signed hostile values),
and a seeded byte-flip fuzzer corrupts the JSON of signed events at random.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from engine.responses import RetryableFailure
from steps.twilio.form import FormParams
from tests.support.expect import CONTRACT_CODES as ERROR_CODES
from tests.support.expect import CONTRACT_TRANSIENT_CODES as TRANSIENT_CODES
from tests.support.faults import FaultInjector, new_container
from tests.support.webhooks import (
    EMPTY_TWIML,
    HOST,
    TOKEN,
    http_api_event,
    rest_event,
    sms_params,
    status_params,
    whatsapp_params,
)
from tests.support.world import World

WRITES = ("stage_put", "lock_put", "lock_release", "send")
JSON_STATUSES = {400, 403, 404, 409, 500, 503}
MAX_BODY = 65536
MAX_PARAMS = 500
Event = dict[str, Any]


@pytest.fixture
def container(world: World) -> Iterator[tuple[Any, FaultInjector]]:
    world.add_conversation()
    world.add_default_secrets()
    yield new_container(world.resources)


def sid() -> str:
    return "SM" + uuid.uuid4().hex


def base_events() -> dict[str, Callable[[], Event]]:
    return {
        "rest-whatsapp": lambda: rest_event("whatsapp", whatsapp_params(sid())),
        "rest-sms-base64": lambda: rest_event("sms", sms_params(sid()), base64_body=True),
        "http-api-whatsapp": lambda: http_api_event("whatsapp", whatsapp_params(sid())),
        "status-callback": lambda: rest_event("whatsapp", status_params(sid())),
    }


def headers_of(event: Event) -> list[dict[str, Any]]:
    return [value for key in ("headers", "multiValueHeaders") if isinstance(value := event.get(key), dict)]


def set_header(event: Event, name: str, value: Any) -> None:
    for headers in headers_of(event):
        for key in [key for key in headers if key.lower() == name.lower()]:
            del headers[key]
        headers[name] = [value] if headers is event.get("multiValueHeaders") else value


def body_text(event: Event) -> str:
    body = event.get("body")
    if not isinstance(body, str):
        return ""
    if not event.get("isBase64Encoded"):
        return body
    try:
        return base64.b64decode(body).decode("utf-8", "replace")
    except ValueError:
        return body


def set_body(event: Event, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    if event.get("isBase64Encoded") or isinstance(text, bytes):
        event["isBase64Encoded"] = True
        event["body"] = base64.b64encode(data).decode()
    else:
        event["body"] = text


# Mutations; those in TAMPERING change what was signed (or the signature): the result must never be written.
def tamper(kind: str, text: str) -> Callable[[Event], None]:
    def apply(event: Event) -> None:
        if kind == "drop signature":
            set_header(event, "X-Twilio-Signature", None)
            for headers in headers_of(event):
                headers.pop("X-Twilio-Signature", None)
        elif kind == "forge signature":
            set_header(event, "X-Twilio-Signature", "forged" + text)
        elif kind == "empty signature":
            set_header(event, "X-Twilio-Signature", "")
        elif kind == "change body":
            set_body(event, body_text(event) + "&Body=" + text + "x")
        elif kind == "bad base64":
            event["isBase64Encoded"] = True
            event["body"] = "%%%" + text
        elif kind == "non-utf8 body":
            set_body(event, b"From=\xff\xfe" + text.encode())
        elif kind == "latin-1 body":
            set_body(event, body_text(event).replace("Body=", "Body=%E9t%E9%20") + "x")
        elif kind == "huge body":
            set_body(event, "Body=" + "a" * (MAX_BODY + 1))
        elif kind == "many params":
            set_body(event, "&".join(f"p{index}=1" for index in range(MAX_PARAMS + 1)))
        elif kind == "forge host":
            set_header(event, "Host", "other.example.com")
            set_header(event, "host", "other.example.com")
        elif kind == "inject header":
            set_header(event, "Host", HOST + "\r\nX-Twilio-Signature: " + text)
        elif kind == "second signature header":
            for headers in headers_of(event):
                headers["x-twilio-signature"] = ["forged"] if headers is event.get("multiValueHeaders") else "forged"
        elif kind == "other path":
            event["path"] = event["rawPath"] = "/prod/" + text + "x"
            if isinstance(event.get("requestContext"), dict):
                event["requestContext"]["path"] = event["path"]
        elif kind == "no path":
            for key in ("path", "rawPath"):
                event.pop(key, None)
            event["requestContext"] = None
        elif kind == "GET":
            event["httpMethod"] = "GET"
            event.setdefault("requestContext", {})
            if isinstance(event["requestContext"], dict):
                event["requestContext"]["http"] = {"method": "GET"}
                event["requestContext"]["httpMethod"] = "GET"

    return apply


TAMPERING = [
    "drop signature",
    "forge signature",
    "empty signature",
    "change body",
    "bad base64",
    "non-utf8 body",
    "latin-1 body",
    "huge body",
    "many params",
    "forge host",
    "inject header",
    "second signature header",
    "other path",
    "no path",
]
# Refused too, but what was signed is intact: a later mutation (e.g. no requestContext) can undo the refusal.
OTHER_MUTATIONS = ["GET"]
FIELDS = ["headers", "multiValueHeaders", "body", "isBase64Encoded", "requestContext", "version", "rawQueryString"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
hostile_text = st.text(max_size=30) | st.sampled_from(["\x00", "\r\n", "²", "whatsapp:", "+", "💥" * 200, "%00"])


def resigned(base: str, field: str, value: str) -> Event:
    """A genuine request (signed with the real token) carrying a hostile value."""
    if base == "rest-sms-base64":
        return rest_event("sms", {**sms_params(sid()), field: value}, base64_body=True)
    return rest_event("whatsapp", {**whatsapp_params(sid()), field: value})


@st.composite
def hostile_events(draw: st.DrawFn) -> tuple[Event, bool]:
    """An event and whether it was tampered with after signing."""
    base = draw(st.sampled_from(sorted(base_events())))
    if draw(st.booleans()):
        field = draw(st.sampled_from(["Body", "From", "To", "MessageSid", "NumMedia", "MediaUrl0", "WaId", "x"]))
        event = resigned(base, field, draw(hostile_text))
        tampered = False
    else:
        event = base_events()[base]()
        tampered = False
    for kind in draw(st.lists(st.sampled_from(TAMPERING + OTHER_MUTATIONS), max_size=2)):
        tamper(kind, draw(st.text(max_size=10)))(event)
        tampered = tampered or kind in TAMPERING
    if draw(st.integers(0, 4)) == 0:
        # May or may not break the signature (headers may still be in multiValueHeaders): the oracle decides.
        event[draw(st.sampled_from(FIELDS))] = draw(json_values)
    return event, tampered


def authentic(handled: Any) -> bool:
    """The request the pipeline parsed verifies, independently, with the tenant's token."""
    request = handled.result.doc.get("request") or {}
    if "url" not in request:
        return False
    pairs = [
        (name, value)
        for name, values in request["fields"].items()
        for value in (values if isinstance(values, list) else [values])
    ]
    event = handled.event
    signature = next(
        (
            value
            for headers in headers_of(event)
            for key, value in headers.items()
            if key.lower() == "x-twilio-signature"
        ),
        None,
    )
    signature = signature[-1] if isinstance(signature, list) else signature
    return bool(signature) and RequestValidator(TOKEN).validate(request["url"], FormParams(pairs), signature)


def deliver(application: Any, injector: FaultInjector, event: Event) -> tuple[Any, int]:
    """Process ``event``; the handled result and the number of write or send calls it made."""
    injector.reset_counts()
    handled = application.process(event, None)
    object.__setattr__(handled, "event", event)
    return handled, sum(injector.calls[call] for call in WRITES)


def assert_defined(handled: Any) -> None:
    result = handled.result
    assert result.outcome != "INTERNAL_ERROR", result.error
    if handled.raised is not None:
        assert isinstance(handled.raised, RetryableFailure) and handled.raised.code in TRANSIENT_CODES
        return
    response = handled.response
    if handled.channel in ("whatsapp", "sms"):
        assert response["statusCode"] == 200
        assert response["headers"] == {"Content-Type": "text/xml"}
        assert response["body"] == EMPTY_TWIML or "<Message>" in response["body"]
    else:
        assert response["statusCode"] in JSON_STATUSES
        body = json.loads(response["body"])
        assert body["status"] == "error" and body["error_code"] in ERROR_CODES


def test_hostile_events_get_defined_answers_and_write_nothing_unauthenticated(
    container: tuple[Any, FaultInjector],
) -> None:
    application, injector = container
    seen: dict[str, int] = {}

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(hostile_events())
    def run(case: tuple[Event, bool]) -> None:
        event, tampered = case
        handled, writes = deliver(application, injector, event)
        seen[handled.result.outcome] = seen.get(handled.result.outcome, 0) + 1
        assert_defined(handled)
        if tampered:
            assert writes == 0, handled.result.outcome
        if writes:
            assert authentic(handled)

    run()
    print(f"\nhypothesis outcomes: {dict(sorted(seen.items()))}")
    assert {"PARSING_ERROR", "INVALID_SIGNATURE"} <= set(seen)
    assert seen.keys() & {"QUEUED", "BATCHED"}, "some genuine hostile values must get through"


def flip(text: str, rng: random.Random, flips: int) -> str:
    data = bytearray(text.encode())
    for _ in range(flips):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return data.decode("utf-8", "replace")


def test_byte_flip_fuzz(container: tuple[Any, FaultInjector]) -> None:
    application, injector = container
    rng = random.Random(6)
    builders = list(base_events().values())
    outcomes: dict[str, int] = {}
    runs = 0
    while runs < 250:
        original = builders[rng.randrange(len(builders))]()
        try:
            event = json.loads(flip(json.dumps(original, ensure_ascii=False), rng, rng.randint(1, 4)))
        except ValueError:
            continue
        runs += 1
        handled, writes = deliver(application, injector, event)
        outcomes[handled.result.outcome] = outcomes.get(handled.result.outcome, 0) + 1
        assert_defined(handled)
        if writes:
            assert authentic(handled), event
    print(f"\nbyte-flip outcomes over {runs} events: {dict(sorted(outcomes.items()))}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Body=" + "a" * (MAX_BODY + 1), f"body exceeds {MAX_BODY} bytes"),
        ("&".join(f"p{index}=1" for index in range(MAX_PARAMS + 1)), f"more than {MAX_PARAMS} form parameters"),
    ],
)
def test_limits_are_named_errors_before_any_aws_call(
    container: tuple[Any, FaultInjector], body: str, message: str
) -> None:
    application, injector = container
    event = rest_event("whatsapp", whatsapp_params(), body=body)
    handled, _ = deliver(application, injector, event)
    assert handled.result.outcome == "PARSING_ERROR"
    assert message in handled.result.error.message
    assert sum(injector.calls.values()) == 0
    assert handled.response["statusCode"] == 200 and handled.response["body"] == EMPTY_TWIML


@pytest.mark.parametrize(
    ("name", "value"),
    [("NumMedia", "1" * 5000), ("MediaUrl" + "1" * 5000, "https://a/1")],
    ids=["NumMedia", "MediaUrl-index"],
)
def test_digit_runs_int_refuses_are_no_count_and_no_bug(
    container: tuple[Any, FaultInjector], name: str, value: str
) -> None:
    """int() refuses over 4300 digits: such a count or media index is not Twilio's, never an INTERNAL_ERROR.

    INTERNAL_ERROR sets off the message-loss alarm, and this one came before the signature was read, so anyone
    could raise it. A forged request ends INVALID_SIGNATURE; a signed one is a message without media.
    """
    application, injector = container
    forged, _ = deliver(
        application, injector, rest_event("whatsapp", {**whatsapp_params(sid()), name: value}, token="x")
    )
    assert forged.result.outcome == "INVALID_SIGNATURE"
    signed, writes = deliver(application, injector, rest_event("whatsapp", {**whatsapp_params(sid()), name: value}))
    assert signed.result.outcome == "QUEUED" and writes > 0
    assert (signed.result.doc["request"]["num_media"], signed.result.doc["request"]["media"]) == (0, [])
