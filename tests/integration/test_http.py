"""pipeline-serve and moto's server as real processes; Twilio-signed HTTP requests; results read through boto3."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Moto, Serve, base_env, start_serve, stop
from tests.support.email import KEY, USER_EMAIL, add_email_world
from tests.support.shipped import deployed_env
from tests.support.webhooks import COMPANY_WA, EMPTY_TWIML, TOKEN, USER, sms_params, whatsapp_params
from tests.support.world import WA_SECRET, World, conversation
from tools.sendgrid_events import Email, inbound_parse_body, signed

pytestmark = pytest.mark.integration

SID_1, SID_2 = "SM" + "a" * 32, "SM" + "b" * 32


def received(world: World, queue: str) -> list[dict[str, Any]]:
    """The messages waiting in ``queue``, bodies decoded."""
    answer = world.sqs.receive_message(QueueUrl=world.queue_url(queue), MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(message["Body"]) for message in answer.get("Messages", [])]


def untouched(world: World) -> bool:
    return (
        not world.stage_rows()
        and not world.lock_rows()
        and not any(received(world, q) for q in ("whatsapp", "sms", "handoff"))
    )


def test_a_whatsapp_message_is_staged_locked_and_triggered(serve: Serve, aws: World) -> None:
    assert aws.resources.whatsapp_queue_url.startswith("http://127.0.0.1:")
    item = aws.add_conversation()
    aws.add_default_secrets()
    before = int(time.time())

    answer = serve.post("/prod/whatsapp", whatsapp_params(sid=SID_1))

    assert (answer.status, answer.body) == (200, EMPTY_TWIML)
    assert answer.headers["Content-Type"].startswith("text/xml")
    (row,) = aws.stage_rows()
    assert {k: row[k] for k in ("conversation_id", "message_sid", "primary_channel", "channel_type", "body")} == {
        "conversation_id": item["conversation_id"],
        "message_sid": SID_1,
        "primary_channel": USER,
        "channel_type": "whatsapp",
        "body": "Hello there! 👋",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["received_at"])
    assert before + 86400 <= row["expires_at"] <= int(time.time()) + 86400
    (lock,) = aws.lock_rows()
    assert lock["message_sid"] == SID_1
    assert before + 60 <= lock["expires_at"] <= int(time.time()) + 60  # W = 0 here, plus the 60 s buffer
    assert received(aws, "whatsapp") == [{"conversation_id": item["conversation_id"], "primary_channel": USER}]
    assert received(aws, "sms") == received(aws, "handoff") == []


def test_without_a_batch_window_every_message_sends_its_own_trigger(serve: Serve, aws: World) -> None:
    # W = 0: the first trigger is visible at once, so a consumer may read the batch before the second row
    # lands; batching the second message would leave it without a pending trigger (tests/.../test_batch_races.py).
    aws.add_conversation()
    aws.add_default_secrets()
    assert serve.post("/prod/whatsapp", whatsapp_params(sid=SID_1)).status == 200
    assert serve.post("/prod/whatsapp", whatsapp_params(sid=SID_2, body="and another thing")).status == 200
    assert sorted(row["message_sid"] for row in aws.stage_rows()) == [SID_1, SID_2]
    assert [lock["message_sid"] for lock in aws.lock_rows()] == [SID_2]
    assert len(received(aws, "whatsapp")) == 2


def test_a_conversation_handed_to_a_human_goes_to_the_handoff_queue_with_its_context(serve: Serve, aws: World) -> None:
    item = aws.add_conversation(hand_off_to_human=True)
    aws.add_default_secrets()
    answer = serve.post("/prod/sms", sms_params())
    assert (answer.status, answer.body) == (200, EMPTY_TWIML)
    (message,) = received(aws, "handoff")
    assert (message["conversation_id"], message["channel_type"], message["body"]) == (
        item["conversation_id"],
        "sms",
        "Hi, is this open?",
    )
    assert message["conversation"]["ai_config"] == item["ai_config"] and message["request"]["From"] == USER
    assert not aws.lock_rows() and received(aws, "sms") == []


def test_a_request_not_signed_over_the_url_the_server_saw_writes_nothing(serve: Serve, aws: World) -> None:
    aws.add_conversation()
    aws.add_default_secrets()
    https = serve.url("/prod/whatsapp").replace("http://", "https://")
    for answer in (
        serve.post("/prod/whatsapp", whatsapp_params(), signed_url=https),
        serve.post("/prod/whatsapp", whatsapp_params(), token="not-the-token"),
    ):
        assert (answer.status, answer.body) == (200, EMPTY_TWIML)
    assert untouched(aws)


def test_paths_are_answered_as_api_gateway_and_the_pipeline_would(serve: Serve, aws: World) -> None:
    # No pipeline serves …/voice, so no such resource is deployed: API Gateway answers it itself.
    unknown = serve.post("/prod/voice", {"From": USER, "To": COMPANY_WA, "MessageSid": SID_1})
    assert (unknown.status, json.loads(unknown.body)) == (403, {"message": "Missing Authentication Token"})
    unsigned_email = serve.post("/prod/email", {"From": USER, "To": COMPANY_WA, "MessageSid": SID_1})
    assert (unsigned_email.status, json.loads(unsigned_email.body)["error_code"]) == (403, "INVALID_SIGNATURE")
    outside = serve.post("/whatsapp", whatsapp_params())
    assert (outside.status, json.loads(outside.body)) == (403, {"message": "Missing Authentication Token"})
    assert untouched(aws)


def test_every_log_line_names_the_request_and_none_carries_the_token(serve: Serve, aws: World) -> None:
    token = "tok_integration_5e4d3c2b1a0f9e8d7c6b"
    # Its own secret: the warm container still caches the other tests' token under the default name.
    secret = "ai-multi-comms/whatsapp-credentials/acme/proj-logs/twilio-test"
    aws.add_conversation(channel_config={"whatsapp_credentials_id": secret})
    aws.create_secret(secret, json.dumps({"twilio_account_sid": "AC0", "twilio_auth_token": token}))
    lines_before = len(serve.output()[0])
    assert serve.post("/prod/whatsapp", whatsapp_params(sid="SM" + "e" * 32), token=token).body == EMPTY_TWIML
    lines, errors = serve.output()
    records = [json.loads(line) for line in lines[lines_before:]]
    (event,) = [r for r in records if r.get("message") == "event"]
    (metrics,) = [r for r in records if "_aws" in r]
    assert metrics["Outcome"] == event["outcome"] == "QUEUED"
    assert event["function_request_id"] == metrics["function_request_id"] and event["function_request_id"]
    assert event["conversation_id"] == metrics["conversation_id"] and event["conversation_id"]
    assert len(event["steps"]) >= 9 and event["steps"]["send"] == "ok"
    assert token not in "\n".join(lines) + errors
    assert USER not in "\n".join(json.dumps(r) for r in records)


def test_a_transient_fault_is_a_5xx_so_that_twilio_retries(tmp_path: Path) -> None:
    """AWS unreachable (nothing listens at the endpoint): the handler raises and API Gateway answers 502."""
    from tests.integration.conftest import unused_port

    with unused_port() as port:
        dead = f"http://127.0.0.1:{port}"
        # And any other table variable the pipelines require (a new step's), so that only AWS is unreachable.
        env = base_env(
            **deployed_env(
                {
                    "CONVERSATIONS_TABLE_NAME": "conversations",
                    "STAGE_TABLE_NAME": "conversations-stage",
                    "LOCK_TABLE_NAME": "conversations-trigger-lock",
                    "REPLAY_TABLE_NAME": "conversations-replay",
                    "WHATSAPP_QUEUE_URL": f"{dead}/123456789012/whatsapp",
                    "SMS_QUEUE_URL": f"{dead}/123456789012/sms",
                    "HANDOFF_QUEUE_URL": f"{dead}/123456789012/handoff",
                }
            )
        )
        server = start_serve(tmp_path, ["--endpoint-url", dead, "--quiet"], env)
        try:
            answer = server.post("/prod/whatsapp", whatsapp_params())
            assert (answer.status, json.loads(answer.body)) == (502, {"message": "Internal server error"})
            assert "DB_TRANSIENT_ERROR" in server.output()[1]
        finally:
            stop(server.process)


def test_serve_can_start_moto_itself_and_seed_it_from_a_world_file(tmp_path: Path) -> None:
    item = conversation()
    world = tmp_path / "world.yaml"
    world.write_text(
        yaml.safe_dump(
            {
                "conversations": [item],
                "secrets": {WA_SECRET: {"twilio_account_sid": "AC0", "twilio_auth_token": TOKEN}},
            }
        )
    )
    server = start_serve(tmp_path, ["--moto", "--world", str(world)], base_env(BATCH_WINDOW_SECONDS="0"))
    try:
        endpoint = re.search(r"moto server at (http://\S+)", server.output()[1])
        assert endpoint
        answer = server.post("/prod/whatsapp", whatsapp_params())
        assert (answer.status, answer.body) == (200, EMPTY_TWIML)
        moto = Moto(endpoint.group(1), server.process)
        queue = moto.client("sqs").get_queue_url(QueueName="whatsapp")["QueueUrl"]
        (message,) = moto.client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=0)["Messages"]
        assert json.loads(message["Body"]) == {"conversation_id": item["conversation_id"], "primary_channel": USER}
    finally:
        stop(server.process)


def test_an_email_posted_by_sendgrid_is_staged_and_triggered(serve: Serve, aws: World) -> None:
    item = add_email_world(aws)
    body, content_type = inbound_parse_body(Email())
    request = signed(KEY, body, content_type)
    post = urllib.request.Request(serve.url("/prod/email"), data=body, headers=request.headers, method="POST")
    answer = serve.send(post)
    assert (answer.status, json.loads(answer.body)) == (200, {"status": "ok", "outcome": "QUEUED"})
    [row] = aws.stage_rows()
    assert (row["conversation_id"], row["channel_type"]) == (item["conversation_id"], "email")
    assert received(aws, "email") == [{"conversation_id": item["conversation_id"], "primary_channel": USER_EMAIL}]
