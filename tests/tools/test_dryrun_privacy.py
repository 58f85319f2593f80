"""What ``pipeline-dryrun`` (and the world tools) show of an event's personal data: none of it, unless asked.

Each test replays events carrying distinctive canary values (a name, a text, an address) through the tools as a
user runs them, and searches everything they wrote (stdout, stderr, the report page) for the canaries.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.masking import MASKED_TEXT as MASKED
from tests.support.dryrun import ROOT, rules_with, run_dryrun
from tools.dryrun.capture import masked_events
from tools.dryrun.event_cli import main as event_cli
from tools.dryrun.mask import Masker
from tools.dryrun.world_cli import main as world_cli
from tools.sendgrid_events import Attachment, Email, KeyPair, inbound_parse_body, inbound_parse_event, signed

WORLD = ROOT / "examples" / "world.yaml"
# examples/generate.py signs the example emails with this seed's key, whose public key is the world's secret.
EMAIL_KEY_SEED = "examples/acme-sendgrid"
PARSE_ADDRESS = "support@inbound.acme.example"
# A user's name, as people name the files they attach (a scan of a passport, a CV).
NAME = "Zelda Quillfeather"
FILE_NAME = f"Passport scan {NAME}.pdf"


def _email_event(directory: Path, **fields: Any) -> Path:
    """Kim's email (examples/world.yaml) with ``fields``, signed at the world's ``now``, written to a file."""
    now = yaml.safe_load(WORLD.read_text())["now"]
    timestamp = int(time.mktime(time.strptime(now, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)
    kim: dict[str, Any] = {
        "sender": "Kim Lee <kim@example.org>",
        "to": PARSE_ADDRESS,
        "envelope_from": "kim@example.org",
        "envelope_to": (PARSE_ADDRESS,),
        "subject": "Order 10442",
        "text": "My passport scan, as asked.",
        "html": None,
        "message_id": "<kim-privacy@mail.example.org>",
    }
    email = Email(**{**kim, **fields})
    request = signed(KeyPair.from_seed(EMAIL_KEY_SEED), *inbound_parse_body(email), timestamp=timestamp)
    path = directory / "email.json"
    path.write_text(json.dumps(inbound_parse_event(request, request_id="req-privacy")))
    return path


def test_an_attachments_file_name_is_masked_in_the_output_and_the_report(tmp_path: Path) -> None:
    """A file name is the user's own words (often their name): masked like the body, as a capture masks it."""
    attached = (Attachment(FILE_NAME, "application/pdf", b"%PDF-1.4 ..."),)
    event = _email_event(tmp_path, attachments=attached)
    page = tmp_path / "report.html"

    out = run_dryrun("--world", WORLD, "--json", "--explain", "--report", page, event)

    [record] = [json.loads(line) for line in out.splitlines()]
    assert (record["outcome"], record["target"]) == ("QUEUED", "email")
    [stage] = [action["item"] for action in record["actions"] if action.get("table") == "conversations-stage"]
    assert stage["media"] == [{"filename": "[masked]", "content_type": "application/pdf", "size": 12}]
    assert NAME not in out and "Zelda" not in out
    assert "Zelda" not in page.read_text()


def test_with_show_data_the_file_name_is_shown(tmp_path: Path) -> None:
    event = _email_event(tmp_path, attachments=(Attachment(FILE_NAME, "application/pdf", b"%PDF-1.4 ..."),))

    [record] = [json.loads(line) for line in run_dryrun("--world", WORLD, "--json", "--show-data", event).splitlines()]

    [stage] = [action["item"] for action in record["actions"] if action.get("table") == "conversations-stage"]
    assert stage["media"] == [{"filename": FILE_NAME, "content_type": "application/pdf", "size": 12}]


FROM_RULE = """rules:
  - id: from_a_robot
    description: Mail from an address that takes no answer goes to a person.
    when: "contains(request.fields.from, 'noreply') || contains(request.fields.cc, 'noreply')"
    then: {target: handoff}
"""


