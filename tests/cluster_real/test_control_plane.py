"""The real control plane (``homeostat.lab.cluster``): etcd, kube-apiserver, controller-manager,
scheduler and kwok, built from Go modules. Opt-in: runs only when HOMEOSTAT_CONTROL_PLANE=1 and
the binaries are built (``python -m homeostat.lab.cluster build``); the default suite skips it
and never builds anything."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from homeostat.lab.cluster import build
from homeostat.lab.cluster.control_plane import ControlPlane, group_alive

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]

if os.environ.get("HOMEOSTAT_CONTROL_PLANE") != "1":
    pytest.skip("the real control plane is opt-in: set HOMEOSTAT_CONTROL_PLANE=1", allow_module_level=True)
if build.built_bin_dir() is None:
    pytest.skip(
        f"the control plane binaries are not built (no {build.bin_dir()}): "
        "run `python -m homeostat.lab.cluster build`",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow


def eventually(predicate: Callable[[], T | None], *, timeout: float = 60.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not after {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    with ControlPlane(nodes=2) as control_plane:
        print(f"control plane up in {control_plane.startup_seconds:.1f}s")
        yield control_plane


def get_json(cluster: ControlPlane, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", "-o", "json", *args).stdout)


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: example.com/web:1.0}]
"""


def ready_pods(cluster: ControlPlane, image: str) -> list[dict[str, Any]]:
    pods = get_json(cluster, "pods", "-n", "default", "-l", "app=web")["items"]
    return [
        pod
        for pod in pods
        if pod["spec"]["containers"][0]["image"] == image
        and pod["metadata"].get("deletionTimestamp") is None
        and any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))
    ]


def revisions(cluster: ControlPlane) -> dict[str, str]:
    """image -> revision of each ReplicaSet of `web`."""
    sets = get_json(cluster, "replicasets", "-n", "default", "-l", "app=web")["items"]
    return {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        for rs in sets
    }


def test_a_deployment_rolls_out_and_back_for_real(cluster: ControlPlane) -> None:
    cluster.kubectl("create", "-f", "-", input=DEPLOYMENT)

    pods = eventually(lambda: len(ready_pods(cluster, "example.com/web:1.0")) == 2 and
                      ready_pods(cluster, "example.com/web:1.0"), what="2 Ready pods (controller-manager + kwok)")
    assert {pod["spec"]["nodeName"] for pod in pods} <= set(cluster.node_names)  # the scheduler bound them
    sets = get_json(cluster, "replicasets", "-n", "default", "-l", "app=web")["items"]
    assert len(sets) == 1 and sets[0]["metadata"]["ownerReferences"][0]["name"] == "web"

    cluster.kubectl("set", "image", "deployment/web", "app=example.com/web:2.0", "-n", "default")
    cluster.kubectl("rollout", "status", "deployment/web", "-n", "default", "--timeout=90s")
    assert revisions(cluster) == {"example.com/web:1.0": "1", "example.com/web:2.0": "2"}
    assert len(ready_pods(cluster, "example.com/web:2.0")) == 2
    history = cluster.kubectl("rollout", "history", "deployment/web", "-n", "default").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]

    cluster.kubectl("rollout", "undo", "deployment/web", "-n", "default")
    cluster.kubectl("rollout", "status", "deployment/web", "-n", "default", "--timeout=90s")
    # The old ReplicaSet is reused and re-stamped with the next revision.
    assert revisions(cluster) == {"example.com/web:1.0": "3", "example.com/web:2.0": "2"}
    deployment = get_json(cluster, "deployment/web", "-n", "default")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "example.com/web:1.0"
    eventually(lambda: len(ready_pods(cluster, "example.com/web:1.0")) == 2, what="2 Ready pods of 1.0 again")


def test_a_stale_resource_version_is_a_real_409(cluster: ControlPlane) -> None:
    with cluster.client() as client:
        created = client.post(
            "/api/v1/namespaces/default/configmaps",
            json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stale"}, "data": {"a": "1"}},
        )
        assert created.status_code == 201, created.text
        stale = created.json()
        fresh = {**stale, "data": {"a": "2"}}
        assert client.put("/api/v1/namespaces/default/configmaps/stale", json=fresh).status_code == 200
        conflict = client.put("/api/v1/namespaces/default/configmaps/stale", json={**stale, "data": {"a": "3"}})
    assert conflict.status_code == 409, conflict.text
    body = conflict.json()
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_the_crds_apply_and_an_invalid_policy_is_a_422(cluster: ControlPlane) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        name = yaml.safe_load(crd.read_text())["metadata"]["name"]
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    cluster.kubectl("create", "namespace", "shop")
    example = yaml.safe_load((ROOT / "examples" / "checkout-latency.yaml").read_text())
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(example))  # the real schema takes our example

    invalid = {**example, "metadata": {"name": "bad", "namespace": "shop"},
               "spec": {**example["spec"], "interval": "30 seconds"}}
    with cluster.client() as client:
        refused = client.post("/apis/homeostat.dev/v1alpha1/namespaces/shop/anomalypolicies", json=invalid)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["reason"] == "Invalid"
    assert [cause["field"] for cause in body["details"]["causes"]] == ["spec.interval"]


def test_a_service_account_bound_to_nothing_gets_403(cluster: ControlPlane, tmp_path: Path) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", "default")
    token = cluster.kubectl("create", "token", "nobody", "-n", "default").stdout.strip()
    kubeconfig = cluster.token_kubeconfig(token, tmp_path / "nobody.kubeconfig")

    denied = cluster.kubectl("get", "deployments", "-n", "default", kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0
    assert 'User "system:serviceaccount:default:nobody" cannot list resource "deployments"' in denied.stderr
    with cluster.client(token=token) as client:
        response = client.get("/apis/apps/v1/namespaces/default/deployments")
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "Forbidden"
    can_i = cluster.kubectl("auth", "can-i", "list", "deployments", "-n", "default", kubeconfig=kubeconfig,
                            check=False)
    assert can_i.stdout.strip() == "no"


def test_nothing_is_left_behind() -> None:
    with ControlPlane(nodes=1) as control_plane:
        pids = control_plane.pids
        workdir = control_plane.workdir
        names = [process.name for process in control_plane.processes]
        assert names == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
        assert all(group_alive(pid) for pid in pids)
    assert not any(group_alive(pid) for pid in pids)
    assert not workdir.exists()
    leftovers = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(workdir).encode() in cmdline:
                leftovers.append((proc.name, cmdline.replace(b"\0", b" ").decode(errors="replace")))
    assert leftovers == []
