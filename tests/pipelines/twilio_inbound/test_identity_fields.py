"""Issue 15 (2): a captured request cannot be re-cut into "new" messages.

Twilio signs the sorted key+value pairs with no separator, so moving a boundary keeps the signature:
``MessageSid=SM…b&MessageType=text`` signs exactly as ``MessageSid=SM…bMessageTypetext``. Every field used as
an identity (the message and account SIDs, the numbers) must have Twilio's exact shape; a variant that does
not is a ``PARSING_ERROR`` and writes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.webhooks import (
    COMPANY_SMS,
    HOST,
    STAGE,
    USER,
    rest_event,
    sign,
    sms_params,
    status_params,
    whatsapp_params,
)

SID = "SM" + "b" * 32
URL_WA = f"https://{HOST}/{STAGE}/whatsapp"


def shifted(params: dict[str, str], name: str, absorbed: str) -> dict[str, str]:
    """``params`` with ``absorbed`` (the next key in signing order) moved into ``name``'s value."""
    assert sorted(params).index(absorbed) == sorted(params).index(name) + 1
    variant = dict(params)
    variant[name] = variant[name] + absorbed + variant.pop(absorbed)
    return variant


def test_a_shifted_variant_carries_the_original_signature(world, lambda_handler, outcomes) -> None:
    world.add_conversation()
    world.add_default_secrets()
    original = whatsapp_params(sid=SID)
    variant = shifted(original, "MessageSid", "MessageType")
    assert sign(URL_WA, variant) == sign(URL_WA, original)

    lambda_handler(rest_event("whatsapp", original), None)
    lambda_handler(rest_event("whatsapp", variant, signature=sign(URL_WA, original)), None)

    assert outcomes() == [("QUEUED", None), ("PARSING_ERROR", "PARSING_ERROR")]
    assert [row["message_sid"] for row in world.stage_rows()] == [SID]
    assert len(world.sent("whatsapp")) == 1


def _variants() -> list[tuple[str, dict[str, str]]]:
    wa = whatsapp_params(sid=SID)
    return [
        ("MessageSid absorbs MessageType", shifted(wa, "MessageSid", "MessageType")),
        ("MessageSid too short", whatsapp_params(sid="SM" + "b" * 31)),
        ("MessageSid upper-case hex", whatsapp_params(sid="SM" + "B" * 32)),
        ("MessageSid of another resource", whatsapp_params(sid="CA" + "b" * 32)),
        ("SmsSid differs", {**wa, "SmsSid": "SM" + "c" * 32}),
        ("SmsMessageSid differs", {**wa, "SmsMessageSid": "SM" + "c" * 32}),
        ("AccountSid absorbs ApiVersion", shifted({**wa, "AccountSid": "AC" + "0" * 32}, "AccountSid", "ApiVersion")),
        ("From absorbs its neighbour", {**wa, "From": wa["From"] + "MessageSidx"}),
        ("From without the channel prefix", {**wa, "From": "+14155550123"}),
        ("To not a number", {**wa, "To": "whatsapp:+1415523888x"}),
    ]


@pytest.mark.parametrize(("label", "params"), _variants(), ids=[label for label, _ in _variants()])
def test_a_malformed_identity_field_is_refused_before_any_aws_call(
    label: str, params: dict[str, str], world, lambda_handler, aws, outcomes
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    response = lambda_handler(rest_event("whatsapp", params), None)
    assert response["statusCode"] == 200
    assert outcomes() == [("PARSING_ERROR", "PARSING_ERROR")]
    assert aws.calls == []
    assert world.stage_rows() == [] and world.sent("whatsapp") == []


@pytest.mark.parametrize(
    "params",
    [
        sms_params(sid="MM" + "0123456789abcdef" * 2),
        {k: v for k, v in sms_params().items() if k not in ("SmsSid", "SmsMessageSid", "AccountSid")},
        sms_params(OriginalRepliedMessageSid="SM" + "c" * 32, OriginalRepliedMessageSender="+15005550006"),
        sms_params(body="Up To+50% off? From +447700900123, To+447700900124. MessageSid SM" + "c" * 32),
    ],
    ids=["mms sid", "no alias or account", "a reply naming the replied message", "numbers in the text"],
)
def test_what_twilio_really_sends_still_passes(params: dict[str, Any], world, lambda_handler, outcomes) -> None:
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("sms", params), None)
    assert outcomes() == [("QUEUED", None)]


