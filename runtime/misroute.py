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

A message posted to a Host that the parse step's allow-list does not list, though it is the domain the platform received
it on (ops pointed Twilio at a new custom domain and did not add it to ``ALLOWED_HOSTS``), is lost the same way: refused
``INVALID_SIGNATURE`` before any AWS call (the contract's answer, unchanged), which only ``InvalidSignatureAlarm``'s
threshold (a run of refusals, forged ones alike) would notice. Its refusal records ``unlisted_host``
(``unlisted(result)``), and the same check runs for it with the parse step read as if the Host were listed (a step
offering ``rehosted()``): the signed URL rebuilt with the Host it arrived on. A valid signature counts in
``MISROUTED_METRIC`` too; the event line's reason tells the two apart. Nothing the check reads ever decides what is
staged: the request stays refused. Such a refusal comes before the form is read, so the check's valid signature is
what names its ``MessageSid`` (``Checked.message_sid``), for the event line (on-call replays a lost message by it);
an unverified one's SID is only text anyone can post, and names nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from engine import registry
from engine.config import AppConfig
from engine.context import Services, bind_log_fields, log_fields
from engine.errors import INTERNAL_ERROR
from engine.http import HttpRequest
from engine.runner import Node, Pipeline, PlannedStep, RunResult

__all__ = [
    "MISROUTED_METRIC",
    "READDRESSED",
    "REHOSTED",
    "UNCHECKED",
    "VALID",
    "Checked",
    "MisrouteCheck",
    "checker",
    "message_sid",
    "misrouted",
    "signature_recheck",
    "unlisted",
]

logger = logging.getLogger("runtime.misroute")

# Counted by pipeline: a message posted to another channel's path, refused at parse, whose signature is valid.
MISROUTED_METRIC = "MisroutedMessages"
# The verdict of a check whose every step ended well.
VALID = "signature valid"
# The verdict where the pipeline has no steps to check one with (``checker``).
UNCHECKED = "unchecked"
PARSING_ERROR = "PARSING_ERROR"
INVALID_SIGNATURE = "INVALID_SIGNATURE"
# How the check reads the request with the pipeline's first step: the method of that step that makes the copy.
READDRESSED = "readdressed"
REHOSTED = "rehosted"


def misrouted(result: RunResult) -> bool:
    """Whether ``result`` refused a message posted to another channel's path, which its addresses name.

    The parse step records that channel as ``request.addressed_channel``; a status callback posted so loses nothing.
    """
    request = result.doc.get("request")
    if result.error_code != PARSING_ERROR or not isinstance(request, Mapping):
        return False
    return bool(request.get("addressed_channel")) and request.get("is_status_callback") is False


def unlisted(result: RunResult) -> bool:
    """Whether ``result`` refused a request for its Host alone: the domain it arrived on, not in the allow-list.

    The parse step records it as ``request.unlisted_host``.
    """
    request = result.doc.get("request")
    if result.error_code != INVALID_SIGNATURE or not isinstance(request, Mapping):
        return False
    return request.get("unlisted_host") is True


def signature_recheck(result: RunResult) -> str | None:
    """How a refused request's signature is checked (``READDRESSED``, ``REHOSTED``), or None when it is not."""
    if misrouted(result):
        return READDRESSED
    return REHOSTED if unlisted(result) else None


def checker(config: AppConfig, reading: str = READDRESSED) -> Pipeline | None:
    """The run that checks a misrouted message of ``config``'s pipeline, or None when it has no such steps.

    Its first step read again as ``reading`` says (``READDRESSED``: as the channel the addresses name; ``REHOSTED``:
    as if its Host were listed), then every step up to the last that authenticates. None: a first step without
    that method, no authenticating step, a parallel group among those steps, or one whose declared IAM actions are
    not reads only (the check must never write).
    """
    nodes = list(config.pipeline.nodes)
    specs = [registry.get(node.uses) if isinstance(node, PlannedStep) else None for node in nodes]
    last = max((index for index, spec in enumerate(specs) if spec is not None and spec.authenticates), default=0)
    first = nodes[0] if nodes else None
    read = getattr(first.step, reading, None) if isinstance(first, PlannedStep) else None
    if not last or not isinstance(first, PlannedStep) or not callable(read):
        return None
    checked: list[Node] = [dataclasses.replace(first, step=read())]
    for node, spec in zip(nodes[1 : last + 1], specs[1 : last + 1], strict=True):
        actions = [action for grant in (spec.iam if spec is not None else ()) for action in grant.actions]
        if spec is None or not all(_READ.fullmatch(action) for action in actions):
            return None
        checked.append(node)
    name = f"{config.name}.{'misrouted' if reading == READDRESSED else 'unlisted_host'}"
    return Pipeline(name, checked, deadline_seconds=config.pipeline.deadline_seconds, concurrent=False)


# The IAM actions that only read: a check may run a step that declares no other.
_READ = re.compile(r"[a-z0-9-]+:(Get|BatchGet|Query|Describe|List)[A-Za-z]*")


def message_sid(doc: Mapping[str, Any]) -> str | None:
    """The id of the event's message once its request was parsed (Twilio's ``MessageSid``, an email's ``EM`` id)."""
    request = doc.get("request")
    sid = request.get("message_sid") if isinstance(request, Mapping) else None
    return sid if isinstance(sid, str) else None


class Checked(NamedTuple):
    """The end of a refused request's signature check."""

    # ``VALID``, or the code that ended the check (``UNCHECKED`` when the pipeline cannot check one).
    verdict: str
    # The ``MessageSid`` that the valid signature covers (None unless ``VALID``).
    message_sid: str | None = None


class MisrouteCheck:
    """The check of each pipeline's misrouted messages, built once per configuration."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, str], tuple[AppConfig, Pipeline | None]] = {}

    def verdict(
        self,
        config: AppConfig,
        request: HttpRequest,
        services: Services,
        budget: float | None,
        reading: str = READDRESSED,
    ) -> Checked:
        """``VALID`` and the message the signature covers, or the code that ended the check (``Checked``).

        ``reading``: how the first step reads the request again (``checker``).

        The log fields its steps bind (the conversation its lookup read, for a forgery too) are dropped after it.
        """
        fields = log_fields()
        try:
            built = self._built.get((config.name, reading))
            if built is None or built[0] is not config:
                built = self._built[config.name, reading] = (config, checker(config, reading))
            if built[1] is None:
                return Checked(UNCHECKED)
            result = built[1].run(request, services, time_budget=budget)
        except Exception:  # a bug of the check's own: the answer, already built, must still be returned
            logger.exception("misrouted message check failed", extra={"pipeline": config.name})
            return Checked(INTERNAL_ERROR)
        finally:
            bind_log_fields(fields, replace=True)
        if result.error_code is not None:
            return Checked(result.error_code)
        return Checked(VALID, message_sid(result.doc))
