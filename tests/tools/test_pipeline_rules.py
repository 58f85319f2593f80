"""``pipeline-rules`` against moto's S3: what ops see, and what it refuses to do."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from runtime.bundles import Bundle, BundleError, Deployment, bundle_key, deployment_key
from tests.support.bundles import (
    ACCOUNT_SID_KEY,
    ACCOUNT_SID_KEY_PROBLEM,
    AGENT_ROUTING,
    ANY_SECRET,
    ANY_SECRET_PROBLEM,
    BEFORE_TYPES,
    BROKEN_ROUTING,
    BUCKET,
    NO_REPLAY_RECORDS,
    NO_REPLAY_RECORDS_PROBLEM,
    NO_SIGNATURE,
    NO_SIGNATURE_PROBLEM,
    PIPELINE,
    PIPELINE_FILE,
    ROUTING,
    TRANSIENT_ANSWERED,
    TRANSIENT_ANSWERED_PROBLEM,
    VIP_ROUTING,
    WHATSAPP_ONLY,
    Ops,
    rules_files,
    with_pipeline_file,
    working_copy,
)
from tests.support.shipped import pipeline_names, position


def test_publishing_the_same_files_twice_is_the_same_bundle(ops: Ops) -> None:
    first = ops.publish()
    status, out, _ = ops.rules("publish", "--note", "again")
    assert status == 0 and f"already published: bundle {first} of twilio_inbound (4 files)" in out
    assert "rules version with the pipeline file pipelines/twilio_inbound.yaml as deployed: " in out


def test_a_bundle_with_the_pipeline_file_has_the_version_the_function_reports(ops: Ops) -> None:
    from engine.config import load_config
    from tests.support.expect import ENV

    bundle_id = ops.publish("--with-pipeline")
    config = load_config(ops.root / "pipelines" / "twilio_inbound.yaml", ops.root / "rules", ENV)
    assert bundle_id == config.version


def test_list_shows_the_deployment_its_history_and_the_bundles(ops: Ops) -> None:
    assert ops.rules("list")[1].splitlines()[1] == "no deployment: the rules packaged beside the handler decide"
    first = ops.publish("--live", "--note", "first", "--by", "alice")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    second = ops.publish("--shadow", "--note", "VIPs", "--by", "bob")
    status, out, _ = ops.rules("list")
    assert status == 0
    lines = out.splitlines()
    assert lines[1].startswith(f"deployment revision 2: live {first}, shadow {second} (")
    assert lines[1].endswith(" by bob)")
    assert lines[3].endswith(f"bob: live {first}, shadow {second}  VIPs")
    assert lines[4].endswith(f"alice: live {first}  first")
    listed = {line.split()[0]: line for line in lines[6:]}
    assert "[live]" in listed[first] and "[shadow]" in listed[second]


def test_what_cannot_be_done_is_refused_with_a_reason(ops: Ops) -> None:
    assert ops.rules("promote") == (
        2,
        "",
        "pipeline-rules: error: there is no shadow candidate to promote; give a bundle id\n",
    )
    status, _, err = ops.rules("rollback")
    assert (status, err) == (
        2,
        "pipeline-rules: error: no earlier live bundle in the history; give --to BUNDLE or --to packaged\n",
    )
    status, _, err = ops.rules("shadow", "0123456789ab")
    assert status == 2 and "no bundle 0123456789ab of twilio_inbound" in err
    assert ops.rules("shadow")[0] == 2
    status, _, err = ops.rules("--bucket", "", "list")
    assert status == 2


def test_shadow_clear_and_promote_move_only_the_pointer(ops: Ops) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish("--shadow")
    assert ops.rules("shadow", "--clear")[0] == 0
    assert (ops.deployment().live, ops.deployment().shadow) == (None, None)
    assert ops.rules("promote", candidate)[0] == 0
    assert (ops.deployment().revision, ops.deployment().live) == (3, candidate)
    assert ops.rules("rollback")[0] == 0
    assert ops.deployment().live is None


def test_a_command_that_changes_nothing_writes_no_revision(ops: Ops) -> None:
    """Defect: promoting the live bundle, or clearing an empty shadow, wrote a revision that changed nothing
    (the history filled with no-ops, and the next rollback stepped back to the same bundle)."""
    live = ops.publish("--live")
    for command in (("promote", live), ("shadow", "--clear"), ("rollback", "--to", live)):
        status, out, err = ops.rules(*command)
        assert (status, out, err) == (0, f"unchanged, nothing written: revision 1: live {live}\n", ""), command
    deployment = ops.deployment()
    assert (deployment.revision, deployment.history) == (1, ())
    status, out, _ = ops.rules("publish", "--live")  # already published, already live: no revision either
    assert status == 0 and out.endswith(f"unchanged, nothing written: revision 1: live {live}\n"), out
    assert ops.deployment().revision == 1


def test_a_deployment_changed_meanwhile_is_not_overwritten(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import rules

    ops.publish("--live")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish()
    read = rules._Store.deployment

    def someone_else_deploys_between(store: Any) -> tuple[Deployment, str | None]:
        found = read(store)
        other = found[0].change(live=None, shadow=None, at="2026-12-01T00:00:00Z", by="someone else")
        ops.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=other.to_json())
        return found

    monkeypatch.setattr(rules._Store, "deployment", someone_else_deploys_between)
    status, _, err = ops.rules("promote", candidate)
    assert (status, err) == (
        2,
        "pipeline-rules: error: the deployment changed while this ran: revision 2: live the packaged rules "
        "(2026-12-01T00:00:00Z by someone else); nothing was written: `pipeline-rules list` shows the change; run it "
        "again if it is still wanted\n",
    )
    monkeypatch.undo()
    assert ops.deployment().updated_by == "someone else"


# Two publishes of the same files at once (defect: the one whose upload came second failed with exit 2,
# "PreconditionFailed", and did not deploy), and an object under the bundle's key that is not the bundle (defect:
# "already published", then deployed, for the function to refuse).


def test_a_publish_racing_another_of_the_same_files_is_already_published_and_deploys(ops: Ops) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    other = boto3.client("s3")  # the other person's publish

    def the_other_publish_uploads_first(params: dict[str, Any], **_: Any) -> None:
        if "/bundles/" in params["Key"]:  # the same bundle, uploaded between this one's check and its upload
            other.put_object(Bucket=BUCKET, Key=params["Key"], Body=params["Body"])

    ops.s3.meta.events.register("before-parameter-build.s3.PutObject", the_other_publish_uploads_first, "race")
    status, out, err = ops.rules("publish", "--shadow")
    ops.s3.meta.events.unregister("before-parameter-build.s3.PutObject", unique_id="race")
    assert status == 0, err
    (line,) = [line for line in out.splitlines() if "published: bundle" in line]
    bundle_id = line.split()[3]
    assert line.startswith(f"already published: bundle {bundle_id} of twilio_inbound (4 files)")
    assert (ops.deployment().live, ops.deployment().shadow) == (None, bundle_id)


def test_an_object_under_the_bundles_key_that_is_not_the_bundle_is_not_deployed(ops: Ops) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    bundle_id = ops.publish()
    key = bundle_key("rules/", PIPELINE, bundle_id)
    ops.s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"format": 1, "files": {"rules/x.yaml": "tampered"}}')
    status, out, err = ops.rules("publish", "--live")
    assert status == 2
    assert err.endswith(
        f"pipeline-rules: error: s3://{BUCKET}/{key} is not bundle {bundle_id}: the bundle's files do not match "
        f"its id (their digest is {Bundle(PIPELINE, {'rules/x.yaml': 'tampered'}).id}); delete it and publish again\n"
    )
    assert "published: bundle" not in out
    assert ops.s3.list_objects_v2(Bucket=BUCKET, Prefix=deployment_key("rules/", PIPELINE))["KeyCount"] == 0


def test_pull_writes_a_bundle_as_a_baseline_directory(ops: Ops, tmp_path: Path) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    bundle_id = ops.publish()
    status, out, _ = ops.rules("pull", bundle_id, "--out", str(tmp_path / "live"))
    assert status == 0 and out == f"wrote bundle {bundle_id} to {tmp_path / 'live'}/ (rules/)\n"
    assert (tmp_path / "live" / "rules" / "40_routing.yaml").read_text() == VIP_ROUTING
    assert sorted(path.name for path in (tmp_path / "live").iterdir()) == ["rules"]  # no empty pipelines/
    with_pipeline = ops.publish("--with-pipeline")
    status, out, _ = ops.rules("pull", with_pipeline, "--out", str(tmp_path / "carried"))
    assert status == 0 and out == f"wrote bundle {with_pipeline} to {tmp_path / 'carried'}/ (pipelines/, rules/)\n"
    assert (tmp_path / "carried" / "pipelines" / "twilio_inbound.yaml").is_file()


def test_a_bundle_whose_files_are_not_its_id_or_that_holds_other_files_is_refused() -> None:
    bundle = Bundle(PIPELINE, rules_files(VIP_ROUTING))
    stored = json.loads(bundle.to_json())
    assert Bundle.from_json(bundle.to_json(), bundle.id) == bundle
    tampered = {**stored, "files": {**stored["files"], "rules/40_routing.yaml": "ruleset: routing\n"}}
    with pytest.raises(BundleError, match="do not match its id"):
        Bundle.from_json(json.dumps(tampered).encode(), bundle.id)
    other = {**stored, "files": {**stored["files"], "../handler.py": "import os"}}
    with pytest.raises(BundleError, match="files other than"):
        Bundle.from_json(json.dumps(other).encode())
    for name in ("rules/41_routing.yaml\n", "rules/41_routing.yaml\n../handler.py"):
        newline = Bundle(PIPELINE, {**rules_files(VIP_ROUTING), name: "ruleset: x\n"})
        with pytest.raises(BundleError, match="files other than"):
            Bundle.from_json(newline.to_json(), newline.id)
    with pytest.raises(BundleError, match="not JSON"):
        Deployment.from_json(b"{")
    for revision in (True, -1, 1.5, "3"):
        with pytest.raises(BundleError, match="needs a revision number"):
            Deployment.from_json(json.dumps({"format": 1, "revision": revision, "live": None, "shadow": None}).encode())
    assert bundle_key("rules/", PIPELINE, bundle.id) == f"rules/{PIPELINE}/bundles/{bundle.id}.json"


def test_rollback_skips_the_bundle_that_is_live_now() -> None:
    deployment = Deployment()
    for live in ("a", "b", "b", "c"):
        deployment = deployment.change(live=live, shadow=None, at="", by="")
    assert deployment.revision == 4 and list(deployment.earlier_live()) == ["b", "a"]


def test_without_credentials_the_command_says_so_and_exits_2_not_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 1 means an inline rule test failed; a call botocore cannot make is an error like S3 refusing one."""
    from tools.rules import run

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # should credentials turn up: never AWS itself
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session made by an earlier test keeps its credentials
    monkeypatch.chdir(working_copy(tmp_path / "ops"))
    for command in (["list"], ["promote", "0123456789ab"], ["publish"]):
        out, err = io.StringIO(), io.StringIO()
        assert run(["--bucket", BUCKET, *command], out=out, err=err) == 2, command
        assert err.getvalue().endswith("Unable to locate credentials\n"), err.getvalue()


