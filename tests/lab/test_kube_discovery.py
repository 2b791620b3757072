"""Discovery: /api, /apis, group and resource lists, unknown paths, CRDs registered at runtime."""

from __future__ import annotations

import copy

import kubernetes

from .conftest import GADGET_CRD, WIDGET_CRD


def _resources(http, path):
    response = http.get(path)
    assert response.status_code == 200
    return {r["name"]: r for r in response.json()["resources"]}


def test_core_v1_lists_builtins_with_scope_and_short_names(http):
    resources = _resources(http, "/api/v1")
    assert resources["namespaces"]["namespaced"] is False
    assert resources["namespaces"]["kind"] == "Namespace"
    assert "ns" in resources["namespaces"]["shortNames"]
    assert resources["pods"]["namespaced"] is True
    assert {"get", "list", "watch", "create", "patch", "update", "delete"} <= set(resources["pods"]["verbs"])
    assert resources["pods/status"]["verbs"] == ["get", "patch", "update"]
    for name in ("services", "secrets", "configmaps", "events", "serviceaccounts"):
        assert name in resources


def test_groups_and_versions(http):
    groups = {g["name"]: g for g in http.get("/apis").json()["groups"]}
    assert groups["autoscaling"]["preferredVersion"]["version"] == "v2"
    for name in ("apps", "events.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io", "lab.homeostat.io",
                 "policy", "rbac.authorization.k8s.io"):
        assert name in groups
    rbac = {r["name"]: r["namespaced"] for r in http.get("/apis/rbac.authorization.k8s.io/v1").json()["resources"]}
    assert rbac == {"clusterroles": False, "clusterrolebindings": False, "roles": True, "rolebindings": True}
    group = http.get("/apis/apps").json()
    assert group["kind"] == "APIGroup" and group["versions"][0]["groupVersion"] == "apps/v1"
    assert http.get("/api").json()["versions"] == ["v1"]


def test_scale_subresource_is_an_autoscaling_v1_scale(http):
    resources = _resources(http, "/apis/apps/v1")
    assert resources["deployments/scale"]["kind"] == "Scale"
    assert (resources["deployments/scale"]["group"], resources["deployments/scale"]["version"]) == (
        "autoscaling", "v1")
    assert {"replicasets", "statefulsets", "daemonsets", "controllerrevisions"} <= set(resources)


def test_crd_names_scope_and_subresources_are_served(http):
    resources = _resources(http, "/apis/lab.homeostat.io/v1")
    widgets = resources["widgets"]
    assert (widgets["kind"], widgets["singularName"], widgets["namespaced"]) == ("Widget", "widget", True)
    assert widgets["shortNames"] == ["wdg"] and widgets["categories"] == ["homeostat"]
    assert "widgets/status" in resources and "widgets/scale" in resources
    assert resources["gadgets"]["namespaced"] is False
    crds = _resources(http, "/apis/apiextensions.k8s.io/v1")
    assert crds["customresourcedefinitions"]["namespaced"] is False


def test_unknown_resources_and_groups_are_404_not_500(http):
    for path in ("/api/v1/nothings", "/apis/nothing.io/v1", "/apis/nothing.io", "/apis/apps/v9",
                 "/apis/apps/v1/namespaces/default/nothings", "/openapi/v2", "/openapi/v3"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert response.json()["kind"] == "Status"


def test_crd_posted_at_runtime_is_served_and_removed(http, cluster):
    crd = copy.deepcopy(WIDGET_CRD)
    crd["metadata"]["name"] = "gizmos.lab.homeostat.io"
    crd["spec"]["names"] = {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"}
    response = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    assert response.status_code == 201
    conditions = {c["type"]: c["status"] for c in response.json()["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert "gizmos" in _resources(http, "/apis/lab.homeostat.io/v1")
    assert http.post("/apis/lab.homeostat.io/v1/namespaces/default/gizmos",
                     json={"apiVersion": "lab.homeostat.io/v1", "kind": "Gizmo", "metadata": {"name": "g"},
                           "spec": {"target": "x"}}).status_code == 201
    assert cluster.handler.resources["lab.homeostat.io/v1/gizmos"].kind == "Gizmo"  # KMock's registry too

    assert http.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gizmos.lab.homeostat.io"
                       ).status_code == 200
    assert "gizmos" not in _resources(http, "/apis/lab.homeostat.io/v1")
    assert http.get("/apis/lab.homeostat.io/v1/namespaces/default/gizmos").status_code == 404


def test_crd_name_must_match_its_names(http):
    crd = copy.deepcopy(GADGET_CRD)
    crd["metadata"]["name"] = "wrong.lab.homeostat.io"
    response = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    assert response.status_code == 422
    assert response.json()["details"]["causes"][0]["field"] == "metadata.name"


def test_official_client_discovers_and_reads_namespaces(api_client):
    core = kubernetes.client.CoreV1Api(api_client)
    assert core.read_namespace("default").status.phase == "Active"
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system"} <= names
    versions = kubernetes.client.ApisApi(api_client).get_api_versions()
    assert "apps" in {g.name for g in versions.groups}
