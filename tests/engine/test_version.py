"""A loaded configuration's version: a digest of its files' names and texts, wherever they sit."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.config import content_digest, inspect_config, load_config
from runtime.layout import pipeline_files
from runtime.stamp import STAMP_FILE, Stamp
from tests.support.expect import ENV, version_sources
from tools.stamp import write_stamp

ROOT = Path(__file__).resolve().parents[2]


def copy(root: Path) -> Path:
    for folder in ("pipelines", "rules"):
        shutil.copytree(ROOT / folder, root / folder)
    return root


def version(root: Path, rules: str = "rules", **options: object) -> str:
    config = load_config(root / "pipelines" / "twilio_inbound.yaml", root / rules, ENV, **options)  # type: ignore[arg-type]
    return config.version


def test_the_version_is_the_digest_of_the_files_it_was_loaded_from(tmp_path: Path) -> None:
    root = copy(tmp_path)
    files = version_sources(root)
    expected = content_digest((f"{path.parent.name}/{path.name}", path.read_text()) for path in files)
    assert version(root) == expected
    assert len(expected) == 12 and int(expected, 16) >= 0


def test_the_same_files_elsewhere_have_the_same_version_and_any_change_makes_another(tmp_path: Path) -> None:
    first, second = copy(tmp_path / "a"), copy(tmp_path / "b")
    (second / "rules").rename(second / "rules-under-test")
    assert version(first) == version(second, "rules-under-test")
    routing = first / "rules" / "40_routing.yaml"
    routing.write_text(routing.read_text().replace("A human has taken over", "A person has taken over"))
    assert version(first) != version(second, "rules-under-test")


def test_the_stamped_cold_start_reports_the_same_version(tmp_path: Path) -> None:
    root = copy(tmp_path)
    write_stamp(root, pipeline_files(root / "pipelines"), root / "rules")
    assert version(root, stamp=Stamp.read(root / STAMP_FILE)) == version(root)


def test_another_pipelines_rules_files_are_not_part_of_its_version(tmp_path: Path) -> None:
    root = copy(tmp_path)
    before = version(root)
    other = "ruleset: other\nkind: validation\npipelines: [email_inbound]\nrules: []\n"
    (root / "rules" / "90_other.yaml").write_text(other)
    assert version(root) == before


def test_inspection_records_the_keys_steps_provide_and_the_sets_they_use(tmp_path: Path) -> None:
    root = copy(tmp_path)
    (root / "rules" / "50_unused.yaml").write_text("ruleset: unused\nkind: validation\nrules: []\n")
    inspection = inspect_config(root / "pipelines" / "twilio_inbound.yaml", root / "rules", ENV)
    assert inspection.used == {"project_status", "channel", "conversation_lock", "routing"}
    assert inspection.provided is not None and {"request", "conversation", "route", "sent"} <= inspection.provided
