"""The built artifact as Lambda runs it: its own files and the runtime's SDK on the path, nothing else.

The build is real (``scripts/build_lambda.py`` for this machine's architecture, so its compiled wheels load here),
which downloads the Lambda wheels: these tests run with ``RUN_BUILD_TESTS=1`` only.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.deploy.cfn import load_template, placeholder
from tests.support.bundles import BUCKET, VIP_ROUTING, Ops, make_bucket, working_copy
from tests.support.email import add_email_world, email_event
from tests.support.moto_endpoint import moto_endpoint
from tests.support.webhooks import rest_event, whatsapp_params
from tests.support.world import World
from tools.localaws import provision

pytestmark = pytest.mark.skipif(
    not os.environ.get("RUN_BUILD_TESTS"), reason="downloads the Lambda wheels (RUN_BUILD_TESTS=1)"
)

# What the python3.11 runtime provides beside the artifact: boto3 and what it brings.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six.py", "jmespath")
ROOT = Path(__file__).resolve().parents[2]
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@pytest.fixture(scope="module")
def artifact(build: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The staged artifact (what ``sam build`` zips), built for this machine."""
    arch = ARCHES.get(platform.machine().lower())
    if arch is None:
        pytest.skip(f"no Lambda architecture for {platform.machine()}")
    stage = tmp_path_factory.mktemp("artifact") / "stage"
    assert build.main(["--arch", arch, "--stage-dir", str(stage), "--no-zip"]) == 0
    return stage


@pytest.fixture(scope="module")
def runtime_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only the SDK the Lambda runtime provides (links into this environment's)."""
    sdk = tmp_path_factory.mktemp("runtime-sdk")
    site = Path(boto3.__file__).resolve().parents[1]
    for name in RUNTIME_SDK:
        (sdk / name).symlink_to(site / name)
    return sdk


def _lambda_env(**resources: str) -> dict[str, str]:
    """The function's environment as the template sets it (each parameter's default), for ``resources``."""
    template = load_template()
    variables = template["Resources"]["PipelineFunction"]["Properties"]["Environment"]["Variables"]
    env = {
        name: placeholder(template, value)
        for name, value in variables.items()
        if not (isinstance(value, dict) and "Fn::If" in value)
    }
    # Capture and rules bundles off (their conditions' else branch); no X-Ray daemon here.
    env.update(CAPTURE_S3_URI="", CAPTURE_KEY_SECRET="", RULES_BUCKET="", TRACING_ENABLED="false")
    env.update(resources)
    return {
        **env,
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "LOG_LEVEL": "WARNING",
    }


def _run_in_lambda(artifact: Path, sdk: Path, env: dict[str, str], script: str) -> Any:
    """Run ``script`` after ``import handler`` with only the artifact and the SDK importable; its last line's JSON."""
    code = "\n".join([f"import sys; sys.path[:0] = [{str(artifact)!r}, {str(sdk)!r}]", "import handler", script])
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], cwd="/", env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_artifact_starts_from_its_stamp_with_the_runtime_sdk_alone(artifact: Path, runtime_sdk: Path) -> None:
    tables = {f"{role}_TABLE_NAME": f"t-{role.lower()}" for role in ("CONVERSATIONS", "STAGE", "LOCK", "REPLAY")}
    queues = {f"{q}_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/1/{q}" for q in ("WHATSAPP", "SMS", "HANDOFF")}
    loaded = _run_in_lambda(
        artifact,
        runtime_sdk,
        _lambda_env(**tables, **queues, EMAIL_QUEUE_URL=""),
        "import json; print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))",
    )
    # The build's stamp vouched for the configuration: no YAML parsing, no JSON Schema validation at the cold start.
    assert not {"yaml", "jsonschema", "cryptography"} & set(loaded)
    assert not {"tools", "tests", "moto", "pytest"} & set(loaded)
    assert {"handler", "engine", "runtime", "steps", "twilio", "boto3"} <= set(loaded)


def test_the_artifact_s_dependencies_are_the_versions_the_project_was_tested_with(artifact: Path) -> None:
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    shipped = {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in (
            info.name.removesuffix(".dist-info").rsplit("-", 1) for info in artifact.glob("*.dist-info")
        )
    }
    tested = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins.items()}
    assert {"twilio", "pyyaml", "jsonschema", "cryptography"} <= shipped.keys()
    assert {name: version for name, version in shipped.items() if tested.get(name) != version} == {}


