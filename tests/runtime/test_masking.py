"""What a recording may hold: credentials removed, free text masked per body format, numbers pseudonymized."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import Any
from urllib.parse import parse_qsl

import pytest

import runtime.masking
from engine import registry
from runtime.app import declared_auth_headers
from runtime.masking import (
    MASK_MODES,
    MASKED_SIGNATURE,
    MASKED_TEXT,
    Pseudonyms,
    form_fields,
    recordable,
    register_body_masker,
    signature_digest,
    withheld_values,
)
from steps.sendgrid.ecdsa import SIGNATURE_HEADER as SENDGRID_SIGNATURE
from steps.sendgrid.message import read_email
from steps.sendgrid.multipart import parse
from tests.support.email import header_blocks_read
from tests.support.webhooks import USER, rest_event, whatsapp_params
from tools.events import http_api_event
from tools.sendgrid_events import BOUNDARY, Attachment, Email, encode_form, inbound_parse_body, inbound_parse_fields

KEY = b"a-capture-key-of-32-characters!!"
# What the Twilio steps declare: their signature header, whose signature never expires.
TWILIO_AUTH = {"X-Twilio-Signature": False}
E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def form(event: dict[str, Any]) -> dict[str, str]:
    body = event["body"]
    text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    return dict(parse_qsl(text, keep_blank_values=True))


def test_credentials_are_removed_and_an_unmasked_recording_keeps_the_rest() -> None:
    event = rest_event("whatsapp", whatsapp_params(), headers={"Authorization": "Bearer abc", "Cookie": "s=1"})
    event["requestContext"] = {**event["requestContext"], "authorizer": {"claims": {}}, "identity": {"ip": "1"}}
    kept = recordable(event, auth_headers=TWILIO_AUTH)
    assert not {"Authorization", "Cookie"} & set(kept["headers"]) and "Cookie" not in kept["multiValueHeaders"]
    assert not {"authorizer", "identity"} & set(kept["requestContext"])
    assert kept["body"] == event["body"]
    # A Twilio signature never expires: the recording keeps only its digest, which cannot be posted again.
    signature = event["headers"]["X-Twilio-Signature"]
    assert kept["headers"]["X-Twilio-Signature"] == signature_digest(signature) != signature
    assert signature not in json.dumps(kept)
    assert kept["recording"] == {"mask": "none", "masked": []}
    # A recording masked again (pipeline-event mask over captures) keeps the digest the dry-run checks.
    again = recordable(kept, auth_headers=TWILIO_AUTH)
    assert again["headers"]["X-Twilio-Signature"] == kept["headers"]["X-Twilio-Signature"]
    assert again["multiValueHeaders"] == kept["multiValueHeaders"]


def test_cookies_are_removed_in_every_mode_whatever_the_payload_version() -> None:
    # Payload 2.0 moves the Cookie header into a top-level ``cookies`` list.
    event = http_api_event(
        "POST", "/prod/sms", host="h.example.com", body="Body=hi", headers={"cookie": "session=SECRET-COOKIE"}
    )
    event["cookies"] = ["session=SECRET-COOKIE", "theme=dark"]
    for mask in MASK_MODES:
        stored = recordable(event, mask=mask, pseudonyms=Pseudonyms(KEY))
        assert "cookies" not in stored and "SECRET-COOKIE" not in json.dumps(stored), mask
        assert stored["requestContext"] == event["requestContext"]


def test_a_masked_recording_keeps_no_query_string_value_whatever_the_payload_version() -> None:
    # A webhook URL may carry a credential in its query (``?key=…``, an endpoint token): a masked recording keeps the
    # parameters' names only, as it keeps a form's, and an unmasked one keeps the URL as sent for its signature check.
    rest = rest_event("whatsapp", whatsapp_params(), query={"key": ["QUERY-SECRET"], "empty": [""]})
    encoded = http_api_event(
        "POST", "/prod/sms", host="h.example.com", body="Body=hi", raw_query="key=QUERY-SECRET&empty=&key=2"
    )
    encoded["queryStringParameters"] = {"key": "QUERY-SECRET,2", "empty": ""}
    for mask in ("text", "all"):
        stored = recordable(rest, mask=mask, pseudonyms=Pseudonyms(KEY))
        assert "QUERY-SECRET" not in json.dumps(stored), mask
        assert stored["queryStringParameters"] == {"key": MASKED_TEXT, "empty": ""}
        assert stored["multiValueQueryStringParameters"] == {"key": [MASKED_TEXT], "empty": [""]}
        assert "?key" in stored["recording"]["masked"]
        stored = recordable(encoded, mask=mask, pseudonyms=Pseudonyms(KEY))
        assert "QUERY-SECRET" not in json.dumps(stored), mask
        assert parse_qsl(stored["rawQueryString"], keep_blank_values=True) == [
            ("key", MASKED_TEXT),
            ("empty", ""),
            ("key", MASKED_TEXT),
        ]
        assert stored["queryStringParameters"] == {"key": MASKED_TEXT, "empty": ""}
    assert recordable(rest)["multiValueQueryStringParameters"] == rest["multiValueQueryStringParameters"]
    assert recordable(encoded)["rawQueryString"] == encoded["rawQueryString"]


def test_text_masks_free_text_and_marks_the_signature_whatever_the_payload_version() -> None:
    params = whatsapp_params(ProfileName="Jane Doe", Latitude="51.5", Body="my address is 1 High St")
    rest = rest_event("whatsapp", params)
    encoded = http_api_event(
        "POST",
        "/prod/whatsapp",
        host="h.example.com",
        body=rest["body"],
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "abc"},
    )
    for event in (rest, encoded):
        masked = recordable(event, mask="text", auth_headers=TWILIO_AUTH)
        fields = form(masked)
        assert fields["Body"] == fields["ProfileName"] == fields["Latitude"] == MASKED_TEXT
        assert fields["From"] == params["From"] and fields["MessageSid"] == params["MessageSid"]
        signature = masked["headers"].get("X-Twilio-Signature") or masked["headers"].get("x-twilio-signature")
        assert signature == MASKED_SIGNATURE
        assert masked["recording"] == {"mask": "text", "masked": ["Body", "Latitude", "ProfileName"]}
    masked_rest = recordable(rest, mask="text", auth_headers=TWILIO_AUTH)
    assert masked_rest["multiValueHeaders"]["X-Twilio-Signature"] == [MASKED_SIGNATURE]


def test_all_pseudonymizes_numbers_and_addresses_the_same_way_everywhere() -> None:
    pseudonyms = Pseudonyms(KEY)
    event = rest_event("sms", whatsapp_params(From="+447700900101", To="+14155238886"))
    fields = form(recordable(event, mask="all", pseudonyms=pseudonyms))
    assert fields["From"] != "+447700900101" and len(fields["From"]) == len("+447700900101")
    assert fields["From"] == pseudonyms.text("+447700900101")
    world = pseudonyms.document({"primary_channel": "+447700900101", "email": "Jane.Doe@example.com"})
    assert world["primary_channel"] == fields["From"]
    assert world["email"].endswith("@example.com") and world["email"] != "Jane.Doe@example.com"
    address = pseudonyms.text("Jane.Doe@example.com")
    assert pseudonyms.text("write to jane.doe@example.com.") == f"write to {address}."
    with pytest.raises(ValueError, match="needs pseudonyms"):
        recordable(event, mask="all")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonyms(b"short")


def email_event(email: Email) -> tuple[dict[str, Any], str]:
    """An Inbound Parse post of ``email`` as API Gateway (payload 2.0) delivers it, and its Content-Type."""
    body, content_type = inbound_parse_body(email)
    headers = {"content-type": content_type}
    return http_api_event("POST", "/prod/email", host="h.example.com", body=body, headers=headers), content_type


def test_a_multipart_body_keeps_its_shape_with_text_masked_and_files_emptied() -> None:
    email = Email(attachments=(Attachment("invoice.pdf", "application/pdf", b"%PDF-1.7 secret"),))
    event, content_type = email_event(email)
    masked = recordable(event, mask="text", auth_headers={"X-Twilio-Email-Event-Webhook-Signature": True})
    stored = base64.b64decode(masked["body"])
    parsed = parse(stored, content_type)
    for name in ("text", "html", "subject", "headers"):
        assert parsed.fields[name] == (MASKED_TEXT,), name
    original = parse(inbound_parse_body(email)[0], content_type)
    assert parsed.fields["from"] == ("masked masked <Jane.Sender@Example.NET>",)  # the name masked, the address kept
    assert parsed.fields["envelope"] == original.fields["envelope"]
    (attachment,) = parsed.files
    assert attachment.filename == MASKED_TEXT and attachment.size == 0
    assert b"secret" not in stored and b"not arrived" not in stored
    assert set(masked["recording"]["masked"]) >= {"text", "html", "subject", "headers", "attachment1"}


def test_a_field_named_in_angle_brackets_is_masked_as_the_pipeline_reads_its_name() -> None:
    """Before: the masker unquoted a field's name twice (as ``steps.sendgrid.multipart`` did), taking ``<`` and ``>``
    for quotes, so a field ``"<spam_score>"`` was kept as sent, as if it were ``spam_score``: it is another field."""
    body, content_type = encode_form([("<spam_score>", f"Hello, {CONFIDED}"), ("spam_score", "6.5")], [])
    headers = {"content-type": content_type}
    event = http_api_event("POST", "/prod/email", host="h.example.com", body=body, headers=headers)
    masked = recordable(event, mask="text", auth_headers={"X-Twilio-Email-Event-Webhook-Signature": True})
    stored = parse(base64.b64decode(masked["body"]), content_type)
    assert dict(stored.fields) == {"<spam_score>": (MASKED_TEXT,), "spam_score": ("6.5",)}


def test_a_field_named_in_an_unknown_rfc_2231_charset_is_masked_as_the_pipeline_reads_its_name() -> None:
    """Before: a name ``name*=x-unknown''%3Cspam_score%3E`` (a charset no codec reads) was unquoted a second time
    by ``collapse_rfc2231_value``'s fallback, here as in the pipeline: read as ``spam_score`` and kept as sent. It is
    the field ``<spam_score>``, masked as every field but the few kept."""
    dash = f"--{BOUNDARY}"
    body = (
        f"{dash}\r\nContent-Disposition: form-data; name*=x-unknown''%3Cspam_score%3E\r\n\r\nHello, {CONFIDED}\r\n"
        f'{dash}\r\nContent-Disposition: form-data; name="spam_score"\r\n\r\n6.5\r\n{dash}--\r\n'
    ).encode()
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    event = http_api_event(
        "POST", "/prod/email", host="h.example.com", body=body, headers={"content-type": content_type}
    )
    masked = recordable(event, mask="text", auth_headers={"X-Twilio-Email-Event-Webhook-Signature": True})
    stored = base64.b64decode(masked["body"])
    assert CONFIDED.encode() not in stored
    assert dict(parse(stored, content_type).fields) == {"<spam_score>": (MASKED_TEXT,), "spam_score": ("6.5",)}


def test_all_pseudonymizes_display_names_in_email_address_fields() -> None:
    email = Email(
        sender="Kim Lee <Kim.Lee@example.org>",
        to="Acme Support <support@parse.example.com>",
        cc='"Doe, Jane" <jane@example.net>, bob@example.net, =?UTF-8?Q?Zo=C3=AB_Ng?= <zoe@example.net>',
        envelope_from="Kim.Lee@example.org",
    )
    event, content_type = email_event(email)
    pseudonyms = Pseudonyms(KEY)
    masked = recordable(event, mask="all", pseudonyms=pseudonyms)
    stored = base64.b64decode(masked["body"])
    for name in (b"Kim", b"Lee", b"Acme Support", b"Doe", b"Jane", b"Zo=C3=AB", b"Ng"):
        assert name not in stored, name
    fields = parse(stored, content_type).fields
    # The structure stays (quotes, commas, angle brackets): the sender and recipients still parse to pseudonyms.
    assert read_email(parse(stored, content_type), stored).sender == pseudonyms.text("Kim.Lee@example.org").lower()
    assert fields["cc"][0].count("<") == 2 and fields["cc"][0].count(",") == 3
    assert json.loads(fields["envelope"][0])["from"] == pseudonyms.text("Kim.Lee@example.org")
    # Keyed: the same name gets the same pseudonym in every recording, and another key gives another.
    again = parse(base64.b64decode(recordable(event, mask="all", pseudonyms=pseudonyms)["body"]), content_type)
    assert again.fields["from"] == fields["from"]
    other = recordable(event, mask="all", pseudonyms=Pseudonyms(b"another-key-of-32-characters!!!!"))
    assert parse(base64.b64decode(other["body"]), content_type).fields["from"] != fields["from"]


def test_text_masks_display_names_but_keeps_the_addresses_replays_match_on() -> None:
    email = Email(
        sender="Kim Lee <Kim.Lee@example.org>",
        to="Acme Support <support@parse.example.com>",
        cc='"Doe, Jane" <jane@example.net>, bob@example.net',
        envelope_from="Kim.Lee@example.org",
    )
    event, content_type = email_event(email)
    masked = recordable(event, mask="text")
    stored = base64.b64decode(masked["body"])
    for name in (b"Kim Lee", b"Acme", b"Doe", b"Jane"):
        assert name not in stored, name
    form = parse(stored, content_type)
    assert read_email(form, stored).sender == "kim.lee@example.org"
    assert form.fields["to"][0].endswith("<support@parse.example.com>")
    assert form.fields["cc"][0].count("<") == 1 and "bob@example.net" in form.fields["cc"][0]
    assert {"from", "to", "cc"} <= set(masked["recording"]["masked"])


def test_a_body_no_masker_knows_is_replaced_whole_and_a_channel_can_add_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = http_api_event(
        "POST",
        "/prod/custom",
        host="h.example.com",
        body='{"text": "hello"}',
        headers={"content-type": "application/json"},
    )
    masked = recordable(event, mask="text")
    assert base64.b64decode(masked["body"]).decode() == MASKED_TEXT and masked["recording"]["masked"] == ["body"]
    monkeypatch.setattr(runtime.masking, "BODY_MASKERS", dict(runtime.masking.BODY_MASKERS))
    register_body_masker("application/vnd.test+json", lambda body, content_type, masking: body.upper())
    event["headers"]["content-type"] = "application/vnd.test+json"
    assert base64.b64decode(recordable(event, mask="text")["body"]) == b'{"TEXT": "HELLO"}'


def test_form_fields() -> None:
    event = rest_event("whatsapp", whatsapp_params())
    assert form_fields(event)["MessageSid"] == whatsapp_params()["MessageSid"]
    assert form_fields({"body": None}) == {} and form_fields({"body": "!!", "isBase64Encoded": True}) == {}


@pytest.mark.parametrize(
    "address", ["o'brien@example.org", "user&co@example.org", "x=y@example.org", "kim@exämple.org"]
)
def test_a_bare_address_with_any_allowed_character_is_kept_whole(address: str) -> None:
    email = Email(sender=address, envelope_from=address)
    event, content_type = email_event(email)
    text = base64.b64decode(recordable(event, mask="text")["body"])
    assert parse(text, content_type).fields["from"] == (address,)
    pseudonyms = Pseudonyms(KEY)
    shared = base64.b64decode(recordable(event, mask="all", pseudonyms=pseudonyms)["body"])
    # As a world put through the same pseudonyms holds it, so a shared replay still finds the conversation.
    assert parse(shared, content_type).fields["from"] == (pseudonyms.text(address),)
    assert address.split("@")[0] + "@" not in shared.decode()


# SpamAssassin's default report template (10_default_prefs.cf: ``report Content preview:  _PREVIEW_``) quotes the
# message's opening lines, and SendGrid posts the report as ``spam_report`` when the Parse Setting checks spam.
CONFIDED = "my new card number is 4929 1234 5678 9012 and my PIN 4417"
SPAM_REPORT = (
    'Spam detection software, running on the system "mx.sendgrid.net", has\n'
    "NOT identified this incoming email as spam.\n\n"
    f"Content preview:  Hello, {CONFIDED} [...]\n\n"
    "Content analysis details:   (0.0 points, 5.0 required)\n"
)


def test_an_email_recording_keeps_only_the_fields_known_to_hold_none_of_its_words() -> None:
    email = Email(
        text=f"Hello, {CONFIDED}\nJane",
        html=None,
        spam_score="6.5",
        attachments=(Attachment("scan of my passport.pdf", "application/pdf", b"%PDF", content_id="ii_passport"),),
    )
    fields, files = inbound_parse_fields(email)
    fields = [(name, SPAM_REPORT if name == "spam_report" else value) for name, value in fields]
    # A field SendGrid may add one day, of which nothing is known: masked too.
    body, content_type = encode_form([*fields, ("x-new-field", f"quoted: {CONFIDED}")], files)
    event = http_api_event(
        "POST", "/prod/email", host="h.example.com", body=body, headers={"content-type": content_type}
    )
    original = parse(body, content_type)
    for mask in ("text", "all"):
        masked = recordable(event, mask=mask, pseudonyms=Pseudonyms(KEY))
        stored = base64.b64decode(masked["body"])
        assert b"4417" not in stored and b"passport" not in stored, mask
        form = parse(stored, content_type)
        for name in ("text", "spam_report", "x-new-field", "sender_ip", "content-ids", "attachment-info", "headers"):
            assert form.fields[name] == (MASKED_TEXT,), (mask, name)
        assert {"spam_report", "x-new-field", "sender_ip"} <= set(masked["recording"]["masked"])
        for name in ("spam_score", "SPF", "dkim", "charsets", "attachments"):
            assert form.fields[name] == original.fields[name], (mask, name)
        # What the rules read is decided the same way: the spam score (email_screening/likely_spam) and the sender.
        replayed, sent = read_email(form, stored), read_email(original, body)
        assert replayed.spam_score == sent.spam_score == 6.5 and len(replayed.attachments) == 1
        assert (replayed.sender == sent.sender) is (mask == "text")


def test_a_field_holding_json_has_its_free_text_masked_and_its_numbers_pseudonymized_like_the_others() -> None:
    # Twilio's WhatsApp posts repeat the ProfileName and the sender's number (WaId) in ChannelMetadata.
    metadata = '{"type":"whatsapp","data":{"context":{"ProfileName":"Jane Doe","WaId":"14155550123"}}}'
    params = whatsapp_params(From="whatsapp:+14155550123", WaId="14155550123", ChannelMetadata=metadata)
    event = rest_event("whatsapp", params)
    text = form(recordable(event, mask="text"))
    assert text["ProfileName"] == MASKED_TEXT and "Jane" not in text["ChannelMetadata"]
    assert json.loads(text["ChannelMetadata"]) == {
        "type": "whatsapp",
        "data": {"context": {"ProfileName": MASKED_TEXT, "WaId": "14155550123"}},
    }
    pseudonyms = Pseudonyms(KEY)
    shared = recordable(event, mask="all", pseudonyms=pseudonyms)
    fields = form(shared)
    context = json.loads(fields["ChannelMetadata"])["data"]["context"]
    assert context["ProfileName"] == MASKED_TEXT and "14155550123" not in json.dumps(shared)
    # One pseudonym for the number in every form it takes, as a world pseudonymized with the key has it.
    assert fields["From"] == "whatsapp:+" + context["WaId"] == "whatsapp:+" + fields["WaId"]
    assert fields["From"] == "whatsapp:" + pseudonyms.document({"primary_channel": "+14155550123"})["primary_channel"]
    assert "ChannelMetadata" in shared["recording"]["masked"]
    # JSON whose free text is empty or absent is recorded as it was sent.
    plain = '{"type": "whatsapp", "data": {"context": {"ProfileName": ""}}}'
    assert (
        form(recordable(rest_event("whatsapp", whatsapp_params(ChannelMetadata=plain)), mask="text"))["ChannelMetadata"]
        == plain
    )


def test_pseudonymized_numbers_stay_e164_so_masked_recordings_still_parse() -> None:
    # A pseudonym starting with 0 is not E.164: twilio.parse refuses the event (PARSING_ERROR) instead of finding
    # the conversation. With this key, +447700900102 and +14155238886 (examples/world.yaml) used to start with 0.
    pseudonyms = Pseudonyms(b"0123456789abcdef0123")
    numbers = [f"+4477009001{n:02d}" for n in range(1, 100)] + ["+14155238886", "+441632960001"]
    for number in numbers:
        pseudonym = pseudonyms.text(number)
        assert E164.fullmatch(pseudonym) and len(pseudonym) == len(number), (number, pseudonym)
        assert pseudonyms.text(f"whatsapp:{number}") == f"whatsapp:{pseudonym}"
        assert pseudonyms.text(number.lstrip("+")) == pseudonym.lstrip("+")


TYPED = "Jane Doe, 221B Baker Street, my card ends 4242"


@pytest.mark.parametrize(
    "field, value",
    [
        ("FlowData", json.dumps({"screen_0_full_name_0": TYPED, "flow_token": "unused"})),
        ("InteractiveData", json.dumps({"type": "list_reply", "list_reply": {"id": "a", "title": TYPED}})),
        ("AddOns", json.dumps({"status": "successful", "results": {"x": {"result": {"name": TYPED}}}})),
        ("FromCity", TYPED),
        ("ReferralBody", TYPED),
        ("SomeFieldTwilioAddsLater", TYPED),
        ("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"),
    ],
)
def test_text_masks_every_form_field_but_the_structural_ones(field: str, value: str) -> None:
    # Fail closed: WhatsApp Flows answers (FlowData) sit under form-specific keys no key list can name.
    pseudonyms = Pseudonyms(KEY)
    event = rest_event("whatsapp", whatsapp_params(body="", MessageType="interactive", **{field: value}))
    for mask in ("text", "all"):
        stored = recordable(event, mask=mask, pseudonyms=pseudonyms if mask == "all" else None)
        fields = form(stored)
        assert fields[field] == MASKED_TEXT and "Jane" not in stored["body"], (mask, fields[field])
        assert field in stored["recording"]["masked"]


def test_text_keeps_the_structural_fields_a_replay_needs() -> None:
    structural = {
        "AccountSid": "AC" + "0" * 32,
        "SmsMessageSid": "SM" + "1" * 32,
        "SmsSid": "SM" + "1" * 32,
        "MessagingServiceSid": "MG" + "2" * 32,
        "NumMedia": "1",
        "MediaContentType0": "image/jpeg",
        "NumSegments": "1",
        "SmsStatus": "received",
        "MessageType": "image",
        "ApiVersion": "2010-04-01",
        "WaId": "14155550123",
        "ReferralNumMedia": "0",
    }
    params = whatsapp_params(body="", **structural)
    stored = recordable(rest_event("whatsapp", params), mask="text")
    fields = form(stored)
    assert fields == {**params, "ProfileName": MASKED_TEXT}
    assert stored["recording"]["masked"] == ["ProfileName"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("WaId", "Zoë 🌸"),
        ("WaId", "call me"),
        ("MessageType", "typed text"),
        ("ErrorCode", "63016 Zoë said no"),
        ("MediaContentType0", "image/jpeg\nJane Doe"),
    ],
)
def test_a_structural_field_holding_free_text_is_masked(field: str, value: str) -> None:
    # Fail closed: a kept field is kept for its shape (ids, numbers, codes, media types); any other value is text.
    pseudonyms = Pseudonyms(KEY)
    metadata = json.dumps({"type": "whatsapp", "data": {"context": {"WaId": value}}}, ensure_ascii=False)
    event = rest_event("whatsapp", whatsapp_params(**{field: value, "ChannelMetadata": metadata}))
    for mask in ("text", "all"):
        stored = recordable(event, mask=mask, pseudonyms=pseudonyms if mask == "all" else None)
        fields = form(stored)
        assert fields[field] == MASKED_TEXT, (mask, fields[field])
        assert json.loads(fields["ChannelMetadata"])["data"]["context"]["WaId"] == MASKED_TEXT
        assert field in stored["recording"]["masked"] and "ChannelMetadata" in stored["recording"]["masked"]


def test_a_structural_field_keeps_a_media_type_with_parameters() -> None:
    params = whatsapp_params(NumMedia="1", MediaContentType0="audio/ogg; codecs=opus", WaId="447700900101")
    fields = form(recordable(rest_event("whatsapp", params), mask="text"))
    assert fields["MediaContentType0"] == "audio/ogg; codecs=opus"
    assert fields["WaId"] == "447700900101"


def test_json_in_a_structural_field_keeps_only_its_structure() -> None:
    # ChannelMetadata is kept for its shape: every string in it is masked but for the keys known to be structural.
    metadata = json.dumps(
        {"type": "whatsapp", "data": {"context": {"ProfileName": "Jane", "WaId": "14155550123", "Note": TYPED}}}
    )
    stored = recordable(rest_event("whatsapp", whatsapp_params(ChannelMetadata=metadata)), mask="text")
    assert json.loads(form(stored)["ChannelMetadata"]) == {
        "type": "whatsapp",
        "data": {"context": {"ProfileName": MASKED_TEXT, "WaId": "14155550123", "Note": MASKED_TEXT}},
    }


def test_an_unmasked_recording_digests_an_auth_header_unless_every_step_declaring_it_says_it_expires() -> None:
    def spec(name: str) -> registry.StepSpec:
        found = registry.get(name)
        assert found is not None
        return found

    # A third source's HMAC header (no timestamp), from a step that declares nothing about expiry: fail closed.
    hub = dataclasses.replace(spec("twilio.signature"), name="hub.verify", auth_headers=("X-Hub-Signature-256",))
    shipped = [spec(name) for name in ("twilio.parse", "twilio.signature", "sendgrid.parse", "sendgrid.signature")]
    declared = declared_auth_headers([*shipped, hub])
    assert declared == {"X-Twilio-Signature": False, SENDGRID_SIGNATURE: True, "X-Hub-Signature-256": False}
    # One step declaring the SendGrid header without saying it expires is enough to keep only its digest.
    lenient = dataclasses.replace(spec("sendgrid.parse"), signature_expires=False)
    assert declared_auth_headers([spec("sendgrid.signature"), lenient]) == {SENDGRID_SIGNATURE: False}

    headers = {"X-Hub-Signature-256": "sha256=0f1e2d", SENDGRID_SIGNATURE: "MEUCIQ=="}
    kept = recordable(http_api_event("POST", "/prod/hub", host="h.example.com", headers=headers), auth_headers=declared)
    assert kept["headers"]["x-hub-signature-256"] == signature_digest("sha256=0f1e2d")  # payload 2.0: lower case
    assert kept["headers"][SENDGRID_SIGNATURE.lower()] == "MEUCIQ=="


def _masked_email_bodies(body: bytes, content_type: str) -> dict[str, bytes]:
    """``body`` posted as an Inbound Parse event, as each masked capture stores it."""
    event = http_api_event(
        "POST", "/prod/email", host="h.example.com", body=body, headers={"content-type": content_type}
    )
    stored = {}
    for mask in ("text", "all"):
        masked = recordable(event, mask=mask, pseudonyms=Pseudonyms(KEY))
        stored[mask] = base64.b64decode(masked["body"])
    return stored


def test_an_email_with_transport_padding_after_its_boundaries_is_masked() -> None:
    # RFC 2046 lets a delimiter line end in blanks; the pipeline reads such a post (the same email), so its capture
    # must hold none of its words either (before, every part after a padded delimiter was stored as sent).
    email = Email(sender="Kim Lee <kim@example.org>", text=f"Hello, {CONFIDED}, call +447700900123")
    body, content_type = inbound_parse_body(email)
    dash = f"--{BOUNDARY}".encode()
    padded = body.replace(dash + b"\r\n", dash + b" \t\r\n")
    assert parse(padded, content_type).fields["text"] == parse(body, content_type).fields["text"]
    for mask, stored in _masked_email_bodies(padded, content_type).items():
        assert b"4417" not in stored and b"447700900123" not in stored and b"Kim Lee" not in stored, mask


@pytest.mark.parametrize("where", ["after a closing delimiter line", "in a preamble"])
def test_an_email_whose_text_copies_the_boundary_keeps_no_word_of_it(where: str) -> None:
    # SendGrid's boundary is always xYzZY, so a sender can write its delimiter lines in the text; the pipeline refuses
    # that post, but its capture is made all the same and must not keep what follows them as sent.
    dash = f"--{BOUNDARY}"
    text = f"Hello\r\n{dash}--\r\n{CONFIDED}, call +447700900123" if where.startswith("after") else "Hello"
    body, content_type = inbound_parse_body(Email(text=text))
    if where == "in a preamble":
        body = f"{CONFIDED}, call +447700900123\r\n".encode() + body
    for mask, stored in _masked_email_bodies(body, content_type).items():
        assert b"4417" not in stored and b"447700900123" not in stored, mask


@pytest.mark.parametrize(
    "parameter",
    [
        f"boundary = {BOUNDARY}",
        f'boundary= "{BOUNDARY}"',
        f"boundary*=''{BOUNDARY}",
        f"boundary*0={BOUNDARY[:2]}; boundary*1={BOUNDARY[2:]}",
        f"xboundary=other; boundary={BOUNDARY}",
        f'charset="boundary=other"; boundary={BOUNDARY}',
    ],
)
def test_an_email_is_masked_part_by_part_whatever_form_of_the_boundary_parameter_the_pipeline_reads(
    parameter: str,
) -> None:
    # The masker found the boundary with its own regex, the pipeline with email.message: for these forms the two
    # disagreed, and an email the pipeline reads was stored as one "[masked]" body, its kept fields lost for replay.
    email = Email(text=f"Hello, {CONFIDED}", spam_score="6.5")
    body, _ = inbound_parse_body(email)
    content_type = f"multipart/form-data; {parameter}"
    assert parse(body, content_type).fields["text"] == (f"Hello, {CONFIDED}",)
    for mask, stored in _masked_email_bodies(body, content_type).items():
        fields = parse(stored, content_type).fields
        assert (fields["text"], fields["spam_score"]) == ((MASKED_TEXT,), ("6.5",)), mask
        assert b"4417" not in stored, mask


@pytest.mark.parametrize(
    ("address", "revealing"),
    [
        ("o'brien.kim@example.org", b"o'"),
        ("tom&jerry@example.org", b"tom"),
        ("k\u00edm.lee@example.org", "k\u00ed".encode()),
        ("order=1042@example.org", b"order="),
        ('"kim lee"@example.org', b"kim lee"),
    ],
)
def test_all_replaces_the_whole_local_part_of_any_address(address: str, revealing: bytes) -> None:
    # RFC 5322 lets a local part hold ' & = and quoted words, and RFC 6531 any letter: before, the pseudonym began
    # after the first such character, so the rest of the address (or all of a quoted one) was stored as sent.
    email = Email(sender=f"Kim <{address}>", envelope_from=address, cc=address)
    event, content_type = email_event(email)
    pseudonyms = Pseudonyms(KEY)
    stored = base64.b64decode(recordable(event, mask="all", pseudonyms=pseudonyms)["body"])
    assert revealing not in stored
    fields = parse(stored, content_type).fields
    # A world pseudonymized with the same key still finds the sender.
    assert json.loads(fields["envelope"][0])["from"] == pseudonyms.text(address)
    assert pseudonyms.text(address).endswith("@example.org")


@pytest.mark.parametrize(
    "disposition",
    [
        'filename="passport scan.pdf"',
        "filename=passport_scan.pdf",
        "filename*=UTF-8''passport%20scan.pdf",
        'filename = "passport scan.pdf"',
        'FILENAME="passport scan.pdf"',
    ],
)
def test_an_attachments_name_is_masked_however_its_part_writes_it(disposition: str) -> None:
    # The pipeline reads a part's parameters as email.message does (a token, RFC 2231's filename*, blanks around =),
    # and so must the masker: before, only the quoted filename="…" form lost its name.
    dash = f"--{BOUNDARY}"
    body = (
        f'{dash}\r\nContent-Disposition: form-data; name="to"\r\n\r\nsupport@inbound.acme.example\r\n'
        f'{dash}\r\nContent-Disposition: form-data; name="attachment1"; {disposition}\r\n'
        f'Content-Type: application/pdf; name="passport scan.pdf"\r\n\r\n%PDF secret\r\n{dash}--\r\n'
    ).encode()
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    assert parse(body, content_type).files[0].filename.startswith("passport")
    for mask, stored in _masked_email_bodies(body, content_type).items():
        assert b"passport" not in stored and b"secret" not in stored, mask
        (attachment,) = parse(stored, content_type).files
        assert (attachment.name, attachment.filename, attachment.content_type) == (
            "attachment1",
            MASKED_TEXT,
            "application/pdf",
        )


def test_angle_brackets_inside_a_display_name_do_not_keep_its_words() -> None:
    # Only an address is kept between angle brackets: before, any <…> was kept whole, so a display name such as
    # "Kim <my PIN 4417>" was stored with its words in both masked modes.
    email = Email(sender='"Kim <my PIN 4417>" <kim@example.org>', cc='"Jo <the Lisbon plan @ noon>" <jo@example.net>')
    event, content_type = email_event(email)
    for mask in ("text", "all"):
        stored = base64.b64decode(recordable(event, mask=mask, pseudonyms=Pseudonyms(KEY))["body"])
        assert b"4417" not in stored and b"PIN" not in stored and b"Lisbon" not in stored, mask
        sender = read_email(parse(stored, content_type), stored).sender
        assert sender == ("kim@example.org" if mask == "text" else Pseudonyms(KEY).text("kim@example.org")), mask


@pytest.mark.parametrize(
    "text",
    [
        # A link in a conversation item or a kept field: the run before the @ is longer than a local part may be.
        "https://crm.example.com/contacts/lookup?source=whatsapp&contact=jane.doe@example.org",
        "x" * 70 + "@example.org",
    ],
)
def test_an_address_after_a_long_run_of_address_characters_gets_its_pseudonym(text: str) -> None:
    world = Pseudonyms(KEY).document({"conversations": [{"callback_url": text}]})
    masked = world["conversations"][0]["callback_url"]
    assert masked.endswith("@example.org") and len(masked) == len(text)
    local = text.rpartition("@")[0]
    assert local[-8:] not in masked


def _peak_bytes_of(work: Any) -> int:
    """The most memory ``work`` held at once (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("tail", ["&a" * (3 * 1024 * 1024), "&Body=" + "%41" * (2 * 1024 * 1024)])
def test_a_form_no_pipeline_would_read_is_masked_whole_without_parsing_it(tail: str) -> None:
    """Defect: the capture thread masked a form body pair by pair, however large: a 6 MB post (sent by anyone, to
    any path, and captured before anything checked it) held 420 MB (empty fields, 6 s) or 488 MB (one value of
    ``%41`` escapes) on the 512 MB function. A body over 1 MiB or of more than 10000 pairs, which ``twilio.parse``
    refuses at its largest ``max_body_bytes`` and ``max_params``, is masked whole."""
    event = rest_event("whatsapp", whatsapp_params(), body="From=whatsapp%3A%2B14155550123" + tail)
    peak = _peak_bytes_of(lambda: recordable(event, mask="text"))
    stored = recordable(event, mask="text")
    assert stored["body"] == MASKED_TEXT and stored["recording"]["masked"] == ["body"]
    assert peak < 48 * 1024 * 1024


def test_a_multipart_body_of_more_parts_than_sendgrid_parse_reads_is_masked_whole() -> None:
    """Defect: the capture thread parsed the header block of every part of a multipart body before masking it:
    100000 empty parts (6 MB) took 2.7 s of the function's CPU, for a post from anyone. A body of more than the
    1024 parts ``sendgrid.parse`` reads is masked whole, without reading a part."""
    body, content_type = encode_form([("from", "a@example.org")] + [(f"f{n}", "") for n in range(5000)])
    event = http_api_event(
        "POST", "/prod/email", host="hooks.example.com", headers={"content-type": content_type}, body=body
    )
    with header_blocks_read() as read:
        stored = recordable(event, mask="text")
    assert base64.b64decode(stored["body"]) == MASKED_TEXT.encode() and read == []


@pytest.mark.parametrize("mask", ["text", "all"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cc", "Kim Lee <kim@example.org>, " * 4000),
        ("from", "word " * 20000 + "<kim@example.org>"),
        ("envelope", json.dumps({"to": ["support@inbound.acme.example"] * 20000, "from": "kim@example.org"})),
        ("envelope", "[" * 100000),
    ],
    ids=["long-cc", "long-from", "long-envelope", "deep-envelope"],
)
def test_an_address_field_longer_than_sendgrid_parse_reads_is_masked_whole(name: str, value: str, mask: str) -> None:
    """Defect: the capture thread masked an email's address fields however long, for a post from anyone (captured
    before anything checks it): a 4 MB ``cc`` of names took 0.9 s (``text``) to 3.7 s (``all``, 6.4 s of words) of
    the function's CPU, a 4 MB ``envelope`` 1.7 s, and an ``envelope`` nested 100000 levels deep raised
    RecursionError (``all``): the capture failed, counted by ``CaptureFailuresAlarm``'s metric. ``sendgrid.parse``
    reads an address list of at most 16 KiB and an envelope of at most 256 KiB: a longer field, or an envelope too
    deep to read, is masked whole (its sender is the pipeline's fallback either way)."""
    body, content_type = encode_form(
        [("from", "kim@example.org"), (name, value)] if name != "from" else [(name, value)]
    )
    event = http_api_event(
        "POST", "/prod/email", host="hooks.example.com", headers={"content-type": content_type}, body=body
    )
    pseudonyms = Pseudonyms(b"a-capture-key-of-32-characters!!") if mask == "all" else None
    stored = recordable(event, mask=mask, pseudonyms=pseudonyms)
    fields = parse(base64.b64decode(stored["body"]), content_type).fields
    if name == "envelope" and mask == "text":
        assert fields[name] == (value,), "text keeps an envelope as it is (its addresses are what a replay matches)"
    else:
        assert fields[name] == (MASKED_TEXT,) and name in stored["recording"]["masked"]


def test_the_values_a_text_capture_masks_whole_are_the_ones_withheld() -> None:
    """What ``pipeline-dryrun`` hides wherever it meets it: the values a ``mask=text`` capture replaces whole."""
    event = rest_event("whatsapp", whatsapp_params(FromCity="Quillborough", Label="received", NewField="Zelda"))

    # ProfileName, Body and every field the capture does not list; "received" is kept as SmsStatus, so shown anyway.
    assert withheld_values(event) == {"Jane Doe", "Hello there! 👋", "Quillborough", "Zelda"}
    # A body the capture replaces whole (more pairs than it splits) withholds every value it held, numbers too.
    padded = rest_event("whatsapp", [*whatsapp_params().items(), *[("Pad", "")] * 10_000])
    assert {"Jane Doe", "SM" + "1" * 32, "whatsapp:" + USER} <= withheld_values(padded)
    email = base64.b64encode(inbound_parse_body(Email(subject="Zelda's order"))[0]).decode()
    content_type = inbound_parse_body(Email())[1]
    posted = {"headers": {"Content-Type": content_type}, "body": email, "isBase64Encoded": True}
    withheld = withheld_values(posted)
    # SendGrid's results and counts (spam score, SPF, DKIM, charsets) and its addresses are kept; the rest is not.
    assert {"Zelda's order", "192.0.2.25", "0.012", "pass"} & withheld == {"Zelda's order", "192.0.2.25"}
    assert not any("@" in value and len(value) < 40 for value in withheld)
