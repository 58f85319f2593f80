"""Conversation items exactly as the contract (§2) describes them, written by other services: only the attributes
it names, and optional ones absent, null or of another DynamoDB type. Such an item is decided, never a crash.

Items are written DynamoDB-typed (not through the tests' plain-JSON helper), so each case says exactly what
the table holds.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.support.expect import twiml_response
from tests.support.logscan import forbid
from tests.support.webhooks import USER, rest_event, sms_params, whatsapp_params
from tests.support.world import ABSENT, SMS_SECRET, WA_SECRET, contract_item
from tests.support.world import CONTRACT_CONVERSATION_ID as CONVERSATION_ID


def handle(world, lambda_handler, item: dict[str, Any], channel: str = "whatsapp") -> dict[str, Any]:
    world.add_default_secrets()
    world.dynamodb.put_item(TableName=world.resources.conversations_table, Item=item)
    params = whatsapp_params() if channel == "whatsapp" else sms_params()
    response: dict[str, Any] = lambda_handler(rest_event(channel, params), None)
    return response


def test_an_item_with_only_the_contracts_attributes_is_queued(world, lambda_handler, outcomes):
    assert handle(world, lambda_handler, contract_item()) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    assert world.sent("whatsapp") == [({"conversation_id": CONVERSATION_ID, "primary_channel": USER}, 10)]


ALLOWED_CHANNELS = [
    ("a_map", {"M": {"whatsapp": {"BOOL": True}}}, "CHANNEL_NOT_ALLOWED"),
    ("a_number", {"N": "1"}, "CHANNEL_NOT_ALLOWED"),
    ("a_boolean", {"BOOL": True}, "CHANNEL_NOT_ALLOWED"),
    ("a_string_set", {"SS": ["sms", "whatsapp"]}, "QUEUED"),
    ("one_channel_as_text", {"S": "whatsapp"}, "QUEUED"),
    # Text is one channel's name, not a list to search for a part of it.
    ("text_holding_the_name_inside_another", {"S": "whatsapp-disabled"}, "CHANNEL_NOT_ALLOWED"),
]


@pytest.mark.parametrize(("case", "value", "outcome"), ALLOWED_CHANNELS, ids=[row[0] for row in ALLOWED_CHANNELS])
def test_allowed_channels_of_another_type_is_decided(world, lambda_handler, outcomes, case, value, outcome):
    assert handle(world, lambda_handler, contract_item(allowed_channels=value)) == twiml_response()

    error = None if outcome == "QUEUED" else outcome
    assert outcomes() == [(outcome, error)]
    assert len(world.sent("whatsapp")) == (1 if outcome == "QUEUED" else 0)


AUTO_QUEUE_NUMBERS = [
    ("a_map", {"M": {"first": {"S": USER}}}, "QUEUED"),
    ("a_number", {"N": USER[1:]}, "QUEUED"),
    ("a_boolean", {"BOOL": True}, "QUEUED"),
    ("a_string_set", {"SS": [USER]}, "HANDED_OFF"),
    ("the_number_as_text", {"S": USER}, "HANDED_OFF"),
    # Another number that merely starts with the user's is not the user's.
    ("a_longer_number_as_text", {"S": USER + "9"}, "QUEUED"),
    ("a_list_of_a_longer_number", {"L": [{"S": USER + "9"}]}, "QUEUED"),
]


@pytest.mark.parametrize(("case", "value", "outcome"), AUTO_QUEUE_NUMBERS, ids=[row[0] for row in AUTO_QUEUE_NUMBERS])
def test_auto_queue_numbers_of_another_type_are_decided(world, lambda_handler, outcomes, case, value, outcome):
    item = contract_item(auto_queue_reply_message_from_number=value, recipient_tel={"S": USER})

    assert handle(world, lambda_handler, item, "sms") == twiml_response()

    assert outcomes() == [(outcome, None)]
    queue = "handoff" if outcome == "HANDED_OFF" else "sms"
    assert [len(world.sent(name)) for name in ("sms", "handoff")] == [int(queue == "sms"), int(queue == "handoff")]


@pytest.mark.parametrize(
    "complete", [{"N": "1"}, {"S": "1"}, {"S": "1.0"}, {"S": " 1 "}], ids=["n", "s", "s_1_0", "s_padded"]
)
def test_a_complete_conversation_is_skipped_when_its_one_is_written_as_text(world, lambda_handler, outcomes, complete):
    older = contract_item(created_at={"S": "2026-11-01T00:00:00Z"}, task_complete={"N": "0"})
    newer_id = CONVERSATION_ID.replace("0f1e2d3c", "9f1e2d3c")
    newer = contract_item(
        conversation_id={"S": newer_id}, created_at={"S": "2026-11-05T00:00:00Z"}, task_complete=complete
    )
    world.dynamodb.put_item(TableName=world.resources.conversations_table, Item=newer)

    assert handle(world, lambda_handler, older) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    assert world.sent("whatsapp") == [({"conversation_id": CONVERSATION_ID, "primary_channel": USER}, 10)]


def test_binary_attributes_reach_the_handoff_whole_as_base64(world, lambda_handler, outcomes):
    # Another service keeps a thumbnail (B) and a set of binary tokens (BS); neither is UTF-8 text.
    thumbnail = b"\x89PNG\r\n\x1a\n\x00\xff\xfe"
    tokens = [b"\x00\x01", b"\xff"]
    item = contract_item(hand_off_to_human={"BOOL": True}, thumbnail={"B": thumbnail}, tokens={"BS": tokens})

    assert handle(world, lambda_handler, item, "sms") == twiml_response()

    assert outcomes() == [("HANDED_OFF", None)]
    [(message, _)] = world.sent("handoff")
    conversation = message["conversation"]
    assert base64.b64decode(conversation["thumbnail"], validate=True) == thumbnail
    assert sorted(base64.b64decode(token, validate=True) for token in conversation["tokens"]) == sorted(tokens)


UNUSABLE_CREDENTIALS = [
    ("no_channel_config", "whatsapp", None, "channel_config:absent"),
    ("channel_config_as_text", "whatsapp", {"S": WA_SECRET}, "channel_config:S"),
    (
        "no_credential_id",
        "whatsapp",
        {"M": {"sms_credentials_id": {"S": SMS_SECRET}}},
        "whatsapp_credentials_id:absent",
    ),
    ("empty_credential_id", "sms", {"M": {"sms_credentials_id": {"S": " "}}}, "sms_credentials_id:empty"),
    (
        "credential_id_as_a_list",
        "sms",
        {"M": {"sms_credentials_id": {"L": [{"S": SMS_SECRET}]}}},
        "sms_credentials_id:L",
    ),
    (
        "credential_id_as_a_set",
        "whatsapp",
        {"M": {"whatsapp_credentials_id": {"SS": [WA_SECRET]}}},
        "whatsapp_credentials_id:SS",
    ),
    (
        "credential_id_null",
        "whatsapp",
        {"M": {"whatsapp_credentials_id": {"NULL": True}}},
        "whatsapp_credentials_id:NULL",
    ),
]


@pytest.mark.parametrize(
    ("case", "channel", "config", "cause"), UNUSABLE_CREDENTIALS, ids=[row[0] for row in UNUSABLE_CREDENTIALS]
)
def test_an_unusable_credential_reference_is_named_on_the_event_line(
    world, lambda_handler, json_logs, case, channel, config, cause
):
    # MISSING_CREDENTIAL_CONFIG loses the message: on-call must find the item and what to repair in it, from the
    # INFO line alone, which carries no phone number and no value.
    item = contract_item(channel_config=config if config is not None else ABSENT)

    assert handle(world, lambda_handler, item, channel) == twiml_response()

    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert (event["error_code"], event["error_cause"]) == ("MISSING_CREDENTIAL_CONFIG", cause)
    assert event["conversation_id"] == "ci-aaa-000#pi-aaa-000#0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert world.stage_rows() == [] and world.all_sent() == {
        name: [] for name in ("whatsapp", "sms", "handoff", "email")
    }


def test_a_credential_name_outside_the_pattern_is_named_on_the_event_line_without_the_name(
    world, cold_start, json_logs
):
    container = cold_start(WHATSAPP_SECRET_NAME_PATTERN="ai-multi-comms/whatsapp-credentials/.+")
    world.add_default_secrets()
    elsewhere = "prod/payments/db-password"
    item = contract_item(channel_config={"M": {"whatsapp_credentials_id": {"S": elsewhere}}})
    world.dynamodb.put_item(TableName=world.resources.conversations_table, Item=item)

    assert container.handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()

    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert (event["error_code"], event["error_cause"]) == (
        "MISSING_CREDENTIAL_CONFIG",
        "whatsapp_credentials_id:outside-pattern",
    )
    assert event["conversation_id"] == "ci-aaa-000#pi-aaa-000#0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert elsewhere not in json.dumps(json_logs())


DRIFTED = [
    # (case, attributes as another service wrote them, outcome, the event line's unexpected_types)
    ("status_as_a_number", {"project_status": {"N": "1"}}, "PROJECT_INACTIVE", "project_status:N"),
    ("channels_as_a_set", {"allowed_channels": {"SS": ["sms", "whatsapp"]}}, "QUEUED", "allowed_channels:SS"),
    ("handoff_flag_as_text", {"hand_off_to_human": {"S": "true"}}, "QUEUED", "hand_off_to_human:S"),
    (
        "two_attributes",
        {"conversation_status": {"M": {}}, "auto_queue_reply_message_from_number": {"S": USER}},
        "HANDED_OFF",
        "conversation_status:M,auto_queue_reply_message_from_number:S",
    ),
]


@pytest.mark.parametrize(("case", "attributes", "outcome", "named"), DRIFTED, ids=[row[0] for row in DRIFTED])
def test_an_attribute_the_rules_read_stored_as_another_type_is_named_on_the_event_line(
    world, lambda_handler, json_logs, case, attributes, outcome, named
):
    # The rules decide such an item (a business "no" or a route); on-call must be able to tell a paused project from
    # one whose status another service wrote as a number, from the INFO line, which names no value.
    item = contract_item(recipient_tel={"S": USER}, **attributes)

    assert handle(world, lambda_handler, item, "sms") == twiml_response()

    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert (event["outcome"], event["unexpected_types"]) == (outcome, named)


def test_an_item_of_the_contracts_types_names_no_attribute(world, lambda_handler, json_logs):
    item = contract_item(
        conversation_status={"S": "open"},
        hand_off_to_human={"BOOL": False},
        auto_queue_reply_message={"BOOL": False},
        auto_queue_reply_message_from_number={"NULL": True},
        recipient_tel={"S": USER},
    )

    assert handle(world, lambda_handler, item) == twiml_response()

    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert event["outcome"] == "QUEUED" and "unexpected_types" not in event


HISTORIES_NOT_A_LIST = [
    ("json_text", {"S": json.dumps([{"role": "user", "content": "m" * 1000, "n": n} for n in range(300)])}, ""),
    ("map_of_entries", {"M": {f"{n:04d}": {"S": "m" * 1000} for n in range(300)}}, {}),
]


@pytest.mark.parametrize(
    ("case", "history", "emptied"), HISTORIES_NOT_A_LIST, ids=[row[0] for row in HISTORIES_NOT_A_LIST]
)
def test_a_history_over_the_handoff_limit_stored_as_other_than_a_list_is_dropped_not_the_message(
    world, lambda_handler, outcomes, case, history, emptied
):
    # Another service keeps `messages` as JSON text or a map, ~300 KB: the handoff (a person answers it) was refused
    # as QUEUE_ERROR, the message lost. History is what the handoff gives up first, whatever its shape.
    item = contract_item(hand_off_to_human={"BOOL": True}, messages=history, notes={"S": "kept"})

    assert handle(world, lambda_handler, item, "sms") == twiml_response()

    assert outcomes() == [("HANDED_OFF", None)]
    [raw] = world.sent_raw("handoff")
    assert len(raw.encode("utf-8")) <= 256 * 1024
    message = json.loads(raw)
    assert message["body"] == "Hi, is this open?" and "body_truncated" not in message
    assert (message["conversation"]["messages"], message["conversation"]["notes"]) == (emptied, "kept")


NUMBER_SEGMENTS = [
    ("channel_prefixed", f"whatsapp:{USER}", USER),
    ("tel_uri", f"tel:{USER}", USER),
    ("written_with_spaces", "+1 415 555 0123", "+1 415 555 0123"),
    ("written_with_dashes", "1-415-555-0123", "1-415-555-0123"),
]


@pytest.mark.parametrize(("case", "segment", "number"), NUMBER_SEGMENTS, ids=[row[0] for row in NUMBER_SEGMENTS])
@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
def test_a_conversation_id_ending_in_the_number_written_otherwise_logs_no_number(
    world, lambda_handler, json_logs, case, segment, number, channel
):
    # Other services compose the id with the number as they have it (Twilio's `whatsapp:+…`, a tel: URI, spaced):
    # the log lines must drop that segment as they drop `447450659796`.
    forbid(number, number.replace(" ", "").replace("-", ""))
    conversation_id = f"ci-aaa-000#pi-aaa-000#0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0#{segment}"

    assert handle(world, lambda_handler, contract_item(conversation_id={"S": conversation_id}), channel) == (
        twiml_response()
    )

    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert event["outcome"] == "QUEUED"
    assert event["conversation_id"] == "ci-aaa-000#pi-aaa-000#0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_several_conversations_for_the_pair_are_counted_on_the_event_line(world, lambda_handler, json_logs):
    # The contract's pick (newest open) is deterministic; on-call reading why a message joined this conversation and
    # not another of the same pair must see, at INFO, that there were several.
    older = contract_item(created_at={"S": "2026-11-01T00:00:00Z"})
    world.dynamodb.put_item(TableName=world.resources.conversations_table, Item=older)
    newer_id = CONVERSATION_ID.replace("0f1e2d3c", "9f1e2d3c")
    newer = contract_item(conversation_id={"S": newer_id}, created_at={"S": "2026-11-05T00:00:00Z"})

    assert handle(world, lambda_handler, newer) == twiml_response()

    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert (event["outcome"], event["conversation_id"], event["candidates"]) == (
        "QUEUED",
        "ci-aaa-000#pi-aaa-000#9f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "2",
    )
    assert world.sent("whatsapp") == [({"conversation_id": newer_id, "primary_channel": USER}, 10)]


def test_a_single_conversation_for_the_pair_adds_no_count(world, lambda_handler, json_logs):
    assert handle(world, lambda_handler, contract_item()) == twiml_response()

    [event] = [line for line in json_logs() if line["message"] == "event"]
    assert event["outcome"] == "QUEUED" and "candidates" not in event


@pytest.mark.parametrize(("flag", "joined"), [(True, "older"), (False, "newer")], ids=["true", "false"])
def test_a_task_complete_written_as_a_boolean_is_complete_when_true(world, lambda_handler, outcomes, flag, joined):
    # Another service marks the task done with BOOL true: that conversation is complete, and the user's new message
    # joins the open one, not the finished task's (BOOL false is open, as 0 is).
    older = contract_item(created_at={"S": "2026-11-01T00:00:00Z"}, task_complete={"N": "0"})
    newer_id = CONVERSATION_ID.replace("0f1e2d3c", "9f1e2d3c")
    newer = contract_item(
        conversation_id={"S": newer_id}, created_at={"S": "2026-11-05T00:00:00Z"}, task_complete={"BOOL": flag}
    )
    world.dynamodb.put_item(TableName=world.resources.conversations_table, Item=newer)

    assert handle(world, lambda_handler, older) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    expected = CONVERSATION_ID if joined == "older" else newer_id
    assert world.sent("whatsapp") == [({"conversation_id": expected, "primary_channel": USER}, 10)]


def test_numbers_reach_the_handoff_with_every_digit_dynamodb_holds(world, lambda_handler, outcomes):
    # Another service keeps numbers DynamoDB holds exactly (38 significant digits, exponents -130..+125): the handoff
    # must carry each as the JSON number DynamoDB holds, at top level, inside maps and lists, and in number sets.
    long = "12345678901234567890.123"
    digits38 = "1.2345678901234567890123456789012345678"
    item = contract_item(
        hand_off_to_human={"BOOL": True},
        balance={"N": long},
        huge={"N": "1E+125"},
        tiny={"N": "1E-129"},
        tiny_long={"N": "-9.9999999999999999999999999999999999999E-90"},
        minus_zero={"N": "-0"},
        whole={"N": "12345678901234567890123456789012345678"},
        ai_config={"M": {"temperature": {"N": "0.7"}, "limits": {"L": [{"N": digits38}, {"N": "3"}]}}},
        scores={"NS": [long, "0.1", "2"]},
    )

    assert handle(world, lambda_handler, item, "sms") == twiml_response()

    assert outcomes() == [("HANDED_OFF", None)]
    [raw] = world.sent_raw("handoff")
    conversation = json.loads(raw, parse_float=Decimal, parse_int=Decimal)["conversation"]
    assert conversation["balance"] == Decimal(long)
    assert conversation["huge"] == Decimal("1E+125")
    assert conversation["tiny"] == Decimal("1E-129")
    assert conversation["tiny_long"] == Decimal("-9.9999999999999999999999999999999999999E-90")
    assert conversation["minus_zero"] == 0
    assert conversation["whole"] == Decimal("12345678901234567890123456789012345678")
    assert conversation["ai_config"] == {"temperature": Decimal("0.7"), "limits": [Decimal(digits38), 3]}
    assert sorted(conversation["scores"]) == sorted([Decimal(long), Decimal("0.1"), Decimal(2)])
    # Each is a JSON number (not text), with the digits as written: a plain float parser reads the nearest double.
    assert f'"balance":{long}' in raw
    assert json.loads(raw)["conversation"]["tiny"] == 1e-129
