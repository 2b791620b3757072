"""A write whose answer is lost (read timeout, 504) may have landed: the runner with the real
actions, against the emulated API server, reads the workload back before it records Succeeded or
Failed, and an outcome it cannot tell counts towards the cooldown (issue 11 item 1)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import kmock
import kubernetes
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

import homeostat
from homeostat.api.incident import ActionRecord, IncidentStatus, InvolvedSeries
from homeostat.api.policy import PolicySpec
from homeostat.lab.harness import deployment
from homeostat.playbooks.actions import ACTIONS, delete_pod, restart, scale_out
from homeostat.playbooks.base import Outcome
from homeostat.playbooks.guards import RemediationSlots
from homeostat.playbooks.incidents import INCIDENT_CALLS, IncidentStore
from homeostat.playbooks.kube import ACTION_CALLS, AmbiguousWrite, WorkloadApi, may_have_landed
from homeostat.playbooks.remediator import Remediator
from homeostat.playbooks.runner import PolicyInfo, TargetInfo, remediate

from .conftest import APPS, context, lands_then, ready_pods, settled_deployment, since
from .test_action_rollback import two_revisions
from .test_runner import HIGH, stamped

API = "homeostat.dev/v1alpha1"
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
TIMEOUT = 0.5  # the client's request timeout in these tests
LATE = 1.5  # an answer this late is a read timeout for the client
ROLLED_BACK_BY = "homeostat.dev/rolled-back-by"
ACTION_KEY = "homeostat.dev/action-key"


def spec(steps: list[str]) -> PolicySpec:
    return PolicySpec.model_validate({
        "target": {"kind": "Deployment", "name": "web"},
        "signals": [{"name": "latency", "query": "q"}],
        "playbook": {"steps": [{"action": a} for a in steps], "verify": "30s", "cooldown": "10m",
                     "maxActionsPerHour": 10},
    })


class Clock:
    def __init__(self) -> None:
        self.t = time.time()  # real time: rollback compares it with the ReplicaSets' creation

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def kube_client(cluster: Any) -> Iterator[Any]:
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    client.user_agent = f"homeostat/{homeostat.__version__}"
    yield client
    client.close()


class World:
    """A policy on Deployment `web` and the runner with the real actions over real HTTP."""

    def __init__(self, cluster: Any, client: Any, steps: list[str]) -> None:
        self.cluster = cluster
        self.spec = spec(steps)
        if cluster.get(APPS, "deployments", "shop", "web") is None:
            cluster.apply(deployment("web"))
        cluster.apply({"apiVersion": API, "kind": "AnomalyPolicy", "metadata": {"name": "web", "namespace": "shop"},
                       "spec": self.spec.to_wire()})
        self.policy_uid = cluster.get(API, "anomalypolicies", "shop", "web")["metadata"]["uid"]
        self.clock = Clock()
        self.deps = Remediator(
            store=IncidentStore(client, retry=dataclasses.replace(INCIDENT_CALLS, base=0.01)), actions=ACTIONS,
            slots=RemediationSlots(5),
            workload_api=WorkloadApi(client, retry=dataclasses.replace(ACTION_CALLS, attempts=3, base=0.02, cap=0.1),
                                     request_timeout=TIMEOUT),
            clock=self.clock,
            claim_targets=False)  # the actions' own writes are under test: no claim write before them

    async def cycle(self, *, advance: float = 1.0) -> Any:
        self.clock.t += advance
        obj = self.cluster.get(APPS, "deployments", "shop", "web")
        target = TargetInfo(found=True, uid=obj["metadata"]["uid"],
                            annotations=obj["metadata"].get("annotations") or {})
        return await remediate(policy=PolicyInfo(namespace="shop", name="web", uid=self.policy_uid), spec=self.spec,
                               obs=stamped(HIGH, self.clock.t), target=target, deps=self.deps)

    def status(self) -> IncidentStatus:
        (only,) = self.cluster.list(API, "incidents", namespace="shop")
        return IncidentStatus.model_validate(only.get("status") or {})

    def records(self) -> list[ActionRecord]:
        return self.status().actions

    def web(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.cluster.get(APPS, "deployments", "shop", "web")
        return obj


def broken_reads(cluster: Any) -> threading.Event:
    """Once the event is set, every GET of a Deployment is answered 503 (the read-back fails)."""
    broken = threading.Event()

    def answer() -> Any:
        if not broken.is_set():
            raise NotImplementedError  # KMock: matched but nothing to answer; the emulator serves it
        return kmock.Response(status=503, payload={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                   "code": 503, "reason": "ServiceUnavailable"})

    cluster.handler["get", DEPLOYMENTS] << answer
    return broken


def template_key(obj: dict[str, Any]) -> str | None:
    notes: dict[str, str] = (obj["spec"]["template"]["metadata"].get("annotations") or {})
    return notes.get(ACTION_KEY)


async def test_a_restart_that_landed_but_answered_late_is_succeeded_and_the_next_step_waits(cluster, kube_client):
    world = World(cluster, kube_client, ["restart", "scale-out"])
    handled = lands_then(cluster, "patch", DEPLOYMENTS, late=LATE)

    await world.cycle()

    restart, *later = world.records()
    assert later == [], f"the next step ran although the restart had landed: {world.records()}"
    assert (restart.action, restart.state) == ("restart", "Succeeded"), restart.message
    assert template_key(world.web()) == restart.key
    assert world.status().phase == "Verifying"
    assert handled, "the PATCH never met the injected fault"


async def test_a_restart_answered_504_after_it_landed_is_succeeded(cluster, kube_client):
    world = World(cluster, kube_client, ["restart", "scale-out"])
    lands_then(cluster, "patch", DEPLOYMENTS, status=504, times=None)  # every PATCH lands, then 504

    await world.cycle()

    restart, *later = world.records()
    assert later == [], f"the next step ran although the restart had landed: {world.records()}"
    assert (restart.action, restart.state) == ("restart", "Succeeded"), restart.message
    assert template_key(world.web()) == restart.key


async def test_a_rollback_that_landed_but_answered_late_is_succeeded(cluster, kube_client):
    two_revisions(cluster)
    world = World(cluster, kube_client, ["rollback", "restart"])
    handled = lands_then(cluster, "patch", DEPLOYMENTS, late=LATE)

    await world.cycle()

    rollback, *later = world.records()
    assert later == [], f"the restart ran right after a rollback that had landed: {world.records()}"
    assert (rollback.action, rollback.state) == ("rollback", "Succeeded"), rollback.message
    assert world.web()["metadata"]["annotations"][ROLLED_BACK_BY] == rollback.key
    assert world.web()["spec"]["template"]["spec"]["containers"][0]["image"] == "example.com/web:1.0"
    assert handled, "the PATCH never met the injected fault"


@pytest.mark.parametrize("first", ["restart", "rollback"])
async def test_a_write_whose_outcome_cannot_be_read_back_counts_towards_the_cooldown(cluster, kube_client, first):
    """The PATCH times out without landing and the workload cannot be read back: the record says it
    may have been applied, and the next step waits for the cooldown instead of following at once."""
    if first == "rollback":
        two_revisions(cluster)
    world = World(cluster, kube_client, [first, "scale-out"])
    before = world.web()
    broken = broken_reads(cluster)

    handled: list[Any] = []

    async def late(request: Any) -> Any:  # not carried out, answered too late, and reads fail from now on
        broken.set()
        handled.append(request)
        await asyncio.sleep(LATE)
        return b"{}"

    cluster.handler["patch", DEPLOYMENTS][:1] << late

    await world.cycle()

    step1, *later = world.records()
    assert later == [], f"the next step ran at once after an action that may have been applied: {world.records()}"
    assert step1.action == first and step1.state == "Unknown", step1.message
    assert "may have been applied" in step1.message
    assert world.web()["spec"] == before["spec"]  # it did not land, but nobody could tell

    broken.clear()
    await world.cycle(advance=5 * 60)  # within the cooldown (10m): still waiting
    assert [r.step for r in world.records()] == [0]
    assert "Cooldown" in (world.status().waiting or "")

    await world.cycle(advance=6 * 60)  # past it: the next step runs
    assert [(r.step, r.action) for r in world.records()] == [(0, first), (1, "scale-out")]
    assert handled, "the PATCH never met the injected fault"


# --- the actions alone, and WorkloadApi --------------------------------------------------------


@pytest.fixture
def quick_api(kube_client: Any) -> WorkloadApi:
    return WorkloadApi(kube_client, retry=dataclasses.replace(ACTION_CALLS, attempts=3, base=0.02, cap=0.1),
                       request_timeout=TIMEOUT)


async def test_a_scale_out_whose_marker_landed_late_finishes_the_change_it_records(cluster, quick_api):
    cluster.apply(deployment("web", replicas=2))
    handled = lands_then(cluster, "patch", DEPLOYMENTS, late=LATE)  # the first PATCH: the markers

    done = await scale_out.perform(context(quick_api, "scale-out"))

    assert handled, "the PATCH never met the injected fault"
    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert "answer to its write was lost" in done.message
    assert cluster.get(APPS, "deployments", "shop", "web")["spec"]["replicas"] == 3


async def test_a_delete_pod_whose_marker_landed_late_deletes_the_pod_it_records(cluster, quick_api):
    settled_deployment(cluster, replicas=4)
    victim = sorted(p["metadata"]["name"] for p in ready_pods(cluster, prefix="web-"))[0]
    involved = [InvolvedSeries(signal="latency", labels={"pod": victim}, score=9.0)]
    handled = lands_then(cluster, "patch", DEPLOYMENTS, late=LATE)

    done = await delete_pod.perform(context(quick_api, "delete-pod", involved=involved, deletePod={"maxFraction": 0.5}))

    assert handled, "the PATCH never met the injected fault"
    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert victim not in {p["metadata"]["name"] for p in cluster.list("v1", "pods", "shop")}


async def test_a_write_refused_with_a_4xx_is_failed_without_reading_back(cluster, quick_api):
    settled_deployment(cluster)
    cluster.handler["patch", DEPLOYMENTS] << 422
    mark = len(cluster.requests)

    done = await restart.perform(context(quick_api, "restart"))

    assert done.outcome == Outcome.FAILED and "422" in done.message
    assert [r.method for r in since(cluster, mark)] == ["GET", "PATCH"]  # refused: nothing to look for


async def test_a_connection_never_made_is_not_ambiguous(kube_client):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = kubernetes.client.Configuration()
    config.host, config.retries = f"http://127.0.0.1:{port}", 0
    with kubernetes.client.ApiClient(config) as nowhere:
        api = WorkloadApi(nowhere, retry=dataclasses.replace(ACTION_CALLS, attempts=2, base=0.01, cap=0.02),
                          request_timeout=TIMEOUT)
        with pytest.raises(urllib3.exceptions.HTTPError) as raised:
            await api.patch_template_annotations(namespace="shop", kind="Deployment", name="web",
                                                 annotations={"a": "b"})
    assert not isinstance(raised.value, AmbiguousWrite)


def test_which_failures_of_a_sent_write_may_have_landed():
    assert may_have_landed(ApiException(status=504)) and may_have_landed(ApiException(status=500))
    assert may_have_landed(ApiException(status=0))  # the client's own wrapping: no answer read
    assert not may_have_landed(ApiException(status=409)) and not may_have_landed(ApiException(status=422))
    assert may_have_landed(urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"))
    assert may_have_landed(urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError()))
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    assert not may_have_landed(refused)
    assert not may_have_landed(urllib3.exceptions.MaxRetryError(None, "/", refused))
    assert may_have_landed(urllib3.exceptions.MaxRetryError(
        None, "/", urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")))
