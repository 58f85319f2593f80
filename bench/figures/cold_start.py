"""Cold start: a fresh interpreter importing ``handler`` (configuration loaded and validated, no AWS call).

Baseline: a fresh interpreter running ``import boto3, twilio.request_validator``, the floor any
Twilio-on-Lambda handler pays. Runs alternate so that machine noise hits both sides alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping

from bench.env import FAKE_AWS, REPO_ROOT, lambda_environment
from bench.model import Figure, Sizes, median

__all__ = ["import_profile", "measure"]

HANDLER = "import handler"
BASELINE = "import boto3, twilio.request_validator"
TARGET_RATIO = 1.3


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(FAKE_AWS)
    env.update(lambda_environment())
    # Any AWS call made at import would hit a closed local port and fail loudly instead of reaching AWS.
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def _run(code: str, env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=dict(env), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def import_profile(code: str = HANDLER, top: int = 12) -> list[dict[str, object]]:
    """The modules with the largest self import time (``-X importtime``) in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=REPO_ROOT,
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


def measure(sizes: Sizes) -> list[Figure]:
    """The cold-start figure."""
    env = _environment()
    if not sizes.smoke:
        _run(HANDLER, env)  # compile any stale bytecode outside the measurement
        _run(BASELINE, env)
    handler_times: list[float] = []
    baseline_times: list[float] = []
    for run in range(sizes.cold_start_runs):
        pair = [(HANDLER, handler_times), (BASELINE, baseline_times)]
        for code, times in pair if run % 2 == 0 else reversed(pair):
            times.append(_run(code, env))
    measured, baseline = median(handler_times), median(baseline_times)
    ratio = measured / baseline
    return [
        Figure(
            key="cold_start",
            title="cold start: import handler + load/validate config",
            unit="ms",
            measured=round(measured * 1000, 1),
            baseline_label="python -c 'import boto3, twilio.request_validator'",
            baseline=round(baseline * 1000, 1),
            ratio=round(ratio, 3),
            target=f"<= {TARGET_RATIO}x",
            passed=ratio <= TARGET_RATIO,
            note=f"median of {sizes.cold_start_runs} alternating fresh processes each",
            details={
                "handler_ms": [round(t * 1000, 1) for t in handler_times],
                "baseline_ms": [round(t * 1000, 1) for t in baseline_times],
                "import_profile": import_profile() if not sizes.smoke else [],
            },
        )
    ]