def test_the_artifact_holds_no_test_suite_nor_anything_that_imports_a_test_tool(artifact: Path) -> None:
    def named(paths: Iterator[Path]) -> list[str]:
        return sorted(path.relative_to(artifact).as_posix() for path in paths)

    assert named(p for p in artifact.rglob("*") if p.name in {"tests", "benchmarks"}) == []
    tools = re.compile(r"^\s*(?:import|from)\s+(?:pytest|moto|hypothesis|pyperf|tools|tests)\b", re.MULTILINE)
    assert named(p for p in artifact.rglob("*.py") if tools.search(p.read_text(encoding="utf-8"))) == []
    assert not (artifact / "tools").exists() and not (artifact / "tests").exists()


@pytest.fixture
def moto_world() -> Iterator[tuple[str, World]]:
    with moto_endpoint() as endpoint:
        clients = (boto3.client(s, endpoint_url=endpoint, region_name="us-east-1") for s in ("dynamodb", "sqs"))
        dynamodb, sqs = clients
        resources = provision(dynamodb, sqs)
        secrets = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1")
        yield endpoint, World(dynamodb, sqs, secrets, resources)


def test_the_artifact_answers_a_webhook_as_deployed(
    artifact: Path, runtime_sdk: Path, moto_world: tuple[str, World]
) -> None:
    endpoint, world = moto_world
    item = world.add_conversation()
    world.add_default_secrets()
    event = rest_event("whatsapp", whatsapp_params())
    env = _lambda_env(**world.resources.environment(), AWS_ENDPOINT_URL=endpoint)
    script = (
        "import json\n"
        "class Context:\n"
        "    aws_request_id = 'req-1'\n"
        "    def get_remaining_time_in_millis(self): return 12000\n"
        f"print(json.dumps(handler.handler(json.loads({json.dumps(event)!r}), Context())))"
    )
    answer = _run_in_lambda(artifact, runtime_sdk, env, script)
    assert answer["statusCode"] == 200 and "<Response" in answer["body"]
    assert [row["conversation_id"] for row in world.stage_rows()] == [item["conversation_id"]]
    (trigger,) = world.sent("whatsapp")
    assert trigger[0] == {"conversation_id": item["conversation_id"], "primary_channel": item["primary_channel"]}


def test_the_artifact_serves_both_pipelines_with_a_rules_bundle_and_event_capture(
    artifact: Path, runtime_sdk: Path, moto_world: tuple[str, World], tmp_path: Path
) -> None:
    # As the template deploys it by default (RuleBundles=enabled), with EventCapture=on: the bundle is read,
    # verified (YAML and JSON Schema, from the artifact) and decides; the email's signature needs cryptography.
    endpoint, world = moto_world
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    make_bucket(s3)
    s3.create_bucket(Bucket="captures")
    ops = Ops(s3, working_copy(tmp_path / "ops"))
    ops.edit("40_routing.yaml", VIP_ROUTING)
    ops.publish("--live")
    vip = world.add_conversation(vip=True)
    world.add_default_secrets()
    emailer = add_email_world(world)
    events = [rest_event("whatsapp", whatsapp_params()), email_event()]
    env = _lambda_env(
        **world.resources.environment(),
        AWS_ENDPOINT_URL=endpoint,
        RULES_BUCKET=BUCKET,
        CAPTURE_S3_URI="s3://captures/events/",
    )
    script = (
        "import json\n"
        "class Context:\n"
        "    aws_request_id = 'req-1'\n"
        "    def get_remaining_time_in_millis(self): return 12000\n"
        f"answers = [handler.handler(event, Context()) for event in json.loads({json.dumps(events)!r})]\n"
        "print(json.dumps(answers))"
    )
    whatsapp, email = _run_in_lambda(artifact, runtime_sdk, env, script)
    assert whatsapp["statusCode"] == 200 and "<Response" in whatsapp["body"]
    assert (email["statusCode"], json.loads(email["body"])["outcome"]) == (200, "QUEUED")

    (handed_off,) = world.sent("handoff")
    assert handed_off[0]["conversation"]["conversation_id"] == vip["conversation_id"]
    (trigger,) = world.sent("email")
    assert trigger[0] == {"conversation_id": emailer["conversation_id"], "primary_channel": emailer["primary_channel"]}
    assert world.sent("whatsapp") == []
    assert s3.list_objects_v2(Bucket="captures", Prefix="events/")["KeyCount"] == 2
