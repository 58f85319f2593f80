"""The credential lookup and the conversation read: which index, which conversation, every page.

Contract §2 (several conversations per number pair, paginated lookup), §4.2 and §4.5.
"""

from __future__ import annotations

import pytest

from tests.support.clock import install_clock
from tests.support.expect import twiml_response
from tests.support.webhooks import COMPANY_SMS, COMPANY_WA, USER, rest_event, sms_params, whatsapp_params
from tests.support.world import ABSENT, conversation
from tools.localaws import put_items, to_dynamo

# id, [(created_at, task_complete)], index of the conversation that must be picked
PICKS = [
    ("newest_open_wins", [("2026-11-01T00:00:00Z", 0), ("2026-11-03T00:00:00Z", 0), ("2026-11-02T00:00:00Z", 0)], 1),
    ("newer_complete_is_skipped", [("2026-11-01T00:00:00Z", 0), ("2026-11-05T00:00:00Z", 1)], 0),
    (
        "all_complete_newest_overall",
        [("2026-11-01T00:00:00Z", 1), ("2026-11-05T00:00:00Z", 1), ("2026-11-03T00:00:00Z", 1)],
        1,
    ),
    ("missing_task_complete_is_open", [("2026-11-04T00:00:00Z", None), ("2026-11-05T00:00:00Z", 1)], 0),
    ("milliseconds_compare", [("2026-11-04T10:00:00.120Z", 0), ("2026-11-04T10:00:00.900Z", 0)], 1),
    ("single_complete", [("2026-11-04T00:00:00Z", 1)], 0),
    # created_at is compared as an instant, not as text (other services write it with any precision and offset).
    ("fraction_is_later_than_the_whole_second", [("2026-11-20T10:00:00.500Z", 0), ("2026-11-20T10:00:00Z", 0)], 0),
    ("offsets_compare_as_instants", [("2026-11-20T12:00:00+02:00", 0), ("2026-11-20T11:00:00Z", 0)], 1),
    ("unparseable_sorts_oldest", [("2026-11-20T10:00:00Z", 0), ("not a date", 0)], 0),
]


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
@pytest.mark.parametrize(("case", "rows", "expected"), PICKS, ids=[row[0] for row in PICKS])
def test_the_right_conversation_is_picked(world, lambda_handler, aws, outcomes, channel, case, rows, expected):
    items = []
    for n, (created_at, complete) in enumerate(rows):
        extra = {"task_complete": complete} if complete is not None else {}
        item = world.add_conversation(
            conversation_id=f"ci-{n}#pi-0#uuid-{n}#{USER[1:]}", created_at=created_at, **extra
        )
        if complete is None:
            world.dynamodb.update_item(
                TableName=world.resources.conversations_table,
                Key=to_dynamo({"primary_channel": USER, "conversation_id": item["conversation_id"]}),
                UpdateExpression="REMOVE task_complete",
            )
        items.append(item)
    # Another user's conversation on the same company number is never a candidate.
    other = "+447700900555"
    world.add_conversation(
        conversation_id=f"ci-x#pi-0#uuid-x#{other[1:]}",
        primary_channel=other,
        gsi_recipient_tel=other,
        created_at="2027-01-01T00:00:00Z",
    )
    world.add_default_secrets()
    params = whatsapp_params() if channel == "whatsapp" else sms_params()

    assert lambda_handler(rest_event(channel, params), None) == twiml_response()

    chosen = items[expected]["conversation_id"]
    assert outcomes() == [("QUEUED", None)]
    assert world.sent(channel) == [({"conversation_id": chosen, "primary_channel": USER}, 10)]
    [batch] = aws.of("dynamodb.BatchGetItem")
    get = batch["RequestItems"][world.resources.conversations_table]
    assert get["Keys"] == [{"primary_channel": {"S": USER}, "conversation_id": {"S": chosen}}]
    assert get["ConsistentRead"] is True
    assert [row["conversation_id"] for row in world.stage_rows()] == [chosen]


@pytest.mark.parametrize(
    ("channel", "index", "company_key", "company"),
    [
        ("whatsapp", "company-whatsapp-number-recipient-tel-index", "gsi_company_whatsapp_number", COMPANY_WA),
        ("sms", "company-sms-number-recipient-tel-index", "gsi_company_sms_number", COMPANY_SMS),
    ],
)
def test_lookup_queries_the_channel_index_with_both_numbers(
    world, lambda_handler, aws, channel, index, company_key, company
):
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event(channel, whatsapp_params() if channel == "whatsapp" else sms_params()), None)
    [query] = aws.of("dynamodb.Query")
    assert query["TableName"] == world.resources.conversations_table
    assert query["IndexName"] == index
    names = {value: key for key, value in query["ExpressionAttributeNames"].items()}
    condition = query["KeyConditionExpression"]
    for attribute, number in ((company_key, company), ("gsi_recipient_tel", USER)):
        placeholder = condition.split(f"{names[attribute]} = ")[1].split()[0]
        assert query["ExpressionAttributeValues"][placeholder] == {"S": number}


