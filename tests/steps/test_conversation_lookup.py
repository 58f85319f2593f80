"""``conversations.lookup``: which conversation is picked, and every match read (contract §2).

``created_at`` is ISO-8601 written by other services with any precision and offset: it is compared as an instant.
The lookup reads every page, however many conversations the pair has, bounded only by the time budget.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.context import Context, Services
from engine.errors import StepFailure, TransientFault
from engine.registry import BuildInfo
from engine.secrets import SecretCache
from runtime.aws import DynamoTables
from steps.conversations import ConversationLookup, created_instant, pick_conversation
from tests.support.clock import SteppedClock, slow_machine
from tests.support.webhooks import COMPANY_WA, USER
from tests.support.world import ABSENT, conversation
from tools.dryrun.memory import MemoryQueues, MemorySecrets
from tools.localaws import put_items

# id, [(created_at, task_complete)], index of the conversation that must be picked
PICKS = [
    ("fraction_is_later_than_the_whole_second", [("2026-11-20T10:00:00.500Z", 0), ("2026-11-20T10:00:00Z", 0)], 0),
    ("offsets_compare_as_instants", [("2026-11-20T12:00:00+02:00", 0), ("2026-11-20T11:00:00Z", 0)], 1),
    ("a_naive_time_is_utc", [("2026-11-20T10:30:00", 0), ("2026-11-20T11:00:00+01:00", 0)], 0),
    ("precision_does_not_matter", [("2026-11-20T10:00:01Z", 0), ("2026-11-20T10:00:00.999999+00:00", 0)], 0),
    ("unparseable_sorts_oldest", [("2026-11-20T10:00:00Z", 0), ("not a date", 0)], 0),
    ("missing_or_non_string_sorts_oldest", [(None, 0), (20261120, 0), ("2001-01-01T00:00:00Z", 0)], 2),
    ("unparseables_tie_to_the_greater_id", [("soon", 0), ("later", 0)], 1),
    ("equal_instants_tie_to_the_greater_id", [("2026-11-20T12:00:00+02:00", 0), ("2026-11-20T10:00:00Z", 0)], 1),
    ("a_newer_complete_one_is_skipped", [("2026-11-20T10:00:00Z", 0), ("2026-11-20T12:00:00+01:00", 1)], 0),
    ("all_complete_newest_instant_overall", [("2026-11-20T12:00:00+02:00", 1), ("2026-11-20T11:00:00Z", 1)], 1),
]


def _items(rows: list[tuple[Any, int]]) -> list[dict[str, Any]]:
    """Conversations ``ci-0``, ``ci-1``, …; a created_at of None leaves the attribute out."""
    items = [{"conversation_id": f"ci-{n}", "task_complete": complete} for n, (_, complete) in enumerate(rows)]
    for item, (created, _) in zip(items, rows, strict=True):
        if created is not None:
            item["created_at"] = created
    return items


@pytest.mark.parametrize(("case", "rows", "expected"), PICKS, ids=[row[0] for row in PICKS])
def test_the_newest_instant_is_picked(case: str, rows: list[tuple[Any, int]], expected: int) -> None:
    items = _items(rows)
    assert pick_conversation(items)["conversation_id"] == f"ci-{expected}"
    # Picked page by page (one item a page, in either order), the answer is the same.
    for order in (items, items[::-1]):
        best = None
        for item in order:
            best = pick_conversation([item], best)
        assert best is not None and best["conversation_id"] == f"ci-{expected}"


def test_created_at_becomes_an_exact_instant() -> None:
    assert created_instant("2026-11-20T12:00:00+02:00") == created_instant("2026-11-20T10:00:00Z")
    assert created_instant("2026-11-20T10:00:00") == created_instant("2026-11-20T10:00:00.000000Z")
    assert created_instant("2026-11-20T10:00:00.000001Z") == created_instant("2026-11-20T10:00:00Z") + 1
    assert created_instant("0001-01-01T00:30:00+01:00") == created_instant("0001-01-01T00:00:00Z") - 1_800_000_000
    # RFC 3339 allows a lower-case t and z.
    assert created_instant("2026-11-20t10:00:00.5z") == created_instant("2026-11-20T10:00:00.500Z")
    assert [created_instant(value) for value in ("", "2026-13-01T00:00:00Z", 1.5, None)] == [None] * 4


INDEX = "company-whatsapp-number-recipient-tel-index"
PARAMS = {
    "table": "conversations",
    "indexes": {
        "whatsapp": {
            "index": INDEX,
            "company_key": "gsi_company_whatsapp_number",
            "user_key": "gsi_recipient_tel",
            "credentials_attribute": "whatsapp_credentials_id",
        }
    },
}


def _lookup(world: Any, **params: Any) -> ConversationLookup:
    info = BuildInfo(rulesets={}, tables={"conversations": world.resources.conversations_table}, targets={})
    return ConversationLookup({**PARAMS, **params}, info)


def _context(world: Any, boto_session: Any, page_size: int, seconds: float = 4.0) -> tuple[Context, list[dict]]:
    """A context over moto whose queries ask for ``page_size`` items a page; the list records every query.

    Its deadline clock stands still (``SteppedClock``): only ``seconds`` decides whether the lookup has time.
    """
    client = boto_session.client("dynamodb")
    queries: list[dict[str, Any]] = []

    def limit(params: dict[str, Any], **_: Any) -> None:
        params["Limit"] = page_size
        queries.append(dict(params))

    client.meta.events.register("before-parameter-build.dynamodb.Query", limit)
    clock = SteppedClock()
    services = Services(DynamoTables(client), MemoryQueues(()), SecretCache(MemorySecrets({}), clock), clock)
    request = {"channel": "whatsapp", "company_number": COMPANY_WA, "user_number": USER}
    return Context(None, services, clock.monotonic() + seconds, doc={"request": request}), queries


def _add_conversations(world: Any, count: int, open_at: int) -> str:
    """``count`` finished conversations of the pair, except the one at ``open_at`` (older than the rest)."""
    items = [
        conversation(
            conversation_id=f"ci-{n:04d}#pi-0#uuid-{n}#{USER[1:]}",
            created_at="2026-01-01T00:00:00Z" if n == open_at else f"2026-11-20T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
            task_complete=0 if n == open_at else 1,
            messages=ABSENT,
        )
        for n in range(count)
    ]
    put_items(world.dynamodb, world.resources.conversations_table, items)
    return str(items[open_at]["conversation_id"])


def test_every_page_is_read_whatever_the_number_of_conversations(world, boto_session) -> None:
    open_one = _add_conversations(world, 250, open_at=237)
    ctx, queries = _context(world, boto_session, page_size=40)

    result = _lookup(world).run(ctx)

    assert result.output["conversation_id"] == open_one
    assert result.output["candidates"] == 250
    assert len(queries) == 7
    assert queries[0]["ProjectionExpression"].count(",") == 4  # five attributes, whatever the items carry


def test_every_page_is_read_however_slow_the_machine(world, boto_session, monkeypatch) -> None:
    # Reading every page is not about time: a loaded machine must not spend the 4 s the context gives the lookup.
    slow_machine(monkeypatch, 1.0)  # each read of the real deadline clock a second later: spent by the sixth
    open_one = _add_conversations(world, 250, open_at=237)
    ctx, queries = _context(world, boto_session, page_size=40)

    result = _lookup(world).run(ctx)

    assert (result.output["conversation_id"], result.output["candidates"], len(queries)) == (open_one, 250, 7)


def test_a_lookup_out_of_time_is_transient(world, boto_session) -> None:
    _add_conversations(world, 110, open_at=109)
    ctx, queries = _context(world, boto_session, page_size=40, seconds=0.0)

    with pytest.raises(TransientFault) as raised:
        _lookup(world).run(ctx)

    assert raised.value.code == "DB_TRANSIENT_ERROR"
    assert len(queries) == 1


def test_an_ops_cap_on_pages_refuses_rather_than_picks_from_a_part(world, boto_session) -> None:
    open_one = _add_conversations(world, 110, open_at=109)
    ctx, queries = _context(world, boto_session, page_size=40)

    with pytest.raises(StepFailure) as raised:
        _lookup(world, max_pages=2).run(ctx)

    assert (raised.value.code, raised.value.cause) == ("DB_QUERY_ERROR", "LookupLimit")
    assert len(queries) == 2
    ctx, _ = _context(world, boto_session, page_size=40)
    assert _lookup(world, max_pages=3).run(ctx).output["conversation_id"] == open_one


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        # Stripped, the name is the pattern's prefix alone: outside it, whatever the unstripped text matched.
        ("ai-multi-comms/whatsapp-credentials/ ", None),
        ("ai-multi-comms/whatsapp-credentials/\t", None),
        # Stripped, the name is inside the pattern: it is the name the secret is read by.
        (" ai-multi-comms/whatsapp-credentials/tenant-a\n", "ai-multi-comms/whatsapp-credentials/tenant-a"),
    ],
)
def test_the_secret_pattern_confines_the_name_that_is_used(
    world, boto_session, stored: str, expected: str | None
) -> None:
    put_items(
        world.dynamodb,
        world.resources.conversations_table,
        [conversation(channel_config={"whatsapp_credentials_id": stored}, messages=ABSENT)],
    )
    ctx, _ = _context(world, boto_session, page_size=40)
    tables = {"conversations": world.resources.conversations_table}
    secrets = {"credentials": re.compile("ai-multi-comms/whatsapp-credentials/.+")}
    lookup = ConversationLookup(PARAMS, BuildInfo(rulesets={}, tables=tables, targets={}, secrets=secrets))

    if expected is None:
        with pytest.raises(StepFailure) as raised:
            lookup.run(ctx)
        assert raised.value.code == "MISSING_CREDENTIAL_CONFIG"
    else:
        assert lookup.run(ctx).output["secret_name"] == expected


@pytest.mark.parametrize("text", ["1", "1.0", " 1 ", "1e0"])
def test_task_complete_written_as_text_is_complete(text: str) -> None:
    items = [
        {"conversation_id": "ci-0", "created_at": "2026-11-20T10:00:00Z", "task_complete": 0},
        {"conversation_id": "ci-1", "created_at": "2026-11-21T10:00:00Z", "task_complete": text},
    ]
    assert pick_conversation(items)["conversation_id"] == "ci-0"


@pytest.mark.parametrize("text", ["0", "", "yes", "sNaN", "NaN", "Infinity", "2"])
def test_task_complete_text_other_than_one_is_open(text: str) -> None:
    items = [
        {"conversation_id": "ci-0", "created_at": "2026-11-20T10:00:00Z", "task_complete": 0},
        {"conversation_id": "ci-1", "created_at": "2026-11-21T10:00:00Z", "task_complete": text},
    ]
    assert pick_conversation(items)["conversation_id"] == "ci-1"
