"""rollback against the emulated API server: the previous revision's template back in place, as
`kubectl rollout undo` does it, only for a recent rollout, once per key."""

from __future__ import annotations

import time

import kmock

from homeostat.lab.harness import deployment, wait_until
from homeostat.playbooks.actions import rollback
from homeostat.playbooks.base import Outcome

from .conftest import APPS, conflict_once, context, landed, ready_pods, since, statefulset, writes

REVISION = "deployment.kubernetes.io/revision"


def by_revision(cluster):
    return {int(rs["metadata"]["annotations"][REVISION]): rs for rs in cluster.list(APPS, "replicasets", "shop")}


def without_hash(template):
    labels = {k: v for k, v in template["metadata"]["labels"].items() if k != "pod-template-hash"}
    return {**template, "metadata": {**template["metadata"], "labels": labels}}


def two_revisions(cluster, image="example.com/web:2.0"):
    """Deployment `web` rolled out twice: revision 1 (image 1.0), then revision 2 (`image`)."""
    cluster.apply(deployment("web"))
    wait_until(lambda: 1 in by_revision(cluster), timeout=10, message="no revision 1")
    manifest = deployment("web")
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = image
    cluster.apply(manifest)
    wait_until(lambda: 2 in by_revision(cluster)
               and cluster.get(APPS, "deployments", "shop", "web")["metadata"]["annotations"].get(REVISION) == "2",
               timeout=10, message="no revision 2")
    return by_revision(cluster)


def image(obj):
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


async def test_a_deployment_goes_back_to_the_previous_revision_like_rollout_undo(cluster, api):
    revisions = two_revisions(cluster)

    done = await rollback.perform(context(api, "rollback"))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert done.changes["revision"] == [2, 1]
    web = cluster.get(APPS, "deployments", "shop", "web")
    assert web["spec"]["template"] == without_hash(revisions[1]["spec"]["template"])
    assert web["metadata"]["annotations"]["homeostat.dev/rolled-back-by"] == "inc-1/0/1"
    # The controller reuses revision 1's ReplicaSet and stamps it as revision 3, as it does for kubectl.
    wait_until(lambda: set(by_revision(cluster)) == {2, 3}, timeout=10, message="revision 1 was not re-stamped as 3")
    assert by_revision(cluster)[3]["metadata"]["name"] == revisions[1]["metadata"]["name"]
    wait_until(lambda: cluster.get(APPS, "deployments", "shop", "web")["metadata"]["annotations"][REVISION] == "3",
               timeout=10, message="the Deployment never reached revision 3")
    wait_until(lambda: len(ready_pods(cluster)) == 2
               and all(p["spec"]["containers"][0]["image"] == "example.com/web:1.0" for p in ready_pods(cluster)),
               timeout=15, message="the pods never went back to image 1.0")


async def test_the_same_key_twice_rolls_back_once(cluster, api):
    two_revisions(cluster)
    mark = len(cluster.requests)

    first = await rollback.perform(context(api, "rollback"))
    wait_until(lambda: 3 in by_revision(cluster), timeout=10, message="no revision 3")
    second = await rollback.perform(context(api, "rollback"))

    assert first.outcome == second.outcome == Outcome.SUCCEEDED
    assert "already done" in second.message
    assert [(r.method, r.content_type) for r in landed(since(cluster, mark))] == [
        ("PATCH", "application/json-patch+json")]
    assert image(cluster.get(APPS, "deployments", "shop", "web")) == "example.com/web:1.0"
    assert set(by_revision(cluster)) == {2, 3}


async def test_without_a_previous_revision_nothing_is_written(cluster, api):
    cluster.apply(deployment("web"))
    wait_until(lambda: by_revision(cluster), timeout=10, message="no revision 1")
    mark = len(cluster.requests)

    done = await rollback.perform(context(api, "rollback"))

    assert done.outcome == Outcome.SKIPPED and "no previous revision" in done.message
    assert writes(since(cluster, mark)) == []


async def test_an_anomaly_long_after_the_latest_rollout_does_not_blame_it(cluster, api):
    revisions = two_revisions(cluster)
    rolled_out = time.time()
    mark = len(cluster.requests)

    late = await rollback.perform(context(api, "rollback", anomaly_started_at=rolled_out + 7200))
    early = await rollback.perform(context(api, "rollback", anomaly_started_at=rolled_out - 3600))
    within = await rollback.perform(context(api, "rollback", anomaly_started_at=rolled_out + 7200,
                                            key="inc-1/0/2", rollback={"within": "3h"}))

    assert late.outcome == Outcome.SKIPPED and "more than rollback.within 1h" in late.message
    assert early.outcome == Outcome.SKIPPED and "before the latest rollout" in early.message
    assert within.outcome == Outcome.SUCCEEDED, within.message
    assert [r.method for r in landed(since(cluster, mark))] == ["PATCH"]  # only the third one wrote
    assert cluster.get(APPS, "deployments", "shop", "web")["spec"]["template"] == \
        without_hash(revisions[1]["spec"]["template"])


