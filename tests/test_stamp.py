"""``engine.stamp``: a build-time proof of schema validity lets a cold start skip JSON Schema, never loosen it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.schema import pipeline_schema
from engine.stamp import STAMP_FILE, Stamp, leaf_holds, write_stamp

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "CONVERSATIONS_TABLE_NAME": "conversations",
    "STAGE_TABLE_NAME": "stage",
    "LOCK_TABLE_NAME": "lock",
    "WHATSAPP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/whatsapp",
    "SMS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/sms",
    "HANDOFF_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/handoff",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for folder in ("pipelines", "rules"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    stamp, left_out = write_stamp(tmp_path, tmp_path / "pipelines" / "twilio_inbound.yaml", tmp_path / "rules")
    assert stamp == tmp_path / STAMP_FILE
    assert left_out == []
    return tmp_path


def _load(root: Path, env: dict[str, str], *, stamped: bool):
    stamp = Stamp.read(root / STAMP_FILE) if stamped else None
    return load_config(root / "pipelines" / "twilio_inbound.yaml", root / "rules", env, stamp=stamp)


def test_every_shipped_file_is_vouched_for_and_loads_the_same(root: Path) -> None:
    stamp = Stamp.read(root / STAMP_FILE)
    assert stamp is not None
    pipeline = root / "pipelines" / "twilio_inbound.yaml"
    from engine.envsubst import resolve_env
    from engine.yamlsource import load_yaml

    doc = load_yaml(pipeline)
    data, _ = resolve_env(doc.data, ENV, doc.locator)
    assert stamp.vouches(pipeline, doc.locator.text, data, pipeline_schema())
    fast, full = _load(root, ENV, stamped=True), _load(root, ENV, stamped=False)
    assert fast.targets == full.targets
    assert fast.tables == full.tables
    assert [step.id for step in fast.pipeline.steps()] == [step.id for step in full.pipeline.steps()]


@pytest.mark.parametrize("name, value", [("BATCH_WINDOW_SECONDS", "5000"), ("SECRET_CACHE_TTL_SECONDS", "soon")])
def test_an_environment_value_the_schema_refuses_is_reported_as_without_a_stamp(root: Path, name: str, value: str):
    env = {**ENV, name: value}
    with pytest.raises(ConfigError) as stamped:
        _load(root, env, stamped=True)
    with pytest.raises(ConfigError) as plain:
        _load(root, env, stamped=False)
    assert str(stamped.value) == str(plain.value)


def test_a_file_changed_after_the_build_is_validated_again(root: Path) -> None:
    rules = root / "rules" / "10_project_status.yaml"
    rules.write_text(rules.read_text().replace("kind: validation", "kind: validations"))
    with pytest.raises(ConfigError, match="validations"):
        _load(root, ENV, stamped=True)


def test_a_missing_or_unreadable_stamp_is_no_stamp(tmp_path: Path) -> None:
    assert Stamp.read(tmp_path / STAMP_FILE) is None
    (tmp_path / STAMP_FILE).write_text("{not json")
    assert Stamp.read(tmp_path / STAMP_FILE) is None


@pytest.mark.parametrize(
    "value, schema, expected",
    [
        (10, {"type": "integer", "minimum": 0, "maximum": 900}, True),
        (901, {"type": "integer", "minimum": 0, "maximum": 900}, False),
        (True, {"type": "integer"}, False),
        ("10", {"type": "integer"}, False),
        ("https://x", {"type": "string", "pattern": "^https?://"}, True),
        ("ftp://x", {"type": "string", "pattern": "^https?://"}, False),
        ("a", {"type": ["string", "array"], "items": {"type": "string"}}, True),
        ("a", {"anyOf": [{"type": "string"}]}, None),
    ],
)
def test_the_leaf_checker(value: object, schema: dict, expected: bool | None) -> None:
    assert leaf_holds(value, schema) is expected
