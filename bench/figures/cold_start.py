"""Cold start: a fresh interpreter importing ``handler`` (configuration loaded and validated, no AWS call).

The handler runs from a task root staged as ``scripts/build_lambda.py`` lays out the artifact: the
function's own files byte-compiled, and the build's ``config.stamp.json`` (dependencies come from the
virtualenv, byte-compiled at install, as the Lambda runtime's are).
Baseline: a fresh interpreter running ``import boto3, twilio.request_validator``, the floor any
Twilio-on-Lambda handler pays. Reported beside it: the same handler without the build's stamp (full
JSON Schema validation at load), and the handler as under provisioned concurrency or SnapStart (its
three boto3 clients created at import, not on first use) against a baseline that also creates them.
Runs rotate through the variants so that machine noise hits them alike.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.env import FAKE_AWS, REPO_ROOT, lambda_environment
from bench.model import Figure, Sizes, median
from runtime.layout import PIPELINES_DIR, RULES_DIR, pipeline_files
from runtime.plugins import load_plugins
from tools.stamp import write_stamp

__all__ = ["import_profile", "measure", "stage_task_root"]

HANDLER = "import handler"
BASELINE = "import boto3, twilio.request_validator"
CLIENTS = (
    "import boto3, twilio.request_validator; session = boto3.session.Session(); "
    "[session.client(name) for name in ('dynamodb', 'sqs', 'secretsmanager')]"
)
TARGET_RATIO = 1.3


def stage_task_root(target: Path, *, stamp: bool) -> Path:
    """The function's files and plugin list in ``target``, byte-compiled, as the build stages them (stamp optional)."""
    spec = importlib.util.spec_from_file_location("build_lambda", REPO_ROOT / "scripts" / "build_lambda.py")
    assert spec is not None and spec.loader is not None
    build: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    plugins = build.project_plugins(REPO_ROOT, {})
    build.copy_sources(build.source_files(REPO_ROOT, plugins), target)
    build.record_plugins(target, plugins)
    if stamp:
        load_plugins(plugins)
        write_stamp(target, pipeline_files(target / PIPELINES_DIR), target / RULES_DIR)
    build.compile_tree(target)
    return target


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(FAKE_AWS)
    env.update(lambda_environment())
    env.pop("PYTHONPATH", None)
    # Any AWS call made at import would hit a closed local port and fail loudly instead of reaching AWS.
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def _run(code: str, root: Path, env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=root, env=dict(env), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def import_profile(root: Path, code: str = HANDLER, top: int = 15) -> list[dict[str, object]]:
    """The modules with the largest self import time (``-X importtime``) in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=root,
        env=_environment(),
        check=True,
        capture_output=True,
        text=True,
    )
    rows: list[dict[str, object]] = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        rows.append(
            {"module": parts[2].strip(), "self_ms": int(parts[0]) / 1000, "cumulative_ms": int(parts[1]) / 1000}
        )
    return sorted(rows, key=lambda row: -float(str(row["self_ms"])))[:top]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def measure(sizes: Sizes) -> list[Figure]:
    """The cold-start figure, and the unstamped and clients-included comparisons."""
    env = _environment()
    with tempfile.TemporaryDirectory() as stamped_dir, tempfile.TemporaryDirectory() as plain_dir:
        stamped = stage_task_root(Path(stamped_dir), stamp=True)
        plain = stage_task_root(Path(plain_dir), stamp=False)
        # As under provisioned concurrency or SnapStart: the handler creates its three clients at import.
        eager = {**env, "AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"}
        variants = {
            "handler": (HANDLER, stamped, env),
            "handler_unstamped": (HANDLER, plain, env),
            "handler_eager_clients": (HANDLER, stamped, eager),
            "baseline": (BASELINE, stamped, env),
            "baseline_clients": (CLIENTS, stamped, env),
        }
        if not sizes.smoke:
            for code, root, environment in variants.values():
                _run(code, root, environment)  # compile any stale bytecode outside the measurement
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for run in range(sizes.cold_start_runs):
            for name in names[run % len(names) :] + names[: run % len(names)]:
                code, root, environment = variants[name]
                times[name].append(_run(code, root, environment))
        profile = import_profile(stamped) if not sizes.smoke else []
    handler, unstamped = median(times["handler"]), median(times["handler_unstamped"])
    baseline, clients = median(times["baseline"]), median(times["baseline_clients"])
    eager_handler = median(times["handler_eager_clients"])
    ratio = handler / baseline
    note = f"median of {sizes.cold_start_runs} fresh processes per variant, rotating"
    return [
        Figure(
            key="cold_start",
            title="cold start: import handler + load config (stamped at build), no AWS call",
            unit="ms",
            measured=_ms(handler),
            baseline_label="python -c 'import boto3, twilio.request_validator'",
            baseline=_ms(baseline),
            ratio=round(ratio, 3),
            target=f"<= {TARGET_RATIO}x",
            passed=ratio <= TARGET_RATIO,
            note=note,
            details={
                "runs_ms": {name: [_ms(value) for value in values] for name, values in times.items()},
                "import_profile": profile,
            },
        ),
        Figure(
            key="cold_start_unstamped",
            title="cold start without the build's stamp (JSON Schema validated at load)",
            unit="ms",
            measured=_ms(unstamped),
            baseline_label="python -c 'import boto3, twilio.request_validator'",
            baseline=_ms(baseline),
            ratio=round(unstamped / baseline, 3),
            target="(informational)",
            note=note,
        ),
        Figure(
            key="cold_start_vs_clients",
            title="cold start creating the 3 boto3 clients at import (provisioned concurrency, SnapStart)",
            unit="ms",
            measured=_ms(eager_handler),
            baseline_label="import boto3, twilio.request_validator + 3 boto3 clients",
            baseline=_ms(clients),
            ratio=round(eager_handler / clients, 3),
            target="(informational)",
            note="on demand the handler creates them on first use instead: the first event pays for them",
        ),
    ]
