"""Where a task root keeps its configuration: every ``pipelines/*.yaml`` and the ``rules/`` they share."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PIPELINES_DIR", "RULES_DIR", "pipeline_files", "yaml_files"]

PIPELINES_DIR = Path("pipelines")
RULES_DIR = Path("rules")


def yaml_files(directory: Path) -> list[Path]:
    """The YAML files of ``directory`` (``*.yaml``, ``*.yml``), in name order."""
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def pipeline_files(directory: Path) -> list[Path]:
    """The pipeline files of ``directory``."""
    return yaml_files(directory)
