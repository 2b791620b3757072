"""restart against the emulated API server: a new revision whose pods replace the old ones, once per key."""

from __future__ import annotations

import kmock

from homeostat.lab.harness import wait_until
from homeostat.playbooks.actions import restart
from homeostat.playbooks.base import Outcome

from .conftest import (
    APPS,
    conflict_once,
    context,
    landed,
    ready_pods,
    settled_deployment,
    settled_statefulset,
    since,
    writes,
)

REVISION = "deployment.kubernetes.io/revision"


def revisions(cluster):
    return sorted(int(rs["metadata"]["annotations"][REVISION]) for rs in cluster.list(APPS, "replicasets", "shop"))


async def test_restart_makes_a_new_revision_whose_pods_replace_the_old_ones(cluster, api):
    settled_deployment(cluster, replicas=2)
    old = {p["metadata"]["name"] for p in ready_pods(cluster)}

    done = await restart.perform(context(api, "restart"))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    template = cluster.get(APPS, "deployments", "shop", "web")["spec"]["template"]["metadata"]["annotations"]
    assert template["homeostat.dev/action-key"] == "inc-1/0/1"
    assert template["kubectl.kubernetes.io/restartedAt"] == done.changes["restartedAt"]
    wait_until(lambda: revisions(cluster) == [1, 2], timeout=10, message="no second ReplicaSet revision")
    wait_until(lambda: len(ready_pods(cluster)) == 2 and not old & {p["metadata"]["name"] for p in ready_pods(cluster)},
               timeout=15, message="the old pods were not replaced by ready new ones")


async def test_restart_twice_with_one_key_restarts_once(cluster, api):
    settled_deployment(cluster)
    mark = len(cluster.requests)

    first = await restart.perform(context(api, "restart"))
    second = await restart.perform(context(api, "restart"))

    assert first.outcome == second.outcome == Outcome.SUCCEEDED
    assert "already done" in second.message
    assert [(r.method, r.content_type) for r in landed(since(cluster, mark))] == [
        ("PATCH", "application/strategic-merge-patch+json")]
    wait_until(lambda: revisions(cluster) == [1, 2], timeout=10, message="no second revision")
    third = await restart.perform(context(api, "restart", key="inc-1/0/2"))  # a new attempt is a new restart
    assert third.outcome == Outcome.SUCCEEDED and "already" not in third.message
    wait_until(lambda: revisions(cluster) == [1, 2, 3], timeout=10, message="no third revision")


async def test_restart_of_a_statefulset_replaces_its_pods_with_a_new_controller_revision(cluster, api):
    settled_statefulset(cluster, "db", replicas=2)
    before = {p["metadata"]["uid"] for p in ready_pods(cluster, prefix="db-")}

    done = await restart.perform(context(api, "restart", kind="StatefulSet", name="db"))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    wait_until(lambda: len(cluster.list(APPS, "controllerrevisions", "shop")) == 2, timeout=10,
               message="no new ControllerRevision")
    wait_until(lambda: len(ready_pods(cluster, prefix="db-")) == 2
               and not before & {p["metadata"]["uid"] for p in ready_pods(cluster, prefix="db-")},
               timeout=20, message="the StatefulSet's pods were not replaced")


async def test_a_conflict_is_retried_and_the_restart_lands_once(cluster, api):
    settled_deployment(cluster)
    conflict_once(cluster, "patch", kmock.resource("apps", "v1", "deployments"))
    mark = len(cluster.requests)

    done = await restart.perform(context(api, "restart"))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert [r.status for r in writes(since(cluster, mark))] == [409, 200]
    wait_until(lambda: revisions(cluster) == [1, 2], timeout=10, message="no second revision")


async def test_a_deployment_with_its_rollout_paused_is_not_restarted(cluster, api):
    obj = settled_deployment(cluster)
    obj["spec"]["paused"] = True
    cluster.apply(obj)
    mark = len(cluster.requests)

    done = await restart.perform(context(api, "restart"))

    assert done.outcome == Outcome.SKIPPED and "spec.paused" in done.message
    assert writes(since(cluster, mark)) == []


async def test_a_missing_workload_is_a_failure_that_says_so(cluster, api):
    done = await restart.perform(context(api, "restart", name="nope"))

    assert done.outcome == Outcome.FAILED
    assert "404" in done.message and "Deployment shop/nope" in done.message
