"""What the docs tell an operator to download or write from production stays readable by that operator only."""

from __future__ import annotations

import re

from tests.support.expect import ROOT

_FENCE = re.compile(r"^```(?:sh|bash|console)?\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_every_documented_download_of_captures_keeps_the_files_the_operators() -> None:
    # Defect: docs/recording-events.md downloaded a day's captures with a bare `aws s3 sync`, which creates them with
    # the umask's mode (0644 on most machines): phone numbers, and with mask=none the messages, readable by every
    # user of the laptop or runner. A download under `umask 077` (in a subshell) keeps them the operator's alone.
    downloads = [
        line.strip()
        for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for block in _FENCE.findall(page.read_text(encoding="utf-8"))
        for line in block.splitlines()
        if re.search(r"\baws s3 (sync|cp)\b", line)
    ]
    assert downloads
    assert [line for line in downloads if not line.startswith("(umask 077; aws s3 ")] == []
