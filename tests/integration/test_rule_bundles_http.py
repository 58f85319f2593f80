"""Rules bundles over HTTP: moto's S3 server, ``pipeline-rules`` and ``pipeline-serve`` as real processes.

The function is ``pipeline-serve`` (one warm container) with ``RULES_BUCKET`` set and a one-second
refresh interval; ops publish, break and roll back with the ``pipeline-rules`` command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.bundles import Bundle, Deployment, bundle_key, deployment_key
from tests.integration.conftest import ROOT, Moto, Serve, base_env, start_serve, stop
from tests.support.bundles import BROKEN_ROUTING, VIP_ROUTING, rules_files
from tests.support.webhooks import whatsapp_params
from tests.support.world import World
from tools.localaws import local_resources

pytestmark = pytest.mark.integration

BUCKET = "rules-over-http"
PICK_UP_SECONDS = 15.0


def cli(moto: Moto, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "pipeline-rules"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tools.rules"]
    env = base_env(RULES_BUCKET=BUCKET)
    return subprocess.run(
        [*command, "--endpoint-url", moto.endpoint, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def lines(server: Serve) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.output()[0] if line.startswith("{")]


@pytest.fixture
def function(moto_server: Moto, aws: World, tmp_path: Path) -> Iterator[Serve]:
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    aws.add_default_secrets()
    aws.add_conversation(vip=True)
    names = local_resources(lambda name: f"{moto_server.endpoint}/123456789012/{name}")
    env = base_env(RULES_BUCKET=BUCKET, RULES_REFRESH_SECONDS="1", LOG_LEVEL="INFO", **names.environment())
    server = start_serve(tmp_path, ["--endpoint-url", moto_server.endpoint], env)
    try:
        yield server
    finally:
        stop(server.process)


def routed_until(server: Serve, sent: list[int], done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Post messages until an event line satisfies ``done``; every event line since the first post."""
    before = len([line for line in lines(server) if line["message"] == "event"])
    deadline = time.monotonic() + PICK_UP_SECONDS
    while time.monotonic() < deadline:
        sent[0] += 1
        assert server.post("/prod/whatsapp", whatsapp_params(sid=f"SM{sent[0]:032d}")).status == 200
        events = [line for line in lines(server) if line["message"] == "event"][before:]
        if done(events[-1]):
            return events
        time.sleep(0.3)
    raise AssertionError(f"not picked up within {PICK_UP_SECONDS} s: {events[-1]}")