def test_the_display_names_of_an_emails_address_fields_are_masked_where_a_rule_reads_them(tmp_path: Path) -> None:
    """``request.fields.from`` is the From header as written (``Zelda Quillfeather <kim@…>``): the name is personal."""
    rules = rules_with(tmp_path, FROM_RULE, "60_email_routing.yaml")
    sender, copied = f"{NAME} <kim@example.org>", "Otto Lindqvist <otto@example.com>"
    event = _email_event(tmp_path, sender=sender, cc=copied)

    out = run_dryrun("--world", WORLD, "--rules", rules, "--json", "--explain", event)

    [record] = [json.loads(line) for line in out.splitlines()]
    assert (record["outcome"], record["target"]) == ("QUEUED", "email")
    [tried] = [rule for rule in record["rules"] if rule["rule"] == "from_a_robot"]
    assert tried["inputs"] == {
        "request.fields.from": "masked masked <k***@example.org>",
        "request.fields.cc": "masked masked <o***@example.com>",
    }
    assert "Zelda" not in out and "Quillfeather" not in out and "Otto" not in out and "Lindqvist" not in out
    shown = run_dryrun("--world", WORLD, "--rules", rules, "--json", "--explain", "--show-data", event)
    assert sender in shown and copied in shown


def test_display_names_without_an_address_are_masked_as_the_capture_masks_them(tmp_path: Path) -> None:
    """A Cc of names only (``Zelda Quillfeather``, ``Otto Lindqvist <>``): no "@", still personal."""
    rules = rules_with(tmp_path, FROM_RULE, "60_email_routing.yaml")
    copied = f"{NAME}, Otto Lindqvist <>"
    event = _email_event(tmp_path, cc=copied)

    out = run_dryrun("--world", WORLD, "--rules", rules, "--json", "--explain", event)

    [record] = [json.loads(line) for line in out.splitlines()]
    [tried] = [rule for rule in record["rules"] if rule["rule"] == "from_a_robot"]
    assert tried["inputs"]["request.fields.cc"] == "masked masked, masked masked <>"
    assert "Zelda" not in out and "Quillfeather" not in out and "Otto" not in out and "Lindqvist" not in out
    # The capture of the same event masks them alike.
    [captured] = masked_events([event], mask="text", pseudonyms=None, auth_headers={})
    assert "Zelda" not in json.dumps(captured) and "Otto" not in json.dumps(captured)
    # A Twilio From and To (no display name: a channel and a number) keep their shape, the number masked.
    masker = Masker(show_data=False)
    assert masker.data({"From": "whatsapp:+447700900101", "To": "+14155238886", "from": "messenger:1234567"}) == {
        "From": "whatsapp:+**********01",
        "To": "+*********86",
        "from": "messenger:*****67",
    }
    assert masker.data({"from": "Zelda", "to": " Zelda Quillfeather <> ", "cc": ""}) == {
        "from": "masked",
        "to": " masked masked <> ",
        "cc": "",
    }


def test_a_masked_world_masks_the_file_names_of_its_stage_rows(tmp_path: Path) -> None:
    """``pipeline-world pseudonymize --mask text``: a staged email's attachment names go as its body does."""
    world = yaml.safe_load(WORLD.read_text())
    media = [{"filename": FILE_NAME, "content_type": "application/pdf", "size": 12}]
    row = {"conversation_id": "ci-1#pi-1#u#kim@example.org", "message_sid": "EM" + "0" * 32, "body": "scan attached"}
    world["stage"] = [{**row, "media": media}]
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world))
    out, err = io.StringIO(), io.StringIO()

    assert world_cli(["pseudonymize", str(path), "--mask", "text"], out=out, err=err) == 0, err.getvalue()

    [stage] = json.loads(out.getvalue())["stage"]
    assert stage["body"] == "[masked]"
    assert stage["media"] == [{"filename": "[masked]", "content_type": "application/pdf", "size": 12}]
    assert "Zelda" not in out.getvalue()


def test_a_rule_reading_display_names_a_recording_masked_gets_the_masked_recording_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``mask=text`` recording keeps an email's addresses but not the names beside them (``masked masked
    <kim@…>``): a rule reading ``request.fields.from`` read text production sees otherwise, and the event says so,
    as it does for a ``[masked]`` body."""
    robot = FROM_RULE.replace(" || contains(request.fields.cc, 'noreply')", "")
    rules = rules_with(tmp_path, robot, "60_email_routing.yaml")
    event = _email_event(tmp_path, sender=f"{NAME} <kim@example.org>")
    assert event_cli(["mask", str(event)]) == 0
    masked = tmp_path / "masked.json"
    masked.write_text(capsys.readouterr().out)

    out = run_dryrun("--world", WORLD, "--rules", rules, "--skip-signature", "--json", masked)

    [record] = [json.loads(line) for line in out.splitlines()]
    assert (record["outcome"], record["target"]) == ("QUEUED", "email")
    [note] = [note for note in record["notes"] if note.startswith("recording masked")]
    assert note.startswith(
        "recording masked (mask=text): email_routing/from_a_robot read request.fields.from, which held [masked] or "
        "masked names instead of the real value"
    )


# Fields Twilio posts beside the message that the capture masks (runtime.masking.FORM_KEPT_FIELDS keeps none of them):
# where the sender is, the ad they came from, and a field Twilio may add later.
UNLISTED_FIELDS = {
    "FromCity": "Quillborough",
    "FromState": "Quillshire",
    "FromZip": "QB7 9XZ",
    "FromCountry": "Quillandia",
    "ToCity": "Questerham",
    "ReferralBody": "Zelda saw the winter promo",
    "ReferralHeadline": "Quillfeather deals",
    "ReferralSourceUrl": "https://ads.example/zelda-quillfeather-77",
    "SenderFavouriteColour": "Quillfeather-teal",
}
CITY_RULE = """rules:
  - id: from_elsewhere
    description: Messages from another city go to a person.
    when: "request.fields.FromCity == 'Elsewhere'"
    then: {target: handoff}
