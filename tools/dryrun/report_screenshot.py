"""The report page's screenshot for the docs, and a sample report for the page's own tests.

``python -m tools.dryrun.report_screenshot [PNG]`` writes ``docs/images/report.png`` from a real
``pipeline-dryrun --report`` run: the bundled examples replayed against ``examples/world.yaml`` with a
candidate rule that hands a bare greeting to a person (``CANDIDATE_RULE``) against the shipped rules, which
changes the burst's first message and, as a knock-on, its second. ``sample_records`` are hand-made records
(a change, its knock-on, masked captures) for ``tests/tools/test_report_page.py``. It borrows the test
suite's browser helper (``tests.support.browser``), so it needs what the browser tests need.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.dryrun.report_page import ParallelSketch, PipelineSketch, ReportMeta

__all__ = ["CANDIDATE_RULE", "SAMPLE_META", "example_report", "main", "sample_pipeline", "sample_records"]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_META = ReportMeta(
    title="Dry-run: urgent-handoff rules against main",
    generated_at="2026-11-25T12:04:31Z",
    rules_version="rules@urgent-handoff (9f8e7d6)",
    baseline="rules/ on main",
    baseline_rules_version="rules@main (a1b2c3d)",
    world="examples/world.yaml",
    warnings=(
        "2 event(s) came from masked recordings and a rule read a masked field: "
        "those decisions may differ in production",
    ),
)
CANDIDATE_RULE = """rules:
  - id: greeting_to_human
    description: A bare greeting goes to a person.
    when: "request.body == 'Hi'"
    then: {target: handoff}
"""
_RULESETS = {
    "project_status": ("project_inactive",),
    "channel": ("channel_not_allowed",),
    "conversation_lock": ("processing_reply",),
    "routing": ("urgent_keyword", "hand_off_to_human", "auto_queue_reply", "auto_queue_from_number", "channel_queue"),
}
_CONVERSATION = "ci-acme-001#pi-acme-support#6f0c2a52-5d0e-4d8e-9a55-1c1d7f0b2a01#**********01"
_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
_DECISIONS = {
    "lookup": "1 candidate(s)",
    "auth_token": "cache",
    "signature": "valid",
    "conversation": "found",
    "rules": "passed",
    "stage": "written",
}
_MESSAGES = {
    "CONVERSATION_LOCKED": "a reply is being prepared for this conversation",
    "INVALID_SIGNATURE": "X-Twilio-Signature does not match the request",
    "SECRET_FETCH_FAILED": "secret fetch failed: ResourceNotFoundException",
    "CONVERSATION_NOT_FOUND": "no conversation for this number pair",
    "DB_TRANSIENT_ERROR": "conversations table: ProvisionedThroughputExceededException",
}


def sample_pipeline() -> PipelineSketch:
    """The shipped pipeline's sketch."""
    return PipelineSketch.from_document(yaml.safe_load((ROOT / "pipelines" / "twilio_inbound.yaml").read_text()))


def _step_ids(pipeline: PipelineSketch) -> list[str]:
    return [m.id for node in pipeline.steps for m in (node.members if isinstance(node, ParallelSketch) else (node,))]


def _actions(target: str | None, outcome: str, sid: str, channel: str) -> list[dict[str, Any]]:
    if target is None or outcome not in ("QUEUED", "BATCHED", "HANDED_OFF"):
        return []
    stage = {"conversation_id": _CONVERSATION, "message_sid": sid, "primary_channel": "+**********01"}
    actions: list[dict[str, Any]] = [
        {
            "type": "put_item",
            "table": "conversations-stage",
            "item": {**stage, "channel_type": channel, "body": "[masked]"},
        }
    ]
    if target == "handoff":
        body = f'{{"conversation_id":"{_CONVERSATION}","message_sid":"{sid}","body":"[masked]","request":{{}}}}'
        return [*actions, {"type": "send_message", "queue": "handoff", "body": body, "delay_seconds": 0}]
    lock = {"type": "put_item", "table": "conversations-trigger-lock", "item": {"conversation_id": _CONVERSATION}}
    if outcome == "BATCHED":
        return [*actions, {**lock, "condition_failed": True}]
    trigger = f'{{"conversation_id": "{_CONVERSATION}", "primary_channel": "+**********01"}}'
    return [*actions, lock, {"type": "send_message", "queue": target, "body": trigger, "delay_seconds": 10}]


