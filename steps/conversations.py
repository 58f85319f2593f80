"""``conversations.lookup`` (GSI query for the credential reference) and ``conversations.get`` (the item)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from engine.aws import to_json_safe
from engine.context import Context, StepResult
from engine.errors import StepFailure, TransientFault
from engine.expressions import Expression
from engine.ports import AwsCallError
from engine.registry import BuildInfo, ParamError, register

__all__ = ["ConversationGet", "ConversationLookup", "pick_conversation", "rule_attributes", "whole_conversation"]

T = TypeVar("T")


def db_call(function: Callable[[], T]) -> T:
    """Run a DynamoDB read; AWS errors become DB_TRANSIENT_ERROR or DB_QUERY_ERROR."""
    try:
        return function()
    except AwsCallError as exc:
        if exc.transient:
            raise TransientFault("DB_TRANSIENT_ERROR", f"conversation read failed: {exc.code}") from None
        raise StepFailure("DB_QUERY_ERROR", f"conversation read failed: {exc.code}") from None


def _is_complete(item: Mapping[str, Any]) -> bool:
    value = item.get("task_complete")
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool) and value == 1


def pick_conversation(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest ``created_at`` among open conversations, else the newest overall (ties: conversation_id)."""
    open_items = [item for item in items if not _is_complete(item)]
    pool = open_items or items
    return max(pool, key=lambda item: (str(item.get("created_at") or ""), str(item.get("conversation_id") or "")))


_INDEX = {
    "type": "object",
    "additionalProperties": False,
    "required": ["index", "company_key", "user_key", "credentials_attribute"],
    "properties": {
        "index": {"type": "string", "minLength": 1},
        "company_key": {"type": "string", "minLength": 1},
        "user_key": {"type": "string", "minLength": 1},
        "credentials_attribute": {"type": "string", "minLength": 1},
    },
}


_KEY = ("primary_channel", "conversation_id")
_WHOLE = "conversation_whole"
# An expression using these may read the document in ways its field paths do not show.
_OPAQUE = ("@", "*", "$")


def rule_attributes(rulesets: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The key and the top-level conversation attributes the rule sets' conditions read (None: the whole item)."""
    expressions: list[Expression] = []
    for ruleset in rulesets.values():
        decisions = [rule.then for rule in ruleset.rules] + ([ruleset.default] if ruleset.default else [])
        expressions += [rule.when for rule in ruleset.rules]
        expressions += [decision.target_from for decision in decisions if decision.target_from is not None]
    names = dict.fromkeys(_KEY)
    for expression in expressions:
        if any(mark in expression.source for mark in _OPAQUE):
            return None
        for path in expression.paths:
            if path[0] == "conversation":
                if len(path) == 1:
                    return None
                names.setdefault(str(path[1]))
    return tuple(names)


def _table(params: Mapping[str, Any], info: BuildInfo, default: str) -> str:
    key = str(params.get("table", default))
    if key not in info.tables:
        known = ", ".join(sorted(info.tables)) or "none"
        raise ParamError(("table",), f"table {key!r} is not declared under tables: (declared: {known})")
    return info.tables[key]


@register(
    "conversations.lookup",
    provides="credential",
    requires=("request",),
    iam=("dynamodb:Query",),
    deadline_code="DB_TRANSIENT_ERROR",
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["indexes"],
        "properties": {
            "table": {"type": "string"},
            "indexes": {"type": "object", "additionalProperties": _INDEX, "minProperties": 1},
            "secret_name_pattern": {
                "type": "string",
                "description": "Regular expression a credential (secret) name must match in full.",
            },
        },
    },
)
class ConversationLookup:
    """Find the conversation for (company number, user number) through the channel's GSI."""

    _ATTRIBUTES = ("primary_channel", "conversation_id", "channel_config", "created_at", "task_complete")

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = _table(params, info, "conversations")
        self._indexes: Mapping[str, Mapping[str, str]] = params["indexes"]
        pattern = params.get("secret_name_pattern")
        try:
            self._pattern = re.compile(pattern) if pattern else None
        except re.error as exc:
            raise ParamError(("secret_name_pattern",), f"invalid regular expression: {exc}") from None

    def run(self, ctx: Context) -> StepResult:
        request = ctx.doc["request"]
        index = self._indexes.get(request["channel"])
        if index is None:
            raise StepFailure(
                "MISSING_CREDENTIAL_CONFIG", f"no lookup index configured for channel {request['channel']}"
            )
        key = {index["company_key"]: request["company_number"], index["user_key"]: request["user_number"]}
        items = db_call(lambda: ctx.services.tables.query_index(self._table, index["index"], key, self._ATTRIBUTES))
        if not items:
            raise StepFailure("CONVERSATION_NOT_FOUND", "no conversation for this number pair")
        chosen = pick_conversation(items)
        config = chosen.get("channel_config")
        secret_name = config.get(index["credentials_attribute"]) if isinstance(config, Mapping) else None
        if not isinstance(secret_name, str) or not secret_name.strip():
            raise StepFailure(
                "MISSING_CREDENTIAL_CONFIG", f"conversation has no channel_config.{index['credentials_attribute']}"
            )
        if self._pattern is not None and not self._pattern.fullmatch(secret_name):
            raise StepFailure("MISSING_CREDENTIAL_CONFIG", "credential name is outside the allowed secret pattern")
        output = {
            "conversation_id": chosen["conversation_id"],
            "primary_channel": chosen["primary_channel"],
            "secret_name": secret_name.strip(),
            "candidates": len(items),
        }
        return StepResult(output=output, decision=f"{len(items)} candidate(s)")