def test_a_pipeline_file_that_cannot_be_read_or_an_unwritable_out_is_refused_with_a_reason(
    ops: Ops, tmp_path: Path
) -> None:
    (ops.root / "pipelines" / "broken.yaml").write_text("pipeline: [unclosed\n", encoding="utf-8")
    (ops.root / "pipelines" / "list.yaml").write_text("- not a mapping\n", encoding="utf-8")
    status, _, err = ops.rules("--pipeline", "pipelines/broken.yaml", "list")
    assert status == 2 and err.startswith("pipelines/broken.yaml:"), err
    status, _, err = ops.rules("--pipeline", "pipelines/list.yaml", "list")
    assert status == 2 and "no pipeline file with a `pipeline:` name" in err
    bundle_id = ops.publish()
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    status, _, err = ops.rules("pull", bundle_id, "--out", str(tmp_path / "a-file"))
    assert status == 2 and err.startswith("pipeline-rules: error: cannot write") and "a-file" in err


def test_a_pipeline_is_named_by_its_file_or_its_name(ops: Ops) -> None:
    by_name = ops.publish("--live")
    status, out, err = ops.rules("--pipeline", "twilio_inbound", "publish")
    assert status == 0 and f"already published: bundle {by_name} of twilio_inbound" in out, err
    status, out, _ = ops.rules("--pipeline", "twilio_inbound", "list")
    assert status == 0 and f"live {by_name}" in out


@pytest.mark.parametrize("command", [["list"], ["rollback", "--to", "packaged"], ["shadow", "--clear"], ["publish"]])
def test_a_misspelt_pipeline_name_is_refused_and_nothing_is_written(ops: Ops, command: list[str]) -> None:
    ops.publish("--live")
    before = ops.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"]
    status, out, err = ops.rules("--pipeline", "twilio_inbund", *command)
    assert status == 2, out + err
    assert err.startswith("pipeline-rules: error: unknown pipeline 'twilio_inbund' (did you mean 'twilio_inbound'?)")
    assert f"pipelines: {', '.join(pipeline_names())}" in err
    assert ops.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == before


