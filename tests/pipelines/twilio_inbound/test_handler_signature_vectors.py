"""Signature validation against the verified vectors of TWILIO_NOTES.md §1.8 (token "12345").

The vectors were produced by twilio's RequestValidator and cross-checked with an independent HMAC. They are
checked here through the pipeline's own pieces: the form as ``twilio.parse`` keeps it (``FormParams`` over
``parse_qsl(keep_blank_values=True)``) and ``steps.twilio.signature.is_valid``. The tests' signing helper is held to
the same vectors, so every end-to-end test signs the way Twilio does.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest

from engine.secrets import Redacted
from runtime.masking import signature_digest
from steps.secrets import SigningKey
from steps.twilio.form import FormParams
from steps.twilio.signature import is_recorded, is_valid, supported_algorithm
from tests.support.webhooks import sign

TOKEN = "12345"
U = "https://hooks.example.com/twilio/t/acme/inbound"
WA = {
    "SmsMessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
    "NumMedia": "0",
    "ProfileName": "Jane Doe",
    "MessageType": "text",
    "SmsSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
    "WaId": "14155550123",
    "SmsStatus": "received",
    "Body": "Hello there! 👋",
    "To": "whatsapp:+14155238886",
    "NumSegments": "1",
    "ReferralNumMedia": "0",
    "MessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
    "AccountSid": "AC00000000000000000000000000000000",
    "ChannelMetadata": '{"type":"whatsapp","data":{"context":{"ProfileName":"Jane Doe","WaId":"14155550123"}}}',
    "From": "whatsapp:+14155550123",
    "ApiVersion": "2010-04-01",
}
SMS = {
    "ToCountry": "US",
    "ToState": "CA",
    "SmsMessageSid": "SM11111111111111111111111111111111",
    "NumMedia": "0",
    "ToCity": "",
    "FromZip": "94105",
    "SmsSid": "SM11111111111111111111111111111111",
    "FromState": "CA",
    "SmsStatus": "received",
    "FromCity": "SAN FRANCISCO",
    "Body": "Hi, is this open?",
    "FromCountry": "US",
    "To": "+15005550006",
    "MessagingServiceSid": "MG00000000000000000000000000000000",
    "ToZip": "",
    "NumSegments": "1",
    "ReferralNumMedia": "0",
    "MessageSid": "SM11111111111111111111111111111111",
    "AccountSid": "AC00000000000000000000000000000000",
    "From": "+14155550100",
    "ApiVersion": "2010-04-01",
}
V3_PAIRS = [("Body", "hi"), ("MediaUrl", "https://a/1"), ("MediaUrl", "https://a/0"), ("From", "+14155550100")]
V3B_PAIRS = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
V7 = {
    **WA,
    "Body": "",
    "NumMedia": "1",
    "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME0",
    "MediaContentType0": "image/jpeg",
}
UPSTREAM = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
SHA256_SETTINGS = "key=webhooks_sharedkey_0000,algorithm=HMAC_SHA256"

# id, signed URL, form pairs as sent, signature, X-Twilio-Webhooks-Signature-Settings
VECTORS = [
    ("V1_whatsapp", U, list(WA.items()), "cuImA3vtONcrwqmiun+tk9VENcE=", None),
    ("V2_sms_blank_values", U, list(SMS.items()), "F+n/YUlQUhMKzsr0Amomk+Lp9s8=", None),
    ("V3_repeated_key", U, V3_PAIRS, "KpRvrthq7+t8thfhgQkASR/sWXE=", None),
    (
        "V3b_upstream_repeated",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        V3B_PAIRS,
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
        None,
    ),
    (
        "V4_query",
        "https://hooks.example.com/twilio/inbound?tenant=acme&channel=whatsapp",
        list(WA.items()),
        "zMj4RtUKkMaHhTnee4SSObm5SJ0=",
        None,
    ),
    ("V4b_query_pct20", U + "?name=Jane%20Doe&x=1", list(WA.items()), "UMMlqCQBqcUHAEGSp3GV/lckEj8=", None),
    ("V5_explicit_443_given_plain", U, list(WA.items()), "Npm1aCtCj8BLev1dVrVt3FHy+s4=", None),
    (
        "V5_explicit_443_given_443",
        "https://hooks.example.com:443/twilio/t/acme/inbound",
        list(WA.items()),
        "Npm1aCtCj8BLev1dVrVt3FHy+s4=",
        None,
    ),
    (
        "V5b_port_8443",
        "https://hooks.example.com:8443/twilio/t/acme/inbound",
        list(WA.items()),
        "kLfl91PuYo78y7B6sUCmu6B4Qmo=",
        None,
    ),
    ("V7_media_only", U, list(V7.items()), "aX/Mno0bErTEnmm480JwwpdBwvY=", None),
    ("V8_whitespace_body", U, list({**WA, "Body": "line1\r\nline2  "}.items()), "CopmzR6e7hoH9287OpLE+3rylIU=", None),
    (
        "V9_execute_api_stage",
        "https://abc123.execute-api.us-east-1.amazonaws.com/prod/twilio/inbound",
        list(WA.items()),
        "BOFYU6sFEa/iltqA+IEbJ4veHUw=",
        None,
    ),
    ("V10_hmac_sha256", U, list(WA.items()), "VHgUq3SNDrCBpaAtV7l8f+ED8hRBnSzC3r5aNiwoMyA=", SHA256_SETTINGS),
    (
        "upstream_control",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        list(UPSTREAM.items()),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        None,
    ),
]


def _form(pairs):
    """The form exactly as twilio.parse reads a urlencoded body."""
    return FormParams(parse_qsl(urlencode(pairs), keep_blank_values=True))


def _key(token: str = TOKEN) -> SigningKey:
    return SigningKey("secret-name", "twilio_auth_token", Redacted(token), cached=False)


@pytest.mark.parametrize(
    ("url", "pairs", "signature", "settings"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_verified_vector_is_valid(url, pairs, signature, settings):
    assert is_valid(url, _form(pairs), signature, _key(), settings) is True


@pytest.mark.parametrize(
    ("url", "pairs", "signature", "settings"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_vector_fails_with_another_token_or_a_changed_signature(url, pairs, signature, settings):
    assert is_valid(url, _form(pairs), signature, _key("12346"), settings) is False
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert is_valid(url, _form(pairs), flipped, _key(), settings) is False


# The vectors with one thing changed: the URL, a form pair, the algorithm or the signature's text.
NEAR_MISSES = [
    ("V1_extra_field", U, [*WA.items(), ("Extra", "1")], "cuImA3vtONcrwqmiun+tk9VENcE=", None),
    (
        "V2_blank_value_dropped",
        U,
        [(k, v) for k, v in SMS.items() if k != "ToCity"],
        "F+n/YUlQUhMKzsr0Amomk+Lp9s8=",
        None,
    ),
    ("V3_one_value_of_repeated_key_lost", U, V3_PAIRS[:2] + V3_PAIRS[3:], "KpRvrthq7+t8thfhgQkASR/sWXE=", None),
    (
        "V4_query_reordered",
        "https://hooks.example.com/twilio/inbound?channel=whatsapp&tenant=acme",
        list(WA.items()),
        "zMj4RtUKkMaHhTnee4SSObm5SJ0=",
        None,
    ),
    ("V4b_query_plus_for_pct20", U + "?name=Jane+Doe&x=1", list(WA.items()), "UMMlqCQBqcUHAEGSp3GV/lckEj8=", None),
    ("V5b_8443_signature_given_plain", U, list(WA.items()), "kLfl91PuYo78y7B6sUCmu6B4Qmo=", None),
    ("V8_body_trimmed", U, list({**WA, "Body": "line1\r\nline2"}.items()), "CopmzR6e7hoH9287OpLE+3rylIU=", None),
    (
        "V9_stage_missing",
        "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/inbound",
        list(WA.items()),
        "BOFYU6sFEa/iltqA+IEbJ4veHUw=",
        None,
    ),
    ("V10_without_settings_header", U, list(WA.items()), "VHgUq3SNDrCBpaAtV7l8f+ED8hRBnSzC3r5aNiwoMyA=", None),
    ("V1_with_sha256_settings", U, list(WA.items()), "cuImA3vtONcrwqmiun+tk9VENcE=", SHA256_SETTINGS),
    ("V1_unknown_algorithm", U, list(WA.items()), "cuImA3vtONcrwqmiun+tk9VENcE=", "algorithm=HMAC_MD5"),
    ("V1_trailing_space", U, list(WA.items()), "cuImA3vtONcrwqmiun+tk9VENcE= ", None),
]


@pytest.mark.parametrize(("case", "url", "pairs", "signature", "settings"), NEAR_MISSES)
def test_near_misses_of_the_vectors_are_invalid(case, url, pairs, signature, settings):
    assert is_valid(url, _form(pairs), signature, _key(), settings) is False


def test_settings_header_without_algorithm_means_sha1():
    assert is_valid(U, _form(list(WA.items())), "cuImA3vtONcrwqmiun+tk9VENcE=", _key(), "key=webhooks_sharedkey_0000")


@pytest.mark.parametrize(
    ("url", "pairs", "signature", "settings"),
    [v[1:] for v in VECTORS if not v[0].startswith("V5")],
    ids=[v[0] for v in VECTORS if not v[0].startswith("V5")],
)
def test_the_tests_signing_helper_reproduces_the_vectors(url, pairs, signature, settings):
    algorithm = "HMAC_SHA256" if settings else None
    signed = pairs if len({k for k, _ in pairs}) < len(pairs) else dict(pairs)
    assert sign(url, signed, TOKEN, algorithm) == signature


@pytest.mark.parametrize(
    ("url", "pairs", "signature", "settings"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_a_recordings_digest_of_a_vector_checks_as_the_vector_does(url, pairs, signature, settings):
    # A mask=none capture keeps the signature as its digest: pipeline-dryrun must accept it exactly where the
    # Lambda accepts the signature (ports added or removed, query strings, either algorithm), and nowhere else.
    digest = signature_digest(signature)
    assert is_recorded(url, _form(pairs), digest, _key(), settings) is True
    assert is_recorded(url, _form(pairs), digest, _key("12346"), settings) is False
    assert is_recorded(url, _form(pairs), signature, _key(), settings) is False, "only a digest is a recording's"


@pytest.mark.parametrize(("case", "url", "pairs", "signature", "settings"), NEAR_MISSES)
def test_a_recordings_digest_of_a_near_miss_is_refused(case, url, pairs, signature, settings):
    assert is_recorded(url, _form(pairs), signature_digest(signature), _key(), settings) is False


@pytest.mark.parametrize("digest", ["sha256:" + "é" * 64, "sha256:\ud800", "sha256:"])
def test_a_recorded_digest_that_is_not_hex_is_refused_not_a_crash(digest):
    # A hand-edited recording: the dry-run answers INVALID_SIGNATURE, as the Lambda would, not INTERNAL_ERROR.
    assert is_recorded(U, _form(list(WA.items())), digest, _key(), None) is False


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256", "hmac_sha256"])
def test_the_algorithms_twilio_signs_with_are_supported(algorithm):
    # TWILIO_NOTES §1.1/§4.6: SharedKeys sign with HMAC-SHA1 or HMAC-SHA256; twilio's validator reads the name
    # case-insensitively, and so must the check that runs before it.
    assert supported_algorithm(algorithm)
    settings = f"key=webhooks_sharedkey_0000,algorithm={algorithm}"
    signature = sign(U, dict(WA), TOKEN, algorithm.upper())
    assert is_valid(U, _form(list(WA.items())), signature, _key(), settings) is True


def test_an_algorithm_twilio_does_not_know_is_unsupported():
    assert not supported_algorithm("HMAC_MD5") and not supported_algorithm("HMAC-SHA256")


_PORTED = [
    "https://hooks.example.com/twilio/t/acme/inbound",
    "https://hooks.example.com:443/twilio/t/acme/inbound",
    "https://hooks.example.com:8443/twilio/t/acme/inbound?x=1",
    "http://hooks.example.com/twilio/t/acme/inbound?bodySHA256=abc",
]


@pytest.mark.parametrize("url", _PORTED)
@pytest.mark.parametrize("signed", _PORTED)
@pytest.mark.parametrize("settings", [None, SHA256_SETTINGS])
def test_is_valid_answers_as_twilios_validate_for_urls_with_and_without_port(url, signed, settings):
    """``is_valid`` signs the URL without its port first and stops there on a match: it must agree with validate."""
    from twilio.request_validator import RequestValidator, get_signature_algorithm

    algorithm = get_signature_algorithm(settings) if settings else None
    assert algorithm in (None, "HMAC_SHA256")  # the settings header really selects SHA-256
    form = _form(list(WA.items()))
    validator = RequestValidator(TOKEN)
    for signature in (validator.compute_signature(signed, form, algorithm), "not-a-signature", ""):
        expected = validator.validate(url, form, signature, algorithm=algorithm)
        assert is_valid(url, form, signature, _key(), settings) is expected
