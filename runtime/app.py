"""The Lambda application: every pipeline of a task root, the AWS services they share, one event at a time.

A request is routed by the last segment of its path to the pipeline whose ``channels:`` name it
(``…/whatsapp`` and ``…/sms`` to ``twilio_inbound``, ``…/email`` to ``email_inbound``); a request no
pipeline serves is answered ``400`` JSON ``PARSING_ERROR`` here. Each event writes one INFO ``event``
log line (with, per rule set tried, the rule that decided, and the rules version) and one EMF metrics
document.

What decides a pipeline's events can change while the container runs (``deploy``): rules bundles from
S3 (``runtime.bundlewatch``, when ``RULES_BUCKET`` is set) replace the live configuration, and a shadow
candidate decides every event again after the live decision (``runtime.shadow``), within its own time
budget (``SHADOW_BUDGET_MS``, ``engine.timebox``): a candidate that runs out of time is cut off, and the
answer already built is returned as it is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

from engine import registry
from engine.calls import CallLimits
from engine.clock import Clock, SystemClock
from engine.config import AppConfig, load_config
from engine.context import Services, bind_log_fields, log_fields
from engine.errors import INTERNAL_ERROR, ConfigError, InternalError, Problem, StepFailure
from engine.http import HttpRequest, last_segment
from engine.rules import decided_rules
from engine.runner import RunResult
from engine.secrets import SecretCache
from engine.timebox import TimeboxExpired, TimeboxUnavailable, call_within
from runtime import tracing
from runtime.apigateway import EventError, http_request, proxy_response, request_path
from runtime.aws import DynamoTables, SecretsManagerStore, SqsQueues, lazy_clients, new_session
from runtime.layout import (
    NAMED_AT_MOST,
    NO_PIPELINES,
    PIPELINES_DIR,
    PIPELINES_HELD,
    RULES_DIR,
    RULES_HELD,
    Listing,
    listing,
    named_briefly,
    unread_named,
)
from runtime.metrics import EmfMetrics
from runtime.misroute import (
    INVALID_SIGNATURE,
    MISROUTED_METRIC,
    VALID,
    MisrouteCheck,
    message_sid,
    signature_recheck,
    unlisted,
)
from runtime.resources import check_resources
from runtime.stamp import STAMP_FILE, Stamp

if TYPE_CHECKING:
    from runtime.bundlewatch import BundleWatcher
    from runtime.capture import EventCapture, Pending
    from runtime.shadow import ShadowPlan

__all__ = [
    "CAPTURE_FAILURE_METRIC",
    "SIGNATURE_MISMATCH_METRIC",
    "UNROUTED_PIPELINE",
    "Application",
    "Deployed",
    "Handled",
    "InvalidAwsSetting",
    "NoRegionConfigured",
    "auth_headers",
    "check_aws_settings",
    "declared_auth_headers",
    "event_capture",
    "failed_authentication",
    "live_services",
    "parse_reason",
    "shadow_budget",
    "shared_limits",
]

logger = logging.getLogger("runtime.app")

# Lambda init types whose init phase is off the request path: clients are created there, not on first use.
EAGER_INIT_TYPES = frozenset({"provisioned-concurrency", "snap-start"})
# Time kept back from the Lambda's remaining time to build and return the answer.
ANSWER_MARGIN_SECONDS = 0.5
# The time a shadow candidate may take per event (SHADOW_BUDGET_MS), and the most it may be given: a
# candidate takes about 0.1 ms, and whatever it takes comes after the answer is built, before it is returned.
SHADOW_BUDGET_MS = 100.0
SHADOW_BUDGET_MAX_MS = 1000.0
UNROUTED = "PARSING_ERROR"
# The Pipeline dimension of an event no pipeline serves.
UNROUTED_PIPELINE = "unrouted"
# Counted by pipeline: an event not captured, or (once per pipeline at a cold start) capture off for a bad setting.
CAPTURE_FAILURE_METRIC = "CaptureFailures"
# Counted by pipeline: a request for a known tenant's conversation refused by a step that authenticates it (its
# key fetched, its signature checked). Twilio and SendGrid never retry the refusal: either a genuine message is
# lost (a rotated token or key, a wrong registered URL) or someone forged a request aimed at a real conversation.
SIGNATURE_MISMATCH_METRIC = "SignatureMismatches"


def failed_authentication(config: AppConfig, result: RunResult) -> bool:
    """Whether ``result`` ended ``INVALID_SIGNATURE`` in a step registered ``authenticates`` (``SignatureMismatches``).

    Such a step runs once the request has named a known conversation and its tenant's key was found: unlike a
    request refused before (no signature, a foreign Host), which anyone can send, it is a message lost for good or
    a forgery aimed at a real conversation.
    """
    if result.error_code != INVALID_SIGNATURE:
        return False
    ended = {entry.step for entry in result.trace if entry.status == INVALID_SIGNATURE}
    for planned in config.pipeline.steps():
        spec = registry.get(planned.uses)
        if planned.id in ended and spec is not None and spec.authenticates:
            return True
    return False


def declared_only(config: AppConfig, result: RunResult) -> RunResult:
    """``result``, or ``INTERNAL_ERROR`` when a step ended it with a code outside the pipeline's error catalogue.

    The catalogue (the steps' ``errors=``, the pipeline's ``errors:``) is what responses, ``--check`` and the
    template's alarms know: an undeclared code is a step's bug, which would otherwise be answered and counted unseen.
    """
    error = result.error
    if error is None or error.code in config.errors:
        return result
    step = next((entry.step for entry in reversed(result.trace) if entry.status == error.code), "?")
    logger.error(
        "step %s ended the event with error code %s, which no step of the pipeline nor its errors: declare",
        step,
        error.code,
        extra={"pipeline": config.name},
    )
    internal = InternalError(step, error, f"undeclared error code {error.code}")
    return dataclasses.replace(result, outcome=INTERNAL_ERROR, error=internal)


def parse_reason(result: RunResult, verdict: str | None = None) -> str | None:
    """Why a pipeline's parse step refused the request (``PARSING_ERROR``), else None.

    The parse steps' refusals are their own fixed texts (what is missing or malformed, a size limit), never the
    request's values: the event line carries them, as a request answered 200 and written nowhere must say why. A
    request no pipeline serves (no step ran) is left out: its message quotes the path the client chose. ``verdict``
    is the signature check of a misrouted message (``runtime.misroute``): ``signature valid``, or the code that
    ended it. A request refused for an unlisted Host (``runtime.misroute.unlisted``) has one too: the step's fixed
    text, which names no value, and its verdict.
    """
    unrouted = result.error_code == UNROUTED and bool(result.trace)
    if not (unrouted or unlisted(result)) or result.error is None:
        return None
    return f"{result.error.message} [{verdict}]" if verdict else result.error.message


@dataclass(frozen=True)
class Handled:
    """One handled event: the pipeline that ran (None: no route), the run, and the response (None: raise)."""

    result: RunResult
    channel: str | None
    response: dict[str, Any] | None
    raised: Exception | None
    pipeline: str | None = None
    # The signature check of a message refused as another channel's (``runtime.misroute``), else None.
    verdict: str | None = None


class Deployed(NamedTuple):
    """What decides a pipeline's events: the live configuration, and a shadow candidate with both sides' plans."""

    live: AppConfig
    shadow: AppConfig | None = None
    plans: tuple[ShadowPlan, ShadowPlan] | None = None


class NoRegionConfigured(RuntimeError):
    """No AWS region in the environment or the AWS config files: no client could be created."""


class InvalidAwsSetting(RuntimeError):
    """A region name or endpoint URL in the environment that botocore refuses: no client could be created."""


def check_aws_settings(session: Any | None, env: Mapping[str, str]) -> None:
    """Refuse, at the cold start, a region or endpoint URL that the clients (created on first use) would refuse.

    Otherwise every event would fail inside its first AWS step, answered as an internal error: a lost message.
    """
    from botocore.exceptions import InvalidRegionError
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url, validate_region_name

    region = session.region_name if session is not None else env.get("AWS_DEFAULT_REGION")
    try:
        validate_region_name(region)
    except InvalidRegionError:
        named = "AWS_DEFAULT_REGION" if env.get("AWS_DEFAULT_REGION") or not env.get("AWS_REGION") else "AWS_REGION"
        raise InvalidAwsSetting(f"{named} {region!r} is not a region name (e.g. eu-west-1)") from None
    endpoints = {name: url for name, url in env.items() if url and re.fullmatch(r"AWS_ENDPOINT_URL(_\w+)?", name)}
    for name, url in sorted(endpoints.items()):
        if not (is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)):
            raise InvalidAwsSetting(f"{name} {url!r} is not an endpoint URL (e.g. http://localhost:4566)")


def _session_with_region(env: Mapping[str, str]) -> Any:
    """A session (``runtime.aws.new_session``) that has a region; NoRegionConfigured when none is configured."""
    session = new_session(env)
    if not session.region_name:
        raise NoRegionConfigured("no AWS region configured: set AWS_REGION and AWS_DEFAULT_REGION (Lambda sets both)")
    return session


def _client_region(session: Any | None, env: Mapping[str, str]) -> str | None:
    """The region the clients are created in (``live_services``): the session's, else botocore's variable's."""
    if session is not None:
        return str(session.region_name or "") or None
    return env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None


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
        session = _session_with_region(environment)
    check_aws_settings(session, environment)
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