def test_a_pipeline_known_only_to_the_bucket_can_be_managed_by_name(ops: Ops) -> None:
    live = ops.publish("--live")
    (ops.root / "pipelines" / "twilio_inbound.yaml").unlink()
    status, out, err = ops.rules("--pipeline", "twilio_inbound", "list")
    assert status == 0 and f"live {live}" in out, err


def test_an_unreadable_object_among_the_bundles_is_flagged_and_the_others_listed(ops: Ops) -> None:
    good = ops.publish()
    stray = f"rules/{PIPELINE}/bundles/stray.json"
    ops.s3.put_object(Bucket=BUCKET, Key=stray, Body=b"{not json")
    status, out, err = ops.rules("list")
    assert status == 0, err
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and "  r" not in line[:4]}
    assert good in listed
    assert "stray" in listed and "unreadable: the bundle is not JSON" in listed["stray"]


def test_list_shows_the_newest_bundles_of_a_bucket_holding_more_than_one_page_of_them(ops: Ops) -> None:
    """Defect: list read one page of ListObjectsV2 (1,000 keys, in key order), so with more bundles "newest first"
    showed the oldest ids' page and left the newest, the live one included, out."""
    for number in range(1000):  # older objects whose keys sort before any bundle id of this run
        ops.s3.put_object(Bucket=BUCKET, Key=f"rules/{PIPELINE}/bundles/00000000{number:04x}.json", Body=b"{}")
    time.sleep(1.1)  # S3 (and moto) give LastModified to the second
    newest = ops.publish("--live", "--note", "newest")
    status, out, err = ops.rules("list")
    assert status == 0, err
    listed = out.split("bundles (newest first, up to 20):\n", 1)[1].splitlines()
    assert len(listed) == 20
    assert listed[0].split()[0] == newest and "[live]  newest" in listed[0]


def test_a_shadow_candidate_is_not_the_live_bundle(ops: Ops) -> None:
    live = ops.publish("--live")
    status, _, err = ops.rules("shadow", live)
    assert status == 2 and f"bundle {live} is live already" in err
    assert ops.deployment().shadow is None


@pytest.mark.parametrize("command", ["shadow", "promote"])
def test_a_bundle_uploaded_by_hand_is_checked_before_it_is_deployed(ops: Ops, command: str) -> None:
    files = rules_files(ROUTING.replace("target: handoff", "target: handof", 1))
    broken = Bundle(PIPELINE, files, "2026-12-01T00:00:00Z", "someone", "unchecked")
    ops.s3.put_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, broken.id), Body=broken.to_json())
    status, _, err = ops.rules(command, broken.id)
    assert status == 2
    assert f"bundle {broken.id} does not pass the check, so the function would refuse it:\n" in err
    # Each problem at its place in the bundle's files, as publish and the function's ERROR line give it.
    before = files["rules/40_routing.yaml"].split("handof}")[0]
    where = f"rules/40_routing.yaml:{before.count(chr(10)) + 1}:{len(before.split(chr(10))[-1]) + 1}"
    assert f"\n  {where}: routing target 'handof' names no configured queue (did you mean 'handoff'?)" in err
    assert err.count("\n  rules/40_routing.yaml:") == 1 + err.count("inline test")
    assert ops.s3.list_objects_v2(Bucket=BUCKET, Prefix=deployment_key("rules/", PIPELINE))["KeyCount"] == 0


def test_objects_that_are_not_bundles_are_flagged_and_the_others_listed(ops: Ops) -> None:
    good = ops.publish()
    ops.s3.put_object(Bucket=BUCKET, Key=f"rules/{PIPELINE}/bundles/notes.txt", Body=b"hello")
    ops.s3.put_object(Bucket=BUCKET, Key=f"rules/{PIPELINE}/bundles/deep.json", Body=b"[" * 100_000)
    status, out, err = ops.rules("list")
    assert status == 0, err
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and "  r" not in line[:4]}
    assert good in listed
    assert "unreadable: not a bundle" in listed["notes.txt"]
    assert "unreadable: the bundle is not JSON" in listed["deep"]
    status, _, err = ops.rules("shadow", "deep")
    assert status == 2 and "the bundle is not JSON" in err


def test_a_bundle_that_cannot_be_checked_here_is_not_deployed(ops: Ops) -> None:
    ops.publish("--live")
    files = rules_files(ROUTING.replace("target: handoff", "target: handof", 1))
    broken = Bundle(PIPELINE, files, "2026-12-01T00:00:00Z", "someone", "unchecked")
    ops.s3.put_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, broken.id), Body=broken.to_json())
    shutil.rmtree(ops.root / "pipelines")  # run away from the project: the bucket alone knows the pipeline
    status, _, err = ops.rules("--pipeline", PIPELINE, "shadow", broken.id)
    assert status == 2 and f"cannot check bundle {broken.id}" in err, err
    assert ops.deployment().shadow is None


def test_promote_checks_a_shadow_that_was_deployed_without_the_check(ops: Ops) -> None:
    ops.publish("--live")
    sneaked = ops.sneak_in(rules_files(BROKEN_ROUTING), live=False)
    status, _, err = ops.rules("promote")
    assert status == 2 and f"bundle {sneaked} does not pass the check" in err
    assert ops.deployment().live != sneaked


def hand_upload(ops: Ops, files: dict[str, str], pipeline: str = PIPELINE) -> str:
    """Store a bundle under twilio_inbound without the CLI (as a copy by hand would); its id."""
    bundle = Bundle(pipeline, files, "2026-12-01T00:00:00Z", "someone", "by hand")
    ops.s3.put_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, bundle.id), Body=bundle.to_json())
    return bundle.id


RENAMED = PIPELINE_FILE.replace("pipeline: twilio_inbound", "pipeline: twilio_v2", 1)


