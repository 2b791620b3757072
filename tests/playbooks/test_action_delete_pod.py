"""delete-pod against the emulated API server: exactly the most anomalous pod of the workload, never
more than maxFraction of the ready pods, with a uid precondition, once per key."""

from __future__ import annotations

import kmock

from homeostat.api.incident import InvolvedSeries
from homeostat.lab.harness import deployment, wait_until
from homeostat.playbooks.actions import delete_pod
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


def series(pod, score=None, **values):
    return InvolvedSeries(signal="latency", labels={"pod": pod, "instance": "10.0.0.1:8080"}, score=score, **values)


def names(cluster, prefix="web-"):
    return sorted(p["metadata"]["name"] for p in ready_pods(cluster, prefix=prefix))


def delete_ctx(api, involved, key="inc-1/0/1", **params):
    return context(api, "delete-pod", key=key, involved=involved, deletePod=params)


async def test_exactly_the_most_anomalous_pod_is_deleted_and_replaced(cluster, api):
    settled_deployment(cluster, replicas=4)
    pods = names(cluster)
    worst, milder = pods[2], pods[0]
    mark = len(cluster.requests)

    done = await delete_pod.perform(delete_ctx(api, [series(milder, 3.0), series(worst, 9.5)]))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert done.changes["pod"] == worst
    deletes = [r for r in writes(since(cluster, mark)) if r.method == "DELETE"]
    assert [r.path.rsplit("/", 1)[-1] for r in deletes] == [worst]
    assert deletes[0].body["preconditions"]["uid"]  # only that very pod, not a namesake
    remaining = {p["metadata"]["name"] for p in cluster.list("v1", "pods", "shop")}
    assert worst not in remaining and set(pods) - {worst} <= remaining
    wait_until(lambda: len(names(cluster)) == 4, timeout=15, message="the deleted pod was not replaced")


async def test_without_scores_the_widest_miss_of_its_band_counts(cluster, api):
    settled_deployment(cluster, replicas=4)
    a, b = names(cluster)[:2]

    done = await delete_pod.perform(delete_ctx(api, [
        series(a, observed=0.5, expected=0.2, lower=0.1, upper=0.3),  # 1.5 band widths off
        series(b, observed=0.9, expected=0.2, lower=0.1, upper=0.3),  # 3.5 band widths off
    ]))

    assert done.changes["pod"] == b


async def test_the_fraction_of_ready_pods_is_respected(cluster, api):
    settled_deployment(cluster, replicas=3)
    pods = names(cluster)
    mark = len(cluster.requests)

    refused = await delete_pod.perform(delete_ctx(api, [series(pods[0], 5.0)]))  # 1 of 3 > 0.25
    allowed = await delete_pod.perform(delete_ctx(api, [series(pods[0], 5.0)], key="inc-1/0/2", maxFraction=0.34))

    assert refused.outcome == Outcome.SKIPPED and "maxFraction 0.25" in refused.message
    assert allowed.outcome == Outcome.SUCCEEDED, allowed.message
    assert [r.method for r in landed(since(cluster, mark)) if r.method == "DELETE"] == ["DELETE"]


async def test_the_last_ready_pod_is_never_deleted(cluster, api):
    settled_deployment(cluster, replicas=1)
    mark = len(cluster.requests)

    done = await delete_pod.perform(delete_ctx(api, [series(names(cluster)[0], 5.0)], maxFraction=1.0))

    assert done.outcome == Outcome.SKIPPED and "1 of 1 ready" in done.message
    assert writes(since(cluster, mark)) == []


async def test_pods_that_are_not_the_workloads_are_never_candidates(cluster, api):
    settled_deployment(cluster, replicas=2)
    twin = deployment("web-canary")
    twin["spec"]["selector"]["matchLabels"] = twin["spec"]["template"]["metadata"]["labels"] = {"app": "web"}
    cluster.apply(twin)  # same labels as web's pods, another owner
    wait_until(lambda: len(ready_pods(cluster, prefix="web-canary-")) == 2, timeout=15, message="canary not ready")
    canary = sorted(p["metadata"]["name"] for p in ready_pods(cluster, prefix="web-canary-"))
    mark = len(cluster.requests)

    not_ours = await delete_pod.perform(delete_ctx(api, [series(canary[0], 9.0)], maxFraction=1.0))
    no_pod_label = await delete_pod.perform(delete_ctx(api, [InvolvedSeries(signal="errors", labels={}, score=9.0)]))

    assert not_ours.outcome == Outcome.SKIPPED and "none of the anomalous pods" in not_ours.message
    assert no_pod_label.outcome == Outcome.SKIPPED and "per-pod signals" in no_pod_label.message
    assert writes(since(cluster, mark)) == []


