"""The operator end to end: a policy applied to the emulated API server, a real Prometheus
scraping an exporter the test drives, and `homeostat run` as its own process."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from homeostat.lab.exporter import Exporter
from homeostat.lab.harness import (
    LAB_PODS,
    deployment,
    noise,
    policy,
    wait_until,
)
from homeostat.lab.prometheus import PrometheusServer

API = "homeostat.dev/v1alpha1"


def status_of(cluster: Any, name: str) -> dict[str, Any]:
    obj = cluster.get(API, "anomalypolicies", "shop", name) or {}
    status: dict[str, Any] = obj.get("status") or {}
    return status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def events_for(cluster: Any, name: str) -> list[dict[str, Any]]:
    return [
        e for e in cluster.events("shop") if (e.get("involvedObject") or e.get("regarding") or {}).get("name") == name
    ]


def settled_count(count: Any, quiet: float = 1.0, timeout: float = 15.0) -> int:
    """`count()` once it has not changed for `quiet` seconds (requests still in flight have landed)."""
    last, since = count(), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return int(last)
    raise AssertionError(f"requests kept coming for {timeout}s ({last} so far)")


def simple_spec(query: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {"kind": "Deployment", "name": "checkout"},
        "interval": "1s",
        "lookback": "10m",
        "evaluationDelay": "0s",
        "staleness": "2s",
        "seriesTtl": "4s",
        "signals": [{"name": "latency", "query": query}],
    }
    spec.update(overrides)
    return spec


PODS = LAB_PODS




@pytest.fixture
def prometheus(warm_prometheus: PrometheusServer) -> PrometheusServer:
    """Here every Prometheus starts with the healthy past imported (conftest's `warm_prometheus`)."""
    return warm_prometheus


@pytest.fixture
def noisy_latency(exporter: Exporter) -> Iterator[dict[str, Any]]:
    """The per-pod latency gauge, updated 10 times a second; tests change `level` and `pods`."""
    gauge = exporter.gauge("lab_latency_seconds", ("pod",))
    knobs: dict[str, Any] = {"level": 0.1, "pods": list(PODS)}
    stop = threading.Event()

    def run() -> None:
        step = 0
        while not stop.wait(0.1):
            step += 1
            for index, pod in enumerate(knobs["pods"]):
                gauge.labels(pod).set(noise(knobs["level"], step, index))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield knobs
    stop.set()
    thread.join()


def test_valid_policy_gets_values_and_scores_from_its_first_evaluation(
    cluster: Any, prometheus: PrometheusServer, noisy_latency: dict[str, Any], start_operator: Any
) -> None:
    cluster.apply(deployment("checkout"))
    prometheus.wait_for('lab_latency_seconds{pod="a"}')
    start_operator(prometheus.url)
    cluster.apply(policy("checkout", simple_spec('max(lab_latency_seconds)', interval="2s")))
    # How soon is not asserted by the wall clock (Kopf's reaction and the back-fill take what a
    # loaded CI machine gives them); what is asserted is that the very first status the operator
    # writes, one evaluation after the back-fill, already has values and warm scores.
    wait_until(lambda: status_of(cluster, "checkout").get("signals"), timeout=30, message="no signal status")
    first = next(r for r in cluster.requests
                 if r.method == "PATCH" and r.path.endswith("/anomalypolicies/checkout/status"))
    status = first.body["status"]  # the request log keeps JSON bodies parsed
    series = status["signals"][0]["series"][0]
    assert series["value"] == pytest.approx(0.1, rel=0.1)
    assert series["score"] is not None and 0.0 <= series["score"] <= 1.0
    assert series["verdict"] == "normal"  # warm at once: 10 minutes of history were back-filled
    assert status["lastEvaluation"]
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "PrometheusReachable")["status"] == "True"
    assert status["phase"] == "Healthy"
    # Kopf posts the policy's Events in the background, after the status writes that follow them.
    wait_until(lambda: any(e["reason"] == "MonitorStarted" for e in events_for(cluster, "checkout")), timeout=15,
               message="no MonitorStarted Event")