@pytest.mark.parametrize(
    ("pipeline_file", "problem"),
    [
        (
            WHATSAPP_ONLY,
            "pipelines/twilio_inbound.yaml:7:11: channels: [whatsapp] are not the deployed pipeline's [sms, whatsapp]",
        ),
        (RENAMED, "pipelines/twilio_inbound.yaml:2:11: pipeline: 'twilio_v2' is not the deployed pipeline's name"),
        (NO_SIGNATURE, NO_SIGNATURE_PROBLEM),
        (NO_REPLAY_RECORDS, NO_REPLAY_RECORDS_PROBLEM),
        (ACCOUNT_SID_KEY, ACCOUNT_SID_KEY_PROBLEM),
        (TRANSIENT_ANSWERED, TRANSIENT_ANSWERED_PROBLEM),
        (ANY_SECRET, ANY_SECRET_PROBLEM),
    ],
    ids=["channels", "name", "steps", "tables", "signing_key", "responses", "secrets"],
)
@pytest.mark.parametrize("command", ["shadow", "promote"])
def test_a_bundle_whose_pipeline_file_changes_what_the_code_owns_is_not_deployed(
    ops: Ops, command: str, pipeline_file: str, problem: str
) -> None:
    live = ops.publish("--live")
    bundle = hand_upload(ops, with_pipeline_file(rules_files(ROUTING), pipeline_file))
    status, _, err = ops.rules(command, bundle)
    assert status == 2, err
    assert err.startswith(f"pipeline-rules: error: bundle {bundle} changes what only a code deploy changes: {problem}")
    assert (ops.deployment().revision, ops.deployment().live, ops.deployment().shadow) == (1, live, None)


def test_publish_refuses_a_pipeline_file_serving_other_channels_than_the_deployed_one(ops: Ops) -> None:
    ops.publish("--with-pipeline", "--live")
    (ops.root / "pipelines" / "twilio_inbound.yaml").write_text(WHATSAPP_ONLY, encoding="utf-8")
    before = ops.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"]
    status, out, err = ops.rules("publish", "--with-pipeline", "--shadow")
    assert status == 2, err
    assert "\npipelines/twilio_inbound.yaml:7:11: channels: [whatsapp] are not the deployed pipeline's" in out
    assert err.endswith("changes what only a code deploy may: nothing was published\n")
    assert ops.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == before


def test_publish_refuses_a_pipeline_file_without_a_step_the_live_bundles_file_has(ops: Ops) -> None:
    ops.publish("--with-pipeline", "--live")
    (ops.root / "pipelines" / "twilio_inbound.yaml").write_text(NO_SIGNATURE, encoding="utf-8")
    before = ops.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"]
    status, out, err = ops.rules("publish", "--with-pipeline", "--live")
    assert status == 2, err
    assert f"\n{NO_SIGNATURE_PROBLEM}\n" in out
    assert err.endswith("changes what only a code deploy may: nothing was published\n")
    assert ops.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == before


# An upgrade (defect: after a code deploy that changed the steps, the function refuses a live bundle carrying the
# earlier pipeline file, and rule-bundles.md says to publish it again --with-pipeline from the deployed files; publish
# compares with the live bundle's own copy, so it refused exactly that, naming "the deployed pipeline's" steps and no
# way on: ops were stuck with the bundle refused).


def test_after_a_code_deploy_publish_with_pipeline_names_the_live_bundles_copy_and_the_way_on(ops: Ops) -> None:
    assert BEFORE_TYPES != PIPELINE_FILE
    earlier = ops.publish("--live")  # rules only: verified with any deployed pipeline file
    # Published --with-pipeline and made live by the earlier release's pipeline-rules, which checked it then.
    stale = ops.sneak_in(with_pipeline_file(rules_files(VIP_ROUTING), BEFORE_TYPES))
    ops.edit("40_routing.yaml", VIP_ROUTING)
    status, out, err = ops.rules("publish", "--with-pipeline", "--live")
    assert status == 2, err
    assert "(conversations.get) has other with: parameters than the deployed pipeline's" in out
    assert err.endswith(
        f"pipeline-rules: compared with the pipeline file the live bundle {stale} carries (the deployed one is not "
        "known here); if a code deploy changed it since, the function refuses that bundle too and decides with the "
        "last good one its ERROR line names: 'pipeline-rules rollback --to' that bundle (or packaged), then publish "
        "again\n"
        "pipeline-rules: the pipeline file changes what only a code deploy may: nothing was published\n"
    )
    assert ops.rules("rollback", "--to", earlier)[0] == 0
    carried = ops.publish("--with-pipeline", "--live")
    assert ops.deployment().live == carried
    assert ops.s3.get_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, carried))["Body"].read()


@pytest.mark.parametrize("command", [["shadow"], ["promote"], ["rollback", "--to"], ["pull"]])
def test_a_bundle_of_another_pipeline_under_this_one_is_refused(ops: Ops, command: list[str], tmp_path: Path) -> None:
    live = ops.publish("--live")
    email = hand_upload(ops, rules_files(ROUTING), pipeline="email_inbound")
    extra = ["--out", str(tmp_path / "out")] if command == ["pull"] else []
    status, _, err = ops.rules(*command, email, *extra)
    assert status == 2
    assert err == (
        f"pipeline-rules: error: s3://{BUCKET}/rules/twilio_inbound/bundles/{email}.json: "
        "it is a bundle of pipeline 'email_inbound', not of 'twilio_inbound'\n"
    )
    assert (ops.deployment().live, ops.deployment().shadow) == (live, None)
    assert not (tmp_path / "out").exists()


def test_a_second_rollback_steps_further_back_instead_of_undoing_the_first(ops: Ops) -> None:
    first = ops.publish("--live")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    second = ops.publish("--live")
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    ops.publish("--live")
    assert ops.rules("rollback")[1] == f"deployed: revision 4: live {second}\n"
    assert ops.rules("rollback")[1] == f"deployed: revision 5: live {first}\n"
    status, _, err = ops.rules("rollback")
    assert (status, err) == (
        2,
        "pipeline-rules: error: no earlier live bundle to roll back to (every later one was rolled back from); "
        "give --to BUNDLE or --to packaged\n",
    )
    assert ops.deployment().history[0]["rollback"] is True


def test_a_rollback_after_a_promote_of_an_older_bundle_returns_to_the_one_it_replaced(ops: Ops) -> None:
    first = ops.publish("--live")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    second = ops.publish("--live")
    assert ops.rules("promote", first)[0] == 0
    assert ops.rules("rollback")[1] == f"deployed: revision 4: live {second}\n"
    assert ops.rules("rollback")[1] == f"deployed: revision 5: live {first}\n"


def test_a_rollback_to_a_bundle_undoes_every_change_after_it() -> None:
    deployment = Deployment()
    for live in ("a", "b", "c", "d"):
        deployment = deployment.change(live=live, shadow=None, at="", by="")
    deployment = deployment.change(live="b", shadow=None, at="", by="", rollback=True)
    assert list(deployment.rollback_chain()) == ["a"]
    deployment = deployment.change(live="b", shadow="x", at="", by="")  # a shadow change keeps the chain
    assert list(deployment.rollback_chain()) == ["a"]


