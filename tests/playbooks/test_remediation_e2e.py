"""Remediation end to end: a real Prometheus with imported history (detectors warm at once), an
exporter the test drives, the emulated API server, and `homeostat run` as its own process.

Each test follows one incident through its phases and reads the outcome the way an SRE would:
the Incident (`kubectl get inc`), the Events, the workload, the operator's metrics, and the API
server's request log (which writes the operator made, and how many).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import threading
import time
from typing import Any

import kmock
import pytest

from homeostat.lab.harness import (
    LAB_PODS,
    deployment,
    policy,
    wait_until,
)
from homeostat.lab.prometheus import PrometheusServer

API = "homeostat.dev/v1alpha1"
PODS = LAB_PODS
ACTION_KEY = "homeostat.dev/action-key"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CLAIM = "homeostat.dev/claim"
WRITES = ("POST", "PUT", "PATCH", "DELETE")

pytestmark = pytest.mark.slow




@pytest.fixture
def prometheus(warm_prometheus: PrometheusServer) -> PrometheusServer:
    """Here every Prometheus starts with the healthy past imported (conftest's `warm_prometheus`)."""
    return warm_prometheus


def remediation_spec(steps: list[dict[str, Any]], **playbook: Any) -> dict[str, Any]:
    return {
        "target": {"kind": "Deployment", "name": "checkout"},
        "interval": "1s", "lookback": "10m", "evaluationDelay": "0s", "staleness": "3s", "seriesTtl": "60s",
        "signals": [{"name": "latency", "query": "max by (pod) (lab_latency_seconds)",
                     "detector": {"name": "robust_zscore"}}],
        "confirm": {"k": 2, "n": 3},
        "playbook": {"verify": "3s", "cooldown": "3s", "maxActionsPerHour": 10, "reopenWindow": "2m",
                     "escalationHold": "10m", "steps": steps, **playbook},
    }


class Scene:
    """The cluster, Prometheus, the exporter levels and the operator of one test."""

    def __init__(self, cluster: Any, prometheus: PrometheusServer, latency: dict[str, float],
                 start_operator: Any) -> None:
        self.cluster = cluster
        self.prometheus = prometheus
        self.latency = latency
        self.start_operator = start_operator
        self.operator: Any = None
        cluster.apply(deployment("checkout", replicas=2))
        prometheus.wait_for("lab_latency_seconds", count=3)

    def start(self, *extra: str) -> Any:
        self.operator = self.start_operator(self.prometheus.url, extra=list(extra))
        return self.operator

    def apply_policy(self, spec: dict[str, Any], name: str = "checkout") -> None:
        self.cluster.apply(policy(name, spec))
        wait_until(lambda: self.policy_status(name).get("phase") == "Healthy", timeout=30,
                   message="detectors not warm after back-filling the imported history")

    def policy_status(self, name: str = "checkout") -> dict[str, Any]:
        return (self.cluster.get(API, "anomalypolicies", "shop", name) or {}).get("status") or {}

    def incidents(self) -> list[dict[str, Any]]:
        return sorted(self.cluster.list(API, "incidents", namespace="shop"), key=lambda i: i["metadata"]["name"])

    def incident(self) -> dict[str, Any]:
        found = self.incidents()
        assert len(found) == 1, [i["metadata"]["name"] for i in found]
        return found[0]

    def status(self) -> dict[str, Any]:
        return self.incident().get("status") or {}

    def wait_phase(self, phase: str, timeout: float = 30) -> dict[str, Any]:
        return wait_until(lambda: (s := self.incidents()) and (s[-1].get("status") or {}).get("phase") == phase
                          and s[-1], timeout=timeout,
                          message=f"no incident reached {phase}; operator log:\n{self.operator.log()}")

    def spike(self, pod: str = "a", level: float = 1.0) -> None:
        self.latency[pod] = level

    def heal(self) -> None:
        for pod in PODS:
            self.latency[pod] = 0.1

    def deployment(self, namespace: str = "shop") -> dict[str, Any]:
        found: dict[str, Any] = self.cluster.get("apps/v1", "deployments", namespace, "checkout")
        return found

    def template_notes(self) -> dict[str, str]:
        notes: dict[str, str] = self.deployment()["spec"]["template"]["metadata"].get("annotations") or {}
        return notes

    def workload_writes(self) -> list[Any]:
        """Writes the operator made to workloads and pods (anything but our own CRs and Events)."""
        return [r for r in self.cluster.requests if (r.user_agent or "").startswith("homeostat/")
                and r.method in WRITES and ("/apis/apps/" in r.path or "/pods" in r.path)]

    def action_writes(self) -> list[Any]:
        """Workload writes of the actions themselves, without the claims written before them."""
        return [w for w in self.workload_writes() if CLAIM not in str(w.body)]

    def claim_writes(self) -> list[Any]:
        return [w for w in self.workload_writes() if CLAIM in str(w.body)]

    def events(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [e for e in self.cluster.events("shop")
                if (e.get("involvedObject") or {}).get("kind") == kind
                and (e.get("involvedObject") or {}).get("name") == name]

    def wait_events(self, kind: str, name: str, reasons: set[str], timeout: float = 15) -> list[dict[str, Any]]:
        """The Events on an object once all `reasons` are among them. The operator posts its Events
        after the status write they tell of, in separate requests: waiting on the status is not enough."""
        def posted() -> list[dict[str, Any]]:
            found = self.events(kind, name)
            return found if reasons <= {e["reason"] for e in found} else []

        found: list[dict[str, Any]] = wait_until(posted, timeout=timeout,
                                                 message=f"Events {sorted(reasons)} never all posted on {kind} {name}")
        return found

    def annotate_incident(self, name: str, annotations: dict[str, str]) -> None:
        """What `kubectl annotate` does: a merge patch of the metadata only. (A get-then-replace would
        put back the status read before it, undoing whatever the operator wrote in between.)"""
        self.kubectl("annotate", "incident", name, "-n", "shop", *(f"{k}={v}" for k, v in annotations.items()))

    def kubectl(self, *args: str) -> str:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.cluster.kubeconfig_path), *args],
                              capture_output=True, text=True, check=True, timeout=30).stdout

    def metric(self, line_start: str) -> float:
        for line in self.operator.metrics().splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
        return 0.0

    def wait_metric(self, line_start: str, value: float, timeout: float = 15) -> None:
        """The operator counts after the API write it counts (and its Events): wait for the count."""
        wait_until(lambda: self.metric(line_start) == value, timeout=timeout,
                   message=f"{line_start} never reached {value}")


