"""The actions' side of the RBAC check: every remediation action run once against the emulator with
the operator's client, so that test_rbac.py (which runs last) sees each kind of call the actions
make even when only tests/deploy runs (tests/playbooks covers what the actions do).

Covered: Deployment and StatefulSet targets, rollback (ReplicaSets, ControllerRevisions), restart,
scale-out through both scale subresources and through an HPA, delete-pod, notify's Secret.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import kubernetes

import homeostat
from homeostat.api.incident import InvolvedSeries
from homeostat.api.policy import Step, TargetRef
from homeostat.lab.harness import deployment, wait_until
from homeostat.playbooks.actions import ACTIONS, notify
from homeostat.playbooks.base import ActionContext, Outcome
from homeostat.playbooks.kube import WorkloadApi

from .test_operator_requests import statefulset
from .test_rbac import attributes

APPS = "apps/v1"


def rolled_out_twice(cluster: Any, manifest: dict[str, Any], plural: str) -> None:
    cluster.apply(manifest)
    wait_until(lambda: (cluster.get(APPS, plural, "shop", manifest["metadata"]["name"]).get("status") or {})
               .get("readyReplicas") == manifest["spec"]["replicas"], timeout=30, message="never ready")
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] += "-2"
    cluster.apply(manifest)
    wait_until(lambda: (cluster.get(APPS, plural, "shop", manifest["metadata"]["name"]).get("status") or {})
               .get("updatedReplicas") == manifest["spec"]["replicas"], timeout=30, message="second rollout stuck")


def ctx(api: WorkloadApi, action: str, kind: str, name: str, **params: Any) -> ActionContext:
    involved = params.pop("involved", [])
    return ActionContext(api=api, namespace="shop", policy="p", incident="inc", target=TargetRef(kind=kind, name=name),
                         step=Step.model_validate({"action": action, **params}), step_index=0,
                         key=f"inc/0/{action}-{name}", involved=involved, anomaly_started_at=time.time(),
                         dry_run=False, summary="test")


async def test_every_action_makes_its_calls_as_the_operator(cluster: Any, closed_url: str) -> None:
    rolled_out_twice(cluster, deployment("web"), "deployments")
    rolled_out_twice(cluster, {**statefulset("db"), "spec": {**statefulset("db")["spec"], "replicas": 2}},
                     "statefulsets")
    cluster.apply(deployment("api", replicas=1))
    cluster.apply({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": "api", "namespace": "shop"},
                   "spec": {"scaleTargetRef": {"apiVersion": APPS, "kind": "Deployment", "name": "api"},
                            "minReplicas": 1, "maxReplicas": 5}})
    url = f"{closed_url}/hook"  # nobody listens: only the Secret read matters here
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook", "namespace": "shop"},
                   "data": {"url": base64.b64encode(url.encode()).decode()}})
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    client.user_agent = f"homeostat/{homeostat.__version__}"  # as the operator's own client
    api = WorkloadApi(client)

    def web_pods() -> list[str]:
        """web's pods once its second rollout is over: exactly its two pods, all ready, none going."""
        pods = [p for p in cluster.list("v1", "pods", "shop") if p["metadata"]["name"].startswith("web-")]
        ready = [p for p in pods if not p["metadata"].get("deletionTimestamp")
                 and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
        return sorted(p["metadata"]["name"] for p in ready) if len(ready) == len(pods) == 2 else []

    victim = wait_until(web_pods, timeout=30, message="web's old pods never went")[0]
    mark = len(cluster.requests)

    outcomes = [
        # First, while no rollout runs: the rollback and the restart below replace web's pods, and
        # the victim named here would be gone by the time a slow machine got to it (Skipped).
        await ACTIONS["delete-pod"](ctx(api, "delete-pod", "Deployment", "web", deletePod={"maxFraction": 1.0},
                                        involved=[InvolvedSeries(signal="s", labels={"pod": victim})])),
        await ACTIONS["rollback"](ctx(api, "rollback", "Deployment", "web")),
        await ACTIONS["rollback"](ctx(api, "rollback", "StatefulSet", "db")),
        await ACTIONS["restart"](ctx(api, "restart", "Deployment", "web")),
        await ACTIONS["scale-out"](ctx(api, "scale-out", "Deployment", "web")),
        await ACTIONS["scale-out"](ctx(api, "scale-out", "StatefulSet", "db")),
        await ACTIONS["scale-out"](ctx(api, "scale-out", "Deployment", "api")),
    ]
    hooks = {"notify": {"webhooks": [{"urlSecretRef": {"name": "hook", "key": "url"}}]}}
    notified = await notify.send(ctx(api, "notify", "Deployment", "web", **hooks), backoff=0.01)
    client.close()

    assert [o.outcome for o in outcomes] == [Outcome.SUCCEEDED] * len(outcomes), [o.message for o in outcomes]
    assert notified.outcome == Outcome.FAILED and "ConnectError" in notified.message
    seen = {(a.verb, a.resource) for a in (attributes(r.path, r.verb) for r in cluster.requests[mark:]
                                           if r.user_agent == client.user_agent and r.status in (200, 201)) if a}
    assert seen == {
        ("get", "deployments"), ("get", "statefulsets"), ("patch", "deployments"), ("patch", "statefulsets"),
        ("get", "deployments/scale"), ("patch", "deployments/scale"),
        ("get", "statefulsets/scale"), ("patch", "statefulsets/scale"),
        ("list", "horizontalpodautoscalers"), ("get", "horizontalpodautoscalers"),
        ("patch", "horizontalpodautoscalers"),
        ("list", "replicasets"), ("list", "controllerrevisions"), ("list", "pods"), ("delete", "pods"),
        ("get", "secrets"),
    }
