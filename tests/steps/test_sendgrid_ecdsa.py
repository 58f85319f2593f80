"""SendGrid Inbound Parse signatures: what SendGrid signs verifies, and nothing else does (nor raises)."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from steps.sendgrid import ecdsa
from steps.sendgrid.ecdsa import SIGNATURE_HEADER, TIMESTAMP_HEADER, is_fresh, is_valid_public_key, verify
from tests.support.expect import ROOT
from tools.sendgrid_events import DOCS_PUBLIC_KEY, Attachment, Email, KeyPair, inbound_parse_body, signed

FUZZ = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
KEY = KeyPair()
OTHER = KeyPair()
NOW = 1_760_000_000
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe--xYzZY\r\n"
BODY, CONTENT_TYPE = inbound_parse_body(Email(attachments=(Attachment("pixel.png", "image/png", PNG),)))
REQUEST = signed(KEY, BODY, CONTENT_TYPE, timestamp=NOW)


def _der(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_a_request_signed_as_sendgrid_signs_verifies() -> None:
    assert verify(KEY.public_key, REQUEST.signature, REQUEST.timestamp, REQUEST.body)
    assert REQUEST.headers[SIGNATURE_HEADER] == REQUEST.signature
    assert REQUEST.headers[TIMESTAMP_HEADER] == str(NOW)


def test_the_signed_content_is_the_timestamp_then_the_raw_body() -> None:
    """Binary attachment bytes are signed as they are: no decoding, no separator."""
    assert PNG in BODY
    assert not verify(KEY.public_key, REQUEST.signature, REQUEST.timestamp, BODY.decode("utf-8", "replace").encode())
    with_separator = KEY.sign(str(NOW), b"." + BODY)
    assert not verify(KEY.public_key, with_separator, str(NOW), BODY)


@pytest.mark.parametrize("index", [0, 1, len(BODY) // 2, BODY.index(PNG) + 3, len(BODY) - 1])
def test_any_change_to_the_body_is_refused(index: int) -> None:
    assert not verify(KEY.public_key, REQUEST.signature, REQUEST.timestamp, _flip(BODY, index))


@pytest.mark.parametrize("body", [b"", BODY + b"\r\n", BODY[:-1], b"\r\n" + BODY])
def test_a_longer_shorter_or_empty_body_is_refused(body: bytes) -> None:
    assert not verify(KEY.public_key, REQUEST.signature, REQUEST.timestamp, body)


@pytest.mark.parametrize("timestamp", [str(NOW + 1), str(NOW - 1), f"0{NOW}", f"{NOW}0", f" {NOW}", f"{NOW}\n", ""])
def test_any_change_to_the_timestamp_is_refused(timestamp: str) -> None:
    assert not verify(KEY.public_key, REQUEST.signature, timestamp, BODY)


def test_any_change_to_the_signature_is_refused() -> None:
    raw = base64.b64decode(REQUEST.signature)
    for index in range(len(raw)):
        changed = base64.b64encode(_flip(raw, index)).decode()
        assert not verify(KEY.public_key, changed, REQUEST.timestamp, BODY)


def test_another_key_is_refused() -> None:
    assert not verify(OTHER.public_key, REQUEST.signature, REQUEST.timestamp, BODY)
    assert not verify(DOCS_PUBLIC_KEY, REQUEST.signature, REQUEST.timestamp, BODY)


@pytest.mark.parametrize(
    "public_key",
    [
        "",
        "not base64 !",
        "AAAA",
        base64.b64encode(b"\x30\x59" + b"\x00" * 89).decode(),
        _der(ec.generate_private_key(ec.SECP384R1()).public_key()),
        _der(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()),
        KEY.public_key[:-4],
        KEY.public_key + "A",
        "Ω" + KEY.public_key,
        "A" * 5000,
    ],
    ids=[
        "empty",
        "not-base64",
        "too-short",
        "zeroed-der",
        "p384-key",
        "rsa-key",
        "cut",
        "extra-char",
        "non-ascii-prefix",
        "huge",
    ],
)
def test_a_malformed_or_unsuitable_key_is_refused(public_key: str) -> None:
    assert not is_valid_public_key(public_key)
    assert not verify(public_key, REQUEST.signature, REQUEST.timestamp, BODY)


@pytest.mark.parametrize(
    "sig",
    [
        "",
        "!!!!",
        "AAAA",
        REQUEST.signature[:-2],
        REQUEST.signature + "==",
        "Ω",
        "A" * 10_000,
        base64.b64encode(b"\x30" * 72).decode(),
    ],
    ids=["empty", "not-base64", "too-short", "cut", "extra-padding", "non-ascii", "huge", "bogus-der"],
)
def test_a_malformed_signature_is_refused(sig: str) -> None:
    assert not verify(KEY.public_key, sig, REQUEST.timestamp, BODY)


def test_the_key_from_sendgrids_docs_is_a_valid_p256_key() -> None:
    assert is_valid_public_key(DOCS_PUBLIC_KEY)


def test_pem_armour_and_line_breaks_around_the_key_are_accepted() -> None:
    wrapped = "\n".join(KEY.public_key[i : i + 64] for i in range(0, len(KEY.public_key), 64))
    pem = f"-----BEGIN PUBLIC KEY-----\n{wrapped}\n-----END PUBLIC KEY-----\n"
    assert verify(pem, REQUEST.signature, REQUEST.timestamp, BODY)


def test_each_key_string_is_loaded_once() -> None:
    key = KeyPair()
    request = signed(key, b"body", CONTENT_TYPE, timestamp=NOW)
    before = ecdsa._load_public_key.cache_info()
    for _ in range(5):
        assert verify(key.public_key, request.signature, request.timestamp, request.body)
    after = ecdsa._load_public_key.cache_info()
    assert after.misses == before.misses + 1
    assert after.hits == before.hits + 4


@pytest.mark.parametrize(
    ("timestamp", "fresh"),
    [
        (NOW, True),
        (NOW - 300, True),
        (NOW - 301, False),
        (NOW - 86_400 * 3, False),
        (NOW + 60, True),
        (NOW + 61, False),
        (NOW + 3600, False),
        (0, False),
    ],
)
def test_a_timestamp_is_fresh_only_within_the_window(timestamp: int, fresh: bool) -> None:
    assert is_fresh(str(timestamp), NOW) is fresh


def test_the_window_is_a_parameter() -> None:
    assert is_fresh(str(NOW - 3000), NOW, max_age_seconds=3600)
    assert not is_fresh(str(NOW + 5), NOW, max_future_seconds=0)
    assert is_fresh(str(NOW), NOW + 0.5, max_age_seconds=1, max_future_seconds=0)


@pytest.mark.parametrize(
    "timestamp", ["", " 1760000000", "1760000000 ", "+1760000000", "-1", "1.7e9", "\uff11\uff17\uff16", "9" * 13]
)
def test_a_malformed_timestamp_is_never_fresh(timestamp: str) -> None:
    assert not is_fresh(timestamp, NOW)


def test_importing_the_module_does_not_import_cryptography() -> None:
    """Loaded on its own (not through ``steps``), so only the module's own imports count."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('sg', 'steps/sendgrid/ecdsa.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print('cryptography' in sys.modules)\n"
        "module.verify('AAAA', 'AAAA', '1', b'')\n"
        "print('cryptography' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]


@FUZZ
@given(
    public_key=st.text(max_size=200),
    sig=st.text(max_size=120),
    timestamp=st.text(max_size=14),
    body=st.binary(max_size=64),
)
@example(public_key=KEY.public_key, sig=REQUEST.signature, timestamp="\x00", body=b"")
@example(public_key=KEY.public_key, sig="\ud800", timestamp=str(NOW), body=b"")
def test_verify_never_raises(public_key: str, sig: str, timestamp: str, body: bytes) -> None:
    assert verify(public_key, sig, timestamp, body) in (True, False)
    assert is_fresh(timestamp, NOW) in (True, False)


@FUZZ
@given(timestamp=st.integers(min_value=0, max_value=10**12 - 1), body=st.binary(max_size=256))
def test_every_signed_request_verifies(timestamp: int, body: bytes) -> None:
    request = signed(KEY, body, CONTENT_TYPE, timestamp=timestamp)
    assert verify(KEY.public_key, request.signature, request.timestamp, body)
