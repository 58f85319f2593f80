"""Every step's declared example (``example=``, a ``with:`` block) is one its step accepts, as an author copies it.

The plugins are those the handler and the tools load (``tests/conftest.py``). An example is checked against its step's
parameters schema, then loaded in place of the ``with:`` of that step in a shipped pipeline: the loader also runs the
step's own checks (the tables, rule sets and secrets it names must be the pipeline's). A step's example may name what
only one pipeline declares (``rules.route``'s rule set), so it must load in one pipeline that uses the step, not all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from engine import registry
from engine.config import inspect_config
from engine.registry import StepSpec
from tests.support.expect import ROOT
from tests.support.shipped import pipeline_paths

DECLARED = [spec for spec in registry.specs() if spec.example]


def _entries(steps: list[Any]) -> Iterator[dict[str, Any]]:
    """The step entries of a pipeline's ``steps:``, those inside ``parallel:`` groups too."""
    for entry in steps:
        yield from entry.get("parallel", [entry])


def _with_example(path: Path, spec: StepSpec, folder: Path) -> Path | None:
    """A copy of pipeline ``path`` in which every step using ``spec`` is given its example; None if none uses it."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    used = [entry for entry in _entries(document["steps"]) if entry["uses"] == spec.name]
    if not used:
        return None
    for entry in used:
        entry["with"] = dict(spec.example)
    copy = folder / path.name
    copy.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return copy


def test_every_step_with_parameters_declares_an_example() -> None:
    # A plugin author copies a step's example into a pipeline; a step with parameters and none leaves them guessing.
    missing = [spec.name for spec in registry.specs() if (spec.params or {}).get("properties") and not spec.example]
    assert missing == []
    assert len(DECLARED) >= 10, "the checks below must not pass by checking nothing"


@pytest.mark.parametrize("spec", DECLARED, ids=lambda spec: spec.name)
def test_the_example_satisfies_the_parameters_schema(spec: StepSpec) -> None:
    errors = Draft202012Validator(dict(spec.params)).iter_errors(dict(spec.example))
    assert [f"{list(error.absolute_path)}: {error.message}" for error in errors] == []


def load_problems(spec: StepSpec, tmp_path: Path) -> dict[str, list[str]]:
    """The errors loading each shipped pipeline that uses ``spec`` finds once it is given the example, by file."""
    problems: dict[str, list[str]] = {}
    for path in pipeline_paths():
        folder = tmp_path / path.stem
        folder.mkdir()
        copy = _with_example(path, spec, folder)
        if copy is not None:
            inspection = inspect_config(copy, ROOT / "rules", {}, missing_env="warning")
            problems[path.name] = [problem.message for problem in inspection.problems if problem.severity == "error"]
    return problems


@pytest.mark.parametrize("spec", DECLARED, ids=lambda spec: spec.name)
def test_the_example_loads_in_a_shipped_pipeline_using_the_step(spec: StepSpec, tmp_path: Path) -> None:
    problems = load_problems(spec, tmp_path)
    assert problems, f"no shipped pipeline uses {spec.name}: nothing loads its example"
    assert any(found == [] for found in problems.values()), problems


def test_the_loader_sees_a_wrong_example_the_schema_accepts(tmp_path: Path) -> None:
    spec = registry.get("rules.route")
    assert spec is not None
    wrong = replace(spec, example={"ruleset": "routin"})
    assert list(Draft202012Validator(dict(wrong.params)).iter_errors(dict(wrong.example))) == []
    problems = load_problems(wrong, tmp_path)
    assert problems
    assert all(any("unknown rule set 'routin'" in message for message in found) for found in problems.values())
