"""The published editor schemas (schemas/*.json): current, valid for the shipped YAML, and strict enough."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from engine import registry
from engine.registry import BuildInfo
from engine.schema import pipeline_schema
from tests.support.plugins import step_registered
from tests.support.shipped import pipeline_paths
from tools.schema_export import editor_schema, published_schemas, rendered_schemas
from tools.schema_export import main as export_main

REPO = Path(__file__).resolve().parents[2]
BROKEN = REPO / "tests" / "fixtures" / "broken"
# Every pipeline file, not only the first one: a new pipeline's file gets its editor line checked too.
SHIPPED = [*pipeline_paths(), *sorted((REPO / "rules").glob("*.yaml"))]

# Mistakes a schema can see in one file; the others need other files or meaning (``--check`` finds them).
SCHEMA_LEVEL = {
    "unknown_step",
    "unknown_key",
    "wrong_type",
    "unknown_error_code_in_pipeline",
    "unknown_error_code",
    "rule_unknown_key",
    "empty_pipelines",
}
BEYOND_SCHEMA = {
    "slow_aws_bounds",
    "unknown_ruleset",
    "bad_step_when",
    "missing_env",
    "duplicate_key",
    "step_order",
    "unknown_rule_in_test",
    "failing_test",
    "jmespath_syntax",
    "jmespath_block",
    "null_pitfall",
    "negated_path",
    "truthy_number",
    "misspelt_field",
    "rule_duplicate_key",
    "yaml_tag",
    "routing_target",
    "shadowed",
    "unused_ruleset",
    "unknown_context_name",
    "reserved_error_code",
    "null_only",
    "duplicate_test_name",
    "test_target",
    "unknown_pipeline",
    "provided_later",
    "target_from_typo",
    "ruleset_of_other_pipeline",
    "pipeline_without_rules",
    "shared_channel",
    "copied_name",
    "unanswered_error_code",
}


def schema_for(path: Path) -> dict[str, Any]:
    kind = "pipeline" if path.parent.name == "pipelines" else "rules"
    loaded: dict[str, Any] = json.loads((REPO / "schemas" / f"{kind}.schema.json").read_text())
    return loaded


def violations(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    return [error.message for error in Draft202012Validator(schema_for(path)).iter_errors(data)]


def test_committed_schemas_equal_a_fresh_generation() -> None:
    for name, text in rendered_schemas().items():
        assert (REPO / "schemas" / name).read_text() == text, f"schemas/{name} is stale: run `make schemas`"


def test_export_writes_and_checks(tmp_path: Path) -> None:
    assert export_main(["--check", "--out", str(tmp_path)]) == 1
    assert export_main(["--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pipeline.schema.json", "rules.schema.json"]
    assert export_main(["--check", "--out", str(tmp_path)]) == 0


def test_check_says_which_schema_is_missing_and_which_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export_main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    for name in ("pipeline.schema.json", "rules.schema.json"):
        assert f"{tmp_path / name} is missing; generate it with `make schemas`" in err, err
    assert "stale" not in err
    assert export_main(["--out", str(tmp_path)]) == 0
    (tmp_path / "rules.schema.json").unlink()
    (tmp_path / "pipeline.schema.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert export_main(["--check", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path / 'pipeline.schema.json'} is stale; run `make schemas` and commit the result",
        f"{tmp_path / 'rules.schema.json'} is missing; generate it with `make schemas` and commit the result",
    ]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_shipped_yaml_validates_and_points_editors_at_its_schema(path: Path) -> None:
    assert violations(path) == []
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first_line.split("$schema=", 1)[1]).resolve()
    assert target == (REPO / "schemas" / f"{'pipeline' if path.parent.name == 'pipelines' else 'rules'}.schema.json")


def test_every_broken_copy_is_classified() -> None:
    assert {path.name for path in BROKEN.iterdir() if path.is_dir()} == SCHEMA_LEVEL | BEYOND_SCHEMA
    assert not SCHEMA_LEVEL & BEYOND_SCHEMA


@pytest.mark.parametrize("case", sorted(SCHEMA_LEVEL))
def test_schema_rejects_the_broken_copy(case: str) -> None:
    (path,) = (BROKEN / case).rglob("*.yaml")
    assert violations(path), f"{case}: the published schema accepted {path}"


def test_editor_schema_accepts_env_references_where_the_engine_schema_wants_a_number() -> None:
    data = yaml.safe_load((REPO / "pipelines" / "twilio_inbound.yaml").read_text())
    assert data["targets"]["whatsapp"]["delay_seconds"] == "${env:BATCH_WINDOW_SECONDS:-10}"
    assert list(Draft202012Validator(editor_schema(pipeline_schema())).iter_errors(data)) == []
    strict = [error.message for error in Draft202012Validator(pipeline_schema()).iter_errors(data)]
    assert any("'${env:BATCH_WINDOW_SECONDS:-10}' is not of type 'integer'" in message for message in strict)


class _Echo:
    """A throwaway step kind."""

    def __init__(self, params: Any, info: BuildInfo) -> None:
        self.params = params


@pytest.fixture
def new_step() -> Iterator[str]:
    params = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"times": {"type": "integer", "minimum": 1}},
    }
    with step_registered("test.echo", _Echo, params=params) as name:
        yield name


def test_a_new_step_appears_in_the_published_schema(new_step: str) -> None:
    schema = published_schemas()["pipeline.schema.json"]
    validator = Draft202012Validator(schema)
    document = {"pipeline": "p", "channels": ["echo"], "responses": {"api": {"format": "json", "default": True}}}
    good = {**document, "steps": [{"id": "echo", "uses": new_step, "with": {"times": "${env:TIMES:-2}"}}]}
    bad = {**document, "steps": [{"id": "echo", "uses": new_step, "with": {"times": 0, "loud": True}}]}
    assert list(validator.iter_errors(good)) == []
    assert sorted(error.message for error in validator.iter_errors(bad)) == [
        "0 is not valid under any of the given schemas",
        "Additional properties are not allowed ('loud' was unexpected)",
    ]
    # The staleness test above is what catches a step registered without regenerating schemas/.
    assert (REPO / "schemas" / "pipeline.schema.json").read_text() != rendered_schemas()["pipeline.schema.json"]


def with_schemas(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The schema of each step's ``with:`` in a published pipeline schema, by step name."""
    return {
        rule["if"]["properties"]["uses"]["const"]: rule["then"]["properties"]["with"]
        for rule in schema["$defs"]["step"]["allOf"]
    }