UNUSED_RULES = """ruleset: never_named
kind: validation
pipelines: [twilio_inbound]
rules:
  - id: stop
    when: "request.body == 'STOP'"
    then: {error: PROJECT_INACTIVE, message: stop}
tests:
  - name: stop
    given: {request: {body: STOP}}
    expect: {rule: stop, error: PROJECT_INACTIVE}
"""


def test_publish_strict_refuses_warnings_but_unset_env_values_which_strict_env_refuses(
    ops: Ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where one publishes, the function's environment is usually absent: its ${env:…} values only warn.
    for name in ("CONVERSATIONS_TABLE_NAME", "WHATSAPP_QUEUE_URL", "SMS_QUEUE_URL", "HANDOFF_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    status, out, err = ops.rules("publish", "--strict-env")
    assert status == 2 and "environment variable WHATSAPP_QUEUE_URL is not set" in out, out + err
    assert "nothing was published" in err
    status, out, err = ops.rules("publish", "--strict")
    assert status == 0 and "warning: environment variable" in out and "published: bundle" in out, out + err
    ops.edit("45_never_named.yaml", UNUSED_RULES)
    status, out, err = ops.rules("publish", "--strict")
    assert status == 2 and "its rules never run" in out and "nothing was published" in err, out + err


# A bundle larger than the function reads (defect: published and deployed whatever its size).


def test_publish_refuses_a_bundle_too_large_and_uploads_nothing(ops: Ops) -> None:
    ops.edit("40_routing.yaml", "# " + "x" * (1024 * 1024) + "\n" + VIP_ROUTING)
    status, _, err = ops.rules("publish", "--live")
    assert status == 2
    assert "more than the 1048576 (1 MiB) it may be: the function would refuse it" in err
    assert ops.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_publish_names_the_rule_files_of_other_pipelines_it_left_out(ops: Ops) -> None:
    """Defect: an email rule edited and published with the default --pipeline said only 'published', of twilio_inbound.

    The ops person believed the email change had shipped; the bundle holds no email rule file.
    """
    email = ops.root / "rules" / "60_email_routing.yaml"
    email.write_text(email.read_text(encoding="utf-8").replace("description: Where", "description: Now where"))
    status, out, err = ops.rules("publish", "--shadow")
    assert status == 0 and "published: bundle" in out
    assert (
        "pipeline-rules: note: rules/50_email_screening.yaml, rules/60_email_routing.yaml (email_inbound) are not in "
        "this bundle of twilio_inbound; publish them with --pipeline email_inbound\n"
    ) in err
    status, _, err = ops.rules("--pipeline", "email_inbound", "publish")
    assert status == 0 and "rules/60_email_routing.yaml" not in err
    assert (
        "pipeline-rules: note: rules/40_routing.yaml (twilio_inbound) is not in this bundle of email_inbound; "
        "publish it with --pipeline twilio_inbound\n"
    ) in err


def test_the_rule_files_left_out_are_named_by_the_pipelines_the_engine_reads_in_them(ops: Ops) -> None:
    """Defect: the note read a file's ``pipelines:`` with yaml.safe_load, not the engine's loader: of a key written
    twice the engine keeps the first (and reports the second), safe_load the last, so the note told ops to publish an
    email rule file, which no twilio_inbound bundle can carry, with --pipeline twilio_inbound."""
    email = ops.root / "rules" / "60_email_routing.yaml"
    email.write_text(email.read_text(encoding="utf-8") + "pipelines: [twilio_inbound]\n", encoding="utf-8")
    status, out, err = ops.rules("publish")
    assert status == 0 and "published: bundle" in out, out + err
    assert (
        "pipeline-rules: note: rules/50_email_screening.yaml, rules/60_email_routing.yaml (email_inbound) are not in "
        "this bundle of twilio_inbound; publish them with --pipeline email_inbound\n"
    ) in err, err


def test_list_marks_the_revisions_a_rollback_made(ops: Ops) -> None:
    """Defect: a rollback's revision read like a promote in the history, though the next rollback depends on it."""
    first = ops.publish("--live", "--note", "first")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    second = ops.publish("--live", "--note", "VIPs")
    ops.rules("rollback")
    history = ops.rules("list")[1].splitlines()[3:6]
    assert history[0].endswith(f": live {first}  (rollback)")
    assert history[1].endswith(f": live {second}  VIPs") and history[2].endswith(f": live {first}  first")


def test_a_pipeline_file_that_does_not_exist_is_named_as_missing(ops: Ops) -> None:
    """Defect: away from the project, publish said the default file had no `pipeline:` name, not that it is absent."""
    status, out, err = ops.rules("--pipeline", "elsewhere/twilio_inbound.yaml", "publish")
    assert (status, out) == (2, "")
    assert err == (
        "pipeline-rules: error: elsewhere/twilio_inbound.yaml: no such file; run pipeline-rules in the project's "
        "directory (beside pipelines/ and rules/), or pass --pipeline FILE\n"
    )


# Another pipeline's bundle stored under this one's bundles/ (defect: `list` showed it as any bundle of the pipeline,
# to be picked for `shadow` or `promote`, which then refused it).


def test_another_pipelines_bundle_among_the_bundles_is_listed_as_unusable(ops: Ops) -> None:
    good = ops.publish()
    stray = Bundle("email_inbound", rules_files(AGENT_ROUTING), "2026-12-01T00:00:00Z", "someone", "misfiled")
    ops.s3.put_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, stray.id), Body=stray.to_json())
    status, out, err = ops.rules("list")
    assert status == 0, err
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and "  r" not in line[:4]}
    assert good in listed and "unreadable" not in listed[good]
    assert "unreadable: it is a bundle of pipeline 'email_inbound', not of 'twilio_inbound'" in listed[stray.id]
    status, _, err = ops.rules("promote", stray.id)
    assert status == 2 and "it is a bundle of pipeline 'email_inbound'" in err


# Two people trying candidates one after the other (defect: the second publish --shadow replaced the first's
# candidate without a word, and the first's `promote`, the documented next step, made the second's live unawares).


def test_a_shadow_deployed_over_anothers_says_whose_it_replaces_and_promote_whose_it_makes_live(ops: Ops) -> None:
    ops.edit("40_routing.yaml", VIP_ROUTING)
    alice = ops.publish("--shadow", "--by", "alice", "--note", "VIPs to a person")
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    status, out, err = ops.rules("publish", "--shadow", "--by", "bob", "--note", "agents to a person")
    assert status == 0, err
    bob = out.split("published: bundle ")[1].split()[0]
    assert (
        f"pipeline-rules: note: this replaces the shadow candidate {alice} (deployed by alice at revision 1: "
        "VIPs to a person), whose evaluation stops\n"
    ) in err
    status, out, err = ops.rules("shadow", alice, "--by", "alice")
    assert status == 0 and f"replaces the shadow candidate {bob} (deployed by bob at revision 2: " in err
    assert ops.rules("shadow", bob, "--by", "bob")[0] == 0
    status, out, err = ops.rules("promote", "--by", "alice", "--note", "shadow agreed for a day")
    assert status == 0
    assert out == f"deployed: revision 5: live {bob} (the shadow candidate bob deployed at revision 4)\n"
    # No note of a replaced candidate: only the record of the one promoted, which decided no event (moto's CloudWatch).
    assert_no_record_of(err, bob, 4, "bob")