# A stranger texts the company a crafted body, and holds Twilio's signed request for it (a proxy's log). The body
# spells pairs of its own, and a last key whose value swallows what Twilio wrote after the body: the same signed
# string, so the same signature, read as a message from the victim's number (with a SID of the stranger's choosing,
# or the stranger's own: that message was never accepted, the stranger having no conversation, so it has no record).
STRANGER = "+14155550999"
VICTIM = "+14155550123"  # the default conversation's user
FORGED_SID = "SM" + "f" * 32


def _spelled(pairs: list[tuple[str, str]]) -> str:
    return "".join(name + value for name, value in pairs)


def _recut_sms(forged: list[tuple[str, str]], tail: str, until: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The stranger's genuine SMS and its re-cut: ``forged``, then ``tail`` holding Twilio's text up to ``until``."""
    genuine = sms_params(sid=SID, body="hi" + _spelled(forged) + tail)
    genuine["From"] = STRANGER
    ordered = sorted(genuine.items())
    swallowed = [(name, value) for name, value in ordered if "Body" < name < until]
    recut = [
        *[(name, value) for name, value in ordered if name < "Body"],
        ("Body", "hi"),
        *forged,
        (tail, _spelled(swallowed)),
        *[(name, value) for name, value in ordered if name >= until],
    ]
    return genuine, recut


@pytest.mark.parametrize(
    ("forged", "tail", "until"),
    [
        ([("From", VICTIM), ("MessageSid", FORGED_SID)], "MessageSidz", "To"),
        ([("From", VICTIM)], "Fromz", "MessageSid"),
        (
            [("From", VICTIM), ("MessageSid", FORGED_SID), ("SmsMessageSid", FORGED_SID), ("SmsSid", FORGED_SID)],
            "SmsSidz",
            "SmsStatus",
        ),
    ],
    ids=["another sender and a new sid", "another sender, the stranger's sid", "the aliases spelled too"],
)
def test_a_body_spelling_pairs_cannot_be_recut_into_another_senders_message(
    forged: list[tuple[str, str]], tail: str, until: str, world, lambda_handler, outcomes
) -> None:
    world.add_conversation()  # the victim's conversation with the company
    world.add_default_secrets()
    genuine, recut = _recut_sms(forged, tail, until)
    url = f"https://{HOST}/{STAGE}/sms"
    assert sign(url, recut) == sign(url, genuine)

    lambda_handler(rest_event("sms", genuine), None)
    response = lambda_handler(rest_event("sms", recut, signature=sign(url, genuine)), None)

    assert response["statusCode"] == 200
    # The stranger's own message (no conversation) is not accepted either way; the re-cut one is refused unread.
    assert [outcome for outcome, _ in outcomes()][1:] == ["PARSING_ERROR"]
    assert world.stage_rows() == [] and world.sent("sms") == [] and world.sent("handoff") == []


def test_a_status_callback_cannot_be_recut_into_an_inbound_message(world, lambda_handler, outcomes) -> None:
    # A status callback is acknowledged and writes nothing. Cut "MessageStatusdelivered" as the pair
    # ("MessageStatusd", "elivered") and the same signed text has no MessageStatus: an inbound message from the
    # callback's From (the company) to its To (the user). Where that pair is itself a conversation (one tenant's
    # number writing to another's, on the same Twilio account), the callback became a message, staged and triggered.
    world.add_conversation()
    world.add_conversation(
        primary_channel=COMPANY_SMS,
        conversation_id=f"ci-bbb-000#pi-bbb-000#tenant-b#{COMPANY_SMS[1:]}",
        gsi_company_sms_number=USER,
        gsi_recipient_tel=COMPANY_SMS,
        recipient_tel=COMPANY_SMS,
    )
    world.add_default_secrets()
    callback = status_params(sid=SID, channel="sms")
    recut = {k: v for k, v in callback.items() if k != "MessageStatus"}
    recut["MessageStatusd"] = callback["MessageStatus"].removeprefix("d")
    url = f"https://{HOST}/{STAGE}/sms"
    assert sign(url, recut) == sign(url, callback)

    lambda_handler(rest_event("sms", callback), None)
    response = lambda_handler(rest_event("sms", recut, signature=sign(url, callback)), None)

    assert response["statusCode"] == 200
    assert outcomes() == [("STATUS_CALLBACK", None), ("PARSING_ERROR", "PARSING_ERROR")]
    assert world.stage_rows() == [] and world.sent("sms") == [] and world.sent("handoff") == []
