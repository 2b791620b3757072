"""Watches: replay rules, resume from a resourceVersion, 410 Gone, timeouts, bookmarks, selectors."""

from __future__ import annotations

import json
import threading
import time

import httpx
import kubernetes

from homeostat.lab.kube import EmulatedCluster

from .conftest import MERGE, WIDGET_CRD, WIDGETS, widget


def _stream(http, path, params, *, stop_after=None, timeout=10.0):
    """Read watch events until the server ends the stream (or ``stop_after`` events arrived)."""
    events = []
    with http.stream("GET", path, params={"watch": "true", **params}, timeout=timeout) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
                if stop_after is not None and len(events) >= stop_after:
                    break
    return events


def test_watch_without_resource_version_replays_current_objects(http):
    http.post(WIDGETS, json=widget("w1"))
    http.post(WIDGETS, json=widget("w2"))
    events = _stream(http, WIDGETS, {"timeoutSeconds": "1"})
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w1"), ("ADDED", "w2")]
    assert events[0]["object"]["kind"] == "Widget"


def test_watch_from_resource_version_streams_only_later_changes(http):
    http.post(WIDGETS, json=widget("w1"))
    rv = http.get(WIDGETS).json()["metadata"]["resourceVersion"]
    http.patch(f"{WIDGETS}/w1", json={"spec": {"target": "b"}}, headers=MERGE)
    http.post(WIDGETS, json=widget("w2"))
    http.delete(f"{WIDGETS}/w1")
    events = _stream(http, WIDGETS, {"resourceVersion": rv, "timeoutSeconds": "1"})
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "w1"), ("ADDED", "w2"), ("DELETED", "w1")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_live_events_arrive_while_watching(http, cluster):
    rv = http.get(WIDGETS).json()["metadata"]["resourceVersion"]

    def later():
        time.sleep(0.3)
        cluster.apply(widget("w1"))

    threading.Thread(target=later).start()
    events = _stream(http, WIDGETS, {"resourceVersion": rv, "timeoutSeconds": "5"}, stop_after=1)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "w1"


def test_too_old_resource_version_is_an_error_event_410():
    with EmulatedCluster(crds=[WIDGET_CRD], controllers=False, watch_history=3) as cluster, \
            httpx.Client(base_url=cluster.url) as http:
        for i in range(6):
            http.post(WIDGETS, json=widget(f"w{i}"))
        events = _stream(http, WIDGETS, {"resourceVersion": "1"})
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410 and events[0]["object"]["kind"] == "Status"


def test_timeout_seconds_ends_the_stream(http):
    started = time.monotonic()
    assert _stream(http, WIDGETS, {"timeoutSeconds": "1", "resourceVersion": "1"}) == []
    # Ended by the server's timeout: not before it, and well before the client's own 10 s read timeout.
    assert 0.9 <= time.monotonic() - started < 9


def test_bookmarks_when_allowed():
    with EmulatedCluster(crds=[WIDGET_CRD], controllers=False, bookmark_interval=0.2) as cluster, \
            httpx.Client(base_url=cluster.url) as http:
        http.post(WIDGETS, json=widget("w1"))
        rv = http.get(WIDGETS).json()["metadata"]["resourceVersion"]
        events = _stream(http, WIDGETS, {"resourceVersion": rv, "allowWatchBookmarks": "true",
                                         "timeoutSeconds": "1"})
        assert events and all(e["type"] == "BOOKMARK" for e in events)
        assert events[0]["object"]["metadata"]["resourceVersion"] == rv
        assert events[0]["object"]["kind"] == "Widget"
        assert _stream(http, WIDGETS, {"resourceVersion": rv, "timeoutSeconds": "1"}) == []


def test_watch_with_label_selector_sees_objects_enter_and_leave(http):
    http.post(WIDGETS, json=widget("w1"))
    rv = http.get(WIDGETS).json()["metadata"]["resourceVersion"]
    http.patch(f"{WIDGETS}/w1", json={"metadata": {"labels": {"team": "a"}}}, headers=MERGE)
    http.patch(f"{WIDGETS}/w1", json={"metadata": {"labels": {"team": "b"}}}, headers=MERGE)
    events = _stream(http, WIDGETS, {"resourceVersion": rv, "labelSelector": "team=a", "timeoutSeconds": "1"})
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


def test_namespaced_and_cluster_wide_watches(http):
    http.post("/api/v1/namespaces", json={"metadata": {"name": "other"}})
    rv = http.get(WIDGETS).json()["metadata"]["resourceVersion"]
    http.post(WIDGETS, json=widget("w1"))
    http.post("/apis/lab.homeostat.io/v1/namespaces/other/widgets", json=widget("w2", namespace="other"))
    scoped = _stream(http, WIDGETS, {"resourceVersion": rv, "timeoutSeconds": "1"})
    everywhere = _stream(http, "/apis/lab.homeostat.io/v1/widgets", {"resourceVersion": rv, "timeoutSeconds": "1"})
    assert [e["object"]["metadata"]["name"] for e in scoped] == ["w1"]
    assert [e["object"]["metadata"]["name"] for e in everywhere] == ["w1", "w2"]


def test_official_client_watch(api_client, cluster):
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "default"}})
    core = kubernetes.client.CoreV1Api(api_client)
    watch = kubernetes.watch.Watch()
    seen = [(e["type"], e["object"].metadata.name)
            for e in watch.stream(core.list_namespaced_config_map, "default", timeout_seconds=1)]
    assert seen == [("ADDED", "c1")]
