"""Queue URLs of another AWS region than the function's: refused at the cold start.

The SQS client sends to its own region's endpoint, and SQS answers a queue URL of another region there
``InvalidAddress``, a final error: every message routed to that queue would be answered and lost. Only AWS
hosts are read (``sqs.REGION.amazonaws.com``, ``REGION.queue.amazonaws.com``, ``queue.amazonaws.com``, VPC
endpoints); an emulator's URL names no region this can trust.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from engine.config import AppConfig
from engine.errors import ConfigError, Problem

__all__ = ["check_queue_regions", "queue_region"]

_AWS_HOST = re.compile(
    r"(?:.+\.)?(?:sqs(?:-fips)?\.(?P<region>[a-z0-9-]+)(?:\.vpce)?|(?P<legacy>[a-z0-9-]+)\.queue)"
    r"\.amazonaws\.com(?:\.cn)?"
)
# The host of us-east-1's queues before regional hosts.
_LEGACY_US_EAST_1 = "queue.amazonaws.com"


def queue_region(url: str) -> str | None:
    """The region an AWS queue URL names; None when it names none (an emulator's, or not a URL)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == _LEGACY_US_EAST_1:
        return "us-east-1"
    found = _AWS_HOST.fullmatch(host)
    return (found.group("region") or found.group("legacy")) if found else None


def check_queue_regions(configs: Sequence[AppConfig], region: str | None) -> None:
    """ConfigError, at each target's ``queue_url`` line, for every queue URL of another region than ``region``."""
    if not region:
        return
    problems: list[Problem] = []
    for config in configs:
        foreign = {
            name: named
            for name, target in config.targets.items()
            if (named := queue_region(str(target.get("queue_url") or ""))) not in (None, region)
        }
        if foreign:
            problems.extend(_located(config.files[0], foreign, region))
    if problems:
        raise ConfigError(problems)


def _located(pipeline: str, foreign: dict[str, str], region: str) -> list[Problem]:
    """One problem per target of ``foreign`` (target → its queue's region), at its ``queue_url`` in ``pipeline``."""
    from engine.yamlsource import load_yaml

    locator = load_yaml(Path(pipeline), pipeline, strict=False).locator
    return [
        locator.problem(
            ("targets", name, "queue_url"),
            f"the queue of target {name} is in {named} but the function runs in {region}: SQS refuses a queue of "
            "another region (InvalidAddress); deploy the function in the queue's region or use a queue of its own",
        )
        for name, named in sorted(foreign.items())
    ]
