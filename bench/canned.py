"""AWS answered at the HTTP layer with recorded responses, after a fixed delay: the network without the emulator.

A ``before-send`` handler (registered first) sleeps, then returns the response recorded for the same
operation from a moto run. botocore does all its usual work (serialise, sign, parse, checksums);
nothing leaves the process and no emulator runs, so the time left over is the engine's and boto3's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from io import BytesIO
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from bench.awscalls import AwsCall

__all__ = ["CannedAws"]


class _Raw(BytesIO):
    """The raw body botocore streams a response from."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


class CannedAws:
    """Answers each operation (``Query``, ``PutItem``…) with its recorded response after ``delay`` seconds."""

    def __init__(self, recorded: Iterable[AwsCall], delay: float) -> None:
        self._answers = {call.name: call for call in recorded}
        self._delay = delay

    def attach(self, session: Any) -> None:
        """Register on a ``boto3.session.Session`` before its clients are created."""
        session.events.register_first("before-send", self._answer)

    def _answer(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        if self._delay:
            time.sleep(self._delay)
        call = self._answers[event_name.rsplit(".", 1)[1]]
        return AWSResponse(request.url, call.status, HTTPHeaders.from_dict(call.headers), _Raw(call.body))
