"""Final (non-transient) errors end to end: each case → the exact response of contract §5, nothing written.

Cases are data: a name, how the world is set up, the event, and the error code the run must end with.
AWS faults (throttling, 5xx, timeouts, missing resources) are in ``test_handler_faults.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.expect import (
    CONTRACT_LOCKED_TEXT,
    locked_reply_text,
    locked_twiml,
    twiml_response,
)
from tests.support.webhooks import (
    COMPANY_WA,
    EMPTY_TWIML,
    TOKEN,
    WEBHOOK_KEY,
    http_api_event,
    rest_event,
    sign,
    sms_params,
    whatsapp_params,
)
from tests.support.world import ABSENT, SMS_SECRET, WA_SECRET, World

WA_URL = "https://hooks.example.com/prod/whatsapp"


def _event(**changes: Any) -> Callable[[], dict[str, Any]]:
    """A signed WhatsApp REST event whose form has ``changes`` (None removes a field)."""

    def build() -> dict[str, Any]:
        params = {**whatsapp_params(), **changes}
        return rest_event("whatsapp", {k: v for k, v in params.items() if v is not None})

    return build


def _unsigned_body(change: Callable[[dict[str, Any]], None]) -> Callable[[], dict[str, Any]]:
    """A correctly signed event, then altered by ``change`` (as an attacker or a broken proxy would)."""

    def build() -> dict[str, Any]:
        event = rest_event("whatsapp", whatsapp_params())
        change(event)
        return event

    return build


def _with_headers(headers: dict[str, str] | None, *, multi: bool = False) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        event = rest_event("whatsapp", whatsapp_params())
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()} if (multi and headers) else None
        return event

    return build


def _secrets(value: Any) -> Callable[[World], None]:
    """Both channel secrets hold ``value`` (a JSON value, or text when a str)."""

    def setup(world: World) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        world.create_secret(WA_SECRET, text)
        world.create_secret(SMS_SECRET, text)

    return setup


def _conversation(**overrides: Any) -> Callable[[World], None]:
    def setup(world: World) -> None:
        world.add_conversation(**overrides)

    return setup


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    event: Callable[[], dict[str, Any]] = field(default_factory=_event)
    conversation: Callable[[World], None] = field(default_factory=_conversation)
    secrets: Callable[[World], None] = field(default_factory=lambda: lambda world: world.add_default_secrets())
    aws_calls: list[str] | None = None  # the exact AWS calls made, when the case pins them


def _big_body() -> dict[str, Any]:
    return rest_event("whatsapp", whatsapp_params(body="x" * 70000))


def _many_fields() -> dict[str, Any]:
    return rest_event("whatsapp", whatsapp_params(**{f"Extra{n}": "v" for n in range(600)}))


def _bad_base64(event: dict[str, Any]) -> None:
    event["isBase64Encoded"] = True
    event["body"] = "%%% not base64 %%%"


def _latin1_body(event: dict[str, Any]) -> None:
    event["isBase64Encoded"] = True
    form = urlencode(whatsapp_params(body="café")).encode().replace(b"caf%C3%A9", b"caf\xe9")
    event["body"] = base64.b64encode(form).decode()


def _tamper(event: dict[str, Any]) -> None:
    event["body"] = event["body"].replace("Hello", "Hijacked")


def _add_field(event: dict[str, Any]) -> None:
    event["body"] += "&Extra=1"


def _drop_blank_field() -> dict[str, Any]:
    # Signed with ToCity="" kept (as Twilio signs it), delivered without it: the signature must fail.
    signed = sms_params()
    event = rest_event("sms", signed)
    event["body"] = urlencode([(k, v) for k, v in signed.items() if k != "ToCity"])
    return event


def _other_url() -> dict[str, Any]:
    return rest_event("whatsapp", whatsapp_params(), signed_url="https://hooks.example.com/prod/sms")


def _trailing_space_signature() -> dict[str, Any]:
    params = whatsapp_params()
    return rest_event("whatsapp", params, signature=sign(WA_URL, params) + " ")


def _settings_header_without_key() -> dict[str, Any]:
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    return rest_event("whatsapp", whatsapp_params(), token=WEBHOOK_KEY, algorithm="HMAC_SHA256", headers=settings)


def _settings_header_unknown_algorithm() -> dict[str, Any]:
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_MD5"}
    return rest_event("whatsapp", whatsapp_params(), token=WEBHOOK_KEY, headers=settings)


NO_AWS: list[str] = []
LOOKUP_ONLY = ["dynamodb.Query"]
TO_SECRET = ["dynamodb.Query", "secretsmanager.GetSecretValue"]
# A refusal by the rules is recorded after the answer is decided (replay.refusals): one write, nothing else.
TO_RULES = ["dynamodb.Query", "secretsmanager.GetSecretValue", "dynamodb.BatchGetItem", "dynamodb.PutItem"]

CASES = [
    # 1. parse
    Case("missing_From", "PARSING_ERROR", _event(From=None), aws_calls=NO_AWS),
    Case("missing_To", "PARSING_ERROR", _event(To=None), aws_calls=NO_AWS),
    Case("missing_MessageSid", "PARSING_ERROR", _event(MessageSid=None), aws_calls=NO_AWS),
    Case("blank_From", "PARSING_ERROR", _event(From=""), aws_calls=NO_AWS),
    Case("prefix_only_From", "PARSING_ERROR", _event(From="whatsapp:"), aws_calls=NO_AWS),
    Case(
        "GET_method", "PARSING_ERROR", lambda: rest_event("whatsapp", whatsapp_params(), method="GET"), aws_calls=NO_AWS
    ),
    Case("body_not_base64", "PARSING_ERROR", _unsigned_body(_bad_base64), aws_calls=NO_AWS),
    Case("body_not_utf8", "PARSING_ERROR", _unsigned_body(_latin1_body), aws_calls=NO_AWS),
    Case("body_too_large", "PARSING_ERROR", _big_body, aws_calls=NO_AWS),
    Case("too_many_fields", "PARSING_ERROR", _many_fields, aws_calls=NO_AWS),
    # 1. signature header
    Case("no_signature_header", "INVALID_SIGNATURE", _with_headers({"Host": "hooks.example.com"}), aws_calls=NO_AWS),
    Case(
        "empty_signature_header",
        "INVALID_SIGNATURE",
        lambda: rest_event("whatsapp", whatsapp_params(), signature=""),
        aws_calls=NO_AWS,
    ),
    Case("headers_null", "INVALID_SIGNATURE", _with_headers(None), aws_calls=NO_AWS),
    # 2. credential lookup
    Case("no_conversation", "CONVERSATION_NOT_FOUND", conversation=lambda world: None, aws_calls=LOOKUP_ONLY),
    Case(
        "other_company_number",
        "CONVERSATION_NOT_FOUND",
        conversation=_conversation(gsi_company_whatsapp_number="+14155559999"),
        aws_calls=LOOKUP_ONLY,
    ),
    Case(
        "no_channel_config",
        "MISSING_CREDENTIAL_CONFIG",
        conversation=_conversation(channel_config=ABSENT),
        aws_calls=LOOKUP_ONLY,
    ),
    Case(
        "null_channel_config",
        "MISSING_CREDENTIAL_CONFIG",
        conversation=_conversation(channel_config=None),
        aws_calls=LOOKUP_ONLY,
    ),
    Case(
        "no_whatsapp_credentials_id",
        "MISSING_CREDENTIAL_CONFIG",
        conversation=_conversation(channel_config={"sms_credentials_id": SMS_SECRET}),
    ),
    Case(
        "blank_credentials_id",
        "MISSING_CREDENTIAL_CONFIG",
        conversation=_conversation(channel_config={"whatsapp_credentials_id": "  "}),
    ),
    # 3. secret
    Case("secret_not_found", "SECRET_FETCH_FAILED", secrets=lambda world: None, aws_calls=TO_SECRET),
    Case("secret_not_json", "SECRET_FETCH_FAILED", secrets=_secrets("twilio_auth_token=12345"), aws_calls=TO_SECRET),
    Case("secret_json_array", "SECRET_FETCH_FAILED", secrets=_secrets(["12345"])),
    Case("secret_without_token", "SECRET_FETCH_FAILED", secrets=_secrets({"twilio_account_sid": "AC0"})),
    Case("secret_blank_token", "SECRET_FETCH_FAILED", secrets=_secrets({"twilio_auth_token": "   "})),
    Case("secret_null_token", "SECRET_FETCH_FAILED", secrets=_secrets({"twilio_auth_token": None})),
    # The header is not signed: a secret without the key it names means the request cannot be authentic.
    Case("shared_key_header_no_key_in_secret", "INVALID_SIGNATURE", _settings_header_without_key),
    # 4. signature
    Case(
        "wrong_token",
        "INVALID_SIGNATURE",
        lambda: rest_event("whatsapp", whatsapp_params(), token="54321"),
        aws_calls=TO_SECRET,
    ),
    Case("tampered_body", "INVALID_SIGNATURE", _unsigned_body(_tamper), aws_calls=TO_SECRET),
    Case("added_field", "INVALID_SIGNATURE", _unsigned_body(_add_field)),
    Case("dropped_blank_field", "INVALID_SIGNATURE", _drop_blank_field),
    Case("signed_for_other_path", "INVALID_SIGNATURE", _other_url),
    Case("signature_with_trailing_space", "INVALID_SIGNATURE", _trailing_space_signature),
    Case(
        "unknown_signature_algorithm",
        "INVALID_SIGNATURE",
        _settings_header_unknown_algorithm,
        secrets=_secrets({"twilio_auth_token": TOKEN, "twilio_webhook_key": WEBHOOK_KEY}),
    ),
    Case(
        "token_with_whitespace_not_stripped_by_signer",
        "INVALID_SIGNATURE",
        lambda: rest_event("whatsapp", whatsapp_params(), token=TOKEN + "\n"),
    ),
    # 5. the conversation item is read, then the rules
    Case("project_paused", "PROJECT_INACTIVE", conversation=_conversation(project_status="paused"), aws_calls=TO_RULES),
    Case("project_status_absent", "PROJECT_INACTIVE", conversation=_conversation(project_status=ABSENT)),
    Case("project_status_case", "PROJECT_INACTIVE", conversation=_conversation(project_status="ACTIVE")),
    Case(
        "channel_not_allowed",
        "CHANNEL_NOT_ALLOWED",
        conversation=_conversation(allowed_channels=["sms"]),
        aws_calls=TO_RULES,
    ),
    Case("allowed_channels_empty", "CHANNEL_NOT_ALLOWED", conversation=_conversation(allowed_channels=[])),
    Case("allowed_channels_absent", "CHANNEL_NOT_ALLOWED", conversation=_conversation(allowed_channels=ABSENT)),
    Case(
        "inactive_wins_over_channel_and_lock",
        "PROJECT_INACTIVE",
        conversation=_conversation(
            project_status="archived", allowed_channels=[], conversation_status="processing_reply"
        ),
    ),
    Case(
        "channel_wins_over_lock",
        "CHANNEL_NOT_ALLOWED",
        conversation=_conversation(allowed_channels=["sms"], conversation_status="processing_reply"),
    ),
    Case(
        "processing_reply",
        "CONVERSATION_LOCKED",
        conversation=_conversation(conversation_status="processing_reply"),
        aws_calls=TO_RULES,
    ),
    Case(
        "locked_beats_handoff",
        "CONVERSATION_LOCKED",
        conversation=_conversation(conversation_status="processing_reply", hand_off_to_human=True),
    ),
    # Another service's value of another type is refused, not a crash (INTERNAL_ERROR is for bugs:
    # test_handler_config.py, test_handler_faults.py).
    Case(
        "allowed_channels_is_a_number",
        "CHANNEL_NOT_ALLOWED",
        conversation=_conversation(allowed_channels=7),
        aws_calls=TO_RULES,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_final_error(world, lambda_handler, aws, outcomes, case):
    case.conversation(world)
    case.secrets(world)

    response = lambda_handler(case.event(), None)

    if case.code == "CONVERSATION_LOCKED":
        assert response == twiml_response(locked_twiml(locked_reply_text()))
    else:
        assert response == twiml_response(EMPTY_TWIML)
    assert outcomes() == [(case.code, case.code)]
    if case.aws_calls is not None:
        assert aws.names() == case.aws_calls
    assert world.stage_rows() == [] and world.lock_rows() == []
    assert not any(world.all_sent().values())
    refused = case.code in ("PROJECT_INACTIVE", "CHANNEL_NOT_ALLOWED", "CONVERSATION_LOCKED")
    assert [row["refused"] for row in world.replay_rows()] == ([case.code] if refused else [])


def test_locked_reply_is_the_contract_default_text(world, lambda_handler):
    assert locked_reply_text() == CONTRACT_LOCKED_TEXT
    world.add_conversation(conversation_status="processing_reply")
    world.add_default_secrets()
    response = lambda_handler(rest_event("sms", sms_params()), None)
    assert response["body"] == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        "I'm processing your previous message. Please wait for my response before sending more."
        "</Message></Response>"
    )
    assert response["body"].count("<Message>") == 1


def test_locked_reply_text_comes_from_the_rules_yaml(world, task_root):
    from tests.support.expect import ROOT

    text = (ROOT / "rules" / "30_conversation_lock.yaml").read_text()
    custom = "One moment <please> & thanks"
    container = task_root({"rules/30_conversation_lock.yaml": text.replace(CONTRACT_LOCKED_TEXT, custom)})
    world.add_conversation(conversation_status="processing_reply")
    world.add_default_secrets()
    response = container.handler(rest_event("whatsapp", whatsapp_params()), None)
    assert response == twiml_response(locked_twiml(custom))
    assert "&lt;please&gt; &amp; thanks" in response["body"]


def test_locked_reply_is_the_contract_default_when_the_rule_gives_none(world, task_root):
    from tests.support.expect import ROOT

    text = (ROOT / "rules" / "30_conversation_lock.yaml").read_text()
    without_reply = text.replace(f'      reply: "{CONTRACT_LOCKED_TEXT}"\n', "")
    assert "reply:" not in without_reply
    container = task_root({"rules/30_conversation_lock.yaml": without_reply})
    world.add_conversation(conversation_status="processing_reply")
    world.add_default_secrets()
    response = container.handler(rest_event("whatsapp", whatsapp_params()), None)
    assert response == twiml_response(locked_twiml(CONTRACT_LOCKED_TEXT))


# Paths no pipeline serves answer JSON (…/email is the email pipeline's: see tests/pipelines/email_inbound).
UNKNOWN_PATHS = [
    ("voice", lambda: rest_event("voice", whatsapp_params())),
    ("channel_not_last_segment", lambda: rest_event("whatsapp", whatsapp_params(), public_path="/prod/whatsapp/extra")),
    ("root", lambda: rest_event("whatsapp", whatsapp_params(), public_path="/")),
    ("case_differs", lambda: rest_event("WhatsApp", whatsapp_params())),
    ("http_api_unknown", lambda: http_api_event("status", whatsapp_params())),
    ("unknown_path_without_signature", lambda: rest_event("voice", whatsapp_params(), signature="")),
    (
        "unknown_path_bad_base64",
        lambda: {**rest_event("voice", whatsapp_params()), "isBase64Encoded": True, "body": "%%%"},
    ),
    ("no_path_at_all", lambda: {"httpMethod": "POST", "headers": {}, "body": ""}),
    ("not_an_object", lambda: ["not", "an", "event"]),
]


@pytest.mark.parametrize("build", [row[1] for row in UNKNOWN_PATHS], ids=[row[0] for row in UNKNOWN_PATHS])
def test_unknown_path_is_a_json_parsing_error(world, lambda_handler, aws, outcomes, build):
    world.add_conversation()
    world.add_default_secrets()
    response = lambda_handler(build(), None)
    assert response["statusCode"] == 400
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert set(body) == {"status", "error_code", "message"}
    assert body["status"] == "error" and body["error_code"] == "PARSING_ERROR"
    assert isinstance(body["message"], str) and body["message"]
    assert outcomes() == [("PARSING_ERROR", "PARSING_ERROR")]
    assert aws.names() == []


@pytest.mark.parametrize(
    ("channel", "mutate"),
    [
        ("whatsapp", _bad_base64),
        ("sms", _bad_base64),
        ("whatsapp", _latin1_body),
    ],
)
def test_unreadable_body_on_a_twilio_path_still_answers_twiml(world, lambda_handler, outcomes, channel, mutate):
    event = rest_event(channel, whatsapp_params())
    mutate(event)
    assert lambda_handler(event, None) == twiml_response()
    assert outcomes() == [("PARSING_ERROR", "PARSING_ERROR")]


def test_company_number_of_the_other_channel_is_not_found(world, lambda_handler, outcomes):
    # An SMS sent to the WhatsApp sender's number: the SMS index has no such pair.
    world.add_conversation(gsi_company_sms_number="+15005550099")
    world.add_default_secrets()
    params = sms_params(To=COMPANY_WA)
    assert lambda_handler(rest_event("sms", params), None) == twiml_response()
    assert outcomes() == [("CONVERSATION_NOT_FOUND", "CONVERSATION_NOT_FOUND")]
