"""Missing resources for real: deleted in moto, each answers as the injected ``not_found`` fault of the matrix.

This keeps the fault matrix honest: its injected error answers classify exactly as moto's own do, and the
trigger lock is released either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.faults import Fault, FaultInjector, new_container
from tests.support.logscan import forbid
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import WA_SECRET, World
from tools.localaws import to_dynamo

EXPECTED = {
    "query": "DB_QUERY_ERROR",
    "secret": "SECRET_FETCH_FAILED",
    "stage_put": "STAGE_WRITE_ERROR",
    "lock_put": "TRIGGER_LOCK_WRITE_ERROR",
    "send": "QUEUE_ERROR",
}
REMOVALS: dict[str, Callable[[World], None]] = {
    "query": lambda world: world.delete_table(world.resources.conversations_table),
    "secret": lambda world: world.secretsmanager.delete_secret(SecretId=WA_SECRET, ForceDeleteWithoutRecovery=True),
    "stage_put": lambda world: world.delete_table(world.resources.stage_table),
    "lock_put": lambda world: world.delete_table(world.resources.lock_table),
    "send": lambda world: world.delete_queue("whatsapp"),
}


def deliver(world: World, user: str, call: str, break_it: Callable[[FaultInjector], None]) -> tuple[str, Any]:
    """The outcome for a message of a conversation of its own, and its lock row (None when free)."""
    forbid(user, user.lstrip("+"))
    item = world.add_conversation(
        conversation_id=f"ci-missing#{user}", primary_channel=user, gsi_recipient_tel=user, recipient_tel=user
    )
    application, injector = new_container(world.resources)
    break_it(injector)
    params = whatsapp_params(From=f"whatsapp:{user}", WaId=user.lstrip("+"))
    handled: Any = application.process(rest_event("whatsapp", params), None)
    assert handled.raised is None and handled.response["statusCode"] == 200
    lock = None
    if call != "lock_put":
        key = to_dynamo({"conversation_id": item["conversation_id"]})
        lock = world.dynamodb.get_item(TableName=world.resources.lock_table, Key=key).get("Item")
    return handled.result.outcome, lock


@pytest.mark.parametrize("call", sorted(EXPECTED))
def test_a_deleted_resource_answers_as_the_injected_fault(world: World, call: str) -> None:
    world.add_default_secrets()
    injected = deliver(world, "+15550001001", call, lambda injector: injector.inject(call, Fault("not_found")))
    removed = deliver(world, "+15550001002", call, lambda _: REMOVALS[call](world))
    assert injected == removed == (EXPECTED[call], None)