async def test_a_conflict_is_retried_on_a_fresh_read(cluster, api):
    two_revisions(cluster)
    conflict_once(cluster, "patch", kmock.resource("apps", "v1", "deployments"), kmock.subresource(None))
    mark = len(cluster.requests)

    done = await rollback.perform(context(api, "rollback"))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    calls = [(r.method, r.status) for r in since(cluster, mark) if r.path.endswith("/deployments/web")]
    assert ("PATCH", 409) in calls and calls[-2:] == [("GET", 200), ("PATCH", 200)]
    assert image(cluster.get(APPS, "deployments", "shop", "web")) == "example.com/web:1.0"


async def test_a_rollout_that_lands_meanwhile_is_not_rolled_back_from_under_it(cluster, api):
    two_revisions(cluster)

    def someone_deploys(_request):
        manifest = deployment("web")
        manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "example.com/web:3.0"
        cluster.apply(manifest)

    conflict_once(cluster, "patch", kmock.resource("apps", "v1", "deployments"), kmock.subresource(None),
                  meanwhile=someone_deploys)

    done = await rollback.perform(context(api, "rollback"))

    assert done.outcome == Outcome.SKIPPED and "rolled out again" in done.message
    assert image(cluster.get(APPS, "deployments", "shop", "web")) == "example.com/web:3.0"


async def test_a_statefulset_goes_back_to_its_previous_controller_revision(cluster, api):
    cluster.apply(statefulset("db"))
    wait_until(lambda: len(ready_pods(cluster, prefix="db-")) == 2, timeout=15, message="db pods not ready")
    manifest = statefulset("db")
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "example.com/db:2.0"
    cluster.apply(manifest)
    wait_until(lambda: (cluster.get(APPS, "statefulsets", "shop", "db").get("status") or {}).get("updateRevision")
               in {cr["metadata"]["name"] for cr in cluster.list(APPS, "controllerrevisions", "shop")
                   if cr["revision"] == 2}, timeout=10, message="no revision 2")
    first = next(cr for cr in cluster.list(APPS, "controllerrevisions", "shop") if cr["revision"] == 1)

    done = await rollback.perform(context(api, "rollback", kind="StatefulSet", name="db"))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert done.changes["to"] == first["metadata"]["name"]
    db = cluster.get(APPS, "statefulsets", "shop", "db")
    assert db["spec"]["template"] == {k: v for k, v in first["data"]["spec"]["template"].items() if k != "$patch"}
    wait_until(lambda: {cr["metadata"]["name"]: cr["revision"]
                        for cr in cluster.list(APPS, "controllerrevisions", "shop")}[first["metadata"]["name"]] == 3,
               timeout=10, message="the old ControllerRevision was not re-stamped as revision 3")
    wait_until(lambda: len(ready_pods(cluster, prefix="db-")) == 2 and all(
        p["spec"]["containers"][0]["image"] == "example.com/db:1.0" for p in ready_pods(cluster, prefix="db-")),
        timeout=20, message="the StatefulSet's pods never went back to image 1.0")


def current_revision(cluster):
    return cluster.get(APPS, "deployments", "shop", "web")["metadata"]["annotations"].get(REVISION)


async def test_a_restart_after_the_bad_release_does_not_make_the_bad_code_previous(cluster, api):
    # 1.0 (good) -> 2.0 (bad) -> `kubectl rollout restart`: revision 3 runs 2.0 again. The revision
    # below 3 is the bad release's: "previous" by number would restart the bad code once more.
    two_revisions(cluster)
    restarted = cluster.get(APPS, "deployments", "shop", "web")
    notes = restarted["spec"]["template"]["metadata"].setdefault("annotations", {})
    notes["kubectl.kubernetes.io/restartedAt"] = "2027-01-15T08:00:00Z"
    cluster.apply(restarted)
    wait_until(lambda: current_revision(cluster) == "3", timeout=10, message="no revision 3")

    done = await rollback.perform(context(api, "rollback"))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert done.changes["revision"] == [3, 1] and "revision 2 runs the same code (a restart)" in done.message
    assert image(cluster.get(APPS, "deployments", "shop", "web")) == "example.com/web:1.0"


async def test_a_second_rollback_never_goes_forward_to_the_release_rolled_back_from(cluster, api):
    # 1.0 -> 2.0 (bad), rolled back: 1.0 is revision 3 and the bad 2.0 is now "the revision before".
    two_revisions(cluster)
    first = await rollback.perform(context(api, "rollback"))
    assert first.outcome == Outcome.SUCCEEDED, first.message
    wait_until(lambda: current_revision(cluster) == "3", timeout=10, message="no revision 3")
    mark = len(cluster.requests)

    again = await rollback.perform(context(api, "rollback", key="inc-2/0/1"))  # a later incident

    assert again.outcome == Outcome.SKIPPED and "revision 2 was rolled back from before" in again.message
    assert writes(since(cluster, mark)) == []
    assert image(cluster.get(APPS, "deployments", "shop", "web")) == "example.com/web:1.0"
