"""Running a container later than now, and what the downstream consumer does, for replay tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.clock import SteppedClock
from tools.localaws import to_dynamo


class LaterClock(SteppedClock):
    """Real time, ``seconds`` ahead: the container runs as it would that much later.

    Its deadline clock stands still (``SteppedClock``), as the fixtures' containers' does: only the wall clock moves.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.seconds)


class FixedClock(SteppedClock):
    """A wall clock frozen at ``at``, moved on by hand (``advance``); the deadline clock stands still too."""

    def __init__(self, at: datetime) -> None:
        super().__init__(at if at.tzinfo else at.replace(tzinfo=UTC))


def later(seconds: float) -> None:
    """The current container's clock runs ``seconds`` ahead from now on."""
    import handler

    handler._application.replace_services(clock=LaterClock(seconds))


def consume(world: Any, conversation_id: str) -> None:
    """What the downstream processor does with a batch: delete its stage rows and the lock."""
    for row in world.stage_rows():
        key = {"conversation_id": row["conversation_id"], "message_sid": row["message_sid"]}
        world.dynamodb.delete_item(TableName=world.resources.stage_table, Key=to_dynamo(key))
    world.dynamodb.delete_item(
        TableName=world.resources.lock_table, Key=to_dynamo({"conversation_id": conversation_id})
    )
