"""Rules bundles from S3 in a running Lambda: read at cold start, re-checked every N seconds off the request path.

Turned on by ``RULES_BUCKET``; ``RULES_PREFIX`` (default ``rules/``) and ``RULES_REFRESH_SECONDS``
(default 60) complete it. The layout and formats are ``runtime.bundles``'.

- At cold start, ``load`` reads each pipeline's deployment document, and the bundles it names, before
  the first event (bounded: past ``COLD_START_BUDGET_SECONDS`` the rest waits for the first check).
  A check that could not read what it needed (S3 failing, a bundle missing) is tried again after
  ``RETRY_SECONDS``, then twice as long after each failure, up to N: a new container that could not
  read the deployment is not left deciding with the packaged rules for N seconds.
- As an invocation starts, ``poke`` starts one background check when N seconds have passed since the
  last one. The check is a conditional GET of each deployment document (``If-None-Match`` its ETag): an
  unchanged deployment costs a warm container one 304 answer every N seconds, nothing else. A changed
  one names bundles, read once per container (they are immutable). No request ever waits for a check;
  one still running when Lambda freezes the container carries on at the next invocation, and what it
  deploys decides from the event after it has finished.
- A bundle is verified exactly as ``pipeline-dryrun --check`` refuses a configuration (``runtime.verify``:
  schema, expressions, targets, error codes, inline tests), in the deployed environment, before it
  decides anything, and its pipeline file (when it carries one) must keep the pipeline's name, channels
  and steps (which run, in order, under which ``when``) as deployed with the code
  (``runtime.verify.code_owned``). One that cannot be read or is refused changes nothing: the
  configuration in use (the last known good) keeps deciding, one ERROR line names the bundle, every
  problem and what decides instead, and the ``RulesBundleErrors`` metric counts it. A refused bundle is
  not read again, unless the object under its key was not that bundle (cut short, edited, another pipeline's):
  each check asks whether it was replaced. A container that has applied nothing yet (a new one) falls back
  to the newest earlier live bundle of the deployment's history that verifies, as the warm containers keep
  it, so that the fleet decides one way (never one a rollback undid). Anything unexpected while checking is an
  ERROR line and a count too: a check never stops a cold start or a container.
- A deployment's ``shadow`` bundle decides every event again after the live decision
  (``runtime.shadow``); the live configuration is rebuilt with its rule sets so that one read serves both.
- Without a deployment document the rules packaged beside the handler decide, as without a bucket.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import botocore.exceptions

from engine.calls import CallLimits
from engine.config import AppConfig
from engine.errors import Problem
from engine.rules import RuleSet
from runtime.aws import error_code
from runtime.bundles import MAX_BYTES, Bundle, BundleError, Deployment, bundle_key, deployment_key, size_error
from runtime.layout import PIPELINES_DIR, RULES_DIR, RULES_HELD, Unread, named_briefly, pipeline_files, unread_named
from runtime.verify import CodeOutline, code_outline, code_owned, verify

if TYPE_CHECKING:
    from runtime.app import Application

__all__ = [
    "COLD_START_BUDGET_SECONDS",
    "DEFAULT_PREFIX",
    "DEFAULT_REFRESH_SECONDS",
    "RETRY_SECONDS",
    "BundleWatcher",
    "Source",
    "refresh_interval",
]

logger = logging.getLogger("runtime.bundlewatch")

DEFAULT_PREFIX = "rules/"
DEFAULT_REFRESH_SECONDS = 60.0
COLD_START_BUDGET_SECONDS = 3.0
# The first delay before a check again after one that could not read what it needed (then doubled, up to the interval).
RETRY_SECONDS = 5.0
ERROR_METRIC = "RulesBundleErrors"


@dataclass(frozen=True)
class Source:
    """Where a configuration's files are: its pipeline file and its rules directory."""

    pipeline: Path
    rules: Path


class _Refusal(NamedTuple):
    """Why a bundle cannot decide, as its ERROR line says it (what decides instead is added once deployed).

    ``subject`` names the bundle, ``verdict`` says what is wrong with it; ``revision``, when the line names the
    deployment that refused it; ``etag``, when the object under the bundle's key is not that bundle (a replacement
    is read).
    """

    subject: str
    verdict: str
    bundle: str | None = None
    problems: list[str] | None = None
    revision: int | None = None
    etag: str | None = None

    @property
    def message(self) -> str:
        """The ERROR line's text."""
        deployment = f" (revision {self.revision})" if self.revision is not None else ""
        return f"{self.subject}{deployment} {self.verdict}"

    def again(self, now: int) -> _Refusal:
        """The refusal said again, for the deployment at revision ``now``."""
        return self if self.revision is None else self._replace(revision=now)


