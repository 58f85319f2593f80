"""A project with a plugin package outside ``steps/``, as a new developer would write one (tests of the plugin list).

``acme_echo`` registers ``acme.parse`` and imports nothing from ``steps``: its pipeline also uses ``control.finish``,
a built-in step, so it loads only when the host loads the built-in steps as well as the declared plugin.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from engine import registry
from steps import support
from tests.support.expect import ROOT
from tools.events import rest_event

__all__ = [
    "PLUGIN",
    "STATUS_PLUGIN",
    "acme_event",
    "copy_tree",
    "plugin_loaded",
    "pythonpath",
    "run_handler",
    "step_registered",
    "write_project",
    "write_status_events",
]

PLUGIN = "acme_echo"
# A third webhook source's steps (tests/fixtures/status_webhook), with a table of their own.
STATUS_PLUGIN = "tests.fixtures.status_webhook.status_steps"

PLUGIN_SOURCE = '''"""A plugin outside steps/: ``acme.parse`` reads a JSON post on the pipeline's channels."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.context import Context, StepResult
from engine.errors import ErrorSpec, StepFailure
from engine.http import HttpRequest
from engine.registry import BuildInfo, register

PARSING_ERROR = ErrorSpec("PARSING_ERROR", description="the request is not a JSON object")


@register("acme.parse", provides="request", errors=(PARSING_ERROR,), params={"type": "object"})
class AcmeParse:
    """Read the JSON post: its ``id`` and ``text``."""

    def __init__(self, params: Mapping[str, Any], info: BuildInfo) -> None:
        self._channels = frozenset(info.channels)

    def run(self, ctx: Context) -> StepResult:
        http = ctx.event
        if not isinstance(http, HttpRequest) or http.channel not in self._channels:
            raise StepFailure(PARSING_ERROR.code, "not a post to an acme channel")
        data = json.loads(http.text())
        return StepResult(output={"channel": http.channel, "id": data["id"]}, decision="acme message")
'''

PIPELINE = """pipeline: acme_inbound
channels: [acme]
steps:
  - id: parse
    uses: {parse}
  - id: done
    uses: control.finish
    with: {{outcome: QUEUED}}
responses:
  api:
    default: true
    format: json
    status: {{PARSING_ERROR: 400}}
"""


def write_project(root: Path, *, declare: bool = True, step: str = "acme.parse") -> Path:
    """A project under ``root``: the plugin package, a pipeline using its step, and the pyproject naming it."""
    (root / PLUGIN).mkdir(parents=True)
    (root / PLUGIN / "__init__.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    (root / "pipelines").mkdir()
    (root / "pipelines" / "acme_inbound.yaml").write_text(PIPELINE.format(parse=step), encoding="utf-8")
    (root / "rules").mkdir()
    table = f'\n[tool.inbound-pipeline]\nplugins = ["{PLUGIN}"]\n' if declare else ""
    (root / "pyproject.toml").write_text(f'[project]\nname = "acme"\ndependencies = []\n{table}', encoding="utf-8")
    return root


def pythonpath(*roots: Path) -> dict[str, str]:
    """This process's environment with ``roots`` (then the project under test) first on the module path."""
    env = {key: value for key, value in os.environ.items() if key != "PIPELINE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([*(str(root) for root in roots), str(ROOT)])
    return env


def acme_event() -> dict[str, Any]:
    """A post to the ``acme`` channel."""
    body = json.dumps({"id": "m-1", "text": "hello"})
    return rest_event("POST", "/prod/acme", host="hooks.example.com", body=body, request_id="r-1", request_time_ms=1)


def write_status_events(folder: Path) -> tuple[Path, Path]:
    """Two status callbacks (delivered, then queued) in ``folder/events``, and a world pinning ``now``: their paths."""
    events = folder / "events"
    events.mkdir()
    for number, status in enumerate(("delivered", "queued"), 1):
        body = json.dumps({"id": f"m-{number}", "status": status})
        event = rest_event("POST", "/prod/status", host="h.example.com", body=body, request_id="r", request_time_ms=1)
        (events / f"{number}.json").write_text(json.dumps(event), encoding="utf-8")
    world = folder / "world.yaml"
    world.write_text('now: "2026-11-25T12:00:00Z"\n', encoding="utf-8")
    return events, world


def run_handler(task_root: Path, event: dict[str, Any]) -> dict[str, Any]:
    """The answer of ``handler.handler`` imported from ``task_root`` alone (a fresh interpreter, as Lambda does)."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PIPELINE_PLUGINS")}
    env.update(AWS_ENDPOINT_URL="http://127.0.0.1:9", LOG_LEVEL="WARNING", METRICS_ENABLED="false")
    code = "import json, sys, handler; print(json.dumps(handler.handler(json.load(sys.stdin), None)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=task_root,
        env=env,
        input=json.dumps(event),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def copy_tree(source: Path, target: Path) -> None:
    """``source`` copied to ``target`` without byte-code caches."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))


@contextmanager
def plugin_loaded(module: str) -> Iterator[ModuleType]:
    """``module`` imported afresh; its steps and table keys are registered inside the block only (both are global)."""
    steps, keys = dict(registry._REGISTRY), dict(support._TABLE_KEYS)
    sys.modules.pop(module, None)
    try:
        yield importlib.import_module(module)
    finally:
        sys.modules.pop(module, None)
        registry._REGISTRY.clear()
        registry._REGISTRY.update(steps)
        support._TABLE_KEYS.clear()
        support._TABLE_KEYS.update(keys)


@contextmanager
def step_registered(name: str, step: type, **declared: Any) -> Iterator[str]:
    """``step`` registered as ``name`` (``registry.register`` with ``declared``) inside the block only; its name."""
    registry.register(name, **declared)(step)
    try:
        yield name
    finally:
        registry._REGISTRY.pop(name)
