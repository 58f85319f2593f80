"""AWS Lambda entry point: ``handler.handler(event, context)``.

The plugins register the steps: in the artifact, those its build validated the pipelines with (its
``pipeline-plugins.json``); in a source tree, the built-in ``steps`` and those ``pyproject.toml`` declares
(``runtime.plugins``). Every pipeline beside this file (``pipelines/``, with ``rules/``) is loaded and
validated once per container, at import: a broken configuration fails the cold start with file, line and
reason.

The cyclic garbage collector is off while the container starts: loading the AWS SDK and the configuration
makes almost no cyclic garbage, yet the collector's passes over the SDK's objects cost about a fifth of the
cold start (docs/performance.md). What was loaded is then frozen (``gc.freeze``), so that the collections of
the requests that follow never walk it again.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.app import Application

TASK_ROOT = Path(__file__).resolve().parent


def _start() -> Application:
    """Load the plugins and every pipeline, with the cyclic garbage collector off; freeze what was loaded."""
    gc.disable()
    try:
        from runtime.app import Application
        from runtime.logs import setup_logging
        from runtime.plugins import load_plugins, plugin_modules

        setup_logging(os.environ.get("LOG_LEVEL", "INFO"))
        load_plugins(plugin_modules(os.environ, TASK_ROOT))
        return Application.from_root(TASK_ROOT)
    finally:
        gc.freeze()
        gc.enable()


_application = _start()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Handle one API Gateway proxy event (REST 1.0 or HTTP API / Function URL 2.0)."""
    return _application.handle(event, context)


def reload(session: Any | None = None) -> Application:
    """Rebuild the application from the current environment (tests; a new container in effect).

    ``session`` (a boto3 session) lets tests reuse one session's loaded service models.
    """
    from runtime.app import Application
    from runtime.logs import setup_logging

    global _application
    setup_logging(os.environ.get("LOG_LEVEL", "INFO"))
    _application = Application.from_root(TASK_ROOT, session=session)
    return _application
