"""deploy/: kustomize renders it, kubectl accepts it, the Kubernetes schemas validate it, the
Deployment is locked down, and the examples are valid AnomalyPolicies for the CRDs it installs.

`kubectl apply --dry-run=client` still needs an API server for discovery (kubectl 1.32 asks
/api and /apis to map kinds to resources), so it runs against the emulated one, with
`--validate=false` because the emulator serves no OpenAPI: the schema validation is done here
instead, offline, by kubernetes-validate (strict: unknown fields are errors).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeostat.lab.harness import wait_until
from homeostat.lab.kube import EmulatedCluster
from homeostat.operator.command import add_arguments

NAMESPACE = "homeostat-system"
# Oldest Kubernetes we support (the kubernetes client's floor in pyproject) and the emulator's.
KUBERNETES_VERSIONS = ("1.29.0", "1.32.0")


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kubectl(cluster: EmulatedCluster, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig_path))
    kubectl_path = shutil.which("kubectl")
    assert kubectl_path is not None
    return subprocess.run([kubectl_path, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


# --- what kustomize renders ---------------------------------------------------------------------


def test_kustomize_renders_everything(kustomized: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in kustomized)
    assert kinds == sorted([
        "Namespace", "CustomResourceDefinition", "CustomResourceDefinition", "ServiceAccount",
        "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", "Role", "RoleBinding",
        "Deployment", "Service", "PodDisruptionBudget",
    ])
    for obj in kustomized:
        if obj["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']} outside {NAMESPACE}"
    assert one(kustomized, "Namespace")["metadata"]["name"] == NAMESPACE


def test_deploy_crds_are_byte_identical_to_the_generated_ones(root: Path) -> None:
    generated = {p.name: p.read_bytes() for p in (root / "crds").glob("*.yaml")}
    copied = {p.name: p.read_bytes() for p in (root / "deploy" / "crds").glob("*.yaml")
              if p.name != "kustomization.yaml"}
    fix = "refresh with: cp crds/*.yaml deploy/crds/"
    assert generated, "crds/ is empty"
    assert sorted(copied) == sorted(generated), f"deploy/crds/ and crds/ hold different files; {fix}"
    stale = [name for name in generated if copied[name] != generated[name]]
    assert not stale, f"deploy/crds/ is stale for {stale}; {fix}"
    listed = yaml.safe_load((root / "deploy" / "crds" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(generated), "deploy/crds/kustomization.yaml must list every CRD"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(kustomized: list[dict[str, Any]], version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    for obj in kustomized:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} is invalid for Kubernetes {version}: "
                        f"{'.'.join(map(str, exc.path))}: {exc.message}")


# --- the operator's Deployment ------------------------------------------------------------------


def test_deployment_is_locked_down(kustomized: list[dict[str, Any]]) -> None:
    deployment = one(kustomized, "Deployment")
    spec = deployment["spec"]
    # Two replicas, one acting (leader election): a rolling update never has both old pods down.
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == one(kustomized, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["topologySpreadConstraints"]
    for constraint in pod["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and not security["capabilities"].get("add")
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "a read-only root needs a writable /tmp"
    assert ":" in container["image"] and not container["image"].endswith(":latest")


def test_deployment_args_and_probes_match_the_operator(kustomized: list[dict[str, Any]]) -> None:
    [container] = one(kustomized, "Deployment")["spec"]["template"]["spec"]["containers"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(container["args"])  # the image's entrypoint is `homeostat run`
    assert args.all_namespaces and args.standalone and not args.dev and args.kubeconfig is None
    assert args.leader_election is True, "two replicas without leader election would both act"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": args.metrics_port, "healthz": args.liveness_port} == {"metrics": 9464, "healthz": 8080}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and ports[get["port"]] == 8080, probe
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HOMEOSTAT_PROMETHEUS_URL"].startswith("http")
    assert container["env"][0]["name"] == "HOMEOSTAT_PROMETHEUS_URL"  # docs/install.md patches env/0
    downward = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    assert downward["POD_NAME"] == "metadata.name" and downward["POD_NAMESPACE"] == "metadata.namespace"


def test_service_and_pdb_select_the_operator_pod(kustomized: list[dict[str, Any]]) -> None:
    deployment = one(kustomized, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    service = one(kustomized, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["port"] == 9464 and port["targetPort"] in {p["name"] for p in container["ports"]}
    pdb = one(kustomized, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1, "one pod at a time, and minAvailable would block drains at 1"


# --- kubectl against the emulated API server ----------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_apply_k_dry_run_then_for_real(root: Path) -> None:
    # Not the `cluster` fixture: kubectl's requests are not the operator's (test_rbac.py).
    with EmulatedCluster(pod_ready_delay=0.2) as cluster:
        dry = kubectl(cluster, "apply", "-k", "deploy/", "--dry-run=client", "--validate=false", cwd=root)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.count("(dry run)") == 13
        assert cluster.list("apps/v1", "deployments", NAMESPACE) == []
        real = kubectl(cluster, "apply", "-k", "deploy/", "--validate=false", cwd=root)
        assert real.returncode == 0, real.stderr
        wait_until(lambda: (cluster.get("apps/v1", "deployments", NAMESPACE, "homeostat-operator") or {})
                   .get("status", {}).get("availableReplicas") == 2, timeout=20,
                   message="the operator Deployment never became available in the emulator")
        crds = {c["metadata"]["name"] for c in cluster.list("apiextensions.k8s.io/v1", "customresourcedefinitions")}
        assert crds == {"anomalypolicies.homeostat.dev", "incidents.homeostat.dev"}
        # Idempotent. (kubectl always re-sends a PDB's selector, whose patch strategy is `replace`,
        # so a PDB reports "configured" on every apply, against real clusters too.)
        again = kubectl(cluster, "apply", "-k", "deploy/", "--validate=false", cwd=root)
        assert again.returncode == 0 and "created" not in again.stdout, again.stdout + again.stderr
        assert again.stdout.count("unchanged") >= 12, again.stdout


# --- the examples -------------------------------------------------------------------------------


def example_paths() -> list[Path]:
    return sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.name)
def test_example_is_accepted_by_the_installed_crds(root: Path, path: Path) -> None:
    crds = [yaml.safe_load(p.read_text()) for p in sorted((root / "deploy" / "crds").glob("*.homeostat.dev.yaml"))]
    with EmulatedCluster(crds=crds, controllers=False) as cluster:
        for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
            namespace = doc["metadata"].get("namespace")
            if namespace and cluster.get("v1", "namespaces", None, namespace) is None:
                cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            stored = cluster.apply(doc)  # raises on a schema violation, naming the field
            assert stored["metadata"]["uid"]
