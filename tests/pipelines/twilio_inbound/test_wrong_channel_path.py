"""A Twilio message posted to the other channel's path (a Messaging Service holding WhatsApp and SMS senders posts
both to one URL): the path decides the channel (the contract), so it ends ``PARSING_ERROR``, answered 200 with empty
TwiML and nothing written, but never silently: its ``event`` line says why and names the ``MessageSid`` (no number
or body), and its metrics document counts it apart from junk (``MisroutedMessages``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.masking import MASKED_SIGNATURE
from tests.support.dryrun import WORLD, run_dryrun
from tests.support.expect import twiml_response
from tests.support.webhooks import USER, rest_event, sms_params, status_params, whatsapp_params
from tests.support.world import World
from tools.dryrun.report import MASKED_SIGNATURE_NOTE

SMS_SID = "SM" + "5" * 32
WA_SID = "SM" + "6" * 32
MISROUTED = {
    # An SMS (From/To bare numbers) posted to …/whatsapp, and a WhatsApp message (whatsapp: addresses) to …/sms.
    "sms-to-whatsapp": ("whatsapp", sms_params(sid=SMS_SID), SMS_SID, "addressed as on …/sms was posted to …/whatsapp"),
    "whatsapp-to-sms": ("sms", whatsapp_params(sid=WA_SID), WA_SID, "addressed as on …/whatsapp was posted to …/sms"),
}


def _events(json_logs: Any) -> list[dict[str, Any]]:
    return [line for line in json_logs() if line["message"] == "event"]


@pytest.mark.parametrize("case", sorted(MISROUTED))
def test_a_message_on_the_other_channels_path_is_logged_with_its_reason_and_sid(
    world: World, lambda_handler: Any, json_logs: Any, case: str
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    path, params, sid, reason = MISROUTED[case]

    assert lambda_handler(rest_event(path, params), None) == twiml_response()

    assert world.stage_rows() == [] and world.lock_rows() == [] and not any(world.all_sent().values())
    [event] = _events(json_logs)
    assert event["outcome"] == event["error_code"] == "PARSING_ERROR"
    assert event["status"] == 200 and event["steps"] == {"parse": "PARSING_ERROR"}
    assert event["message_sid"] == sid
    assert reason in event["reason"]


def test_a_parse_failure_names_no_sid_that_is_not_a_twilio_sid(
    world: World, lambda_handler: Any, json_logs: Any
) -> None:
    """Only a SID of Twilio's exact shape is logged: the field is the request's text otherwise (a number, say)."""
    params = whatsapp_params(sid=USER)

    assert lambda_handler(rest_event("whatsapp", params), None) == twiml_response()

    [event] = _events(json_logs)
    assert event["error_code"] == "PARSING_ERROR" and "message_sid" not in event
    assert event["reason"] == "MessageSid is not a Twilio message SID"


def test_the_dryrun_shows_a_misrouted_message_as_not_parsed(tmp_path: Path) -> None:
    """Its request did not parse: no signature verdict (null), whatever the refusal recorded of it."""
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(rest_event("whatsapp", sms_params(sid=SMS_SID))) + "\n")

    [record] = [json.loads(line) for line in run_dryrun("--world", WORLD, "--json", path).splitlines()]

    assert (record["outcome"], record["status_code"], record["signature"]) == ("PARSING_ERROR", 200, None)
    assert record["actions"] == []


def test_the_dryrun_ends_a_misrouted_messages_reason_with_its_signature_check(tmp_path: Path) -> None:
    """Defect: the dry-run ran the check of a misrouted message (its lookup and key reads, against the world or the
    account) and dropped its verdict, so a replayed message production counted in MisroutedMessages (paging on-call)
    read exactly as a forgery of one. Its message ends with the verdict, as the event line's reason does; under
    --skip-signature the check's signature steps are skipped too, so it has none."""
    path = tmp_path / "events.jsonl"
    # Bob's SMS conversation in the example world, signed with its Twilio token (and with another).
    bob = {"From": "+447700900102", "To": "+441632960001"}
    events = [
        rest_event("whatsapp", sms_params(sid=SMS_SID, **bob), token="9f86d081884c7d659a2feaa0c55ad015"),
        rest_event("whatsapp", sms_params(sid="SM" + "b" * 32, **bob), token="not-the-tenants-token"),
        # A masked recording's: no key signs it, so its refusal is the replay's (the note says so).
        rest_event("whatsapp", sms_params(sid="SM" + "c" * 32, **bob), signature=MASKED_SIGNATURE),
    ]
    path.write_text("".join(json.dumps(event) + "\n" for event in events))

    checked = [json.loads(line) for line in run_dryrun("--world", WORLD, "--json", path).splitlines()]
    skipped = [
        json.loads(line) for line in run_dryrun("--world", WORLD, "--json", "--skip-signature", path).splitlines()
    ]

    assert [record["outcome"] for record in checked + skipped] == ["PARSING_ERROR"] * 6
    assert checked[0]["message"].endswith("(register each channel's own webhook URL) [signature valid]")
    assert checked[1]["message"].endswith("(register each channel's own webhook URL) [INVALID_SIGNATURE]")
    assert checked[2]["message"].endswith(" [INVALID_SIGNATURE]")
    assert [record["message"].endswith("own webhook URL)") for record in skipped] == [True] * 3
    assert [record["signature"] for record in checked] == [None] * 3
    assert [any(note.startswith(MASKED_SIGNATURE_NOTE) for note in record["notes"]) for record in checked] == [
        False,
        False,
        True,
    ]
    assert "[signature valid]" in run_dryrun("--world", WORLD, path)