def say_unnamed_tables(configs: Sequence[AppConfig]) -> None:
    """One WARNING per table declared without a name: the steps that can do without it skip what needs it.

    (The steps that need it refused the configuration already.) In the shipped pipelines that is ``tables.replay``
    without ``REPLAY_TABLE_NAME``: no replay records, so a replayed request is handled as a re-delivery.
    """
    for config, logical in unnamed_tables(configs):
        logger.warning("pipeline %s: tables.%s has no name: what needs it is off", config.name, logical)


def unnamed_tables(configs: Sequence[AppConfig]) -> list[tuple[AppConfig, str]]:
    """Each pipeline's tables declared without a name (logical names, sorted)."""
    return [
        (config, logical)
        for config in configs
        for logical in sorted(n for n, table in config.tables.items() if not table)
    ]


def declared_auth_headers(specs: Iterable[registry.StepSpec | None]) -> dict[str, bool]:
    """The headers ``specs`` declare as authenticating a request, each with whether its signature expires.

    A header expires only when every step declaring it says so: the capture keeps any other as its digest only.
    """
    found: dict[str, bool] = {}
    for spec in filter(None, specs):
        for header in spec.auth_headers:
            found[header] = found.get(header, True) and spec.signature_expires
    return found


def auth_headers(configs: Sequence[AppConfig]) -> dict[str, bool]:
    """The request headers that authenticate requests to any of ``configs`` (``declared_auth_headers``)."""
    return declared_auth_headers(registry.get(step.uses) for config in configs for step in config.pipeline.steps())


