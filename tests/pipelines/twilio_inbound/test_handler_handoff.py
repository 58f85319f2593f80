"""Handoff routing end to end: each routing rule, the handoff message's shape, the 256 KiB bound (contract §2, §4.8)."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.expect import HANDOFF_TOP_LEVEL, twiml_response
from tests.support.webhooks import USER, rest_event, sms_params, whatsapp_params
from tests.support.world import ABSENT

LIMIT = 256 * 1024

# case id, conversation overrides, expected target
ROUTES = [
    ("hand_off_to_human", {"hand_off_to_human": True}, "handoff"),
    ("auto_queue_reply_message", {"auto_queue_reply_message": True}, "handoff"),
    ("number_on_auto_queue_list", {"auto_queue_reply_message_from_number": ["+447700900001", USER]}, "handoff"),
    (
        "all_three",
        {"hand_off_to_human": True, "auto_queue_reply_message": True, "auto_queue_reply_message_from_number": [USER]},
        "handoff",
    ),
    ("other_number_on_list", {"auto_queue_reply_message_from_number": ["+447700900001"]}, "channel"),
    ("empty_list", {"auto_queue_reply_message_from_number": []}, "channel"),
    ("null_list", {"auto_queue_reply_message_from_number": None}, "channel"),
    ("flags_false", {"hand_off_to_human": False, "auto_queue_reply_message": False}, "channel"),
    ("flags_absent", {"hand_off_to_human": ABSENT, "auto_queue_reply_message": ABSENT}, "channel"),
    ("flags_null", {"hand_off_to_human": None, "auto_queue_reply_message": None}, "channel"),
    ("list_absent", {"auto_queue_reply_message_from_number": ABSENT}, "channel"),
    ("recipient_tel_absent", {"recipient_tel": ABSENT, "auto_queue_reply_message_from_number": [USER]}, "channel"),
]


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
@pytest.mark.parametrize(("case", "overrides", "target"), ROUTES, ids=[row[0] for row in ROUTES])
def test_routing_rules(world, lambda_handler, aws, outcomes, channel, case, overrides, target):
    item = world.add_conversation(**overrides)
    world.add_default_secrets()
    params = whatsapp_params() if channel == "whatsapp" else sms_params()

    assert lambda_handler(rest_event(channel, params), None) == twiml_response()

    if target == "handoff":
        assert outcomes() == [("HANDED_OFF", None)]
        assert world.sent(channel) == []
        [(body, delay)] = world.sent("handoff")
        assert delay == 0
        assert aws.of("sqs.SendMessage")[0]["DelaySeconds"] == 0
        assert body["conversation_id"] == item["conversation_id"]
        assert world.lock_rows() == []
        assert "dynamodb.DeleteItem" not in aws.names()
    else:
        assert outcomes() == [("QUEUED", None)]
        assert world.sent("handoff") == []
        assert len(world.sent(channel)) == 1
        assert len(world.lock_rows()) == 1


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
def test_handoff_message_carries_the_whole_context(world, lambda_handler, channel):
    item = world.add_conversation(
        hand_off_to_human=True,
        scores={"csat": 4.5, "count": 12, "big": 12345678901234567890},
        tags={"vip", "returning"},
    )
    world.add_default_secrets()
    params = whatsapp_params() if channel == "whatsapp" else sms_params()

    lambda_handler(rest_event(channel, params), None)

    [raw] = world.sent_raw("handoff")
    body = json.loads(raw)
    assert set(body) == HANDOFF_TOP_LEVEL
    [row] = world.stage_rows()
    assert body["conversation_id"] == item["conversation_id"]
    assert body["message_sid"] == params["MessageSid"]
    assert body["channel_type"] == channel
    assert body["primary_channel"] == USER
    assert body["body"] == params["Body"]
    assert body["received_at"] == row["received_at"]
    assert body["request"] == params
    # The whole item, DynamoDB numbers as JSON numbers (a JSON number, not a string: 4.5, 12, 0.2…).
    expected = dict(item, tags=sorted(item["tags"]))
    assert body["conversation"] == expected
    assert isinstance(body["conversation"]["scores"]["count"], int)
    assert body["conversation"]["scores"]["big"] == 12345678901234567890
    assert isinstance(body["conversation"]["ai_config"]["temperature"], float)
    assert body["conversation"]["task_complete"] == 0
    assert body["conversation"]["auto_queue_reply_message_from_number"] is None
    assert '"task_complete":0' in raw.replace(" ", "")


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
def test_the_handoff_is_sent_with_no_delay_and_no_message_attributes(world, lambda_handler, aws, channel):
    # CONTRACT §2: the handoff queue's message is the JSON context alone, DelaySeconds 0 (no group or dedup id, no
    # message attributes a consumer would have to know of).
    world.add_conversation(auto_queue_reply_message=True)
    world.add_default_secrets()
    params = whatsapp_params() if channel == "whatsapp" else sms_params()

    lambda_handler(rest_event(channel, params), None)

    [raw] = world.sent_raw("handoff")
    [send] = aws.of("sqs.SendMessage")
    assert send == {"QueueUrl": world.queue_url("handoff"), "MessageBody": raw, "DelaySeconds": 0}


def test_handoff_of_a_huge_history_is_trimmed_oldest_first(world, lambda_handler, outcomes):
    # ~370 KB of history (DynamoDB's item limit is 400 KB); multi-byte text, so bytes are not characters.
    history = [
        {
            "role": "user" if n % 2 else "assistant",
            "content": f"message {n:05d} " + "é👋" * 400 + "x" * 400,
            "timestamp": 1732100000 + n,
        }
        for n in range(130)
    ]
    item = world.add_conversation(hand_off_to_human=True, messages=history)
    world.add_default_secrets()

    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()

    assert outcomes() == [("HANDED_OFF", None)]
    [raw] = world.sent_raw("handoff")
    size = len(raw.encode("utf-8"))
    assert size <= LIMIT
    body = json.loads(raw)
    kept = body["conversation"]["messages"]
    assert 0 < len(kept) < len(history)
    # The newest entries are kept, in order; only the oldest were dropped...
    assert kept == history[len(history) - len(kept) :]
    # ...and no more of them than needed: one more entry would not have fitted.
    restored = history[len(history) - len(kept) - 1]
    assert size + len(json.dumps(restored, ensure_ascii=False, separators=(",", ":")).encode()) + 1 > LIMIT
    # Everything else of the item is intact.
    rest = {key: value for key, value in body["conversation"].items() if key != "messages"}
    assert rest == {key: value for key, value in item.items() if key != "messages"}


def test_small_handoff_keeps_every_history_entry(world, lambda_handler):
    history = [{"role": "user", "content": f"m{n}"} for n in range(50)]
    world.add_conversation(auto_queue_reply_message=True, messages=history)
    world.add_default_secrets()
    lambda_handler(rest_event("sms", sms_params()), None)
    [(body, _)] = world.sent("handoff")
    assert body["conversation"]["messages"] == history


# What SQS accepts in a message body (XML 1.0 characters); moto does not check, real SQS rejects the rest.
SQS_ALLOWED = re.compile("^[\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")


def test_handoff_body_only_carries_characters_sqs_accepts(world, lambda_handler, outcomes):
    text = "odd \uffff\ufffe \x0b\x01 chars 👋"
    world.add_conversation(hand_off_to_human=True, messages=[{"role": "user", "content": "earlier \uffff"}])
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params(body=text)), None)
    assert outcomes() == [("HANDED_OFF", None)]
    [raw] = world.sent_raw("handoff")
    assert SQS_ALLOWED.match(raw)
    body = json.loads(raw)
    assert body["body"] == text and body["request"]["Body"] == text
    assert body["conversation"]["messages"] == [{"role": "user", "content": "earlier \uffff"}]
