"""``pipeline-event build`` events posted to ``handler.handler`` (in-process moto): the signature holds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.email import COMPANY_EMAIL, USER_EMAIL, add_email_world
from tests.support.webhooks import COMPANY_SMS, COMPANY_WA, TOKEN, USER
from tools.dryrun.event_cli import main
from tools.sendgrid_events import KeyPair

SEED = "a-test-seed"
API_OPTIONS = [pytest.param((), id="rest-1.0"), pytest.param(("--http-api",), id="http-2.0")]


def built(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["build", *args]) == 0
    event: dict[str, Any] = json.loads(capsys.readouterr().out)
    return event


@pytest.mark.parametrize("api", API_OPTIONS)
@pytest.mark.parametrize(("channel", "company"), [("whatsapp", COMPANY_WA), ("sms", COMPANY_SMS)])
def test_a_built_twilio_event_is_accepted_by_the_handler(
    world, lambda_handler, outcomes, capsys, monkeypatch, channel: str, company: str, api: tuple[str, ...]
) -> None:
    world.add_conversation()
    world.add_default_secrets()
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    args = ("--channel", channel, "--from", USER, "--to", company, "--body", "Hi", "--token-env", "ACME_TOKEN")
    event = built(capsys, *args, *api)
    lambda_handler(event, None)
    assert outcomes() == [("QUEUED", None)]


@pytest.mark.parametrize("api", API_OPTIONS)
def test_a_built_email_is_accepted_by_the_handler(
    world, lambda_handler, outcomes, capsys, api: tuple[str, ...]
) -> None:
    add_email_world(world, key=KeyPair.from_seed(SEED))
    args = ("--channel", "email", "--from", USER_EMAIL, "--to", COMPANY_EMAIL, "--body", "Hi", "--key-seed", SEED)
    event = built(capsys, *args, *api)
    lambda_handler(event, None)
    assert outcomes() == [("QUEUED", None)]


@pytest.mark.parametrize("api", API_OPTIONS)
def test_the_on_call_replay_of_a_lost_message_is_accepted_by_the_handler(
    world, lambda_handler, outcomes, capsys, monkeypatch, api: tuple[str, ...]
) -> None:
    # docs/deploy.md, "Replaying a Twilio message": --sid, --account and the execute-api URL as registered.
    world.add_conversation()
    world.add_default_secrets()
    monkeypatch.setenv("TENANT_TOKEN", TOKEN)
    sid, account = "SM" + "a" * 32, "AC" + "b" * 32
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    event = built(
        capsys,
        *("--channel", "whatsapp", "--sid", sid, "--from", USER, "--to", COMPANY_WA, "--body", "Lost one"),
        *("--account", account, "--token-env", "TENANT_TOKEN", "--url", url, *api),
    )
    lambda_handler(event, None)
    assert outcomes() == [("QUEUED", None)]
    [row] = world.stage_rows()
    assert row["message_sid"] == sid and row["body"] == "Lost one"
