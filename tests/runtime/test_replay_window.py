"""A replay record must outlive every signature the pipeline accepts (defect: a rules bundle could shorten the record's
life, or lengthen the signature's window, and a captured email posted again after its record expired was accepted)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.yamlsource import load_yaml
from runtime.layout import yaml_files
from runtime.verify import verify
from tests.support.shipped import deployed_env
from tools.check import check_config

ROOT = Path(__file__).resolve().parents[2]
EMAIL = (ROOT / "pipelines" / "email_inbound.yaml").read_text(encoding="utf-8")
ENV = deployed_env(
    {
        "CONVERSATIONS_TABLE_NAME": "conversations",
        "STAGE_TABLE_NAME": "stage",
        "LOCK_TABLE_NAME": "lock",
        "REPLAY_TABLE_NAME": "replay",
        "EMAIL_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/000000000000/email",
        "HANDOFF_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/000000000000/handoff",
    }
)
# A space first: not the parse step's replay_horizon_seconds.
HORIZON = " horizon_seconds: ${env:REPLAY_HORIZON_SECONDS:-604800}"
SHORT = " horizon_seconds: 3600"
MAX_AGE = "max_age_seconds: ${env:EMAIL_SIGNATURE_MAX_AGE_SECONDS:-345600}"


def located(text: str, needle: str, occurrence: int = 1) -> str:
    """``FILE:LINE:COLUMN`` of the value after ``needle``'s key in its ``occurrence``-th appearance."""
    start = -1
    for _ in range(occurrence):
        start = text.index(needle, start + 1)
    start, needle = start + 1, needle[1:]
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + needle.index(": ") + 3
    return f"pipelines/email_inbound.yaml:{line}:{column}"


def copy(tmp_path: Path, text: str) -> tuple[Path, Path]:
    (tmp_path / "pipelines").mkdir()
    pipeline = tmp_path / "pipelines" / "email_inbound.yaml"
    pipeline.write_text(text, encoding="utf-8")
    # The email pipeline's rule sets: the shared ones and those naming it (40_routing.yaml is the Twilio pipeline's).
    (tmp_path / "rules").mkdir()
    for path in yaml_files(ROOT / "rules"):
        if "email_inbound" in load_yaml(path).data.get("pipelines", ["email_inbound"]):
            shutil.copy(path, tmp_path / "rules")
    return pipeline, tmp_path / "rules"


def second(text: str, old: str, new: str) -> str:
    first = text.index(old)
    return text[: first + 1] + text[first + 1 :].replace(old, new, 1)


@pytest.mark.parametrize(
    ("changed", "where"),
    [
        # The accepted email's record lives an hour; SendGrid's signature stays valid four days.
        (second(EMAIL, HORIZON, SHORT), [(SHORT, 1)]),
        # The refusal's record lives an hour.
        (EMAIL.replace(HORIZON, SHORT, 1), [(SHORT, 1)]),
        # The signature's window is a year, its own check against the horizon dropped: both records are too short.
        (
            EMAIL.replace(MAX_AGE, "max_age_seconds: 31536000", 1).replace(
                "      replay_horizon_seconds: ${env:REPLAY_HORIZON_SECONDS:-604800}\n", "", 1
            ),
            [(HORIZON, 1), (HORIZON, 2)],
        ),
    ],
    ids=["record", "refusal", "window"],
)
def test_a_replay_record_shorter_than_the_signatures_window_is_refused(
    tmp_path: Path, changed: str, where: list[tuple[str, int]]
) -> None:
    pipeline, rules = copy(tmp_path, changed)
    errors = [str(problem) for problem in verify(pipeline, rules, ENV).errors]
    report = check_config(pipeline, rules, ENV)
    assert [str(problem) for problem in report.errors] == errors
    assert [error.split(": ", 1)[0].rsplit("/pipelines/", 1)[-1] for error in errors] == [
        located(changed, *place).removeprefix("pipelines/") for place in where
    ]
    for error in errors:
        assert "a request posted again after its record expired would be accepted" in error


def test_the_shipped_pipelines_keep_their_records_longer_than_their_signatures_last(tmp_path: Path) -> None:
    pipeline, rules = copy(tmp_path, EMAIL)
    assert verify(pipeline, rules, ENV).errors == []
    assert verify(pipeline, rules, {**ENV, "REPLAY_TABLE_NAME": ""}).errors == []
