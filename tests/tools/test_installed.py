"""The project as a user installs it (non-editable) and as its sdist carries it.

A copy of this checkout's files (``git ls-files``) is built with setuptools directly, no download: ``build_py``
lays out what the wheel installs (its packages, modules and package data), ``build_sdist`` makes the sdist. The
tools then run from that layout with ``python -P`` in the copy (the project's directory), so only the installed
modules are importable, never the source tree's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.expect import ROOT
from tests.support.shipped import deployed_env, pipeline_channels

PACKAGES = ("engine", "runtime", "steps", "tools")
# The function's environment (contract §1): names only, nothing is called before a request.
SERVE_ENV = deployed_env(
    {
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CONVERSATIONS_TABLE_NAME": "conversations",
        "STAGE_TABLE_NAME": "stage",
        "LOCK_TABLE_NAME": "lock",
        "REPLAY_TABLE_NAME": "replay",
        "ALLOWED_HOSTS": "127.0.0.1",
        "WHATSAPP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/w",
        "SMS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/s",
        "HANDOFF_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/h",
        "EMAIL_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/e",
    }
)


def _git_files(*options: str) -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z", *options], cwd=ROOT, capture_output=True, check=True).stdout
    return sorted(name for name in listed.decode().split("\0") if name and (ROOT / name).is_file())


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    """The project's files as committed (less those deleted since)."""
    return _git_files()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout as it is now (committed and new files, less what git ignores)."""
    copy = tmp_path_factory.mktemp("project")
    for name in _git_files("--cached", "--others", "--exclude-standard"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    return copy


def _setuptools(project: Path, code: str) -> None:
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], cwd=project, capture_output=True, text=True, check=True
    )


@pytest.fixture(scope="module")
def installed(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the wheel installs into site-packages (``build_py``: the wheel's files, less its metadata)."""
    site = tmp_path_factory.mktemp("site")
    _setuptools(project, f"from setuptools import setup; setup(script_args=['-q', 'build_py', '-d', {str(site)!r}])")
    return site


@pytest.fixture(scope="module")
def sdist(project: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The sdist's members, relative to its top folder."""
    out = tmp_path_factory.mktemp("sdist")
    _setuptools(project, f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})")
    (archive,) = out.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        return sorted(member.name.split("/", 1)[1] for member in tar.getmembers() if member.isfile())


def _run(installed: Path, project: Path, code: str, **kwargs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-c", f"import sys; {code}"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(installed), **kwargs},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_wheel_holds_every_file_of_the_packages(installed: Path, tracked: list[str]) -> None:
    """Data files beside the modules too: the report page reads report_page.css and report_page.js."""
    shipped = [name for name in tracked if name.startswith(tuple(f"{package}/" for package in PACKAGES))]
    assert "tools/dryrun/report_page.css" in shipped
    assert [name for name in shipped if not (installed / name).is_file()] == []
    assert (installed / "handler.py").is_file()
    assert not (installed / "tests").exists()
    assert not (installed / "pipelines").exists()


def test_the_sdist_holds_the_whole_project(sdist: list[str], tracked: list[str]) -> None:
    """Configuration, tests, docs, the Lambda build and CI: the sdist can rebuild and validate the project."""
    assert [name for name in tracked if name not in sdist] == []
    assert [name for name in sdist if "__pycache__" in name or name.endswith(".pyc")] == []


def test_the_installed_dryrun_writes_the_report_page(installed: Path, project: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    done = _run(
        installed,
        project,
        "from tools.dryrun.cli import main; "
        f"sys.exit(main(['--world', 'examples/world.yaml', '--report', {str(report)!r}, 'examples/events']))",
    )
    assert "Traceback" not in done.stderr, done.stderr[-1500:]
    assert done.returncode == 0, done.stderr[-1500:]
    assert "</html>" in report.read_text(encoding="utf-8")


def test_the_installed_tools_are_the_ones_run(installed: Path, project: Path) -> None:
    done = _run(installed, project, "import tools; print(tools.__file__)")
    assert done.stdout.strip() == str(installed / "tools" / "__init__.py")


def test_the_installed_event_builder_offers_the_projects_channels(installed: Path, project: Path) -> None:
    done = _run(
        installed,
        project,
        "from tools.dryrun.event_cli import main; sys.exit(main(['build', '--help']))",
    )
    assert done.returncode == 0, done.stderr[-800:]
    assert f"--channel {{{','.join(pipeline_channels())}}}" in done.stdout


def test_the_installed_server_serves_the_projects_pipelines(installed: Path, project: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-P", "-c", "import sys; from tools.serve import main; sys.exit(main(['--port', '0']))"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(installed), **SERVE_ENV},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "listening on http://127.0.0.1:" in first, first + process.stderr.read()[-800:]
        assert "/prod/whatsapp" in first
        assert "/prod/email" in first
    finally:
        process.terminate()
        process.wait(10)


def test_the_installed_schema_export_checks_the_projects_schemas(installed: Path, project: Path) -> None:
    # Before: it read pipelines/ and wrote schemas/ beside the installed package (site-packages), not the project's.
    done = _run(installed, project, "from tools.schema_export import main; sys.exit(main(['--check']))")
    assert done.returncode == 0, done.stdout + done.stderr[-800:]
    (project / "schemas" / "rules.schema.json").unlink()
    done = _run(installed, project, "from tools.schema_export import main; sys.exit(main([]))")
    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.strip() == "wrote schemas/rules.schema.json"
    assert (project / "schemas" / "rules.schema.json").is_file()
    assert not (installed / "schemas").exists()


@pytest.mark.parametrize(
    ("code", "needed_for"),
    [
        (
            "from tools.dryrun.cli import main; sys.exit(main(['--world', 'examples/world.yaml', 'examples/events']))",
            "pipeline-dryrun: error: a world on the moto backend (--backend moto, the default) needs moto",
        ),
        (
            "from tools.serve import main; sys.exit(main(['--moto', '--port', '0']))",
            "pipeline-serve: error: pipeline-serve --moto needs moto",
        ),
    ],
    ids=["dryrun-world", "serve-moto"],
)
def test_the_installed_tools_without_the_tools_extra_say_how_to_install_it(
    installed: Path, project: Path, code: str, needed_for: str
) -> None:
    # Installed without the extra (pip install the wheel alone): moto cannot be imported.
    done = _run(installed, project, f"sys.modules['moto'] = None; {code}", **SERVE_ENV)
    assert "Traceback" not in done.stderr, done.stderr[-1500:]
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"{needed_for}, a development-only dependency; install it with: pip install 'inbound-webhook-pipeline[tools]'"
    )
