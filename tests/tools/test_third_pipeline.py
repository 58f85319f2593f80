"""A third pipeline beside the shipped ones, as docs/extending.md has a new developer add it, seen by every tool.

The status callback of ``tests/fixtures/status_webhook`` (its steps a plugin added with ``PIPELINE_PLUGINS``, its
pipeline file and its own rules file naming it) is copied into a project holding the shipped configuration.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from engine.config import load_config
from runtime.app import Application
from runtime.layout import pipeline_files, yaml_files
from tests.support.expect import ENV, ROOT
from tests.support.plugins import STATUS_PLUGIN, plugin_loaded, pythonpath, write_status_events
from tests.support.shipped import configuration_files, deployed_env, inline_tests

FIXTURE = ROOT / "tests" / "fixtures" / "status_webhook"


def project(root: Path) -> Path:
    shutil.copytree(ROOT / "pipelines", root / "pipelines")
    shutil.copytree(ROOT / "rules", root / "rules")
    shutil.copy(FIXTURE / "pipelines" / "status_inbound.yaml", root / "pipelines")
    shutil.copy(FIXTURE / "rules" / "70_status_screening.yaml", root / "rules")
    return root


def fax_project(root: Path) -> Path:
    """The shipped configuration and a third pipeline, ``fax_inbound`` (the email pipeline's steps and rules on the
    channel ``fax``), whose queue is a variable of its own with no default, ``${env:FAX_QUEUE_URL}``; its file."""
    shutil.copytree(ROOT / "pipelines", root / "pipelines")
    shutil.copytree(ROOT / "rules", root / "rules")
    email = (ROOT / "pipelines" / "email_inbound.yaml").read_text(encoding="utf-8")
    fax = email.replace("pipeline: email_inbound", "pipeline: fax_inbound").replace("[email]", "[fax]", 1)
    (root / "pipelines" / "fax_inbound.yaml").write_text(
        fax.replace("${env:EMAIL_QUEUE_URL:-}", "${env:FAX_QUEUE_URL}")
    )
    for path in yaml_files(root / "rules"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("pipelines: [email_inbound]", "pipelines: [email_inbound, fax_inbound]"), "utf-8")
    return root / "pipelines" / "fax_inbound.yaml"


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**pythonpath(), "PIPELINE_PLUGINS": STATUS_PLUGIN, "STATUS_TABLE_NAME": "statuses"}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_check_reads_the_third_pipeline_and_runs_its_rules_inline_tests(tmp_path: Path) -> None:
    done = run(project(tmp_path), "tools.dryrun.cli", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status_inbound" not in done.stdout and "70_status_screening" not in done.stdout, done.stdout
    files, tests = configuration_files() + 2, inline_tests() + 2
    assert f"checked {files} files: 0 errors" in done.stderr and f"inline tests: {tests} passed" in done.stderr


def test_the_build_stamp_vouches_for_the_third_pipeline_and_its_rules(tmp_path: Path) -> None:
    root = project(tmp_path)
    done = run(root, "tools.stamp", ".")
    assert done.returncode == 0, done.stdout + done.stderr
    stamped = json.loads((root / "config.stamp.json").read_text(encoding="utf-8"))["files"]
    assert {"pipelines/status_inbound.yaml", "rules/70_status_screening.yaml"} <= set(stamped)


def test_the_editor_schemas_know_the_plugin_s_steps(tmp_path: Path) -> None:
    done = run(project(tmp_path), "tools.schema_export", "--out", str(tmp_path / "schemas"))
    assert done.returncode == 0, done.stderr
    schema = (tmp_path / "schemas" / "pipeline.schema.json").read_text(encoding="utf-8")
    assert all(f'"{step}"' in schema for step in ("status.parse", "status.screen", "status.record")), schema[:400]
    assert '"STATUS_WRITE_TRANSIENT_ERROR"' in schema


def test_pipeline_event_names_the_third_pipeline_s_channel_it_cannot_build(tmp_path: Path) -> None:
    # Before: a traceback, the channels listed for --channel before the plugin declaring the pipeline's table loaded.
    args = ("tools.dryrun.event_cli", "build", "--channel", "status", "--from", "a", "--to", "b")
    done = run(project(tmp_path), *args)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (
        "pipeline-event: error: channel 'status' is parsed by status.parse (pipeline status_inbound), which "
        "pipeline-event cannot build; it builds events for the channels of sendgrid.parse, twilio.parse: email, sms, "
        "whatsapp\n"
    )


def test_the_dry_run_replays_the_third_pipeline_s_events_with_its_rules(tmp_path: Path) -> None:
    root = project(tmp_path)
    events, world = write_status_events(tmp_path)
    done = run(root, "tools.dryrun.cli", "--json", "--world", str(world), str(events))
    assert done.returncode == 0, done.stderr
    outcomes = [(line["pipeline"], line["outcome"]) for line in map(json.loads, done.stdout.splitlines())]
    assert outcomes == [("status_inbound", "STATUS_CALLBACK"), ("status_inbound", "STATUS_IGNORED")]


def test_check_warns_of_a_table_the_dry_run_cannot_create(tmp_path: Path) -> None:
    # Before: --check passed it, while the dry-run and pipeline-serve refused the pipeline for it.
    root = project(tmp_path)
    pipeline = root / "pipelines" / "status_inbound.yaml"
    text = pipeline.read_text(encoding="utf-8")
    pipeline.write_text(text.replace("tables:\n", "tables:\n  outbox: outbox\n", 1), encoding="utf-8")
    done = run(root, "tools.dryrun.cli", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "outbox" in line]
    assert line.startswith("pipelines/status_inbound.yaml:6:11: warning: table role 'outbox' has no known key schema")
    assert line.endswith("; the dry-run and pipeline-serve refuse the pipeline: local AWS cannot be made for it")


def test_the_tests_environment_gives_a_table_a_new_step_keeps_its_variable(tmp_path: Path) -> None:
    """Before: the tests' environments (ENV and five more) listed today's variables by hand, so a step keeping a table
    (``statuses: ${env:STATUS_TABLE_NAME}``) failed some 60 tests with "environment variable … is not set"."""
    root = project(tmp_path)
    with plugin_loaded(STATUS_PLUGIN):
        env = deployed_env(ENV, root / "pipelines")
        assert env["STATUS_TABLE_NAME"] == "statuses" and env["STAGE_TABLE_NAME"] == ENV["STAGE_TABLE_NAME"]
        assert "EMAIL_QUEUE_URL" not in env  # has a default: a test that sets it means to
        for path in pipeline_files(root / "pipelines"):
            assert load_config(path, root / "rules", env).name


def test_the_tests_environment_gives_a_new_queue_a_url_in_the_region_of_the_queues_it_was_given(
    tmp_path: Path,
) -> None:
    """Before: a queue variable of a new pipeline (``${env:FAX_QUEUE_URL}``) was given the local world's URL, in
    us-east-1, beside queues the test gave in eu-west-1: a cold start in eu-west-1 (tests/tools/test_check_yaml_mishaps)
    refused the configuration ("the queue of target email is in us-east-1 but the function runs in eu-west-1")."""
    fax_project(tmp_path)
    base = "https://sqs.eu-west-1.amazonaws.com/000000000000/"
    known = {**ENV, **{name: base + name.lower() for name in ENV if name.endswith("_QUEUE_URL")}}

    env = deployed_env(known, tmp_path / "pipelines")

    assert env["FAX_QUEUE_URL"] == base + "fax"
    application = Application.from_root(tmp_path, {**env, "AWS_DEFAULT_REGION": "eu-west-1"})
    assert application.pipeline("fax_inbound").targets["email"]["queue_url"] == base + "fax"