def test_per_pod_query_tracks_one_state_per_pod_and_forgets_vanished_pods(
    cluster: Any, exporter: Exporter, prometheus: PrometheusServer, noisy_latency: dict[str, Any],
    start_operator: Any,
) -> None:
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_latency_seconds", count=3)
    operator = start_operator(prometheus.url)
    # A vanished series is reported stale from `staleness` (2 s) until `seriesTtl` after it was last
    # seen: 8 s here, several cycles even on a loaded machine, for the test to see it stale.
    cluster.apply(policy("checkout", simple_spec("max by (pod) (lab_latency_seconds)", seriesTtl="10s")))
    status = wait_until(
        lambda: (s := status_of(cluster, "checkout")).get("signals") and s["signals"][0]["seriesCount"] == 3 and s,
        timeout=30, message="expected three series",
    )
    pods = sorted(series["labels"]["pod"] for series in status["signals"][0]["series"])
    assert pods == ["a", "b", "c"]
    assert 'homeostat_series_tracked{namespace="shop",policy="checkout",signal="latency"} 3.0' in operator.metrics()

    # A pod comes (a scale-out) and goes again: Prometheus marks its series stale, the status
    # shows it as stale, and after seriesTtl its detector state is freed.
    noisy_latency["pods"] = [*PODS, "d"]
    wait_until(lambda: status_of(cluster, "checkout")["signals"][0]["seriesCount"] == 4, timeout=30,
               message="new pod not tracked")
    noisy_latency["pods"] = list(PODS)
    exporter.gauge("lab_latency_seconds", ("pod",)).remove("d")
    wait_until(
        lambda: any(s["labels"].get("pod") == "d" and s["verdict"] == "no-data" and "stale" in s["reason"]
                    for s in status_of(cluster, "checkout")["signals"][0]["series"]),
        timeout=30, message="vanished pod not reported as stale",
    )
    wait_until(lambda: status_of(cluster, "checkout")["signals"][0]["seriesCount"] == 3, timeout=30,
               message="vanished pod not forgotten after seriesTtl")


def test_anomaly_is_confirmed_with_expected_band_and_event(
    cluster: Any, prometheus: PrometheusServer, noisy_latency: dict[str, Any], start_operator: Any
) -> None:
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_latency_seconds", count=3)
    start_operator(prometheus.url)
    spec = simple_spec('max(lab_latency_seconds{pod="a"})', confirm={"k": 2, "n": 3})
    cluster.apply(policy("checkout", spec))
    wait_until(lambda: status_of(cluster, "checkout").get("phase") == "Healthy", timeout=30,
               message="detectors not warm after back-filling 10 minutes of history")
    noisy_latency["level"] = 1.0  # a tenfold latency rise
    status = wait_until(lambda: (s := status_of(cluster, "checkout")).get("phase") == "Anomalous" and s,
                        timeout=30, message="anomaly not confirmed")
    series = status["signals"][0]["series"][0]
    assert series["verdict"] == "anomalous"
    assert series["value"] == pytest.approx(1.0, rel=0.1)
    assert series["expected"] == pytest.approx(0.1, rel=0.2)
    assert series["lower"] <= series["expected"] <= series["upper"] < series["value"]
    assert status["signals"][0]["confirmed"] is True
    assert status["signalsSummary"] == "1/1 anomalous"
    # The Warning is emitted after the status write, and Kopf posts it in the background.
    warnings = wait_until(lambda: [e for e in events_for(cluster, "checkout") if e["reason"] == "AnomalyConfirmed"],
                          timeout=15, message="no AnomalyConfirmed Event")
    assert warnings[0]["type"] == "Warning" and "latency" in warnings[0]["message"]


def test_prometheus_down_gives_a_condition_and_never_an_anomalous_verdict(
    cluster: Any, prometheus: PrometheusServer, noisy_latency: dict[str, Any], start_operator: Any
) -> None:
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_latency_seconds", count=3)
    start_operator(prometheus.url)
    cluster.apply(policy("checkout", simple_spec("max by (pod) (lab_latency_seconds)")))
    wait_until(lambda: status_of(cluster, "checkout").get("signals"), timeout=30, message="no first evaluation")

    prometheus.stop()
    noisy_latency["level"] = 5.0  # whatever happens meanwhile cannot be seen, so must not be judged
    status = wait_until(
        lambda: (s := status_of(cluster, "checkout")).get("phase") == "NoData" and s, timeout=30,
        message="Prometheus outage not reported",
    )
    reachable = condition(status, "PrometheusReachable")
    assert reachable["status"] == "False" and "unreachable" in reachable["message"]
    assert condition(status, "Ready")["status"] == "False"
    for _ in range(3):  # and it stays so, cycle after cycle
        signal = status_of(cluster, "checkout")["signals"][0]
        assert signal["verdict"] == "no-data" and signal["confirmed"] is False
        assert all(series["verdict"] == "no-data" for series in signal["series"])
        time.sleep(1)
    wait_until(lambda: any(e["reason"] == "PrometheusUnavailable" for e in events_for(cluster, "checkout")),
               timeout=15, message="no PrometheusUnavailable Event")  # Kopf posts it in the background


