"""What a routing target holds is declared by the step that reads targets; the engine knows only their names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine.config import inspect_config
from engine.registry import BuildInfo
from engine.schema import pipeline_schema
from steps.rules import TARGET_SCHEMA
from tests.engine.test_config_layers import ENV, tree, where
from tests.support.plugins import step_registered

PIPELINE = {"pipeline": "p", "channels": ["echo"], "responses": {"api": {"format": "json", "default": True}}}


def target_errors(target: dict[str, Any]) -> list[str]:
    document = {**PIPELINE, "steps": [{"id": "route", "uses": "rules.route"}], "targets": {"t": target}}
    return sorted(error.message for error in Draft202012Validator(pipeline_schema()).iter_errors(document))


def test_a_target_entry_is_checked_against_what_the_routing_step_declares() -> None:
    assert pipeline_schema()["properties"]["targets"]["additionalProperties"] == TARGET_SCHEMA
    assert target_errors({"queue_url": "https://q", "delay_seconds": 5, "lock": True}) == []
    assert target_errors({"delay_seconds": 5}) == ["'queue_url' is a required property"]


def test_a_misspelt_target_key_is_located_and_names_the_declared_keys(tmp_path: Path) -> None:
    pipeline, rules = tree(tmp_path, {"pipelines/twilio_inbound.yaml": [("lock: true", "locked: true")]})
    problems = inspect_config(pipeline, rules, ENV).errors
    assert [(p.file.rsplit("/", 1)[-1], p.line, p.column) for p in problems] == [where(pipeline, "locked")]
    assert "unknown key 'locked' (did you mean 'lock'?)" in problems[0].message
    assert "delay_seconds, lock, message, queue_url" in problems[0].message


class _Sender:
    """A throwaway step that reads targets."""

    def __init__(self, params: Any, info: BuildInfo) -> None:
        self.targets = info.targets


@pytest.fixture
def second_reader() -> Iterator[str]:
    schema = {"type": "object", "properties": {"priority": {"type": "integer"}}}
    with step_registered("test.sender", _Sender, targets=schema) as name:
        yield name


def test_every_step_that_reads_targets_adds_its_own_demands(second_reader: str) -> None:
    assert target_errors({"queue_url": "https://q"}) == []
    assert target_errors({"queue_url": "https://q", "priority": "high"}) == ["'high' is not of type 'integer'"]
