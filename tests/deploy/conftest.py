"""Fixtures of the deployment tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from engine.config import AppConfig, load_config
from tests.deploy.cfn import load_template, placeholder
from tests.support.expect import ROOT


@pytest.fixture(scope="session")
def build() -> Iterator[ModuleType]:
    """``scripts/build_lambda.py``, imported as a module (its function layer: nothing is downloaded)."""
    spec = importlib.util.spec_from_file_location("build_lambda", ROOT / "scripts" / "build_lambda.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_lambda"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("build_lambda", None)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def function_env(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["PipelineFunction"]["Properties"]["Environment"]["Variables"]


@pytest.fixture(scope="module")
def configs(template: dict[str, Any], function_env: dict[str, Any]) -> list[AppConfig]:
    """Every shipped pipeline, loaded with the environment the template gives the function."""
    env = {name: placeholder(template, value) for name, value in function_env.items()}
    return [load_config(path, ROOT / "rules", env) for path in sorted((ROOT / "pipelines").glob("*.yaml"))]


@pytest.fixture(scope="module")
def config(configs: list[AppConfig]) -> AppConfig:
    """The Twilio pipeline."""
    return next(config for config in configs if config.name == "twilio_inbound")