"""


def _carol_event(directory: Path, body: str = "Thanks, see you") -> Path:
    """Carol's WhatsApp message (handed off: its form goes into the handoff message), with ``UNLISTED_FIELDS``."""
    from tools.dryrun.corpus import twilio_rest_event, whatsapp_form
    from tools.dryrun.world import load_world

    world = load_world(WORLD)
    secret = json.loads(world.secrets["ai-multi-comms/whatsapp-credentials/acme/support/twilio-prod"])
    form = whatsapp_form(
        "SM" + "c" * 32,
        "+447700900103",
        "+14155238886",
        body,
        account=secret["twilio_account_sid"],
        profile_name="Carol",
    )
    event = twilio_rest_event("whatsapp", [*form, *UNLISTED_FIELDS.items()], token=secret["twilio_auth_token"])
    path = directory / "carol.json"
    path.write_text(json.dumps(event))
    return path


def test_form_fields_the_capture_masks_are_masked_in_every_output(tmp_path: Path) -> None:
    """The capture keeps a form's listed fields only; the dry-run showed any field not on its list of free text.

    A sender's city and postcode, the ad they came from, a field Twilio adds later: in the handoff message's
    ``request``, in a rule's inputs, in the table and on the report page.
    """
    rules = rules_with(tmp_path, CITY_RULE)
    event = _carol_event(tmp_path)
    page = tmp_path / "report.html"

    out = run_dryrun("--world", WORLD, "--rules", rules, "--json", "--report", page, event)
    table = run_dryrun("--world", WORLD, "--rules", rules, "--explain", event)

    [record] = [json.loads(line) for line in out.splitlines()]
    assert (record["outcome"], record["target"], record["signature"]) == ("HANDED_OFF", "handoff", "valid")
    [send] = [action for action in record["actions"] if action["type"] == "send_message"]
    request = json.loads(send["body"])["request"]
    assert {name: request[name] for name in UNLISTED_FIELDS} == dict.fromkeys(UNLISTED_FIELDS, MASKED)
    # What rules and the explanation need stays: ids, types, counts and the numbers' last two digits.
    assert request["MessageType"] == "text" and request["NumMedia"] == "0" and request["MessageSid"] == "SM" + "c" * 32
    assert request["From"] == "whatsapp:+**********03"
    [tried] = [rule for rule in record["rules"] if rule["rule"] == "from_elsewhere"]
    assert tried["inputs"] == {"request.fields.FromCity": MASKED}
    # The rule read a value the output hides: the event says how to see it.
    [note] = [note for note in record["notes"] if "--show-data" in note]
    assert "routing/from_elsewhere read request.fields.FromCity" in note
    for written in (out, table, page.read_text()):
        shown = [value for value in UNLISTED_FIELDS.values() if value in written or json.dumps(value) in written]
        assert shown == []
        assert "Quill" not in written and "Zelda" not in written

    shown = run_dryrun("--world", WORLD, "--rules", rules, "--json", "--show-data", event)
    [record] = [json.loads(line) for line in shown.splitlines()]
    [send] = [action for action in record["actions"] if action["type"] == "send_message"]
    assert {name: json.loads(send["body"])["request"][name] for name in UNLISTED_FIELDS} == UNLISTED_FIELDS
    [tried] = [rule for rule in record["rules"] if rule["rule"] == "from_elsewhere"]
    assert tried["inputs"] == {"request.fields.FromCity": "Quillborough"}
    assert not [note for note in record["notes"] if "--show-data" in note]


