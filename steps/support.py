"""What several steps share: a webhook's request, JMESPath parameters, declared resources, service errors as codes.

Also the URL the caller requested, rebuilt for a signature check (``public_url``), and two conversions: a moment as
the timestamp text steps write (``iso_millis``), stored items as JSON (``json_safe``). A step that keeps a table
declares its key with ``declare_table_key``: local AWS (``tools.needs``) creates the table from that declaration.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from engine.context import Context
from engine.errors import StepFailure, TransientFault
from engine.expressions import Expression, ExpressionSyntaxError, compile_expression
from engine.http import HttpRequest
from engine.ports import ServiceError
from engine.registry import BuildInfo, ParamError

__all__ = [
    "ExactFloat",
    "TableKey",
    "declare_table_key",
    "dynamo_type",
    "epoch_exact",
    "expression_param",
    "has_exact",
    "iso_millis",
    "json_number",
    "json_safe",
    "json_text",
    "on_failure",
    "on_success",
    "public_url",
    "safe_copy",
    "secret_pattern",
    "service_failure",
    "table_keys",
    "table_name",
    "utf8_prefix",
    "webhook_post",
    "written_at_attributes",
]


def on_failure(ctx: Context, label: str, action: Callable[[], None]) -> None:
    """``ctx.on_failure``, the undo traced as a span of its own named ``label`` (``_traced``)."""
    ctx.on_failure(label, _traced(ctx, label, action))


def on_success(ctx: Context, label: str, action: Callable[[], None]) -> None:
    """``ctx.on_success``, the confirmation traced as a span of its own named ``label`` (``_traced``)."""
    ctx.on_success(label, _traced(ctx, label, action))


def _traced(ctx: Context, label: str, action: Callable[[], None]) -> Callable[[], None]:
    """``action`` inside a span named ``label`` when the invocation is traced, else ``action`` itself.

    The runner undoes (or confirms) after the registering step's span has ended: without a span of its own, the
    action's AWS calls would belong to no step in the trace.
    """
    tracer = ctx.services.tracer
    if tracer is None or not tracer.active():
        return action

    def run() -> None:
        with tracer.span(label):
            action()

    return run


def webhook_post(ctx: Context, channels: frozenset[str], code: str, poster: str) -> HttpRequest:
    """The event, a readable POST to one of ``channels``; else ``StepFailure(code)``.

    Once the channel is known it is ``request.channel``, so that a failure is answered in that channel's format.
    ``poster`` ends the message refusing another method (``Twilio webhooks POST``).
    """
    http = ctx.event
    if not isinstance(http, HttpRequest):
        raise StepFailure(code, "the event is not an HTTP request")
    channel = http.channel
    if channel not in channels:
        raise StepFailure(code, "unknown webhook path; expected …/" + " or …/".join(sorted(channels)))
    ctx.doc["request"] = {"channel": channel}
    if http.unreadable is not None:
        raise StepFailure(code, http.unreadable)
    if http.method is not None and http.method.upper() != "POST":
        raise StepFailure(code, f"method {http.method} is not accepted; {poster}")
    return http


# Characters that would end a URL's authority (or hide part of it): never part of a rebuilt URL's host.
_URL_DELIMITERS = re.compile(r"[/\\@?#\s\x00-\x1f\x7f]")


def public_url(http: HttpRequest, scheme: str | None = None) -> str:
    """The URL the caller requested, rebuilt with ``scheme`` (default: the request's own).

    ValueError when there is no host, or when the scheme or host would change the URL's boundaries (a scheme
    other than http or https, a host holding a delimiter such as ``/``, ``@``, ``?`` or ``#``).
    """
    if not http.host:
        raise ValueError("the request names no host (Host header or the platform's domain name)")
    chosen_scheme = scheme or http.scheme
    if chosen_scheme not in ("http", "https"):
        raise ValueError("the request's scheme is neither http nor https")
    if _URL_DELIMITERS.search(http.host):
        raise ValueError("the request's host is not a host name")
    return f"{chosen_scheme}://{http.host}{http.path}" + (f"?{http.query}" if http.query else "")


def expression_param(params: Mapping[str, Any], name: str, default: str) -> Expression:
    """The JMESPath in parameter ``name`` (``default`` when absent), compiled."""
    try:
        return compile_expression(str(params.get(name, default)))
    except ExpressionSyntaxError as exc:
        raise ParamError((name,), f"invalid JMESPath: {exc}") from None


def table_name(
    params: Mapping[str, Any], info: BuildInfo, default: str, param: str = "table", *, optional: bool = False
) -> str:
    """The table behind the logical name in parameter ``param`` (``default`` when absent).

    A table declared with an empty name is refused, unless the step can do without it (``optional``: then "").
    """
    key = str(params.get(param, default))
    if key not in info.tables:
        known = ", ".join(sorted(info.tables)) or "none"
        raise ParamError((param,), f"table {key!r} is not declared under tables: (declared: {known})")
    if not info.tables[key] and not optional:
        raise ParamError((param,), f"table {key!r} has no name (tables.{key} is empty: set its environment variable)")
    return info.tables[key]


class TableKey(NamedTuple):
    """A table's key attributes (hash, then range) and whether its rows expire (TTL on ``expires_at``)."""

    key: tuple[str, ...]
    expires: bool


_TABLE_KEYS: dict[str, TableKey] = {}
_WRITTEN_AT: dict[str, str] = {}


def declare_table_key(role: str, key: tuple[str, ...], *, expires: bool = False, written_at: str | None = None) -> None:
    """Declare the key of the table pipelines name ``role`` under ``tables:`` (the step's default logical name).

    ``written_at`` names the attribute holding when a row was written (epoch seconds), if the step keeps one: a
    replay at a past time (``pipeline-dryrun`` at each captured event's arrival) takes a row the account or its world
    holds that was written later as absent (``written_at_attributes``). ValueError when another step declared a
    different key for the same role.
    """
    declared = TableKey(key, expires)
    if _TABLE_KEYS.setdefault(role, declared) != declared:
        raise ValueError(f"table role {role!r} is already declared with key {_TABLE_KEYS[role]}, not {declared}")
    if written_at is not None:
        _WRITTEN_AT[role] = written_at


def written_at_attributes() -> Mapping[str, str]:
    """The attribute holding when a row was written, by table role (the roles that declare one)."""
    return dict(_WRITTEN_AT)


def table_keys() -> Mapping[str, TableKey]:
    """Every declared table key, by role."""
    return dict(_TABLE_KEYS)


def secret_pattern(params: Mapping[str, Any], info: BuildInfo, default: str = "credentials") -> re.Pattern[str] | None:
    """The secret-name pattern behind the logical name in parameter ``secrets`` (None: any name).

    A pipeline that declares no ``secrets:`` at all allows any name; one that does must declare the name used.
    """
    key = str(params.get("secrets", default))
    if not info.secrets and "secrets" not in params:
        return None
    if key not in info.secrets:
        known = ", ".join(sorted(info.secrets)) or "none"
        raise ParamError(("secrets",), f"secrets {key!r} is not declared under secrets: (declared: {known})")
    pattern = info.secrets[key]
    if pattern is None:
        raise ParamError(("secrets",), f"secrets {key!r} does not compile", knock_on=True)
    return pattern if pattern.pattern else None


def service_failure(exc: ServiceError, transient_code: str, final_code: str, what: str) -> Exception:
    """The step error for a failed call: transient when a retry can help, else final; names the service's code."""
    if exc.transient:
        return TransientFault(transient_code, f"{what} failed: {exc.code}", exc.code)
    return StepFailure(final_code, f"{what} failed: {exc.code}", cause=exc.code)


def utf8_prefix(text: str, max_bytes: int) -> tuple[str, int]:
    """``text`` cut to at most ``max_bytes`` of UTF-8 at a character boundary, and the UTF-8 size of all of it."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text, len(data)
    return data[: max(max_bytes, 0)].decode("utf-8", "ignore"), len(data)


def iso_millis(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` suffix, e.g. ``2026-11-25T12:00:00.123Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def epoch_exact(moment: datetime) -> Decimal:
    """``moment`` in epoch seconds with its fraction, as a Decimal (a number DynamoDB conditions take).

    An ``expires_at`` (whole seconds) is in the past once it is below this, even within its own second.
    """
    return Decimal(repr(moment.timestamp()))


def dynamo_type(value: Any) -> str:
    """The DynamoDB type a read value was stored as (``S``, ``N``, ``BOOL``, ``NULL``, ``L``, ``M``, ``B``, ``SS``…).

    For log lines that say an attribute has a type other than the one expected, without its value.
    """
    if isinstance(value, (set, frozenset)):
        return next((dynamo_type(item) for item in value), "") + "S"
    if isinstance(value, bool):
        return "BOOL"
    if value is None:
        return "NULL"
    if isinstance(value, (Decimal, int, float)):
        return "N"
    if isinstance(value, str):
        return "S"
    if isinstance(value, (bytes, bytearray)):
        return "B"
    return "M" if isinstance(value, Mapping) else "L"


class ExactFloat(float):
    """A stored number a float cannot hold exactly: a float where rules read it, its ``exact`` Decimal in JSON text.

    Named ``float`` for JMESPath, whose functions check a value's type by its class name.
    """

    __slots__ = ("exact",)
    exact: Decimal

    def __new__(cls, exact: Decimal) -> ExactFloat:
        number = super().__new__(cls, exact)
        number.exact = exact
        return number

    def __reduce__(self) -> tuple[Any, ...]:
        return _exact_float, (self.exact,)


ExactFloat.__name__ = ExactFloat.__qualname__ = "float"


def _exact_float(exact: Decimal) -> ExactFloat:
    return ExactFloat(exact)


def _loses_digits(number: float, text: str) -> bool:
    """Whether the float ``number`` read from ``text`` lost digits of it.

    Text of 16 characters or fewer with a point or an exponent holds at most 15 significant digits, which a float
    holds (in DynamoDB's magnitudes); a longer one is exact if the float prints it back (DynamoDB trims zeros).
    """
    return len(text) > 16 and repr(number) != text


def _number(value: Decimal) -> int | float:
    if value == value.to_integral_value():
        return int(value)  # exact at any size; -0 is 0
    number = float(value)
    return ExactFloat(value) if _loses_digits(number, str(value)) else number


def json_number(text: str) -> float:
    """A JSON number with a fraction or exponent, for ``json.loads``' ``parse_float``: keeps digits a float cannot.

    An ``ExactFloat`` when a float cannot hold them, so that ``json_text`` writes the number back as it was.
    """
    number = float(text)
    return ExactFloat(Decimal(text)) if _loses_digits(number, text) else number


def json_safe(value: Any) -> Any:
    """Stored values as JSON values: Decimal → int/float, sets → sorted lists, bytes → base64 text.

    A number with a fraction a float cannot hold (DynamoDB keeps 38 significant digits) is an ``ExactFloat``: rules
    compare it as the float a rule test's literal gives, and ``json_text`` writes it with every digit.
    Binary is base64 (as DynamoDB's own JSON writes B), not decoded: other services keep images and compressed
    blobs there, which a text decoding would corrupt beyond recovery in the handoff's copy of the item.
    """
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(item) for item in value), key=repr)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return value


# json.dumps writes a float subclass as the float: an ExactFloat is written as a marker (a text no stored value
# holds: it names this process's random token), then the marker replaced by the number's own digits.
_MARK = f"exact-{secrets.token_hex(16)}-"
_MARKED = re.compile(f'"{_MARK}([0-9]+)"')


_PLAIN = frozenset({str, int, float, bool, type(None)})


def has_exact(value: Any) -> bool:
    """Whether ``value`` (as ``json_safe`` gives it) holds an ``ExactFloat``."""
    if type(value) is ExactFloat:
        return True
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return False
    # A text or plain number is passed over where it lies (most of a document): a call, or a generator's step, for each
    # took longer than json.dumps takes to write them.
    for item in items:  # noqa: SIM110 - any() over a generator takes twice as long
        if type(item) not in _PLAIN and has_exact(item):
            return True
    return False


def safe_copy(value: Any) -> tuple[Any, bool]:
    """``json_safe(value)`` as a new copy of its maps and lists, and whether it holds an ``ExactFloat`` (one walk)."""
    found: list[bool] = []
    return _safe_copy(value, found), bool(found)


def _safe_copy(value: Any, found: list[bool]) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {key: _safe_copy(item, found) for key, item in value.items()}
    if kind is list:
        return [_safe_copy(item, found) for item in value]
    safe = json_safe(value)  # Decimal, sets, bytes, tuples, subclasses (an ExactFloat among them)
    if has_exact(safe):
        found.append(True)
    return safe


def _marked(value: Any, found: list[str]) -> Any:
    if type(value) is ExactFloat:
        found.append(str(value.exact))
        return f"{_MARK}{len(found) - 1}"
    if isinstance(value, dict):
        return {key: _marked(item, found) for key, item in value.items()}
    if isinstance(value, list):
        return [_marked(item, found) for item in value]
    return value


def json_text(value: Any, *, exact: bool | None = None, **options: Any) -> str:
    """``json.dumps(value, **options)`` with each ``ExactFloat`` written as the JSON number DynamoDB holds.

    ``exact``: whether ``value`` holds any (``None``: look); a caller that knows spares the look.
    """
    if not (has_exact(value) if exact is None else exact):
        return json.dumps(value, **options)
    found: list[str] = []
    text = json.dumps(_marked(value, found), **options)
    return _MARKED.sub(lambda match: found[int(match.group(1))], text) if found else text
