"""A Twilio message posted to a custom domain that ``ALLOWED_HOSTS`` does not list (ops pointed Twilio at a new
domain and did not add it): refused ``INVALID_SIGNATURE`` at parse, before any read its answer needs, as before, and
staged nowhere; but never silently: once the answer is built, its signature is checked against the URL rebuilt with
the Host it arrived on (reads only), and a valid one counts ``MisroutedMessages`` (an alarm at >= 1), its event line
saying why. A forgery of one, one for no conversation, a Host that is not the domain it arrived on: not counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.dryrun import WORLD, run_dryrun
from tests.support.expect import twiml_response
from tests.support.webhooks import HOST, rest_event, sms_params, whatsapp_params
from tests.support.world import World

NEW_HOST = "hooks-new.example.com"
VALID_REASON = "the request's host, the domain it arrived on, is not in allowed_hosts [signature valid]"


def _events(json_logs: Any) -> list[dict[str, Any]]:
    return [line for line in json_logs() if line["message"] == "event"]


def _documents(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]


def test_a_genuine_message_to_an_unlisted_host_is_refused_as_before_and_counted(
    world: World, cold_start: Any, json_logs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(ALLOWED_HOSTS=HOST)
    capsys.readouterr()
    sid = "SM" + "3" * 32
    genuine = rest_event("whatsapp", whatsapp_params(sid), host=NEW_HOST)

    assert container.handler(genuine, None) == twiml_response()

    assert world.stage_rows() == [] and world.lock_rows() == [] and not any(world.all_sent().values())
    # The check reads (the lookup, the key) and writes nothing.
    assert {name.split(".")[1] for name in container.aws.names()} <= {"Query", "GetSecretValue"}
    [event] = _events(json_logs)
    assert event["outcome"] == event["error_code"] == "INVALID_SIGNATURE" and event["status"] == 200
    assert event["steps"] == {"parse": "INVALID_SIGNATURE"}
    assert event["reason"] == VALID_REASON
    assert not {"conversation_id", "candidates", "body", "from", "to"} & set(event)
    assert "+1" not in json.dumps(event)
    [document] = _documents(capsys)
    assert document["Outcome"] == "INVALID_SIGNATURE" and document["MisroutedMessages"] == 1


def test_the_event_line_of_an_unlisted_hosts_refusal_names_the_message_only_once_its_signature_is_valid(
    world: World, cold_start: Any, json_logs: Any
) -> None:
    """Defect: the line of a genuine message refused for its Host carried no ``MessageSid``, so on-call could not
    find it in Twilio's log to replay it. The SID is its line's once the check found the signature valid; a forgery
    (its claimed SID is only text anyone can post) and one for no conversation name none, as a refusal before the
    signature is checked names none."""
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(ALLOWED_HOSTS=HOST)
    genuine, forged, unknown = "SM" + "a" * 32, "SM" + "b" * 32, "SM" + "c" * 32
    events = [
        rest_event("whatsapp", whatsapp_params(genuine), host=NEW_HOST),
        rest_event("whatsapp", whatsapp_params(forged), host=NEW_HOST, token="not-the-tenants-token"),
        rest_event("whatsapp", whatsapp_params(unknown, From="whatsapp:+15550001111"), host=NEW_HOST),
    ]

    assert [container.handler(event, None) for event in events] == [twiml_response()] * 3

    lines = _events(json_logs)
    assert [line["reason"].rsplit(" ", 1)[1] for line in lines] == [
        "valid]",
        "[INVALID_SIGNATURE]",
        "[CONVERSATION_NOT_FOUND]",
    ]
    assert [line.get("message_sid") for line in lines] == [genuine, None, None]
    assert all(line.get("level") == "INFO" for line in lines)
    assert not [line for line in json_logs() if forged in json.dumps(line) or unknown in json.dumps(line)]


def test_an_unlisted_host_that_is_not_the_domain_it_arrived_on_is_not_checked(
    world: World, cold_start: Any, json_logs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A delivery signed for another URL (another Host) replayed to the listed domain: anyone may replay one, so
    it is refused before any AWS call, as before, and counted as nothing."""
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(ALLOWED_HOSTS=HOST)
    capsys.readouterr()
    borrowed = rest_event("whatsapp", whatsapp_params(), host=NEW_HOST)
    borrowed["requestContext"]["domainName"] = HOST

    assert container.handler(borrowed, None) == twiml_response()

    assert container.aws.names() == []
    [event] = _events(json_logs)
    assert event["error_code"] == "INVALID_SIGNATURE" and event.get("reason") is None
    [document] = _documents(capsys)
    assert "MisroutedMessages" not in document


@pytest.mark.parametrize(
    ("params", "token", "verdict"),
    [
        (whatsapp_params("SM" + "4" * 32), "not-the-tenants-token", "INVALID_SIGNATURE"),
        (whatsapp_params("SM" + "5" * 32, From="whatsapp:+15550001111"), None, "CONVERSATION_NOT_FOUND"),
    ],
)
def test_a_message_to_an_unlisted_host_that_does_not_check_is_not_counted(
    world: World,
    cold_start: Any,
    json_logs: Any,
    capsys: pytest.CaptureFixture[str],
    params: dict[str, str],
    token: str | None,
    verdict: str,
) -> None:
    """Anyone can post to the domain: a forgery, or one naming no conversation, must not page on-call."""
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(ALLOWED_HOSTS=HOST)
    capsys.readouterr()
    event = rest_event("whatsapp", params, host=NEW_HOST, **({"token": token} if token else {}))

    assert container.handler(event, None) == twiml_response()

    assert world.stage_rows() == [] and world.lock_rows() == []
    [line] = _events(json_logs)
    assert line["error_code"] == "INVALID_SIGNATURE" and line["reason"].endswith(f" [{verdict}]")
    assert not {"conversation_id", "candidates"} & set(line)
    [document] = _documents(capsys)
    assert "MisroutedMessages" not in document and document["Outcome"] == "INVALID_SIGNATURE"


def test_a_listed_host_and_a_host_that_is_no_host_name_are_answered_as_before(
    world: World, cold_start: Any, json_logs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start(ALLOWED_HOSTS=HOST)
    capsys.readouterr()
    malformed = rest_event("whatsapp", whatsapp_params("SM" + "6" * 32), host=f"user@{NEW_HOST}")

    assert container.handler(malformed, None) == twiml_response()
    assert container.aws.names() == []
    assert container.handler(rest_event("whatsapp", whatsapp_params("SM" + "7" * 32)), None) == twiml_response()

    assert [line["outcome"] for line in _events(json_logs)] == ["PARSING_ERROR", "QUEUED"]
    assert [doc.get("MisroutedMessages") for doc in _documents(capsys)] == [None, None]
    assert [row["message_sid"] for row in world.stage_rows()] == ["SM" + "7" * 32]


def test_the_dryrun_ends_an_unlisted_hosts_refusal_with_its_signature_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", HOST)
    path = tmp_path / "events.jsonl"
    # Bob's SMS conversation in the example world, signed with its Twilio token.
    bob = {"From": "+447700900102", "To": "+441632960001"}
    event = rest_event(
        "sms", sms_params("SM" + "8" * 32, **bob), host=NEW_HOST, token="9f86d081884c7d659a2feaa0c55ad015"
    )
    path.write_text(json.dumps(event) + "\n")

    [record] = [json.loads(line) for line in run_dryrun("--world", WORLD, "--json", path).splitlines()]

    assert record["outcome"] == "INVALID_SIGNATURE" and record["actions"] == []
    assert record["message"].endswith(" [signature valid]"), record["message"]