@pytest.fixture
def scene(cluster: Any, prometheus: PrometheusServer, latency: dict[str, float], start_operator: Any) -> Scene:
    return Scene(cluster, prometheus, latency, start_operator)


# --- the happy path ------------------------------------------------------------------------------


def test_an_anomaly_opens_one_incident_a_restart_resolves_it(scene: Scene) -> None:
    scene.cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    scene.cluster.apply(deployment("checkout", namespace="other"))  # same name elsewhere: never touched
    operator = scene.start()
    scene.apply_policy(remediation_spec([{"action": "restart"}, {"action": "scale-out"}]))
    # A conflict on the first status write of the incident: retried on a fresh read.
    scene.cluster.handler["patch", kmock.resource("homeostat.dev/v1alpha1/incidents")][:1] << 409
    before = scene.template_notes().get(RESTARTED_AT)
    scene.spike("a")
    wait_until(lambda: scene.template_notes().get(RESTARTED_AT) != before, timeout=30,
               message=f"no restart; operator log:\n{operator.log()}")
    incident = scene.incident()
    name = incident["metadata"]["name"]
    wait_until(lambda: scene.policy_status().get("activeIncident") == name, timeout=15,
               message="the policy does not name its incident")  # written at the end of the same cycle
    scene.heal()  # the restart worked
    scene.wait_phase("Resolved")

    incident = scene.incident()
    status = incident["status"]
    owner = incident["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("AnomalyPolicy", "checkout")
    (series,) = incident["spec"]["involved"]
    assert series["labels"] == {"pod": "a"} and series["observed"] == pytest.approx(1.0, rel=0.1)
    assert series["upper"] < 0.2 and series["expected"] == pytest.approx(0.1, rel=0.2)
    events = [e["event"] for e in status["timeline"]]
    assert events == ["Detected", "ActionIntended", "ActionSucceeded", "ActionLanded", "Resolved"], events
    (record,) = status["actions"]
    assert record["key"] == f"{name}/0/1" and record["state"] == "Succeeded" and record["action"] == "restart"
    assert scene.template_notes()[ACTION_KEY] == record["key"]
    writes = scene.workload_writes()
    assert len([w for w in scene.action_writes() if w.status == 200]) == 1, "one restart, one write"
    (claim,) = [w for w in scene.claim_writes() if w.status == 200]  # the target claimed first, for that key
    assert record["key"] in str(claim.body) and "resourceVersion" in str(claim.body)
    assert scene.deployment()["metadata"]["annotations"][CLAIM].endswith(f"shop/{record['key']}")
    assert all("/namespaces/shop/" in w.path for w in writes)
    assert scene.deployment("other")["metadata"]["generation"] == 1

    header, row = (re.split(r"\s{2,}", line.strip()) for line in scene.kubectl("get", "inc", "-n", "shop").splitlines())
    assert header == ["NAME", "POLICY", "TARGET", "SIGNAL", "PHASE", "LAST-ACTION", "AGE"]
    assert row[:6] == [name, "checkout", "checkout", "latency", "Resolved", "restart Succeeded"]
    # IncidentResolved is posted after the Resolved status write (first on the Incident, then on
    # the Deployment): wait for the Events themselves.
    told = {"IncidentOpened", "ActionSucceeded", "IncidentResolved"}
    scene.wait_events("Incident", name, told)
    scene.wait_events("Deployment", "checkout", told)
    wait_until(lambda: scene.policy_status().get("activeIncident") is None, timeout=15,
               message="policy still shows the resolved incident as active")
    # Counters are bumped just after the writes they count (the policy's status write awaited
    # above comes later still): wait for the count rather than lean on that order.
    scene.wait_metric('homeostat_incidents_total{phase="Resolved"}', 1)
    assert scene.metric('homeostat_incidents_total{phase="Detected"}') == 1
    assert scene.metric('homeostat_actions_total{action="restart",outcome="Succeeded"}') == 1


# --- escalation ----------------------------------------------------------------------------------


def test_steps_exhausted_escalate_then_nothing_is_done_until_a_human_clears_it(scene: Scene) -> None:
    scene.start()
    # Series join an incident only while it is active: the verification window of the one step
    # is long enough for pod b to be confirmed (two cycles after a scrape) on a loaded machine.
    scene.apply_policy(remediation_spec([{"action": "restart"}], verify="12s"))
    scene.spike("a")
    wait_until(lambda: scene.incidents(), timeout=30, message="no incident")
    scene.spike("b")  # a continuing anomaly on another pod: the same incident, one more series
    wait_until(lambda: {s["labels"]["pod"] for s in scene.incident()["spec"]["involved"]} == {"a", "b"},
               timeout=30, message=f"pod b never joined the incident; operator log:\n{scene.operator.log()}")
    escalated = scene.wait_phase("Escalated", timeout=40)
    name = escalated["metadata"]["name"]
    assert {s["labels"]["pod"] for s in escalated["spec"]["involved"]} == {"a", "b"}
    status = escalated["status"]
    assert status["holdUntil"] and "homeostat.dev/cleared=true" in status["message"]
    assert [e["event"] for e in status["timeline"]][-2:] == ["NotRecovered", "Escalated"]
    writes = len(scene.workload_writes())
    time.sleep(6)  # the anomaly goes on: no action, no new incident
    assert len(scene.workload_writes()) == writes and len(scene.incidents()) == 1
    wait_until(lambda: scene.policy_status().get("activeIncident") == name, timeout=15,
               message="the policy does not name its incident")  # written at the end of the same cycle
    escalation = scene.wait_events("Deployment", "checkout", {"IncidentEscalated"})
    assert all(e["type"] == "Warning" for e in escalation if e["reason"] == "IncidentEscalated")
    scene.wait_metric('homeostat_incidents_total{phase="Escalated"}', 1)

    scene.annotate_incident(name, {"homeostat.dev/cleared": "true"})  # a human looked at it
    wait_until(lambda: len(scene.incidents()) == 2, timeout=30, message="clearing did not let a new incident open")
    assert scene.cluster.get(API, "incidents", "shop", name)["status"]["holdReleased"]


# --- guardrails ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["policy", "operator"])
def test_dry_run_records_every_decision_and_writes_nothing(scene: Scene, where: str) -> None:
    scene.start(*(["--dry-run"] if where == "operator" else []))
    spec = remediation_spec([{"action": "restart"}, {"action": "scale-out", "scaleOut": {"step": 2, "max": 5}}],
                            **({"dryRun": True} if where == "policy" else {}))
    scene.apply_policy(spec)
    scene.spike("a")
    escalated = scene.wait_phase("Escalated", timeout=40)
    records = escalated["status"]["actions"]
    assert [(r["action"], r["state"], r["dryRun"]) for r in records] == [
        ("restart", "DryRun", True), ("scale-out", "DryRun", True)]
    assert "would restart" in records[0]["message"] and "2 -> 4" in records[1]["message"]
    assert scene.workload_writes() == []
    assert scene.deployment()["spec"]["replicas"] == 2
    assert scene.metric('homeostat_actions_total{action="restart",outcome="DryRun"}') == 1


def test_suspend_stops_acting_until_lifted(scene: Scene) -> None:
    scene.start()
    spec = remediation_spec([{"action": "restart"}], suspend=True)
    scene.apply_policy(spec)
    scene.spike("a")
    wait_until(lambda: scene.incidents() and (scene.status().get("waiting") or "").startswith("Suspended"),
               timeout=30, message="suspended incident not reported")
    scene.wait_events("Deployment", "checkout", {"ActionSkipped"})  # posted after the status write
    time.sleep(3)  # cycles go by: still nothing done, and the hold is not announced again
    assert scene.workload_writes() == [] and scene.status()["phase"] == "Detected"
    skipped = [e for e in scene.events("Deployment", "checkout") if e["reason"] == "ActionSkipped"]
    assert len(skipped) == 1 and "suspend" in skipped[0]["message"]
    # Lifting it rebuilds the monitor (a spec change); the Incident in the API carries on.
    spec["playbook"]["suspend"] = False
    scene.cluster.apply(policy("checkout", spec))
    # The record is written as Intended before the write and Succeeded after it: wait for the end.
    wait_until(lambda: [r["state"] for r in scene.status().get("actions", [])] == ["Succeeded"], timeout=30,
               message="no successful action after suspend was lifted")
    assert len(scene.incidents()) == 1


def test_a_paused_workload_is_never_touched(scene: Scene) -> None:
    deploy = scene.deployment()
    deploy["metadata"]["annotations"] = {"homeostat.dev/paused": "true"}
    scene.cluster.apply(deploy)
    scene.start()
    scene.apply_policy(remediation_spec([{"action": "restart"}, {"action": "scale-out"}]))
    scene.spike("a")
    wait_until(lambda: scene.incidents() and (scene.status().get("waiting") or "").startswith("Paused"),
               timeout=30, message="paused workload not reported")
    skipped = scene.wait_events("Deployment", "checkout", {"ActionSkipped"})  # posted after the status write
    assert any(e["reason"] == "ActionSkipped" and "paused" in e["message"] for e in skipped)
    time.sleep(4)  # cycles go by: still nothing done
    assert scene.workload_writes() == [] and scene.status().get("actions", []) == []


def test_cooldown_and_hourly_budget_hold_the_next_step(scene: Scene) -> None:
    scene.start()
    scene.apply_policy(remediation_spec([{"action": "restart"}, {"action": "restart"}, {"action": "restart"}],
                                        cooldown="8s", verify="2s", maxActionsPerHour=2))
    scene.spike("a")
    wait_until(lambda: len(scene.incidents()) == 1 and len(scene.status().get("actions", [])) == 2, timeout=40,
               message="second restart never came")
    first, second = scene.status()["actions"]
    from homeostat.api.times import parse_time

    assert parse_time(second["startedAt"]) - parse_time(first["startedAt"]) >= 8
    timeline = scene.status()["timeline"]
    assert any(e["event"] == "ActionHeld" and "Cooldown" in e["message"] for e in timeline)
    wait_until(lambda: (scene.status().get("waiting") or "").startswith("RateLimited"), timeout=30,
               message="the third action was not held by maxActionsPerHour")
    assert len(scene.status()["actions"]) == 2
    assert len([w for w in scene.action_writes() if w.status == 200]) == 2


def test_the_operator_wide_cap_holds_a_second_remediation_until_the_first_ends(scene: Scene) -> None:
    scene.cluster.apply(deployment("payments", replicas=2))
    scene.start("--max-concurrent-remediations", "1")
    steps = [{"action": "restart"}, {"action": "scale-out"}]
    # checkout holds the one slot through its verification windows: long enough for payments'
    # anomaly to be confirmed and held meanwhile, even on a loaded machine.
    first = remediation_spec(steps, verify="10s")
    # Each policy watches its own pod: pod b's anomaly is payments' alone, so healing pod a resolves
    # checkout's incident (were b in it too, only its escalation would free the slot, much later).
    first["signals"][0]["query"] = 'max by (pod) (lab_latency_seconds{pod="a"})'
    scene.apply_policy(first)
    other = remediation_spec(steps, verify="5s")
    other["target"]["name"] = "payments"
    other["signals"][0]["query"] = 'max by (pod) (lab_latency_seconds{pod="b"})'
    scene.apply_policy(other, name="payments")
    scene.spike("a")
    wait_until(lambda: scene.incidents() and scene.status().get("actions"), timeout=30,
               message="the first remediation did not start")
    scene.spike("b")
    wait_until(lambda: len(scene.incidents()) == 2, timeout=30, message="two incidents expected")
    held = wait_until(lambda: [i for i in scene.incidents()
                               if ((i.get("status") or {}).get("waiting") or "").startswith("ConcurrencyCap")],
                      timeout=30, message="the second remediation was not held by the cap")
    (waiting,) = held
    assert not waiting["status"].get("actions")
    assert "1 remediations in progress, the operator's limit is 1" in waiting["status"]["waiting"]
    scene.latency["a"] = 0.1  # the first one resolves and frees its slot: the second goes ahead
    wait_until(lambda: (scene.cluster.get(API, "incidents", "shop", waiting["metadata"]["name"])["status"]
                        .get("actions")), timeout=45, message="the held remediation never went ahead")


def test_prometheus_down_during_an_incident_means_no_action_and_no_resolution(scene: Scene) -> None:
    scene.start()
    scene.apply_policy(remediation_spec([{"action": "restart"}, {"action": "scale-out"}], verify="4s"))
    scene.spike("a")
    scene.wait_phase("Verifying")
    scene.prometheus.stop()
    scene.heal()  # it would resolve, could we see it (healed after the stop: no scrape can see it)
    wait_until(lambda: (scene.status().get("waiting") or "").startswith("NoData"), timeout=30,
               message="no-data not reported on the incident")
    writes = len(scene.workload_writes())
    time.sleep(6)
    status = scene.status()
    assert status["phase"] == "Verifying" and len(status["actions"]) == 1
    assert len(scene.workload_writes()) == writes
    assert [e["event"] for e in status["timeline"]].count("Inconclusive") == 1


def test_a_recurrence_reopens_with_the_next_step_and_scale_out_is_undone_when_quiet(scene: Scene) -> None:
    scene.start()
    scene.apply_policy(remediation_spec(
        [{"action": "restart"}, {"action": "scale-out", "scaleOut": {"step": 2, "max": 5, "scaleBackAfter": "4s"}}],
        cooldown="1s"))
    before = scene.template_notes().get(RESTARTED_AT)
    scene.spike("a")
    wait_until(lambda: scene.template_notes().get(RESTARTED_AT) != before, timeout=30, message="no restart")
    scene.heal()
    scene.wait_phase("Resolved")
    scene.spike("a")  # back within the reopen window: the same incident, the next step
    wait_until(lambda: scene.deployment()["spec"]["replicas"] == 4, timeout=30, message="no scale-out")
    scene.heal()
    resolved = scene.wait_phase("Resolved")
    assert resolved["status"]["reopened"] == 1 and len(scene.incidents()) == 1
    wait_until(lambda: scene.deployment()["spec"]["replicas"] == 2, timeout=30, message="no scale-back")
    # The scale-back is recorded Succeeded just after its write lands: wait for the record too.
    expected = [("restart", "Step", "Succeeded"), ("scale-out", "Step", "Succeeded"),
                ("scale-out", "ScaleBack", "Succeeded")]
    wait_until(lambda: [(r["action"], r["purpose"], r["state"]) for r in scene.status()["actions"]] == expected,
               timeout=15, message="the scale-back was never recorded Succeeded")
    assert "Reopened" in [e["event"] for e in scene.status()["timeline"]]


def test_a_false_positive_verdict_feeds_back_and_is_counted(scene: Scene) -> None:
    operator = scene.start()
    scene.apply_policy(remediation_spec([{"action": "restart"}], verify="1m"))
    scene.spike("a", level=0.3)
    scene.wait_phase("Verifying")
    name = scene.incident()["metadata"]["name"]
    scene.heal()
    scene.annotate_incident(name, {"homeostat.dev/verdict": "false-positive"})  # "that was no incident"
    resolved = scene.wait_phase("Resolved")
    assert len(scene.incidents()) == 1
    assert resolved["status"]["feedback"] == "false-positive"
    assert "fed back to the detectors of 1 of 1 series" in resolved["status"]["message"]
    wait_until(lambda: "homeostat_false_positives_total 1.0" in operator.metrics(), timeout=15,
               message="false positive not counted")
    scene.wait_events("Incident", name, {"FalsePositive"})  # posted after the Resolved write


# --- crash safety --------------------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["before-the-write", "after-the-write"])
def test_killed_between_intent_and_outcome_the_restart_happens_exactly_once(scene: Scene, moment: str) -> None:
    """kill -9 while the action's write is in flight (it never lands), or once it has landed but its
    outcome is not recorded yet; a new operator process finishes the incident without a second write."""
    arrived = threading.Event()

    async def stall(request: Any) -> None:
        arrived.set()
        await asyncio.sleep(30)  # the operator is killed meanwhile; its request is then dropped

    if moment == "before-the-write":
        restart = scene.cluster.handler["patch", kmock.resource("apps/v1/deployments")][
            lambda request: ACTION_KEY.encode() in (request.body or b"")]  # the restart, not the claim before it
        restart[:1] << stall
    else:
        outcome = scene.cluster.handler["patch", kmock.resource("homeostat.dev/v1alpha1/incidents")][
            lambda request: b'"Succeeded"' in (request.body or b"")]
        outcome[:1] << stall
    first = scene.start()
    scene.apply_policy(remediation_spec([{"action": "restart"}], verify="3s"))
    scene.spike("a")
    wait_until(arrived.is_set, timeout=30, message=f"the stalled request never came:\n{first.log()}")
    assert [r["state"] for r in scene.status()["actions"]] == ["Intended"]
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)

    second = scene.start()
    wait_until(lambda: scene.status()["actions"][0]["state"] == "Succeeded", timeout=30,
               message=f"the interrupted restart was not resumed:\n{second.log()}")
    scene.heal()
    resolved = scene.wait_phase("Resolved")
    (record,) = resolved["status"]["actions"]
    landed = [w for w in scene.workload_writes() if w.status == 200 and ACTION_KEY in str(w.body)]
    assert len(landed) == 1, f"the restart was written {len(landed)} times"
    assert scene.template_notes()[ACTION_KEY] == record["key"]
    if moment == "after-the-write":
        assert "already done" in record["message"]
    assert "ActionResumed" in {e["reason"] for e in scene.events("Incident", resolved["metadata"]["name"])}