@register(
    "conversations.get",
    provides="conversation",
    requires=("credential",),
    iam=("dynamodb:GetItem",),
    deadline_code="DB_TRANSIENT_ERROR",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "table": {"type": "string"},
            "consistent_read": {"type": "boolean"},
            "read": {
                "enum": ["whole", "rules"],
                "description": "whole: the whole item; rules: only the attributes the rule sets' conditions read "
                "(plus also_read), the rest when a later step asks for the whole item (a handoff).",
            },
            "also_read": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "With read: rules, attributes read as well (say, for a step's `when:` condition).",
            },
        },
    },
)
class ConversationGet:
    """Read the conversation item (consistent read); DynamoDB numbers become JSON numbers.

    With ``read: rules`` only the attributes the rule sets read are fetched, which keeps long
    ``messages`` histories off the hot path; ``whole_conversation`` reads the rest when needed.
    """

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = _table(params, info, "conversations")
        self._consistent = bool(params.get("consistent_read", True))
        found = rule_attributes(info.rulesets) if params.get("read", "whole") == "rules" else None
        self._attributes = None if found is None else tuple(dict.fromkeys([*found, *params.get("also_read", [])]))

    def _read(self, ctx: Context, key: Mapping[str, str], attributes: tuple[str, ...] | None) -> dict[str, Any]:
        tables = ctx.services.tables
        item = db_call(lambda: tables.get_item(self._table, key, consistent=self._consistent, attributes=attributes))
        if item is None:
            raise StepFailure("CONVERSATION_NOT_FOUND", "the conversation item is gone")
        # Rules see plain JSON values, as their inline tests give them: JMESPath functions reject Decimal.
        plain: dict[str, Any] = to_json_safe(item)
        return plain

    def run(self, ctx: Context) -> StepResult:
        credential = ctx.doc["credential"]
        key = {"primary_channel": credential["primary_channel"], "conversation_id": credential["conversation_id"]}
        item = self._read(ctx, key, self._attributes)
        if self._attributes is not None:
            ctx.private[_WHOLE] = lambda: self._read(ctx, key, None)
        return StepResult(output=item, decision="found")


def whole_conversation(ctx: Context) -> Mapping[str, Any]:
    """The whole conversation item, read now if ``conversations.get`` fetched only what the rules need."""
    read = ctx.private.pop(_WHOLE, None)
    if read is not None:
        ctx.doc["conversation"] = read()
    conversation: Mapping[str, Any] = ctx.doc.get("conversation") or {}
    return conversation
