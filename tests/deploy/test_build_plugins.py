"""The build and the plugin list: a declared plugin is copied, recorded and loaded; a pipeline that cannot load fails.

The function layer of ``scripts/build_lambda.py``, with the dependencies left to this virtualenv (nothing downloaded).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from runtime.plugins import RECORD_FILE
from tests.support.expect import ROOT
from tests.support.plugins import PLUGIN, acme_event, copy_tree, run_handler, write_project


def _project(root: Path, **kwargs: str | bool) -> Path:
    """A project with this one's function code and an ``acme_echo`` plugin, its pipeline and declaration."""
    write_project(root, **kwargs)  # type: ignore[arg-type]
    for package in ("engine", "runtime", "steps"):
        copy_tree(ROOT / package, root / package)
    (root / "handler.py").write_text((ROOT / "handler.py").read_text(encoding="utf-8"), encoding="utf-8")
    return root


def _stage(build: ModuleType, project: Path, stage: Path) -> tuple[tuple[str, ...], bool, str]:
    plugins = build.project_plugins(project, {})
    build.copy_sources(build.source_files(project, plugins), stage)
    build.record_plugins(stage, plugins)
    return (plugins, *build.check_and_stamp(stage))


def test_the_build_copies_records_and_stamps_a_declared_plugin(build, tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    stage = tmp_path / "stage"
    plugins, loads, report = _stage(build, project, stage)
    assert plugins == ("steps", PLUGIN)
    assert loads, report
    assert (stage / PLUGIN / "__init__.py").is_file() and (stage / "steps" / "control.py").is_file()
    assert build.missing_first_party(build.source_files(project, plugins), plugins=plugins) == []
    assert json.loads((stage / RECORD_FILE).read_text(encoding="utf-8")) == {"plugins": ["steps", PLUGIN]}
    stamp = json.loads((stage / "config.stamp.json").read_text(encoding="utf-8"))
    assert "pipelines/acme_inbound.yaml" in stamp["files"]
    # The staged artifact alone (no pyproject.toml, no PYTHONPATH): its handler loads the plugin and routes its channel.
    answer = run_handler(stage, acme_event())
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["outcome"] == "QUEUED"


def test_a_pipeline_naming_an_unknown_step_fails_the_build_before_any_download(
    build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path / "project", step="acme.parse_typo")

    def no_download(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("resolved dependencies for a build that cannot succeed")

    monkeypatch.setattr(build, "resolve", no_download)
    status = build.main(["--project", str(project), "--stage-dir", str(tmp_path / "stage"), "--no-zip"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "pipelines/acme_inbound.yaml:5:11: " in out and "'acme.parse_typo'" in out and "acme.parse" in out


def test_an_undeclared_plugin_fails_the_build_with_the_unknown_step(build, tmp_path: Path) -> None:
    # Before: the build left the pipeline out of the stamp, exited 0, and the artifact failed at cold start.
    plugins, loads, report = _stage(build, _project(tmp_path / "project", declare=False), tmp_path / "stage")
    assert plugins == ("steps",)
    assert not loads and "pipelines/acme_inbound.yaml:5:11: " in report and "'acme.parse'" in report
    assert not (tmp_path / "stage" / "config.stamp.json").exists()


def test_a_declared_plugin_the_project_lacks_fails_the_build(build, tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    with pytest.raises(build.BuildError, match="plugin 'acme_missing'"):
        build.source_files(project, ("steps", PLUGIN, "acme_missing"))
    (project / "pyproject.toml").write_text('[tool.inbound-pipeline]\nplugins = ["acme_missing"]\n', encoding="utf-8")
    assert build.main(["--project", str(project), "--stage-dir", str(tmp_path / "stage"), "--no-zip"]) == 1
