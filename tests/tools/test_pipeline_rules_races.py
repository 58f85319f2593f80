"""Two operators running ``pipeline-rules`` at once, against moto's S3: what each is told, and what ends up live.

The other operator's command runs to its end inside this one's, at one of the two moments a change can come between:
``read``, after this command first read the deployment (what it chose from, before its checks); ``write``, just before
its conditional write (which S3 then refuses: the ETag it read changed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.bundles import AGENT_ROUTING, VIP_ROUTING, Ops, make_bucket, working_copy

MOMENTS = ["read", "write"]


@pytest.fixture
def alice(tmp_path: Path) -> Iterator[Ops]:
    with mock_aws():
        s3 = boto3.client("s3")
        make_bucket(s3)
        yield Ops(s3, working_copy(tmp_path / "alice"))


@pytest.fixture
def bob(alice: Ops, tmp_path: Path) -> Ops:
    return Ops(boto3.client("s3"), working_copy(tmp_path / "bob"))


def meanwhile(alice: Ops, moment: str, bob: Ops, *args: str) -> list[tuple[int, str, str]]:
    """Have ``bob`` run ``pipeline-rules ARGS`` once, at ``moment`` of alice's next command; what bob got."""
    ran: list[tuple[int, str, str]] = []
    armed = [False]

    def before_each_call(params: dict[str, Any], model: Any, **_: Any) -> None:
        deployment = params.get("Key", "").endswith("/deployment.json")
        if not ran and (armed[0] or (moment == "write" and model.name == "PutObject" and deployment)):
            ran.append(bob.rules(*args))  # alice's call after the read, or her write: bob's command ran since
        armed[0] = moment == "read" and model.name == "GetObject" and deployment

    alice.s3.meta.events.register("before-parameter-build.s3", before_each_call, "meanwhile")
    return ran


def three_live(ops: Ops) -> list[str]:
    """Three bundles published live one after the other: their ids."""
    published = [ops.publish("--live")]
    for routing in (VIP_ROUTING, AGENT_ROUTING):
        ops.edit("40_routing.yaml", routing)
        published.append(ops.publish("--live"))
    return published


# Two rollbacks at once (defect: the second was refused, exit 2, "the deployment changed while this ran (someone else
# deployed); run it again", naming no change; run again, it rolled back a second step: live A, B, C, two operators
# meaning "back to B" left A live). A deployment already as the command would make it is that command done.


@pytest.mark.parametrize("moment", MOMENTS)
def test_two_operators_rolling_back_at_once_roll_back_once(alice: Ops, bob: Ops, moment: str) -> None:
    _, second, _ = three_live(alice)
    ran = meanwhile(alice, moment, bob, "rollback", "--by", "bob", "--note", "C loses messages")
    status, out, err = alice.rules("rollback", "--by", "alice")
    assert ran == [(0, f"deployed: revision 4: live {second}\n", "")]
    assert (status, out) == (0, f"unchanged, nothing written: revision 4: live {second}\n"), err
    assert err.startswith("pipeline-rules: note: bob deployed this at revision 4 while this ran (")
    assert err.endswith("): C loses messages\n")
    deployment = alice.deployment()
    assert (deployment.revision, deployment.live, deployment.updated_by) == (4, second, "bob")


@pytest.mark.parametrize("moment", MOMENTS)
def test_two_operators_promoting_the_same_candidate_at_once_promote_it_once(alice: Ops, bob: Ops, moment: str) -> None:
    alice.publish("--live")
    alice.edit("40_routing.yaml", VIP_ROUTING)
    candidate = alice.publish("--shadow")
    ran = meanwhile(alice, moment, bob, "promote", "--by", "bob")
    status, out, _ = alice.rules("promote", "--by", "alice")
    assert ran[0][0] == 0
    assert (status, out) == (0, f"unchanged, nothing written: revision 3: live {candidate}\n")
    assert alice.deployment().revision == 3


# A rollback met by a deployment of the same live bundle that was no rollback (defect: alice's rollback of C found B
# live by bob's `promote B` and said "unchanged, nothing written", exit 0; but bob's revision undid nothing: C stayed on
# the rollback chain, so the next `rollback` went back to C, and a new container refusing B fell back to C, the rules
# alice had rolled back). Only a deployment exactly as the command would make it (live, shadow and what a rollback
# goes back to) is that command done; any other is a change made meanwhile, named.


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_rollback_met_by_a_promote_of_its_target_is_not_taken_for_done(alice: Ops, bob: Ops, moment: str) -> None:
    _, second, third = three_live(alice)
    ran = meanwhile(alice, moment, bob, "promote", second, "--by", "bob", "--note", "B again")
    status, out, err = alice.rules("rollback", "--by", "alice")
    bobs = alice.deployment()
    assert ran[0][0] == 0 and (bobs.revision, bobs.live, bobs.updated_by) == (4, second, "bob")
    assert third in bobs.rollback_chain()  # bob's promote undid nothing: a rollback still goes back to C
    assert (status, out) == (2, ""), out
    assert err == (
        f"pipeline-rules: error: the deployment changed while this ran: revision 4: live {second} "
        f"({bobs.updated_at} by bob: B again); nothing was written: `pipeline-rules list` shows the "
        "change; run it again if it is still wanted\n"
    )
    assert alice.deployment() == bobs


