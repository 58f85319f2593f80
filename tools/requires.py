"""The tools' development-only dependencies: a clear message, with the install line, when one is missing.

The runtime dependencies are installed with the package; what only the tools need (moto, for worlds and
``pipeline-serve --moto``) is the ``tools`` extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRA_INSTALL", "MissingTool", "require"]

EXTRA_INSTALL = "pip install 'inbound-webhook-pipeline[tools]'"


class MissingTool(RuntimeError):
    """A development-only dependency is not installed; the message says what needs it and how to install it."""


def require(module: str, needed_for: str) -> ModuleType:
    """Import ``module``, or raise MissingTool naming ``needed_for`` and the install line."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        message = f"{needed_for} needs {package}, a development-only dependency; install it with: {EXTRA_INSTALL}"
        raise MissingTool(message) from None
