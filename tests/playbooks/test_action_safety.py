"""The guard rails every action keeps, checked on all of them against one staged workload where each
would act: a dry run writes nothing, a paused workload is never touched, and a policy's actions
never leave its namespace."""

from __future__ import annotations

import base64
from typing import Any

from homeostat.api.incident import InvolvedSeries
from homeostat.api.policy import Action
from homeostat.lab.harness import deployment, wait_until
from homeostat.playbooks.actions import ACTIONS, scale_out
from homeostat.playbooks.base import Outcome

from .conftest import APPS, context, hpa, ready_pods, since, writes

UNREACHABLE = "http://127.0.0.1:9/hook"  # never contacted: the tests below must not notify


def stage(cluster: Any, namespace: str = "shop", *, annotations: dict[str, str] | None = None) -> list[str]:
    """`web` with two revisions and 4 ready pods, a webhook Secret: every action has something to do."""
    if namespace != "shop":
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    manifest = deployment("web", namespace=namespace, replicas=4)
    cluster.apply(manifest)
    wait_until(lambda: cluster.list(APPS, "replicasets", namespace), timeout=10, message="no revision 1")
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "example.com/web:2.0"
    manifest["metadata"]["annotations"] = annotations or {}
    cluster.apply(manifest)
    wait_until(lambda: len([p for p in ready_pods(cluster, namespace)
                            if p["spec"]["containers"][0]["image"].endswith("2.0")]) == 4
               and len(ready_pods(cluster, namespace)) == 4, timeout=20, message="revision 2 never became ready")
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook", "namespace": namespace},
                   "data": {"url": base64.b64encode(UNREACHABLE.encode()).decode()}})
    return sorted(p["metadata"]["name"] for p in ready_pods(cluster, namespace))


PARAMS: dict[Action, dict[str, Any]] = {
    Action.RESTART: {},
    Action.SCALE_OUT: {"scaleOut": {"step": 1, "max": 10}},
    Action.ROLLBACK: {},
    Action.DELETE_POD: {"deletePod": {"maxFraction": 0.5}},
    Action.NOTIFY: {"notify": {"webhooks": [{"urlSecretRef": {"name": "hook", "key": "url"}}]}},
}


# Rollback first: after a restart, the anomaly would predate the latest rollout and rollback would skip.
ORDER = (Action.ROLLBACK, Action.RESTART, Action.SCALE_OUT, Action.DELETE_POD, Action.NOTIFY)


def every_action(api: Any, pods: list[str], **kwargs: Any) -> list[tuple[Action, Any]]:
    involved = [InvolvedSeries(signal="latency", labels={"pod": pods[0]}, score=8.0)]
    return [(action, context(api, action, key=f"inc-1/{i}/1", involved=involved, **PARAMS[action], **kwargs))
            for i, action in enumerate(ORDER)]


def state(cluster: Any, namespace: str = "shop") -> dict[str, Any]:
    """Every resourceVersion that an action could change (the workload, its pods, its ReplicaSets)."""
    found = {}
    for api_version, kind in ((APPS, "deployments"), (APPS, "replicasets"), ("v1", "pods"),
                              ("autoscaling/v2", "horizontalpodautoscalers")):
        for obj in cluster.list(api_version, kind, namespace):
            found[(kind, obj["metadata"]["name"])] = obj["metadata"]["resourceVersion"]
    return found


def test_every_action_has_an_implementation() -> None:
    assert set(ACTIONS) == set(Action)


async def test_a_dry_run_says_what_it_would_do_and_writes_nothing(cluster, api):
    pods = stage(cluster)
    before = state(cluster)

    for action, ctx in every_action(api, pods, dry_run=True):
        mark = len(cluster.requests)
        done = await ACTIONS[action](ctx)
        assert done.outcome == Outcome.DRY_RUN, f"{action}: {done.message}"
        assert done.message.startswith("would "), f"{action}: {done.message}"
        assert writes(since(cluster, mark)) == [], f"{action} wrote in a dry run"
    assert state(cluster) == before


async def test_a_paused_workload_is_never_touched(cluster, api):
    pods = stage(cluster, annotations={"homeostat.dev/paused": "true"})
    before = state(cluster)
    mark = len(cluster.requests)

    for action, ctx in every_action(api, pods):
        done = await ACTIONS[action](ctx)
        assert done.outcome == Outcome.SKIPPED, f"{action}: {done.message}"
        assert "homeostat.dev/paused=true" in done.message
    back = await scale_out.scale_back(context(api, "scale-out", key="inc-1/2/back"), resolved_at=0)
    assert back.outcome == Outcome.SKIPPED and "paused" in back.message

    assert writes(since(cluster, mark)) == []
    assert state(cluster) == before


async def test_a_policys_actions_never_leave_its_namespace(cluster, api):
    """A twin of everything in `other`: acting for `shop` must not even read it."""
    pods = stage(cluster)
    stage(cluster, "other")
    cluster.apply(hpa("web", "web", min_replicas=1, max_replicas=10, namespace="other"))
    untouched = state(cluster, "other")
    mark = len(cluster.requests)

    outcomes = {action: (await ACTIONS[action](ctx)).outcome for action, ctx in every_action(api, pods)}
    await scale_out.scale_back(context(api, "scale-out", key="inc-1/2/back"), resolved_at=0)

    # Notify fails (its URL is unreachable on purpose); every other action acted.
    assert outcomes == {Action.RESTART: Outcome.SUCCEEDED, Action.SCALE_OUT: Outcome.SUCCEEDED,
                        Action.ROLLBACK: Outcome.SUCCEEDED, Action.DELETE_POD: Outcome.SUCCEEDED,
                        Action.NOTIFY: Outcome.FAILED}
    requests = since(cluster, mark)
    assert requests
    outside = [f"{r.method} {r.path}" for r in requests if "/namespaces/shop/" not in r.path]
    assert outside == []
    assert state(cluster, "other") == untouched
