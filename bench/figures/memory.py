"""Peak memory of a warm container: a fresh process importing ``handler`` and handling N events.

AWS is a moto server in another process (so the emulator's memory is not counted); the container
process is exactly what Lambda runs. Peak resident set size (``VmHWM``) after the last event.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

from bench.env import FAKE_AWS, REPO_ROOT, lambda_environment
from bench.events import Tenant, conversation
from bench.model import Figure, Sizes
from tools.localaws import provision, put_items, put_secrets

__all__ = ["measure", "moto_server"]

LIMIT_MB = 128.0
WELL_UNDER = 0.75
CONVERSATIONS = 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free local port; yields its endpoint URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def _peak(code_args: list[str], env: dict[str, str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        subprocess.run(
            [sys.executable, "-m", "bench.memory_worker", *code_args, str(out)],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        result: dict[str, object] = json.loads(out.read_text())
        return result


def _baseline_mb(env: dict[str, str]) -> float:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import boto3, twilio.request_validator; from bench.memory_worker import peak_rss_mb; print(peak_rss_mb())",
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip())


def measure(sizes: Sizes) -> list[Figure]:
    """The peak-memory figure."""
    tenant = Tenant()
    count = min(CONVERSATIONS, sizes.memory_events)
    with moto_server() as endpoint:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update(FAKE_AWS)
        env["AWS_ENDPOINT_URL"] = endpoint
        session = boto3.session.Session(
            aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=FAKE_AWS["AWS_REGION"],
        )
        dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        resources = provision(dynamodb, session.client("sqs", endpoint_url=endpoint))
        items = [conversation(index, tenant, entries=sizes.history_entries) for index in range(count)]
        put_items(dynamodb, resources.conversations_table, items)
        put_secrets(
            session.client("secretsmanager", endpoint_url=endpoint), {tenant.secret_name: tenant.secret_value()}
        )
        env.update(lambda_environment(resources.environment()))
        result = _peak([str(sizes.memory_events), str(count)], env)
        baseline = _baseline_mb(env)
    peak = float(str(result["max_rss_mb"]))
    return [
        Figure(
            key="peak_memory",
            title=f"peak memory of a warm container after {sizes.memory_events} events",
            unit="MB",
            measured=round(peak, 1),
            baseline_label="process after import boto3, twilio.request_validator (context)",
            baseline=round(baseline, 1),
            ratio=round(peak / baseline, 3),
            target=f"well under {LIMIT_MB:.0f} MB (<= {LIMIT_MB * WELL_UNDER:.0f} MB)",
            passed=peak <= LIMIT_MB * WELL_UNDER,
            note=f"VmHWM; moto server in another process; {sizes.history_entries}-entry histories",
            details={"statuses": result["statuses"]},
        )
    ]
