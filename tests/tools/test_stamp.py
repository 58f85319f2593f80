"""``python -m tools.stamp ROOT``: a ROOT that is no directory is a usage error, named, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.stamp import main


@pytest.mark.parametrize(("kind", "said"), [("missing", "no such directory"), ("file", "not a directory")])
def test_a_root_that_is_no_directory_is_refused_with_exit_2_and_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, said: str
) -> None:
    root = tmp_path / "task"
    if kind == "file":
        root.write_text("", encoding="utf-8")
    assert main([str(root)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"python -m tools.stamp: error: {root}: {said}\n"
    assert not (tmp_path / "config.stamp.json").exists()


def test_a_plugin_that_does_not_import_stops_the_stamp_as_it_stops_every_tool(tmp_path: Path) -> None:
    """Defect: the build stamp ended a plugin error with exit status 1 and a bare 'error: …' line, where every console
    script (pipeline-dryrun, …) ends it with 2 and '<program>: error: …' (tools.console.console_script), as
    extending.md says every tool does. Now the same status, and the same line under its own name; the build reads
    any status but 0 as a refusal (scripts/build_lambda.py check_and_stamp)."""
    import json
    import subprocess
    import sys

    from runtime.plugins import RECORD_FILE
    from tests.support.plugins import pythonpath, write_project

    write_project(tmp_path)
    (tmp_path / RECORD_FILE).write_text(json.dumps({"plugins": ["steps", "acme_missing"]}), encoding="utf-8")

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *command], cwd=tmp_path, env=pythonpath(), capture_output=True, text=True, timeout=60
        )

    stamped, checked = run("tools.stamp", "."), run("tools.dryrun.cli", "--check")

    said = "pipeline-plugins.json: plugin module 'acme_missing' cannot be imported"
    assert (checked.returncode, checked.stderr.startswith(f"pipeline-dryrun: error: {said}")) == (2, True), checked
    assert (stamped.returncode, stamped.stdout) == (2, ""), stamped
    (line,) = stamped.stderr.splitlines()
    assert line == checked.stderr.strip().replace("pipeline-dryrun", "python -m tools.stamp", 1), line
    assert not (tmp_path / "config.stamp.json").exists()


@pytest.mark.parametrize(("case", "status"), [("unknown_step", 2), ("failing_test", 1)])
def test_the_stamp_refuses_a_configuration_with_the_status_the_check_gives_it(
    tmp_path: Path, case: str, status: int
) -> None:
    """Defect: the build stamp ended every configuration it refused with exit status 1, a pipeline that does not load
    (an unknown step) as a failing inline rule test, where pipeline-dryrun --check (and every tool, tools.console)
    gives a configuration error 2 and keeps 1 for a failed inline test. Run as the build runs it (``python -m
    tools.stamp``), each now ends with the status --check gives it, and still writes no stamp."""
    import subprocess
    import sys

    from tests.support.plugins import pythonpath
    from tests.tools.test_check_broken import assemble

    root = assemble(tmp_path / "task", case)

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *command], cwd=root, env=pythonpath(), capture_output=True, text=True, timeout=120
        )

    stamped, checked = run("tools.stamp", "."), run("tools.dryrun.cli", "--check")

    assert checked.returncode == status, checked.stdout + checked.stderr
    assert stamped.returncode == status, stamped.stdout + stamped.stderr
    assert "the configuration would fail the cold start" in stamped.stderr
    assert not (root / "config.stamp.json").exists()


@pytest.mark.parametrize("held", [[], ["twilio_inbound.YAML"]])
def test_a_root_without_a_pipeline_file_is_refused_as_the_cold_start_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], held: list[str]
) -> None:
    """Defect: a pipelines/ holding no file the cold start reads (empty, or only twilio_inbound.YAML) was stamped,
    exit status 0, and the build shipped an artifact whose every cold start fails ("no pipeline files (*.yaml)
    found", runtime.app.load_pipelines), as pipeline-dryrun --check refuses it too (exit 2). Now the stamp refuses it
    with that problem, exit status 2, and writes no stamp."""
    import shutil

    root = tmp_path / "task"
    shutil.copytree(Path(__file__).resolve().parents[2] / "rules", root / "rules")
    (root / "pipelines").mkdir()
    for name in held:
        (root / "pipelines" / name).write_text("name: twilio_inbound\n", encoding="utf-8")
    assert main([str(root)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{root / 'pipelines'}:1:1: no pipeline files (*.yaml) found\n"
    assert err == "python -m tools.stamp: error: 1 problem(s): the configuration would fail the cold start\n"
    assert not (root / "config.stamp.json").exists()