def event_capture(
    configs: Sequence[AppConfig], env: Mapping[str, str], metrics: EmfMetrics | None = None
) -> EventCapture | None:
    """The capture the environment configures (None: off); a setting it cannot use turns it off, loudly.

    That is one ERROR line and, in ``metrics``, one ``CaptureFailures`` per pipeline: none of the container's events
    will be captured, and the template's ``CaptureFailuresAlarm`` watches that metric. Capturing is an operations
    aid: a mistake in its settings must not take the webhook down with it. The capture's modules are imported only
    when it is configured (a cold start without it does not pay for them).
    """
    if not env.get("CAPTURE_S3_URI", "").strip():
        return None
    from runtime.capture import EventCapture

    try:
        capture = EventCapture.from_env(env, auth_headers(configs))
        if capture is not None and capture.settings.mask == "none":
            _replay_records_for_whole_requests(configs)
        return capture
    except ValueError as exc:
        logger.error("event capture is off: %s", exc)
        if metrics is not None:
            for config in configs:
                metrics.count(config.name, CAPTURE_FAILURE_METRIC)
        return None


def _replay_records_for_whole_requests(configs: Sequence[AppConfig]) -> None:
    """ValueError, for ``CAPTURE_MASK=none``, when a pipeline has a table declared without a name.

    ``none`` keeps a signature that expires as sent (an email's): until it does, only the replay records refuse
    the captured request posted again, and an unnamed table (``tables.replay`` without ``REPLAY_TABLE_NAME``) is
    what turns them off. Fail closed: no whole requests captured where they could be posted again.
    """
    unnamed = [
        f"pipeline {config.name} declares tables.{logical} without a name"
        for config, logical in unnamed_tables(configs)
    ]
    if unnamed:
        raise ValueError(
            "CAPTURE_MASK=none keeps requests whole, which only replay records keep from being posted again, and "
            + "; ".join(unnamed)
            + " (set REPLAY_TABLE_NAME, or capture with CAPTURE_MASK=text or all)"
        )


