"""Object metadata, status codes, optimistic concurrency and the status/scale subresources."""

from __future__ import annotations

import kubernetes
import pytest

from .conftest import MERGE, WIDGETS, widget


def test_create_sets_server_metadata_and_answers_201(http):
    response = http.post(WIDGETS, json=widget("w1"))
    assert response.status_code == 201
    meta = response.json()["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0


def test_resource_versions_increase_globally_across_resources(http):
    rv1 = int(http.post(WIDGETS, json=widget("w1")).json()["metadata"]["resourceVersion"])
    rv2 = int(http.post("/api/v1/namespaces/default/configmaps",
                        json={"metadata": {"name": "c"}, "data": {}}).json()["metadata"]["resourceVersion"])
    rv3 = int(http.post(WIDGETS, json=widget("w2")).json()["metadata"]["resourceVersion"])
    assert rv1 < rv2 < rv3


def test_duplicate_is_409_already_exists(http):
    http.post(WIDGETS, json=widget("w1"))
    response = http.post(WIDGETS, json=widget("w1"))
    assert response.status_code == 409
    body = response.json()
    assert (body["kind"], body["reason"], body["details"]["name"]) == ("Status", "AlreadyExists", "w1")


def test_unknown_object_is_404_not_found_with_details(http):
    response = http.get(f"{WIDGETS}/missing")
    assert response.status_code == 404
    body = response.json()
    assert body["reason"] == "NotFound"
    assert body["details"] == {"name": "missing", "group": "lab.homeostat.io", "kind": "widgets"}
    assert body["message"] == 'widgets.lab.homeostat.io "missing" not found'


def test_list_carries_kind_api_version_and_resource_version(http):
    http.post(WIDGETS, json=widget("w1"))
    listing = http.get(WIDGETS).json()
    assert (listing["kind"], listing["apiVersion"]) == ("WidgetList", "lab.homeostat.io/v1")
    assert int(listing["metadata"]["resourceVersion"]) >= int(listing["items"][0]["metadata"]["resourceVersion"])
    assert http.get("/api/v1/namespaces").json()["kind"] == "NamespaceList"


def test_cluster_wide_list_and_cluster_scoped_objects(http):
    http.post("/api/v1/namespaces", json={"metadata": {"name": "other"}})
    http.post(WIDGETS, json=widget("w1"))
    http.post("/apis/lab.homeostat.io/v1/namespaces/other/widgets", json=widget("w2", namespace="other"))
    names = {i["metadata"]["name"] for i in http.get("/apis/lab.homeostat.io/v1/widgets").json()["items"]}
    assert names == {"w1", "w2"}
    gadget = {"apiVersion": "lab.homeostat.io/v1", "kind": "Gadget", "metadata": {"name": "g1"}}
    assert http.post("/apis/lab.homeostat.io/v1/gadgets", json=gadget).status_code == 201
    fetched = http.get("/apis/lab.homeostat.io/v1/gadgets/g1").json()
    assert "namespace" not in fetched["metadata"]
    assert http.get("/api/v1/namespaces/other").json()["metadata"]["name"] == "other"


def test_missing_namespace_is_404(http):
    response = http.post("/apis/lab.homeostat.io/v1/namespaces/nope/widgets", json=widget("w", namespace="nope"))
    assert response.status_code == 404
    assert response.json()["details"]["kind"] == "namespaces"


def test_generate_name(http):
    body = widget()
    body["metadata"] = {"generateName": "auto-"}
    first = http.post(WIDGETS, json=body).json()["metadata"]["name"]
    second = http.post(WIDGETS, json=body).json()["metadata"]["name"]
    assert first.startswith("auto-") and len(first) == len("auto-") + 5 and first != second
    del body["metadata"]["generateName"]
    response = http.post(WIDGETS, json=body)
    assert response.status_code == 422 and "name or generateName is required" in response.json()["message"]


def test_generation_bumps_only_on_spec_changes(http):
    http.post(WIDGETS, json=widget("w1"))
    patched = http.patch(f"{WIDGETS}/w1", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE).json()
    assert patched["metadata"]["generation"] == 1
    patched = http.patch(f"{WIDGETS}/w1/status", json={"status": {"phase": "Ok"}}, headers=MERGE).json()
    assert patched["metadata"]["generation"] == 1
    patched = http.patch(f"{WIDGETS}/w1", json={"spec": {"target": "other"}}, headers=MERGE).json()
    assert patched["metadata"]["generation"] == 2


def test_noop_write_keeps_resource_version(http):
    created = http.post(WIDGETS, json=widget("w1")).json()
    patched = http.patch(f"{WIDGETS}/w1", json={"spec": {"target": "api"}}, headers=MERGE).json()
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_status_subresource_separates_spec_and_status(http):
    body = widget("w1")
    body["status"] = {"phase": "Forged"}
    created = http.post(WIDGETS, json=body).json()
    assert "status" not in created  # create ignores status when the status subresource is on
    patched = http.patch(f"{WIDGETS}/w1/status", json={"status": {"phase": "Ok"}, "spec": {"target": "hack"},
                                                        "metadata": {"labels": {"x": "y"}}}, headers=MERGE).json()
    assert patched["status"] == {"phase": "Ok"}
    assert patched["spec"]["target"] == "api" and "labels" not in patched["metadata"]
    patched = http.patch(f"{WIDGETS}/w1", json={"status": {"phase": "Hacked"}, "spec": {"target": "new"}},
                         headers=MERGE).json()
    assert patched["status"] == {"phase": "Ok"} and patched["spec"]["target"] == "new"
    full = http.get(f"{WIDGETS}/w1").json()
    full["status"] = {"phase": "Replaced"}
    replaced = http.put(f"{WIDGETS}/w1/status", json=full).json()
    assert replaced["status"] == {"phase": "Replaced"}


def test_without_status_subresource_status_is_an_ordinary_field(http):
    gadget = {"apiVersion": "lab.homeostat.io/v1", "kind": "Gadget", "metadata": {"name": "g1"},
              "status": {"a": 1}}
    assert http.post("/apis/lab.homeostat.io/v1/gadgets", json=gadget).json()["status"] == {"a": 1}
    assert http.patch("/apis/lab.homeostat.io/v1/gadgets/g1/status", json={}, headers=MERGE).status_code == 404


def test_put_with_stale_resource_version_is_409_conflict(http):
    created = http.post(WIDGETS, json=widget("w1")).json()
    created["spec"]["target"] = "one"
    first = http.put(f"{WIDGETS}/w1", json=created)
    assert first.status_code == 200
    assert int(first.json()["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    created["spec"]["target"] = "two"  # still the old resourceVersion
    second = http.put(f"{WIDGETS}/w1", json=created)
    assert second.status_code == 409
    assert second.json()["reason"] == "Conflict"
    assert "the object has been modified" in second.json()["message"]


def test_put_without_resource_version_is_unconditional_and_missing_is_404(http):
    http.post(WIDGETS, json=widget("w1"))
    assert http.put(f"{WIDGETS}/w1", json=widget("w1", interval="2m")).json()["spec"]["interval"] == "2m"
    assert http.put(f"{WIDGETS}/nope", json=widget("nope")).status_code == 404
    assert http.put(f"{WIDGETS}/w1", json=widget("other")).status_code == 400


def test_patch_with_stale_resource_version_is_409(http):
    created = http.post(WIDGETS, json=widget("w1")).json()
    rv = created["metadata"]["resourceVersion"]
    assert http.patch(f"{WIDGETS}/w1", json={"metadata": {"resourceVersion": rv}, "spec": {"target": "a"}},
                      headers=MERGE).status_code == 200
    response = http.patch(f"{WIDGETS}/w1", json={"metadata": {"resourceVersion": rv}, "spec": {"target": "b"}},
                          headers=MERGE)
    assert response.status_code == 409


def test_scale_subresource_of_custom_resource(http):
    http.post(WIDGETS, json=widget("w1", replicas=2))
    http.patch(f"{WIDGETS}/w1/status", json={"status": {"replicas": 2, "selector": "app=w"}}, headers=MERGE)
    scale = http.get(f"{WIDGETS}/w1/scale").json()
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2} and scale["status"] == {"replicas": 2, "selector": "app=w"}
    scaled = http.patch(f"{WIDGETS}/w1/scale", json={"spec": {"replicas": 4}}, headers=MERGE).json()
    assert scaled["spec"]["replicas"] == 4
    assert http.get(f"{WIDGETS}/w1").json()["spec"]["replicas"] == 4


def test_official_client_sees_api_errors(api_client):
    custom = kubernetes.client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object("lab.homeostat.io", "v1", "default", "widgets", widget("w1"))
    with pytest.raises(kubernetes.client.ApiException) as err:
        custom.create_namespaced_custom_object("lab.homeostat.io", "v1", "default", "widgets", widget("w1"))
    assert err.value.status == 409
    with pytest.raises(kubernetes.client.ApiException) as err:
        custom.get_namespaced_custom_object("lab.homeostat.io", "v1", "default", "widgets", "nope")
    assert err.value.status == 404


def test_in_process_api_round_trip(cluster):
    body = widget("w1")
    body["status"] = {"phase": "Seeded"}
    created = cluster.apply(body)
    assert created["status"] == {"phase": "Seeded"}  # apply is a privileged write: status included
    assert cluster.get("lab.homeostat.io/v1", "widgets", "default", "w1")["metadata"]["uid"] == created[
        "metadata"]["uid"]
    updated = cluster.apply(widget("w1", interval="9m"))
    assert updated["metadata"]["generation"] == 2
    assert [w["metadata"]["name"] for w in cluster.list("lab.homeostat.io/v1", "Widget")] == ["w1"]
    cluster.delete("lab.homeostat.io/v1", "wdg", "default", "w1")
    assert cluster.get("lab.homeostat.io/v1", "Widget", "default", "w1") is None
    cluster.delete("lab.homeostat.io/v1", "Widget", "default", "w1")  # already gone: ignored
