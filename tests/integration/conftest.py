"""Real processes for the integration tests: moto's standalone server and ``pipeline-serve``, torn down always.

``moto_endpoint`` is moto's server in a thread of the test process instead, for the tests that run many containers
at once: one gap of moto is closed there. moto evaluates a write's condition and then writes, without a lock, so
two concurrent conditional writes can both pass (DynamoDB applies conditional writes to an item one at a time);
the fixture serializes moto's DynamoDB writes, which restores that guarantee and nothing more.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from engine.calls import CallLimits
from tests.support.webhooks import sign
from tests.support.world import World
from tools.localaws import LocalResources, local_resources, provision

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


@contextlib.contextmanager
def unused_port() -> Iterator[int]:
    """A port nothing listens on (a connection is refused), held until the block ends so that nothing else can.

    A port merely found free and let go (bind to 0, then close) may be taken before it is used: by another xdist
    worker's server or by any process's outgoing connection, which draws from the same ephemeral range.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def wait_for_line(pattern: str, process: subprocess.Popen[bytes], log: Path) -> re.Match[str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text(errors="replace"))
        if match:
            return match
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"no line matching {pattern!r} after {START_TIMEOUT} s:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment for a child process: fake credentials, no endpoint, nothing of the parent's AWS setup."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "_X_AMZN", "TRACING"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class Moto:
    """moto's standalone server, as a process."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    # Port 0: the server binds a port of its own and says which (one chosen here and let go could be taken first).
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=base_env(),
        )
    try:
        match = wait_for_line(r"Running on (http://127\.0\.0\.1:\d+)", process, log)
        yield Moto(match.group(1), process)
    finally:
        stop(process)


@pytest.fixture
def aws(moto_server: Moto) -> World:
    """The contract's resources, freshly created in the running moto server (same names every time)."""
    moto_server.reset()
    dynamodb, sqs = moto_server.client("dynamodb"), moto_server.client("sqs")
    resources: LocalResources = provision(dynamodb, sqs)
    return World(dynamodb, sqs, moto_server.client("secretsmanager"), resources)


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: str


@dataclass
class Serve:
    """A running ``pipeline-serve`` process and its captured output."""

    base: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def post(
        self, path: str, params: Mapping[str, str], *, signed_url: str | None = None, token: str = "12345"
    ) -> Answer:
        """POST a form signed (with the twilio library) over the URL the server will rebuild, or ``signed_url``."""
        url = self.url(path)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(signed_url or url, dict(params), token),
            "I-Twilio-Idempotency-Token": "idem-1",
        }
        request = urllib.request.Request(url, data=urlencode(params).encode(), headers=headers, method="POST")
        return self.send(request)

    @staticmethod
    def send(request: urllib.request.Request) -> Answer:
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                return Answer(answer.status, dict(answer.headers), answer.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read().decode())

    def output(self) -> tuple[list[str], str]:
        """Lines written to stdout (the function's logs and EMF documents), and stderr."""
        return self.stdout.read_text(errors="replace").splitlines(), self.stderr.read_text(errors="replace")


def start_serve(directory: Path, args: list[str], env: Mapping[str, str]) -> Serve:
    stdout, stderr = directory / "stdout.log", directory / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.serve", "--port", "0", *args],
            cwd=ROOT,
            stdout=out,
            stderr=err,
            env=dict(env),
        )
    try:
        match = wait_for_line(r"listening on (http://127\.0\.0\.1:\d+)/prod ", process, stderr)
    except BaseException:
        stop(process)
        raise
    return Serve(match.group(1), process, stdout, stderr)


@pytest.fixture(scope="session")
def serve(moto_server: Moto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """``pipeline-serve --endpoint-url <moto>`` with the environment ``provision`` gives the resources."""
    names = local_resources(lambda name: f"{moto_server.endpoint}/123456789012/{name}")
    env = base_env(BATCH_WINDOW_SECONDS="0", LOG_LEVEL="INFO", **names.environment())
    server = start_serve(tmp_path_factory.mktemp("serve"), ["--endpoint-url", moto_server.endpoint], env)
    try:
        yield server
    finally:
        stop(server.process)


def _serialized(write: Callable[..., Any], lock: threading.Lock) -> Callable[..., Any]:
    def atomic(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return write(*args, **kwargs)

    return atomic


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's server in a thread, its conditional writes atomic as DynamoDB's are."""
    lock = threading.Lock()
    patch = pytest.MonkeyPatch()
    for name in ("put_item", "delete_item", "update_item"):
        patch.setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name), lock))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        patch.undo()


# The batching window of the ``world`` fixture's pipelines.
WINDOW_SECONDS = 10
# Each call's bounds for ``process_concurrently``'s containers: far beyond what load makes of moto's answers.
UNHURRIED = CallLimits(connect_timeout=30.0, read_timeout=30.0)


def process_concurrently(
    pipeline: str, events: Sequence[dict[str, Any]], outcome: Callable[[Any], str], at: datetime | None = None
) -> list[str]:
    """Each event on a container of its own, all started together; ``outcome`` of each one's ``Handled``.

    The containers share the loaded configuration of ``pipelines/{pipeline}.yaml`` and boto3's service models
    (neither holds state), not their clients, connections or secret caches. ``at``: the wall clock the
    containers read (default: now).

    These tests are about who wins the conditional writes, not about time: the containers' time budget is spent
    only by hand (a stepped clock) and each call may take ``UNHURRIED`` (its attempts as the pipeline's). With the
    pipeline's own bounds, a loaded machine running a dozen containers and moto's server in one process ran past
    the 4 s deadline (a step refused: ``raised …_TRANSIENT_ERROR``) or the 1 s read timeout (a retried
    conditional write that had been applied fails its condition), and the outcomes were load's, not the writes'.
    """
    from engine.config import load_config
    from runtime.app import Application, live_services
    from tests.support.clock import SteppedClock

    config = load_config(ROOT / "pipelines" / f"{pipeline}.yaml", ROOT / "rules", os.environ)
    session = boto3.session.Session()
    limits = UNHURRIED._replace(max_attempts=config.aws.max_attempts)
    containers = [Application([config], live_services(limits, session=session)) for _ in events]
    for container in containers:
        container.replace_services(clock=SteppedClock(at))
    barrier = threading.Barrier(len(events))
    outcomes = [""] * len(events)

    def run(index: int) -> None:
        barrier.wait()
        outcomes[index] = outcome(containers[index].process(events[index], None))

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


@pytest.fixture
def world(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The contract's resources (names of their own) in ``moto_endpoint``, the Lambda environment pointing at them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    session = boto3.session.Session()
    dynamodb, sqs, secretsmanager = (session.client(name) for name in ("dynamodb", "sqs", "secretsmanager"))
    resources = provision(dynamodb, sqs, prefix=f"c{uuid.uuid4().hex[:8]}-")
    for name, value in resources.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BATCH_WINDOW_SECONDS", str(WINDOW_SECONDS))
    world = World(dynamodb, sqs, secretsmanager, resources)
    world.add_default_secrets()
    yield world
    for name in world.secretsmanager.list_secrets()["SecretList"]:
        world.secretsmanager.delete_secret(SecretId=name["ARN"], ForceDeleteWithoutRecovery=True)
