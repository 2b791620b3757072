"""scale-out and its scale-back against the emulated API server: the scale subresource, or an HPA's
minReplicas when an HPA targets the workload; capped at max, never lowered, once per key."""

from __future__ import annotations

import dataclasses
import time

import kmock
import pytest

from homeostat.lab.harness import deployment
from homeostat.playbooks.actions import scale_out
from homeostat.playbooks.base import Outcome

from .conftest import APPS, conflict_once, context, hpa, landed, since, statefulset, writes

MARKERS = ("homeostat.dev/scaled-by", "homeostat.dev/replicas-before", "homeostat.dev/replicas-after",
           "homeostat.dev/scaled-via")


def replicas(cluster, name="web", kind="deployments"):
    return cluster.get(APPS, kind, "shop", name)["spec"]["replicas"]


def notes(cluster, name="web"):
    return cluster.get(APPS, "deployments", "shop", name)["metadata"].get("annotations") or {}


def hpa_min(cluster, name="web"):
    return cluster.get("autoscaling/v2", "horizontalpodautoscalers", "shop", name)["spec"]["minReplicas"]


def scale_ctx(api, key="inc-1/0/1", **params):
    return context(api, "scale-out", key=key, scaleOut=params)


@pytest.mark.parametrize(("start", "params", "expected"), [
    (2, {"step": 1}, 3),
    (2, {"step": 3, "max": 4}, 4),  # capped at max
    (3, {"factor": 2.0, "max": 5}, 5),  # 6, capped
    (3, {"factor": 1.5}, 5),  # 4.5 rounds up
])
async def test_scale_out_raises_replicas_through_the_scale_subresource(cluster, api, start, params, expected):
    cluster.apply(deployment("web", replicas=start))
    mark = len(cluster.requests)

    done = await scale_out.perform(scale_ctx(api, **params))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert replicas(cluster) == expected
    assert done.changes["replicas"] == [start, expected]
    assert {"homeostat.dev/scaled-by": "inc-1/0/1", "homeostat.dev/replicas-before": str(start),
            "homeostat.dev/replicas-after": str(expected), "homeostat.dev/scaled-via": "scale"}.items() <= \
        notes(cluster).items()
    scale_writes = [r for r in landed(since(cluster, mark)) if r.path.endswith("/scale")]
    assert [(r.method, r.body["spec"]) for r in scale_writes] == [("PATCH", {"replicas": expected})]
    assert scale_writes[0].body["metadata"]["resourceVersion"]  # decided on that version, or a 409


async def test_a_statefulset_is_scaled_through_its_scale_subresource(cluster, api):
    cluster.apply(statefulset("db", replicas=1))

    done = await scale_out.perform(context(api, "scale-out", kind="StatefulSet", name="db", scaleOut={"step": 2}))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert replicas(cluster, "db", "statefulsets") == 3


@pytest.mark.parametrize("start", [5, 7])
async def test_at_or_above_max_nothing_is_written_and_nothing_is_lowered(cluster, api, start):
    cluster.apply(deployment("web", replicas=start))
    mark = len(cluster.requests)

    done = await scale_out.perform(scale_ctx(api, step=2, max=5))

    assert done.outcome == Outcome.SKIPPED and "cap 5" in done.message
    assert replicas(cluster) == start
    assert writes(since(cluster, mark)) == []


