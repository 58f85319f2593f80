"""Optional AWS X-Ray subsegments: one per step (signature validation included) and one per AWS call.

The AWS calls are traced by patching botocore with the X-Ray SDK.
Tracing is on when ``TRACING_ENABLED`` is true (the SAM template sets it beside ``Tracing: Active``), or when it is
unset and both ``AWS_XRAY_DAEMON_ADDRESS`` and ``_X_AMZN_TRACE_ID`` are present; and only if ``aws_xray_sdk`` is
importable (the ``tracing`` extra). When off, nothing is imported and ``subsegment`` hands back one shared no-op
context manager.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

__all__ = ["configure", "enabled", "reset", "subsegment", "wanted"]

logger = logging.getLogger("engine.tracing")

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


class _NoSubsegment:
    """The context manager handed out while tracing is off."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        return None


_NOOP = _NoSubsegment()
_recorder: Any = None


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for tracing (before checking that the SDK is installed)."""
    setting = env.get("TRACING_ENABLED", "").strip().lower()
    if setting in _ON:
        return True
    if setting in _OFF:
        return False
    return bool(env.get("AWS_XRAY_DAEMON_ADDRESS") and env.get("_X_AMZN_TRACE_ID"))


def configure(env: Mapping[str, str]) -> bool:
    """Turn tracing on or off for this process (once per container); return whether it is on."""
    global _recorder
    if not wanted(env):
        _recorder = None
        return False
    try:
        from aws_xray_sdk.core import patch, xray_recorder
    except ImportError:
        logger.warning("tracing requested but aws_xray_sdk is not installed; continuing without subsegments")
        _recorder = None
        return False
    patch(("botocore",))
    _recorder = xray_recorder
    return True


def reset() -> None:
    """Turn tracing off (botocore stays patched; its subsegments then follow the SDK's own context rules)."""
    global _recorder
    _recorder = None


def enabled() -> bool:
    """True while subsegments are being recorded."""
    return _recorder is not None


def subsegment(name: str) -> AbstractContextManager[Any]:
    """A context manager recording ``name`` as an X-Ray subsegment, or a no-op when tracing is off."""
    recorder = _recorder
    if recorder is None:
        return _NOOP
    manager: AbstractContextManager[Any] = recorder.in_subsegment(name)
    return manager
