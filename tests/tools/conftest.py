from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.support.bundles import Ops, make_bucket, working_copy
from tests.support.dryrun import greeting_rules


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Candidate rules: the shipped ones, with a bare greeting sent to a person (``GREETING_RULE``)."""
    return greeting_rules(tmp_path_factory.mktemp("candidate"))


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Ops]:
    """An operator's working copy of the project and an S3 bucket for rule bundles (moto, in-process)."""
    with mock_aws():
        s3 = boto3.client("s3")
        make_bucket(s3)
        yield Ops(s3, working_copy(tmp_path / "ops"))
