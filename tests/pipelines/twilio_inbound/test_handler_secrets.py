"""The auth-token cache of a warm container: hits, rotation, the re-fetch rate limit (contract §4.3, §4.4).

GetSecretValue calls are counted with a botocore hook on the application's own client.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from engine.secrets import SecretCache
from runtime.aws import SecretsManagerStore
from steps.secrets import signing_key
from tests.support.clock import SteppedClock
from tests.support.expect import raises_code
from tests.support.webhooks import TOKEN, WEBHOOK_KEY, rest_event, sms_params, whatsapp_params
from tests.support.world import SMS_SECRET, WA_SECRET

GET = "secretsmanager.GetSecretValue"
NEW_TOKEN = "rotated-token-67890"


def _sids():
    n = 0
    while True:
        n += 1
        yield f"SM{n:032d}"


def test_warm_container_reuses_the_token(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    sids = _sids()
    for _ in range(3):
        lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    assert aws.count(GET) == 1
    assert aws.of(GET) == [{"SecretId": WA_SECRET}]
    assert [outcome for outcome, _ in outcomes()] == ["QUEUED", "BATCHED", "BATCHED"]


def test_cache_is_per_secret_name(world, lambda_handler, aws):
    world.add_conversation()
    world.add_default_secrets()
    sids = _sids()
    for _ in range(2):
        lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
        lambda_handler(rest_event("sms", sms_params(sid=next(sids))), None)
    assert sorted(call["SecretId"] for call in aws.of(GET)) == sorted([WA_SECRET, SMS_SECRET])


def test_a_new_container_fetches_again(world, lambda_handler, cold_start):
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    container = cold_start()
    container.handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "e" * 32)), None)
    assert container.aws.count(GET) == 1


def test_cache_ttl_comes_from_the_environment(world, cold_start):
    container = cold_start(SECRET_CACHE_TTL_SECONDS="0")
    world.add_conversation()
    world.add_default_secrets()
    sids = _sids()
    for _ in range(3):
        container.handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    assert container.aws.count(GET) == 3


@pytest.mark.parametrize(("age", "fetches"), [(299.9, 1), (300.0, 2)])
def test_default_cache_ttl_is_300_seconds(world, lambda_handler, aws, age, fetches):
    """Without SECRET_CACHE_TTL_SECONDS a warm container reuses a fetched token for 300 s (contract §1)."""
    import handler

    clock = SteppedClock()
    store = handler._application.services_for("twilio_inbound").secrets.store
    handler._application.replace_services(secrets=SecretCache(store, clock))
    world.add_conversation()
    world.add_default_secrets()
    sids = _sids()
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    clock.advance(age)
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    assert aws.count(GET) == fetches


def test_rotated_token_is_fetched_once_then_cached(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    sids = _sids()
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    world.set_secret(WA_SECRET, {"twilio_auth_token": NEW_TOKEN})

    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids)), token=NEW_TOKEN), None)
    assert aws.count(GET) == 2  # the cached (old) token failed: one re-fetch, then valid
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids)), token=NEW_TOKEN), None)
    assert aws.count(GET) == 2  # the new token is the cached one now
    assert [outcome for outcome, _ in outcomes()] == ["QUEUED", "BATCHED", "BATCHED"]
    # The old token no longer signs anything.
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids)), token=TOKEN), None)
    assert outcomes()[-1] == ("INVALID_SIGNATURE", "INVALID_SIGNATURE")


def test_forged_requests_cannot_multiply_secret_fetches(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    assert aws.count(GET) == 1

    for n in range(3):
        forged = rest_event("whatsapp", whatsapp_params(sid=f"SM{n:032d}"), token="forger-guess")
        lambda_handler(forged, None)

    assert aws.count(GET) == 2  # one re-fetch for the first forged request, none within 30 s after it
    assert outcomes()[1:] == [("INVALID_SIGNATURE", "INVALID_SIGNATURE")] * 3


def test_no_refetch_when_the_token_was_just_fetched(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params(), token="forger-guess"), None)
    assert aws.count(GET) == 1
    assert outcomes() == [("INVALID_SIGNATURE", "INVALID_SIGNATURE")]


def test_refetch_failure_is_reported_with_its_own_code(world, lambda_handler, aws):
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    world.set_secret(WA_SECRET, {"twilio_auth_token": NEW_TOKEN})
    aws.fail(GET, "ThrottlingException", 400)
    event = rest_event("whatsapp", whatsapp_params(sid="SM" + "7" * 32), token=NEW_TOKEN)
    raises_code("SECRET_FETCH_TRANSIENT_ERROR", lambda: lambda_handler(event, None))


def test_refetched_secret_without_a_token_is_a_final_error(world, lambda_handler, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    world.set_secret(WA_SECRET, {"twilio_account_sid": "AC0"})
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "7" * 32), token=NEW_TOKEN), None)
    assert outcomes()[-1] == ("SECRET_FETCH_FAILED", "SECRET_FETCH_FAILED")


@pytest.mark.parametrize(("value", "guess"), [(False, "false"), (True, "true"), (0, "0"), ([], "[]"), ({}, "{}")])
def test_a_token_that_is_not_a_string_is_no_token_and_signs_nothing(world, lambda_handler, outcomes, value, guess):
    # Contract §4.3 "no token": a non-string value used to become its JSON text, a key anyone could guess.
    world.add_conversation()
    world.create_secret(WA_SECRET, json.dumps({"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": value}))
    lambda_handler(rest_event("whatsapp", whatsapp_params(), token=guess), None)
    assert world.stage_rows() == []
    assert outcomes() == [("SECRET_FETCH_FAILED", "SECRET_FETCH_FAILED")]


@pytest.mark.parametrize("value", [False, 0, 1.5, [], {}, ["k"], {"k": "v"}])
def test_a_webhook_key_that_is_not_a_string_signs_nothing(world, lambda_handler, outcomes, value):
    world.add_conversation()
    world.create_secret(WA_SECRET, json.dumps({"twilio_auth_token": TOKEN, "twilio_webhook_key": value}))
    event = rest_event(
        "whatsapp", whatsapp_params(), token=json.dumps(value), algorithm="HMAC_SHA256", headers=SHARED_KEY_HEADERS
    )
    lambda_handler(event, None)
    assert world.stage_rows() == []
    assert outcomes()[-1] == ("INVALID_SIGNATURE", "INVALID_SIGNATURE")


# A cached secret that lacks the field a request needs is fetched again (the field was added since), §4.3/§4.4.
SHARED_KEY_HEADERS = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}


def _shared_key_event(sid: str) -> dict:
    return rest_event(
        "whatsapp", whatsapp_params(sid=sid), token=WEBHOOK_KEY, algorithm="HMAC_SHA256", headers=SHARED_KEY_HEADERS
    )


def test_a_webhook_key_added_to_a_cached_secret_is_fetched_once(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    sids = _sids()
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    world.set_secret(WA_SECRET, {"twilio_auth_token": TOKEN, "twilio_webhook_key": WEBHOOK_KEY})

    lambda_handler(_shared_key_event(next(sids)), None)
    assert aws.count(GET) == 2  # the cached copy has no twilio_webhook_key: one re-fetch, then valid
    lambda_handler(_shared_key_event(next(sids)), None)
    assert aws.count(GET) == 2  # the re-fetched secret is the cached one now
    assert [outcome for outcome, _ in outcomes()] == ["QUEUED", "BATCHED", "BATCHED"]
    assert len(world.stage_rows()) == 3


def test_a_token_filled_in_after_it_was_cached_blank_is_fetched_once(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.create_secret(WA_SECRET, json.dumps({"twilio_account_sid": "AC0", "twilio_auth_token": ""}))
    sids = _sids()
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    assert aws.count(GET) == 1  # freshly fetched without a token: fails at once, no second call
    world.set_secret(WA_SECRET, {"twilio_account_sid": "AC0", "twilio_auth_token": TOKEN})

    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    assert aws.count(GET) == 2
    assert [outcome for outcome, _ in outcomes()] == ["SECRET_FETCH_FAILED", "QUEUED"]


def test_missing_field_refetches_share_the_rate_limit(world, lambda_handler, aws, outcomes):
    world.add_conversation()
    world.add_default_secrets()
    sids = _sids()
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids))), None)
    for _ in range(3):
        lambda_handler(_shared_key_event(next(sids)), None)
    # One re-fetch for the first request without a key in the secret, none within 30 s after it.
    assert aws.count(GET) == 2
    lambda_handler(rest_event("whatsapp", whatsapp_params(sid=next(sids)), token="forger-guess"), None)
    assert aws.count(GET) == 2  # the rotation re-fetch is limited by the same spacing
    # The key the (unsigned) header names is not in the secret: such a request cannot be authentic.
    assert outcomes()[1:] == [("INVALID_SIGNATURE", "INVALID_SIGNATURE")] * 4


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.at = 1000.0

    def monotonic(self) -> float:
        return self.at

    def now(self):  # pragma: no cover - not read by the cache
        raise AssertionError


class Fetches:
    """The GetSecretValue calls a SecretsManagerStore over moto makes, counted with a botocore hook."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, **_: object) -> None:
        self.count += 1


