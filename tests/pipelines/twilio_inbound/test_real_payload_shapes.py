"""Payload shapes Twilio really sends (WhatsApp interactive replies, reactions, locations, media, referrals,
SMS segments, status callbacks), end to end through ``handler.handler``: outcome, stage row, no crash."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from runtime.masking import MASKED_TEXT, Pseudonyms, form_fields, recordable
from tests.support.dryrun import WORLD, run_dryrun
from tests.support.expect import twiml_response
from tests.support.logscan import forbid
from tests.support.webhooks import http_api_event, rest_event, sms_params, status_params, whatsapp_params
from tools.dryrun.corpus import twilio_rest_event

MEDIA = "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/MM{0}/Media/ME{0}"
RECEIVED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

WHATSAPP_SHAPES = {
    "button_reply": whatsapp_params(
        body="Yes please", MessageType="button", ButtonText="Yes please", ButtonPayload="confirm_yes"
    ),
    "quick_reply": whatsapp_params(
        body="Talk to sales", MessageType="interactive", ButtonText="Talk to sales", ButtonPayload="qr-sales-1"
    ),
    "list_reply": whatsapp_params(
        body="Large pizza", MessageType="interactive", ListId="item_large", ListTitle="Large pizza"
    ),
    "reaction": whatsapp_params(body="", MessageType="reaction", OriginalRepliedMessageSid="SM" + "9" * 32),
    "location": whatsapp_params(
        body="",
        MessageType="location",
        Latitude="51.5072",
        Longitude="-0.1276",
        Address="10 Downing St, London SW1A 2AA",
        Label="Büro ☕",
    ),
    "referral": whatsapp_params(
        body="Hi! I saw your ad 🍕",
        ReferralNumMedia="1",
        ReferralBody="50% off today",
        ReferralHeadline="Pizza night",
        ReferralSourceId="120203",
        ReferralSourceType="ad",
        ReferralSourceUrl="https://fb.me/abc",
        ReferralMediaId="1234",
        ReferralMediaContentType="image/jpeg",
        ReferralMediaUrl="https://scontent.example/ad.jpg",
        ReferralCtwaClid="ARAkLkA8rmlFeiCktEJQ",
    ),
    "non_ascii_profile": whatsapp_params(body="Ça va? 🤖 你好", ProfileName="Zoë 🌸 Ñandú 李"),
    "non_ascii_wa_id": whatsapp_params(ProfileName="🌸", WaId="١٤١٥٥٥٥٠١٢٣ 🌸"),
    "forwarded": whatsapp_params(body="fwd: look", Forwarded="true", FrequentlyForwarded="true"),
    "empty_body_absent": {k: v for k, v in whatsapp_params().items() if k != "Body"},
    # Twilio's call to the fallback URL (here the same URL) adds what failed; the message is the same.
    "fallback_call": whatsapp_params(ErrorCode="11200", ErrorUrl="https://hooks.example.com/prod/whatsapp"),
    # A sender moved to a subaccount is signed with that subaccount's token (the secret's), through a service.
    "subaccount_via_service": whatsapp_params(AccountSid="AC" + "f" * 32, MessagingServiceSid="MG" + "0" * 32),
    "quoted_reply": whatsapp_params(
        body="which one?",
        OriginalRepliedMessageSid="SM" + "9" * 32,
        OriginalRepliedMessageSender="whatsapp:+14155238886",
    ),
    "rtl_and_controls": whatsapp_params(body="مرحبا\u200f \u202e!\x00\x1f\t\r\n+%&=", ProfileName="محمد \u202e🙂"),
    # Combining marks and ZWJ sequences are kept as sent (no normalisation); a body over SMS's 1,600 characters
    # with CRLF, C0 and C1 controls, line and paragraph separators.
    "combining_and_long": whatsapp_params(
        body=("Ze\u0301lie e\u0301\u0302 👩\u200d👩\u200d👧 ok\r\n\x01\x07\x1b[0m\x7f\x85\u2028\u2029 ") * 60,
        ProfileName="Ze\u0301lie 👩🏽\u200d💻 \u05e9\u05dc\u05d5\u05dd",
    ),
    # Parameters Twilio may add later are signed like any other: names the code does not know, a space or
    # non-ASCII letters in a name, a name sorting before the upper-case ones.
    "unknown_parameters": whatsapp_params(
        FutureField="x y+z%&=",
        ChannelMetadata='{"type":"whatsapp"}',
        **{"Some Field": "1", "Ünïcode": "ç", "zLast": ""},
    ),
}


@pytest.mark.parametrize("shape", sorted(WHATSAPP_SHAPES))
def test_whatsapp_shape_is_staged_with_its_body(world, lambda_handler, outcomes, shape):
    world.add_conversation()
    world.add_default_secrets()
    form = WHATSAPP_SHAPES[shape]
    # No free text of the shape (a body, a name, an address, a button's text) may reach a log line at INFO.
    forbid(*(form[name] for name in FREE_TEXT_FIELDS if form.get(name)))

    response = lambda_handler(rest_event("whatsapp", form), None)

    assert response == twiml_response()
    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["body"] == form.get("Body", "")
    assert row["num_media"] == 0
    assert "media" not in row
    assert RECEIVED_AT.fullmatch(row["received_at"])


@pytest.mark.parametrize("count", [1, 2, 10])
def test_media_only_message_stages_every_item_in_order(world, lambda_handler, outcomes, count):
    world.add_conversation()
    world.add_default_secrets()
    extra = {"NumMedia": str(count)}
    # Twilio's order in the body is not the index order: later items first.
    for index in reversed(range(count)):
        extra[f"MediaContentType{index}"] = "image/jpeg" if index % 2 else "video/mp4"
        extra[f"MediaUrl{index}"] = MEDIA.format(index)
    form = whatsapp_params(body="", MessageType="image", **extra)

    assert lambda_handler(rest_event("whatsapp", form), None) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["body"] == ""
    assert row["num_media"] == count
    assert row["media"] == [
        {"url": MEDIA.format(index), "content_type": "image/jpeg" if index % 2 else "video/mp4"}
        for index in range(count)
    ]


def test_media_pair_missing_one_half_is_staged_without_crash(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    form = whatsapp_params(
        body="",
        NumMedia="2",
        MediaUrl0=MEDIA.format(0),
        MediaContentType1="image/png",
        MediaUrl1=MEDIA.format(1),
        MediaContentType2="audio/ogg",
    )

    assert lambda_handler(rest_event("whatsapp", form), None) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["num_media"] == 2
    for item in row["media"]:
        assert set(item) == {"url", "content_type"}
    assert [item["url"] for item in row["media"]] == [MEDIA.format(0), MEDIA.format(1)]


def test_sms_with_unicode_and_segments_is_staged(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    body = "Привет! Когда вы открываетесь? 🙂 " * 6
    form = sms_params(body=body, NumSegments="4", FromCity="", FromState="", FromCountry="GB")

    assert lambda_handler(rest_event("sms", form), None) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["body"] == body
    assert row["channel_type"] == "sms"


def test_mms_is_staged_with_its_text_and_every_item(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    media = {"MediaUrl0": MEDIA.format(0), "MediaContentType0": "image/gif"}
    media |= {"MediaUrl1": MEDIA.format(1), "MediaContentType1": "text/vcard"}
    form = sms_params(sid="MM" + "b" * 32, body="see attached 📎", NumMedia="2", NumSegments="2", **media)

    assert lambda_handler(rest_event("sms", form), None) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert (row["channel_type"], row["body"], row["num_media"]) == ("sms", "see attached 📎", 2)
    assert row["media"] == [
        {"url": MEDIA.format(0), "content_type": "image/gif"},
        {"url": MEDIA.format(1), "content_type": "text/vcard"},
    ]


def test_a_form_encoded_with_percent_20_and_lower_case_escapes_is_read_as_with_plus(world, lambda_handler, outcomes):
    """Twilio's form uses ``+`` for a space; ``%20`` (and ``%c3%a9``) decode the same, and the signature is over the
    decoded pairs, so either spelling is the same message."""
    world.add_conversation()
    world.add_default_secrets()
    form = whatsapp_params(body="café au lait + 1 = 2 & more", ProfileName="Zoë Ä")
    lower = re.compile("%[0-9A-F]{2}")
    pairs = ((quote(name, safe=""), quote(value, safe="")) for name, value in form.items())
    body = "&".join(f"{name}={lower.sub(lambda escape: escape.group().lower(), value)}" for name, value in pairs)
    assert "%20" in body and "%c3%a9" in body and "+" not in body

    assert lambda_handler(rest_event("whatsapp", form, body=body), None) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["body"] == form["Body"]


@pytest.mark.parametrize(
    "numbers",
    [{"To": "894546"}, {"From": "894546"}, {"From": "ACME Bank"}],
    ids=["to-a-short-code", "from-a-short-code", "from-an-alphanumeric-sender"],
)
def test_an_sms_whose_number_is_no_e164_number_is_answered_empty_before_any_aws_call(
    world, lambda_handler, aws, outcomes, numbers
):
    """CONTRACT.md §2: conversations are keyed by +E.164 numbers (the user's, and the company's in the GSI), so a
    short code or a sender ID names no conversation: refused at parsing, answered as any non-transient error (§5)."""
    world.add_conversation()
    world.add_default_secrets()
    forbid(*numbers.values())

    assert lambda_handler(rest_event("sms", sms_params(**numbers)), None) == twiml_response()

    assert outcomes() == [("PARSING_ERROR", "PARSING_ERROR")]
    assert aws.names() == [] and world.stage_rows() == []
    assert not any(world.all_sent().values())


STATUSES = ["accepted", "queued", "sending", "sent", "delivered", "read", "receiving", "received", "canceled"]


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
@pytest.mark.parametrize("status", [*STATUSES, "failed", "undelivered"])
def test_every_status_callback_is_acknowledged_and_writes_nothing(world, lambda_handler, outcomes, channel, status):
    world.add_conversation()
    world.add_default_secrets()
    form = status_params(status=status, channel=channel)
    if status in ("failed", "undelivered"):
        form.update(ErrorCode="63016", ErrorMessage="Outside the 24h window")
    if channel == "whatsapp" and status == "read":
        form.update(ChannelToAddress="+14155550123", ChannelPrefix="whatsapp", ChannelInstallSid="XE" + "0" * 32)

    assert lambda_handler(rest_event(channel, form), None) == twiml_response()

    assert outcomes() == [("STATUS_CALLBACK", None)]
    assert world.stage_rows() == [] and world.lock_rows() == []


def test_repeated_and_empty_parameters_are_signed_and_staged(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    pairs = [*whatsapp_params(body="first").items(), ("Body", "second"), ("Label", ""), ("Label", ""), ("Extra", "")]

    assert lambda_handler(rest_event("whatsapp", pairs), None) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["body"] == "first"


@pytest.mark.parametrize("shape", sorted(WHATSAPP_SHAPES))
def test_whatsapp_shape_handed_off_carries_every_field(world, lambda_handler, outcomes, shape):
    world.add_conversation(hand_off_to_human=True)
    world.add_default_secrets()
    form = WHATSAPP_SHAPES[shape]

    assert lambda_handler(http_api_event("whatsapp", form), None) == twiml_response()

    assert outcomes() == [("HANDED_OFF", None)]
    [(message, delay)] = world.sent("handoff")
    assert delay == 0
    assert message["body"] == form.get("Body", "")
    assert message["request"] == form


@pytest.mark.parametrize("body", ["line1\r\nline2  ", "   ", "\n", "a+b=c&d%20e", "💬" * 4096])
def test_body_is_staged_exactly_as_sent(world, lambda_handler, outcomes, body):
    world.add_conversation()
    world.add_default_secrets()

    assert lambda_handler(http_api_event("whatsapp", whatsapp_params(body=body)), None) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["body"] == body
    assert "body_truncated" not in row


STATUS_SHAPES = {
    status: {**status_params(status=status), "ErrorCode": "63016", "ErrorMessage": "Outside the 24h window, Zoë"}
    for status in ("failed", "undelivered")
}
FREE_TEXT_FIELDS = {
    "Body",
    "ProfileName",
    "ButtonText",
    "ButtonPayload",
    "ListId",
    "ListTitle",
    "Latitude",
    "Longitude",
    "Address",
    "Label",
    "ErrorMessage",
    "OriginalRepliedMessageSid",
} | {
    name
    for form in WHATSAPP_SHAPES.values()
    for name in form
    if name.startswith("Referral") and name != "ReferralNumMedia"
}


@pytest.mark.parametrize("mask", ["text", "all"])
@pytest.mark.parametrize("shape", sorted({**WHATSAPP_SHAPES, **STATUS_SHAPES}))
def test_a_masked_capture_keeps_none_of_the_shapes_free_text(mask, shape):
    form = {**WHATSAPP_SHAPES, **STATUS_SHAPES}[shape]
    pseudonyms = Pseudonyms(b"a-capture-key-of-32-characters!!")
    event = http_api_event("whatsapp", form)

    stored = recordable(event, mask=mask, pseudonyms=pseudonyms if mask == "all" else None)

    fields = form_fields(stored)
    for name in FREE_TEXT_FIELDS & {name for name, value in form.items() if value}:
        assert fields[name] == MASKED_TEXT, name
        assert name in stored["recording"]["masked"]
    # Any non-ASCII text (a name, a WaId of emoji) is free text, wherever it was sent.
    recorded = json.dumps([stored, fields], ensure_ascii=False)
    for name, value in form.items():
        assert value.isascii() or value not in recorded, name


def test_the_dry_run_explains_each_shape_against_the_example_world(tmp_path):
    world = yaml.safe_load(WORLD.read_text())
    [alice] = [item for item in world["conversations"] if item["primary_channel"] == "+447700900101"]
    token = world["secrets"][alice["channel_config"]["whatsapp_credentials_id"]]["twilio_auth_token"]
    account = world["secrets"][alice["channel_config"]["whatsapp_credentials_id"]]["twilio_account_sid"]
    shapes = {**WHATSAPP_SHAPES, **STATUS_SHAPES}
    for name, form in shapes.items():
        text = json.dumps(form, ensure_ascii=False).replace("14155550123", alice["primary_channel"].lstrip("+"))
        pairs = [*{**json.loads(text), "AccountSid": account}.items()]
        event = twilio_rest_event("whatsapp", pairs, token=token)
        (tmp_path / f"{name}.json").write_text(json.dumps(event))

    lines = run_dryrun("--world", WORLD, "--independent", "--json", tmp_path).splitlines()

    results = {Path(line["source"]).stem: line for line in map(json.loads, lines)}
    assert set(results) == set(shapes)
    for name, result in results.items():
        expected = "STATUS_CALLBACK" if name in STATUS_SHAPES else "QUEUED"
        assert (result["outcome"], result["error_code"], result["status_code"]) == (expected, None, 200), name
        assert result["trace"] and all(step["status"] for step in result["trace"])
        if expected == "QUEUED":
            [stage] = [a for a in result["actions"] if a["type"] == "put_item" and "body" in a["item"]]
            assert "media" not in stage["item"] and stage["item"]["num_media"] == 0
        else:
            assert result["actions"] == []


def test_twilios_retry_and_fallback_call_of_one_message_leave_one_stage_row(world, lambda_handler, outcomes):
    """Twilio's retry (another I-Twilio-Idempotency-Token) and its fallback call (ErrorCode, ErrorUrl: other fields,
    another signature) are the same MessageSid: one stage row, the first one's."""
    world.add_conversation()
    world.add_default_secrets()
    form = whatsapp_params(
        sid="MM" + "c" * 32, body="", NumMedia="1", MediaUrl0=MEDIA.format(0), MediaContentType0="image/jpeg"
    )
    fallback = {**form, "ErrorCode": "11205", "ErrorUrl": "https://hooks.example.com/prod/whatsapp"}

    for event in (
        rest_event("whatsapp", form),
        rest_event("whatsapp", form, headers={"I-Twilio-Idempotency-Token": "idem-2"}),
        rest_event("whatsapp", fallback, headers={"I-Twilio-Idempotency-Token": "idem-3"}),
    ):
        assert lambda_handler(event, None) == twiml_response()

    assert [error for _, error in outcomes()] == [None, None, None]
    [row] = world.stage_rows()
    assert (row["message_sid"], row["body"], row["num_media"]) == (form["MessageSid"], "", 1)
    assert row["media"] == [{"url": MEDIA.format(0), "content_type": "image/jpeg"}]
    assert world.sent("handoff") == []
    assert all(
        message == {"conversation_id": row["conversation_id"], "primary_channel": row["primary_channel"]}
        for message, _ in world.sent("whatsapp")
    )