def assert_no_record_of(err: str, candidate: str, revision: int, by: str) -> None:
    """``err`` is promote's note of a shadow candidate that decided no event, and nothing else."""
    lines = err.splitlines()
    assert lines[0].startswith(f"pipeline-rules: note: shadow candidate {candidate} of twilio_inbound since revision ")
    assert lines[0].endswith(f" (deployed by {by}):") and f" revision {revision} at " in lines[0]
    assert lines[1:4] == [
        "  evaluations 0: mismatches 0 (-), agreed 0",
        "  mismatches by rule set: project_status 0, channel 0, conversation_lock 0, routing 0",
        "  timeouts 0, failures 0",
    ]
    assert lines[4].startswith("  read from CloudWatch: namespace InboundWebhookPipeline, Pipeline=twilio_inbound, ")
    assert lines[5].startswith("pipeline-rules: note: `pipeline-rules diff ") and lines[5].endswith(
        f" {candidate}` shows what promoting it changes"
    )
    assert len(lines) == 7
    assert lines[6].startswith(
        f"pipeline-rules: WARNING: the candidate has decided no event since revision {revision} "
    )


# Pulling the live bundle again into the same directory, as the docs do at every change (defect: the files of the
# bundle pulled there before stayed beside the new bundle's, so the baseline held rules the live bundle has not).
UNUSED_SET = """ruleset: vip_flags
kind: validation
pipelines: [twilio_inbound]
rules:
  - id: blocked
    when: "conversation.blocked == `true`"
    then: {error: PROJECT_INACTIVE}
tests:
  - name: a blocked conversation is refused
    given: {conversation: {blocked: true}}
    expect: {rule: blocked, error: PROJECT_INACTIVE}
"""


def test_pull_refuses_a_directory_holding_rules_of_the_pipeline_the_bundle_has_not(ops: Ops, tmp_path: Path) -> None:
    ops.edit("45_vip_flags.yaml", UNUSED_SET)
    first = ops.publish()
    (ops.root / "rules" / "45_vip_flags.yaml").unlink()
    second = ops.publish()
    live = tmp_path / "live"
    assert ops.rules("pull", first, "--out", str(live))[0] == 0
    status, out, err = ops.rules("pull", second, "--out", str(live))
    assert (status, out) == (2, "")
    assert err == (
        f"pipeline-rules: error: {live}/rules holds rules/45_vip_flags.yaml of twilio_inbound, which bundle {second} "
        "has not: a baseline pulled there would hold it too; pull into an empty directory (or remove it first)\n"
    )
    assert (live / "rules" / "45_vip_flags.yaml").is_file()
    # The project itself: its other pipelines' rule files stay as they are, the bundle's are written.
    status, out, err = ops.rules("pull", second, "--out", str(ops.root))
    assert status == 0, err
    assert (ops.root / "rules" / "60_email_routing.yaml").is_file()


# A deployment document cut short (a hand upload) (defect: every command, rollback included, stopped at 'the
# deployment document is not JSON', with nothing saying how to get out: ops were locked out on the worst night).


def test_an_unreadable_deployment_document_says_how_to_put_its_last_good_version_back(ops: Ops) -> None:
    ops.publish("--live")
    key = deployment_key("rules/", PIPELINE)
    whole = ops.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    ops.s3.put_object(Bucket=BUCKET, Key=key, Body=whole[: len(whole) // 2])
    for command in (("list",), ("rollback", "--to", "packaged"), ("publish", "--live")):
        status, _, err = ops.rules(*command)
        assert status == 2, command
        assert (
            f"pipeline-rules: error: s3://{BUCKET}/{key}: the deployment document is not JSON; put its last good "
            f"version back (the bucket is versioned): aws s3api list-object-versions --bucket {BUCKET} --prefix {key}, "
            f'then aws s3api copy-object --bucket {BUCKET} --key {key} --copy-source "{BUCKET}/{key}?versionId=ID"\n'
        ) in err, command


# A bundle without a rule set its pipeline's steps name (a rules file deleted) (defect: the error said only 'unknown
# rule set', as for a typo, never that no rules file declares it any more nor what to do).


def test_a_bundle_without_a_rule_set_the_pipeline_names_is_refused_with_the_fix(ops: Ops) -> None:
    (ops.root / "rules" / "30_conversation_lock.yaml").unlink()
    status, out, err = ops.rules("publish", "--shadow")
    assert status == 2 and "nothing was published" in err
    assert (
        f"{position(PIPELINE_FILE, 'rulesets: [project_status, channel, ')}: rules: unknown rule set "
        "'conversation_lock'; loaded rule sets: "
        "channel, project_status, routing; no rules file of this pipeline declares ruleset: conversation_lock: add "
        "one (or put back the one removed), or take the name out of this step"
    ) in out
    ops.edit("40_routing.yaml", ROUTING.replace("ruleset: routing", "ruleset: routng", 1))
    status, out, _ = ops.rules("publish")
    assert "route: unknown rule set 'routing' (did you mean 'routng'?); loaded rule sets:" in out


# A rollback to a bundle that no longer loads with the deployed code (defect: a bundle that was live before was never
# checked again, so the rollback was written and reported as deployed while every function refused the bundle and
# kept deciding with the one rolled back from: the rollback silently did nothing).


def test_a_rollback_to_a_bundle_the_deployed_code_refuses_is_not_deployed(ops: Ops) -> None:
    old = ops.publish("--with-pipeline", "--live")
    deployed_file = ops.root / "pipelines" / "twilio_inbound.yaml"
    code_deploy = PIPELINE_FILE.replace("refetch_interval_seconds: 30", "refetch_interval_seconds: 60", 1)
    assert code_deploy != PIPELINE_FILE
    deployed_file.write_text(code_deploy, encoding="utf-8")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    current = ops.publish("--live")
    for command in (["rollback"], ["rollback", "--to", old]):
        status, out, err = ops.rules(*command)
        assert status == 2, out + err
        assert err.startswith(f"pipeline-rules: error: bundle {old} changes what only a code deploy changes: ")
        assert "(secrets.fetch) has other with: parameters than the deployed pipeline's" in err
        assert (ops.deployment().revision, ops.deployment().live) == (2, current)


# The live bundle's object deleted (defect: `list` still said "live B" as if all were well, the bundle simply absent
# from the bundles listed, while every new container refused the deployment and decided with an earlier bundle).


def test_list_says_when_the_live_or_shadow_bundle_has_no_object(ops: Ops) -> None:
    ops.publish("--live")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    live = ops.publish("--live")
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    shadow = ops.publish("--shadow")
    for gone in (live, shadow):
        ops.s3.delete_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, gone))
    status, out, _ = ops.rules("list")
    assert status == 0
    lines = out.splitlines()
    assert lines[1].startswith(f"deployment revision 3: live {live}, shadow {shadow} (")
    assert lines[2] == (
        f"missing: the live bundle {live} has no object at s3://{BUCKET}/rules/{PIPELINE}/bundles/{live}.json: "
        "new containers decide with an earlier live bundle (an ERROR line each), warm ones keep it; "
        "publish it again, or deploy another bundle"
    )
    assert lines[3] == (
        f"missing: the shadow bundle {shadow} has no object at s3://{BUCKET}/rules/{PIPELINE}/bundles/{shadow}.json: "
        "new containers do not evaluate it (an ERROR line each), warm ones keep it; "
        "publish it again, or deploy another bundle"
    )