def _documents(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]


def test_a_misrouted_message_is_counted_once_its_signature_is_checked_and_never_otherwise(
    world: World, lambda_handler: Any, aws: Any, json_logs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``MisroutedMessages``: a message whose every identity field is the other channel's (lost, if genuine), and
    whose signature checks with the key of the conversation its addresses name (read after the answer is built,
    which it never changes). Not a forgery of one, one for no conversation, a status callback posted so (nothing is
    lost), nor a form that is no channel's (junk): anyone can post those, and the count pages on-call."""
    world.add_conversation()
    world.add_default_secrets()
    capsys.readouterr()
    junk = sms_params(sid="SM" + "7" * 32, From="+1415555O123")  # a letter O: no channel's number
    stranger = sms_params(sid="SM" + "a" * 32, From="+15550001111")
    refused = [
        rest_event("whatsapp", sms_params(sid=SMS_SID)),
        rest_event("sms", whatsapp_params(sid=WA_SID)),
        rest_event("whatsapp", sms_params(sid="SM" + "b" * 32), token="not-the-tenants-token"),
        rest_event("whatsapp", stranger),
        rest_event("whatsapp", status_params(channel="sms")),
        rest_event("whatsapp", junk),
    ]
    for event in refused:
        assert lambda_handler(event, None) == twiml_response()
    # The checks read (the lookups, the keys) and write nothing.
    assert aws.count("dynamodb.Query") == 4 and aws.count("secretsmanager.GetSecretValue") >= 1
    assert {name.split(".")[1] for name in aws.names()} <= {"Query", "GetSecretValue"}
    assert lambda_handler(rest_event("whatsapp", whatsapp_params(sid="SM" + "8" * 32)), None) == twiml_response()

    documents = _documents(capsys)
    assert [doc["Outcome"] for doc in documents] == ["PARSING_ERROR"] * 6 + ["QUEUED"]
    assert [doc.get("MisroutedMessages") for doc in documents] == [1, 1, None, None, None, None, None]
    counted = documents[0]["_aws"]["CloudWatchMetrics"]
    assert {"Namespace": "InboundWebhookPipeline", "Dimensions": [["Pipeline"]]}.items() <= next(
        directive for directive in counted if {"Name": "MisroutedMessages", "Unit": "Count"} in directive["Metrics"]
    ).items()
    reasons = [event.get("reason", "") for event in _events(json_logs)]
    assert reasons[0].endswith(
        "was posted to …/whatsapp: the path decides the channel (register each channel's "
        "own webhook URL) [signature valid]"
    )
    assert reasons[1].endswith(
        "was posted to …/sms: the path decides the channel (register each channel's own webhook URL) [signature valid]"
    )
    assert reasons[2].endswith(" [INVALID_SIGNATURE]") and reasons[3].endswith(" [CONVERSATION_NOT_FOUND]")
    assert reasons[4].startswith("a status callback addressed as on …/sms") and "[" not in reasons[4]
    assert reasons[5] == "From is not a whatsapp:+E.164 number" and reasons[6] == ""
    assert [row["message_sid"] for row in world.stage_rows()] == ["SM" + "8" * 32]


SENDER_ID_CALLBACKS = {
    # An SMS sent from an alphanumeric sender ID: its status callbacks' From is that ID, no number.
    "alphanumeric-sender": {**status_params(sid="SM" + "9" * 32, channel="sms"), "From": "MyBrand"},
    # A callback that names no sender at all.
    "no-sender": {k: v for k, v in status_params(sid="SM" + "9" * 32, channel="sms").items() if k != "From"},
}


@pytest.mark.parametrize("case", sorted(SENDER_ID_CALLBACKS))
def test_a_status_callback_whose_sender_is_no_number_is_refused_as_a_callback_before_any_aws_call(
    world: World, lambda_handler: Any, aws: Any, json_logs: Any, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Its company cannot be looked up, so its signature cannot be checked: not a STATUS_CALLBACK (the contract
    acknowledges one after its check), a PARSING_ERROR whose reason says it is a status callback (nothing was lost,
    unlike a message refused so), counted as no misrouted message."""
    world.add_conversation()
    world.add_default_secrets()
    capsys.readouterr()

    assert lambda_handler(rest_event("sms", SENDER_ID_CALLBACKS[case]), None) == twiml_response()

    assert aws.names() == []
    assert world.stage_rows() == [] and world.lock_rows() == [] and not any(world.all_sent().values())
    [event] = _events(json_logs)
    assert event["error_code"] == "PARSING_ERROR" and event["message_sid"] == "SM" + "9" * 32
    assert event["reason"].startswith("status callback: ") and "From" in event["reason"]
    [document] = _documents(capsys)
    assert "MisroutedMessages" not in document


@pytest.mark.parametrize(
    ("operation", "code", "status", "verdict"),
    [
        ("dynamodb.Query", "ProvisionedThroughputExceededException", 400, "DB_TRANSIENT_ERROR"),
        ("secretsmanager.GetSecretValue", "AccessDeniedException", 400, "SECRET_FETCH_FAILED"),
    ],
)
def test_a_fault_in_the_check_of_a_misrouted_message_changes_nothing_of_its_answer(
    world: World,
    cold_start: Any,
    json_logs: Any,
    capsys: pytest.CaptureFixture[str],
    operation: str,
    code: str,
    status: int,
    verdict: str,
) -> None:
    """The contract's answer to a PARSING_ERROR on a Twilio channel (200, empty TwiML), never a raise, even when
    the check meets a transient fault; it is then unverified, and not counted."""
    world.add_conversation()
    world.add_default_secrets()
    container = cold_start()
    capsys.readouterr()
    container.aws.fail(operation, code, status)

    assert container.handler(rest_event("whatsapp", sms_params(sid=SMS_SID)), None) == twiml_response()

    [event] = _events(json_logs)
    assert event["error_code"] == "PARSING_ERROR" and event["reason"].endswith(f" [{verdict}]")
    [document] = _documents(capsys)
    assert "MisroutedMessages" not in document and document["Outcome"] == "PARSING_ERROR"


def test_a_bug_in_the_check_of_a_misrouted_message_changes_nothing_of_its_answer(
    world: World, lambda_handler: Any, json_logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime.misroute

    def broken(config: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(runtime.misroute, "checker", broken)

    assert lambda_handler(rest_event("whatsapp", sms_params(sid=SMS_SID)), None) == twiml_response()

    [event] = _events(json_logs)
    assert event["reason"].endswith(" [INTERNAL_ERROR]")
    assert any(line["message"] == "misrouted message check failed" for line in json_logs())


def test_the_check_of_a_misrouted_message_names_no_conversation_on_its_event_line(
    world: World, lambda_handler: Any, json_logs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: the check's lookup bound the conversation it read to the invocation's log fields, so the refusal's
    event line and metrics document named a tenant's conversation, for a forgery too (anyone may post one naming any
    company and user): a query by that conversation_id listed posts it never received. The check's verdict is all
    the line says of it; the fields are the invocation's again after it."""
    world.add_conversation()
    world.add_default_secrets()
    capsys.readouterr()
    forged = rest_event("whatsapp", sms_params(sid="SM" + "b" * 32), token="not-the-tenants-token")

    for event in (forged, rest_event("whatsapp", sms_params(sid=SMS_SID))):
        assert lambda_handler(event, None) == twiml_response()

    events = _events(json_logs)
    assert events[0]["reason"].endswith(" [INVALID_SIGNATURE]") and events[1]["reason"].endswith(" [signature valid]")
    assert [sorted(set(event) & {"conversation_id", "candidates"}) for event in events] == [[], []]
    documents = _documents(capsys)
    assert [doc.get("MisroutedMessages") for doc in documents] == [None, 1]
    assert [sorted(set(doc) & {"conversation_id", "candidates"}) for doc in documents] == [[], []]
