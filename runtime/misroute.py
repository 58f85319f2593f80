"""Checking the signature of a message posted to another channel's path, which is refused all the same.

A Twilio Messaging Service holding WhatsApp and SMS senders posts both to its one webhook URL. The path decides the
channel (the contract), so such a message is refused at parse (``PARSING_ERROR``, answered 200 on a Twilio channel)
and staged nowhere. Parsing comes before any key is read, so anyone can post one: counted unchecked, anyone could
page on-call. So, once the answer is built (it never changes), the pipeline's parse step reads the request again as
the channel its addresses name (a step offering ``readdressed()``: ``twilio.parse``) and the steps after it, up to
the last registered ``authenticates=True`` (the lookup, the key, the signature), run for it: reads only (their
declared IAM actions say so), within the invocation's time. A valid signature makes it a genuine message
lost (``MISROUTED_METRIC``, watched by template.yaml's ``MisroutedMessagesAlarm``); any other end (no conversation, a
wrong signature, a fault) leaves it unverified, and the code that ended the check is all the event line says of it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping

from engine import registry
from engine.config import AppConfig
from engine.context import Services, bind_log_fields, log_fields
from engine.errors import INTERNAL_ERROR
from engine.http import HttpRequest
from engine.runner import Node, Pipeline, PlannedStep, RunResult

__all__ = ["MISROUTED_METRIC", "UNCHECKED", "VALID", "MisrouteCheck", "checker", "misrouted"]

logger = logging.getLogger("runtime.misroute")

# Counted by pipeline: a message posted to another channel's path, refused at parse, whose signature is valid.
MISROUTED_METRIC = "MisroutedMessages"
# The verdict of a check whose every step ended well.
VALID = "signature valid"
# The verdict where the pipeline has no steps to check one with (``checker``).
UNCHECKED = "unchecked"
PARSING_ERROR = "PARSING_ERROR"


def misrouted(result: RunResult) -> bool:
    """Whether ``result`` refused a message posted to another channel's path, which its addresses name.

    The parse step records that channel as ``request.addressed_channel``; a status callback posted so loses nothing.
    """
    request = result.doc.get("request")
    if result.error_code != PARSING_ERROR or not isinstance(request, Mapping):
        return False
    return bool(request.get("addressed_channel")) and request.get("is_status_callback") is False


def checker(config: AppConfig) -> Pipeline | None:
    """The run that checks a misrouted message of ``config``'s pipeline, or None when it has no such steps.

    Its first step read again as the channel the addresses name, then every step up to the last that authenticates.
    None: a first step without ``readdressed()``, no authenticating step, a parallel group among those steps, or one
    whose declared IAM actions are not reads only (the check must never write).
    """
    nodes = list(config.pipeline.nodes)
    specs = [registry.get(node.uses) if isinstance(node, PlannedStep) else None for node in nodes]
    last = max((index for index, spec in enumerate(specs) if spec is not None and spec.authenticates), default=0)
    first = nodes[0] if nodes else None
    if not last or not isinstance(first, PlannedStep) or not callable(getattr(first.step, "readdressed", None)):
        return None
    checked: list[Node] = [dataclasses.replace(first, step=first.step.readdressed())]  # type: ignore[attr-defined]
    for node, spec in zip(nodes[1 : last + 1], specs[1 : last + 1], strict=True):
        actions = [action for grant in (spec.iam if spec is not None else ()) for action in grant.actions]
        if spec is None or not all(_READ.fullmatch(action) for action in actions):
            return None
        checked.append(node)
    return Pipeline(
        f"{config.name}.misrouted", checked, deadline_seconds=config.pipeline.deadline_seconds, concurrent=False
    )


# The IAM actions that only read: a check may run a step that declares no other.
_READ = re.compile(r"[a-z0-9-]+:(Get|BatchGet|Query|Describe|List)[A-Za-z]*")


class MisrouteCheck:
    """The check of each pipeline's misrouted messages, built once per configuration."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[AppConfig, Pipeline | None]] = {}

    def verdict(self, config: AppConfig, request: HttpRequest, services: Services, budget: float | None) -> str:
        """``VALID``, or the code that ended the check (``UNCHECKED`` when the pipeline cannot check one).

        The log fields its steps bind (the conversation its lookup read, for a forgery too) are dropped after it.
        """
        fields = log_fields()
        try:
            built = self._built.get(config.name)
            if built is None or built[0] is not config:
                built = self._built[config.name] = (config, checker(config))
            if built[1] is None:
                return UNCHECKED
            result = built[1].run(request, services, time_budget=budget)
        except Exception:  # a bug of the check's own: the answer, already built, must still be returned
            logger.exception("misrouted message check failed", extra={"pipeline": config.name})
            return INTERNAL_ERROR
        finally:
            bind_log_fields(fields, replace=True)
        return result.error_code or VALID