# --- a signal with no series ---------------------------------------------------------------------


ERRORS_5XX = 'sum(rate(lab_requests_total{code=~"5.."}[5s]))'  # a healthy service has no 5xx series at all


@pytest.mark.parametrize("absent", ["nodata", "zero"])
def test_a_signal_with_no_series_is_no_data_unless_the_policy_says_zero(scene: Scene, absent: str) -> None:
    # Restart on latency alone, when the error signal is normal. The 5xx query returns nothing:
    # with `absent: nodata` the step waits for a verdict, and past noDataTimeout a human is called;
    # with `absent: zero` no series means no errors, the step runs and the restart resolves it.
    spec = remediation_spec([{"action": "restart", "when": {"anomalous": ["latency"], "normal": ["errors"]}}],
                            noDataTimeout="6s")
    spec["signals"].append({"name": "errors", "query": ERRORS_5XX, "absent": absent,
                            "detector": {"name": "robust_zscore"}})
    scene.start()
    scene.cluster.apply(policy("checkout", spec))
    wait_until(lambda: scene.policy_status().get("phase") in ("Healthy", "Anomalous"), timeout=30,
               message=f"the policy never evaluated; operator log:\n{scene.operator.log()}")
    errors = next(s for s in scene.policy_status()["signals"] if s["name"] == "errors")
    if absent == "nodata":
        assert errors["verdict"] == "no-data" and errors["message"] == "the query returned no series"
    else:
        assert errors["verdict"] == "normal" and errors["series"][0]["value"] == 0.0
    scene.spike("a")
    if absent == "nodata":
        escalated = scene.wait_phase("Escalated", timeout=40)
        status = escalated["status"]
        assert status["actions"] == [] and scene.workload_writes() == []
        assert "no data for" in status["message"] and "playbook.noDataTimeout 6s" in status["message"]
        assert "when: no verdict for errors" in status["message"]
        assert [e["event"] for e in status["timeline"]] == ["Detected", "Inconclusive", "Escalated"]
    else:
        wait_until(lambda: scene.incidents() and scene.status().get("actions"), timeout=30,
                   message=f"no restart; operator log:\n{scene.operator.log()}")
        scene.heal()
        resolved = scene.wait_phase("Resolved", timeout=40)
        assert [(r["action"], r["state"]) for r in resolved["status"]["actions"]] == [("restart", "Succeeded")]


