"""Rules bundles from S3 in a running Lambda: read at cold start, re-checked every N seconds off the request path.

Turned on by ``RULES_BUCKET``; ``RULES_PREFIX`` (default ``rules/``) and ``RULES_REFRESH_SECONDS``
(default 60) complete it. The layout and formats are ``runtime.bundles``'.

- At cold start, ``load`` reads each pipeline's deployment document, and the bundles it names, before
  the first event (bounded: past ``COLD_START_BUDGET_SECONDS`` the rest waits for the first check).
- As an invocation starts, ``poke`` starts one background check when N seconds have passed since the
  last one. The check is a conditional GET of each deployment document (``If-None-Match`` its ETag): an
  unchanged deployment costs a warm container one 304 answer every N seconds, nothing else. A changed
  one names bundles, read once per container (they are immutable). No request ever waits for a check;
  one still running when Lambda freezes the container carries on at the next invocation, and what it
  deploys decides from the event after it has finished.
- A bundle is verified exactly as ``pipeline-dryrun --check`` refuses a configuration (``runtime.verify``:
  schema, expressions, targets, error codes, inline tests), in the deployed environment, before it
  decides anything. One that cannot be read or is refused changes nothing: the configuration in use
  (the last known good) keeps deciding, one ERROR line names the bundle and every problem, and the
  ``RulesBundleErrors`` metric counts it. A refused bundle is not read again.
- A deployment's ``shadow`` bundle decides every event again after the live decision
  (``runtime.shadow``); the live configuration is rebuilt with its rule sets so that one read serves both.
- Without a deployment document the rules packaged beside the handler decide, as without a bucket.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from engine.calls import CallLimits
from engine.config import AppConfig
from engine.errors import Problem
from engine.rules import RuleSet
from runtime.bundles import Bundle, BundleError, Deployment, bundle_key, deployment_key
from runtime.layout import PIPELINES_DIR, RULES_DIR, pipeline_files
from runtime.verify import verify

if TYPE_CHECKING:
    from runtime.app import Application

__all__ = [
    "COLD_START_BUDGET_SECONDS",
    "DEFAULT_PREFIX",
    "DEFAULT_REFRESH_SECONDS",
    "BundleWatcher",
    "Source",
]

logger = logging.getLogger("runtime.bundlewatch")

DEFAULT_PREFIX = "rules/"
DEFAULT_REFRESH_SECONDS = 60.0
COLD_START_BUDGET_SECONDS = 3.0
ERROR_METRIC = "RulesBundleErrors"


@dataclass(frozen=True)
class Source:
    """Where a configuration's files are: its pipeline file and its rules directory."""

    pipeline: Path
    rules: Path


@dataclass
class _State:
    """One pipeline's deployment as this container applied it."""

    packaged: Source
    etag: str | None = None
    live: str | None = None
    shadow: str | None = None
    revision: int = 0
    refused: dict[str, int] = field(default_factory=dict)


class _Unreadable(Exception):
    """S3 did not give the object; ``missing`` when it answered that there is none (or that it may not say)."""

    def __init__(self, code: str, *, missing: bool = False) -> None:
        super().__init__(code)
        self.missing = missing


# Without s3:ListBucket (least privilege), S3 answers a GET of a missing key with AccessDenied.
_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "AccessDenied", "403"})


def _code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return str(exc.response.get("Error", {}).get("Code", "Unknown")), status


