"""What several steps share: naming the pipeline's declared resources, and mapping service errors to codes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.errors import StepFailure, TransientFault
from engine.ports import ServiceError
from engine.registry import BuildInfo, ParamError

__all__ = ["secret_pattern", "service_failure", "table_name"]


def table_name(params: Mapping[str, Any], info: BuildInfo, default: str, param: str = "table") -> str:
    """The table behind the logical name in parameter ``param`` (``default`` when absent)."""
    key = str(params.get(param, default))
    if key not in info.tables:
        known = ", ".join(sorted(info.tables)) or "none"
        raise ParamError((param,), f"table {key!r} is not declared under tables: (declared: {known})")
    return info.tables[key]


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