def _time_to_answer(context: Any) -> float | None:
    """The invocation's remaining time less the answer's margin, in seconds (at least 0); None: no such clock."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return max(0.0, float(remaining()) / 1000 - ANSWER_MARGIN_SECONDS)


def shadow_budget(env: Mapping[str, str]) -> float:
    """The shadow candidate's time per event in seconds (``SHADOW_BUDGET_MS``); a bad value is the default, logged."""
    raw = env.get("SHADOW_BUDGET_MS", "").strip()
    if not raw:
        return SHADOW_BUDGET_MS / 1000
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= SHADOW_BUDGET_MAX_MS:
        logger.error(
            "SHADOW_BUDGET_MS must be a number of milliseconds above 0 and at most %g; using %g",
            SHADOW_BUDGET_MAX_MS,
            SHADOW_BUDGET_MS,
        )
        return SHADOW_BUDGET_MS / 1000
    return value / 1000


def _routes(configs: Sequence[AppConfig]) -> dict[str, str]:
    """Each channel's pipeline name; ConfigError when two files declare one name or serve one channel."""
    routes: dict[str, str] = {}
    clash = len({config.name for config in configs}) < len(configs)
    for config in configs:
        for channel in config.channels:
            clash = clash or channel in routes
            routes.setdefault(channel, config.name)
    if clash:
        # Only now are the files read again, to place each claim at its line as the check and the build do.
        from runtime.verify import pipeline_clashes

        files = [config.files[0] for config in configs]
        unplaced = Problem(files[0], 1, 1, "two pipeline files declare one pipeline name or serve one channel")
        raise ConfigError(pipeline_clashes([Path(file) for file in files]) or [unplaced])
    return routes


def load_pipelines(root: Path, env: Mapping[str, str], stamp: Stamp | None = None) -> list[AppConfig]:
    """Every pipeline under ``root/pipelines`` with its rule sets; ConfigError listing every problem.

    What ``pipelines/`` and ``rules/`` hold that is not read is said first (``say_unread``), loaded or not.
    """
    pipelines = listing(root / PIPELINES_DIR)
    say_unread(root, pipelines)
    files = pipelines.read
    if not files:
        raise ConfigError([Problem(str(root / PIPELINES_DIR), 1, 1, NO_PIPELINES)])
    return load_configs(files, root / RULES_DIR, env, stamp)


def say_unread(root: Path, pipelines: Listing) -> None:
    """One WARNING line naming each entry of ``rules/`` and ``pipelines/`` the cold start does not read, with the fix.

    It names the first ``NAMED_AT_MOST``, then how many more, so that the line stays one CloudWatch Logs event.
    ``pipelines`` is the listing the pipeline files come from; ``rules/`` is listed once, and no file is read: the
    line names entries, never what they hold (``runtime.layout``; ``pipeline-dryrun --check`` warns of the same).
    """
    named = {
        **unread_named(RULES_DIR.name, listing(root / RULES_DIR).unread, RULES_HELD),
        **unread_named(PIPELINES_DIR.name, pipelines.unread, PIPELINES_HELD),
    }
    if named:
        names, problems = named_briefly(named)
        every = ", and names every one" if len(named) > NAMED_AT_MOST else ""
        logger.warning(
            f"not read at the cold start, so what they hold never runs: {names}; rename or move each as problems "
            f"says (pipeline-dryrun --check warns of the same{every})",
            extra={"problems": problems},
        )


def load_configs(
    files: Sequence[Path], rules_dir: Path, env: Mapping[str, str], stamp: Stamp | None = None
) -> list[AppConfig]:
    """Each pipeline file with the rule sets of ``rules_dir``; ConfigError listing every problem once.

    A rules file shared by several pipelines has its problems found with each: they are reported once.
    """
    configs: list[AppConfig] = []
    problems: list[Problem] = []
    for path in files:
        try:
            configs.append(load_config(path, rules_dir, env, stamp=stamp))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return configs


