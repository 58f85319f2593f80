"""Recorded AWS calls issued again with plain boto3 clients: the AWS work of an event without the engine.

The baselines of two figures: ``moto_per_event`` replays each event's calls in order against twin
resources in the same moto world (``renames`` maps a table name or queue URL to its twin's), and the
latency floor replays them against canned answers with the recorded overlap
(calls that were in flight together are issued together, one of them on a worker thread).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError

from bench.awscalls import AwsCall
from runtime.aws import AwsSettings, botocore_config

__all__ = ["Boto3Replay", "concurrent_groups"]

SERVICES = ("dynamodb", "sqs", "secretsmanager")
_EXPECTED_CODES = frozenset({"ConditionalCheckFailedException"})
_RESOURCE_PARAMS = ("TableName", "QueueUrl")


def concurrent_groups(calls: Sequence[AwsCall]) -> list[list[AwsCall]]:
    """The calls in start order, grouped where their intervals overlapped (one group per round trip)."""
    groups: list[list[AwsCall]] = []
    horizon = float("-inf")
    for call in sorted(calls, key=lambda c: c.start):
        if call.start >= horizon:
            groups.append([call])
        else:
            groups[-1].append(call)
        horizon = max(horizon, call.end)
    return groups


class Boto3Replay:
    """Plain boto3 clients on ``session``, configured as the engine's are, that issue recorded calls."""

    def __init__(self, session: Any, renames: Mapping[str, str] | None = None) -> None:
        config = botocore_config(AwsSettings())
        self._clients = {name: session.client(name, config=config) for name in SERVICES}
        self._renames = dict(renames or {})
        self._pool: ThreadPoolExecutor | None = None

    def issue(self, call: AwsCall) -> None:
        """Issue one call with its recorded parameters; a lost conditional write counts as done."""
        service, operation = call.operation.split(".", 1)
        params = self._renamed(call.params) if self._renames else call.params
        try:
            getattr(self._clients[service], xform_name(operation))(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _EXPECTED_CODES:
                raise

    def in_order(self, calls: Sequence[AwsCall]) -> None:
        """Issue ``calls`` one after the other, as given."""
        for call in calls:
            self.issue(call)

    def with_overlap(self, groups: Sequence[Sequence[AwsCall]]) -> None:
        """Issue each group (see ``concurrent_groups``) after the previous one; a group's calls together."""
        for group in groups:
            first, *others = group
            if not others:
                self.issue(first)
                continue
            pool = self._worker_pool()
            pending = [pool.submit(self.issue, call) for call in others]
            self.issue(first)
            for future in pending:
                future.result()

    def close(self) -> None:
        """Stop the worker thread, if one was started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _renamed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        renamed = dict(params)
        for key in _RESOURCE_PARAMS:
            if key in renamed:
                renamed[key] = self._renames.get(renamed[key], renamed[key])
        if isinstance(renamed.get("RequestItems"), Mapping):  # a batch names its tables as keys
            renamed["RequestItems"] = {self._renames.get(k, k): v for k, v in renamed["RequestItems"].items()}
        return renamed

    def _worker_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="replay")
        return self._pool
