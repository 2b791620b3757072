"""The Lease elector against the emulated API server over HTTP: two candidates, one leader.

Each elector has its own API client (its own connection, its own user agent), as two operator
replicas would; "partitioning" one points its client at a closed port, so its requests fail the
way they do when a node loses the network. Timings are shortened (a few seconds); the properties
checked are orderings and exclusions, never durations.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import kmock
import pytest

from homeostat.lab.prometheus import free_port
from homeostat.operator.kube import load_api_client
from homeostat.operator.leadership import (
    Attempt,
    KubeLeaseApi,
    LeaderElector,
    Leadership,
    LeadershipLost,
    LeaseConfig,
    fenced,
)
from homeostat.operator.metrics import OperatorMetrics

NAMESPACE = "homeostat-system"  # the operator's: deploy/ grants leases there only (test_rbac.py checks it)
LEASE = "homeostat"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/homeostat-system/leases"


class Candidate:
    """One replica's elector, its API client and its metrics, running as a task."""

    def __init__(self, cluster: Any, identity: str, **timings: float) -> None:
        self.identity = identity
        self.client = load_api_client(kubeconfig=str(cluster.kubeconfig_path))
        self.client.user_agent = f"{self.client.user_agent} ({identity})"
        self.host = self.client.configuration.host
        self.metrics = OperatorMetrics()
        config = LeaseConfig(name=LEASE, namespace=NAMESPACE, identity=identity,
                             **({"lease_duration": 4.0, "renew_deadline": 2.5, "retry_period": 0.5} | timings))
        self.elector = LeaderElector(api=KubeLeaseApi(self.client), config=config, metrics=self.metrics)
        self.task: asyncio.Task[None] | None = None

    @property
    def leads(self) -> bool:
        return self.elector.is_leader.is_set()

    def gauge(self) -> float | None:
        return self.metrics.registry.get_sample_value("homeostat_leader", {"lease": LEASE})

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run())
        return self

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def partition(self) -> None:
        self.client.configuration.host = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    def heal(self) -> None:
        self.client.configuration.host = self.host