@dataclass
class _State:
    """One pipeline's deployment as this container applied it."""

    packaged: Source
    etag: str | None = None
    live: str | None = None
    shadow: str | None = None
    revision: int = 0
    # Bundles refused, never read again: the deployment revision that last named them, and why.
    refused: dict[str, tuple[int, _Refusal]] = field(default_factory=dict)
    applied: bool = False
    outline: CodeOutline | None = None


class _TooLarge(BundleError):
    """S3 holds an object larger than a bundle may be (``runtime.bundles.MAX_BYTES``); ``etag`` is its ETag."""

    def __init__(self, message: str, etag: str) -> None:
        super().__init__(message)
        self.etag = etag


class _NotTheBundle(BundleError):
    """The object under a bundle's key is not that bundle of this pipeline (cut short, edited, another pipeline's)."""

    def __init__(self, message: str, etag: str) -> None:
        super().__init__(message)
        self.etag = etag


class _Unreadable(Exception):
    """S3 did not give the object; ``missing`` when it answered that there is none."""

    def __init__(self, code: str, *, missing: bool = False) -> None:
        super().__init__(code)
        self.missing = missing


# What S3 answers for a key it does not have, to a role with s3:ListBucket (without it, AccessDenied: that is not
# taken for "none", or a deployment the function may not read would leave the packaged rules deciding in silence).
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


def _code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return error_code(exc) or "Unknown", status


def refresh_interval(env: Mapping[str, str]) -> float:
    """``RULES_REFRESH_SECONDS``, at least 1; what is no number of seconds is the default, with an ERROR line."""
    raw = env.get("RULES_REFRESH_SECONDS", "").strip()
    if not raw:
        return DEFAULT_REFRESH_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        logger.error(
            "RULES_REFRESH_SECONDS must be a number of seconds (at least 1); %r is not: using %g",
            raw,
            DEFAULT_REFRESH_SECONDS,
        )
        return DEFAULT_REFRESH_SECONDS
    return max(1.0, seconds)


def _made(deployment: Deployment, role: str, bundle_id: str | None, default: int) -> int:
    """The revision that made ``bundle_id`` the deployment's ``role``, as its label names it (``Deployment.made``).

    ``default`` when the history kept names it nowhere (or records no revision number).
    """
    made = deployment.made(role, bundle_id)
    revision = made.get("revision") if made is not None else None
    return revision if isinstance(revision, int) and not isinstance(revision, bool) else default


