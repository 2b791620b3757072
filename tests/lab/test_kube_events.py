"""Events posted by clients (core/v1 and events.k8s.io/v1) are stored, listed and selectable."""

from __future__ import annotations

import kubernetes


def test_core_and_events_k8s_io_events_are_stored(http, cluster, api_client):
    core_event = {"metadata": {"generateName": "w1."}, "involvedObject": {
        "apiVersion": "lab.homeostat.io/v1", "kind": "Widget", "name": "w1", "namespace": "default"},
        "reason": "Remediated", "message": "restarted", "type": "Normal", "source": {"component": "homeostat"}}
    assert http.post("/api/v1/namespaces/default/events", json=core_event).status_code == 201
    new_event = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
                 "eventTime": "2025-01-01T00:00:00.000000Z", "reportingController": "homeostat",
                 "reportingInstance": "homeostat-0", "action": "Scale", "reason": "Scaled", "type": "Normal",
                 "regarding": {"kind": "Deployment", "name": "web", "namespace": "default"}, "note": "scaled up"}
    assert http.post("/apis/events.k8s.io/v1/namespaces/default/events", json=new_event).status_code == 201

    events = cluster.events("default")
    assert [e["reason"] for e in events] == ["Remediated", "Scaled"]
    assert cluster.events("other") == []
    selected = http.get("/api/v1/namespaces/default/events",
                        params={"fieldSelector": "involvedObject.name=w1,reason=Remediated"}).json()["items"]
    assert len(selected) == 1

    listed = kubernetes.client.CoreV1Api(api_client).list_namespaced_event("default")
    assert listed.items[0].involved_object.kind == "Widget"
