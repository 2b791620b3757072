"""WorkloadApi, the calls under the actions: which failures are retried (409, 429, 5xx) and which are
not, that a 409 re-reads before re-applying, and the selectors and preconditions it sends."""

from __future__ import annotations

import dataclasses

import kmock
import pytest
from kubernetes.client.exceptions import ApiException

from homeostat.lab.harness import deployment
from homeostat.playbooks.kube import ACTION_CALLS, WorkloadApi, selector_string

from .conftest import APPS, since

DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")


def test_selectors_are_written_the_way_the_api_server_parses_them():
    assert selector_string({"matchLabels": {"app": "web", "tier": "api"}}) == "app=web,tier=api"
    assert selector_string({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "track", "operator": "In", "values": ["stable", "canary"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "owner", "operator": "Exists"}, {"key": "legacy", "operator": "DoesNotExist"},
    ]}) == "app=web,track in (stable,canary),env notin (dev),owner,!legacy"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_throttling_and_server_errors_are_retried(cluster, api, status):
    cluster.apply(deployment("web"))
    cluster.handler["get", DEPLOYMENTS][:2] << status
    mark = len(cluster.requests)

    obj = await api.read_workload(namespace="shop", kind="Deployment", name="web")

    assert obj["metadata"]["name"] == "web"
    assert [r.status for r in since(cluster, mark)] == [status, status, 200]


@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_other_client_errors_are_not_retried(cluster, api, status):
    cluster.apply(deployment("web"))
    cluster.handler["patch", DEPLOYMENTS] << status
    mark = len(cluster.requests)

    with pytest.raises(ApiException) as raised:
        await api.patch_template_annotations(namespace="shop", kind="Deployment", name="web", annotations={"a": "b"})

    assert raised.value.status == status
    assert len(since(cluster, mark)) == 1


async def test_retries_are_bounded(cluster, api_client):
    cluster.apply(deployment("web"))
    cluster.handler["get", DEPLOYMENTS] << 503
    api = WorkloadApi(api_client, retry=dataclasses.replace(ACTION_CALLS, attempts=3, base=0.01, cap=0.02))
    mark = len(cluster.requests)

    with pytest.raises(ApiException):
        await api.read_workload(namespace="shop", kind="Deployment", name="web")

    assert len(since(cluster, mark)) == 3


def test_backoff_doubles_up_to_its_cap_and_honours_retry_after():
    backoff = dataclasses.replace(ACTION_CALLS, base=1.0, cap=4.0)
    plain = ApiException(status=503)
    for attempt, (low, high) in {0: (0.5, 1.0), 1: (1.0, 2.0), 2: (2.0, 4.0), 10: (2.0, 4.0)}.items():
        assert all(low <= backoff.delay(attempt=attempt, exc=plain) <= high for _ in range(20))
    throttled = ApiException(status=429)
    throttled.headers = {"Retry-After": "3"}
    assert backoff.delay(attempt=0, exc=throttled) == 3.0


async def test_a_real_conflict_rereads_and_decides_again(cluster, api):
    """Someone scales between our read and our write: our write carried the old resourceVersion, so
    the server refuses it (no injection here), and `when` is asked again on what is there now."""
    cluster.apply(deployment("web", replicas=2))
    seen: list[int] = []

    def when(current: int) -> bool:
        seen.append(current)
        if len(seen) == 1:  # the concurrent writer, between our read and our write
            obj = cluster.get(APPS, "deployments", "shop", "web")
            obj["spec"]["replicas"] = 3
            cluster.apply(obj)
        return current < 5

    mark = len(cluster.requests)
    found, written = await api.set_replicas(namespace="shop", kind="Deployment", name="web", replicas=5, when=when)

    # (the controller may write in between too: then one more 409, and one more fresh look)
    assert seen[:2] == [2, 3] and set(seen[1:]) == {3}
    assert (found, written) == (3, True)
    calls = [(r.method, r.status) for r in since(cluster, mark)]
    assert calls[:2] == [("GET", 200), ("PATCH", 409)] and calls[-2:] == [("GET", 200), ("PATCH", 200)]
    assert len(calls) == 2 * len(seen)  # every attempt read before it wrote
    assert cluster.get(APPS, "deployments", "shop", "web")["spec"]["replicas"] == 5


async def test_a_pod_deletion_is_preconditioned_on_its_uid(cluster, api):
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": "shop"},
                   "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]}})
    uid = cluster.get("v1", "pods", "shop", "solo")["metadata"]["uid"]

    stale = await api.delete_pod(namespace="shop", name="solo", uid="not-" + uid)
    assert stale is False and cluster.get("v1", "pods", "shop", "solo") is not None
    assert await api.delete_pod(namespace="shop", name="solo", uid=uid) is True
    assert cluster.get("v1", "pods", "shop", "solo") is None
    assert await api.delete_pod(namespace="shop", name="solo", uid=uid) is False


async def test_a_secret_key_is_decoded_and_a_missing_one_is_none(cluster, api):
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"},
                   "data": {"url": "aHR0cHM6Ly9ob29rcy5leGFtcGxlLmNvbS94"}})

    assert await api.read_secret_key(namespace="shop", name="s", key="url") == "https://hooks.example.com/x"
    assert await api.read_secret_key(namespace="shop", name="s", key="nope") is None
    assert await api.read_secret_key(namespace="shop", name="nope", key="url") is None
