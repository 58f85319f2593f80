"""``pipeline-dryrun`` for tests: the bundled examples, a candidate rule change, and the command itself,
run in this process or as a child process."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.masking import form_fields
from tools.dryrun.cli import build_parser
from tools.dryrun.replay import run_replay

ROOT = Path(__file__).resolve().parents[2]
WORLD = ROOT / "examples" / "world.yaml"
EVENTS = ROOT / "examples" / "events"
# A bare "Hi" goes to a person: the first message of the burst (08_burst.jsonl#0) is handed off, so no trigger
# lock is taken and the burst's second message triggers instead of batching (a knock-on, not a rule change).
GREETING_RULE = """rules:
  - id: greeting_to_human
    description: A bare greeting goes to a person.
    when: "request.body == 'Hi'"
    then: {target: handoff}
"""
# The pipeline's settings from the environment: the replays here run with the defaults.
PIPELINE_SETTINGS = (
    "PUBLIC_BASE_URL",
    "ALLOWED_HOSTS",
    "BATCH_WINDOW_SECONDS",
    "TTL_BUFFER_SECONDS",
    "STAGE_TTL_SECONDS",
    "SECRET_CACHE_TTL_SECONDS",
)


def replay_key(event: Mapping[str, Any]) -> str:
    """The id the pipeline keys an event's replay record by: Twilio's MessageSid, an email's ``EM…`` id."""
    if "MessageSid" in form_fields(event):
        return form_fields(event)["MessageSid"]
    from steps.sendgrid import multipart
    from steps.sendgrid.message import read_email

    body = base64.b64decode(event["body"])
    headers = {str(name).lower(): value for name, value in event["headers"].items()}
    return read_email(multipart.parse(body, headers["content-type"]), body).message_id


def greeting_rules(directory: Path) -> Path:
    """A copy of the shipped rules, ``directory/rules``, whose routing sends a bare greeting to a person."""
    return rules_with(directory, GREETING_RULE)


def rules_with(directory: Path, rule: str, routing: str = "40_routing.yaml") -> Path:
    """A copy of the shipped rules, ``directory/rules``, with ``rule`` (YAML) first in the ``routing`` file's rules."""
    rules = directory / "rules"
    shutil.copytree(ROOT / "rules", rules)
    path = rules / routing
    path.write_text(path.read_text().replace("rules:\n", rule, 1))
    return rules


def replay(*args: str | Path) -> tuple[int, str, str]:
    """Run ``pipeline-dryrun ARGS`` in this process: its exit status, what it printed and what it wrote to stderr."""
    out, err = io.StringIO(), io.StringIO()
    status = run_replay(build_parser().parse_args([str(arg) for arg in args]), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def run_dryrun(*args: str | Path, status: int = 0) -> str:
    """Run ``pipeline-dryrun ARGS`` in this process, which must end with ``status``; what it printed."""
    ended, out, err = replay(*args)
    assert ended == status, err
    return out


def without_settings(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the pipeline's settings, so that a child process runs with their defaults."""
    return {name: value for name, value in env.items() if name not in PIPELINE_SETTINGS}


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without its AWS setup nor the pipeline's settings, then ``extra``."""
    return {**without_settings({k: v for k, v in os.environ.items() if not k.startswith("AWS_")}), **extra}


def run_module(module: str, *args: str | Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` from the repository root in ``env``, its output captured (two minutes at most)."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