async def eventually(predicate: Callable[[], Any], *, timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{message} (after {timeout}s)")


def lease(cluster: Any) -> dict[str, Any]:
    found: dict[str, Any] = cluster.get("coordination.k8s.io/v1", "leases", NAMESPACE, LEASE)
    return found


def lease_writes(cluster: Any) -> list[Any]:
    return [r for r in cluster.requests if r.path.startswith(LEASES) and r.method in ("POST", "PUT")]


@pytest.fixture
async def candidates(cluster: Any) -> AsyncIterator[Callable[..., Candidate]]:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    made: list[Candidate] = []

    def make(identity: str, **timings: float) -> Candidate:
        made.append(Candidate(cluster, identity, **timings))
        return made[-1]

    yield make
    for candidate in made:
        await candidate.stop()


async def watch_exclusion(candidates: list[Candidate], until: Callable[[], bool], *, timeout: float) -> None:
    """Sample who leads every 20 ms until `until()`; never two at once."""
    deadline = time.monotonic() + timeout
    while not until():
        leaders = [c.identity for c in candidates if c.leads]
        assert len(leaders) <= 1, f"two leaders at once: {leaders}"
        assert time.monotonic() < deadline, f"condition not reached after {timeout}s"
        await asyncio.sleep(0.02)


# --- one leader -------------------------------------------------------------------------------------


async def test_of_two_candidates_exactly_one_leads(cluster: Any, candidates: Callable[..., Candidate]) -> None:
    a, b = candidates("replica-a").start(), candidates("replica-b").start()
    leader = await eventually(lambda: next((c for c in (a, b) if c.leads), None), timeout=15,
                              message="nobody became the leader")
    standby = b if leader is a else a
    # Several retry periods: the standby keeps reading the Lease and never takes it.
    end = time.monotonic() + 3
    await watch_exclusion([a, b], lambda: time.monotonic() > end, timeout=10)
    assert leader.leads and not standby.leads
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == leader.identity and spec["leaseDurationSeconds"] == 4
    assert (leader.gauge(), standby.gauge()) == (1.0, 0.0)
    # Exactly one create; every successful write after it is the leader's (its renewals).
    writes = [w for w in lease_writes(cluster) if w.status in (200, 201)]
    assert [w.method for w in writes].count("POST") == 1
    assert {w.user_agent for w in writes} == {leader.client.user_agent}
    assert not any(w.method == "PUT" and w.user_agent == standby.client.user_agent for w in lease_writes(cluster))


async def test_a_leader_that_stops_releases_and_the_standby_takes_over(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a", lease_duration=30.0, renew_deadline=10.0).start()
    await eventually(lambda: a.leads, timeout=15, message="the first candidate never led")
    b = candidates("replica-b", lease_duration=30.0, renew_deadline=10.0).start()
    await eventually(lambda: lease(cluster)["spec"].get("holderIdentity") == "replica-a" and b.gauge() == 0.0,
                     timeout=10, message="the standby did not start")
    await a.stop()  # a clean shutdown: the Lease is released, not left to expire (30 s here)
    assert not a.leads and a.gauge() == 0.0
    await eventually(lambda: b.leads, timeout=15, message="the standby never took the released Lease")
    # Taken over because it was released: the release, then the standby's acquisition, in order.
    puts = [w for w in lease_writes(cluster) if w.method == "PUT" and w.status == 200]
    release = next(i for i, w in enumerate(puts) if w.body["spec"]["holderIdentity"] == "")
    assert puts[release].user_agent == a.client.user_agent
    assert puts[release + 1].user_agent == b.client.user_agent
    assert puts[release + 1].body["spec"]["holderIdentity"] == "replica-b"
    assert lease(cluster)["spec"]["leaseTransitions"] == 1


async def test_a_leader_that_cannot_renew_stops_leading_before_the_standby_can_take_over(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a").start()
    await eventually(lambda: a.leads, timeout=15, message="the first candidate never led")
    b = candidates("replica-b").start()
    await eventually(lambda: b.gauge() == 0.0 and b.elector._lease is not None, timeout=10,
                     message="the standby never read the Lease")
    a.partition()  # a is alive but cut off: its renewals fail; it must not go on believing it leads
    order: list[str] = []

    def note() -> bool:
        if not a.leads and "a stopped" not in order:
            order.append("a stopped")
        if b.leads and "b leads" not in order:
            order.append("b leads")
        return "b leads" in order

    # Never both, at any sample; and the dead leader stepped down before the standby took over.
    await watch_exclusion([a, b], note, timeout=4.0 + 0.5 + 15)
    assert order == ["a stopped", "b leads"]
    assert a.gauge() == 0.0 and b.gauge() == 1.0
    assert lease(cluster)["spec"]["holderIdentity"] == "replica-b"
    a.heal()  # back on the network: it finds the Lease held by b and stays a standby
    end = time.monotonic() + 2
    await watch_exclusion([a, b], lambda: time.monotonic() > end, timeout=10)
    assert b.leads and not a.leads


async def test_the_fence_refuses_to_start_an_action_once_renewal_is_overdue(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a").start()
    await eventually(lambda: a.leads, timeout=15, message="never led")
    calls: list[str] = []

    async def restart(key: str) -> str:
        calls.append(key)
        return "done"

    guarded: Callable[[str], Awaitable[str]] = fenced(a.elector.is_leader, restart)
    assert await guarded("incident/0/1") == "done"
    a.partition()
    await eventually(lambda: not a.leads, timeout=10, message="leadership never lapsed")
    with pytest.raises(LeadershipLost):
        await guarded("incident/1/1")
    assert calls == ["incident/0/1"]


async def test_a_release_racing_an_in_flight_renewal_still_releases(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    """SIGTERM while a renewal is on the wire: the renewal lands after the elector was cancelled,
    so the Lease's version is newer than the one the elector last saw; the release still works."""
    a = candidates("replica-a")
    assert await a.elector.step() == Attempt.ACQUIRED

    started = threading.Event()

    class SlowRenewals(KubeLeaseApi):
        def replace(self, *, namespace: str, name: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
            started.set()
            time.sleep(0.5)  # in the elector's thread: the request is still to be sent when cancelled
            return super().replace(namespace=namespace, name=name, body=body, timeout=timeout)

    a.elector._api = SlowRenewals(a.client)
    renewal = asyncio.create_task(a.elector.step())
    await eventually(started.is_set, timeout=5, message="the renewal never started")
    renewal.cancel()
    await asyncio.gather(renewal, return_exceptions=True)
    assert await a.elector.release()
    assert lease(cluster)["spec"]["holderIdentity"] == ""
    puts = [(w.status, w.body["spec"]["holderIdentity"]) for w in lease_writes(cluster) if w.method == "PUT"]
    assert puts == [(200, "replica-a"), (200, "")]  # the late renewal, then the release on top of it


# --- conflicts ----------------------------------------------------------------------------------------


async def test_a_conflicting_put_is_a_lost_race_not_an_error(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    a, b = candidates("replica-a"), candidates("replica-b")
    assert await a.elector.step() == Attempt.ACQUIRED  # creates the Lease
    await a.elector.release()
    # b read the released Lease; before it writes, a takes the Lease back: b's PUT carries a stale
    # resourceVersion, which the API server refuses with 409.
    stale = lease(cluster)
    assert await a.elector.step() == Attempt.ACQUIRED

    class ReadsTheStaleCopy(KubeLeaseApi):
        def read(self, *, namespace: str, name: str, timeout: float) -> dict[str, Any] | None:
            return stale

    b.elector._api = ReadsTheStaleCopy(b.client)
    assert await b.elector.step() == Attempt.CONFLICT
    assert not b.leads and a.leads
    refused = [w for w in lease_writes(cluster) if w.user_agent == b.client.user_agent]
    assert [(w.method, w.status) for w in refused] == [("PUT", 409)]
    assert lease(cluster)["spec"]["holderIdentity"] == "replica-a"


async def test_a_leader_whose_renewal_conflicts_reads_again_and_renews(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a")
    assert await a.elector.step() == Attempt.ACQUIRED
    current = lease(cluster)  # someone else writes the Lease (a label): the leader's copy is stale
    current["metadata"]["labels"] = {"touched": "yes"}
    cluster.apply(current)
    assert await a.elector.step() == Attempt.RENEWED
    assert a.leads
    puts = [(w.method, w.status) for w in lease_writes(cluster)]
    assert puts[-2:] == [("PUT", 409), ("PUT", 200)]
    assert lease(cluster)["metadata"]["labels"] == {"touched": "yes"}  # kept: the renewal started from it


async def test_a_leader_whose_lease_was_deleted_creates_it_again(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a")
    assert await a.elector.step() == Attempt.ACQUIRED
    cluster.delete("coordination.k8s.io/v1", "leases", NAMESPACE, LEASE)
    assert await a.elector.step() == Attempt.ACQUIRED  # its renewal is a 404: read, then create
    assert a.leads and lease(cluster)["spec"]["holderIdentity"] == "replica-a"
    assert [(w.method, w.status) for w in lease_writes(cluster)][-2:] == [("PUT", 404), ("POST", 201)]


async def test_an_injected_conflict_on_acquisition_is_retried(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    cluster.apply({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",  # released by its last holder
                   "metadata": {"name": LEASE, "namespace": NAMESPACE},
                   "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 1}})
    # KMock counts a reaction's slice over every matching request so far: register it before any PUT.
    # (PUT is a method criterion; KMock's "update" action means PATCH.)
    cluster.handler["PUT", kmock.resource("coordination.k8s.io/v1/leases")][:1] << 409
    a = candidates("replica-a")
    assert await a.elector.step() == Attempt.CONFLICT
    assert not a.leads and a.gauge() == 0.0
    assert await a.elector.step() == Attempt.ACQUIRED
    assert a.leads and a.gauge() == 1.0
    assert [(w.method, w.status) for w in lease_writes(cluster)] == [("PUT", 409), ("PUT", 200)]
    assert lease(cluster)["spec"]["holderIdentity"] == "replica-a"


async def test_a_lease_held_by_someone_else_is_waited_out_not_taken(
    cluster: Any, candidates: Callable[..., Candidate]
) -> None:
    """A holder that never renews (a dead replica): its Lease is taken only once it has not changed
    for leaseDurationSeconds by the candidate's own clock, whatever its renewTime says."""
    cluster.apply({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": LEASE, "namespace": NAMESPACE},
                   "spec": {"holderIdentity": "dead-replica", "leaseDurationSeconds": 2,
                            "renewTime": "2000-01-01T00:00:00.000000Z", "leaseTransitions": 3}})
    b = candidates("replica-b")
    assert await b.elector.step() == Attempt.HELD  # renewTime is ancient, but b has only just seen it
    await asyncio.sleep(2.2)
    assert await b.elector.step() == Attempt.ACQUIRED
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] == 4


# --- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "deadline", "retry"), [(10, 10, 2), (15, 10, 10), (15, 20, 2), (15, 10, 0)])
def test_the_timings_must_leave_a_margin(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseConfig(name=LEASE, namespace=NAMESPACE, identity="x", lease_duration=duration,
                    renew_deadline=deadline, retry_period=retry)


async def test_leadership_is_an_event_with_a_deadline() -> None:
    now = [100.0]
    flag = Leadership(clock=lambda: now[0])
    assert not flag.is_set() and flag.remaining() == 0.0
    assert flag._hold(until=110.0)
    assert flag.is_set() and flag.remaining() == 10.0
    await asyncio.wait_for(flag.wait(), 1)
    now[0] = 110.0  # the renewal is overdue: not leading any more, before anyone says so
    assert not flag.is_set()
    with pytest.raises(LeadershipLost):
        flag.check()
