"""Finalizers, deletionTimestamp, ownerReference garbage collection and namespace deletion."""

from __future__ import annotations

import json

from .conftest import JSON_PATCH, MERGE, WIDGETS, widget

CMS = "/api/v1/namespaces/default/configmaps"


def test_finalizers_hold_the_object_until_removed(http):
    body = widget("w1")
    body["metadata"]["finalizers"] = ["lab.homeostat.io/guard"]
    http.post(WIDGETS, json=body)
    rv = http.get(WIDGETS).json()["metadata"]["resourceVersion"]

    deleted = http.delete(f"{WIDGETS}/w1")
    assert deleted.status_code == 200
    assert deleted.json()["metadata"]["deletionTimestamp"]
    held = http.get(f"{WIDGETS}/w1").json()
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["generation"] == 2

    adding = http.patch(f"{WIDGETS}/w1", json={"metadata": {"finalizers": ["lab.homeostat.io/guard", "new"]}},
                        headers=MERGE)
    assert adding.status_code == 422  # no new finalizers while deleting
    http.patch(f"{WIDGETS}/w1", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert http.get(f"{WIDGETS}/w1").status_code == 404

    with http.stream("GET", WIDGETS, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "1"}) as r:
        types = [json.loads(line)["type"] for line in r.iter_lines() if line]
    assert types == ["MODIFIED", "DELETED"]


def test_delete_without_finalizers_is_immediate_and_missing_is_404(http):
    http.post(WIDGETS, json=widget("w1"))
    assert http.delete(f"{WIDGETS}/w1").status_code == 200
    assert http.get(f"{WIDGETS}/w1").status_code == 404
    assert http.delete(f"{WIDGETS}/w1").status_code == 404


def test_delete_preconditions(http):
    created = http.post(WIDGETS, json=widget("w1")).json()
    response = http.request("DELETE", f"{WIDGETS}/w1", json={"preconditions": {"uid": "other"}})
    assert response.status_code == 409
    response = http.request("DELETE", f"{WIDGETS}/w1", json={"preconditions": {"uid": created["metadata"]["uid"]}})
    assert response.status_code == 200


def _owned(name, owner):
    return {"metadata": {"name": name, "ownerReferences": [
        {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
         "uid": owner["metadata"]["uid"], "controller": True}]}}


def test_dependents_are_garbage_collected_with_their_owner(http):
    owner = http.post(WIDGETS, json=widget("w1")).json()
    http.post(CMS, json=_owned("child", owner))
    grandchild_owner = http.get(f"{CMS}/child").json()
    http.post(CMS, json=_owned("grandchild", grandchild_owner))
    http.post(CMS, json={"metadata": {"name": "stranger"}})
    http.delete(f"{WIDGETS}/w1")
    names = [i["metadata"]["name"] for i in http.get(CMS).json()["items"]]
    assert names == ["stranger"]


def test_orphan_propagation_keeps_dependents(http):
    owner = http.post(WIDGETS, json=widget("w1")).json()
    http.post(CMS, json=_owned("child", owner))
    http.delete(f"{WIDGETS}/w1", params={"propagationPolicy": "Orphan"})
    child = http.get(f"{CMS}/child").json()
    assert "ownerReferences" not in child["metadata"]


def test_namespace_deletion_removes_its_content(http):
    http.post("/api/v1/namespaces", json={"metadata": {"name": "doomed"}})
    http.post("/api/v1/namespaces/doomed/configmaps", json={"metadata": {"name": "c"}})
    guarded = widget("w", namespace="doomed")
    guarded["metadata"]["finalizers"] = ["keep"]
    http.post("/apis/lab.homeostat.io/v1/namespaces/doomed/widgets", json=guarded)
    http.delete("/api/v1/namespaces/doomed")
    ns = http.get("/api/v1/namespaces/doomed").json()
    assert ns["status"]["phase"] == "Terminating"
    assert http.get("/api/v1/namespaces/doomed/configmaps").json()["items"] == []
    assert http.post("/api/v1/namespaces/doomed/configmaps", json={"metadata": {"name": "d"}}).status_code == 403
    http.patch("/apis/lab.homeostat.io/v1/namespaces/doomed/widgets/w",
               json=[{"op": "remove", "path": "/metadata/finalizers"}], headers=JSON_PATCH)
    assert http.get("/api/v1/namespaces/doomed").status_code == 404


def test_delete_collection_with_selector(http):
    for name, labels in (("a", {"x": "1"}), ("b", {"x": "1"}), ("c", {})):
        http.post(CMS, json={"metadata": {"name": name, "labels": labels}})
    assert http.delete(CMS, params={"labelSelector": "x=1"}).status_code == 200
    assert [i["metadata"]["name"] for i in http.get(CMS).json()["items"]] == ["c"]