# --- one decision at a time per workload ---------------------------------------------------------


def test_two_policies_on_one_workload_never_both_act_in_one_cooldown(scene: Scene) -> None:
    # Same target, same signal, same interval: both confirm in the same cycle. The claim written to
    # the workload before an action lets one through; the other finds it and holds.
    scene.start()
    spec = remediation_spec([{"action": "restart"}], cooldown="1m")
    scene.cluster.apply(policy("checkout-a", spec))
    scene.apply_policy(spec, name="checkout-b")
    wait_until(lambda: scene.policy_status("checkout-a").get("phase") == "Healthy", timeout=30,
               message="policy a not warm")
    scene.spike("a")
    wait_until(lambda: len(scene.incidents()) == 2, timeout=30, message="both policies should open an incident")

    def held() -> list[dict[str, Any]]:
        return [i for i in scene.incidents()
                if any(e["event"] == "ActionHeld" for e in (i.get("status") or {}).get("timeline", []))]

    wait_until(held, timeout=30, message=f"neither incident was held; operator log:\n{scene.operator.log()}")
    time.sleep(3)  # several cycles of both policies with the anomaly on
    assert len([w for w in scene.action_writes() if w.status == 200]) == 1, "one restart in the cooldown"
    (waiting,) = held()
    message = next(e["message"] for e in waiting["status"]["timeline"] if e["event"] == "ActionHeld")
    assert "Claimed" in message or "Cooldown" in message, message


def test_a_policy_deleted_and_recreated_still_respects_the_cooldown_of_its_workload(scene: Scene) -> None:
    scene.start()
    spec = remediation_spec([{"action": "restart"}], cooldown="2m")
    scene.apply_policy(spec)
    scene.spike("a")
    wait_until(lambda: scene.incidents() and scene.status().get("actions"), timeout=30,
               message=f"no restart; operator log:\n{scene.operator.log()}")
    scene.kubectl("delete", "anomalypolicy", "checkout", "-n", "shop", "--wait=true")
    wait_until(lambda: not scene.incidents(), timeout=30, message="the Incidents were not deleted with the policy")
    scene.apply_policy(spec)  # the anomaly goes on: a new incident, and the workload's last action 2m ago at most
    wait_until(lambda: scene.incidents() and (scene.status().get("waiting") or "").startswith("Cooldown"),
               timeout=30, message=f"the new incident was not held by the cooldown:\n{scene.operator.log()}")
    assert len([w for w in scene.action_writes() if w.status == 200]) == 1
