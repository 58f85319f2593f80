"""A step that ends an event with an error code it never declared: the declaration is what everything else reads.

The error catalogue (``errors=`` of the steps, ``errors:`` of the pipeline) is what the response maps, ``--check``
and the template's alarms are derived from; a code outside it would be answered and counted unseen by any alarm.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from engine import registry
from engine.config import load_config
from engine.context import Context, StepResult
from engine.errors import ErrorSpec, StepFailure
from runtime.app import Application, live_services
from tests.support.plugins import step_registered
from tools.events import rest_event

DECLARED = ErrorSpec("PROBE_REFUSED", description="the probe refused the event")

PIPELINE = """pipeline: probe_inbound
channels: [probe]
steps:
  - id: probe
    uses: probe.refuse
    with: {code: CODE}
responses:
  api:
    default: true
    format: json
    status: {PROBE_REFUSED: 422}
    default_status: 500
"""


class _Refuse:
    """Refuse every event with the code of its parameters."""

    def __init__(self, params: Mapping[str, Any], info: registry.BuildInfo) -> None:
        self._code = str(params["code"])

    def run(self, ctx: Context) -> StepResult:
        raise StepFailure(self._code, "refused")


@pytest.fixture
def probe_step() -> Iterator[str]:
    params = {"type": "object", "properties": {"code": {"type": "string"}}}
    with step_registered("probe.refuse", _Refuse, errors=(DECLARED,), params=params) as name:
        yield name


def _answer(tmp_path: Path, code: str) -> dict[str, Any]:
    (tmp_path / "rules").mkdir(exist_ok=True)
    pipeline = tmp_path / "probe_inbound.yaml"
    pipeline.write_text(PIPELINE.replace("CODE", code), encoding="utf-8")
    config = load_config(pipeline, tmp_path / "rules", {})
    application = Application([config], live_services(config.aws))
    event = rest_event("POST", "/prod/probe", host="hooks.example.com", body="{}", request_id="r-1", request_time_ms=1)
    answer = application.handle(event, None)
    return {**json.loads(answer["body"]), "http": answer["statusCode"]}


def test_a_declared_code_is_answered_as_configured(probe_step: str, tmp_path: Path) -> None:
    answer = _answer(tmp_path, "PROBE_REFUSED")
    assert (answer["http"], answer["error_code"]) == (422, "PROBE_REFUSED")


def test_an_undeclared_code_ends_the_event_as_the_bug_it_is(
    probe_step: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: answered and counted as PROBE_TYPO, a code no alarm of the template can watch (none is declared).
    answer = _answer(tmp_path, "PROBE_TYPO")
    assert (answer["http"], answer["error_code"]) == (500, "INTERNAL_ERROR")
    (line,) = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert line.getMessage() == (
        "step probe ended the event with error code PROBE_TYPO, which no step of the pipeline nor its errors: declare"
    )