def test_lookup_follows_every_page(world, lambda_handler, aws, outcomes):
    # Large items (about 300 KB each) make DynamoDB (and moto) split the query at 1 MB.
    bulky = "x" * 300_000
    ids = [f"ci-{n}#pi-0#uuid-{n}#{USER[1:]}" for n in range(5)]
    for n, conversation_id in enumerate(ids):
        world.add_conversation(
            conversation_id=conversation_id, created_at=f"2026-11-0{n + 1}T00:00:00Z", task_complete=1, notes=bulky
        )
    pages = list(
        world.dynamodb.get_paginator("query").paginate(
            TableName=world.resources.conversations_table,
            IndexName="company-whatsapp-number-recipient-tel-index",
            KeyConditionExpression="gsi_company_whatsapp_number = :c AND gsi_recipient_tel = :u",
            ExpressionAttributeValues={":c": {"S": COMPANY_WA}, ":u": {"S": USER}},
        )
    )
    assert len([page for page in pages if page["Items"]]) >= 2
    # The only open conversation is on the last page: a lookup reading page one only would miss it.
    last = (
        pages[-1]["Items"][-1]["conversation_id"]["S"]
        if pages[-1]["Items"]
        else pages[-2]["Items"][-1]["conversation_id"]["S"]
    )
    world.dynamodb.update_item(
        TableName=world.resources.conversations_table,
        Key=to_dynamo({"primary_channel": USER, "conversation_id": last}),
        UpdateExpression="SET task_complete = :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
    )
    world.add_default_secrets()
    unhurried()

    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)

    queries = aws.of("dynamodb.Query")
    assert len(queries) == len(pages)
    assert "ExclusiveStartKey" not in queries[0]
    assert all("ExclusiveStartKey" in query for query in queries[1:])
    assert outcomes() == [("QUEUED", None)]
    assert world.sent("whatsapp") == [({"conversation_id": last, "primary_channel": USER}, 10)]


def test_whatsapp_prefix_is_stripped_for_both_numbers(world, lambda_handler, aws):
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    [query] = aws.of("dynamodb.Query")
    assert sorted(value["S"] for value in query["ExpressionAttributeValues"].values()) == sorted([COMPANY_WA, USER])


# Issue 15 (3): the lookup runs before the signature check; it reads every match (contract §2), bounded in time.


class RemainingTime:
    """A Lambda context with ``seconds`` left (read once, at the start: the stepped clock measures the rest)."""

    def __init__(self, seconds: float) -> None:
        self.remaining_ms = int(seconds * 1000)
        self.aws_request_id = "req-lookup"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def add_bulky_conversations(world, count: int = 51) -> None:
    """``count`` conversations of about 330 KB for one number pair: 17 query pages of 1 MB for 51."""
    bulky = "x" * 330_000
    for n in range(count):
        world.add_conversation(conversation_id=f"ci-{n}#pi-0#uuid-{n}#{USER[1:]}", notes=bulky)


def unhurried() -> None:
    """The current container's time budget is spent only by hand (a stepped clock).

    For the tests that read many or large pages to show the lookup reads them all: how long that takes on a loaded
    machine must not decide it (the budget's own tests follow, with the clock moved by hand).
    """
    import handler

    install_clock(handler._application)


def test_a_pair_with_many_pages_is_read_to_the_end(world, lambda_handler, aws, outcomes):
    add_bulky_conversations(world)
    world.add_default_secrets()
    unhurried()

    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()

    assert outcomes() == [("QUEUED", None)]
    assert len(aws.of("dynamodb.Query")) == 17
    assert len(world.stage_rows()) == 1


@pytest.mark.parametrize("page_size", [None, 40], ids=["one_page", "pages_of_40"])
def test_a_user_with_more_than_100_conversations_is_answered(world, lambda_handler, aws, outcomes, page_size):
    # 249 finished conversations and one open (the oldest): the open one is the message's conversation.
    items = [
        conversation(
            conversation_id=f"ci-{n:03d}#pi-0#uuid-{n}#{USER[1:]}",
            created_at=f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}Z",
            task_complete=0 if n == 0 else 1,
            messages=ABSENT,
        )
        for n in range(250)
    ]
    put_items(world.dynamodb, world.resources.conversations_table, items)
    world.add_default_secrets()
    unhurried()
    if page_size:
        aws.page_size("dynamodb.Query", page_size)

    assert lambda_handler(rest_event("whatsapp", whatsapp_params()), None) == twiml_response()

    open_one = items[0]["conversation_id"]
    assert outcomes() == [("QUEUED", None)]
    assert world.sent("whatsapp") == [({"conversation_id": open_one, "primary_channel": USER}, 10)]
    assert [row["conversation_id"] for row in world.stage_rows()] == [open_one]
    assert len(aws.of("dynamodb.Query")) == (1 if page_size is None else 7)


def test_the_lookup_stops_paging_at_the_deadline(world, lambda_handler, aws, outcomes):
    import handler

    add_bulky_conversations(world)
    world.add_default_secrets()
    # The application's clock is a stepped one: each page takes 0.3 s, whatever the machine's load.
    clock = install_clock(handler._application)
    aws.before("dynamodb.Query", lambda params: clock.advance(0.3))

    with pytest.raises(Exception, match=r"^DB_TRANSIENT_ERROR"):
        # 1.2 s left less the 0.5 s answer margin: a 0.7 s budget, spent by the third page (0.9 s).
        lambda_handler(rest_event("whatsapp", whatsapp_params()), RemainingTime(1.2))

    # Stopped at the deadline, between pages: far from the pair's 17 pages.
    assert len(aws.of("dynamodb.Query")) == 3
    assert outcomes() == [("DB_TRANSIENT_ERROR", "DB_TRANSIENT_ERROR")]
    assert world.stage_rows() == []


def test_the_lookup_reads_only_what_the_choice_needs(world, lambda_handler, aws):
    world.add_conversation()
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    [query] = aws.of("dynamodb.Query")
    projected = {query["ExpressionAttributeNames"][name.strip()] for name in query["ProjectionExpression"].split(",")}
    assert projected == {"primary_channel", "conversation_id", "channel_config", "created_at", "task_complete"}
