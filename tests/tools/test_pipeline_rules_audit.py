"""``pipeline-rules``' audit trail: who made each change (the AWS caller identity), and what a version changed."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from runtime.bundles import Bundle, bundle_key
from tests.support.bundles import BUCKET, PIPELINE, VIP_ROUTING, Ops

ALICE = "arn:aws:sts::123456789012:assumed-role/ops/alice"


@pytest.fixture
def as_alice(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell's credentials are those of alice's session of the role ``ops`` (as SSO or assume-role gives them)."""
    boto3.client("iam").create_role(RoleName="ops", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    session = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/ops", RoleSessionName="alice")
    credentials = session["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # as in a new process: the credentials read afresh


def _published_by(ops: Ops, bundle_id: str) -> str:
    body = ops.s3.get_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, bundle_id))["Body"].read()
    return Bundle.from_json(body, bundle_id).published_by


def test_who_deploys_is_the_aws_caller_identity_unless_given(ops: Ops, as_alice: None) -> None:
    """Defect: ``--by`` defaulted to the login name (``root`` on a build box or in a container), so ``list`` said
    "root made it live"; the principal S3 records the write for is what an auditor asks for."""
    live = ops.publish("--live", "--note", "first")
    assert _published_by(ops, live) == ALICE
    assert ops.deployment().updated_by == ALICE
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish("--note", "VIPs")
    for command in (("shadow", candidate), ("promote",), ("rollback",)):
        status, _, err = ops.rules(*command)
        assert (status, err.count("caller identity")) == (0, 0), err
        assert ops.deployment().updated_by == ALICE, command
    status, out, _ = ops.rules("list")
    assert status == 0
    history = [line for line in out.splitlines() if line.startswith("  r")]
    assert len(history) == 4 and all(f"  {ALICE}: live " in line for line in history), history
    assert f"{candidate}  " in out and f"  {ALICE}  " in out

    # Given, --by is recorded as given (the operator's words), with no STS call needed.
    assert ops.rules("promote", candidate, "--by", "bob (change 42)")[0] == 0
    assert ops.deployment().updated_by == "bob (change 42)"


def test_without_sts_who_deploys_is_the_login_name_and_it_says_so(ops: Ops) -> None:
    """STS that cannot be reached (here: an endpoint nothing listens on) leaves the login name, said on stderr."""
    status, _, err = ops.rules("--endpoint-url", "http://127.0.0.1:9", "publish", "--live")
    assert status == 0, err
    login = getpass.getuser()
    assert ops.deployment().updated_by == login
    assert (
        f"pipeline-rules: note: the AWS caller identity could not be read (EndpointConnectionError): recorded as "
        f"by {login!r}, the login name; pass --by NAME to name who"
    ) in err
    assert err.count("caller identity") == 1  # one STS call for the command (the bundle and the deployment)


def _expected_diff(old: str, new: str, old_text: str, new_text: str) -> str:
    import difflib

    return "".join(
        difflib.unified_diff(old_text.splitlines(keepends=True), new_text.splitlines(keepends=True), old, new)
    )


def test_diff_shows_what_a_version_changes_file_by_file(ops: Ops, tmp_path: Path) -> None:
    """Defect: "what did this version change?" took ``pull`` twice and ``diff -r``; now ``pipeline-rules diff``."""
    from tests.support.bundles import PIPELINE_FILE, ROUTING

    first = ops.publish("--live", "--by", "alice", "--note", "first")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish("--shadow", "--by", "bob", "--note", "VIPs")
    vip = _expected_diff(f"{first}/rules/40_routing.yaml", f"{candidate}/rules/40_routing.yaml", ROUTING, VIP_ROUTING)

    # With a shadow candidate: the live bundle against it, only the file that differs (exit 1, as diff's).
    status, out, err = ops.rules("diff")
    assert (status, out) == (1, vip), err
    assert "+  - id: vip_to_human\n" in out and err == (
        f"pipeline-rules: live bundle {first} (revision 1 by alice: first) against shadow bundle {candidate} "
        "(revision 2 by bob: VIPs): 1 of 4 files differs\n"
    )
    assert ops.rules("diff", "live", "shadow")[:2] == (1, vip)
    assert ops.rules("diff", candidate)[:2] == (1, vip)  # one given: the live bundle against it
    assert ops.rules("diff", "live", first) == (
        0,
        "",
        f"pipeline-rules: live bundle {first} (revision 1 by alice: first) against bundle {first}: the same 4 files\n",
    )

    # list and promote say so.
    assert (
        "\nhistory (newest first; `pipeline-rules diff` shows what the shadow candidate changes):\n"
        in (ops.rules("list")[1])
    )
    status, _, err = ops.rules("promote", "--by", "bob")
    assert status == 0
    assert f"\npipeline-rules: note: `pipeline-rules diff {first} {candidate}` shows what promoting it changes\n" in err

    # Once promoted: the live bundle before against the live one (what the last live change changed).
    status, out, err = ops.rules("diff")
    assert (status, out) == (1, vip), err
    assert (
        "\nhistory (newest first; `pipeline-rules diff` shows what the latest live change changed):\n"
        in (ops.rules("list")[1])
    )
    # The local rules (this pipeline's: not email_inbound's files), and the pipeline file, are those published.
    assert ops.rules("diff", "packaged", "live")[:2] == (0, "")

    # A directory: one `pull` wrote (rules/ inside), or a rules directory itself.
    assert ops.rules("pull", first, "--out", str(tmp_path / "first"))[0] == 0
    expected = vip.replace(f"--- {first}/", f"--- {tmp_path / 'first'}/")
    assert ops.rules("diff", str(tmp_path / "first"), "live")[:2] == (1, expected)
    expected = vip.replace(f"--- {first}/rules/", f"--- {tmp_path / 'first' / 'rules'}/rules/")
    assert ops.rules("diff", str(tmp_path / "first" / "rules"), "live")[:2] == (1, expected)

    # A bundle carrying the pipeline file: compared with the local one for a bundle that carries none.
    with_comment = PIPELINE_FILE.replace("deadline_seconds: 4\n", "deadline_seconds: 4  # Twilio waits 15 s\n", 1)
    (ops.root / "pipelines" / f"{PIPELINE}.yaml").write_text(with_comment, encoding="utf-8")
    carrying = ops.publish("--with-pipeline")
    (ops.root / "pipelines" / f"{PIPELINE}.yaml").write_text(PIPELINE_FILE, encoding="utf-8")  # as deployed
    status, out, _ = ops.rules("diff", "live", carrying)
    assert (status, out) == (
        1,
        _expected_diff(
            f"packaged/pipelines/{PIPELINE}.yaml", f"{carrying}/pipelines/{PIPELINE}.yaml", PIPELINE_FILE, with_comment
        ),
    )


