"""The Lambda application: every pipeline of a task root, the AWS services they share, one event at a time.

A request is routed by the last segment of its path to the pipeline whose ``channels:`` name it
(``…/whatsapp`` and ``…/sms`` to ``twilio_inbound``, ``…/email`` to ``email_inbound``); a request no
pipeline serves is answered ``400`` JSON ``PARSING_ERROR`` here. Each event writes one INFO ``event``
log line and one EMF metrics document.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from engine.calls import CallLimits
from engine.clock import Clock, SystemClock
from engine.config import AppConfig, load_config
from engine.context import Services, bind_log_fields, log_fields
from engine.errors import ConfigError, Problem, StepFailure
from engine.http import HttpRequest, last_segment
from engine.runner import RunResult
from engine.secrets import SecretCache
from engine.stamp import STAMP_FILE, Stamp
from runtime import tracing
from runtime.apigateway import EventError, http_request, proxy_response, request_path
from runtime.aws import DynamoTables, SecretsManagerStore, SqsQueues, lazy_clients
from runtime.layout import PIPELINES_DIR, RULES_DIR, pipeline_files
from runtime.metrics import EmfMetrics

__all__ = ["Application", "Handled", "NoRegionConfigured", "live_services", "shared_limits"]

logger = logging.getLogger("runtime.app")

# Lambda init types whose init phase is off the request path: clients are created there, not on first use.
EAGER_INIT_TYPES = frozenset({"provisioned-concurrency", "snap-start"})
# Time kept back from the Lambda's remaining time to build and return the answer.
ANSWER_MARGIN_SECONDS = 0.5
UNROUTED = "PARSING_ERROR"


@dataclass(frozen=True)
class Handled:
    """One handled event: the pipeline that ran (None: no route), the run, and the response (None: raise)."""

    result: RunResult
    channel: str | None
    response: dict[str, Any] | None
    raised: Exception | None
    pipeline: str | None = None


class NoRegionConfigured(RuntimeError):
    """No AWS region in the environment or the AWS config files: no client could be created."""


def _session_with_region() -> Any:
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        raise NoRegionConfigured("no AWS region configured: set AWS_REGION and AWS_DEFAULT_REGION (Lambda sets both)")
    return session


def shared_limits(configs: Sequence[AppConfig]) -> CallLimits:
    """The call bounds every pipeline's calls keep: the tightest of each one's ``aws:`` block."""
    limits = [config.aws for config in configs] or [CallLimits()]
    return CallLimits(
        connect_timeout=min(limit.connect_timeout for limit in limits),
        read_timeout=min(limit.read_timeout for limit in limits),
        max_attempts=min(limit.max_attempts for limit in limits),
    )


def live_services(
    limits: CallLimits,
    clock: Clock | None = None,
    session: Any | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Services:
    """Boto3-backed services with ``limits``, their clients created once per container.

    Each client is created (and traced, when tracing is on) on its first use, or right away when the
    Lambda init phase is off the request path (``AWS_LAMBDA_INITIALIZATION_TYPE`` in ``EAGER_INIT_TYPES``).
    """
    environment = os.environ if env is None else env
    if session is None and not environment.get("AWS_DEFAULT_REGION"):
        # Lambda always sets the region; elsewhere a missing one must stop the cold start, not the first event
        # (whose error would answer 200 and lose the message).
        session = _session_with_region()
    clients = lazy_clients(limits, session, tracing.instrument)
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
        tracer=tracing.TRACER,
    )


def _routes(configs: Sequence[AppConfig]) -> dict[str, AppConfig]:
    routes: dict[str, AppConfig] = {}
    problems: list[Problem] = []
    for config in configs:
        for channel in config.channels:
            other = routes.get(channel)
            if other is not None:
                message = f"channel {channel!r} is already served by pipeline {other.name} ({other.files[0]})"
                problems.append(Problem(config.files[0], 1, 1, message))
            routes.setdefault(channel, config)
    if problems:
        raise ConfigError(problems)
    return routes


def load_pipelines(root: Path, env: Mapping[str, str], stamp: Stamp | None = None) -> list[AppConfig]:
    """Every pipeline under ``root/pipelines`` with its rule sets; ConfigError listing every problem."""
    files = pipeline_files(root / PIPELINES_DIR)
    if not files:
        raise ConfigError([Problem(str(root / PIPELINES_DIR), 1, 1, "no pipeline files (*.yaml) found")])
    configs: list[AppConfig] = []
    problems: list[Problem] = []
    for path in files:
        try:
            configs.append(load_config(path, root / RULES_DIR, env, stamp=stamp))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return configs


def _invocation_fields(request_id: Any, cold: bool) -> dict[str, str]:
    """The fields every log line of an invocation carries, named as Powertools for AWS Lambda names them."""
    fields = {"cold_start": "true" if cold else "false"}
    if request_id:
        fields["function_request_id"] = str(request_id)
    trace = os.environ.get("_X_AMZN_TRACE_ID", "")
    root = next((part[5:] for part in trace.split(";") if part.startswith("Root=")), "")
    if root:
        fields["xray_trace_id"] = root
    return fields


class Application:
    """Runs the pipeline an event is routed to and maps the result to the proxy response."""

    def __init__(self, configs: Sequence[AppConfig], services: Services, metrics: EmfMetrics | None = None) -> None:
        self.configs = tuple(configs)
        self.services = services
        self.metrics = metrics
        self._routes = _routes(self.configs)
        self._cold = True
        self._expected = " or ".join(f"…/{channel}" for channel in sorted(self._routes))

    @classmethod
    def from_root(cls, root: Path, env: Mapping[str, str] | None = None, *, session: Any | None = None) -> Application:
        """Load every pipeline under ``root`` and connect to AWS as boto3 is configured.

        ``session`` is the boto3 session the clients come from (a new one by default; see ``live_services`` for
        when each is created). As a Lambda container, it writes one EMF metrics document per event and, when the
        environment asks, records X-Ray subsegments.
        """
        environment = os.environ if env is None else env
        configs = load_pipelines(root, environment, Stamp.read(root / STAMP_FILE))
        tracing.configure(environment)
        services = live_services(shared_limits(configs), session=session, env=environment)
        return cls(configs, services, EmfMetrics.from_env(environment))

    def pipeline(self, name: str) -> AppConfig:
        """The loaded pipeline called ``name``; KeyError when there is none."""
        for config in self.configs:
            if config.name == name:
                return config
        raise KeyError(name)

    def route(self, channel: str | None) -> AppConfig | None:
        """The pipeline serving ``channel``, or None."""
        return self._routes.get(channel or "")

    def _unrouted(self, event: Any, reason: str | None) -> tuple[RunResult, dict[str, Any]]:
        where = last_segment(request_path(event))
        message = reason or (f"unknown webhook path …/{where}" if where else "the request has no path")
        error = StepFailure(UNROUTED, f"{message}; expected {self._expected}")
        body = json.dumps({"status": "error", "error_code": error.code, "message": error.message})
        response = {
            "statusCode": 400,
            "headers": {"Content-Type": "application/json"},
            "body": body,
            "isBase64Encoded": False,
        }
        return RunResult(error.code, error, {}), response

    def process(self, event: Any, context: Any = None, *, explain: bool = False) -> Handled:
        """Run one event; never raises (a transient fault is returned in ``raised``)."""
        started = perf_counter()
        request_id = getattr(context, "aws_request_id", None)
        bind_log_fields(_invocation_fields(request_id, self._cold), replace=True)
        self._cold = False
        try:
            request: HttpRequest | None = http_request(event)
            reason = None
        except EventError as exc:
            request, reason = None, str(exc)
        config = self.route(request.channel) if request is not None else None
        response: dict[str, Any] | None = None
        raised: Exception | None = None
        if config is None or request is None:
            result, response = self._unrouted(event, reason)
            name, channel = None, None
        else:
            budget = None
            remaining = getattr(context, "get_remaining_time_in_millis", None)
            if callable(remaining):
                budget = max(0.0, remaining() / 1000 - ANSWER_MARGIN_SECONDS)
            result = config.pipeline.run(request, self.services, time_budget=budget, explain=explain)
            name, channel = config.name, request.channel
            try:
                response = proxy_response(config.responses.respond(result, channel))
            except Exception as exc:  # noqa: BLE001 - RetryableFailure, or a policy gap: both raise out of the handler
                raised = exc
        self._record(name, result, response, perf_counter() - started)
        bind_log_fields({}, replace=True)
        return Handled(result, channel, response, raised, name)

    def _record(self, name: str | None, result: RunResult, response: dict[str, Any] | None, seconds: float) -> None:
        ms = round(seconds * 1000, 3)
        outcome, error_code, trace = result.outcome, result.error_code, result.trace
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "event",
                extra={
                    "pipeline": name,
                    "outcome": outcome,
                    "error_code": error_code,
                    # The AWS error code (or exception type) behind the error, never a value.
                    "error_cause": result.error.cause if result.error is not None else None,
                    "ms": ms,
                    "status": response["statusCode"] if response else "raised",
                    "steps": {entry.step: entry.status for entry in trace},
                },
            )
        if self.metrics is not None:
            self.metrics.record(name or "unrouted", outcome, error_code, ms=ms, trace=trace, properties=log_fields())

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        """The Lambda contract: return the proxy response, or raise for transient faults."""
        handled = self.process(event, context)
        if handled.raised is not None:
            raise handled.raised
        assert handled.response is not None
        return handled.response
