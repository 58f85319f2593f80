from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

# Fake credentials and a region for every boto3 client the tests create; never a real account, nor the machine's
# AWS configuration (a service's endpoint, AWS_ENDPOINT_URL_STS say, or ~/.aws/config would send calls past moto).
for _name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
    os.environ.pop(_name, None)
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
)

from moto import mock_aws  # noqa: E402

from runtime.logs import JsonFormatter  # noqa: E402
from runtime.plugins import load_plugins, plugin_modules  # noqa: E402
from tests.support.aws import AwsSpy  # noqa: E402
from tests.support.clock import install_clock  # noqa: E402
from tests.support.expect import ROOT  # noqa: E402
from tests.support.world import World  # noqa: E402
from tools.localaws import provision  # noqa: E402

# The built-in steps and the project's declared plugins, as the handler and the tools load them.
load_plugins(plugin_modules(os.environ, ROOT))

# Every log line at INFO+ is scanned for tokens, bodies and phone numbers (fails the test).
pytest_plugins = ["tests.support.logscan"]

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One boto3 session for the run: its loaded service models make each new container's clients cheap."""
    return boto3.session.Session()


_CLIENTS: dict[int, tuple[Any, Any, Any]] = {}


def _world_clients(session: boto3.session.Session) -> tuple[Any, Any, Any]:
    """The tests' own clients (not the application's), created once: moto serves them in every mock context."""
    if id(session) not in _CLIENTS:
        _CLIENTS[id(session)] = (session.client("dynamodb"), session.client("sqs"), session.client("secretsmanager"))
    return _CLIENTS[id(session)]


_CONFIGS: dict[tuple[Any, ...], Any] = {}


def _reused_config(load: Callable[..., Any]) -> Callable[..., Any]:
    """``load_config``, reusing the result for the same file contents and environment.

    A loaded configuration is immutable (the pipeline is safe to run for every event), so a new container
    with the same files and environment may share it; only the YAML parsing is skipped, which keeps the
    suite fast. Anything that differs (a file, any environment variable) loads afresh.
    """

    def load_or_reuse(pipeline_path: Any, rules_dir: Any, env: Mapping[str, str] | None = None, **options: Any) -> Any:
        from pathlib import Path

        files = [Path(pipeline_path), *sorted(Path(rules_dir).glob("*"))]
        contents = tuple((str(path), path.read_bytes()) for path in files if path.is_file())
        environment = os.environ if env is None else env
        variables = tuple(sorted((k, v) for k, v in environment.items() if k != "PYTEST_CURRENT_TEST"))
        key = (contents, variables, tuple(sorted(options.items())))
        if key not in _CONFIGS:
            _CONFIGS[key] = load(pipeline_path, rules_dir, env, **options)
        return _CONFIGS[key]

    return load_or_reuse


@pytest.fixture(autouse=True)
def _reuse_loaded_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.config
    import runtime.app

    monkeypatch.setattr(runtime.app, "load_config", _reused_config(engine.config.load_config))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session) -> Iterator[World]:
    """An in-process moto world with the contract's resources, and the Lambda environment pointing at it."""
    for name in ("PUBLIC_BASE_URL", "LOG_LEVEL", "SECRET_CACHE_TTL_SECONDS", "TTL_BUFFER_SECONDS", "STAGE_TTL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        dynamodb, sqs, secretsmanager = _world_clients(boto_session)
        resources = provision(dynamodb, sqs)
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("BATCH_WINDOW_SECONDS", "10")
        yield World(dynamodb, sqs, secretsmanager, resources)


def _steady(application: Any, request: pytest.FixtureRequest) -> Any:
    """``application``, its time budget spent only by hand unless the test is marked ``real_deadline``.

    The containers of ``lambda_handler``, ``cold_start`` and ``task_root`` run on a stepped clock (wall time real,
    monotonic time still: ``tests.support.clock``), so a test that is not about time cannot see the pipeline's
    4 s deadline expire however loaded the machine is. On the real clock, a loaded 2-core machine running the
    suite on two workers spent it: one secret fetch took 3.9 s (``STAGE_WRITE_TRANSIENT_ERROR: time budget spent
    before step 'stage'`` in a test of the log line). Durations (logs, metrics) are measured apart from this clock
    and stay real; a test about the real deadline is marked ``real_deadline``.
    """
    if request.node.get_closest_marker("real_deadline") is None:
        install_clock(application)
    return application


@pytest.fixture
def lambda_handler(world: World, boto_session: boto3.session.Session, request: pytest.FixtureRequest) -> Handler:
    """``handler.handler`` on a fresh container (configuration reloaded, empty secret cache, new clients).

    Its deadline clock stands still (``_steady``).
    """
    import handler

    _steady(handler.reload(boto_session), request)
    return handler.handler


@pytest.fixture
def aws(lambda_handler: Handler) -> AwsSpy:
    """Every AWS call of the container's own clients, recorded; faults injected through botocore events."""
    import handler

    return AwsSpy(handler._application)


@dataclass
class Container:
    """A Lambda container built from the current environment: its handler and a spy on its AWS clients."""

    handler: Handler
    aws: AwsSpy


@pytest.fixture
def cold_start(
    world: World, monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session, request: pytest.FixtureRequest
) -> Callable[..., Container]:
    """Start a new container after setting environment variables (``PUBLIC_BASE_URL=...``); its deadline clock
    stands still (``_steady``)."""
    import handler

    def start(**env: str) -> Container:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        application = _steady(handler.reload(boto_session), request)
        return Container(handler.handler, AwsSpy(application))

    return start


@pytest.fixture
def outcomes(caplog: pytest.LogCaptureFixture) -> Callable[[], list[tuple[str, str | None]]]:
    """The (outcome, error_code) of every event handled so far in the test, read from the JSON logs."""
    from tests.support.expect import outcomes as read

    caplog.set_level(logging.INFO)
    return lambda: read(caplog)


@pytest.fixture
def task_root(
    world: World,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    boto_session: boto3.session.Session,
    request: pytest.FixtureRequest,
) -> Callable[..., Container]:
    """A container whose task root is a copy of ``pipelines/`` and ``rules/`` with some files replaced.

    ``files`` maps a path under the root to its new text (None deletes the file); ``env`` is set first. Its
    deadline clock stands still (``_steady``).
    """
    import handler

    root = tmp_path / "task-root"
    shutil.copytree(ROOT / "pipelines", root / "pipelines")
    shutil.copytree(ROOT / "rules", root / "rules")

    def start(files: Mapping[str, str | None], **env: str) -> Container:
        for relative, text in files.items():
            if text is None:
                (root / relative).unlink()
            else:
                (root / relative).write_text(text)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(handler, "TASK_ROOT", root)
        application = _steady(handler.reload(boto_session), request)
        return Container(handler.handler, AwsSpy(application))

    return start


class _JsonCapture(logging.Handler):
    """Formats every record as the Lambda logs it, at emit time (the invocation's ids are bound then)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_logs() -> Iterator[Callable[[int], list[dict[str, Any]]]]:
    """The JSON log lines written during the test, at or above a level (parsed)."""
    import json

    capture = _JsonCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        yield lambda level=logging.INFO: [
            line for line in map(json.loads, capture.lines) if logging.getLevelName(line["level"]) >= level
        ]
    finally:
        root.removeHandler(capture)
