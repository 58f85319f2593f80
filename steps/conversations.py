"""``conversations.lookup`` (GSI query for the credential reference) and ``conversations.get`` (the item).

The lookup binds the conversation id for every later log line of the invocation, without the segments
that are phone numbers or e-mail addresses (``loggable_conversation_id``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar

from engine.context import Context, StepResult, bind_log_fields
from engine.errors import ErrorSpec, StepFailure, TransientFault
from engine.expressions import Expression
from engine.ports import ItemRequest, ServiceError
from engine.registry import BuildInfo, IamGrant, Resource, register
from steps.replay import KEY as REPLAY_KEY
from steps.replay import READ_RECORD, REPLAY, replay_of
from steps.support import (
    declare_table_key,
    dynamo_type,
    expression_param,
    json_safe,
    secret_pattern,
    service_failure,
    table_name,
)

__all__ = [
    "ConversationGet",
    "ConversationLookup",
    "created_instant",
    "loggable_conversation_id",
    "pick_conversation",
    "rule_attributes",
    "whole_conversation",
]

T = TypeVar("T")
_ABSENT: Any = object()

NOT_FOUND = ErrorSpec("CONVERSATION_NOT_FOUND", description="no conversation for the sender and recipient")
DB_TRANSIENT = ErrorSpec("DB_TRANSIENT_ERROR", transient=True, description="the conversations table did not answer")
DB_QUERY = ErrorSpec("DB_QUERY_ERROR", description="the conversations table refused the read", loses_message=True)
MISSING_CREDENTIAL = ErrorSpec(
    "MISSING_CREDENTIAL_CONFIG", description="the conversation names no usable credential", loses_message=True
)


def db_call(function: Callable[[], T]) -> T:
    """Run a DynamoDB read; AWS errors become DB_TRANSIENT_ERROR or DB_QUERY_ERROR."""
    try:
        return function()
    except ServiceError as exc:
        raise service_failure(exc, DB_TRANSIENT.code, DB_QUERY.code, "conversation read") from None


# A conversation id ends with the user's number or address (``ci-…#pi-…#<uuid>#447450659796``): logs keep the rest.
# Other services write the number as they hold it: with a scheme (``whatsapp:+…``, ``tel:+…``) or separators
# (``+1 415-555 0123``); a segment of at least six digits and nothing else but those is a number.
_PERSONAL_SEGMENT = re.compile(r"^(?:[A-Za-z]+:)?(?=(?:\D*\d){6})\+?[\d\s().-]+$|@")


@lru_cache(maxsize=1024)
def loggable_conversation_id(conversation_id: str) -> str:
    """The conversation id without the segments that are phone numbers or e-mail addresses, for log lines."""
    return "#".join(part for part in conversation_id.split("#") if not _PERSONAL_SEGMENT.search(part))


def _is_complete(item: Mapping[str, Any]) -> bool:
    """``task_complete`` is 1: a number, or as another service writes it: text (``"1"``, ``"1.0"``), BOOL true."""
    value = item.get("task_complete")
    if value is True:
        return True
    if isinstance(value, str):
        try:
            return Decimal(value.strip()) == 1
        except ArithmeticError:  # not a number, or a signalling NaN
            return False
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool) and value == 1


_MICROSECOND = timedelta(microseconds=1)


def created_instant(value: Any) -> int | None:
    """An ISO-8601 (or RFC 3339: t, z in either case) ``created_at`` in microseconds since 0001-01-01T00:00Z.

    A time without an offset is UTC; None when unparseable.
    """
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().upper())
    except ValueError:
        return None
    # Integer arithmetic on the wall time less its offset: exact, and no overflow near year 1 or 9999.
    return (moment.replace(tzinfo=None) - datetime.min - (moment.utcoffset() or timedelta(0))) // _MICROSECOND


def _rank(item: Mapping[str, Any]) -> tuple[bool, bool, int, str]:
    """Larger is preferred: open, then a parseable ``created_at`` (an unparseable one sorts oldest), newest, id."""
    instant = created_instant(item.get("created_at"))
    return (not _is_complete(item), instant is not None, instant or 0, str(item.get("conversation_id") or ""))


def pick_conversation(items: Iterable[dict[str, Any]], best: dict[str, Any] | None = None) -> dict[str, Any]:
    """The newest ``created_at`` (as an instant) among open conversations, else the newest overall.

    An unparseable ``created_at`` sorts oldest; ties go to the greatest conversation_id. ``best`` is the pick so
    far (the lookup picks page by page); ``items`` and ``best`` must not both be empty.
    """
    pool = [*items] if best is None else [best, *items]
    return max(pool, key=_rank)


_INDEX = {
    "type": "object",
    "additionalProperties": False,
    "required": ["index", "company_key", "user_key", "credentials_attribute"],
    "properties": {
        "index": {"type": "string", "minLength": 1},
        "company_key": {"type": "string", "minLength": 1},
        "user_key": {"type": "string", "minLength": 1},
        "credentials_attribute": {"type": "string", "minLength": 1},
        "secrets": {
            "type": "string",
            "description": "The secret-name pattern (under secrets:) for this channel's credentials "
            "(default: the step's secrets).",
        },
    },
}


_KEY = ("primary_channel", "conversation_id")
# DynamoDB's bounds on a key value (a GSI's too), in UTF-8 bytes: a partition key's, then a sort key's. A Query naming
# a longer or empty one is refused (ValidationException), and no item can hold one (its write is refused too).
_KEY_VALUE_BYTES = (2048, 1024)
_DYNAMO_TYPES = ("S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS")
declare_table_key("conversations", _KEY)
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
                # DynamoDB has no attribute without a name (a projection naming one is refused): it reads null.
                if path[1]:
                    names.setdefault(str(path[1]))
    return tuple(names)


def _unkeyable(key: Mapping[str, Any]) -> str | None:
    """Why no item can hold ``key`` (company value as the index's partition key, user value as its sort key), or None.

    The cause names the key attribute and the bound, never its value (an address or a number).
    """
    for (attribute, value), limit in zip(key.items(), _KEY_VALUE_BYTES, strict=False):
        if not isinstance(value, str):
            continue  # another type is the table's to refuse (a configuration's mistake, not a sender's)
        size = len(value.encode("utf-8", "surrogatepass"))
        if not 0 < size <= limit:
            return f"{attribute}:{'empty' if not size else f'over-{limit}-bytes'}"
    return None


@register(
    "conversations.lookup",
    provides="credential",
    requires=("request",),
    iam=(IamGrant(("dynamodb:Query",), (Resource("index", "table", "conversations", "indexes.*.index"),)),),
    errors=(NOT_FOUND, MISSING_CREDENTIAL, DB_TRANSIENT, DB_QUERY),
    deadline_code=DB_TRANSIENT.code,
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["indexes"],
        "properties": {
            "table": {"type": "string", "description": "The logical table (under tables:) to query."},
            "indexes": {"type": "object", "additionalProperties": _INDEX, "minProperties": 1},
            "secrets": {
                "type": "string",
                "description": "The secret-name pattern (under secrets:) a credential name must match in full.",
            },
            "company": {
                "type": "string",
                "description": "JMESPath giving the company's address (default: request.company_number).",
            },
            "user": {
                "type": "string",
                "description": "JMESPath giving the user's address (default: request.user_number).",
            },
            "max_pages": {
                "type": "integer",
                "minimum": 1,
                "description": "Optional cap on the query pages (1 MB of items each) read for one request: a pair "
                "with more is DB_QUERY_ERROR, which loses the message (MessageLossAlarm). Default: no cap; every "
                "match is read, bounded by the invocation's time budget (then DB_TRANSIENT_ERROR, retried).",
            },
        },
    },
    example={
        "table": "conversations",
        "indexes": {
            "sms": {
                "index": "company-sms-number-recipient-tel-index",
                "company_key": "gsi_company_sms_number",
                "user_key": "gsi_recipient_tel",
                "credentials_attribute": "sms_credentials_id",
                "secrets": "sms_credentials",
            }
        },
    },
)
class ConversationLookup:
    """Find the conversation for (company address, user address) through the channel's GSI."""

    _ATTRIBUTES = ("primary_channel", "conversation_id", "channel_config", "created_at", "task_complete")

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = table_name(params, info, "conversations")
        self._indexes: Mapping[str, Mapping[str, str]] = params["indexes"]
        # Each channel's credential names, confined by its index's pattern, else by the step's.
        self._patterns = {
            channel: secret_pattern({"secrets": index["secrets"]} if "secrets" in index else params, info)
            for channel, index in self._indexes.items()
        }
        self._company = expression_param(params, "company", "request.company_number")
        self._user = expression_param(params, "user", "request.user_number")
        self._max_pages = int(params["max_pages"]) if "max_pages" in params else None

    def _choose(self, ctx: Context, index: str, key: Mapping[str, Any]) -> tuple[dict[str, Any] | None, int]:
        """The pick among every conversation of the pair (None when there is none), and how many there are.

        Pages are read until the last (the contract: all matches), keeping only the pick so far. Each page is one
        bounded call; the deadline is checked between pages, so a lookup that runs out of time is retried.
        """
        pages = ctx.services.tables.query_pages(self._table, index, key, self._ATTRIBUTES)
        chosen: dict[str, Any] | None = None
        count = pages_read = 0
        while (page := db_call(lambda: next(pages, None))) is not None:
            pages_read += 1
            count += len(page.items)
            if page.items:
                chosen = pick_conversation(page.items, chosen)
            if not page.more:
                break
            if self._max_pages is not None and pages_read >= self._max_pages:
                message = f"more than {self._max_pages} pages of conversations match"
                raise StepFailure(DB_QUERY.code, message, cause="LookupLimit")
            if ctx.time_left() <= 0:
                raise TransientFault(DB_TRANSIENT.code, f"time budget spent after {pages_read} lookup page(s)")
        return chosen, count

    def run(self, ctx: Context) -> StepResult:
        request = ctx.doc["request"]
        index = self._indexes.get(request["channel"])
        if index is None:
            raise StepFailure(MISSING_CREDENTIAL.code, f"no lookup index configured for channel {request['channel']}")
        key = {index["company_key"]: self._company.search(ctx.doc), index["user_key"]: self._user.search(ctx.doc)}
        unkeyable = _unkeyable(key)
        if unkeyable is not None:
            # An address anyone can write (an email's From) past a key's bound: no conversation has it, and the
            # Query DynamoDB would refuse is a DB_QUERY_ERROR the sender's provider retries for days.
            raise StepFailure(NOT_FOUND.code, "no conversation for this sender and recipient", cause=unkeyable)
        chosen, count = self._choose(ctx, index["index"], key)
        if chosen is None:
            raise StepFailure(NOT_FOUND.code, "no conversation for this sender and recipient")
        # Bound here, not returned as the result's log (which the runner would bind a second time): a failure's line
        # names the item on-call repairs too (and, with several conversations for the pair, how many it came from).
        log = {"conversation_id": loggable_conversation_id(str(chosen["conversation_id"]))}
        if count > 1:
            log["candidates"] = str(count)
        bind_log_fields(log)
        secret_name = self._secret_name(chosen, index["credentials_attribute"], request["channel"])
        output = {
            "conversation_id": chosen["conversation_id"],
            "primary_channel": chosen["primary_channel"],
            "secret_name": secret_name,
            "candidates": count,
        }
        return StepResult(output=output, decision=f"{count} candidate(s)")

    def _secret_name(self, chosen: Mapping[str, Any], attribute: str, channel: str) -> str:
        """The credential name the conversation gives, stripped; else MISSING_CREDENTIAL_CONFIG.

        The failure's cause names the attribute and what is wrong with it (absent, empty, another DynamoDB type,
        outside the pattern), never its value: the event's log line tells on-call what to repair in the item.
        """
        config = chosen.get("channel_config", _ABSENT)
        if not isinstance(config, Mapping):
            problem = "absent" if config is _ABSENT else dynamo_type(config)
            raise StepFailure(
                MISSING_CREDENTIAL.code, "conversation has no channel_config", cause=f"channel_config:{problem}"
            )
        stored = config.get(attribute, _ABSENT)
        secret_name = stored.strip() if isinstance(stored, str) else ""
        if not secret_name:
            problem = "absent" if stored is _ABSENT else "empty" if isinstance(stored, str) else dynamo_type(stored)
            raise StepFailure(
                MISSING_CREDENTIAL.code,
                f"conversation has no channel_config.{attribute}",
                cause=f"{attribute}:{problem}",
            )
        # The pattern confines the name the secret is read by: the stripped one.
        pattern = self._patterns[channel]
        if pattern is not None and not pattern.fullmatch(secret_name):
            message = "credential name is outside the allowed secret pattern"
            raise StepFailure(MISSING_CREDENTIAL.code, message, cause=f"{attribute}:outside-pattern")
        return secret_name


@register(
    "conversations.get",
    provides="conversation",
    requires=("credential",),
    iam=(
        IamGrant(("dynamodb:GetItem",), (Resource("table", "table", "conversations"),)),
        IamGrant(
            ("dynamodb:BatchGetItem",),
            (Resource("table", "table", "conversations"), Resource("table", "replay_table")),
        ),
    ),
    errors=(NOT_FOUND, DB_TRANSIENT, DB_QUERY),
    deadline_code=DB_TRANSIENT.code,
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "table": {"type": "string"},
            "replay_table": {
                "type": "string",
                "description": "The logical table of replay.record's records: read in the same batch as the "
                "conversation; a replay of an accepted message ends the run as REPLAY (nothing written).",
            },
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
            "types": {
                "type": "object",
                "additionalProperties": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"enum": list(_DYNAMO_TYPES)},
                },
                "description": "The DynamoDB types each attribute is expected in. One read in another type (written "
                "by another service) is still decided by the rules, and named with the type found, never its "
                "value, in `unexpected_types` on the invocation's log lines (`project_status:N`).",
            },
        },
    },
    example={"table": "conversations", "read": "rules", "replay_table": "replay", "types": {"project_status": ["S"]}},
)
class ConversationGet:
    """Read the conversation item (consistent read); DynamoDB numbers become JSON numbers.

    With ``read: rules`` only the attributes the rule sets read are fetched, which keeps long
    ``messages`` histories off the hot path; ``whole_conversation`` reads the rest when needed.
    """

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._table = table_name(params, info, "conversations")
        self._types: Mapping[str, frozenset[str]] = {
            name: frozenset(types) for name, types in params.get("types", {}).items()
        }
        replay = table_name(params, info, "", "replay_table", optional=True) if "replay_table" in params else ""
        self._replay = replay or None
        self._consistent = bool(params.get("consistent_read", True))
        # A shadow candidate's rule sets are decided from the same read: it covers their attributes too.
        rulesets = {str(i): s for i, s in enumerate([*info.rulesets.values(), *info.shadow_rulesets.values()])}
        found = rule_attributes(rulesets) if params.get("read", "whole") == "rules" else None
        self._attributes = None if found is None else tuple(dict.fromkeys([*found, *params.get("also_read", [])]))

    @property
    def types(self) -> Mapping[str, frozenset[str]]:
        """The DynamoDB types ``types:`` declares for attributes (``hand_off_to_human``: ``BOOL``)."""
        return self._types

    @property
    def attributes(self) -> tuple[str, ...] | None:
        """The attributes read before the rules decide (``read: rules``), or None when the whole item is."""
        return self._attributes

    def _get(self, ctx: Context, key: Mapping[str, str], attributes: tuple[str, ...] | None) -> dict[str, Any] | None:
        tables = ctx.services.tables
        return db_call(lambda: tables.get_item(self._table, key, consistent=self._consistent, attributes=attributes))

    def _read(self, ctx: Context, key: Mapping[str, str], attributes: tuple[str, ...] | None) -> dict[str, Any]:
        return _found(self._get(ctx, key, attributes))

    def run(self, ctx: Context) -> StepResult:
        credential = ctx.doc["credential"]
        key = {"primary_channel": credential["primary_channel"], "conversation_id": credential["conversation_id"]}
        if self._replay is None:
            stored = self._get(ctx, key, self._attributes)
        else:
            # The replay record comes in the same round trip as the conversation.
            requests = [
                ItemRequest(self._table, key, self._consistent, self._attributes),
                ItemRequest(self._replay, {REPLAY_KEY: ctx.doc["request"]["message_sid"]}),
            ]
            stored, record = db_call(lambda: ctx.services.tables.get_items(requests))
            if replay_of(record, ctx.services.clock.now().timestamp()):
                return StepResult(outcome=REPLAY, stop=True, decision="replay of an accepted message")
            ctx.private[READ_RECORD] = record
        item = _found(stored)
        if self._attributes is not None:
            ctx.private[_WHOLE] = lambda: self._read(ctx, key, None)
        # Read before the JSON conversion, which makes a set a list and binary text.
        drifted = ",".join(self._unexpected(stored or {}))
        return StepResult(output=item, decision="found", log={"unexpected_types": drifted} if drifted else None)

    def _unexpected(self, item: Mapping[str, Any]) -> list[str]:
        """``name:type`` for each attribute present in a DynamoDB type other than those ``types`` expects."""
        found = ((name, dynamo_type(item[name])) for name in self._types if name in item)
        return [f"{name}:{kind}" for name, kind in found if kind not in self._types[name]]


def _found(item: Mapping[str, Any] | None) -> dict[str, Any]:
    if item is None:
        raise StepFailure(NOT_FOUND.code, "the conversation item is gone")
    # Rules see plain JSON values, as their inline tests give them: JMESPath functions reject Decimal.
    plain: dict[str, Any] = json_safe(item)
    return plain


def whole_conversation(ctx: Context) -> Mapping[str, Any]:
    """The whole conversation item, read now if ``conversations.get`` fetched only what the rules need."""
    read = ctx.private.pop(_WHOLE, None)
    if read is not None:
        ctx.doc["conversation"] = read()
    conversation: Mapping[str, Any] = ctx.doc.get("conversation") or {}
    return conversation
