"""AWS X-Ray subsegments, one per step and one per AWS call, sent straight to the X-Ray daemon.

No SDK: importing ``aws_xray_sdk`` costs 80-100 ms of cold start (it loads asyncio, multiprocessing and
wrapt), more than everything this module does in a whole invocation. A subsegment is one JSON document sent by UDP
to ``AWS_XRAY_DAEMON_ADDRESS``, parented to the function's own segment named in ``_X_AMZN_TRACE_ID``.

Tracing is on when ``TRACING_ENABLED`` is true (the SAM template sets it beside ``Tracing: Active``), or when it is
unset and both ``AWS_XRAY_DAEMON_ADDRESS`` and ``_X_AMZN_TRACE_ID`` are present. Only sampled invocations
(``Sampled=1``) send anything. When off, ``subsegment`` hands back one shared no-op context manager and
``instrument`` registers nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, suppress
from contextvars import ContextVar
from types import TracebackType
from typing import Any, NamedTuple

from engine.errors import StepFailure

__all__ = [
    "TRACER",
    "TraceHeader",
    "XRayTracer",
    "configure",
    "daemon_address",
    "enabled",
    "instrument",
    "reset",
    "subsegment",
    "wanted",
]

logger = logging.getLogger("runtime.tracing")

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})
_HEADER_ENV = "_X_AMZN_TRACE_ID"
_PREAMBLE = b'{"format": "json", "version": 1}\n'
_CONTEXT_KEY = "xray_subsegment"
# Request parameters worth showing on an AWS call's subsegment (names, never values of items or secrets).
_RESOURCE_PARAMS = {"TableName": "table_name", "IndexName": "index_name", "QueueUrl": "queue_url"}

# The open step subsegment of this invocation (and of the worker threads started from it, which copy the context).
_PARENT: ContextVar[str | None] = ContextVar("xray_parent", default=None)


class TraceHeader(NamedTuple):
    """The parts of ``_X_AMZN_TRACE_ID`` a subsegment needs."""

    root: str
    parent: str
    sampled: bool

    @classmethod
    def parse(cls, value: str | None) -> TraceHeader | None:
        """``Root=1-…;Parent=…;Sampled=1`` as a header; None when it names no root or parent."""
        if not value:
            return None
        fields = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
        root, parent = fields.get("Root"), fields.get("Parent")
        if not root or not parent:
            return None
        return cls(root.strip(), parent.strip(), fields.get("Sampled", "").strip() == "1")


def daemon_address(value: str) -> tuple[str, int]:
    """The UDP address in ``AWS_XRAY_DAEMON_ADDRESS`` (``host:port``, or ``tcp:h:p udp:h:p``); ValueError if none."""
    chosen = value.strip()
    for part in chosen.split():
        if part.startswith("udp:"):
            chosen = part.removeprefix("udp:")
    host, _, port = chosen.rpartition(":")
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"AWS_XRAY_DAEMON_ADDRESS {value[:60]!r} is not host:port (e.g. 127.0.0.1:2000)")
    return host or "127.0.0.1", int(port)


class _Tracer:
    """Sends documents to the daemon; knows the current invocation's trace header."""

    def __init__(self, address: tuple[str, int]) -> None:
        import socket  # only when tracing is on

        self.address = address
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._last: tuple[str | None, TraceHeader | None] = (None, None)

    def header(self) -> TraceHeader | None:
        """The sampled trace of the running invocation (Lambda sets the variable per invocation), or None."""
        value = os.environ.get(_HEADER_ENV)
        last_value, last_header = self._last
        if value != last_value:
            last_header = TraceHeader.parse(value)
            self._last = (value, last_header)
        return last_header if last_header is not None and last_header.sampled else None

    def send(self, document: Mapping[str, Any]) -> None:
        """One subsegment to the daemon; a full or missing daemon never disturbs the invocation."""
        with suppress(OSError):
            self._socket.sendto(_PREAMBLE + json.dumps(document, separators=(",", ":")).encode(), self.address)

    def close(self) -> None:
        """Release the socket."""
        self._socket.close()


class _Subsegment:
    """One timed subsegment; sent when it ends."""

    __slots__ = ("_token", "document", "tracer")

    def __init__(self, tracer: _Tracer, header: TraceHeader, name: str, namespace: str, parent: str) -> None:
        self.tracer = tracer
        self._token: Any = None
        self.document: dict[str, Any] = {
            "name": name,
            "id": os.urandom(8).hex(),
            "trace_id": header.root,
            "parent_id": parent,
            "type": "subsegment",
            "namespace": namespace,
            "start_time": time.time(),
        }

    def __enter__(self) -> _Subsegment:
        self._token = _PARENT.set(self.document["id"])
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        _PARENT.reset(self._token)
        if value is not None:
            self.failed(value)
        self.end()

    def failed(self, exc: BaseException) -> None:
        """Mark the subsegment: a business refusal is an error, anything else a fault."""
        self.document["error" if isinstance(exc, StepFailure) else "fault"] = True
        label = getattr(exc, "code", None) or type(exc).__name__
        self.document["cause"] = {
            "exceptions": [{"id": os.urandom(8).hex(), "type": type(exc).__name__, "message": label}]
        }

    def end(self) -> None:
        """Close and send."""
        self.document["end_time"] = time.time()
        self.tracer.send(self.document)


