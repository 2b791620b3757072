"""The request log (for the RBAC test) and KMock's DSL still answering first (fault injection)."""

from __future__ import annotations

import kmock
import kubernetes

from .conftest import MERGE, WIDGETS, widget


def test_every_request_is_recorded_with_its_status(http, cluster):
    http.post(WIDGETS, json=widget("w1"))
    http.patch(f"{WIDGETS}/w1", json={"spec": {"target": "b"}}, headers=MERGE)
    http.get(f"{WIDGETS}/nope")
    http.get(WIDGETS, params={"watch": "true", "timeoutSeconds": "0.1"})
    log = cluster.requests
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", WIDGETS, 201), ("PATCH", f"{WIDGETS}/w1", 200), ("GET", f"{WIDGETS}/nope", 404),
        ("GET", WIDGETS, 200)]
    assert log[1].content_type == "application/merge-patch+json"
    assert log[1].body == {"spec": {"target": "b"}}
    assert log[0].body["metadata"]["name"] == "w1"
    assert log[3].query == {"watch": "true", "timeoutSeconds": "0.1"}
    assert [r.verb for r in log] == ["create", "patch", "get", "watch"]


def test_kmock_reactions_override_the_emulator(http, cluster):
    cluster.handler["patch", kmock.resource("lab.homeostat.io", "v1", "widgets")] << 503
    http.post(WIDGETS, json=widget("w1"))
    assert http.patch(f"{WIDGETS}/w1", json={"spec": {"target": "b"}}, headers=MERGE).status_code == 503
    assert http.get(f"{WIDGETS}/w1").json()["spec"]["target"] == "api"
    assert cluster.requests[-2].status == 503


def test_the_user_agent_of_each_request_is_recorded(http, cluster, api_client):
    http.get(WIDGETS, headers={"User-Agent": "probe/1.0"})
    kubernetes.client.CoreV1Api(api_client).list_namespace()
    http.get(WIDGETS, headers={"user-agent": "lower/2"})
    agents = [r.user_agent for r in cluster.requests]
    assert agents[0] == "probe/1.0"
    assert agents[1].startswith("OpenAPI-Generator/")  # the official client's default
    assert agents[2] == "lower/2"