def _record(
    steps: Sequence[str],
    source: str,
    outcome: str,
    *,
    target: str | None = None,
    ended: Mapping[str, str] | None = None,
    rules: Mapping[str, str | None] | None = None,
    baseline: tuple[str, str | None, str] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """A ``--json`` record: steps run until ``ended`` gives one a status but ok; ``rules``: set → rule matched."""
    ended = dict(ended or {})
    skipped = {"status_callback", *([] if target in ("whatsapp", "sms") else ["lock"])} - set(ended)
    channel = "sms" if target == "sms" else "whatsapp"
    route = f"{target} ({(rules or {}).get('routing')})"
    decisions = {**_DECISIONS, "parse": f"{channel} message", "route": route, "send": outcome}
    trace: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        status = ended.get(step, "skipped" if step in skipped else "ok")
        ms = round(0.05 + 1.7 * ((index * 7 + len(source)) % 5), 3)
        decision = (
            ("acquired" if status == "ok" else "held by another message") if step == "lock" else decisions.get(step)
        )
        trace.append({"step": step, "status": status, "ms": ms, "decision": decision if status != "skipped" else None})
        if status not in ("ok", "skipped"):
            break
    tried = []
    for ruleset, matched in (rules or {}).items():
        for rule in _RULESETS[ruleset]:
            tried.append({"ruleset": ruleset, "rule": rule, "matched": rule == matched})
            if rule == matched:
                break
    error = None if outcome in ("QUEUED", "BATCHED", "HANDED_OFF", "STATUS_CALLBACK") else outcome
    raised = outcome.endswith("TRANSIENT_ERROR")
    signature = next((entry["status"] for entry in trace if entry["step"] == "signature"), None)
    sid = "SM" + hashlib.sha256(source.encode()).hexdigest()[:32]
    record: dict[str, Any] = {
        "source": source,
        "outcome": outcome,
        "error_code": error,
        "raised": raised,
        "status_code": None if raised else 200,
        "target": target,
        "queue": None if target is None else f"https://sqs.us-east-1.amazonaws.com/123456789012/{target}",
        "actions": _actions(target, outcome, sid, channel),
        "trace": trace,
        "rules": tried,
        "signature": {None: "unchecked", "ok": "valid"}.get(signature, "invalid"),
        "message": _MESSAGES.get(outcome),
        "response": None if raised else {"status_code": 200, "content_type": "text/xml", "body": _TWIML},
        "notes": list(notes),
    }
    if raised:
        record["exception"] = f"{outcome}: ProvisionedThroughputExceededException (GetItem)"
    if baseline is not None:
        record["baseline_outcome"], record["baseline_target"], record["change_kind"] = baseline
        record["changed"] = baseline[2] != "unchanged"
    return record


def sample_records(pipeline: PipelineSketch) -> list[dict[str, Any]]:
    """Thirteen realistic records: a baseline comparison with one change, its knock-on and masked captures."""
    steps = _step_ids(pipeline)
    passed = {"project_status": None, "channel": None, "conversation_lock": None}
    masked = (
        "recording masked (mask=text): routing/urgent_keyword read request.body, which held [masked] instead of "
        "the real value; production may decide differently (replay a mask=none capture to review rules that read text)"
    )

    def event(source: str, outcome: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("baseline", (outcome, fields.get("target"), "unchanged"))
        return _record(steps, source, outcome, **fields)

    return [
        event(
            "examples/events/01_whatsapp_text.json",
            "QUEUED",
            target="whatsapp",
            rules={**passed, "routing": "channel_queue"},
        ),
        event(
            "examples/events/02_sms_http_api.json", "QUEUED", target="sms", rules={**passed, "routing": "channel_queue"}
        ),
        event(
            "examples/events/03_handoff.json",
            "HANDED_OFF",
            target="handoff",
            rules={**passed, "routing": "hand_off_to_human"},
        ),
        event(
            "examples/events/04_locked_conversation.json",
            "CONVERSATION_LOCKED",
            ended={"rules": "CONVERSATION_LOCKED"},
            rules={"project_status": None, "channel": None, "conversation_lock": "processing_reply"},
        ),
        event("examples/events/06_bad_signature.json", "INVALID_SIGNATURE", ended={"signature": "INVALID_SIGNATURE"}),
        event(
            "examples/events/08_burst.jsonl#0",
            "HANDED_OFF",
            target="handoff",
            rules={**passed, "routing": "urgent_keyword"},
            baseline=("QUEUED", "whatsapp", "changed"),
        ),
        event(
            "examples/events/08_burst.jsonl#1",
            "QUEUED",
            target="whatsapp",
            rules={**passed, "routing": "channel_queue"},
            baseline=("BATCHED", "whatsapp", "knock_on"),
        ),
        event(
            "examples/events/08_burst.jsonl#2",
            "BATCHED",
            target="whatsapp",
            ended={"lock": "stopped"},
            rules={**passed, "routing": "channel_queue"},
        ),
        event(
            "examples/events/09_secret_missing.json", "SECRET_FETCH_FAILED", ended={"auth_token": "SECRET_FETCH_FAILED"}
        ),
        event(
            "examples/events/12_callback_and_stranger.json#0", "STATUS_CALLBACK", ended={"status_callback": "stopped"}
        ),
        event(
            "examples/events/12_callback_and_stranger.json#1",
            "CONVERSATION_NOT_FOUND",
            ended={"lookup": "CONVERSATION_NOT_FOUND"},
        ),
        event(
            "captures/2026-11-24.jsonl#3",
            "QUEUED",
            target="whatsapp",
            rules={**passed, "routing": "channel_queue"},
            notes=(masked,),
        ),
        event(
            "captures/2026-11-24.jsonl#7",
            "DB_TRANSIENT_ERROR",
            ended={"conversation": "DB_TRANSIENT_ERROR"},
            notes=(masked,),
        ),
    ]


def example_report(folder: Path) -> Path:
    """Replay the bundled examples with ``CANDIDATE_RULE`` against the shipped rules; the report page's path."""
    from tools.dryrun.cli import build_parser
    from tools.dryrun.replay import run_replay

    candidate = folder / "candidate-rules"
    shutil.copytree(ROOT / "rules", candidate)
    routing = candidate / "40_routing.yaml"
    routing.write_text(routing.read_text(encoding="utf-8").replace("rules:\n", CANDIDATE_RULE, 1), encoding="utf-8")
    page = folder / "report.html"
    arguments = [
        *("--world", "examples/world.yaml", "--backend", "memory", "--now", "2026-11-25T12:00:00Z"),
        *("--rules", str(candidate), "--baseline-rules", "rules", "--json", "--report", str(page)),
        *("--report-title", "Dry-run: greeting_to_human (candidate) against rules/", "examples/events"),
    ]
    here = Path.cwd()
    os.chdir(ROOT)  # sources and names as a user in the repository sees them
    try:
        errors = io.StringIO()
        if run_replay(build_parser().parse_args(arguments), out=io.StringIO(), err=errors) != 0:
            raise RuntimeError(f"the example replay failed: {errors.getvalue()}")
    finally:
        os.chdir(here)
    return page


def main(argv: Sequence[str] | None = None) -> int:
    """Write the screenshot (default ``docs/images/report.png``) and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.dryrun.report_screenshot", description="The report page's screenshot for the docs."
    )
    default = ROOT / "docs" / "images" / "report.png"
    parser.add_argument("png", nargs="?", type=Path, default=default, help=f"where to write it (default {default})")
    target = parser.parse_args(argv).png.resolve()
    from runtime.plugins import load_plugins
    from tests.support.browser import Chromium, find_chromium, launch

    chromium = find_chromium()
    if not isinstance(chromium, Chromium):
        print(f"report_screenshot: {chromium}", file=sys.stderr)
        return 1
    load_plugins()
    with tempfile.TemporaryDirectory() as folder, launch(chromium, width=1360, height=900) as browser:
        browser.open(example_report(Path(folder)))
        browser.run("document.querySelector('tr.kind-changed').click()")
        problems = browser.problems()
        if problems:
            print("report_screenshot: the page went wrong:", *problems, sep="\n  ", file=sys.stderr)
            return 1
        height = browser.run("return document.documentElement.scrollHeight")
        metrics = {"width": 1360, "height": height, "deviceScaleFactor": 1, "mobile": False}
        browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        target.parent.mkdir(parents=True, exist_ok=True)
        browser.driver.save_screenshot(str(target))
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
