"""``conversations.get`` with ``read: rules``: a routed message reads only what the rules read; a handoff reads all."""

from __future__ import annotations

from steps.conversations import rule_attributes
from tests.support.webhooks import rest_event, whatsapp_params

HISTORY = [{"role": "user", "content": "x" * 200, "timestamp": 1732100000 + n} for n in range(300)]
RULE_ATTRIBUTES = {
    "primary_channel",
    "conversation_id",
    "project_status",
    "allowed_channels",
    "conversation_status",
    "hand_off_to_human",
    "auto_queue_reply_message",
    "auto_queue_reply_message_from_number",
    "recipient_tel",
}


def _conversation_read(world, params: dict) -> dict:
    """The conversation table's part of a BatchGetItem request."""
    return params["RequestItems"][world.resources.conversations_table]


def _projection(params: dict) -> set[str]:
    names = params.get("ExpressionAttributeNames", {})
    expression = params.get("ProjectionExpression")
    return {names[part.strip()] for part in expression.split(",")} if expression else set()


def test_a_routed_message_reads_only_the_attributes_the_rules_read(world, lambda_handler, aws):
    world.add_conversation(messages=HISTORY)
    world.add_default_secrets()
    response = lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    assert response["statusCode"] == 200
    (batch,) = aws.of("dynamodb.BatchGetItem")
    get = _conversation_read(world, batch)
    assert aws.of("dynamodb.GetItem") == []
    assert _projection(get) == RULE_ATTRIBUTES
    assert get["ConsistentRead"] is True
    assert len(world.sent("whatsapp")) == 1


def test_a_handoff_carries_the_whole_conversation(world, lambda_handler, aws):
    item = world.add_conversation(messages=HISTORY, hand_off_to_human=True)
    world.add_default_secrets()
    lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    (batch,) = aws.of("dynamodb.BatchGetItem")
    (second,) = aws.of("dynamodb.GetItem")
    assert _projection(_conversation_read(world, batch)) == RULE_ATTRIBUTES
    assert "ProjectionExpression" not in second
    ((body, delay),) = world.sent("handoff")
    assert delay == 0
    assert body["conversation"]["messages"] == HISTORY
    assert body["conversation"]["ai_config"] == item["ai_config"]


def test_an_expression_that_may_read_the_whole_document_reads_the_whole_item():
    class Rule:
        def __init__(self, source: str) -> None:
            from engine.expressions import compile_expression
            from engine.rules import Decision

            self.when = compile_expression(source)
            self.then = Decision(target="whatsapp")

    class RuleSet:
        def __init__(self, *sources: str) -> None:
            self.rules = [Rule(source) for source in sources]
            self.default = None

    assert rule_attributes({"a": RuleSet("conversation.x == `1`", "request.channel")}) == (
        "primary_channel",
        "conversation_id",
        "x",
    )
    assert rule_attributes({"a": RuleSet("length(conversation) > `3`")}) is None
    assert rule_attributes({"a": RuleSet("*.project_status | [0] == 'active'")}) is None
    assert rule_attributes({"a": RuleSet("values(@)")}) is None
