"""The application: a loaded configuration plus the services it runs with, handling one event at a time."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from engine import tracing
from engine.aws import DynamoTables, SecretsManagerStore, SqsQueues, lazy_clients
from engine.clock import Clock, SystemClock
from engine.config import AppConfig, load_config
from engine.context import Services
from engine.logs import bind, loggable_conversation_id
from engine.metrics import EmfMetrics
from engine.runner import RunResult
from engine.secrets import SecretCache
from engine.stamp import STAMP_FILE, Stamp

__all__ = ["Application", "Handled", "PIPELINE_FILE", "RULES_DIR", "live_services", "loggable_conversation_id"]

logger = logging.getLogger("engine.app")

PIPELINE_FILE = Path("pipelines") / "twilio_inbound.yaml"
RULES_DIR = Path("rules")
# Lambda init types whose init phase is off the request path: clients are created there, not on first use.
EAGER_INIT_TYPES = frozenset({"provisioned-concurrency", "snap-start"})
# Time kept back from the Lambda's remaining time to build and return the answer.
ANSWER_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class Handled:
    """One handled event: the run and the HTTP response (None when the handler must raise)."""

    result: RunResult
    channel: str | None
    response: dict[str, Any] | None
    raised: Exception | None


def live_services(
    config: AppConfig,
    clock: Clock | None = None,
    session: Any | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Services:
    """Boto3-backed services with the configuration's time bounds, their clients created once per container.

    Each client is created (and traced, when tracing is on) on its first use, or right away when the
    Lambda init phase is off the request path (``AWS_LAMBDA_INITIALIZATION_TYPE`` in ``EAGER_INIT_TYPES``).
    """
    environment = os.environ if env is None else env
    if session is None and not environment.get("AWS_DEFAULT_REGION"):
        # Lambda always sets the region; elsewhere a missing one must stop the cold start, not the first event
        # (whose error would answer Twilio 200 and lose the message).
        session = _session_with_region()
    clients = lazy_clients(config.aws, session, tracing.instrument)
    if environment.get("AWS_LAMBDA_INITIALIZATION_TYPE", "") in EAGER_INIT_TYPES:
        for client in clients:
            client.get()
    dynamodb, sqs, secretsmanager = clients
    wall = clock or SystemClock()
    return Services(
        tables=DynamoTables(dynamodb),
        queues=SqsQueues(sqs),
        secrets=SecretCache(SecretsManagerStore(secretsmanager), wall),
        clock=wall,
    )


class NoRegionConfigured(RuntimeError):
    """No AWS region in the environment or the AWS config files: no client could be created."""


def _session_with_region() -> Any:
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        raise NoRegionConfigured("no AWS region configured: set AWS_REGION and AWS_DEFAULT_REGION (Lambda sets both)")
    return session


class Application:
    """Runs the pipeline for an event and maps the result to the response."""

    def __init__(self, config: AppConfig, services: Services, metrics: EmfMetrics | None = None) -> None:
        self.config = config
        self.services = services
        self.metrics = metrics

    @classmethod
    def from_root(cls, root: Path, env: Mapping[str, str] | None = None, *, session: Any | None = None) -> Application:
        """Load ``pipelines/`` and ``rules/`` under ``root`` and connect to AWS as boto3 is configured.

        ``session`` is the boto3 session the clients come from (a new one by default; see ``live_services`` for
        when each is created). As a Lambda container, it writes one EMF metrics document per event and, when the
        environment asks, records X-Ray subsegments.
        """
        environment = os.environ if env is None else env
        stamp = Stamp.read(root / STAMP_FILE)
        config = load_config(root / PIPELINE_FILE, root / RULES_DIR, environment, stamp=stamp)
        tracing.configure(environment)
        return cls(config, live_services(config, session=session, env=environment), EmfMetrics.from_env(environment))

    def process(self, event: Mapping[str, Any], context: Any = None, *, explain: bool = False) -> Handled:
        """Run one event; never raises (a transient fault is returned in ``raised``)."""
        started = perf_counter()
        request_id = getattr(context, "aws_request_id", None)
        bind(request_id=str(request_id or ""))
        budget = None
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            budget = max(0.0, remaining() / 1000 - ANSWER_MARGIN_SECONDS)
        config = self.config
        result = config.pipeline.run(event, self.services, time_budget=budget, explain=explain)
        doc = result.doc
        channel = (doc.get("request") or {}).get("channel")
        response: dict[str, Any] | None = None
        raised: Exception | None = None
        try:
            response = config.responses.respond(result, channel).to_lambda()
        except Exception as exc:  # noqa: BLE001 - RetryableFailure, or a policy gap: both raise out of the handler
            raised = exc
        ms = round((perf_counter() - started) * 1000, 3)
        name, outcome, error_code, trace = config.pipeline.name, result.outcome, result.error_code, result.trace
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "event",
                extra={
                    "pipeline": name,
                    "outcome": outcome,
                    "error_code": error_code,
                    "ms": ms,
                    "status": response["statusCode"] if response else "raised",
                    "steps": {entry.step: entry.status for entry in trace},
                },
            )
        if self.metrics is not None:
            # The runner bound this id for the invocation's log lines as soon as the lookup found it.
            conversation_id = loggable_conversation_id((doc.get("credential") or {}).get("conversation_id"))
            self.metrics.record(
                name, outcome, error_code, ms=ms, trace=trace, request_id=request_id, conversation_id=conversation_id
            )
        bind(conversation_id=None)
        return Handled(result, channel, response, raised)

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """The Lambda contract: return the proxy response, or raise for transient faults."""
        handled = self.process(event, context)
        if handled.raised is not None:
            raise handled.raised
        assert handled.response is not None
        return handled.response