def test_diff_names_what_it_cannot_compare(ops: Ops) -> None:
    """A bad name is an error line and exit 2, never a traceback."""
    status, out, err = ops.rules("diff")
    assert (status, out) == (2, "")
    assert err == (
        "pipeline-rules: error: no deployment of twilio_inbound: nothing to compare by default; give two of a bundle "
        "id, live, shadow, packaged (the local rules/) or a directory\n"
    )
    live = ops.publish("--live")
    for names, message in (
        (("0123456789ab",), "no bundle 0123456789ab of twilio_inbound at s3://"),
        (("shadow",), "there is no shadow candidate of twilio_inbound (revision 1: live"),
        (("live", "no/such/dir"), "no/such/dir: no such directory (nor a bundle id)"),
    ):
        status, out, err = ops.rules("diff", *names)
        assert (status, out) == (2, ""), names
        assert err.startswith(f"pipeline-rules: error: {message}") and "Traceback" not in err, err
        assert err.count("\n") == 1, err
    assert ops.rules("diff", "live", live)[0] == 0


def test_a_command_that_writes_nothing_asks_sts_nothing(ops: Ops) -> None:
    """The caller identity is read only once the command is about to write: publishing a bundle published already
    (no --live/--shadow), or promoting what is live already, wrote nothing yet asked STS (here: an endpoint nothing
    listens on), and said the login name was recorded where nothing was."""
    live = ops.publish("--live", "--by", "alice")
    before = ops.deployment()

    status, out, err = ops.rules("--endpoint-url", "http://127.0.0.1:9", "publish")
    assert (status, f"already published: bundle {live}" in out) == (0, True), out + err
    status, out, err_promote = ops.rules("--endpoint-url", "http://127.0.0.1:9", "promote", live)
    assert status == 0, out + err_promote

    assert "caller identity" not in err + err_promote
    assert ops.deployment() == before


def test_diff_of_the_packaged_rules_away_from_the_project_is_an_error(ops: Ops, tmp_path: Path) -> None:
    """``packaged`` is the project's ``rules/`` where the command runs; run elsewhere (with ``--pipeline NAME`` the
    bucket is all pipeline-rules needs), it took the directory itself for the rules: no rules at all, or any YAML
    there (a SAM template) taken for rule files, and printed every live file as added, exit 1, as if the live rules
    differed from the packaged."""
    import io
    import os

    from tools.rules import run

    live = ops.publish("--live")  # one revision: by default the packaged rules against the live bundle
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "template.yaml").write_text("Resources: {}\n", encoding="utf-8")
    for names in ((), ("packaged", "live"), ("live", "packaged")):
        out, err = io.StringIO(), io.StringIO()
        cwd = Path.cwd()
        os.chdir(elsewhere)
        try:
            status = run(["--bucket", BUCKET, "--pipeline", PIPELINE, "diff", *names], client=ops.s3, out=out, err=err)
        finally:
            os.chdir(cwd)
        assert (status, out.getvalue()) == (2, ""), (names, out.getvalue())
        assert err.getvalue() == (
            f"pipeline-rules: error: the packaged rules are the project's rules/, and {elsewhere} has none: run "
            "the command in the project, or give the directory\n"
        ), names
    assert ops.rules("diff", "packaged", live)[0] == 0


def test_the_caller_identity_is_read_from_moto_whatever_the_machines_aws_configuration() -> None:
    """The tests' AWS is moto's: a shell's service endpoint (``AWS_ENDPOINT_URL_STS``, as a LocalStack setup exports)
    or its ``~/.aws/config`` sent STS calls elsewhere, and the caller-identity tests failed with
    EndpointConnectionError on such a machine (tests/conftest.py dropped ``AWS_ENDPOINT_URL`` only)."""
    import os

    assert [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")] == []
    assert (os.environ.get("AWS_CONFIG_FILE"), os.environ.get("AWS_SHARED_CREDENTIALS_FILE")) == (os.devnull,) * 2
    with mock_aws():
        sts = boto3.client("sts")
        assert sts.meta.endpoint_url.endswith(".amazonaws.com")
        assert sts.get_caller_identity()["Account"] == "123456789012"
