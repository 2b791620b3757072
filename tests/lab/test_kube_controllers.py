"""The built-in workload controllers: Deployments, ReplicaSets, Pods, StatefulSets, /scale."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from homeostat.lab.kube import EmulatedCluster
from homeostat.lab.kube.controllers import REVISION

from .conftest import MERGE, SMP

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture
def lab() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(pod_ready_delay=0.1) as emulated:
        yield emulated


def deployment(image: str, replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}}


def _until(predicate, timeout: float = 30.0):  # generous: the controllers share a loaded CI machine
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("the controllers did not converge in time")


def _rollout_done(lab: EmulatedCluster, replicas: int):
    d = lab.get("apps/v1", "Deployment", "default", "web")
    status = d.get("status") or {}
    pods = [p for p in lab.list("v1", "pods", "default") if not p["metadata"].get("deletionTimestamp")]
    done = (status.get("observedGeneration") == d["metadata"]["generation"]
            and status.get("updatedReplicas") == status.get("readyReplicas") == status.get("replicas") == replicas
            and len(pods) == replicas)
    return d if done else None


def _replicasets(lab):
    return {rs["metadata"]["name"]: rs for rs in lab.list("apps/v1", "ReplicaSet", "default")}


def test_deployment_rollout_revisions_and_rollback(lab):
    lab.apply(deployment("web:1"))
    first = _until(lambda: _rollout_done(lab, 2))
    assert first["metadata"]["annotations"][REVISION] == "1"
    conditions = {c["type"]: c for c in first["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    (rs1_name, rs1), = _replicasets(lab).items()
    assert rs1_name.startswith("web-") and rs1["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]
    pod_hash = rs1["metadata"]["labels"]["pod-template-hash"]
    for pod in lab.list("v1", "pods", "default"):
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
        assert pod["status"]["phase"] == "Running"
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
        assert pod["metadata"]["ownerReferences"][0]["name"] == rs1_name

    lab.apply(deployment("web:2"))
    second = _until(lambda: (d := _rollout_done(lab, 2)) and d["metadata"]["annotations"][REVISION] == "2" and d)
    replicasets = _replicasets(lab)
    assert replicasets[rs1_name]["spec"]["replicas"] == 0
    (rs2_name,) = set(replicasets) - {rs1_name}
    assert replicasets[rs2_name]["metadata"]["annotations"][REVISION] == "2"
    assert second["status"]["observedGeneration"] == 2

    lab.apply(deployment("web:1"))  # a rollback reuses the old ReplicaSet with the next revision
    _until(lambda: (d := _rollout_done(lab, 2)) and d["metadata"]["annotations"][REVISION] == "3")
    replicasets = _replicasets(lab)
    assert set(replicasets) == {rs1_name, rs2_name}
    assert replicasets[rs1_name]["metadata"]["annotations"][REVISION] == "3"
    assert replicasets[rs1_name]["spec"]["replicas"] == 2 and replicasets[rs2_name]["spec"]["replicas"] == 0


def test_deleted_pods_are_recreated_and_scale_subresource(lab):
    lab.apply(deployment("web:1", replicas=2))
    _until(lambda: _rollout_done(lab, 2))
    victim = lab.list("v1", "pods", "default")[0]["metadata"]["name"]
    lab.delete("v1", "pods", "default", victim)
    _until(lambda: (pods := lab.list("v1", "pods", "default")) and len(pods) == 2
           and victim not in {p["metadata"]["name"] for p in pods})

    with httpx.Client(base_url=lab.url) as http:
        scale = http.get(f"{DEPLOYMENTS}/web/scale").json()
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
        assert scale["status"]["selector"] == "app=web"
        assert http.patch(f"{DEPLOYMENTS}/web/scale", json={"spec": {"replicas": 4}},
                          headers=MERGE).status_code == 200
        _until(lambda: _rollout_done(lab, 4))
        scale["spec"]["replicas"] = 1
        assert http.put(f"{DEPLOYMENTS}/web/scale", json=scale).status_code == 409  # stale resourceVersion
        del scale["metadata"]["resourceVersion"]
        assert http.put(f"{DEPLOYMENTS}/web/scale", json=scale).json()["spec"]["replicas"] == 1
        _until(lambda: _rollout_done(lab, 1))
        restart = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "x"}}}}}
        http.patch(f"{DEPLOYMENTS}/web", json=restart, headers=SMP)
        _until(lambda: (d := _rollout_done(lab, 1)) and d["metadata"]["annotations"][REVISION] == "2")


def test_deleting_a_deployment_collects_its_replicasets_and_pods(lab):
    lab.apply(deployment("web:1"))
    _until(lambda: _rollout_done(lab, 2))
    lab.delete("apps/v1", "deployments", "default", "web")
    assert lab.list("apps/v1", "replicasets") == [] and lab.list("v1", "pods") == []


def test_statefulset_revisions_and_ordered_pods(lab):
    def sts(image: str, replicas: int = 3) -> dict:
        return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"},
                "spec": {"replicas": replicas, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                         "template": {"metadata": {"labels": {"app": "db"}},
                                      "spec": {"containers": [{"name": "db", "image": image}]}}}}

    def converged(replicas: int, revision: int):
        s = lab.get("apps/v1", "StatefulSet", "default", "db").get("status") or {}
        crs = {c["metadata"]["name"]: c["revision"] for c in lab.list("apps/v1", "ControllerRevision", "default")}
        ok = (s.get("readyReplicas") == replicas == s.get("updatedReplicas")
              and s.get("currentRevision") == s.get("updateRevision") and crs.get(s.get("updateRevision")) == revision)
        return s if ok else None

    lab.apply(sts("db:1"))
    status = _until(lambda: converged(3, 1))
    names = sorted(p["metadata"]["name"] for p in lab.list("v1", "pods", "default"))
    assert names == ["db-0", "db-1", "db-2"]
    pod = lab.get("v1", "pods", "default", "db-0")
    assert pod["metadata"]["labels"]["controller-revision-hash"] == status["updateRevision"]
    lab.apply(sts("db:2"))
    status = _until(lambda: converged(3, 2))
    for name in names:
        assert lab.get("v1", "pods", "default", name)["spec"]["containers"][0]["image"] == "db:2"
    lab.apply(sts("db:2", replicas=1))
    _until(lambda: converged(1, 2))
    assert [p["metadata"]["name"] for p in lab.list("v1", "pods", "default")] == ["db-0"]


def test_controllers_can_be_disabled():
    with EmulatedCluster(controllers=False) as quiet:
        quiet.apply(deployment("web:1"))
        time.sleep(0.3)
        assert quiet.list("apps/v1", "replicasets") == []
