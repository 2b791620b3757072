"""PATCH by content type: RFC 7386 merge, RFC 6902 JSON patch and strategic merge patch."""

from __future__ import annotations

import pytest

from homeostat.lab.kube.errors import ApiError
from homeostat.lab.kube.patching import json_patch, merge_patch, strategic_merge_patch

from .conftest import JSON_PATCH, MERGE, SMP, WIDGETS, widget


def test_merge_patch_rfc7386():
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert target["c"] == {"d": "e", "f": "g"}  # not mutated


def test_json_patch_rfc6902_operations():
    doc = {"a": {"b": [1, 2]}, "x": "y"}
    result = json_patch(doc, [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "replace", "path": "/x", "value": "z"},
        {"op": "copy", "from": "/x", "path": "/w"},
        {"op": "move", "from": "/w", "path": "/v"},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "test", "path": "/v", "value": "z"},
        {"op": "add", "path": "/k~1s", "value": 1},
    ])
    assert result == {"a": {"b": [0, 2, 3]}, "x": "z", "v": "z", "k/s": 1}
    with pytest.raises(ApiError) as err:
        json_patch(doc, [{"op": "test", "path": "/x", "value": "nope"}])
    assert err.value.code == 422
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "remove", "path": "/missing"}])


def test_strategic_merge_patch_merges_keyed_lists():
    target = {"spec": {"containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80, "name": "http"}]},
        {"name": "sidecar", "image": "side:1"}],
        "tolerations": [{"key": "a"}]}}
    patch = {"spec": {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}],
                                      "ports": [{"containerPort": 443}]}],
                      "tolerations": [{"key": "b"}]}}
    result = strategic_merge_patch(target, patch)
    app, sidecar = result["spec"]["containers"]
    assert app["image"] == "app:2" and sidecar["image"] == "side:1"
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert [p["containerPort"] for p in app["ports"]] == [80, 443]
    assert result["spec"]["tolerations"] == [{"key": "b"}]  # no merge key: replaced


def test_strategic_merge_patch_directives():
    target = {"containers": [{"name": "a"}, {"name": "b"}], "finalizers": ["x"], "m": {"k": 1, "j": 2}}
    patch = {"containers": [{"name": "a", "$patch": "delete"}], "finalizers": ["y"],
             "m": {"$patch": "replace", "z": 0}, "$setElementOrder/containers": [{"name": "b"}]}
    assert strategic_merge_patch(target, patch) == {
        "containers": [{"name": "b"}], "finalizers": ["x", "y"], "m": {"z": 0}}
    assert strategic_merge_patch({"finalizers": ["x", "y"]}, {"$deleteFromPrimitiveList/finalizers": ["x"]}) == {
        "finalizers": ["y"]}


def test_patch_content_types_over_http(http):
    http.post(WIDGETS, json=widget("w1", tags=["a", "b"]))
    merged = http.patch(f"{WIDGETS}/w1", json={"spec": {"tags": ["c"]}}, headers=MERGE).json()
    assert merged["spec"]["tags"] == ["c"]
    patched = http.patch(f"{WIDGETS}/w1", json=[{"op": "add", "path": "/spec/tags/-", "value": "d"}],
                         headers=JSON_PATCH).json()
    assert patched["spec"]["tags"] == ["c", "d"]
    failed = http.patch(f"{WIDGETS}/w1", json=[{"op": "test", "path": "/spec/target", "value": "no"}],
                        headers=JSON_PATCH)
    assert failed.status_code == 422
    assert http.patch(f"{WIDGETS}/w1", json={"spec": {}}, headers=SMP).status_code == 415  # CRs: not supported
    assert http.patch(f"{WIDGETS}/w1", content=b"spec: {}", headers={
        "Content-Type": "application/apply-patch+yaml"}).status_code == 415


def test_strategic_merge_patch_on_deployment_over_http(http):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                      "metadata": {"labels": {"app": "web"}},
                      "spec": {"containers": [{"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}]},
                                              {"name": "side", "image": "side:1"}]}}}}
    assert http.post("/apis/apps/v1/namespaces/default/deployments", json=deployment).status_code == 201
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
                                   "spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}}}}
    result = http.patch("/apis/apps/v1/namespaces/default/deployments/web", json=patch, headers=SMP).json()
    containers = result["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "side"]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert result["metadata"]["generation"] == 2
