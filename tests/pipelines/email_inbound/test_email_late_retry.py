"""SendGrid retries a 5xx for up to 72 hours, longer than a stage row lives (``STAGE_TTL_SECONDS``, 24 hours).

A first attempt that staged the email and then failed leaves its stage row behind (the row is the message, not a
side effect to undo). A retry that comes after the row's ``expires_at`` must stage the email again: DynamoDB's TTL
deletes an expired row at any moment (and readers skip expired rows), so a trigger sent for the old row finds
nothing to read.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from tests.support.clock import install_clock
from tests.support.email import add_email_world, email_event
from tests.support.timeline import later

DAY = 86400


def test_a_retry_after_the_stage_row_expired_stages_the_email_again(world, lambda_handler, aws, boto_session):
    add_email_world(world)
    event = email_event()
    aws.fail("sqs.SendMessage", "InternalError", 500)
    first = lambda_handler(event, None)
    assert first["statusCode"] == 503 and json.loads(first["body"])["error_code"] == "QUEUE_TRANSIENT_ERROR"
    [row] = world.stage_rows()
    assert row["expires_at"] <= time.time() + DAY + 5

    import handler

    handler.reload(boto_session)  # SendGrid's retry, 25 hours later, on a new container: the send works again
    later(DAY + 3600)
    retried = lambda_handler(event, None)
    assert retried["statusCode"] == 200 and json.loads(retried["body"])["outcome"] == "QUEUED"
    [row] = world.stage_rows()
    assert row["expires_at"] > time.time() + DAY + 3600, "the retry left the email in an expired stage row"
    assert len(world.sent("email")) == 1


def test_a_retry_shortly_before_the_stage_row_expires_stages_the_email_to_outlive_its_trigger(
    world, lambda_handler, aws, boto_session
):
    # Before: the retry found the row still live (it expired 5 s later), kept it and sent a trigger due in
    # W = 10 s; by then TTL may have deleted the row and readers skip it: the email answered QUEUED was lost.
    add_email_world(world)
    event = email_event()
    aws.fail("sqs.SendMessage", "InternalError", 500)
    assert lambda_handler(event, None)["statusCode"] == 503
    [row] = world.stage_rows()

    import handler

    handler.reload(boto_session)
    # SendGrid's retry, 5 s before the row expires: on a fixed wall clock, so that it is still 5 s when the stage
    # step looks at the row, however long the run takes to get there.
    clock = install_clock(handler._application, datetime.fromtimestamp(int(row["expires_at"]) - 5, UTC))
    retried = lambda_handler(event, None)
    assert json.loads(retried["body"])["outcome"] == "QUEUED"
    [(_, delay)] = world.sent("email")
    [row] = world.stage_rows()
    assert row["expires_at"] > clock.epoch() + delay, "the email's row expires before its trigger is read"