def _say_unread(name: str, bundle: Bundle) -> None:
    """One WARNING line naming what the rules directory ``bundle`` was published from held that is not read."""
    entries = [Unread(entry[len("rules/") :].rstrip("/"), entry.endswith("/")) for entry in bundle.unread]
    names, problems = named_briefly(unread_named(RULES_DIR.name, entries, RULES_HELD))
    logger.warning(
        f"bundle {bundle.id} of {name} was published without entries of its rules directory that are not read, so "
        f"what they hold never runs: {names}; rename or move each as problems says, then publish again",
        extra={"pipeline": name, "bundle": bundle.id, "problems": problems},
    )


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
        self._retry = RETRY_SECONDS
        self._reads_until = math.inf
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
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # as pipeline-rules takes it: the keys it writes
        interval = refresh_interval(env)

        def client() -> Any:
            from runtime.aws import _retry_after_cap, botocore_config, make_client, new_session

            cap = _retry_after_cap(round(limits.read_timeout * 1000))
            return make_client("s3", new_session(), botocore_config(limits), cap)

        bucket = env["RULES_BUCKET"].strip()
        return cls(
            app, client, bucket=bucket, prefix=prefix, packaged=packaged, env=env, interval=interval, clock=clock
        )

    def load(self) -> None:
        """Apply every pipeline's deployment now (the cold start), within ``COLD_START_BUDGET_SECONDS``.

        Past the budget no read starts: what it would have read waits for the next check.
        """
        started = self._clock()
        settled = True
        with self._lock:
            self._reads_until = started + COLD_START_BUDGET_SECONDS
            try:
                for name in self._states:
                    if self._clock() - started > COLD_START_BUDGET_SECONDS:
                        logger.warning("rules bundles: cold start budget spent; %s waits for the next check", name)
                        settled = False
                        continue
                    settled = self._check_safely(name) and settled
            finally:
                self._reads_until = math.inf
            self._due = self._clock() + self._next_check(settled)

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
            settled = all([self._check_safely(name) for name in self._states])  # a list: every pipeline is checked
            self._due = self._clock() + self._next_check(settled)

    def _next_check(self, settled: bool) -> float:
        """Seconds until the next check: the interval once every pipeline applied its deployment (or was refused).

        While one could not be read (S3 failing or slow, a bundle missing), the container may be deciding with
        other rules than the fleet (a new one, with the packaged rules): the next check comes after
        ``RETRY_SECONDS``, doubling with each failed check up to the interval.
        """
        if settled:
            self._retry = RETRY_SECONDS
            return self.interval
        delay = min(self._retry, self.interval)
        self._retry = min(self._retry * 2, self.interval)
        return delay

    def s3(self) -> Any:
        """The S3 client, created on first use."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _get(self, key: str, what: str, etag: str | None = None) -> tuple[bytes, str] | None:
        """The object's bytes and ETag; None when it is unchanged since ``etag``; _Unreadable otherwise.

        One larger than a bundle may be is _TooLarge, and its body is not read.
        """
        if self._clock() > self._reads_until:
            raise _Unreadable("the cold start's time for S3 is spent")
        try:
            answer = self.s3().get_object(Bucket=self.bucket, Key=key, **({"IfNoneMatch": etag} if etag else {}))
            error = size_error(int(answer.get("ContentLength") or 0), what)
            if error is not None:
                answer["Body"].close()
                raise _TooLarge(str(error), str(answer.get("ETag", "")))
            return answer["Body"].read(MAX_BYTES + 1), str(answer.get("ETag", ""))
        except botocore.exceptions.ClientError as exc:
            code, status = _code(exc)
            if status == 304 or code in ("304", "NotModified"):
                return None
            raise _Unreadable(code, missing=code in _MISSING or status == 404) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _Unreadable(type(exc).__name__) from None

    def _check_safely(self, name: str) -> bool:
        """Check one pipeline's deployment; anything unexpected is an ERROR line and a count, never a crash.

        True when it is settled: applied, refused, or there is none; False when it must be tried again.
        """
        try:
            return self._check(name)
        except Exception as exc:  # a check must never stop a cold start or a container; the next one tries again
            failed = f"checking the rules bundles of {name} failed ({type(exc).__name__}: {exc})"
            logger.exception(f"{failed}; the rules in use keep deciding", extra=self._fields(name))
            self._count(name)
            return False

    def _check(self, name: str) -> bool:
        state = self._states[name]
        key = deployment_key(self.prefix, name)
        try:
            found = self._get(key, "the deployment document", state.etag)
        except _TooLarge as exc:
            self._error(name, f"the deployment s3://{self.bucket}/{key} is refused: {exc}")
            state.etag = exc.etag
            return True
        except _Unreadable as exc:
            if exc.missing and state.etag is None:
                return True  # no deployment yet: the packaged rules decide
            self._error(
                name, f"the deployment s3://{self.bucket}/{key} cannot be read ({exc}); the rules in use keep deciding"
            )
            return False
        if found is None:
            return True
        body, etag = found
        try:
            deployment = Deployment.from_json(body)
        except BundleError as exc:
            self._error(name, f"the deployment s3://{self.bucket}/{key} is refused: {exc}")
            state.etag = etag
            return True
        settled = self._apply(name, state, deployment)
        if settled:
            state.etag = etag
        return settled

    def _apply(self, name: str, state: _State, deployment: Deployment) -> bool:
        """Deploy what ``deployment`` names, keeping what is in use for anything unusable; False to try again."""
        refusals: list[_Refusal] = []
        settled, fell_back, found = True, False, True
        wanted = deployment.live
        live_id, revision = state.live, _made(deployment, "live", wanted, deployment.revision)
        if wanted != state.live:
            usable, settled = self._usable(name, wanted, deployment.revision, refusals)
            if usable:
                live_id = wanted
            elif state.applied and live_id in deployment.rollback_chain():
                # The kept bundle (or the packaged rules: a rollback may undo them too) is named as a new container
                # names it: the fleet says one source.
                revision = _made(deployment, "live", live_id, state.revision)
            else:  # a new container, or one keeping a bundle a rollback undid: the last good bundle, as a new one
                live_id, revision, found = self._last_good(name, deployment)
                settled, fell_back = settled and found, True
        candidate = None
        shadow_id = deployment.shadow if deployment.shadow != live_id else None
        if shadow_id is not None:
            usable, ready = self._usable(name, shadow_id, deployment.revision, refusals)
            settled = settled and ready
            shadowed_at = _made(deployment, "shadow", shadow_id, deployment.revision)
            candidate = self._build(name, shadow_id, shadowed_at, "shadow") if usable else None
        rulesets = candidate.rulesets if candidate is not None else None
        live = self._build(name, live_id, revision, "", rulesets)
        if live is None:  # the known-good configuration no longer loads (say, the environment changed)
            self._refused(name, refusals, "the rules in use keep deciding")
            return settled
        self._app.deploy(live, candidate)
        shadowed_id = shadow_id if candidate is not None else None
        changed = (state.live, state.shadow) != (live_id, shadowed_id)
        state.live, state.shadow, state.revision = live_id, shadowed_id, revision
        state.applied = found  # a walk stopped by a bundle it could not read walks again at the next check
        deciding = "the rules in use keep deciding"
        if fell_back:
            packaged = "the rules packaged beside the handler decide"
            deciding = f"the last good live bundle decides: {live.source}" if live_id else packaged
        self._refused(name, refusals, deciding)
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

    def _last_good(self, name: str, deployment: Deployment) -> tuple[str | None, int, bool]:
        """The newest earlier live bundle that verifies (None: the packaged rules), its revision, and whether final.

        The earlier live bundles are those a rollback would go back to (``Deployment.rollback_chain``): one a
        rollback undid is never walked to, or a new container would revive the rules ops took back. The walk passes
        a bundle S3 does not have (deleted) and stops at one it cannot read (S3 failing: reading further would fail
        as well, and take as long): the packaged rules decide until a check reads it.
        """
        for bundle_id in dict.fromkeys(deployment.rollback_chain()):
            if bundle_id is not None:
                # An earlier bundle's problems were reported when it was deployed: only the wanted one's are reported.
                usable, final = self._usable(name, bundle_id, deployment.revision, [], missing_final=True)
                if not final:
                    return None, 0, False
                if not usable:
                    continue
            return bundle_id, _made(deployment, "live", bundle_id, 0), True
        return None, 0, True

    def _usable(
        self, name: str, bundle_id: str | None, revision: int, refusals: list[_Refusal], *, missing_final: bool = False
    ) -> tuple[bool, bool]:
        """Whether the bundle can decide (read, verified), and whether that is final; ``refusals`` gets why not.

        A bundle S3 does not have is tried again (it may be uploaded yet), unless ``missing_final``.
        """
        state = self._states[name]
        if bundle_id is None:
            return True, True
        try:
            if bundle_id in state.refused and not self._replaced(name, bundle_id):
                said_at, refusal = state.refused[bundle_id]
                if said_at != revision:  # another deployment names it (say, the refused shadow made live): say it again
                    state.refused[bundle_id] = (revision, refusal.again(revision))
                    refusals.append(state.refused[bundle_id][1])
                return False, refusal.etag is None or missing_final
            source = self._source(name, bundle_id)
        except _Unreadable as exc:
            refusals.append(self._unreadable(name, bundle_id, revision, exc))
            return False, exc.missing and missing_final
        except BundleError as exc:
            etag = exc.etag if isinstance(exc, _NotTheBundle) else None
            refusal = _Refusal(f"rules bundle {bundle_id}", f"is refused: {exc}", bundle_id, etag=etag)
            state.refused[bundle_id] = (revision, refusal)
            refusals.append(refusal)
            return False, etag is None or missing_final
        verification = verify(source.pipeline, source.rules, self._env)
        deployed = self._app.pipeline(name)
        outline = self._outline(name)
        steps, settings = (outline.steps, outline.settings) if outline is not None else (None, None)
        owned = code_owned(source.pipeline, deployed.name, deployed.channels, steps, settings)
        errors = [*owned, *verification.errors]
        if errors:
            shown = [self._shown(problem, name, bundle_id) for problem in errors]
            subject, verdict = f"rules bundle {bundle_id} of {name}", f"is refused, {len(shown)} problem(s)"
            refusal = _Refusal(subject, verdict, bundle_id, shown, revision)
            state.refused[bundle_id] = (revision, refusal)
            refusals.append(refusal)
            return False, True
        return True, True

    def _unreadable(self, name: str, bundle_id: str, revision: int, exc: _Unreadable) -> _Refusal:
        """Why a bundle could not be read, where it was looked for, and what ops can do (it is read again)."""
        where = f"s3://{self.bucket}/{bundle_key(self.prefix, name, bundle_id)}"
        if exc.missing:
            where, fix = f"no object {where}", ": publish it, or deploy another bundle"
        else:
            fix = ""
        verdict = f"cannot be read ({exc}: {where}); it is read again at the next check{fix}"
        return _Refusal(f"rules bundle {bundle_id} of {name}", verdict, bundle_id, revision=revision)

    def _replaced(self, name: str, bundle_id: str) -> bool:
        """Whether the object under a refused bundle's key changed since it was found not to be that bundle.

        One refused for its files (verified and found wrong) is that bundle, immutable: never read again.
        """
        etag = self._states[name].refused[bundle_id][1].etag
        if etag is None or self._get(bundle_key(self.prefix, name, bundle_id), "the bundle", etag) is None:
            return False
        del self._states[name].refused[bundle_id]
        return True

    def _outline(self, name: str) -> CodeOutline | None:
        """The steps and settings of the pipeline file deployed with the code: a bundle's pipeline file keeps them."""
        state = self._states[name]
        if state.outline is None:
            state.outline = code_outline(state.packaged.pipeline)
        return state.outline

    def _source(self, name: str, bundle_id: str) -> Source:
        """The bundle's files, read from S3 once per container and written under the work directory."""
        known = self._fetched.get((name, bundle_id))
        if known is not None:
            return known
        key = bundle_key(self.prefix, name, bundle_id)
        found = self._get(key, "the bundle")
        assert found is not None
        body, etag = found
        fix = f"(s3://{self.bucket}/{key}); it is read again once replaced: delete it and publish it again"
        try:
            bundle = Bundle.from_json(body, bundle_id)
        except BundleError as exc:
            raise _NotTheBundle(f"{exc} {fix}", etag) from None
        if bundle.pipeline != name:
            raise _NotTheBundle(f"it is a bundle of pipeline {bundle.pipeline!r}, not of {name!r} {fix}", etag)
        if bundle.unread:
            _say_unread(name, bundle)
        root = self._workdir / name / bundle_id
        bundle.write(root)
        packaged = self._states[name].packaged
        pipeline = root / (bundle.pipeline_file or f"pipelines/{packaged.pipeline.name}")
        if bundle.pipeline_file is None:
            pipeline.parent.mkdir(exist_ok=True)
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
        return replace(config, source=label)

    def _shown(self, problem: Problem, name: str, bundle_id: str) -> str:
        """The problem, naming the bundle's files as the bundle does (not where this container wrote them)."""
        return str(problem).replace(f"{self._workdir / name / bundle_id}/", "")

    def _refused(self, name: str, refusals: list[_Refusal], deciding: str) -> None:
        """An ERROR line (and a count) for each bundle that cannot decide, saying what decides instead."""
        for refusal in refusals:
            self._error(name, f"{refusal.message}; {deciding}", refusal.bundle, refusal.problems)

    def _error(self, name: str, message: str, bundle_id: str | None = None, problems: list[str] | None = None) -> None:
        """One ERROR line, and the metric counting it."""
        logger.error(message, extra=self._fields(name, bundle_id, problems))
        self._count(name)

    def _fields(self, name: str, bundle_id: str | None = None, problems: list[str] | None = None) -> dict[str, Any]:
        """The fields of an ERROR line: the pipeline, the bundle and its problems, and the rules that decide."""
        live = self._app.pipeline(name)
        return {
            "pipeline": name,
            "bundle": bundle_id,
            "problems": problems,
            "rules_version": live.version,
            "rules_source": live.source or None,
        }

    def _count(self, name: str) -> None:
        """Count one ``RulesBundleErrors``."""
        if self._app.metrics is not None:
            self._app.metrics.count(name, ERROR_METRIC)