class _NoSubsegment:
    """The context manager handed out while tracing is off or the invocation is not sampled."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        return None


_NOOP = _NoSubsegment()
_tracer: _Tracer | None = None


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for tracing: ``TRACING_ENABLED`` true, or unset in Lambda (daemon and header)."""
    setting = env.get("TRACING_ENABLED", "").strip().lower()
    if setting in _ON:
        return bool(env.get("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000"))
    if setting:
        return False
    return bool(env.get("AWS_XRAY_DAEMON_ADDRESS") and env.get(_HEADER_ENV))


def configure(env: Mapping[str, str]) -> bool:
    """Turn tracing on or off for this process (once per container); return whether it is on.

    A ``TRACING_ENABLED`` that is neither true nor false, or an ``AWS_XRAY_DAEMON_ADDRESS`` that is no UDP address,
    leaves it off, and says so in one ERROR line.
    """
    global _tracer
    reset()
    setting = env.get("TRACING_ENABLED", "").strip().lower()
    if setting and setting not in _ON | _OFF:  # ``disabled``, say: off (``wanted``), and said
        logger.error(
            "TRACING_ENABLED %r is neither true nor false (%s; %s); tracing is off",
            env["TRACING_ENABLED"][:40],
            ", ".join(sorted(_ON)),
            ", ".join(sorted(_OFF)),
        )
    if wanted(env):
        try:
            address = daemon_address(env.get("AWS_XRAY_DAEMON_ADDRESS") or "127.0.0.1:2000")
        except ValueError as exc:
            logger.error("%s; tracing is off", exc)
            return False
        _tracer = _Tracer(address)
    return _tracer is not None


def reset() -> None:
    """Turn tracing off."""
    global _tracer
    if _tracer is not None:
        _tracer.close()
    _tracer = None


def enabled() -> bool:
    """True while subsegments are being recorded."""
    return _tracer is not None


def subsegment(name: str) -> AbstractContextManager[Any]:
    """A context manager recording ``name`` as a subsegment of the invocation, or a no-op."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    header = tracer.header()
    if header is None:
        return _NOOP
    return _Subsegment(tracer, header, name, "local", _PARENT.get() or header.parent)


def instrument(client: Any) -> None:
    """Record every call of a boto3 ``client`` as an ``aws`` subsegment (nothing when tracing is off)."""
    if _tracer is None:
        return
    events = client.meta.events
    events.register("before-parameter-build", _call_started)
    events.register("after-call", _call_ended)
    events.register("after-call-error", _call_failed)


def _call_started(params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    tracer = _tracer
    header = tracer.header() if tracer is not None else None
    if tracer is None or header is None:
        return
    service = model.service_model.endpoint_prefix
    call = _Subsegment(tracer, header, service, "aws", _PARENT.get() or header.parent)
    details = {"operation": model.name, "region": context.get("client_region")}
    details.update({key: params[name] for name, key in _RESOURCE_PARAMS.items() if isinstance(params.get(name), str)})
    if isinstance(params.get("RequestItems"), dict):  # a batch names several tables
        details["table_names"] = sorted(params["RequestItems"])
    call.document["aws"] = details
    context[_CONTEXT_KEY] = call


def _call_ended(http_response: Any, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    call: _Subsegment | None = context.pop(_CONTEXT_KEY, None)
    if call is None:
        return
    status = int(getattr(http_response, "status_code", 0) or 0)
    metadata = parsed.get("ResponseMetadata") or {}
    call.document["aws"].update(request_id=metadata.get("RequestId"), retries=metadata.get("RetryAttempts", 0))
    call.document["http"] = {"response": {"status": status}}
    if status == 429 or (status >= 400 and _throttled(parsed)):
        call.document.update(error=True, throttle=True)
    elif 400 <= status < 500:
        call.document["error"] = True
    elif status >= 500:
        call.document["fault"] = True
    call.end()


def _throttled(parsed: Mapping[str, Any]) -> bool:
    """Whether an error answer is throttling (``runtime.aws.is_throttle``; loaded with boto3 by then)."""
    from runtime.aws import is_throttle

    return is_throttle(parsed)


def _call_failed(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    call: _Subsegment | None = context.pop(_CONTEXT_KEY, None)
    if call is not None:
        call.failed(exception)
        call.end()


class XRayTracer:
    """The engine's ``Tracer``: one subsegment per step while tracing is on and the invocation is sampled."""

    def active(self) -> bool:
        """Whether subsegments are being recorded."""
        return enabled()

    def span(self, name: str) -> AbstractContextManager[Any]:
        """A subsegment around a step's work."""
        return subsegment(name)


TRACER = XRayTracer()