class BundleWatcher:
    """Keeps each pipeline of ``app`` deciding with the rules bundles its deployment document names."""

    def __init__(
        self,
        app: Application,
        client: Callable[[], Any],
        *,
        bucket: str,
        prefix: str,
        packaged: Mapping[str, Source],
        env: Mapping[str, str],
        interval: float = DEFAULT_REFRESH_SECONDS,
        workdir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app = app
        self._make_client = client
        self._client: Any = None
        self.bucket = bucket
        self.prefix = prefix
        self._env = env
        self.interval = interval
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="rules-bundles-"))
        self._clock = clock
        self._states = {name: _State(source) for name, source in packaged.items()}
        self._fetched: dict[tuple[str, str], Source] = {}
        self._due = 0.0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls,
        app: Application,
        root: Path,
        env: Mapping[str, str],
        limits: CallLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> BundleWatcher:
        """The watcher ``RULES_BUCKET``, ``RULES_PREFIX`` and ``RULES_REFRESH_SECONDS`` describe."""
        files = pipeline_files(root / PIPELINES_DIR)
        packaged = {
            config.name: Source(path, root / RULES_DIR) for config, path in zip(app.configs, files, strict=True)
        }
        prefix = env.get("RULES_PREFIX", DEFAULT_PREFIX).strip()
        try:
            interval = max(1.0, float(env.get("RULES_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS)))
        except ValueError:
            interval = DEFAULT_REFRESH_SECONDS

        def client() -> Any:
            import boto3

            from runtime.aws import _retry_after_cap, botocore_config, make_client

            cap = _retry_after_cap(round(limits.read_timeout * 1000))
            return make_client("s3", boto3.session.Session(), botocore_config(limits), cap)

        bucket = env["RULES_BUCKET"].strip()
        return cls(
            app, client, bucket=bucket, prefix=prefix, packaged=packaged, env=env, interval=interval, clock=clock
        )

    def load(self) -> None:
        """Apply every pipeline's deployment now (the cold start), within ``COLD_START_BUDGET_SECONDS``."""
        started = self._clock()
        with self._lock:
            for name in self._states:
                if self._clock() - started > COLD_START_BUDGET_SECONDS:
                    logger.warning("rules bundles: cold start budget spent; %s is checked at the next refresh", name)
                    continue
                self._check(name)
        self._due = self._clock() + self.interval

    def poke(self) -> None:
        """Start a background check when one is due and none is running (called as each invocation starts)."""
        if self._clock() < self._due or (self._thread is not None and self._thread.is_alive()):
            return
        self._due = self._clock() + self.interval
        self._thread = threading.Thread(target=self.check, name="rules-bundles", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background check to end; False when it still runs after ``timeout`` seconds."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def check(self) -> None:
        """Check every pipeline's deployment once, and apply what changed."""
        with self._lock:
            for name in self._states:
                try:
                    self._check(name)
                except Exception:  # a check must never take a container down; the next one tries again
                    logger.exception("rules bundles: checking %s failed", name)

    def s3(self) -> Any:
        """The S3 client, created on first use."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _get(self, key: str, etag: str | None = None) -> tuple[bytes, str] | None:
        """The object's bytes and ETag; None when it is unchanged since ``etag``; _Unreadable otherwise."""
        try:
            answer = self.s3().get_object(Bucket=self.bucket, Key=key, **({"IfNoneMatch": etag} if etag else {}))
            return answer["Body"].read(), str(answer.get("ETag", ""))
        except botocore.exceptions.ClientError as exc:
            code, status = _code(exc)
            if status == 304 or code in ("304", "NotModified"):
                return None
            raise _Unreadable(code, missing=code in _MISSING or status in (403, 404)) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _Unreadable(type(exc).__name__) from None

    def _check(self, name: str) -> None:
        state = self._states[name]
        key = deployment_key(self.prefix, name)
        try:
            found = self._get(key, state.etag)
        except _Unreadable as exc:
            if exc.missing and state.etag is None:
                return  # no deployment yet: the packaged rules decide
            self._error(
                name, f"the deployment s3://{self.bucket}/{key} cannot be read ({exc}); the rules in use keep deciding"
            )
            return
        if found is None:
            return
        body, etag = found
        try:
            deployment = Deployment.from_json(body)
        except BundleError as exc:
            self._error(name, f"the deployment s3://{self.bucket}/{key} is refused: {exc}")
            state.etag = etag
            return
        if self._apply(name, state, deployment):
            state.etag = etag

    def _apply(self, name: str, state: _State, deployment: Deployment) -> bool:
        """Deploy what ``deployment`` names, keeping what is in use for anything unusable; False to try again."""
        settled = True
        live_id: str | None = state.live
        wanted = deployment.live
        if wanted != state.live:
            usable, settled = self._usable(name, wanted, deployment.revision)
            live_id = wanted if usable else state.live
        candidate = None
        shadow_id = deployment.shadow if deployment.shadow != live_id else None
        if shadow_id is not None:
            usable, ready = self._usable(name, shadow_id, deployment.revision)
            settled = settled and ready
            candidate = self._build(name, shadow_id, deployment.revision, "shadow") if usable else None
        rulesets = candidate.rulesets if candidate is not None else None
        live = self._build(name, live_id, deployment.revision if live_id == wanted else state.revision, "", rulesets)
        if live is None:  # the known-good configuration no longer loads (say, the environment changed)
            return settled
        self._app.deploy(live, candidate)
        shadowed_id = shadow_id if candidate is not None else None
        changed = (state.live, state.shadow) != (live_id, shadowed_id)
        state.live, state.shadow = live_id, shadowed_id
        state.revision = deployment.revision if live_id == wanted else state.revision
        if changed:
            shadowed = {"version": candidate.version, "source": candidate.source} if candidate else None
            in_shadow = f", version {candidate.version} in shadow" if candidate else ""
            logger.info(
                f"rules of {name}: version {live.version} decides{in_shadow}",
                extra={
                    "pipeline": name,
                    "rules_version": live.version,
                    "rules_source": live.source or None,
                    "revision": deployment.revision,
                    "candidate": shadowed,
                },
            )
        return settled

    def _usable(self, name: str, bundle_id: str | None, revision: int) -> tuple[bool, bool]:
        """Whether the bundle can decide (read and verified), and whether that answer is final."""
        state = self._states[name]
        if bundle_id is None:
            return True, True
        if bundle_id in state.refused:
            return False, True
        try:
            source = self._source(name, bundle_id)
        except _Unreadable as exc:
            self._error(name, f"rules bundle {bundle_id} cannot be read ({exc}); the rules in use keep deciding")
            return False, False
        except BundleError as exc:
            state.refused[bundle_id] = revision
            self._error(name, f"rules bundle {bundle_id} is refused: {exc}; the rules in use keep deciding")
            return False, True
        verification = verify(source.pipeline, source.rules, self._env)
        if verification.errors:
            state.refused[bundle_id] = revision
            shown = [self._shown(problem, name, bundle_id) for problem in verification.errors]
            message = (
                f"rules bundle {bundle_id} of {name} (revision {revision}) is refused, {len(shown)} problem(s); "
                "the rules in use keep deciding"
            )
            self._error(name, message, bundle_id, shown)
            return False, True
        return True, True

    def _source(self, name: str, bundle_id: str) -> Source:
        """The bundle's files, read from S3 once per container and written under the work directory."""
        known = self._fetched.get((name, bundle_id))
        if known is not None:
            return known
        found = self._get(bundle_key(self.prefix, name, bundle_id))
        assert found is not None
        bundle = Bundle.from_json(found[0], bundle_id)
        if bundle.pipeline != name:
            raise BundleError(f"it is a bundle of pipeline {bundle.pipeline!r}, not of {name!r}")
        root = self._workdir / name / bundle_id
        bundle.write(root)
        packaged = self._states[name].packaged
        pipeline = root / (bundle.pipeline_file or f"pipelines/{packaged.pipeline.name}")
        if bundle.pipeline_file is None:
            pipeline.write_text(packaged.pipeline.read_text(encoding="utf-8"), encoding="utf-8")
        source = Source(pipeline, root / "rules")
        self._fetched[(name, bundle_id)] = source
        return source

    def _build(
        self, name: str, bundle_id: str | None, revision: int, role: str, shadow: Mapping[str, RuleSet] | None = None
    ) -> AppConfig | None:
        """The verified configuration of a usable bundle (or of the packaged rules)."""
        state = self._states[name]
        source = state.packaged if bundle_id is None else self._fetched[(name, bundle_id)]
        verification = verify(source.pipeline, source.rules, self._env, shadow=shadow)
        config = verification.config
        if config is None:
            self._error(name, f"the rules of {name} no longer load: {verification.errors[0]}")
            return None
        if bundle_id is None:
            return config
        label = f"bundle {bundle_id}, revision {revision}" + (f", {role}" if role else "")
        return config._replace(source=label)

    def _shown(self, problem: Problem, name: str, bundle_id: str) -> str:
        """The problem, naming the bundle's files as the bundle does (not where this container wrote them)."""
        return str(problem).replace(f"{self._workdir / name / bundle_id}/", "")

    def _error(self, name: str, message: str, bundle_id: str | None = None, problems: list[str] | None = None) -> None:
        """One ERROR line, and the metric counting it."""
        live = self._app.pipeline(name)
        logger.error(
            message,
            extra={
                "pipeline": name,
                "bundle": bundle_id,
                "problems": problems,
                "rules_version": live.version,
                "rules_source": live.source or None,
            },
        )
        if self._app.metrics is not None:
            self._app.metrics.count(name, ERROR_METRIC)
