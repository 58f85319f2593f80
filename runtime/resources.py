"""AWS resource names in the environment that the function's clients would be refused: refused at the cold start.

Each would otherwise pass the cold start and fail every event it reaches with a final error (answered, and lost):

- a table name DynamoDB does not take (3 to 255 of ``A-Z a-z 0-9 _ . -``, or a table's ARN): ``ValidationException``;
- a handoff target's queue that is also a trigger target's: the handoffs would reach the automatic consumer;
- a queue URL of another AWS region than the function's: the SQS client sends to its own region's endpoint, which
  answers ``InvalidAddress``. Only AWS hosts are read (``sqs.REGION.amazonaws.com``, ``REGION.queue.amazonaws.com``,
  ``queue.amazonaws.com``, VPC endpoints); an emulator's URL names no region this can trust.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from engine.config import AppConfig
from engine.errors import ConfigError, Problem

__all__ = ["check_resources", "queue_region"]

_AWS_HOST = re.compile(
    r"(?:.+\.)?(?:sqs(?:-fips)?\.(?P<region>[a-z0-9-]+)(?:\.vpce)?|(?P<legacy>[a-z0-9-]+)\.queue)"
    r"\.amazonaws\.com(?:\.cn)?"
)
# The host of us-east-1's queues before regional hosts.
_LEGACY_US_EAST_1 = "queue.amazonaws.com"
_TABLE = re.compile(r"(arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/)?[A-Za-z0-9_.-]{3,255}")


def queue_region(url: str) -> str | None:
    """The region an AWS queue URL names; None when it names none (an emulator's, or not a URL)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == _LEGACY_US_EAST_1:
        return "us-east-1"
    found = _AWS_HOST.fullmatch(host)
    return (found.group("region") or found.group("legacy")) if found else None


def check_resources(configs: Sequence[AppConfig], region: str | None) -> None:
    """ConfigError, each problem at its line, for every table name or queue URL that cannot work (module docstring)."""
    problems: list[Problem] = []
    triggered = _trigger_queues(configs)
    for config in configs:
        found: dict[tuple[str, ...], str] = {
            ("tables", logical): f"{name!r} is not a table name (3 to 255 of A-Z a-z 0-9 _ . -) or a table ARN: "
            "DynamoDB refuses it"
            for logical, name in config.tables.items()
            if name and not _TABLE.fullmatch(name)
        }
        for target, raw in config.targets.items():
            url = str(raw.get("queue_url") or "")
            named = queue_region(url)
            shared = triggered.get(url) if url and raw.get("message") == "handoff" else None
            if shared:
                found["targets", target, "queue_url"] = (
                    f"the queue of target {target} (handoffs) is the queue of target {shared}, whose messages are "
                    "triggers: its consumer would answer the conversations handed to a human; give each its own queue"
                )
            elif region and named not in (None, region):
                found["targets", target, "queue_url"] = (
                    f"the queue of target {target} is in {named} but the function runs in {region}: SQS refuses a "
                    "queue of another region (InvalidAddress); deploy the function in the queue's region or use a "
                    "queue of its own"
                )
        if found:
            problems.extend(_located(config.files[0], found))
    if problems:
        raise ConfigError(problems)


def _trigger_queues(configs: Sequence[AppConfig]) -> dict[str, str]:
    """Each queue URL a target sends triggers to, with the first such target (``pipeline.target``)."""
    queues: dict[str, str] = {}
    for config in configs:
        for target, raw in config.targets.items():
            url = str(raw.get("queue_url") or "")
            if url and raw.get("message", "trigger") == "trigger":
                queues.setdefault(url, f"{config.name}.{target}")
    return queues


def _located(pipeline: str, found: Mapping[tuple[str, ...], str]) -> list[Problem]:
    """Each message of ``found`` (path in the pipeline file → message) at its path in ``pipeline``, in file order."""
    from engine.yamlsource import load_yaml

    locator = load_yaml(Path(pipeline), pipeline, strict=False).locator
    located = [locator.problem(path, message) for path, message in found.items()]
    return sorted(located, key=lambda problem: (problem.line, problem.column))
