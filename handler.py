"""AWS Lambda entry point: ``handler.handler(event, context)``.

The plugins named in ``PLUGINS`` register the steps; every pipeline beside this file (``pipelines/``,
with ``rules/``) is loaded and validated once per container, at import: a broken configuration fails the
cold start with file, line and reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.plugins import load_plugins
from runtime.app import Application
from runtime.logs import setup_logging

TASK_ROOT = Path(__file__).resolve().parent
PLUGINS = ("steps",)

setup_logging(os.environ.get("LOG_LEVEL", "INFO"))
load_plugins(PLUGINS)
_application = Application.from_root(TASK_ROOT)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Handle one API Gateway proxy event (REST 1.0 or HTTP API / Function URL 2.0)."""
    return _application.handle(event, context)


def reload(session: Any | None = None) -> Application:
    """Rebuild the application from the current environment (tests; a new container in effect).

    ``session`` (a boto3 session) lets tests reuse one session's loaded service models.
    """
    global _application
    setup_logging(os.environ.get("LOG_LEVEL", "INFO"))
    _application = Application.from_root(TASK_ROOT, session=session)
    return _application
