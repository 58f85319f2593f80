"""Which events a shadow candidate decides again: those whose live run reached the deciding steps.

A parse step names the channel in ``request`` before it refuses a request (``webhook_post``), so a deciding step
that reads the request only (a pipeline without a conversation: ``tests/fixtures/status_webhook``) finds its input
in the document of a run that never got to it.
"""

from __future__ import annotations

import json
from pathlib import Path

from moto import mock_aws

from engine.config import load_config
from engine.http import HttpRequest
from runtime.apigateway import http_request
from runtime.app import live_services
from runtime.shadow import compare, plan, reaches
from tests.support.expect import ROOT
from tests.support.plugins import STATUS_PLUGIN, plugin_loaded
from tools.events import rest_event

FIXTURE = ROOT / "tests" / "fixtures" / "status_webhook"


def _status(body: str) -> HttpRequest:
    event = rest_event("POST", "/prod/status", host="h.example.com", body=body, request_id="r", request_time_ms=1)
    return http_request(event)


def test_a_run_refused_before_the_rules_is_not_decided_again(tmp_path: Path) -> None:
    candidate_rules = tmp_path / "rules"
    candidate_rules.mkdir()
    text = (FIXTURE / "rules" / "70_status_screening.yaml").read_text(encoding="utf-8")
    (candidate_rules / "70_status_screening.yaml").write_text(text.replace("'failed', ", ""), encoding="utf-8")
    env = {"STATUS_TABLE_NAME": "statuses"}
    with plugin_loaded(STATUS_PLUGIN):
        live = load_config(FIXTURE / "pipelines" / "status_inbound.yaml", FIXTURE / "rules", env)
        candidate = load_config(FIXTURE / "pipelines" / "status_inbound.yaml", candidate_rules, env)
        plans = plan(live), plan(candidate)
        # Before: reached (its document holds request.channel), and counted as a difference the rules never made.
        refused = live.pipeline.run(_status("not json"), live_services(live.aws))
        assert (refused.error_code, [entry.step for entry in refused.trace]) == ("PARSING_ERROR", ["parse"])
        assert not reaches(plans[1], refused)
        assert compare(*plans, refused) is None
        with mock_aws():  # no status table: the write after the rules fails, which is no concern of the shadow
            decided = live.pipeline.run(_status(json.dumps({"id": "m-1", "status": "failed"})), live_services(live.aws))
        assert decided.error_code == "STATUS_WRITE_ERROR"
        comparison = compare(*plans, decided)
        assert comparison is not None and comparison.counts["ShadowMismatches"] == 1
