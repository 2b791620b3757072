"""High availability and sharding end to end: several `homeostat run` processes, one emulated API.

Two replicas with leader election: exactly one evaluates, writes status and acts; killed with
SIGKILL in the middle of an incident, the other takes over and carries the incident on with its
next step, and the API server's request log shows no action key written twice. Two shards: each
policy is run by exactly one of them. Who did what is read from the request log: every request
of the operator says `homeostat/<version> (<identity>)`, the identity being `<hostname>-<pid>`.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

import pytest

from homeostat.lab.harness import (
    OperatorProcess,
    deployment,
    policy,
    wait_until,
)
from homeostat.lab.prometheus import PrometheusServer, free_port
from homeostat.operator.sharding import shard_of
from homeostat.playbooks.actions.common import (
    ACTION_KEY,
    POD_DELETED_BY,
    RESTARTED_AT,
    ROLLED_BACK_BY,
    SCALED_BACK_BY,
    SCALED_BY,
)

API = "homeostat.dev/v1alpha1"
NAMESPACE = "homeostat-system"  # the Leases live in the operator's namespace
MARKERS = (ACTION_KEY, SCALED_BY, SCALED_BACK_BY, ROLLED_BACK_BY, POD_DELETED_BY)
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Shorter than the defaults (15/10/2 s) so that a failover takes seconds, with the same margins.
LEADER_ELECTION = ["--leader-election", "--lease-namespace", NAMESPACE,
                   "--lease-duration", "8", "--renew-deadline", "5", "--retry-period", "1"]

pytestmark = pytest.mark.slow


@pytest.fixture
def prometheus(warm_prometheus: PrometheusServer) -> PrometheusServer:
    """Here every Prometheus starts with the healthy past imported (conftest's `warm_prometheus`)."""
    return warm_prometheus


def agent(process: OperatorProcess) -> str:
    """The tail of the user agent of every request `process` makes."""
    return f"({socket.gethostname()}-{process.process.pid})"


def by(process: OperatorProcess, requests: list[Any]) -> list[Any]:
    return [r for r in requests if (r.user_agent or "").endswith(agent(process))]


def leader_gauge(process: OperatorProcess, lease: str) -> float | None:
    for line in process.metrics().splitlines():
        if line.startswith(f'homeostat_leader{{lease="{lease}"}} '):
            return float(line.split()[-1])
    return None


def status_writes(requests: list[Any], name: str) -> list[Any]:
    return [r for r in requests if r.method == "PATCH" and r.status == 200
            and r.path == f"/apis/{API}/namespaces/shop/anomalypolicies/{name}/status"]


def kopf_writes(requests: list[Any]) -> list[Any]:
    """Kopf's successful writes to policies (finalizers, its annotations)."""
    return [r for r in requests if (r.user_agent or "").startswith("kopf/") and r.method in WRITES
            and r.status == 200 and "/anomalypolicies/" in r.path]


def markers(body: Any) -> list[str]:
    """Action keys stamped by a write: the values of the actions' marker annotations in its body."""
    if isinstance(body, list):
        return [key for item in body for key in markers(item)]
    if not isinstance(body, dict):
        return []
    found = [value for name, value in body.items() if name in MARKERS and isinstance(value, str)]
    return found + [key for value in body.values() for key in markers(value)]


def keyed_writes(requests: list[Any]) -> list[tuple[str, Any]]:
    """(action key, request) of each successful write to a workload that stamps an action key."""
    return [(key, r) for r in requests if r.method in WRITES and r.status == 200 and "/apis/apps/" in r.path
            for key in markers(r.body)]


def incident_status(cluster: Any) -> dict[str, Any]:
    incidents = cluster.list(API, "incidents", namespace="shop")
    assert len(incidents) <= 1, [i["metadata"]["name"] for i in incidents]
    return (incidents[0].get("status") or {}) if incidents else {}


def actions(cluster: Any) -> list[tuple[str, str]]:
    return [(r["action"], r["state"]) for r in incident_status(cluster).get("actions", [])]


def test_two_replicas_one_acts_and_a_kill_9_mid_incident_hands_over_without_repeating(
    cluster: Any, prometheus: PrometheusServer, latency: dict[str, float], start_operator: Any
) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    cluster.apply(deployment("checkout", replicas=2))
    prometheus.wait_for("lab_latency_seconds", count=3)
    first = start_operator(prometheus.url, extra=LEADER_ELECTION)
    wait_until(lambda: leader_gauge(first, "homeostat") == 1.0, timeout=30,
               message=f"the first replica never led:\n{first.log()}")
    second = start_operator(prometheus.url, extra=LEADER_ELECTION)
    wait_until(lambda: leader_gauge(second, "homeostat") == 0.0 and "standing by" in second.log_path.read_text(),
               timeout=30,
               message=f"the second replica is not standing by:\n{second.log()}")

    cluster.apply(policy("checkout", {
        "target": {"kind": "Deployment", "name": "checkout"},
        "interval": "1s", "lookback": "10m", "evaluationDelay": "0s", "staleness": "3s", "seriesTtl": "60s",
        "signals": [{"name": "latency", "query": "max by (pod) (lab_latency_seconds)",
                     "detector": {"name": "robust_zscore"}}],
        "confirm": {"k": 2, "n": 3},
        # verify 10s: the kill below must land while the restart is still being verified, on a loaded machine too
        "playbook": {"verify": "10s", "cooldown": "2s", "maxActionsPerHour": 10, "reopenWindow": "2m",
                     "steps": [{"action": "restart"}, {"action": "scale-out", "scaleOut": {"step": 2, "max": 5}}]},
    }))
    wait_until(lambda: ((cluster.get(API, "anomalypolicies", "shop", "checkout") or {}).get("status") or {})
               .get("phase") == "Healthy", timeout=30, message=f"the policy never became Healthy:\n{first.log()}")
    latency["a"] = 1.0  # the anomaly
    wait_until(lambda: incident_status(cluster).get("phase") == "Verifying"
               and actions(cluster) == [("restart", "Succeeded")], timeout=40,
               message=f"the restart was not done and verified:\n{first.log()}")

    # Up to here, one replica did everything: the standby wrote no status, no Incident, no workload.
    before = cluster.requests
    assert by(first, status_writes(before, "checkout"))
    assert not [r for r in by(second, before) if r.method in WRITES and "/leases/" not in r.path]
    os.kill(first.process.pid, signal.SIGKILL)  # mid-incident: restarted, verifying, not recovered
    first.process.wait(timeout=10)
    killed_at = len(cluster.requests)

    # The standby takes over once the Lease expires, and carries the incident on: the next step.
    wait_until(lambda: actions(cluster) == [("restart", "Succeeded"), ("scale-out", "Succeeded")], timeout=60,
               message=f"the standby did not go on with the next step:\n{second.log()}")
    assert "became the leader" in second.log_path.read_text()
    assert leader_gauge(second, "homeostat") == 1.0
    lease = cluster.get("coordination.k8s.io/v1", "leases", NAMESPACE, "homeostat")
    assert lease["spec"]["holderIdentity"] == agent(second).strip("()") and lease["spec"]["leaseTransitions"] == 1
    latency["a"] = 0.1  # the scale-out helped
    wait_until(lambda: incident_status(cluster).get("phase") == "Resolved", timeout=30,
               message=f"the incident never resolved:\n{second.log()}")

    requests = cluster.requests
    name = cluster.list(API, "incidents", namespace="shop")[0]["metadata"]["name"]
    keyed = keyed_writes(requests)
    keys = [key for key, _ in keyed]
    assert sorted(keys) == [f"{name}/0/1", f"{name}/1/1"], f"each action key written once: {keys}"
    restart, scale_out = (dict(keyed)[f"{name}/0/1"], dict(keyed)[f"{name}/1/1"])
    assert by(first, [restart]) and by(second, [scale_out])
    assert RESTARTED_AT in str(restart.body)
    writes = [r for r in requests if r.method in WRITES and r.status == 200 and "/apis/apps/" in r.path]
    assert [r.path.rsplit("/", 1)[-1] for r in writes].count("scale") == 1, "one scale-out, one replicas write"
    # Policy status: the first replica's until it died, the second's only after that.
    statuses = status_writes(requests, "checkout")
    assert len(by(first, statuses)) + len(by(second, statuses)) == len(statuses)
    assert not by(second, status_writes(requests[:killed_at], "checkout"))
    assert by(second, status_writes(requests[killed_at:], "checkout"))
    assert cluster.get("apps/v1", "deployments", "shop", "checkout")["spec"]["replicas"] == 4
    # Both replicas' Kopf watch the policy: its finalizer and annotations were written once, not
    # fought over (a handful of writes, where a fight makes hundreds).
    assert len(kopf_writes(requests)) <= 6, [str(r.body)[:100] for r in kopf_writes(requests)]


def simple_spec(prometheus_url: str) -> dict[str, Any]:
    """A policy whose Prometheus is not there: its status is written every cycle all the same."""
    return {"target": {"kind": "Deployment", "name": "checkout"}, "interval": "1s", "lookback": "30s",
            "prometheus": {"url": prometheus_url, "timeout": "1s"}, "signals": [{"name": "up", "query": "up"}]}


def test_a_leader_stopped_with_sigterm_releases_the_lease_after_its_last_write(
    cluster: Any, start_operator: Any
) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    cluster.apply(deployment("checkout"))
    # A 30-s lease: a takeover by expiry would be slow; the release makes it one retry period.
    slow_expiry = [*LEADER_ELECTION, "--lease-duration", "30", "--renew-deadline", "10"]
    first = start_operator(None, extra=slow_expiry)
    wait_until(lambda: leader_gauge(first, "homeostat") == 1.0, timeout=30, message=f"no leader:\n{first.log()}")
    second = start_operator(None, extra=slow_expiry)
    wait_until(lambda: "standing by" in second.log_path.read_text(), timeout=30,
               message=f"the second replica is not standing by:\n{second.log()}")
    cluster.apply(policy("checkout", simple_spec(f"http://127.0.0.1:{free_port()}")))
    wait_until(lambda: by(first, status_writes(cluster.requests, "checkout")), timeout=30,
               message=f"the leader wrote no status:\n{first.log()}")

    first.process.send_signal(signal.SIGTERM)  # what the kubelet sends to a pod being stopped
    assert first.process.wait(timeout=30) == 0
    wait_until(lambda: by(second, status_writes(cluster.requests, "checkout")), timeout=25,
               message=f"the standby did not take over:\n{second.log()}")
    requests = cluster.requests
    lease_puts = [(i, r) for i, r in enumerate(requests) if r.method == "PUT" and r.status == 200
                  and r.path.endswith(f"/namespaces/{NAMESPACE}/leases/homeostat")]
    (release,) = [i for i, r in lease_puts if r.body["spec"]["holderIdentity"] == ""]
    assert by(first, [requests[release]])
    taken = next(i for i, r in lease_puts if i > release)
    assert by(second, [requests[taken]])  # the standby acquired the released Lease
    # The leader's last write came before it let go; the standby's first after it took over.
    writes = status_writes(requests, "checkout")
    assert max(requests.index(w) for w in by(first, writes)) < release
    assert min(requests.index(w) for w in by(second, writes)) > taken
    assert "released Lease" in first.log_path.read_text()


def test_two_shards_each_run_only_their_own_policies(cluster: Any, start_operator: Any) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    cluster.apply(deployment("checkout"))
    names: dict[int, list[str]] = {0: [], 1: []}
    for index in range(50):  # two policies of each shard, whatever the hash makes of the names
        name = f"policy-{index}"
        owner = shard_of(namespace="shop", name=name, count=2)
        if len(names[owner]) < 2:
            names[owner].append(name)
    closed = f"http://127.0.0.1:{free_port()}"  # no Prometheus needed: status is written every cycle anyway
    shards = [start_operator(None, extra=[*LEADER_ELECTION, "--shard-index", str(i), "--shard-count", "2"])
              for i in (0, 1)]
    for name in names[0] + names[1]:
        cluster.apply(policy(name, simple_spec(closed)))

    def written() -> bool:
        return all(status_writes(cluster.requests, n) for n in names[0] + names[1])

    wait_until(written, timeout=40, message="not every policy got a status:\n"
               + "\n".join(shard.log() for shard in shards))
    # Settled: from now on only status writes. (Kopf's finalizer is shared by the shards: a shard
    # that dropped its daemon for another's policy would remove it and the owner add it, forever.)
    settled = len(cluster.requests)
    wait_until(lambda: all(len(status_writes(cluster.requests[settled:], n)) >= 3 for n in names[0] + names[1]),
               timeout=30, message="the policies stopped being evaluated")
    assert not kopf_writes(cluster.requests[settled:]), "Kopf's instances keep rewriting the policies"
    requests = cluster.requests
    for index, shard in enumerate(shards):
        other = shards[1 - index]
        for name in names[index]:
            writes = status_writes(requests, name)
            assert writes and by(shard, writes) == writes, f"{name} belongs to shard {index} alone"
            assert not by(other, writes)
        assert f"running the policies of shard {index} of 2" in shard.log_path.read_text()
        lease = cluster.get("coordination.k8s.io/v1", "leases", NAMESPACE, f"homeostat-shard-{index}")
        assert lease["spec"]["holderIdentity"] == agent(shard).strip("()")
        assert leader_gauge(shard, f"homeostat-shard-{index}") == 1.0
    # Deleting a policy is not held up by the shard that does not run it.
    for name in (names[0][0], names[1][0]):
        cluster.delete(API, "anomalypolicies", "shop", name)
    wait_until(lambda: not any(cluster.get(API, "anomalypolicies", "shop", n) for n in (names[0][0], names[1][0])),
               timeout=30, message="a deleted policy was never released by Kopf's finalizer")