async def test_the_same_key_twice_scales_once(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    mark = len(cluster.requests)

    first = await scale_out.perform(scale_ctx(api, step=2))
    second = await scale_out.perform(scale_ctx(api, step=2))

    assert first.outcome == second.outcome == Outcome.SUCCEEDED
    assert "already done" in second.message
    assert replicas(cluster) == 4
    assert len([r for r in landed(since(cluster, mark)) if r.path.endswith("/scale")]) == 1


async def test_an_interrupted_scale_out_is_finished_not_repeated(cluster, api):
    """The intent was written, the operator died before the scale: the same key completes it."""
    obj = deployment("web", replicas=2)
    obj["metadata"]["annotations"] = {"homeostat.dev/scaled-by": "inc-1/0/1", "homeostat.dev/replicas-before": "2",
                                      "homeostat.dev/replicas-after": "4", "homeostat.dev/scaled-via": "scale"}
    cluster.apply(obj)

    done = await scale_out.perform(scale_ctx(api, step=2))

    assert done.outcome == Outcome.SUCCEEDED and "finished" in done.message
    assert replicas(cluster) == 4
    again = await scale_out.perform(scale_ctx(api, step=2))
    assert "already done" in again.message and replicas(cluster) == 4


async def test_a_second_scale_out_in_one_incident_keeps_the_first_replicas_before(cluster, api):
    cluster.apply(deployment("web", replicas=2))

    await scale_out.perform(scale_ctx(api, key="inc-1/0/1", step=1))
    await scale_out.perform(scale_ctx(api, key="inc-1/1/1", step=1))

    assert replicas(cluster) == 4
    assert notes(cluster)["homeostat.dev/replicas-before"] == "2"
    assert notes(cluster)["homeostat.dev/scaled-by"] == "inc-1/1/1"


async def test_with_an_hpa_its_min_replicas_is_raised_and_replicas_are_left_to_it(cluster, api):
    cluster.apply(deployment("web", replicas=3))
    cluster.apply(hpa("web", "web", min_replicas=2, max_replicas=8))
    cluster.apply(hpa("other", "web", min_replicas=1, max_replicas=3, kind="StatefulSet"))  # not ours
    mark = len(cluster.requests)

    done = await scale_out.perform(scale_ctx(api, step=2, max=10))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert hpa_min(cluster) == 5  # from the 3 it runs now, not its floor of 2
    assert replicas(cluster) == 3
    assert not [r for r in writes(since(cluster, mark)) if r.path.endswith("/scale")]
    assert notes(cluster)["homeostat.dev/scaled-via"] == "HorizontalPodAutoscaler/web"
    assert notes(cluster)["homeostat.dev/replicas-before"] == "2"
    assert cluster.get("autoscaling/v2", "horizontalpodautoscalers", "shop", "other")["spec"]["minReplicas"] == 1


@pytest.mark.parametrize(("hpa_max", "policy_max", "expected"), [(4, 10, 4), (10, 3, 3)])
async def test_the_hpa_min_is_bounded_by_its_max_and_the_policy_max(cluster, api, hpa_max, policy_max, expected):
    cluster.apply(deployment("web", replicas=2))
    cluster.apply(hpa("web", "web", min_replicas=2, max_replicas=hpa_max))

    done = await scale_out.perform(scale_ctx(api, step=5, max=policy_max))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert hpa_min(cluster) == expected
    again = await scale_out.perform(scale_ctx(api, key="inc-1/0/2", step=5, max=policy_max))
    assert again.outcome == Outcome.SKIPPED and hpa_min(cluster) == expected


async def test_a_conflict_on_the_scale_is_retried_on_fresh_data(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    conflict_once(cluster, "patch", kmock.resource("apps", "v1", "deployments"), kmock.subresource("scale"))
    mark = len(cluster.requests)

    done = await scale_out.perform(scale_ctx(api, step=1))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert replicas(cluster) == 3
    scale_calls = [(r.method, r.status) for r in since(cluster, mark) if r.path.endswith("/scale")]
    assert ("PATCH", 409) in scale_calls
    assert scale_calls[-2:] == [("GET", 200), ("PATCH", 200)]  # read again, then applied


async def test_someone_scaling_higher_meanwhile_is_never_lowered(cluster, api):
    cluster.apply(deployment("web", replicas=2))

    def scaled_by_someone_else(_request):
        obj = cluster.get(APPS, "deployments", "shop", "web")
        obj["spec"]["replicas"] = 6
        cluster.apply(obj)

    conflict_once(cluster, "patch", kmock.resource("apps", "v1", "deployments"), kmock.subresource("scale"),
                  meanwhile=scaled_by_someone_else)

    done = await scale_out.perform(scale_ctx(api, step=1))

    assert done.outcome == Outcome.SUCCEEDED and "left as is" in done.message
    assert replicas(cluster) == 6


async def test_an_hpa_conflict_is_retried(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    cluster.apply(hpa("web", "web", min_replicas=2, max_replicas=8))
    conflict_once(cluster, "patch", kmock.resource("autoscaling", "v2", "horizontalpodautoscalers"))

    done = await scale_out.perform(scale_ctx(api, step=1))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert hpa_min(cluster) == 3


# --- scale-back ---------------------------------------------------------------------------------


async def test_scale_back_returns_to_the_replicas_before_once_resolved_and_quiet(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    await scale_out.perform(scale_ctx(api, step=2, scaleBackAfter="10m"))
    back = scale_ctx(api, key="inc-1/0/back", step=2, scaleBackAfter="10m")

    early = await scale_out.scale_back(back, resolved_at=time.time() - 60)
    assert early.outcome == Outcome.SKIPPED and "quiet period" in early.message
    assert replicas(cluster) == 4

    done = await scale_out.scale_back(back, resolved_at=time.time() - 601)
    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert replicas(cluster) == 2
    assert not set(MARKERS) & notes(cluster).keys()
    assert notes(cluster)["homeostat.dev/scaled-back-by"] == "inc-1/0/back"
    again = await scale_out.scale_back(back, resolved_at=time.time() - 601)
    assert "already done" in again.message and replicas(cluster) == 2


async def test_scale_back_leaves_replicas_that_someone_changed_meanwhile(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    await scale_out.perform(scale_ctx(api, step=2))
    obj = cluster.get(APPS, "deployments", "shop", "web")
    obj["spec"]["replicas"] = 7
    cluster.apply(obj)
    mark = len(cluster.requests)

    done = await scale_out.scale_back(scale_ctx(api, key="inc-1/0/back"), resolved_at=0)

    assert done.outcome == Outcome.SKIPPED and "changed" in done.message
    assert replicas(cluster) == 7
    assert writes(since(cluster, mark)) == []


async def test_scale_back_never_goes_below_the_min_of_an_hpa_that_appeared(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    await scale_out.perform(scale_ctx(api, step=3))  # 2 -> 5
    cluster.apply(hpa("web", "web", min_replicas=3, max_replicas=8))

    done = await scale_out.scale_back(scale_ctx(api, key="inc-1/0/back"), resolved_at=0)

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert replicas(cluster) == 3


async def test_scale_back_of_an_hpa_restores_its_min_replicas(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    cluster.apply(hpa("web", "web", min_replicas=2, max_replicas=8))
    await scale_out.perform(scale_ctx(api, step=2))
    assert hpa_min(cluster) == 4

    done = await scale_out.scale_back(scale_ctx(api, key="inc-1/0/back"), resolved_at=0)

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert hpa_min(cluster) == 2


async def test_scale_back_is_off_when_the_policy_says_so_and_only_undoes_its_own_incident(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    await scale_out.perform(scale_ctx(api, step=2))

    off = await scale_out.scale_back(scale_ctx(api, key="inc-1/0/back", scaleBack=False), resolved_at=0)
    other = await scale_out.scale_back(scale_ctx(api, key="inc-2/0/back"), resolved_at=0)

    assert off.outcome == other.outcome == Outcome.SKIPPED
    assert "off" in off.message and "no scale-out of incident inc-2" in other.message
    assert replicas(cluster) == 4


async def test_scale_back_in_a_dry_run_writes_nothing(cluster, api):
    cluster.apply(deployment("web", replicas=2))
    await scale_out.perform(scale_ctx(api, step=2))
    mark = len(cluster.requests)
    ctx = dataclasses.replace(scale_ctx(api, key="inc-1/0/back"), dry_run=True)

    done = await scale_out.scale_back(ctx, resolved_at=0)

    assert done.outcome == Outcome.DRY_RUN and done.changes["replicas"] == [4, 2]
    assert writes(since(cluster, mark)) == []
    assert replicas(cluster) == 4