@pytest.fixture
def secrets_store(world) -> Iterator[Callable[[dict], tuple[SecretsManagerStore, Fetches]]]:
    """A Secrets Manager store over moto holding secrets "s" and "other" with ``value``, and its fetch count."""
    client = world.secretsmanager  # shared by the tests: the hook is taken off again afterwards
    event = "before-call.secrets-manager.GetSecretValue"

    def make(value: dict) -> tuple[SecretsManagerStore, Fetches]:
        for name in ("s", "other"):
            world.create_secret(name, json.dumps(value))
        fetches = Fetches()
        client.meta.events.register(event, fetches, unique_id="test-fetches")
        return SecretsManagerStore(client), fetches

    yield make
    client.meta.events.unregister(event, unique_id="test-fetches")


@pytest.mark.parametrize(
    ("age", "fetches"),
    [(0.0, 1), (299.9, 1), (300.0, 2), (1000.0, 2)],
)
def test_cache_entry_lives_for_its_max_age(secrets_store, age, fetches):
    clock, (store, fetched) = _Clock(), secrets_store({"twilio_auth_token": "t"})
    cache = SecretCache(store, clock)
    assert cache.get("s", 300).cached is False
    clock.at += age
    assert cache.get("s", 300).fields["twilio_auth_token"].reveal() == "t"
    assert fetched.count == fetches


