"""Rules files an operations person names, places or shares in a way that runs, but not as they meant.

Each change is made in a copy of the shipped configuration, and ``pipeline-dryrun --check`` must say what the
cold start will do with it: a file it does not read, a request field the pipeline's requests never carry, a channel
no pipeline of the set serves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools.test_check_broken import assemble
from tests.tools.test_check_yaml_mishaps import check, deployed_env

__all__ = ["deployed_env"]  # the fixture, used by name

VIP_SET = """\
ruleset: vip
kind: validation
pipelines: [{pipeline}]
rules:
  - id: vip_paused
    when: "{when}"
    then: {{error: PROJECT_INACTIVE}}
"""


@pytest.mark.usefixtures("deployed_env")
def test_a_rules_file_the_cold_start_does_not_read_is_named_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: rules/55_vip.YAML (an upper-case extension) is never read (the cold start picks *.yaml and *.yml,
    as the file system spells them), so its rules never run, and --check said nothing at all: exit 0, no line.
    Every entry of rules/ the cold start does not read is now named with why and the fix; a hidden file (an
    editor's or git's) is not."""
    root = assemble(tmp_path)
    when = "conversation.project_status == 'vip'"
    (root / "rules" / "55_vip.YAML").write_text(VIP_SET.format(pipeline="twilio_inbound", when=when))
    (root / "rules" / "56_spam.Yml").write_text(VIP_SET.format(pipeline="email_inbound", when=when))
    (root / "rules" / "40_routing.yaml.bak").write_text("ruleset: old\n")
    (root / "rules" / "archive").mkdir()
    (root / "rules" / ".gitkeep").write_text("")

    status, out = check(root, monkeypatch, capsys)

    assert out == [
        "rules/40_routing.yaml.bak:1:1: warning: this file is not read: only the files of rules/ ending in .yaml or "
        ".yml are, so its rule sets never run; rename it to end in .yaml if it holds rules, or move it out of rules/",
        "rules/55_vip.YAML:1:1: warning: this file is not read: only the files of rules/ ending in .yaml or .yml "
        "(lower-case) are, so its rule sets never run; rename it to 55_vip.yaml",
        "rules/56_spam.Yml:1:1: warning: this file is not read: only the files of rules/ ending in .yaml or .yml "
        "(lower-case) are, so its rule sets never run; rename it to 56_spam.yml",
        "rules/archive:1:1: warning: this directory is not read: only the files directly in rules/ are, so the rule "
        "sets of its files never run; move them into rules/, or the directory out of it",
    ]
    assert status == 0
