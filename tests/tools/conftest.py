from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dryrun import greeting_rules


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Candidate rules: the shipped ones, with a bare greeting sent to a person (``GREETING_RULE``)."""
    return greeting_rules(tmp_path_factory.mktemp("candidate"))