@pytest.mark.parametrize(("gap", "second_allowed"), [(0.0, False), (29.9, False), (30.0, True), (45.0, True)])
def test_forced_refresh_is_spaced_per_secret(secrets_store, gap, second_allowed):
    clock, (store, fetched) = _Clock(), secrets_store({"twilio_auth_token": "t"})
    cache = SecretCache(store, clock)
    assert cache.refresh("s", 30) is not None
    assert cache.refresh("other", 30) is not None  # another secret has its own spacing
    clock.at += gap
    assert (cache.refresh("s", 30) is not None) is second_allowed
    assert fetched.count == 2 + int(second_allowed)


@pytest.mark.parametrize("value", [False, True, 0, 7, 1.5, [], ["t"], {}, {"t": "t"}, None])
def test_a_field_that_is_not_a_string_is_absent(secrets_store, value):
    store, _ = secrets_store({"twilio_auth_token": value, "other": "kept"})
    secret = SecretCache(store, _Clock()).get("s", 300)
    assert "twilio_auth_token" not in secret.fields and secret.fields["other"].reveal() == "kept"
    raises_code("SECRET_FETCH_FAILED", lambda: signing_key(secret, "s", "twilio_auth_token"))
    assert signing_key(secret, "s", "twilio_auth_token", requested=True).absent


def test_cached_values_never_show_the_token(secrets_store):
    store, _ = secrets_store({"twilio_auth_token": "super-secret-value", "n": 5, "x": None})
    cache = SecretCache(store, _Clock())
    secret = cache.get("s", 300)
    assert "super-secret-value" not in repr(secret) + str(secret.fields) + f"{secret.fields['twilio_auth_token']}"
    assert secret.fields["twilio_auth_token"].reveal() == "super-secret-value"
    assert "n" not in secret.fields and "x" not in secret.fields


def test_twilio_retry_after_a_failed_rotation_refetch_is_accepted(world, lambda_handler, aws, outcomes):
    # The token rotated; the re-fetch that should have found the new one was throttled (raised, so Twilio retries).
    # The retry, on the same warm container seconds later, must get the new token, not INVALID_SIGNATURE (a 200
    # that Twilio never retries: the message would be lost).
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    world.set_secret(WA_SECRET, {"twilio_auth_token": NEW_TOKEN})
    aws.fail(GET, "ThrottlingException", 400, times=1)
    event = rest_event("whatsapp", whatsapp_params(sid="SM" + "7" * 32), token=NEW_TOKEN)
    raises_code("SECRET_FETCH_TRANSIENT_ERROR", lambda: lambda_handler(event, None))

    lambda_handler(event, None)  # Twilio's retry

    assert outcomes()[-1] == ("BATCHED", None)
    assert "SM" + "7" * 32 in [row["message_sid"] for row in world.stage_rows()]


def test_a_refetch_refused_for_good_still_spaces_the_next(world, lambda_handler, aws, outcomes):
    # Only a transient failure gives the re-fetch back: an unreadable secret keeps forged requests to one call.
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    aws.fail(GET, "AccessDeniedException", 400)
    for n in range(3):
        lambda_handler(rest_event("whatsapp", whatsapp_params(sid=f"SM{n:032d}"), token="forger-guess"), None)
    assert [code for _, code in outcomes()[1:]] == ["SECRET_FETCH_FAILED"] + ["INVALID_SIGNATURE"] * 2


def test_a_webhook_key_removed_from_the_secret_makes_a_keyed_forgery_invalid_not_a_lost_message(
    world, lambda_handler, outcomes
):
    # The tenant drops its shared key. A forged request naming it fails with the cached key; the re-fetched secret
    # has no such key, so no request naming it can be authentic: INVALID_SIGNATURE, never SECRET_FETCH_FAILED (which
    # counts as a lost message, and would let anyone set off MessageLossAlarm every 30 s).
    world.add_conversation()
    world.create_secret(WA_SECRET, json.dumps({"twilio_auth_token": TOKEN, "twilio_webhook_key": WEBHOOK_KEY}))
    lambda_handler(_shared_key_event("SM" + "1" * 32), None)
    world.set_secret(WA_SECRET, {"twilio_auth_token": TOKEN})
    forged = rest_event(
        "whatsapp",
        whatsapp_params(sid="SM" + "2" * 32),
        token="forger",
        algorithm="HMAC_SHA256",
        headers=SHARED_KEY_HEADERS,
    )
    lambda_handler(forged, None)
    assert outcomes() == [("QUEUED", None), ("INVALID_SIGNATURE", "INVALID_SIGNATURE")]