def _invocation_fields(request_id: Any, cold: bool) -> dict[str, str]:
    """The fields every log line of an invocation carries, named as Powertools for AWS Lambda names them."""
    fields = {"cold_start": "true" if cold else "false"}
    if request_id:
        fields["function_request_id"] = str(request_id)
    for part in os.environ.get("_X_AMZN_TRACE_ID", "").split(";"):
        if part.startswith("Root="):
            if part[5:]:
                fields["xray_trace_id"] = part[5:]
            break
    return fields


class Application:
    """Runs the pipeline an event is routed to and maps the result to the proxy response."""

    def __init__(
        self,
        configs: Sequence[AppConfig],
        services: Services,
        metrics: EmfMetrics | None = None,
        *,
        by_pipeline: Mapping[str, Services] | None = None,
        capture: EventCapture | None = None,
        shadow_seconds: float = SHADOW_BUDGET_MS / 1000,
    ) -> None:
        """``services`` serve every pipeline, except those ``by_pipeline`` gives services of their own.

        ``shadow_seconds`` is the time a shadow candidate may take per event (less when the invocation has less).
        """
        overrides = by_pipeline or {}
        # Each pipeline's services, by pipeline name; pipelines with the same call bounds share one instance.
        self._services = {config.name: overrides.get(config.name, services) for config in configs}
        self.metrics = metrics
        self.capture = capture
        self._routes = _routes(configs)
        self._deployed = {config.name: Deployed(config) for config in configs}
        self._cold = True
        self._expected = " or ".join(f"…/{channel}" for channel in sorted(self._routes))
        self.watcher: BundleWatcher | None = None
        self.shadow_seconds = shadow_seconds
        self._shadow_unbounded: str | None = None
        self._misroutes = MisrouteCheck()

    @property
    def services(self) -> Services:
        """The services of the first pipeline: every pipeline's, unless ``by_pipeline`` gave some their own."""
        return next(iter(self._services.values()))

    @property
    def configs(self) -> tuple[AppConfig, ...]:
        """The live configuration of every pipeline."""
        return tuple(deployed.live for deployed in self._deployed.values())

    def deployed(self, name: str) -> Deployed:
        """What decides pipeline ``name``'s events now; KeyError when there is no such pipeline."""
        return self._deployed[name]

    def deploy(self, live: AppConfig, shadow: AppConfig | None = None) -> None:
        """Make ``live`` decide its pipeline's events from the next event on, ``shadow`` deciding them again.

        ``live`` must be built with ``shadow``'s rule sets (``load_config(..., shadow=...)``) so that its
        reads cover the candidate's. A pipeline keeps its name and channels: those are the code's to change.
        """
        current = self._deployed[live.name].live
        for config in (live, *([shadow] if shadow else [])):
            if config.name != live.name or set(config.channels) != set(current.channels):
                raise ValueError(f"a configuration of pipeline {live.name} must keep its channels {current.channels}")
        plans = None
        if shadow is not None:
            from runtime.shadow import plan

            plans = (plan(live), plan(shadow))
        self._deployed = {**self._deployed, live.name: Deployed(live, shadow, plans)}

    @classmethod
    def from_root(cls, root: Path, env: Mapping[str, str] | None = None, *, session: Any | None = None) -> Application:
        """Load every pipeline under ``root`` and connect to AWS as boto3 is configured.

        ``session`` is the boto3 session the clients come from (a new one by default; see ``live_services`` for
        when each is created). As a Lambda container, it writes one EMF metrics document per event and, when the
        environment asks, records X-Ray subsegments and captures events to S3 (``runtime.capture``).
        """
        environment = os.environ if env is None else env
        configs = load_pipelines(root, environment, Stamp.read(root / STAMP_FILE))
        say_unnamed_tables(configs)
        tracing.configure(environment)
        # Pipelines with the same call bounds (the usual case) share one set of clients and one secret cache.
        shared: dict[CallLimits, Services] = {}
        for config in configs:
            if config.aws not in shared:
                shared[config.aws] = live_services(config.aws, session=session, env=environment)
        by_pipeline = {config.name: shared[config.aws] for config in configs}
        check_resources(configs, _client_region(session, environment))
        metrics = EmfMetrics.from_env(environment)
        application = cls(
            configs,
            by_pipeline[configs[0].name],
            metrics,
            by_pipeline=by_pipeline,
            capture=event_capture(configs, environment, metrics),
            shadow_seconds=shadow_budget(environment),
        )
        limits = shared_limits(configs)
        if environment.get("RULES_BUCKET", "").strip():
            from runtime.bundlewatch import BundleWatcher

            application.watcher = BundleWatcher.from_env(application, root, environment, limits)
            application.watcher.load()
        return application

    def pipeline(self, name: str) -> AppConfig:
        """The live configuration of pipeline ``name``; KeyError when there is none."""
        return self._deployed[name].live

    def replace_services(self, **changes: Any) -> None:
        """Change the same fields of every pipeline's services (a clock for tests, say); sharing is kept."""
        replaced: dict[int, Services] = {}
        for name, services in self._services.items():
            if id(services) not in replaced:
                replaced[id(services)] = dataclasses.replace(services, **changes)
            self._services[name] = replaced[id(services)]

    def services_for(self, name: str) -> Services:
        """The services pipeline ``name`` runs with; KeyError when there is no such pipeline."""
        return self._services[name]

    def route(self, channel: str | None) -> AppConfig | None:
        """The live configuration of the pipeline serving ``channel``, or None."""
        name = self._routes.get(channel or "")
        return self._deployed[name].live if name is not None else None

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
        pending = self.capture.start(event) if self.capture is not None else None
        try:
            request: HttpRequest | None = http_request(event)
            reason = None
        except EventError as exc:
            request, reason = None, str(exc)
        channel = request.channel if request is not None else None
        name = self._routes.get(channel) if channel is not None else None
        deployed = self._deployed[name] if name is not None else None
        response: dict[str, Any] | None = None
        raised: Exception | None = None
        counts: dict[str, int] | None = None
        candidate: ShadowPlan | None = None
        verdict: str | None = None
        checked_sid: str | None = None
        if deployed is None or request is None:
            result, response = self._unrouted(event, reason)
            config, channel = None, None
        else:
            config = deployed.live
            budget = _time_to_answer(context)
            result = config.pipeline.run(request, self._services[config.name], time_budget=budget, explain=explain)
            if result.error is not None:
                result = declared_only(config, result)
            try:
                response = proxy_response(config.responses.respond(result, channel))
            except Exception as exc:  # noqa: BLE001 - RetryableFailure, or a policy gap: both raise out of the handler
                raised = exc
            recheck = signature_recheck(result)
            if recheck is not None:
                # After the answer is built, which the check never changes: reads only, within the invocation's time.
                services = self._services[config.name]
                verdict, checked_sid = self._misroutes.verdict(
                    config, request, services, _time_to_answer(context), recheck
                )
            if deployed.plans is not None:
                counts = self._shadow(config.name, deployed.plans, result, self._shadow_time(context))
                candidate = deployed.plans[1] if counts is not None else None
        self._record(config, result, response, perf_counter() - started, counts, candidate, verdict, checked_sid)
        if pending is not None:
            self._captured(name, pending, _time_to_answer(context))
        bind_log_fields({}, replace=True)
        return Handled(result, channel, response, raised, name, verdict)

    def _captured(self, name: str | None, pending: Pending | str, time_left: float | None) -> None:
        """Wait (bounded) for the event's capture; a failure is one WARNING line and one metric.

        The wait is ``CAPTURE_WAIT_MS``, never more than ``time_left`` (``_time_to_answer``; None: unknown).
        """
        assert self.capture is not None
        wait = self.capture.settings.wait_seconds
        if time_left is not None:
            wait = min(wait, time_left)
        failure = pending if isinstance(pending, str) else pending.wait(wait)
        if failure is None:
            return
        logger.warning("event capture failed: %s", failure, extra={"pipeline": name})
        if self.metrics is not None:
            self.metrics.count(name or UNROUTED_PIPELINE, CAPTURE_FAILURE_METRIC, properties=log_fields())

    def _shadow_time(self, context: Any) -> float:
        """The shadow's time for this event: its budget, never past the invocation's time less the answer's margin."""
        time_left = _time_to_answer(context)
        return self.shadow_seconds if time_left is None else min(self.shadow_seconds, time_left)

    def _shadow(
        self, name: str, plans: tuple[ShadowPlan, ShadowPlan], result: RunResult, seconds: float
    ) -> dict[str, int] | None:
        """The shadow candidate's verdict on the event, as metrics (a difference or a timeout is also logged).

        Where its time cannot be bounded (not the main thread, as a test's worker thread, or another timer
        armed), the candidate is not run: the first such event of a container (or reason) says so
        in a WARNING line.
        """
        from runtime.shadow import FAILED, TIMED_OUT, compare, log_mismatch, log_timeout, reaches

        if not reaches(plans[1], result):
            return None
        try:
            comparison = call_within(seconds, lambda: compare(*plans, result))
        except TimeboxExpired:
            log_timeout(name, plans[1], round(max(seconds, 0.0) * 1000, 3))
            return dict(TIMED_OUT)
        except TimeboxUnavailable as exc:
            if self._shadow_unbounded != str(exc):
                self._shadow_unbounded = str(exc)
                logger.warning(
                    "shadow evaluation skipped, its time cannot be bounded: %s", exc, extra={"pipeline": name}
                )
            return None
        except Exception:  # the candidate never changes what the live run answered
            logger.exception("shadow evaluation failed", extra={"pipeline": name})
            return dict(FAILED)
        if comparison is None:
            return None
        if comparison.differing:
            log_mismatch(name, *plans, comparison)
        return comparison.counts

    def _record(
        self,
        config: AppConfig | None,
        result: RunResult,
        response: dict[str, Any] | None,
        seconds: float,
        counts: dict[str, int] | None = None,
        candidate: ShadowPlan | None = None,
        verdict: str | None = None,
        checked_sid: str | None = None,
    ) -> None:
        """The event's log line and metrics document.

        ``candidate`` is the shadow whose verdict ``counts`` hold; ``verdict`` the signature check of a misrouted
        message (``runtime.misroute``), and ``checked_sid`` the ``MessageSid`` its valid signature covers (a request
        refused before its form was read names none of its own).
        """
        ms = round(seconds * 1000, 3)
        outcome, error_code, trace = result.outcome, result.error_code, result.trace
        name = config.name if config is not None else None
        version = config.version if config is not None else None
        source = config.source if config is not None else None
        if logger.isEnabledFor(logging.INFO):
            route = result.doc.get("route")
            logger.info(
                "event",
                extra={
                    "pipeline": name,
                    "outcome": outcome,
                    "error_code": error_code,
                    # The AWS error code (or exception type, or a step's reason naming no value) behind the error,
                    # never a value.
                    "error_cause": result.error.cause if result.error is not None else None,
                    "reason": parse_reason(result, verdict),
                    # The message (its stage row's key): what on-call replays a lost one by.
                    "message_sid": message_sid(result.doc) or checked_sid,
                    "ms": ms,
                    "status": response["statusCode"] if response else "raised",
                    "steps": {entry.step: entry.status for entry in trace},
                    "target": route.get("target") if isinstance(route, dict) else None,
                    "rules": decided_rules(result.rules, result.error),
                    "rules_version": version,
                    "rules_source": source or None,
                },
            )
        if self.metrics is not None:
            if config is not None and result.error is not None and failed_authentication(config, result):
                counts = {**(counts or {}), SIGNATURE_MISMATCH_METRIC: 1}
            if verdict == VALID:
                counts = {**(counts or {}), MISROUTED_METRIC: 1}
            properties = log_fields()
            if version:
                properties = {**properties, "RulesVersion": version, "RulesSource": source or ""}
            if candidate is not None:
                properties = {**properties, "CandidateVersion": candidate.version, "CandidateSource": candidate.source}
            self.metrics.record(
                name or UNROUTED_PIPELINE, outcome, error_code, ms=ms, trace=trace, properties=properties, counts=counts
            )

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        """The Lambda contract: return the proxy response, or raise for transient faults.

        With rules bundles, a check for a new deployment starts in the background when one is due.
        """
        if self.watcher is not None:
            self.watcher.poke()
        handled = self.process(event, context)
        if handled.raised is not None:
            raise handled.raised
        assert handled.response is not None
        return handled.response
