"""TWILIO_NOTES §1.8's vectors through ``handler.handler``, for every event type the contract accepts (§3, §4.4).

The vectors' own URLs end in ``/inbound``, which no channel serves (§3: the last path segment decides), so each
vector's form is posted to a channel path and signed there by twilio's ``RequestValidator`` itself, as Twilio
would sign it for that URL; the vector's verified signature anchors the form first. The events are built here
by hand as API Gateway sends them (not by the tools' builder): REST payload 1.0 on execute-api with its stage and
on a custom domain with a base path; HTTP API payload 2.0 with a named stage; a Function URL (2.0, ``$default``).
Each accepted case ends ``QUEUED`` with empty TwiML and the text staged exactly; each near miss (the URL or the
form changed the way §3 of the notes warns about) ends ``INVALID_SIGNATURE`` with nothing written.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from steps.twilio.form import FormParams
from tests.pipelines.twilio_inbound.test_handler_signature_vectors import (
    SHA256_SETTINGS,
    SMS,
    TOKEN,
    V3_PAIRS,
    V7,
    WA,
    U,
)
from tests.support.expect import twiml_response
from tests.support.webhooks import WEBHOOK_KEY, status_params
from tests.support.world import SMS_SECRET, WA_SECRET

Pairs = list[tuple[str, str]]
EXECUTE_API = "abc123.execute-api.us-east-1.amazonaws.com"
CUSTOM = "hooks.example.com"
FUNCTION_URL = "abcdefghijklmnopqrstuvwxyz0123.lambda-url.us-east-1.on.aws"

# The vectors' forms (§1.8) with the signatures verified over U; V3's repeated MediaUrl rides on a WhatsApp message.
FORMS: dict[str, tuple[Pairs, str]] = {
    "V1_whatsapp": (list(WA.items()), "cuImA3vtONcrwqmiun+tk9VENcE="),
    "V2_sms_blank_values": (list(SMS.items()), "F+n/YUlQUhMKzsr0Amomk+Lp9s8="),
    "V7_media_only": (list(V7.items()), "aX/Mno0bErTEnmm480JwwpdBwvY="),
    "V8_whitespace_body": (list({**WA, "Body": "line1\r\nline2  "}.items()), "CopmzR6e7hoH9287OpLE+3rylIU="),
}
V3_ON_WHATSAPP: Pairs = [*WA.items(), *[pair for pair in V3_PAIRS if pair[0] == "MediaUrl"]]


def _signature(url: str, pairs: Pairs, token: str = TOKEN, algorithm: str | None = None) -> str:
    return str(RequestValidator(token).compute_signature(url, FormParams(pairs), algorithm))


def _channel(pairs: Pairs) -> str:
    return "whatsapp" if dict(pairs)["To"].startswith("whatsapp:") else "sms"


def rest(
    host: str,
    public_path: str,
    pairs: Pairs,
    *,
    query: dict[str, list[str]] | None = None,
    signed_url: str | None = None,
    headers: dict[str, str] | None = None,
    token: str = TOKEN,
    algorithm: str | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """A REST API (payload 1.0) event: ``path`` without the stage or base path, ``requestContext.path`` with it."""
    rebuilt = f"https://{host}{public_path}" + (
        f"?{urlencode([(k, v) for k, vs in query.items() for v in vs])}" if query else ""
    )
    all_headers = {
        "Host": host,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "X-Twilio-Signature": _signature(signed_url or rebuilt, pairs, token, algorithm),
        **(headers or {}),
    }
    body = urlencode(pairs)
    return {
        "resource": "/{proxy+}",
        "path": "/" + public_path.rsplit("/", 1)[-1],
        "httpMethod": "POST",
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} if query else None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": public_path.rsplit("/", 1)[-1]},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": "POST",
            "path": public_path,
            "stage": "prod",
            "domainName": host,
            "requestTimeEpoch": 1795694400000,
        },
        "body": base64.b64encode(body.encode()).decode() if base64_body else body,
        "isBase64Encoded": base64_body,
    }


def http_api(
    host: str,
    raw_path: str,
    pairs: Pairs,
    *,
    raw_query: str = "",
    signed_url: str | None = None,
    headers: dict[str, str] | None = None,
    token: str = TOKEN,
    algorithm: str | None = None,
    stage: str = "prod",
) -> dict[str, Any]:
    """An HTTP API / Function URL (payload 2.0) event: lower-case headers, the form base64-encoded."""
    rebuilt = f"https://{host}{raw_path}" + (f"?{raw_query}" if raw_query else "")
    all_headers = {
        "host": host,
        "content-type": "application/x-www-form-urlencoded",
        "x-forwarded-proto": "https",
        "x-twilio-signature": _signature(signed_url or rebuilt, pairs, token, algorithm),
        **{name.lower(): value for name, value in (headers or {}).items()},
    }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": {
            "domainName": host,
            "http": {"method": "POST", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "54.172.60.2"},
            "stage": stage,
            "timeEpoch": 1795694400000,
        },
        "body": base64.b64encode(urlencode(pairs).encode()).decode(),
        "isBase64Encoded": True,
    }


EventFor = Callable[[Pairs], dict[str, Any]]
# Each event type the contract names, posting a form to its channel's path.
EVENT_TYPES: dict[str, EventFor] = {
    "rest_execute_api_stage": lambda pairs: rest(EXECUTE_API, f"/prod/{_channel(pairs)}", pairs),
    "rest_custom_domain_base_path": lambda pairs: rest(CUSTOM, f"/twilio/t/acme/{_channel(pairs)}", pairs),
    "rest_base64_body": lambda pairs: rest(CUSTOM, f"/v1/{_channel(pairs)}", pairs, base64_body=True),
    "http_api_named_stage": lambda pairs: http_api(EXECUTE_API, f"/prod/{_channel(pairs)}", pairs),
    "function_url": lambda pairs: http_api(FUNCTION_URL, f"/{_channel(pairs)}", pairs, stage="$default"),
}


@pytest.fixture
def tenant(world):
    """Conversations for both vector senders (WA's and SMS's user numbers) and their secrets, token "12345"."""
    world.add_conversation()
    sms_user = SMS["From"]
    world.add_conversation(
        primary_channel=sms_user,
        gsi_recipient_tel=sms_user,
        recipient_tel=sms_user,
        gsi_company_whatsapp_number="+10000000000",
        conversation_id=f"ci-aaa-000#pi-aaa-000#sms#{sms_user.lstrip('+')}",
    )
    world.add_default_secrets(TOKEN)
    secret = {"twilio_account_sid": WA["AccountSid"], "twilio_auth_token": TOKEN, "twilio_webhook_key": WEBHOOK_KEY}
    for name in (WA_SECRET, SMS_SECRET):
        world.set_secret(name, secret)
    return world


def _queued(world, handler, event: dict[str, Any], pairs: Pairs, outcomes) -> None:
    assert handler(event, None) == twiml_response()
    assert outcomes() == [("QUEUED", None)]
    [row] = [row for row in world.stage_rows() if row["message_sid"] == dict(pairs)["MessageSid"]]
    assert row["body"] == dict(pairs).get("Body", "")
    assert row["channel_type"] == _channel(pairs)


@pytest.mark.parametrize("form", list(FORMS), ids=list(FORMS))
def test_the_vectors_own_signatures_anchor_the_forms(form):
    pairs, verified = FORMS[form]
    assert RequestValidator(TOKEN).validate(U, FormParams(pairs), verified)


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
@pytest.mark.parametrize("form", list(FORMS))
def test_every_vector_form_is_queued_through_every_event_type(tenant, lambda_handler, outcomes, event_type, form):
    pairs, _ = FORMS[form]
    _queued(tenant, lambda_handler, EVENT_TYPES[event_type](pairs), pairs, outcomes)


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_repeated_keys_v3_are_signed_with_every_value(tenant, lambda_handler, outcomes, event_type):
    _queued(tenant, lambda_handler, EVENT_TYPES[event_type](V3_ON_WHATSAPP), V3_ON_WHATSAPP, outcomes)


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_v10_sha256_with_the_shared_key(tenant, lambda_handler, outcomes, event_type):
    pairs = list(WA.items())
    event = EVENT_TYPES[event_type](pairs)
    settings = {"X-Twilio-Webhooks-Signature-Settings": SHA256_SETTINGS}
    if "version" in event:
        event = http_api(
            event["headers"]["host"],
            event["rawPath"],
            pairs,
            headers=settings,
            token=WEBHOOK_KEY,
            algorithm="HMAC_SHA256",
        )
    else:
        event = rest(
            event["headers"]["Host"],
            event["requestContext"]["path"],
            pairs,
            headers=settings,
            token=WEBHOOK_KEY,
            algorithm="HMAC_SHA256",
            base64_body=event["isBase64Encoded"],
        )
    _queued(tenant, lambda_handler, event, pairs, outcomes)


# The URL variants of V4, V4b and V5, on each payload version as the contract rebuilds them (§4.4).
URL_CASES: dict[str, Callable[[], dict[str, Any]]] = {
    # V4: a query Twilio's URL carries; 1.0 re-encodes multiValueQueryStringParameters in the order given.
    "v4_query_rest": lambda: rest(
        CUSTOM, "/twilio/whatsapp", list(WA.items()), query={"tenant": ["acme"], "channel": ["whatsapp"]}
    ),
    "v4_query_http_api": lambda: http_api(
        EXECUTE_API, "/prod/whatsapp", list(WA.items()), raw_query="tenant=acme&channel=whatsapp"
    ),
    # V4b: %20 stays %20 in 2.0's rawQueryString, as sent.
    "v4b_pct20_http_api": lambda: http_api(
        FUNCTION_URL, "/whatsapp", list(WA.items()), raw_query="name=Jane%20Doe&x=1", stage="$default"
    ),
    # 1.0 has the query decoded: urlencode writes the space as "+", so a URL registered that way validates.
    "v4b_plus_rest": lambda: rest(
        CUSTOM, "/twilio/whatsapp", list(WA.items()), query={"name": ["Jane Doe"], "x": ["1"]}
    ),
    # V5: signed over an explicit :443, received on the port-less host.
    "v5_443_rest": lambda: rest(
        EXECUTE_API, "/prod/whatsapp", list(WA.items()), signed_url=f"https://{EXECUTE_API}:443/prod/whatsapp"
    ),
    "v5_443_function_url": lambda: http_api(
        FUNCTION_URL, "/whatsapp", list(WA.items()), signed_url=f"https://{FUNCTION_URL}:443/whatsapp", stage="$default"
    ),
}


@pytest.mark.parametrize("case", list(URL_CASES))
def test_url_variants_of_the_vectors_are_queued(tenant, lambda_handler, outcomes, case):
    _queued(tenant, lambda_handler, URL_CASES[case](), list(WA.items()), outcomes)


NEAR_MISSES: dict[str, Callable[[], dict[str, Any]]] = {
    # V9's lesson: REST's public path keeps the stage; a signature over the path without it is not this request's.
    "rest_stage_missing": lambda: rest(
        EXECUTE_API, "/prod/whatsapp", list(WA.items()), signed_url=f"https://{EXECUTE_API}/whatsapp"
    ),
    # V4b near miss: 2.0 signs rawQueryString as sent, never re-encoded.
    "http_api_query_reencoded": lambda: http_api(
        EXECUTE_API,
        "/prod/whatsapp",
        list(WA.items()),
        raw_query="name=Jane%20Doe&x=1",
        signed_url=f"https://{EXECUTE_API}/prod/whatsapp?name=Jane+Doe&x=1",
    ),
    # V4 near miss: the query reordered.
    "rest_query_reordered": lambda: rest(
        CUSTOM,
        "/twilio/whatsapp",
        list(WA.items()),
        query={"tenant": ["acme"], "channel": ["whatsapp"]},
        signed_url=f"https://{CUSTOM}/twilio/whatsapp?channel=whatsapp&tenant=acme",
    ),
    # V5b: a signature over :8443 never matches the port-less URL.
    "function_url_port_8443": lambda: http_api(
        FUNCTION_URL,
        "/whatsapp",
        list(WA.items()),
        signed_url=f"https://{FUNCTION_URL}:8443/whatsapp",
        stage="$default",
    ),
    # V10 near miss: a SHA-256 signature without the settings header that names the algorithm.
    "sha256_without_settings": lambda: http_api(
        FUNCTION_URL, "/whatsapp", list(WA.items()), token=WEBHOOK_KEY, algorithm="HMAC_SHA256", stage="$default"
    ),
}


@pytest.mark.parametrize("case", list(NEAR_MISSES))
def test_near_misses_are_invalid_signatures_and_write_nothing(tenant, lambda_handler, outcomes, case):
    assert lambda_handler(NEAR_MISSES[case](), None) == twiml_response()
    assert outcomes() == [("INVALID_SIGNATURE", "INVALID_SIGNATURE")]
    assert tenant.stage_rows() == [] and tenant.lock_rows() == []


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_a_form_changed_after_signing_is_refused(tenant, lambda_handler, outcomes, event_type):
    pairs = list({**WA, "ToCity": ""}.items())
    event = EVENT_TYPES[event_type](pairs)
    tampered = urlencode(list(WA.items()))  # the blank ToCity Twilio signed is dropped on the way
    event["body"] = base64.b64encode(tampered.encode()).decode() if event["isBase64Encoded"] else tampered
    assert lambda_handler(event, None) == twiml_response()
    assert outcomes() == [("INVALID_SIGNATURE", "INVALID_SIGNATURE")]


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
def test_a_status_callback_is_acknowledged_through_every_event_type(
    tenant, lambda_handler, aws, outcomes, event_type, channel
):
    # §3: From is the company and To the user, so the lookup swaps them; acknowledged with empty TwiML, no write.
    pairs = list(status_params(channel=channel).items())
    assert lambda_handler(EVENT_TYPES[event_type](pairs), None) == twiml_response()
    assert outcomes() == [("STATUS_CALLBACK", None)]
    assert [call for call in aws.names() if not call.startswith(("dynamodb.Query", "secretsmanager."))] == []
