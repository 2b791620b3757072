"""An Incident deleted by a human mid-remediation (`kubectl delete inc`) gives back its
concurrent-remediation slot: end to end with `--max-concurrent-remediations 1` (the emulated API
server, a real Prometheus, `homeostat run` as its own process), and on `RemediationSlots`."""

from __future__ import annotations

from typing import Any

import pytest

from homeostat.lab.harness import WaitTimeout, deployment, policy, wait_until
from homeostat.lab.prometheus import PrometheusServer
from homeostat.playbooks.guards import RemediationSlots

API = "homeostat.dev/v1alpha1"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def spec(target: str, pod: str) -> dict[str, Any]:
    """One restart, then a verification long enough to outlast the test: the slot stays taken."""
    return {
        "target": {"kind": "Deployment", "name": target},
        "interval": "1s", "lookback": "10m", "evaluationDelay": "0s", "staleness": "3s", "seriesTtl": "60s",
        "signals": [{"name": "latency", "query": f'max by (pod) (lab_latency_seconds{{pod="{pod}"}})',
                     "detector": {"name": "robust_zscore"}}],
        "confirm": {"k": 2, "n": 3},
        "playbook": {"verify": "10m", "cooldown": "3s", "maxActionsPerHour": 10, "steps": [{"action": "restart"}]},
    }


def incidents_of(cluster: Any, name: str) -> list[dict[str, Any]]:
    return [i for i in cluster.list(API, "incidents", namespace="shop") if i["spec"]["policy"] == name]


def policy_status(cluster: Any, name: str) -> dict[str, Any]:
    return (cluster.get(API, "anomalypolicies", "shop", name) or {}).get("status") or {}


def metric(operator: Any, name: str) -> float | None:
    for line in operator.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


@pytest.mark.slow
def test_an_incident_deleted_mid_remediation_frees_its_slot_for_another_policy(
    cluster: Any, warm_prometheus: PrometheusServer, latency: dict[str, float], start_operator: Any
) -> None:
    for name in ("checkout", "payments"):
        cluster.apply(deployment(name, replicas=2))
    warm_prometheus.wait_for("lab_latency_seconds", count=3)
    operator = start_operator(warm_prometheus.url, extra=["--max-concurrent-remediations", "1"])
    for name, pod in (("checkout", "a"), ("payments", "b")):
        cluster.apply(policy(name, spec(name, pod)))
        wait_until(lambda name=name: policy_status(cluster, name).get("phase") == "Healthy", timeout=45,
                   message=f"{name}: detectors not warm after the back-fill")

    latency["a"] = 1.0  # checkout's anomaly: restarted, then verified for 10 minutes (holding the slot)
    first = wait_until(lambda: [i for i in incidents_of(cluster, "checkout")
                                if (i.get("status") or {}).get("phase") == "Verifying"], timeout=45,
                       message=f"checkout's remediation did not start\n{operator.log()}")[0]
    wait_until(lambda: metric(operator, "homeostat_remediations_in_progress") == 1, timeout=15,
               message="the remediation does not hold a slot")
    latency["a"] = 0.1  # healed, so that checkout opens no new incident once its own is gone
    wait_until(lambda: (s := policy_status(cluster, "checkout")).get("signals")
               and not s["signals"][0]["confirmed"], timeout=30, message="checkout's anomaly never cleared")

    cluster.delete(API, "incidents", "shop", first["metadata"]["name"])  # a human: `kubectl delete inc`
    assert cluster.get(API, "incidents", "shop", first["metadata"]["name"]) is None

    before = cluster.get("apps/v1", "deployments", "shop", "payments")["spec"]["template"]["metadata"]
    latency["b"] = 1.0  # payments' anomaly: with the slot back, it is remediated at once
    try:
        second = wait_until(lambda: [i for i in incidents_of(cluster, "payments")
                                     if (i.get("status") or {}).get("actions")], timeout=45,
                            message="payments' incident never acted")[0]
    except WaitTimeout as exc:
        waiting = [(i.get("status") or {}).get("waiting") for i in incidents_of(cluster, "payments")]
        raise AssertionError(f"{exc}; it waits: {waiting}") from exc
    assert second["status"]["actions"][0]["action"] == "restart"
    assert not (second["status"].get("waiting") or "").startswith("ConcurrencyCap")
    wait_until(lambda: (cluster.get("apps/v1", "deployments", "shop", "payments")["spec"]["template"]["metadata"]
                        .get("annotations") or {}).get(RESTARTED_AT) != (before.get("annotations") or {})
               .get(RESTARTED_AT), timeout=15, message="payments was not restarted")
    assert metric(operator, "homeostat_remediations_in_progress") == 1  # payments' only: none leaked
    assert incidents_of(cluster, "checkout") == []


def test_reconciling_a_policys_slots_frees_those_of_incidents_no_longer_active() -> None:
    slots = RemediationSlots(1)
    assert slots.try_acquire("shop/checkout/checkout-1")
    assert not slots.try_acquire("shop/payments/payments-1")
    slots.reconcile("shop/checkout/", active=set())  # checkout-1 was deleted (or is no longer active)
    assert slots.in_use == 0 and slots.try_acquire("shop/payments/payments-1")
    # Another policy's slots are not touched; the active ones of this policy are taken (back).
    slots.reconcile("shop/checkout/", active={"shop/checkout/checkout-2"})
    assert slots.holds("shop/payments/payments-1") and slots.holds("shop/checkout/checkout-2")
    with pytest.raises(ValueError):
        slots.reconcile("shop/checkout/", active={"shop/payments/payments-2"})