# Promoting a bundle that was never tried in shadow (defect: it went live untried with nothing said, while the
# documented way is shadow, watch, promote).


def test_promoting_a_bundle_never_in_shadow_says_it_goes_live_untried(ops: Ops) -> None:
    first = ops.publish("--live")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    tried = ops.publish("--shadow", "--by", "bob")
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    untried = ops.publish()
    status, out, err = ops.rules("promote", untried)
    assert (status, out) == (0, f"deployed: revision 3: live {untried}, shadow {tried}\n")
    assert err == (
        f"pipeline-rules: note: bundle {untried} was never the shadow candidate (in the history kept): it went "
        f"live untried on live traffic; `pipeline-rules shadow BUNDLE` tries one first\n"
    )
    assert ops.rules("promote", first) == (0, f"deployed: revision 4: live {first}, shadow {tried}\n", "")
    status, out, err = ops.rules("promote")
    assert (status, out) == (
        0,
        f"deployed: revision 5: live {tried} (the shadow candidate bob deployed at revision 2)\n",
    )
    # No untried note: only the candidate's record (moto's CloudWatch holds no count of it: it decided no event).
    assert_no_record_of(err, tried, 2, "bob")


# An edit to a shared rule file (one naming no pipeline) published for one pipeline (defect: it went live for that
# pipeline only, the other pipelines silently kept their own copy, and the note said only that their own files were
# left out, as if they were not concerned).

TRIAL_PROJECTS = "    when: \"!contains(['active', 'trial'], conversation.project_status || '')\"\n"


def test_publishing_a_change_to_a_shared_rule_file_says_the_other_pipelines_keep_their_copy(ops: Ops) -> None:
    status_file = (ops.root / "rules" / "10_project_status.yaml").read_text(encoding="utf-8")
    trial = status_file.replace("    when: \"conversation.project_status != 'active'\"\n", TRIAL_PROJECTS, 1)
    assert trial != status_file
    ops.publish("--live")
    status, _, err = ops.rules("publish", "--live")
    assert status == 0 and "shared" not in err

    ops.edit("10_project_status.yaml", trial)
    status, _, err = ops.rules("publish", "--live")
    assert status == 0
    assert (
        "pipeline-rules: note: this bundle changes rules/10_project_status.yaml, email_inbound's too, for "
        "twilio_inbound only: email_inbound decides with its own copy (the packaged rules) until it is published "
        "with --pipeline email_inbound\n"
    ) in err

    status, out, _ = ops.rules("--pipeline", "email_inbound", "publish", "--live")
    assert status == 0
    email = out.split("published: bundle ")[1].split()[0]
    ops.edit("10_project_status.yaml", status_file)
    status, _, err = ops.rules("publish", "--live")
    assert status == 0
    assert (
        "pipeline-rules: note: this bundle changes rules/10_project_status.yaml, email_inbound's too, for "
        f"twilio_inbound only: email_inbound decides with its own copy (bundle {email}) until it is published "
        "with --pipeline email_inbound\n"
    ) in err


# A rollback to the bundle in shadow (defect: the deployment then named it both live and shadow, which the function
# takes for no shadow, while `list` still showed a candidate under evaluation).


def test_a_rollback_to_the_shadow_candidate_clears_the_shadow(ops: Ops) -> None:
    first = ops.publish("--live")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    ops.publish("--live")
    assert ops.rules("shadow", first)[0] == 0
    assert ops.rules("rollback")[1] == f"deployed: revision 4: live {first}\n"
    assert (ops.deployment().live, ops.deployment().shadow) == (first, None)


# A deployment document written larger than the 1 MiB the function reads (defect: a long --note, a pasted diff say,
# was written as is: every function then refused the deployment, and every later pipeline-rules command stopped on
# it, until its last good version was copied back by hand).


def test_a_deployment_document_the_function_would_refuse_for_its_size_is_not_written(ops: Ops) -> None:
    live = ops.publish("--live")
    ops.edit("40_routing.yaml", VIP_ROUTING)
    candidate = ops.publish()
    status, out, err = ops.rules("promote", candidate, "--note", "x" * (1024 * 1024))
    assert (status, out) == (2, "")
    assert err.startswith("pipeline-rules: error: the deployment document would be ")
    assert err.endswith(" bytes, more than the 1048576 (1 MiB) it may be: nothing was written; give a shorter --note\n")
    assert (ops.deployment().revision, ops.deployment().live) == (1, live)
    assert ops.rules("list")[0] == 0


# A mistyped --prefix (or RULES_PREFIX) (defect: the bundle was published and deployed under a prefix the function
# never reads, reported as deployed like any other, while the live rules stayed as they were).


def test_a_first_deployment_under_another_prefix_than_the_buckets_deployment_says_so(ops: Ops) -> None:
    status, _, err = ops.rules("publish", "--live")
    assert status == 0 and "prefix" not in err
    ops.edit("40_routing.yaml", VIP_ROUTING)
    status, out, err = ops.rules("--prefix", "rule", "publish", "--live")
    assert status == 0 and "deployed as live: revision 1: " in out
    assert err.endswith(
        f"pipeline-rules: note: this is the first deployment of twilio_inbound under s3://{BUCKET}/rule/, while "
        f"s3://{BUCKET}/rules/ holds one too: the function reads only under its RULES_PREFIX (rules/ by default)\n"
    )
    ops.edit("40_routing.yaml", AGENT_ROUTING)
    status, _, err = ops.rules("--prefix", "rule", "publish", "--shadow")
    assert status == 0 and "prefix" not in err


