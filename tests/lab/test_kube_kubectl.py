"""The real kubectl against the emulator: get (tables), apply, rollout restart/undo, scale, events."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from homeostat.lab.kube import EmulatedCluster
from homeostat.lab.kube.tables import age, jsonpath

from .conftest import GADGET_CRD, WIDGET_CRD

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

WIDGET_YAML = """
apiVersion: lab.homeostat.io/v1
kind: Widget
metadata:
  name: w1
spec:
  target: api
  interval: 5m
"""
DEPLOYMENT_YAML = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: web:1
"""


@pytest.fixture
def lab() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(crds=[WIDGET_CRD, GADGET_CRD], pod_ready_delay=0.1) as emulated:
        yield emulated


def kubectl(lab: EmulatedCluster, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["kubectl", "--kubeconfig", str(lab.kubeconfig_path), *args], input=stdin,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def _wait_ready(lab: EmulatedCluster, replicas: int) -> None:
    deadline = time.monotonic() + 30  # generous: the controllers share a loaded CI machine
    while time.monotonic() < deadline:
        status = (lab.get("apps/v1", "Deployment", "default", "web") or {}).get("status") or {}
        if status.get("readyReplicas") == replicas == status.get("replicas") == status.get("updatedReplicas"):
            return
        time.sleep(0.05)
    raise AssertionError("deployment did not become ready")


def test_apply_and_get_custom_resources_with_printer_columns(lab):
    assert "created" in kubectl(lab, "apply", "--validate=false", "-f", "-", stdin=WIDGET_YAML)
    assert "unchanged" in kubectl(lab, "apply", "--validate=false", "-f", "-", stdin=WIDGET_YAML)
    lab.store.patch(lab.store.rt("lab.homeostat.io/v1", "widgets"), "default", "w1",
                    {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                    "application/merge-patch+json", subresource="status")
    header, row = _rows(kubectl(lab, "get", "wdg"))
    assert header == ["NAME", "INTERVAL", "READY", "AGE"]
    assert row[:3] == ["w1", "5m", "True"]
    assert kubectl(lab, "get", "widget", "w1", "-o", "jsonpath={.spec.mode}") == "observe"
    assert 'widget.lab.homeostat.io "w1" deleted' in kubectl(lab, "delete", "wdg", "w1")


def test_deployment_workflow(lab):
    kubectl(lab, "apply", "--validate=false", "-f", "-", stdin=DEPLOYMENT_YAML)
    _wait_ready(lab, 2)
    header, row = _rows(kubectl(lab, "get", "deploy"))
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] and row[:4] == ["web", "2/2", "2", "2"]
    pods = _rows(kubectl(lab, "get", "pods"))[1:]
    assert len(pods) == 2 and all(p[1:3] == ["1/1", "Running"] for p in pods)

    assert "restarted" in kubectl(lab, "rollout", "restart", "deployment", "web")
    assert "successfully rolled out" in kubectl(lab, "rollout", "status", "deployment", "web", "--timeout=20s")
    deployment = lab.get("apps/v1", "Deployment", "default", "web")
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert "kubectl.kubernetes.io/restartedAt" in deployment["spec"]["template"]["metadata"]["annotations"]

    assert "scaled" in kubectl(lab, "scale", "deployment", "web", "--replicas=3")
    _wait_ready(lab, 3)
    assert "rolled back" in kubectl(lab, "rollout", "undo", "deployment", "web")
    assert "successfully rolled out" in kubectl(lab, "rollout", "status", "deployment", "web", "--timeout=20s")
    deployment = lab.get("apps/v1", "Deployment", "default", "web")
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert "annotations" not in deployment["spec"]["template"]["metadata"]


def test_get_events_and_namespaces(lab):
    lab.apply({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "default"},
               "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default"},
               "reason": "Remediated", "message": "restarted web", "type": "Normal"})
    header, row = _rows(kubectl(lab, "get", "events"))
    assert header == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert row[2:] == ["Remediated", "widget/w1", "restarted", "web"]
    namespaces = {r[0]: r[1] for r in _rows(kubectl(lab, "get", "ns"))[1:]}
    assert namespaces["default"] == "Active"
    assert "Forbidden" not in kubectl(lab, "api-resources")


def test_jsonpath_subset_and_ages():
    obj = {"a": {"b": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]}}
    assert jsonpath(obj, '.a.b[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath(obj, ".a.b[1].type") == ["Other"]
    assert jsonpath(obj, ".a.b[*].type") == ["Ready", "Other"]
    assert jsonpath(obj, ".a.missing") == []
    assert age(None) == "<unknown>"
    assert age("2000-01-01T00:00:00Z").endswith("d")


def test_cli_loads_crds_from_a_directory(tmp_path):
    import yaml

    from homeostat.lab.kube.__main__ import load_crds

    (tmp_path / "crds.yaml").write_text(yaml.safe_dump_all([WIDGET_CRD, {"kind": "ConfigMap"}, GADGET_CRD]))
    (tmp_path / "notes.txt").write_text("ignored")
    assert [c["metadata"]["name"] for c in load_crds(tmp_path)] == [
        "widgets.lab.homeostat.io", "gadgets.lab.homeostat.io"]


def test_kubectl_create_from_file_works_and_protobuf_is_refused_clearly(lab):
    assert "created" in kubectl(lab, "create", "--validate=false", "-f", "-", stdin=DEPLOYMENT_YAML)
    _wait_ready(lab, 2)
    assert _rows(kubectl(lab, "get", "deployment", "web"))[1][1] == "2/2"
    # Typed generators (`kubectl create deployment NAME`) send protobuf, which is not emulated.
    result = subprocess.run(["kubectl", "--kubeconfig", str(lab.kubeconfig_path), "create", "deployment", "other",
                             "--image=nginx:1.27"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "accepts only application/json" in result.stderr