def test_a_credential_typed_into_a_message_never_shows_in_any_case_or_encoding(tmp_path: Path) -> None:
    """With ``--show-data`` the message text shows, never a credential in it (docs/dry-run.md): the scrubber replaced
    the token only as the world holds it, so the same token upper-cased, URL-encoded or base64-encoded showed."""
    from urllib.parse import quote

    world = yaml.safe_load(WORLD.read_text())
    token = world["secrets"]["ai-multi-comms/whatsapp-credentials/acme/support/twilio-prod"]["twilio_auth_token"]
    key = world["secrets"]["ai-multi-comms/email-credentials/acme/support/sendgrid-prod"]["sendgrid_webhook_public_key"]
    typed = {
        "upper-cased": token.upper(),
        "base64": base64.b64encode(token.encode()).decode(),
        "base64 unpadded, URL-safe": base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
        "URL-encoded": quote(key, safe=""),
        "URL-encoded lower": quote(key, safe="").lower(),
    }
    event = _carol_event(tmp_path, "my keys: " + " and ".join(typed.values()) + ". Thanks")
    page = tmp_path / "report.html"

    out = run_dryrun("--world", WORLD, "--json", "--explain", "--show-data", "--report", page, event)
    table = run_dryrun("--world", WORLD, "--explain", "--show-data", event)

    [record] = [json.loads(line) for line in out.splitlines()]
    assert record["outcome"] == "HANDED_OFF"
    [send] = [action for action in record["actions"] if action["type"] == "send_message"]
    assert json.loads(send["body"])["body"] == "my keys: *** and *** and *** and *** and ***. Thanks"
    for written in (out, table, page.read_text()):
        assert [how for how, form in typed.items() if form in written or form.lower() in written.lower()] == []
        assert "my keys: ***" in written


NAME_RULE = """rules:
  - id: named_customer
    description: Customers whose name is on file go to a person.
    when: "conversation.customer_name == 'Someone Else'"
    then: {target: handoff}
"""


def test_a_conversations_attributes_the_pipeline_does_not_use_show_no_text(tmp_path: Path) -> None:
    """The handoff message carries the whole conversation item (CONTRACT §2), whose attributes other services write:
    the name of the person who took it over (``company_rep``), the customer's, anything added later. Only the
    attributes the pipeline reads kept their text; every other one's text showed but for ``content`` fields."""
    world = yaml.safe_load(WORLD.read_text())
    [carol] = [row for row in world["conversations"] if row.get("recipient_tel") == "+447700900103"]
    carol["customer_name"] = NAME
    carol["profile"] = {"city": "Quillborough", "visits": 3, "vip": True}
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world))
    rules = rules_with(tmp_path, NAME_RULE)
    event = _carol_event(tmp_path)
    page = tmp_path / "report.html"

    out = run_dryrun("--world", path, "--rules", rules, "--json", "--report", page, event)
    table = run_dryrun("--world", path, "--rules", rules, "--explain", event)

    [record] = [json.loads(line) for line in out.splitlines()]
    [send] = [action for action in record["actions"] if action["type"] == "send_message"]
    conversation = json.loads(send["body"])["conversation"]
    assert conversation["company_rep"] == {"name": MASKED, "role": MASKED}
    assert conversation["customer_name"] == MASKED
    assert conversation["profile"] == {"city": MASKED, "visits": 3, "vip": True}
    assert conversation["messages"][0] == {"role": MASKED, "content": MASKED, "timestamp": 1795100000}
    # What the pipeline reads stays as it was: statuses, channels, flags, dates, credential names, numbers masked.
    assert (conversation["project_status"], conversation["allowed_channels"]) == ("active", ["whatsapp", "sms"])
    assert conversation["hand_off_to_human"] is True and conversation["task_complete"] == 0
    assert conversation["recipient_tel"] == "+**********03" and conversation["created_at"] == "2026-11-22T08:40:00Z"
    assert conversation["channel_config"] == carol["channel_config"]
    [tried] = [rule for rule in record["rules"] if rule["rule"] == "named_customer"]
    assert tried["inputs"] == {"conversation.customer_name": MASKED}
    assert [note for note in record["notes"] if "read conversation.customer_name" in note and "--show-data" in note]
    for written in (out, table, page.read_text()):
        assert "Priya" not in written and "Zelda" not in written and "Quillborough" not in written

    shown = run_dryrun("--world", path, "--rules", rules, "--json", "--show-data", event)
    [record] = [json.loads(line) for line in shown.splitlines()]
    [send] = [action for action in record["actions"] if action["type"] == "send_message"]
    conversation = json.loads(send["body"])["conversation"]
    assert conversation["company_rep"] == {"name": "Priya", "role": "agent"} and conversation["customer_name"] == NAME


