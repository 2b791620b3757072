"""Fixtures for the action tests: a WorkloadApi talking to the emulated API server over HTTP with
the operator's user agent (so tests/deploy/test_rbac.py counts these requests as the operator's),
and builders for the contexts, workloads and HPAs the actions meet."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import kmock
import kubernetes
import pytest

import homeostat
from homeostat.api.incident import InvolvedSeries
from homeostat.api.policy import Step, TargetRef
from homeostat.lab.harness import deployment, wait_until
from homeostat.playbooks.base import ActionContext
from homeostat.playbooks.kube import ACTION_CALLS, WorkloadApi

APPS = "apps/v1"
OPERATOR = f"homeostat/{homeostat.__version__}"


@pytest.fixture
def api_client(cluster: Any) -> Iterator[Any]:
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    client.user_agent = OPERATOR  # exactly as operator/kube.py does
    yield client
    client.close()


@pytest.fixture
def api(api_client: Any) -> WorkloadApi:
    return WorkloadApi(api_client, retry=dataclasses.replace(ACTION_CALLS, attempts=4, base=0.02, cap=0.2))


def context(api: Any, action: str, *, kind: str = "Deployment", name: str = "web", namespace: str = "shop",
            key: str = "inc-1/0/1", dry_run: bool = False, involved: list[InvolvedSeries] | None = None,
            anomaly_started_at: float | None = None, **params: Any) -> ActionContext:
    """An ActionContext as the runner builds it; `params` are the step's (camelCase) parameters."""
    return ActionContext(
        api=api, namespace=namespace, policy="checkout-latency", incident=key.split("/")[0],
        target=TargetRef(kind=kind, name=name), step=Step.model_validate({"action": action, **params}),
        step_index=int(key.split("/")[1]), key=key, involved=involved or [],
        anomaly_started_at=time.time() if anomaly_started_at is None else anomaly_started_at,
        dry_run=dry_run, summary="latency p99 of checkout is 4x its usual level",
    )


def statefulset(name: str, namespace: str = "shop", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": APPS, "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "db", "image": "example.com/db:1.0"}]}},
        },
    }


def hpa(name: str, target: str, *, min_replicas: int, max_replicas: int, kind: str = "Deployment",
        namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scaleTargetRef": {"apiVersion": APPS, "kind": kind, "name": target},
                 "minReplicas": min_replicas, "maxReplicas": max_replicas,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                               "target": {"type": "Utilization",
                                                                          "averageUtilization": 70}}}]},
    }


def ready_pods(cluster: Any, namespace: str = "shop", prefix: str = "") -> list[dict[str, Any]]:
    def ready(pod: dict[str, Any]) -> bool:
        conditions = (pod.get("status") or {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    return [p for p in cluster.list("v1", "pods", namespace)
            if p["metadata"]["name"].startswith(prefix) and not p["metadata"].get("deletionTimestamp") and ready(p)]


def settled_deployment(cluster: Any, name: str = "web", replicas: int = 2, **labels: str) -> dict[str, Any]:
    """A Deployment whose pods are all ready (the controller and the fake kubelet have run)."""
    manifest = deployment(name, replicas=replicas)
    manifest["metadata"].setdefault("annotations", {}).update(labels)
    cluster.apply(manifest)
    wait_until(lambda: len(ready_pods(cluster, prefix=f"{name}-")) == replicas, timeout=15,
               message=f"the pods of Deployment {name} never became ready")
    obj: dict[str, Any] = cluster.get(APPS, "deployments", "shop", name)
    return obj


def settled_statefulset(cluster: Any, name: str = "db", replicas: int = 2) -> dict[str, Any]:
    cluster.apply(statefulset(name, replicas=replicas))
    wait_until(lambda: len(ready_pods(cluster, prefix=f"{name}-")) == replicas, timeout=15,
               message=f"the pods of StatefulSet {name} never became ready")
    obj: dict[str, Any] = cluster.get(APPS, "statefulsets", "shop", name)
    return obj


def writes(requests: list[Any]) -> list[Any]:
    """The requests that could change something (anything but reads)."""
    return [r for r in requests if r.method not in ("GET", "HEAD")]


def landed(requests: list[Any]) -> list[Any]:
    """The writes that the server accepted (a 409 from a race with the controllers changed nothing)."""
    return [r for r in writes(requests) if r.status is not None and 200 <= r.status < 300]


def since(cluster: Any, mark: int) -> list[Any]:
    """The operator's requests after `mark = len(cluster.requests)`."""
    return [r for r in cluster.requests[mark:] if r.user_agent == OPERATOR]


def conflict_once(cluster: Any, *criteria: Any, meanwhile: Any = None) -> None:
    """Answer the next request matching `criteria` with a 409 Conflict (KMock's DSL on the emulator);
    `meanwhile(request)` runs first, e.g. to make the concurrent change that the 409 stands for."""
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
              "message": "Operation cannot be fulfilled: the object has been modified; please apply your changes "
                         "to the latest version and try again"}
    reaction = cluster.handler[criteria][:1] << 409 << status
    if meanwhile is not None:
        reaction << meanwhile


def lands_then(cluster: Any, *criteria: Any, status: int | None = None, late: float | None = None,
               times: int | None = 1) -> list[Any]:
    """The next request (the next `times`; None: every one) matching `criteria` is carried out by
    the emulator (a write lands), and then answered with `status` (e.g. 504 Gateway Timeout) instead
    of its result, or only after `late` seconds (past the client's timeout: it sees a read timeout).
    Returns the list that the requests carried out are appended to."""
    handled: list[Any] = []

    async def react(request: Any) -> Any:
        served = await cluster.handler.emulate(request)
        handled.append(request)
        if late is not None:
            await asyncio.sleep(late)  # (cancelled when the client gives up and disconnects)
        if status is not None:
            return kmock.Response(status=status, payload={
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                "reason": "Timeout", "message": "the server was unable to return a response in the time allotted"})
        return served.body

    reaction = cluster.handler[criteria] if times is None else cluster.handler[criteria][:times]
    reaction << react
    return handled