def test_publish_pick_up_refusal_and_rollback_over_http(moto_server: Moto, function: Serve, tmp_path: Path) -> None:
    ops = tmp_path / "ops"
    for folder in ("pipelines", "rules"):
        shutil.copytree(ROOT / folder, ops / folder)
    sent = [0]
    first = routed_until(function, sent, lambda event: True)[-1]
    assert first["rules"]["routing"] == "channel_queue" and "rules_source" not in first

    (ops / "rules" / "40_routing.yaml").write_text(VIP_ROUTING)
    published = cli(moto_server, ops, "publish", "--live", "--note", "VIPs to a person")
    assert published.returncode == 0, published.stdout + published.stderr
    bundle = published.stdout.split("published: bundle ")[1].split()[0]
    started = time.monotonic()
    events = routed_until(function, sent, lambda event: event["rules"]["routing"] == "vip_to_human")
    assert time.monotonic() - started < PICK_UP_SECONDS
    assert events[-1]["rules_source"] == f"bundle {bundle}, revision 1"
    assert events[-1]["target"] == "handoff"

    s3 = moto_server.client("s3")
    broken = Bundle("twilio_inbound", rules_files(BROKEN_ROUTING), "2026-12-01T00:00:00Z", "someone", "")
    s3.put_object(Bucket=BUCKET, Key=bundle_key("rules/", "twilio_inbound", broken.id), Body=broken.to_json())
    key = deployment_key("rules/", "twilio_inbound")
    current = Deployment.from_json(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    changed = current.change(live=broken.id, shadow=None, at="2026-12-01T00:00:00Z", by="someone")
    s3.put_object(Bucket=BUCKET, Key=key, Body=changed.to_json())

    def refused() -> list[dict[str, Any]]:
        return [line for line in lines(function) if line.get("level") == "ERROR" and line.get("bundle") == broken.id]

    deadline = time.monotonic() + PICK_UP_SECONDS
    while not refused() and time.monotonic() < deadline:
        routed_until(function, sent, lambda event: True)
        time.sleep(0.3)
    (error,) = refused()
    assert any(
        problem.startswith("rules/40_routing.yaml:10:20: routing target 'handof'") for problem in error["problems"]
    )
    metrics = [line for line in lines(function) if line.get("RulesBundleErrors") == 1]
    assert metrics and metrics[0]["Pipeline"] == "twilio_inbound"
    after = routed_until(function, sent, lambda event: True)[-1]
    assert (after["rules"]["routing"], after["rules_source"]) == ("vip_to_human", f"bundle {bundle}, revision 1")

    rolled = cli(moto_server, ops, "rollback", "--to", "packaged")
    assert rolled.returncode == 0, rolled.stderr
    events = routed_until(function, sent, lambda event: "rules_source" not in event)
    assert events[-1]["rules"]["routing"] == "channel_queue"


# A shadow candidate behind pipeline-serve (defect: each request ran the handler in a thread of its own, where no
# timer can bound the candidate, so it was never run: no shadow_mismatch line, no shadow metric, only a WARNING; and a
# slow matches() search was not cut off as the Lambda, which runs its handler on the main thread, cuts it off).


def test_a_shadow_candidate_decides_again_behind_pipeline_serve(
    moto_server: Moto, function: Serve, tmp_path: Path
) -> None:
    ops = tmp_path / "ops"
    for folder in ("pipelines", "rules"):
        shutil.copytree(ROOT / folder, ops / folder)
    (ops / "rules" / "40_routing.yaml").write_text(VIP_ROUTING)
    published = cli(moto_server, ops, "publish", "--shadow", "--note", "VIPs to a person?")
    assert published.returncode == 0, published.stdout + published.stderr
    bundle = published.stdout.split("published: bundle ")[1].split()[0]
    sent = [0]
    shadowed = f"bundle {bundle}, revision 1, shadow"
    events = routed_until(
        function, sent, lambda event: any(line.get("CandidateSource") == shadowed for line in lines(function))
    )
    assert events[-1]["rules"]["routing"] == "channel_queue" and events[-1]["target"] == "whatsapp"
    (mismatch, *_) = [line for line in lines(function) if line["message"] == "shadow_mismatch"]
    assert (mismatch["candidate"]["source"], mismatch["candidate"]["rules"]["routing"]) == (shadowed, "vip_to_human")
    (document, *_) = [line for line in lines(function) if line.get("CandidateSource") == shadowed]
    assert (document["ShadowEvaluations"], document["ShadowMismatches"], document["ShadowMismatch.routing"]) == (
        1,
        1,
        1,
    )
    assert not [line for line in lines(function) if "shadow evaluation skipped" in line["message"]]


def test_pipeline_rules_at_an_emulator_needs_no_credentials_as_pipeline_serve_does(
    moto_server: Moto, tmp_path: Path
) -> None:
    """Defect: ``pipeline-rules --endpoint-url`` in a shell with no AWS credentials stopped at boto3's "Unable to
    locate credentials", where ``pipeline-serve --endpoint-url`` gives the emulator stand-ins (an emulator takes any),
    so the local round of docs/rule-bundles.md needed credentials exported by hand first."""
    moto_server.client("s3").create_bucket(Bucket=BUCKET)
    env = {name: value for name, value in base_env(RULES_BUCKET=BUCKET).items() if not name.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    env.update(AWS_EC2_METADATA_DISABLED="true")
    listed = subprocess.run(
        [sys.executable, "-m", "tools.rules", "--endpoint-url", moto_server.endpoint, "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "credentials" not in listed.stderr
    assert listed.returncode == 0, listed.stderr
