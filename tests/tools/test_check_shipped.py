"""`pipeline-dryrun --check` on the shipped configuration: clean, with every rule covered by an inline test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.rules import RuleError
from engine.yamlsource import load_yaml
from tests.support.shipped import deployed_env
from tools.check import check_config
from tools.dryrun.cli import main

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "twilio_inbound.yaml"
PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))
RULES = REPO / "rules"
# And every other variable the shipped pipelines require (a new step's table).
UNSET_IN_CI = tuple(
    dict.fromkeys(
        (
            "CONVERSATIONS_TABLE_NAME",
            "STAGE_TABLE_NAME",
            "LOCK_TABLE_NAME",
            "REPLAY_TABLE_NAME",
            "WHATSAPP_QUEUE_URL",
            "SMS_QUEUE_URL",
            "HANDOFF_QUEUE_URL",
            *deployed_env({}),
        )
    )
)


def references() -> list[tuple[str, str]]:
    """(``pipelines/FILE:LINE:COLUMN``, name) of every ``${env:NAME}`` reference without a default, in file order."""
    found = []
    for path in PIPELINES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for name in UNSET_IN_CI:
                if f"${{env:{name}}}" in line:
                    found.append((f"pipelines/{path.name}:{number}:{line.index('${env:') + 1}", name))
    return found


def unset_references(value: Any) -> int:
    """How many values of a parsed document are ``${env:NAME}`` (no default) for a NAME unset in CI."""
    if isinstance(value, dict):
        return sum(unset_references(item) for item in value.values())
    if isinstance(value, list):
        return sum(unset_references(item) for item in value)
    return int(isinstance(value, str) and any(value == f"${{env:{name}}}" for name in UNSET_IN_CI))


@pytest.fixture
def no_deployed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in UNSET_IN_CI:
        monkeypatch.delenv(name, raising=False)


def test_shipped_configuration_passes_where_the_deployed_env_is_absent(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in UNSET_IN_CI}
    script = Path(sys.executable).parent / "pipeline-dryrun"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tools.dryrun.cli"]
    result = subprocess.run([*command, "--check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    expected = [
        f"{where}: warning: environment variable {name} is not set; "
        f"set it or give a default with ${{env:{name}:-VALUE}}"
        for where, name in references()
    ]
    # The text scan above agrees with the parsed pipelines (7 in the Twilio pipeline, 5 in the email pipeline, …).
    assert len(expected) == sum(unset_references(load_yaml(path).data) for path in PIPELINES) > 0
    assert result.stdout.splitlines() == expected
    assert result.returncode == 0
    files = len(PIPELINES) + len(list(RULES.glob("*.yaml")))
    assert result.stderr.startswith(f"checked {files} files: 0 errors, {len(expected)} warnings; inline tests: ")
    assert result.stderr.rstrip().endswith(" passed, 0 failed")


def test_shipped_configuration_is_silent_with_the_deployed_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in UNSET_IN_CI:
        value = f"value-of-{name.lower()}"
        url = f"https://sqs.eu-west-1.amazonaws.com/123456789012/{value}"
        monkeypatch.setenv(name, url if name.endswith("_QUEUE_URL") else value)
    monkeypatch.chdir(REPO)
    assert main(["--check"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.usefixtures("no_deployed_env")
def test_strict_env_makes_every_unset_reference_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["--check", "--strict-env"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [where for where, _ in references()]
    assert all("warning" not in line for line in lines)


@pytest.mark.usefixtures("no_deployed_env")
def test_every_shipped_rule_decides_at_least_one_inline_test() -> None:
    report = check_config(PIPELINE, RULES)
    assert report.exit_code == 0
    assert not report.not_run
    from engine.config import inspect_config

    for loaded in inspect_config(PIPELINE, RULES, missing_env="warning").rulesets.values():
        decided = set()
        for test in loaded.ruleset.tests:
            try:
                evaluation = loaded.ruleset.evaluate(test.given)
            except RuleError as exc:
                decided.add(exc.rule)
                continue
            decided.add(evaluation.rule.id if evaluation.rule else None)
        assert {rule.id for rule in loaded.ruleset.rules} <= decided, loaded.ruleset.name
