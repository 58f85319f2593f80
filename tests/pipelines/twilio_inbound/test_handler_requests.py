"""Request shapes end to end: what Twilio and API Gateway really send, signed with twilio's own
RequestValidator over the URL the contract names (§3, §4.4). Each accepted case ends QUEUED."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from engine.errors import ConfigError
from tests.support.expect import twiml_response
from tests.support.webhooks import (
    TOKEN,
    WEBHOOK_KEY,
    http_api_event,
    rest_event,
    sign,
    sms_params,
    whatsapp_params,
)
from tests.support.world import SMS_SECRET, WA_SECRET

EXECUTE_API = "abc123.execute-api.us-east-1.amazonaws.com"


def _repeated_keys() -> dict[str, Any]:
    pairs = [
        *whatsapp_params().items(),
        ("MediaUrl", "https://a/1"),
        ("MediaUrl", "https://a/0"),
        ("Tag", ""),
        ("Tag", "x"),
    ]
    return rest_event("whatsapp", pairs)


def _headers_only_multi() -> dict[str, Any]:
    event = rest_event("whatsapp", whatsapp_params())
    event["headers"] = None
    return event


def _header_case(name: str) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        event = rest_event("whatsapp", whatsapp_params())
        signature = event["headers"].pop("X-Twilio-Signature")
        event["multiValueHeaders"].pop("X-Twilio-Signature")
        event["headers"][name] = signature
        return event

    return build


def _no_host_header() -> dict[str, Any]:
    # Host from requestContext.domainName when the header is absent.
    event = rest_event("whatsapp", whatsapp_params(), host=EXECUTE_API)
    del event["headers"]["Host"]
    del event["multiValueHeaders"]["Host"]
    return event


def _forwarded_http() -> dict[str, Any]:
    params = whatsapp_params()
    url = "http://hooks.example.com/prod/whatsapp"
    return rest_event("whatsapp", params, headers={"X-Forwarded-Proto": "http"}, signature=sign(url, params))


def _rest_query_single_only() -> dict[str, Any]:
    event = rest_event("whatsapp", whatsapp_params(), query={"tenant": ["acme"]})
    event["multiValueQueryStringParameters"] = None
    return event


ACCEPTED: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("rest_plain", lambda: rest_event("whatsapp", whatsapp_params())),
    ("rest_base64_body", lambda: rest_event("whatsapp", whatsapp_params(), base64_body=True)),
    ("repeated_keys_and_blank_values", _repeated_keys),
    ("sms_blank_values_kept", lambda: rest_event("sms", sms_params(ToCity="", ToZip="", FromCity=""))),
    ("empty_body_value", lambda: rest_event("whatsapp", whatsapp_params(body=""))),
    (
        "unknown_extra_fields",
        lambda: rest_event("whatsapp", whatsapp_params(ButtonPayload="yes", AddOns='{"status":"ok"}')),
    ),
    ("special_characters", lambda: rest_event("whatsapp", whatsapp_params(body="a+b=c & d%20e / ? #frag 👋"))),
    ("whitespace_kept", lambda: rest_event("whatsapp", whatsapp_params(body="line1\r\nline2  "))),
    ("headers_null_multi_value_present", _headers_only_multi),
    ("header_lower_case", _header_case("x-twilio-signature")),
    ("header_upper_case", _header_case("X-TWILIO-SIGNATURE")),
    ("host_from_request_context", _no_host_header),
    ("x_forwarded_proto_http", _forwarded_http),
    ("custom_domain_base_path", lambda: rest_event("whatsapp", whatsapp_params(), public_path="/v1/twilio/whatsapp")),
    ("trailing_slash", lambda: rest_event("whatsapp", whatsapp_params(), public_path="/prod/whatsapp/")),
    ("no_stage_no_base_path", lambda: rest_event("sms", sms_params(), public_path="/sms")),
    (
        "signed_with_explicit_443",
        lambda: rest_event("whatsapp", whatsapp_params(), signed_url="https://hooks.example.com:443/prod/whatsapp"),
    ),
    (
        "rest_query_multi_value",
        lambda: rest_event(
            "whatsapp", whatsapp_params(), query={"tenant": ["acme corp"], "x": ["1", "2"], "k": ["a/b"]}
        ),
    ),
    ("rest_query_single_value_only", _rest_query_single_only),
    ("http_api_whatsapp", lambda: http_api_event("whatsapp", whatsapp_params())),
    ("http_api_sms", lambda: http_api_event("sms", sms_params())),
    (
        "http_api_query_as_sent",
        lambda: http_api_event("whatsapp", whatsapp_params(), raw_query="name=Jane%20Doe&x=1&x=0"),
    ),
    (
        "http_api_custom_domain",
        lambda: http_api_event("whatsapp", whatsapp_params(), host="hooks.example.com", raw_path="/twilio/whatsapp"),
    ),
]


@pytest.mark.parametrize("build", [row[1] for row in ACCEPTED], ids=[row[0] for row in ACCEPTED])
def test_accepted_request_shapes(world, lambda_handler, outcomes, build):
    world.add_conversation()
    world.add_default_secrets()
    assert lambda_handler(build(), None) == twiml_response()
    assert outcomes() == [("QUEUED", None)]


REJECTED: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    # The query string re-encoded ("+" for "%20"): 2.0 must sign rawQueryString exactly as sent.
    (
        "http_api_query_reencoded",
        lambda: http_api_event(
            "whatsapp",
            whatsapp_params(),
            raw_query="name=Jane%20Doe",
            signed_url=f"https://{EXECUTE_API}/prod/whatsapp?name=Jane+Doe",
        ),
    ),
    (
        "http_api_query_dropped",
        lambda: http_api_event(
            "whatsapp", whatsapp_params(), raw_query="x=1", signed_url=f"https://{EXECUTE_API}/prod/whatsapp"
        ),
    ),
    (
        "rest_query_dropped",
        lambda: rest_event(
            "whatsapp", whatsapp_params(), query={"x": ["1"]}, signed_url="https://hooks.example.com/prod/whatsapp"
        ),
    ),
    (
        "rest_query_reordered",
        lambda: rest_event(
            "whatsapp",
            whatsapp_params(),
            query={"a": ["1"], "b": ["2"]},
            signed_url="https://hooks.example.com/prod/whatsapp?b=2&a=1",
        ),
    ),
    (
        "rest_without_stage",
        lambda: rest_event("whatsapp", whatsapp_params(), signed_url="https://hooks.example.com/whatsapp"),
    ),
    (
        "other_host",
        lambda: rest_event("whatsapp", whatsapp_params(), signed_url="https://evil.example.com/prod/whatsapp"),
    ),
    (
        "https_signed_http_received",
        lambda: rest_event("whatsapp", whatsapp_params(), signed_url="http://hooks.example.com/prod/whatsapp"),
    ),
    (
        "repeated_key_value_dropped",
        lambda: {**_repeated_keys(), "body": urlencode([*whatsapp_params().items(), ("MediaUrl", "https://a/1")])},
    ),
]


@pytest.mark.parametrize("build", [row[1] for row in REJECTED], ids=[row[0] for row in REJECTED])
def test_rejected_request_shapes(world, lambda_handler, outcomes, build):
    world.add_conversation()
    world.add_default_secrets()
    assert lambda_handler(build(), None) == twiml_response()
    assert outcomes() == [("INVALID_SIGNATURE", "INVALID_SIGNATURE")]
    assert world.stage_rows() == []


def test_stage_body_is_the_text_exactly_as_sent(world, lambda_handler):
    world.add_conversation()
    world.add_default_secrets()
    text = "a+b=c & d%20e\r\n  ½ 👋  "
    lambda_handler(http_api_event("whatsapp", whatsapp_params(body=text)), None)
    [row] = world.stage_rows()
    assert row["body"] == text


def test_repeated_keys_reach_the_handoff_request_as_lists(world, lambda_handler):
    world.add_conversation(hand_off_to_human=True)
    world.add_default_secrets()
    lambda_handler(_repeated_keys(), None)
    [(body, _)] = world.sent("handoff")
    assert body["request"]["MediaUrl"] == ["https://a/1", "https://a/0"]
    assert body["request"]["Tag"] == ["", "x"]
    assert body["request"]["Body"] == "Hello there! 👋"


# PUBLIC_BASE_URL: the signed URL is the base + the channel path, whatever host and path the event shows.
PUBLIC = "https://hooks.example.com/prod"


@pytest.mark.parametrize("base", [PUBLIC, PUBLIC + "/"])
@pytest.mark.parametrize(
    ("signed_url", "outcome"),
    [
        (PUBLIC + "/whatsapp", "QUEUED"),
        (f"https://{EXECUTE_API}/prod/whatsapp", "INVALID_SIGNATURE"),
        (PUBLIC + "/sms", "INVALID_SIGNATURE"),
    ],
)
def test_public_base_url(world, cold_start, base, signed_url, outcome, caplog):
    import logging

    from tests.support.expect import outcomes

    caplog.set_level(logging.INFO)
    container = cold_start(PUBLIC_BASE_URL=base)
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(), host=EXECUTE_API, signed_url=signed_url)
    assert container.handler(event, None) == twiml_response()
    assert outcomes(caplog)[-1][0] == outcome


@pytest.mark.parametrize("base", [PUBLIC, PUBLIC + "/", None])
@pytest.mark.parametrize(
    ("signed_url", "outcome"),
    [(PUBLIC + "/whatsapp/", "QUEUED"), (PUBLIC + "/whatsapp", "INVALID_SIGNATURE")],
)
def test_a_trailing_slash_on_the_request_path_is_signed(world, cold_start, outcomes, base, signed_url, outcome):
    # Twilio signs the URL exactly as configured: a console URL ending in "/" is the path the request carries.
    container = cold_start(**({"PUBLIC_BASE_URL": base} if base else {}))
    world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params(), public_path="/prod/whatsapp/", signed_url=signed_url)
    assert container.handler(event, None) == twiml_response()
    assert outcomes() == [(outcome, None if outcome == "QUEUED" else outcome)]


def test_public_base_url_keeps_the_query(world, cold_start, outcomes):
    container = cold_start(PUBLIC_BASE_URL=PUBLIC)
    world.add_conversation()
    world.add_default_secrets()
    event = http_api_event("whatsapp", whatsapp_params(), raw_query="t=acme", signed_url=PUBLIC + "/whatsapp?t=acme")
    assert container.handler(event, None) == twiml_response()
    assert outcomes() == [("QUEUED", None)]


@pytest.mark.parametrize(
    "base", ["hooks.example.com/prod", "ftp://hooks.example.com", "https://h/prod?x=1", "https://h/p#f"]
)
def test_public_base_url_that_is_not_a_base_url_fails_the_cold_start(world, cold_start, base):
    with pytest.raises(ConfigError) as caught:
        cold_start(PUBLIC_BASE_URL=base)
    [problem] = caught.value.problems
    assert problem.file.endswith("twilio_inbound.yaml")
    assert problem.line > 1
    assert "public_base_url" in problem.message and repr(base) in problem.message


# X-Twilio-Webhooks-Signature-Settings: a shared key (the secret's twilio_webhook_key) and the named algorithm.
SHARED = {"twilio_account_sid": "AC0", "twilio_auth_token": TOKEN, "twilio_webhook_key": WEBHOOK_KEY}


@pytest.mark.parametrize(
    ("settings", "key", "algorithm", "outcome"),
    [
        ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", WEBHOOK_KEY, "HMAC_SHA256", "QUEUED"),
        ("key=webhooks_sharedkey_1, algorithm=HMAC_SHA1", WEBHOOK_KEY, "HMAC_SHA1", "QUEUED"),
        ("key=webhooks_sharedkey_1", WEBHOOK_KEY, None, "QUEUED"),
        ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", TOKEN, "HMAC_SHA256", "INVALID_SIGNATURE"),
        ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", WEBHOOK_KEY, "HMAC_SHA1", "INVALID_SIGNATURE"),
        ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA1", WEBHOOK_KEY, "HMAC_SHA256", "INVALID_SIGNATURE"),
    ],
)
def test_signature_settings_header(world, lambda_handler, outcomes, settings, key, algorithm, outcome):
    world.add_conversation()
    world.create_secret(WA_SECRET, json.dumps(SHARED))
    world.create_secret(SMS_SECRET, json.dumps(SHARED))
    headers = {"X-Twilio-Webhooks-Signature-Settings": settings}
    event = rest_event("whatsapp", whatsapp_params(), token=key, algorithm=algorithm, headers=headers)
    assert lambda_handler(event, None) == twiml_response()
    assert outcomes()[-1][0] == outcome


def test_without_settings_header_the_auth_token_signs(world, lambda_handler, outcomes):
    world.add_conversation()
    world.create_secret(WA_SECRET, json.dumps(SHARED))
    world.create_secret(SMS_SECRET, json.dumps(SHARED))
    lambda_handler(rest_event("whatsapp", whatsapp_params(), token=WEBHOOK_KEY), None)
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "9" * 32), token=TOKEN), None)
    assert [outcome for outcome, _ in outcomes()] == ["INVALID_SIGNATURE", "QUEUED"]


def test_token_whitespace_in_the_secret_is_ignored(world, lambda_handler, outcomes):
    world.add_conversation()
    world.create_secret(WA_SECRET, json.dumps({"twilio_auth_token": f"  {TOKEN}\n"}))
    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()
    assert outcomes() == [("QUEUED", None)]


def test_base64_http_api_body_is_decoded_before_parsing(world, lambda_handler):
    world.add_conversation()
    world.add_default_secrets()
    event = http_api_event("sms", sms_params(body="base64 ✓"))
    assert base64.b64decode(event["body"]).decode().startswith("ToCountry=US")
    lambda_handler(event, None)
    [row] = world.stage_rows()
    assert row["body"] == "base64 ✓"
