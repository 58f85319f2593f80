"""What ``--check`` accepts, the email pipeline runs: a generated email routing rule and an email conversation of
any shape are decided alike by the handler on moto and by ``pipeline-dryrun``, never crashing."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.dynamowire import to_wire
from steps.support import json_safe
from tests.pipelines.twilio_inbound.test_rules_fuzz import ITEMS, conditions, jsonable
from tests.support.email import EMAIL_SECRET, KEY, email_conversation, email_event
from tests.support.rulefuzz import check, dryrun_decision, emptied, handler_decision, project
from tools.sendgrid_events import Email

PIPELINE = "pipelines/email_inbound.yaml"
SECRETS = {EMAIL_SECRET: {"sendgrid_webhook_public_key": KEY.public_key}}
EMAIL_CONDITIONS = conditions.map(lambda when: when.replace("request.user_number", "request.spam_score"))
SPAM_SCORES = st.sampled_from([None, "0.012", "5", "12.5", "1e999", "nan", "x"])
SUBJECTS = st.sampled_from(["Order #1042: where is it?", "vip", "", "1e999"])


def email_routing(when: str) -> str:
    """The email routing set: the rule ``fuzz`` (``when``, to handoff), else the email queue."""
    return (
        "ruleset: email_routing\nkind: routing\npipelines: [email_inbound]\nrules:\n"
        f"  - id: fuzz\n    when: {json.dumps(when)}\n    then: {{target: handoff}}\ndefault: {{target: email}}\n"
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(when=EMAIL_CONDITIONS, attributes=ITEMS, spam_score=SPAM_SCORES, subject=SUBJECTS)
def test_an_accepted_email_rule_is_decided_alike_by_the_handler_and_the_dryrun(
    world: Any, boto_session: Any, tmp_path: Any, when: str, attributes: dict[str, Any], spam_score: Any, subject: str
) -> None:
    project(tmp_path, email_routing(when), "60_email_routing.yaml")
    if check(tmp_path, PIPELINE).errors:
        return
    request = email_event(Email(subject=subject, spam_score=spam_score, message_id=f"<{uuid.uuid4()}@example.net>"))
    conversation = email_conversation(**attributes)
    item = {name: to_wire(value) for name, value in conversation.items()}
    # In this process the dry-run's world may be moto's: it starts from empty tables too.
    emptied(world)
    dry = dryrun_decision(tmp_path, jsonable(json_safe(conversation)), request, SECRETS, PIPELINE)
    handled = handler_decision(world, boto_session, tmp_path, item, request, SECRETS)

    assert not handled.raised, handled
    assert handled.outcome in ("QUEUED", "HANDED_OFF", "EMAIL_REJECTED", "INTERNAL_ERROR"), handled
    if handled.outcome == "INTERNAL_ERROR":
        assert handled.decided_by.get("email_routing") == "fuzz", handled
    assert (handled.outcome, handled.decided_by) == (dry.outcome, dry.decided_by)
