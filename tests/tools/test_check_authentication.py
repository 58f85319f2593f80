"""``pipeline-dryrun --check`` on a third webhook source whose signature step refuses with a code of its own.

The plugin (``tests/fixtures/hmac_webhook``) is added for the run with ``PIPELINE_PLUGINS``, as docs/extending.md
says a tool run may add one, beside the shipped pipelines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.expect import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "hmac_webhook"
PLUGIN = "tests.fixtures.hmac_webhook.hmac_steps"


def check(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIPELINE_PLUGINS": PLUGIN}
    command = [sys.executable, "-m", "tools.dryrun.cli", "--check", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)


def test_a_signature_refusal_no_alarm_counts_is_a_warning(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copy(FIXTURE / "pipelines" / "hmac_inbound.yaml", tmp_path / "pipelines")
    done = check(tmp_path)
    assert done.returncode == 0, done.stderr
    warning = (
        "pipelines/hmac_inbound.yaml:31:11: warning: step 'signature' (hmac.verify) authenticates the request, but no "
        "step of pipelines/hmac_inbound.yaml can end it INVALID_SIGNATURE"
    )
    assert warning in done.stdout
    assert "SignatureMismatches" in done.stdout and "end a refused signature with INVALID_SIGNATURE" in done.stdout
    # The shipped pipelines refuse with INVALID_SIGNATURE: no such warning for them.
    assert [line for line in done.stdout.splitlines() if "INVALID_SIGNATURE" in line] == [
        line for line in done.stdout.splitlines() if line.startswith(warning)
    ]
    assert check(tmp_path, "--strict").returncode == 2


def test_a_signature_refusal_with_a_code_of_its_own_beside_invalid_signature_is_a_warning(tmp_path: Path) -> None:
    """Before: only a pipeline with no step able to end INVALID_SIGNATURE was warned about; a signature step refusing
    a wrong signature INVALID_SIGNATURE but an old one HMAC_STALE (a code of its own, neither transient nor
    loses_message) passed --check without a word, though those refusals are counted in no SignatureMismatches, no
    alarm watches them and the dry-run calls their events' signature not checked."""
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    text = (FIXTURE / "pipelines" / "hmac_inbound.yaml").read_text(encoding="utf-8")
    timed = text.replace("uses: hmac.verify\n", "uses: hmac.verify_timed\n").replace(
        "HMAC_MISMATCH: 403", "HMAC_STALE: 403"
    )
    (tmp_path / "pipelines" / "hmac_inbound.yaml").write_text(timed, encoding="utf-8")
    done = check(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "HMAC_STALE" in line]
    assert line == (
        "pipelines/hmac_inbound.yaml:31:11: warning: step 'signature' (hmac.verify_timed) authenticates the request "
        "and may refuse it HMAC_STALE, a code of its own that is neither transient nor loses_message: such a refusal "
        "is not counted in SignatureMismatches, no alarm watches it and the dry-run reports its signature as not "
        "checked; end it with INVALID_SIGNATURE, as a wrong signature"
    )
    assert not [line for line in done.stdout.splitlines() if "no step of" in line]
