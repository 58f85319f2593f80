"""The shipped configuration, read with the project's own loaders: tests derive what they expect from it.

A test that pins today's list of pipelines breaks when a pipeline is added; these give the list instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from engine.envsubst import ENV_REFERENCE
from engine.yamlsource import load_yaml, parse_yaml
from runtime.layout import pipeline_files, yaml_files
from tools.check import declared_pipeline_name
from tools.dryrun.blueprint import blueprint
from tools.needs import pipeline_needs

__all__ = [
    "PIPELINES_DIR",
    "RULES_DIR",
    "configuration_files",
    "deployed_env",
    "entry",
    "inline_tests",
    "pipeline_channels",
    "pipeline_names",
    "pipeline_paths",
    "position",
]

# A queue URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``): its region and account are those before the name.
QUEUE_URL = re.compile(r"https://sqs\.[a-z0-9-]+\.amazonaws\.com/[0-9]+/[^/]+")
# Not tests.support.expect's ROOT: expect builds its ENV with deployed_env.
ROOT = Path(__file__).resolve().parents[2]
PIPELINES_DIR = ROOT / "pipelines"
RULES_DIR = ROOT / "rules"


def pipeline_paths() -> list[Path]:
    """The shipped pipeline files, in name order."""
    return pipeline_files(PIPELINES_DIR)


def pipeline_names() -> list[str]:
    """The shipped pipelines' names (``pipeline:``), sorted as the tools list them."""
    return sorted(name for path in pipeline_paths() if (name := declared_pipeline_name(path)) is not None)


def pipeline_channels() -> list[str]:
    """Every channel the shipped pipelines serve (``channels:``), sorted."""
    return sorted({str(channel) for path in pipeline_paths() for channel in load_yaml(path).data.get("channels", [])})


def deployed_env(known: Mapping[str, str], directory: Path = PIPELINES_DIR) -> dict[str, str]:
    """``known``, plus a value for each variable the pipelines in ``directory`` read with no default that it lacks.

    The value is the one ``pipeline-serve`` and the dry-run's worlds give it (a table's local name, a queue's URL).
    A test environment that lists today's variables by hand fails every test loading the shipped configuration once
    a step keeping a table of its own is added (``audit: ${env:AUDIT_TABLE_NAME}``); this one takes it in. A queue's
    URL is placed beside the queues ``known`` gives (their region and account): the cold start refuses a queue of
    another region than the function's.
    """
    paths = pipeline_files(directory)
    required = {
        match.group(1): None
        for path in paths
        for match in ENV_REFERENCE.finditer(path.read_text(encoding="utf-8"))
        if match.group(2) is None
    }
    local = blueprint(needs=pipeline_needs(paths))[0].environment()
    bases = [url.rsplit("/", 1)[0] for url in known.values() if QUEUE_URL.fullmatch(url)]
    values = {name: local.get(name, name.lower()) for name in required}
    if bases:
        values = {
            name: f"{bases[0]}/{value.rsplit('/', 1)[1]}" if QUEUE_URL.fullmatch(value) else value
            for name, value in values.items()
        }
    return {**values, **known}


def configuration_files() -> int:
    """How many files ``--check`` reads in the shipped configuration: every pipeline and rules file."""
    return len(pipeline_paths()) + len(yaml_files(RULES_DIR))


def inline_tests(*except_files: str) -> int:
    """How many inline tests the shipped rules files hold, leaving out the files named (``20_channel.yaml``)."""
    total = 0
    for path in yaml_files(RULES_DIR):
        if path.name not in except_files:
            tests = load_yaml(path).data.get("tests")
            total += len(tests) if isinstance(tests, list) else 0
    return total


def position(text: str, before: str, then: str = "", file: str = "pipelines/twilio_inbound.yaml") -> str:
    """``FILE:LINE:COLUMN`` right after ``before`` where ``text`` (a pipeline file's) first holds ``before + then``.

    Findings about the shipped files are located so, not by numbers that adding a step to the file would shift.
    """
    index = text.index(before + then) + len(before)
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    return f"{file}:{line}:{column}"


def entry(text: str, step_id: str) -> int:
    """Step ``step_id``'s entry number (from 1, as findings count) in the ``steps:`` of a pipeline file's ``text``."""
    steps = parse_yaml(text, "pipeline").data["steps"]
    return next(number for number, step in enumerate(steps, 1) if step.get("id") == step_id)
