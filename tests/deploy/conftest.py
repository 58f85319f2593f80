"""Fixtures of the deployment tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

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