@pytest.fixture
def failing_prometheus() -> Iterator[str]:
    """An HTTP server that answers every Prometheus API call with 503, as an overloaded one does."""

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status":"error","errorType":"unavailable","error":"too many queries"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_prometheus_errors_and_a_policy_default_url_that_is_closed(
    cluster: Any, start_operator: Any, failing_prometheus: str, closed_url: str
) -> None:
    cluster.apply(deployment("checkout"))
    closed = closed_url
    start_operator(None)  # the operator has no default Prometheus
    cluster.apply(policy("nowhere", simple_spec("up", prometheus={"url": closed, "timeout": "1s"})))
    cluster.apply(policy("failing", simple_spec("up", prometheus={"url": failing_prometheus})))
    failing = wait_until(lambda: (s := status_of(cluster, "failing")).get("phase") == "NoData" and s, timeout=30,
                         message="503 answers not reported")
    reachable = condition(failing, "PrometheusReachable")
    assert reachable["status"] == "False" and "too many queries" in reachable["message"]
    assert failing["signals"][0]["verdict"] == "no-data" and not failing["signals"][0]["confirmed"]
    cluster.apply(policy("unset", simple_spec("up")))
    status = wait_until(lambda: (s := status_of(cluster, "nowhere")).get("phase") == "NoData" and s, timeout=30,
                        message="closed Prometheus not reported")
    assert condition(status, "PrometheusReachable")["status"] == "False"
    unset = wait_until(lambda: (s := status_of(cluster, "unset")).get("phase") == "Invalid" and s, timeout=30,
                       message="missing Prometheus URL not reported")
    assert "spec.prometheus.url" in condition(unset, "Ready")["message"]


def test_editing_restarts_the_monitor_and_deleting_stops_it(
    cluster: Any, prometheus: PrometheusServer, noisy_latency: dict[str, Any], start_operator: Any
) -> None:
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_latency_seconds", count=3)
    operator = start_operator(prometheus.url)
    cluster.apply(policy("checkout", simple_spec("max(lab_latency_seconds)")))
    wait_until(lambda: status_of(cluster, "checkout").get("signals"), timeout=30, message="no first evaluation")

    edited = policy("checkout", simple_spec("max by (pod) (lab_latency_seconds)"))
    edited["spec"]["signals"][0]["name"] = "pod-latency"
    cluster.apply(edited)
    status = wait_until(
        lambda: (s := status_of(cluster, "checkout")).get("signals") and s["signals"][0]["name"] == "pod-latency" and s,
        timeout=30, message="edited spec not picked up",
    )
    assert status["signals"][0]["seriesCount"] == 3
    # Kopf posts Events in the background: wait for the second one, then check there are not more.
    wait_until(lambda: len([e for e in events_for(cluster, "checkout") if e["reason"] == "MonitorStarted"]) >= 2,
               timeout=15, message="no second MonitorStarted Event after the edit")
    assert len([e for e in events_for(cluster, "checkout") if e["reason"] == "MonitorStarted"]) == 2

    cluster.delete(API, "anomalypolicies", "shop", "checkout")
    wait_until(lambda: 'policy="checkout"' not in operator.metrics(), timeout=20,
               message="deleted policy's state still in the operator's metrics")
    # The daemon is gone; Kopf then releases its finalizer (one more request), and a status write
    # already handed to a worker thread when the daemon was cancelled may still land (a 404).
    # Wait for the policy to be gone and the requests about it to settle, then for nothing more.
    wait_until(lambda: cluster.get(API, "anomalypolicies", "shop", "checkout") is None, timeout=20,
               message="the deleted policy is still there (Kopf's finalizer not released)")
    count = settled_count(lambda: len([r for r in cluster.requests if "/anomalypolicies/checkout" in r.path]))
    time.sleep(3)  # three cycles of the old interval
    assert len([r for r in cluster.requests if "/anomalypolicies/checkout" in r.path]) == count, (
        "the operator still writes to a deleted policy"
    )
