"""Finding plugins: a step module dropped into ``steps/``, and a plugin package outside it named in pyproject.toml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.plugins import BUILTIN_PLUGINS, RECORD_FILE, PluginError, declared_plugins, plugin_modules
from tests.support.expect import ROOT
from tests.support.plugins import PLUGIN, acme_event, copy_tree, pythonpath, write_project

STEP = '''"""A step nobody imports by name."""

from engine.context import StepResult
from engine.registry import register


@register("{name}")
class Probe:
    """Do nothing."""

    def __init__(self, params, info):
        pass

    def run(self, ctx):
        return StepResult()
'''


def _python(code: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_a_step_module_dropped_into_steps_registers_without_editing_the_package(tmp_path: Path) -> None:
    copy_tree(ROOT / "steps", tmp_path / "steps")
    (tmp_path / "steps" / "probe.py").write_text(STEP.format(name="probe.module"), encoding="utf-8")
    (tmp_path / "steps" / "probepkg").mkdir()
    (tmp_path / "steps" / "probepkg" / "__init__.py").write_text("from steps.probepkg import step\n", encoding="utf-8")
    (tmp_path / "steps" / "probepkg" / "step.py").write_text(STEP.format(name="probe.package"), encoding="utf-8")
    (tmp_path / "steps" / "probepkg" / "helper.py").write_text("raise AssertionError('imported')\n", encoding="utf-8")
    code = (
        "import sys, json; from runtime.plugins import load_plugins; from engine import registry; load_plugins(); "
        "modules = sorted(m for m in sys.modules if m.startswith('steps')); "
        "print(json.dumps({'steps': registry.names(), 'modules': modules}))"
    )
    done = _python(code, pythonpath(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert {"probe.module", "probe.package", "twilio.parse", "sendgrid.parse", "control.finish"} <= set(found["steps"])
    assert "steps.probepkg.helper" not in found["modules"]


def test_discovery_leaves_the_building_blocks_inside_subpackages_alone() -> None:
    # steps.sendgrid.multipart and message pull in the email package: imported on first use, never at cold start.
    code = "import sys, steps; print(' '.join(sorted(m for m in sys.modules if m.startswith('steps'))))"
    done = _python(code, pythonpath())
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert {"steps.control", "steps.support", "steps.twilio.parse", "steps.sendgrid.signature"} <= loaded
    assert not loaded & {"steps.sendgrid.multipart", "steps.sendgrid.message"}


def check(project: Path) -> subprocess.CompletedProcess[str]:
    """``pipeline-dryrun --check`` run in ``project``, with its plugin packages importable."""
    return subprocess.run(
        [sys.executable, "-m", "tools.dryrun.cli", "--check"],
        cwd=project,
        env=pythonpath(project),
        capture_output=True,
        text=True,
    )


def test_declared_plugins_add_to_the_built_in_steps(tmp_path: Path) -> None:
    assert declared_plugins(tmp_path, {}) == BUILTIN_PLUGINS == ("steps",)
    write_project(tmp_path)
    assert declared_plugins(tmp_path, {}) == ("steps", PLUGIN)
    # PIPELINE_PLUGINS adds modules; naming ``steps`` again (as it once had to) changes nothing.
    assert declared_plugins(tmp_path, {"PIPELINE_PLUGINS": f" steps, extra ,{PLUGIN}"}) == ("steps", PLUGIN, "extra")


def test_a_malformed_declaration_is_refused_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.inbound-pipeline]\nplugins = "acme"\n', encoding="utf-8")
    with pytest.raises(PluginError, match=r"pyproject\.toml: \[tool\.inbound-pipeline\] plugins"):
        declared_plugins(tmp_path, {})
    (tmp_path / "pyproject.toml").write_text('[tool.inbound-pipeline]\nplugins = ["acme-x"]\n', encoding="utf-8")
    with pytest.raises(PluginError, match="'acme-x' is not a module name"):
        declared_plugins(tmp_path, {})
    (tmp_path / "pyproject.toml").write_text("[tool\n", encoding="utf-8")
    with pytest.raises(PluginError, match=r"pyproject\.toml"):
        declared_plugins(tmp_path, {})


def test_an_artifact_loads_the_plugins_its_build_recorded(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / RECORD_FILE).write_text(json.dumps({"plugins": ["steps", "built"]}), encoding="utf-8")
    # What the build validated, whatever the environment of the function says.
    assert plugin_modules({"PIPELINE_PLUGINS": "other"}, tmp_path) == ("steps", "built")
    (tmp_path / RECORD_FILE).unlink()
    assert plugin_modules({"PIPELINE_PLUGINS": "other"}, tmp_path) == ("steps", PLUGIN, "other")


def test_a_plugin_package_outside_steps_is_loaded_by_check_and_the_dry_run(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    env = pythonpath(project)
    done = check(project)
    assert done.returncode == 0, done.stdout + done.stderr
    events = tmp_path / "events"
    events.mkdir()
    (events / "acme.json").write_text(json.dumps(acme_event()), encoding="utf-8")
    (tmp_path / "world.yaml").write_text("now: '2026-11-25T12:00:00Z'\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tools.dryrun.cli", "--world", str(tmp_path / "world.yaml"), "--json", str(events)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert line["outcome"] == "QUEUED" and line["pipeline"] == "acme_inbound"


def test_an_undeclared_plugin_is_an_unknown_step_for_check(tmp_path: Path) -> None:
    project = write_project(tmp_path, declare=False)
    done = check(project)
    assert done.returncode == 2
    assert "pipelines/acme_inbound.yaml:5:" in done.stdout and "acme.parse" in done.stdout
    # Before: "unknown step 'acme.parse'; registered steps: …", never saying a plugin's steps need the plugin loaded.
    (line,) = [line for line in done.stdout.splitlines() if "unknown step 'acme.parse'" in line]
    assert line.endswith(
        "list its module in pyproject.toml [tool.inbound-pipeline] plugins "
        "(or PIPELINE_PLUGINS for one run; docs/extending.md)"
    )


def test_a_new_pipeline_beside_the_shipped_ones_need_not_declare_the_codes_of_rule_sets_it_never_runs(
    tmp_path: Path,
) -> None:
    # extending.md: a third pipeline whose steps name none of the shared sets (rules/10-30 decide codes such as
    # PROJECT_INACTIVE that only the pipelines running them declare) passes --check as written.
    project = write_project(tmp_path / "project")
    for folder in ("pipelines", "rules"):
        for path in (ROOT / folder).glob("*.yaml"):
            (project / folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    done = check(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unknown error code" not in done.stdout and "never run" not in done.stdout, done.stdout


def _tool_runs(events: Path) -> dict[str, list[str]]:
    """Every console script, with arguments that get it as far as loading the plugins."""
    return {
        "pipeline-dryrun --check": ["tools.dryrun.cli", "--check"],
        "pipeline-dryrun (replay)": ["tools.dryrun.cli", str(events)],
        "pipeline-rules list": ["tools.rules", "--bucket", "rules-bucket", "list"],
        "pipeline-event mask": ["tools.dryrun.event_cli", "mask", str(events / "acme.json")],
        "pipeline-world snapshot": ["tools.dryrun.world_cli", "snapshot", "--user", "+15550000001"],
        "pipeline-serve": ["tools.serve", "--port", "0"],
        "make schemas": ["tools.schema_export", "--out", str(events.parent / "schemas")],
    }


# The name a tool's one-line error starts with, where it is not the console script's (the first word).
PROGS = {"make schemas": "python -m tools.schema_export"}


@pytest.mark.parametrize("tool", list(_tool_runs(Path("events"))))
def test_a_declared_plugin_that_does_not_import_is_a_plain_configuration_error(tmp_path: Path, tool: str) -> None:
    project = write_project(tmp_path / "project")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace(PLUGIN, "acme_missing"), encoding="utf-8")
    events = tmp_path / "events"
    events.mkdir()
    (events / "acme.json").write_text(json.dumps(acme_event()), encoding="utf-8")
    tables = {name: "t" for name in ("CONVERSATIONS_TABLE_NAME", "LOCK_TABLE_NAME", "STAGE_TABLE_NAME")}
    done = subprocess.run(
        [sys.executable, "-m", *_tool_runs(events)[tool]],
        cwd=project,
        env={**pythonpath(project), **tables, "REPLAY_TABLE_NAME": "t"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Exit 2: bad configuration (1 would say an inline rule test failed), in one line naming the plugin and its list.
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    (line,) = done.stderr.splitlines()
    assert PROGS.get(tool, tool.split()[0]) + ": error: pyproject.toml [tool.inbound-pipeline] plugins: " in line
    assert "'acme_missing' cannot be imported" in line


def test_a_plugin_module_that_fails_to_import_something_is_located(tmp_path: Path) -> None:
    # A new step module importing what is not installed: the one-line error names the file and line that imports it.
    project = write_project(tmp_path / "project")
    source = project / PLUGIN / "__init__.py"
    text = source.read_text(encoding="utf-8") + "import acme_sdk_not_installed\n"
    source.write_text(text, encoding="utf-8")
    done = check(project)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert "No module named 'acme_sdk_not_installed'" in line
    assert f"{source}:{text.count(chr(10))}" in line, line


def test_the_build_stamp_names_the_record_listing_a_plugin_that_does_not_import(tmp_path: Path) -> None:
    # Before: "error: plugin module 'acme_missing' cannot be imported", without the list that named it.
    write_project(tmp_path)
    (tmp_path / RECORD_FILE).write_text(json.dumps({"plugins": ["steps", "acme_missing"]}), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tools.stamp", str(tmp_path)],
        env=pythonpath(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # as every tool ends a plugin error (tools.console.console_script)
    (line,) = done.stderr.splitlines()
    said = f"{tmp_path / RECORD_FILE}: plugin module 'acme_missing' cannot be imported"
    assert line.startswith(f"python -m tools.stamp: error: {said}"), line