# A rollback whose deployment came back to the same bundles another way meanwhile (defect: live A, B, C; alice's
# rollback chose B; meanwhile bob rolled back to A ("B and C lose messages") and carol promoted C again; alice's
# rollback found live C as she had read it and wrote B live, a bundle bob had rolled back from, where a rollback
# run then goes back to A). The rollback's target is chosen again from the deployment read: another is a change.


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_rollback_whose_target_a_rollback_undid_meanwhile_writes_nothing(alice: Ops, bob: Ops, moment: str) -> None:
    first, second, third = three_live(alice)
    ran = meanwhile(alice, moment, bob, "rollback", "--to", first, "--by", "bob", "--note", "B and C lose messages")
    carol = [False]

    def then_carol(**_: Any) -> None:
        if ran and not carol[0]:
            carol[0] = True
            assert bob.rules("promote", third, "--by", "carol", "--note", "C fixed")[0] == 0

    alice.s3.meta.events.register("before-parameter-build.s3", then_carol, "then-carol")
    status, out, err = alice.rules("rollback", "--by", "alice")
    now = alice.deployment()
    assert carol == [True] and (now.revision, now.live, now.updated_by) == (5, third, "carol")
    assert now.rollback_chain()[0] == first and second not in now.rollback_chain()
    assert (status, out) == (2, ""), out
    assert err.startswith(f"pipeline-rules: error: the deployment changed while this ran: revision 5: live {third} (")
    assert alice.deployment() == now


# A rollback that another operator's publish superseded (defect: told only "someone else deployed; run it again",
# whose rollback would then undo the publish it was never told of). Nothing is written, and the message names the
# change: its revision, who, when, what is live now.


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_rollback_superseded_by_a_publish_meanwhile_writes_nothing_and_names_it(
    alice: Ops, bob: Ops, moment: str
) -> None:
    three_live(alice)
    bob.edit("40_routing.yaml", f"# bob's\n{AGENT_ROUTING}")
    ran = meanwhile(alice, moment, bob, "publish", "--live", "--by", "bob", "--note", "agents on SMS too")
    status, out, err = alice.rules("rollback", "--by", "alice")
    fixed = alice.deployment()
    assert ran[0][0] == 0 and (fixed.revision, fixed.updated_by) == (4, "bob")
    assert (status, out) == (2, "")
    assert err == (
        f"pipeline-rules: error: the deployment changed while this ran: revision 4: live {fixed.live} "
        f"({fixed.updated_at} by bob: agents on SMS too); nothing was written: `pipeline-rules list` shows the "
        "change; run it again if it is still wanted\n"
    )
    assert alice.deployment() == fixed


# Two publishes deploying at once, each another bundle (defect, after the deployment was read again on S3's refusal:
# the later write deployed over the other's, a live bundle replaced with no word to either). The later one writes
# nothing and names the change, as the other commands do; its bundle is published, and deploys when run again.


@pytest.mark.parametrize("role", ["--shadow", "--live"])
def test_a_publish_deploying_over_one_made_meanwhile_writes_nothing_and_names_it(
    alice: Ops, bob: Ops, role: str
) -> None:
    alice.publish("--live")
    bob.edit("40_routing.yaml", AGENT_ROUTING)
    alice.edit("40_routing.yaml", VIP_ROUTING)
    ran = meanwhile(alice, "write", bob, "publish", role, "--by", "bob", "--note", "agents")
    status, out, err = alice.rules("publish", role, "--by", "alice")
    bobs = bob.deployment()
    assert ran[0][0] == 0 and (bobs.revision, bobs.updated_by) == (2, "bob")
    assert status == 2 and "published: bundle " in out and "deployed as" not in out
    assert err.endswith(
        f"pipeline-rules: error: the deployment changed while this ran: revision 2: live {bobs.live}"
        + (f", shadow {bobs.shadow}" if bobs.shadow else "")
        + f" ({bobs.updated_at} by bob: agents); nothing was written: `pipeline-rules list` shows the change; run it "
        "again if it is still wanted\n"
    )
    assert alice.deployment() == bobs


# Two operators publishing the same files live at once (defect: the later one said only "unchanged, nothing written:
# revision 2: live …", naming no one, though docs/rule-bundles.md says the second names who did it, as a rollback or
# promote made by the other does: alice could not tell her publish from bob's deployment of the same bundle).


@pytest.mark.parametrize("moment", MOMENTS)
def test_two_operators_publishing_the_same_files_at_once_the_second_names_who_deployed_them(
    alice: Ops, bob: Ops, moment: str
) -> None:
    alice.publish("--live")
    for ops in (alice, bob):
        ops.edit("40_routing.yaml", VIP_ROUTING)
    ran = meanwhile(alice, moment, bob, "publish", "--live", "--by", "bob", "--note", "VIPs to a person")
    status, out, err = alice.rules("publish", "--live", "--by", "alice")
    bobs = alice.deployment()
    assert ran[0][0] == 0 and (bobs.revision, bobs.updated_by) == (2, "bob")
    assert status == 0 and out.endswith(f"unchanged, nothing written: revision 2: live {bobs.live}\n"), out
    assert "\npipeline-rules: note: bob deployed this at revision 2 while this ran (" in err, err
    assert err.endswith("): VIPs to a person\n"), err
    assert alice.deployment() == bobs