def test_a_media_url_shows_as_the_capture_keeps_it() -> None:
    """Twilio's media URLs (``MediaUrl0``; fetchable without credentials unless the account enforces them) are masked
    by the capture, and so in the stage row's ``media``; the media type stays."""
    event = ROOT / "examples" / "events" / "07_media_only.json"

    [masked] = [json.loads(line) for line in run_dryrun("--world", WORLD, "--json", event).splitlines()]
    [shown] = [json.loads(line) for line in run_dryrun("--world", WORLD, "--json", "--show-data", event).splitlines()]

    assert masked["actions"][0]["item"]["media"] == [{"url": MASKED, "content_type": "image/jpeg"}]
    assert shown["actions"][0]["item"]["media"][0]["url"].startswith("https://api.twilio.com/2010-04-01/Accounts/AC")


def test_a_message_that_spells_a_fields_name_leaves_the_records_shape_as_it_was(tmp_path: Path) -> None:
    """A value the capture masks is hidden wherever it shows, but never as a key: a message reading ``body`` (or
    ``media``, ``to``…) renamed the stage row's ``body`` field ``[masked]``, and the handoff's."""
    event = _carol_event(tmp_path, body="body")

    [record] = [json.loads(line) for line in run_dryrun("--world", WORLD, "--json", event).splitlines()]

    [stage] = [action["item"] for action in record["actions"] if action.get("table") == "conversations-stage"]
    assert "body" in stage and stage["body"] == MASKED and MASKED not in stage
    [send] = [action for action in record["actions"] if action["type"] == "send_message"]
    handoff = json.loads(send["body"])
    assert handoff["body"] == MASKED and MASKED not in handoff


@pytest.mark.parametrize("body", ["whatsapp", "open", "active"])
def test_a_message_that_reads_like_the_pipelines_own_words_leaves_channel_and_statuses_shown(
    tmp_path: Path, body: str
) -> None:
    """A message reading ``whatsapp`` (or ``open``, ``active``) hid the event's channel in the stage row, the handoff
    and the rules' inputs, and the conversation's status and project status, with a 'personal data hidden' note: the
    values ops judge a rule by. The body itself, and the fields the capture masks, stay masked."""
    event = _carol_event(tmp_path, body=body)

    [record] = [json.loads(line) for line in run_dryrun("--world", WORLD, "--json", event).splitlines()]

    inputs = {path: value for rule in record["rules"] for path, value in rule["inputs"].items()}
    assert inputs["request.channel"] == "whatsapp"
    assert inputs["conversation.allowed_channels"] == ["whatsapp", "sms"]
    assert inputs["conversation.conversation_status"] == "open"
    assert inputs["conversation.project_status"] == "active"
    [stage] = [action["item"] for action in record["actions"] if action.get("table") == "conversations-stage"]
    assert (stage["channel_type"], stage["body"]) == ("whatsapp", MASKED)
    [send] = [action for action in record["actions"] if action["type"] == "send_message"]
    handoff = json.loads(send["body"])
    assert (handoff["channel_type"], handoff["body"], handoff["request"]["Body"]) == ("whatsapp", MASKED, MASKED)
    assert handoff["request"]["FromCity"] == MASKED
    assert not [note for note in record["notes"] if "--show-data" in note]


FIELDS_RULE = """rules:
  - id: reads_the_fields
    description: A rule reading every field the email pipeline keeps.
    when: "request.fields.spam_score == 'never' && request.fields != `{}`"
    then: {target: handoff}
"""


def test_an_emails_fields_show_as_its_capture_keeps_them(tmp_path: Path) -> None:
    """Of an email only its addresses and SendGrid's results show (as the capture keeps them), wherever they are
    read: its subject is hidden in ``request.fields`` too; ``sender_ip`` and ``spam_report`` never show."""
    rules = rules_with(tmp_path, FIELDS_RULE, "60_email_routing.yaml")
    event = _email_event(tmp_path, subject=f"Order for {NAME}", extra_headers={"X-Customer": NAME})

    out = run_dryrun("--world", WORLD, "--rules", rules, "--json", "--explain", event)

    [record] = [json.loads(line) for line in out.splitlines()]
    [tried] = [rule for rule in record["rules"] if rule["rule"] == "reads_the_fields"]
    fields = tried["inputs"]["request.fields"]
    assert (fields["subject"], fields["spam_score"], fields["SPF"]) == (MASKED, "0.012", "pass")
    assert fields["to"] == "s***@inbound.acme.example" and fields["from"] == "masked masked <k***@example.org>"
    assert "Zelda" not in out and "192.0.2.25" not in out and "Spam detection" not in out
    shown = run_dryrun("--world", WORLD, "--rules", rules, "--json", "--show-data", event)
    assert f"Order for {NAME}" in shown