async def test_the_same_key_twice_deletes_one_pod(cluster, api):
    settled_deployment(cluster, replicas=2)
    pods = names(cluster)
    involved = [series(pods[0], 5.0), series(pods[1], 4.0)]
    mark = len(cluster.requests)

    first = await delete_pod.perform(delete_ctx(api, involved, maxFraction=0.5))
    wait_until(lambda: len(names(cluster)) == 2, timeout=15, message="no replacement pod")
    second = await delete_pod.perform(delete_ctx(api, involved, maxFraction=0.5))

    assert first.outcome == second.outcome == Outcome.SUCCEEDED
    assert "already done" in second.message
    assert [r.path.rsplit("/", 1)[-1] for r in landed(since(cluster, mark)) if r.method == "DELETE"] == [pods[0]]
    assert pods[1] in names(cluster)


async def test_an_interrupted_deletion_is_finished_for_the_recorded_pod_only(cluster, api):
    obj = settled_deployment(cluster, replicas=2)
    victim = ready_pods(cluster)[0]
    recorded = f"{victim['metadata']['name']}/{victim['metadata']['uid']}"
    obj["metadata"]["annotations"] = {"homeostat.dev/pod-deleted-by": "inc-1/0/1",
                                      "homeostat.dev/deleted-pod": recorded}
    cluster.apply(obj)
    others = [p["metadata"]["name"] for p in ready_pods(cluster) if p["metadata"]["name"] != victim["metadata"]["name"]]

    done = await delete_pod.perform(delete_ctx(api, [series(others[0], 99.0)], maxFraction=1.0))

    assert done.outcome == Outcome.SUCCEEDED and "finished" in done.message
    remaining = {p["metadata"]["name"] for p in cluster.list("v1", "pods", "shop")}
    assert victim["metadata"]["name"] not in remaining and others[0] in remaining


async def test_a_statefulset_pod_that_came_back_under_its_name_is_not_deleted_again(cluster, api):
    settled_statefulset(cluster, "db", replicas=2)
    involved = [series("db-1", 7.0)]

    first = await delete_pod.perform(context(api, "delete-pod", kind="StatefulSet", name="db", involved=involved,
                                             deletePod={"maxFraction": 0.5}))
    wait_until(lambda: "db-1" in names(cluster, "db-"), timeout=15, message="db-1 was not recreated")
    reborn = cluster.get("v1", "pods", "shop", "db-1")["metadata"]["uid"]
    again = await delete_pod.perform(context(api, "delete-pod", kind="StatefulSet", name="db", involved=involved,
                                             deletePod={"maxFraction": 0.5}))

    assert first.outcome == Outcome.SUCCEEDED and first.changes["pod"] == "db-1"
    assert again.outcome == Outcome.SUCCEEDED and "already done" in again.message
    assert cluster.get("v1", "pods", "shop", "db-1")["metadata"]["uid"] == reborn  # the uid precondition held


async def test_a_conflict_on_the_deletion_is_retried(cluster, api):
    settled_deployment(cluster, replicas=2)
    pods = names(cluster)
    conflict_once(cluster, "delete", kmock.resource("", "v1", "pods"))
    mark = len(cluster.requests)

    done = await delete_pod.perform(delete_ctx(api, [series(pods[1], 5.0)], maxFraction=0.5))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert [r.status for r in since(cluster, mark) if r.method == "DELETE"] == [409, 200]
    assert pods[1] not in {p["metadata"]["name"] for p in cluster.list("v1", "pods", "shop")}
    assert cluster.get(APPS, "deployments", "shop", "web")["metadata"]["annotations"][
        "homeostat.dev/pod-deleted-by"] == "inc-1/0/1"