def test_list_under_a_prefix_holding_no_deployment_names_the_prefix_that_holds_one(ops: Ops) -> None:
    """Defect: ``pipeline-rules --prefix rule list`` (a typo of rules/) said "no deployment: the rules packaged beside
    the handler decide" and nothing else, exit 0, while the function decided with the bundle deployed under rules/:
    an operator reading it would think production ran the packaged rules."""
    live = ops.publish("--live")
    status, out, err = ops.rules("--prefix", "rule", "list")
    assert status == 0
    assert out.splitlines()[:2] == [
        f"pipeline twilio_inbound: s3://{BUCKET}/rule/twilio_inbound/",
        "no deployment: the rules packaged beside the handler decide",
    ]
    assert err == (
        f"pipeline-rules: note: no deployment of twilio_inbound under s3://{BUCKET}/rule/, while s3://{BUCKET}/rules/ "
        "holds one: the function reads only under its RULES_PREFIX (rules/ by default); check --prefix\n"
    )
    status, out, err = ops.rules("list")
    assert status == 0 and f"live {live}" in out and err == ""


def test_a_rollback_to_the_rules_version_the_logs_show_names_the_bundle_it_is_the_version_of(ops: Ops) -> None:
    """Defect: the function's log lines name the rules version (``rules_version``) beside the bundle
    (``rules_source``); ``rollback --to`` that version, a 12-digit id like a bundle's, said only "no bundle … of
    twilio_inbound …; `pipeline-rules list` lists them", where list shows bundle ids and no versions."""
    status, out, _ = ops.rules("publish", "--live")
    assert status == 0
    first = next(line.split()[2] for line in out.splitlines() if "published: bundle" in line)
    version = out.splitlines()[-2].rsplit(" ", 1)[1]
    assert out.splitlines()[-2].startswith("rules version with the pipeline file") and version != first
    ops.edit("40_routing.yaml", VIP_ROUTING)
    ops.publish("--live")

    status, out, err = ops.rules("rollback", "--to", version)

    assert (status, out) == (2, "")
    assert err == (
        f"pipeline-rules: error: no bundle {version} of twilio_inbound at s3://{BUCKET}/rules/twilio_inbound/bundles/"
        f"{version}.json: {version} is the rules version the function reports for bundle {first} (with the pipeline "
        f"file pipelines/twilio_inbound.yaml), not a bundle id; give the bundle: --to {first}\n"
    )
    assert ops.rules("rollback", "--to", first)[0] == 0


def test_the_bucket_prefix_and_pipeline_options_may_follow_the_command(ops: Ops) -> None:
    """Defect: ``pipeline-rules publish --live --pipeline email_inbound`` (the options after the command, as with
    most tools) was refused as "unrecognized arguments: --pipeline email_inbound", an option the command's own help
    does not list though pipeline-rules has it; ``list --prefix rule`` likewise."""
    status, out, err = ops.rules("publish", "--live", "--pipeline", "email_inbound")
    assert status == 0, err
    assert "published: bundle " in out and " of email_inbound " in out
    assert ops.rules("list", "--pipeline", "email_inbound") == ops.rules("--pipeline", "email_inbound", "list")
    assert ops.rules("list", "--prefix", "rule")[1] == ops.rules("--prefix", "rule", "list")[1]
    # --bucket after the command too, and there it wins over the one before (ops.rules passes the fixture's).
    status, out, err = ops.rules("list", "--bucket", "no-such-bucket")
    assert status != 0 and "no-such-bucket" in err, out + err


def test_a_rule_file_naming_several_pipelines_is_shared_with_them(ops: Ops) -> None:
    channel_file = (ops.root / "rules" / "20_channel.yaml").read_text(encoding="utf-8")
    named = channel_file.replace("kind: validation\n", "kind: validation\npipelines: [twilio_inbound, email_inbound]\n")
    ops.edit("20_channel.yaml", named)
    ops.publish("--live")
    ops.edit("20_channel.yaml", named.replace("does not allow this channel", "allows no such channel"))
    status, _, err = ops.rules("publish", "--live")
    assert status == 0
    assert "pipeline-rules: note: this bundle changes rules/20_channel.yaml, email_inbound's too, for " in err


def test_the_pipelines_directory_given_as_the_rules_is_one_error_as_the_dry_runs_check_says_it(ops: Ops) -> None:
    """Defect: `publish --rules pipelines` checked the pipeline files as rules files, 38 lines of findings ("unknown
    key 'pipeline'", "missing required key 'rules'"…), where `pipeline-dryrun --check --rules pipelines`, the same
    check, says in one line which option takes which path."""
    status, out, err = ops.rules("publish", "--rules", "pipelines")
    assert (status, out) == (2, "")
    assert err == (
        "pipeline-rules: error: --rules pipelines holds pipeline files (pipeline:, steps:), not rules files "
        "(ruleset:): give the rules directory with --rules, and a pipeline file with --pipeline\n"
    )
    assert "Contents" not in ops.s3.list_objects_v2(Bucket=BUCKET)


def test_publish_from_a_candidate_directory_holding_a_file_it_does_not_read_says_so_and_strict_refuses(
    ops: Ops,
) -> None:
    """A candidate directory's 55_vip.YAML (an upper-case extension) is read neither by the cold start nor by the
    bundle: publish warns at it as --check does (the bundle is the rules the function would read, so it goes out
    without the file, said), and --strict, which refuses what --check warns about, publishes nothing."""
    candidate = ops.root / "candidate"
    shutil.copytree(ops.root / "rules", candidate)
    (candidate / "55_vip.YAML").write_text(VIP_ROUTING.replace("ruleset: routing", "ruleset: vip"), encoding="utf-8")

    status, out, err = ops.rules("publish", "--rules", "candidate", "--strict")

    warning = (
        "candidate/55_vip.YAML:1:1: warning: this file is not read: only the files of candidate/ ending in .yaml or "
        ".yml (lower-case) are, so its rule sets never run; rename it to 55_vip.yaml"
    )
    assert status == 2 and warning in out.splitlines(), out + err
    assert "(--strict: 1 fail the check)" in err and "nothing was published" in err
    assert ops.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0

    status, out, err = ops.rules("publish", "--rules", "candidate")

    assert status == 0 and warning in out.splitlines(), out + err
    assert "published: bundle" in out and "(4 files)" in out
    (key,) = [item["Key"] for item in ops.s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    bundled = json.loads(ops.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["files"]
    assert not [name for name in bundled if "vip" in name.lower()]
