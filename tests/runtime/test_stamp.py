"""The config stamp: a build-time proof of schema validity lets a cold start skip JSON Schema, never loosen it.

``tools.stamp`` writes it at build time; ``runtime.stamp`` reads it at the cold start.
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import load_config
from engine.envsubst import _scalar, _yaml_scalar
from engine.errors import ConfigError
from engine.schema import pipeline_schema
from engine.yamlsource import parse_yaml
from runtime.layout import pipeline_files
from runtime.stamp import STAMP_FILE, Stamp, leaf_holds
from tests.support.expect import ENV
from tools.stamp import _as_json, write_stamp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for folder in ("pipelines", "rules"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    stamp, left_out = write_stamp(tmp_path, pipeline_files(tmp_path / "pipelines"), tmp_path / "rules")
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
        (False, {"enum": [0, 1]}, False),
        (True, {"const": 1}, False),
        (0, {"enum": [False]}, False),
        (1.0, {"enum": [1]}, True),
        ("https://x", {"type": "string", "pattern": "^https?://"}, True),
        ("ftp://x", {"type": "string", "pattern": "^https?://"}, False),
        ("a", {"type": ["string", "array"], "items": {"type": "string"}}, True),
        ("a", {"anyOf": [{"type": "string"}]}, None),
    ],
)
def test_the_leaf_checker(value: object, schema: dict, expected: bool | None) -> None:
    assert leaf_holds(value, schema) is expected


# The stamp also holds each file's parsed document: a cold start whose files are unchanged reads no YAML.
_IMPORTS = (
    "import sys\n"
    "import handler\n"
    "loaded = sorted({name.split('.')[0] for name in sys.modules} & {'yaml', 'jsonschema'})\n"
    "assert handler._application.configs\n"
    "print(','.join(loaded))\n"
)


def _imports_at_cold_start(root: Path, env: dict[str, str]) -> str:
    shutil.copy(ROOT / "handler.py", root / "handler.py")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_LAMBDA")}
    environment.update(env, PYTHONPATH=str(ROOT), AWS_EC2_METADATA_DISABLED="true")
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS], cwd=root, env=environment, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_stamped_cold_start_imports_neither_yaml_nor_jsonschema(root: Path) -> None:
    assert _imports_at_cold_start(root, ENV) == ""


def test_without_a_stamp_the_cold_start_reads_the_yaml(root: Path) -> None:
    (root / STAMP_FILE).unlink()
    assert _imports_at_cold_start(root, ENV) == "jsonschema,yaml"


def test_every_shipped_file_carries_its_parsed_document(root: Path) -> None:
    stamp = Stamp.read(root / STAMP_FILE)
    assert stamp is not None
    files = [root / "pipelines" / "twilio_inbound.yaml", *sorted((root / "rules").glob("*.yaml"))]
    for path in files:
        text = path.read_text()
        assert stamp.document(path, text) == (True, parse_yaml(text, path.name).data)
        assert stamp.document(path, text + "\n# edited\n") == (False, None)


def test_a_file_edited_after_the_build_is_read_from_its_yaml(root: Path) -> None:
    pipeline = root / "pipelines" / "twilio_inbound.yaml"
    pipeline.write_text(pipeline.read_text().replace("refetch_interval_seconds: 30", "refetch_interval_seconds: 20"))
    fast, full = _load(root, ENV, stamped=True), _load(root, ENV, stamped=False)
    intervals = [
        {step.id: vars(step.step).get("_interval") for step in config.pipeline.steps()} for config in (fast, full)
    ]
    assert intervals[0] == intervals[1]
    assert intervals[0]["signature"] == 20
    assert _imports_at_cold_start(root, ENV) == "jsonschema,yaml"  # parsed and validated afresh


def _position(text: str, fragment: str) -> str:
    """``LINE:COLUMN`` (1-based) of ``fragment`` in ``text``."""
    index = text.index(fragment)
    return f"{text.count(chr(10), 0, index) + 1}:{index - text.rfind(chr(10), 0, index)}"


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({**ENV, "WHATSAPP_SECRET_NAME_PATTERN": "ai-multi-comms/[unclosed"}, "${env:WHATSAPP_SECRET_NAME_PATTERN"),
        ({key: value for key, value in ENV.items() if key != "STAGE_TABLE_NAME"}, "${env:STAGE_TABLE_NAME}"),
        ({**ENV, "STAGE_TABLE_NAME": "conversations stage"}, "${env:STAGE_TABLE_NAME}"),
        ({**ENV, "SMS_QUEUE_URL": "sms-queue"}, "${env:SMS_QUEUE_URL}"),
    ],
)
def test_a_problem_found_after_a_stamped_read_is_located_as_without_a_stamp(
    root: Path, env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as stamped:
        _load(root, env, stamped=True)
    with pytest.raises(ConfigError) as plain:
        _load(root, env, stamped=False)
    assert str(stamped.value) == str(plain.value)
    where = _position((root / "pipelines" / "twilio_inbound.yaml").read_text(), fragment)
    assert f"twilio_inbound.yaml:{where}:" in str(stamped.value)


@pytest.mark.parametrize(
    "data, held",
    [
        ({"b": 1, "a": [1.5, True, None, "x"]}, True),
        ({1: "int key"}, False),
        ({"when": datetime.date(2024, 1, 1)}, False),
        ({"inf": math.inf}, False),
    ],
)
def test_a_document_is_stamped_only_when_json_holds_it_exactly(data: dict[str, object], held: bool) -> None:
    assert (_as_json(data) == data) is held
    if held:
        assert list(_as_json(data)) == list(data)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="aAyYnN0123456789+-_.:/[]#~!&*'\" x{},%@`|>=?\t", max_size=12))
def test_environment_values_read_without_yaml_read_as_yaml_reads_them(text: str) -> None:
    fast, slow = _scalar(text), _yaml_scalar(text)
    assert (type(fast), fast) == (type(slow), slow)


@pytest.mark.parametrize("text", [".+", "./x", ".-", "...", ".5", "._5", ".inf", ".Inf", ".NaN", ".e+5", ".infinity"])
def test_a_value_starting_with_a_dot_reads_as_yaml_reads_it(text: str) -> None:
    fast, slow = _scalar(text), _yaml_scalar(text)
    assert (type(fast), fast) == (type(slow), slow)


_SCALARS = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([0.0, 1.0, 0.5, -1.5]),
    st.sampled_from(["", "a", "10", "true", "https://x", "ab"]),
)
_LEAF_SCHEMAS = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["string", "integer", "number", "boolean", "null", ["string", "integer"]]),
        "enum": st.lists(_SCALARS, min_size=1, max_size=3),
        "const": _SCALARS,
        "minimum": st.integers(min_value=-2, max_value=2),
        "maximum": st.integers(min_value=-2, max_value=2),
        "exclusiveMinimum": st.integers(min_value=-2, max_value=2),
        "minLength": st.integers(min_value=0, max_value=2),
        "maxLength": st.integers(min_value=0, max_value=2),
        "pattern": st.sampled_from(["^a", "^https?://", "[0-9]"]),
    },
)


@settings(max_examples=500, deadline=None)
@given(_SCALARS, _LEAF_SCHEMAS)
def test_the_leaf_checker_agrees_with_jsonschema(value: object, schema: dict[str, object]) -> None:
    from jsonschema import Draft202012Validator

    assert leaf_holds(value, schema) is Draft202012Validator(schema).is_valid(value)


def test_a_schema_is_never_taken_for_another_that_came_after_it(tmp_path: Path) -> None:
    """A digest remembered per schema object must not outlive it: a new schema may be given its freed address."""
    from runtime.stamp import digest, schema_digest

    text = "a: 1\n"
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")

    def stamped_schema() -> dict[str, object]:
        return {"type": "object", "required": ["a"]}

    stamp = Stamp(tmp_path.resolve(), {"p.yaml": {"text": digest(text), "schema": schema_digest(stamped_schema())}})
    for attempt in range(20):
        assert stamp.vouches(tmp_path / "p.yaml", text, {"a": 1}, stamped_schema())
        other = {"type": "object", "required": [f"b{attempt}"]}
        assert not stamp.vouches(tmp_path / "p.yaml", text, {"a": 1}, other), f"attempt {attempt}"
