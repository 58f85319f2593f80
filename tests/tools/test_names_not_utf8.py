"""Console scripts printing a file whose name is not UTF-8 to a strict UTF-8 stdout (a pipe, a CI log).

Linux keeps such a name (``caf\\xe9.yaml.bak``, Latin-1 from an old archive) as bytes and Python as lone surrogates,
which a strict UTF-8 stream refuses. Each tool now writes the bytes that are not UTF-8 as escapes, as the bundle
names them (``rules/caf\\xe9.yaml.bak``, tools.rules).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.support.bundles import BUCKET, make_bucket, working_copy
from tests.support.moto_endpoint import moto_endpoint
from tests.support.plugins import pythonpath

ROOT = Path(__file__).resolve().parents[2]
LATIN_1 = os.fsdecode(b"caf\xe9")


def strictly(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``python -m COMMAND`` run at ``root``, its stdout and stderr pipes read as strict UTF-8."""
    env = {**pythonpath(), "PYTHONIOENCODING": "utf-8:strict", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def endpoint() -> Iterator[str]:
    with moto_endpoint() as url:
        yield url


def test_check_names_an_unread_file_whose_name_is_not_utf8_with_escapes(tmp_path: Path) -> None:
    """Defect: ``pipeline-dryrun --check`` ended in a traceback (UnicodeEncodeError, exit status 1) printing the
    warning at ``rules/caf\\xe9.yaml.bak`` to a strict UTF-8 stdout, the findings after it and the summary unsaid."""
    root = working_copy(tmp_path / "task")
    (root / "rules" / f"{LATIN_1}.yaml.bak").write_text("ruleset: old\n", encoding="utf-8")

    checked = strictly(root, "tools.dryrun.cli", "--check")

    assert "Traceback" not in checked.stderr, checked.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "rules/caf\\xe9.yaml.bak:1:1: warning: this file is not read" in checked.stdout
    assert checked.stderr.startswith("checked ")


def test_the_stamp_names_a_refused_file_whose_name_is_not_utf8_with_escapes(tmp_path: Path) -> None:
    """Defect: the build's stamp refusing ``rules/caf\\xe9.yaml`` (a rules file that does not parse) ended in a
    traceback (UnicodeEncodeError, exit status 1) instead of naming it with exit status 2."""
    root = working_copy(tmp_path / "task")
    (root / "rules" / f"{LATIN_1}.yaml").write_text("ruleset: [\n", encoding="utf-8")

    stamped = strictly(root, "tools.stamp", ".")

    assert "Traceback" not in stamped.stderr, stamped.stderr
    assert stamped.returncode == 2, stamped.stdout + stamped.stderr
    assert "rules/caf\\xe9.yaml:" in stamped.stdout
    assert "the configuration would fail the cold start" in stamped.stderr


def test_publish_names_an_unread_file_whose_name_is_not_utf8_with_escapes(tmp_path: Path, endpoint: str) -> None:
    """Defect: ``pipeline-rules publish`` printing its check's warning at ``rules/caf\\xe9.yaml.bak`` to a strict
    UTF-8 stdout ended in a traceback (UnicodeEncodeError, exit status 1), nothing published."""
    root = working_copy(tmp_path / "task")
    (root / "rules" / f"{LATIN_1}.yaml.bak").write_text("ruleset: old\n", encoding="utf-8")
    make_bucket(boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"))

    published = strictly(root, "tools.rules", "--bucket", BUCKET, "--endpoint-url", endpoint, "publish", "--live")

    assert "Traceback" not in published.stderr, published.stderr
    assert published.returncode == 0, published.stdout + published.stderr
    assert "rules/caf\\xe9.yaml.bak:1:1: warning: this file is not read" in published.stdout
    assert "published: bundle" in published.stdout


def test_a_json_line_naming_an_event_file_whose_name_is_not_utf8_is_json(tmp_path: Path) -> None:
    """Defect: ``pipeline-dryrun --json`` replaying ``events/caf\\xe9.json`` wrote its ``source`` with the byte that
    is not UTF-8 as ``\\xe9`` (the console scripts' escape for names), which JSON has no escape for: the line did not
    parse ("Invalid \\escape"). A JSON line now writes it as JSON's escape of the surrogate Python holds it as, so the
    line parses and gives back the name (``os.fsencode`` of it is the file's bytes)."""
    root = working_copy(tmp_path / "task")
    (root / "events").mkdir()
    event = (ROOT / "examples" / "events" / "01_whatsapp_text.json").read_text(encoding="utf-8")
    (root / "events" / f"{LATIN_1}.json").write_text(event, encoding="utf-8")
    shutil.copy(ROOT / "examples" / "world.yaml", root / "world.yaml")

    replayed = strictly(root, "tools.dryrun.cli", "--world", "world.yaml", "--json", "events")

    assert "Traceback" not in replayed.stderr, replayed.stderr
    (line,) = replayed.stdout.splitlines()
    assert json.loads(line)["source"] == f"events/{LATIN_1}.json"
    assert '"source": "events/caf\\udce9.json"' in line
