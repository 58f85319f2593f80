"""The boto3 clients: each created once, on first use, unless the Lambda init phase is off the request path."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from engine.calls import CallLimits
from runtime.app import Application, InvalidAwsSetting, NoRegionConfigured
from runtime.bundlewatch import BundleWatcher
from runtime.tracing import reset
from tests.support.expect import ENV, ROOT


class Counted:
    """A real boto3 session whose ``client`` calls are counted (and slowed, so that first uses overlap)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.session = boto3.session.Session(region_name="us-east-1")
        self.created: Counter[str] = Counter()
        real: Callable[..., Any] = self.session.client

        def client(service: str, *args: Any, **kwargs: Any) -> Any:
            self.created[service] += 1
            time.sleep(delay)
            return real(service, *args, **kwargs)

        self.session.client = client


def _start(counted: Counted, **env: str) -> Application:
    reset()
    return Application.from_root(ROOT, {**ENV, **env}, session=counted.session)


def test_a_cold_start_creates_no_client_until_one_is_used() -> None:
    counted = Counted()
    application = _start(counted)
    assert counted.created == Counter()
    client = application.services.tables.client
    assert application.services.tables.client is client
    assert counted.created == Counter({"dynamodb": 1})
    assert client.meta.config.read_timeout == application.pipeline("twilio_inbound").aws.read_timeout


def test_threads_racing_for_first_use_get_one_client_each() -> None:
    counted = Counted(delay=0.05)
    services = _start(counted).services
    readers = [lambda: services.tables.client, lambda: services.queues.client] * 4
    barrier = threading.Barrier(len(readers))
    seen: list[tuple[int, Any]] = []

    def use(index: int) -> None:
        barrier.wait()
        seen.append((index % 2, readers[index]()))

    threads = [threading.Thread(target=use, args=(index,)) for index in range(len(readers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted.created == Counter({"dynamodb": 1, "sqs": 1})
    assert {kind: {id(client) for k, client in seen if k == kind} for kind in (0, 1)} == {
        0: {id(services.tables.client)},
        1: {id(services.queues.client)},
    }


@pytest.mark.parametrize("init_type", ["provisioned-concurrency", "snap-start"])
def test_an_init_phase_off_the_request_path_creates_every_client_up_front(init_type: str) -> None:
    counted = Counted()
    services = _start(counted, AWS_LAMBDA_INITIALIZATION_TYPE=init_type).services
    assert counted.created == Counter({"dynamodb": 1, "sqs": 1, "secretsmanager": 1})
    assert services.secrets.store.client is services.secrets.store.client
    assert counted.created == Counter({"dynamodb": 1, "sqs": 1, "secretsmanager": 1})


def test_an_on_demand_init_creates_none_up_front() -> None:
    counted = Counted()
    _start(counted, AWS_LAMBDA_INITIALIZATION_TYPE="on-demand")
    assert counted.created == Counter()


def test_importing_the_handler_creates_no_client() -> None:
    code = (
        "import boto3.session\n"
        "created = []\n"
        "real = boto3.session.Session.client\n"
        "def client(self, service, *args, **kwargs):\n"
        "    created.append(service)\n"
        "    return real(self, service, *args, **kwargs)\n"
        "boto3.session.Session.client = client\n"
        "import handler\n"
        "assert created == [], created\n"
        "handler._application.services.queues.client\n"
        "assert created == ['sqs'], created\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(ENV, AWS_EC2_METADATA_DISABLED="true")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_missing_region_stops_the_cold_start_not_the_first_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with pytest.raises(NoRegionConfigured, match="AWS_DEFAULT_REGION"):
        Application.from_root(ROOT, ENV)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AWS_ENDPOINT_URL", "localhost:4566"),  # no scheme
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://local host:8000"),
        ("AWS_DEFAULT_REGION", "eu west 1"),
    ],
)
def test_a_malformed_region_or_endpoint_stops_the_cold_start_not_the_first_event(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # The clients are created on first use: these used to pass the cold start, then fail every event inside its
    # first step, answered 200 INTERNAL_ERROR (Twilio never retries it: every message lost).
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidAwsSetting, match=variable):
        Application.from_root(ROOT, {**ENV, variable: value})


def test_a_malformed_aws_region_alone_is_named_as_such(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Without AWS_DEFAULT_REGION the function runs in AWS_REGION (CONTRACT §1): a bad one is named, not its twin.
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_REGION", "eu west 1")
    env = {key: value for key, value in {**ENV, "AWS_REGION": "eu west 1"}.items() if key != "AWS_DEFAULT_REGION"}
    with pytest.raises(InvalidAwsSetting, match=r"^AWS_REGION 'eu west 1' is not a region name"):
        Application.from_root(ROOT, env)


def test_with_aws_region_alone_every_client_of_the_function_is_in_that_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defect: only the pipeline's clients read AWS_REGION; the capture's and the bundle watcher's S3 clients were
    made in botocore's region, which ignores it (outside Lambda, which sets both, they fell back to a profile's)."""
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    from runtime.capture import _Clients

    # The queues are the function's region's (runtime.regions refuses others).
    regional = {key: value.replace("us-east-1", "eu-west-2") for key, value in ENV.items()}
    env = {key: value for key, value in {**regional, "AWS_REGION": "eu-west-2"}.items() if key != "AWS_DEFAULT_REGION"}
    application = Application.from_root(ROOT, env)
    watcher = BundleWatcher.from_env(application, ROOT, {**env, "RULES_BUCKET": "rules"}, CallLimits())
    assert [client.meta.region_name for client in (watcher.s3(), _Clients()("s3"))] == ["eu-west-2", "eu-west-2"]