def test_each_steps_declared_example_is_offered_under_examples() -> None:
    published = with_schemas(published_schemas()["pipeline.schema.json"])
    assert sorted(published) == registry.names()
    for spec in registry.specs():
        schema = published[spec.name]
        if not spec.example:
            assert "examples" not in schema, spec.name
            continue
        assert schema["examples"] == [dict(spec.example)], spec.name
        # JSON Schema: an example should be valid under the schema it is given for (here, the editor's).
        assert list(Draft202012Validator(schema).iter_errors(schema["examples"][0])) == [], spec.name
        assert "examples" not in spec.params, f"{spec.name}: the export changed the registered schema"
    assert sum("examples" in schema for schema in published.values()) >= 10
    # The schema loading validates with offers nothing: an example is for editors.
    assert all("examples" not in schema for schema in with_schemas(pipeline_schema()).values())


def code_enums(node: Any) -> Iterator[dict[str, Any]]:
    """The schemas in ``node`` that list the error codes (their ``enum``)."""
    if isinstance(node, list):
        for item in node:
            yield from code_enums(item)
    elif isinstance(node, dict):
        if "INTERNAL_ERROR" in node.get("enum", ()):
            yield node
        for value in node.values():
            yield from code_enums(value)


def declarers(described: str) -> dict[str, list[str]]:
    """A code's description in the schemas (``what (who, who); what else (who)``): each part's declarers by its text."""
    parts = re.findall(r"(.+?) \(([^()]*)\)(?:; |$)", described)
    assert "; ".join(f"{what} ({who})" for what, who in parts) == described
    return {what: who.split(", ") for what, who in parts}


def test_every_listed_error_code_says_what_it_means_and_who_declares_it() -> None:
    schemas = published_schemas()
    # A response status's code; the error of a rule, of a set's default, and the one a set's inline test expects.
    enums = [*code_enums(schemas["pipeline.schema.json"]), *code_enums(schemas["rules.schema.json"])]
    assert len(enums) == 4
    for enum in enums:
        described = dict(zip(enum["enum"], enum["enumDescriptions"], strict=True))
        assert (
            described["INTERNAL_ERROR"] == "a bug: a step raised something unexpected, or a condition failed (engine)"
        )
        # What the shipped steps and pipelines declare; a new step or pipeline declaring a code adds its own part.
        assert declarers(described["CONVERSATION_NOT_FOUND"])["no conversation for the sender and recipient"] == [
            "conversations.get",
            "conversations.lookup",
        ]
        # One code, described differently by its declarers: each description with its own.
        invalid = declarers(described["INVALID_SIGNATURE"])
        assert invalid["the request's signature is missing, stale or wrong"] == ["sendgrid.parse", "sendgrid.signature"]
        assert invalid["the request's signature is missing or wrong"] == ["twilio.parse", "twilio.signature"]
        # A business code: the pipelines' errors: describe it, each pipeline once, and no step declares it.
        assert declarers(described["CONVERSATION_LOCKED"]) == {
            "a reply is being prepared for this conversation": ["pipeline email_inbound"],
            "a reply is being prepared; the user gets a holding answer": ["pipeline twilio_inbound"],
        }
        for spec in registry.specs():
            for error in spec.errors:
                assert f"{error.description} (" in described[error.code], (spec.name, error.code)
    (expected,) = [enum for enum in enums if None in enum["enum"]]
    assert expected["enumDescriptions"][expected["enum"].index(None)] == "no error: the rules let the event through"


def test_a_code_declared_without_a_description_names_its_declarer() -> None:
    from engine.errors import ErrorSpec

    with step_registered("test.quiet", _Echo, errors=(ErrorSpec("QUIET_ERROR"),)):
        (enum,) = code_enums(published_schemas()["pipeline.schema.json"])
    assert dict(zip(enum["enum"], enum["enumDescriptions"], strict=True))["QUIET_ERROR"] == "declared by test.quiet"
