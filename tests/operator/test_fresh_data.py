"""Only fresh, complete data is judged, end to end: `homeostat run` against a real Prometheus
(stale samples) or a server that answers like Thanos or VictoriaMetrics (partial answers), and
no credential of a Prometheus URL in what the operator writes.

Each test confirms an anomaly (a guard breach) if the operator took the data at face value, so
each fails on an operator that does."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client.core import GaugeMetricFamily

from homeostat.lab.exporter import Exporter
from homeostat.lab.harness import deployment, policy, wait_until
from homeostat.lab.prometheus import PrometheusServer

API = "homeostat.dev/v1alpha1"


def status_of(cluster: Any, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (cluster.get(API, "anomalypolicies", "shop", name) or {}).get("status") or {}
    return status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def written_statuses(cluster: Any, name: str) -> list[dict[str, Any]]:
    """Every status the operator wrote for the policy, oldest first (the request log keeps bodies parsed)."""
    return [r.body["status"] for r in cluster.requests
            if r.method == "PATCH" and r.path.endswith(f"/anomalypolicies/{name}/status")]


def events_for(cluster: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events("shop")
            if (e.get("involvedObject") or e.get("regarding") or {}).get("name") == name]


def spec(query: str, **overrides: Any) -> dict[str, Any]:
    """A policy that confirms as soon as two of three points breach the guard (any value above 0.5)."""
    base: dict[str, Any] = {
        "target": {"kind": "Deployment", "name": "checkout"},
        "interval": "1s", "lookback": "1m", "evaluationDelay": "0s", "staleness": "5s", "seriesTtl": "60s",
        "signals": [{"name": "latency", "query": query, "guard": {"above": 0.5}}],
        "confirm": {"k": 2, "n": 3},
    }
    base.update(overrides)
    return base


def wait_for_cycles(cluster: Any, names: Iterable[str], count: int, timeout: float = 60) -> None:
    """Until each policy has had `count` evaluations written: with k=2 of 3, enough to have confirmed."""
    for name in names:
        wait_until(lambda n=name: len(written_statuses(cluster, n)) >= count, timeout=timeout,  # type: ignore[misc]
                   message=f"{name}: fewer than {count} evaluations")


def assert_never_anomalous(cluster: Any, name: str) -> None:
    for status in written_statuses(cluster, name):
        assert status["phase"] != "Anomalous", status
        assert not any(signal["confirmed"] for signal in status.get("signals", [])), status
    assert not [e for e in events_for(cluster, name) if e["reason"] == "AnomalyConfirmed"]


# -- stale samples ---------------------------------------------------------------------------------


class Frozen:
    """`lab_frozen{pod}`: pod a's sample carries an explicit timestamp from the test's start, as a
    frozen exporter's (or a federated or stalled pipeline's) would, so Prometheus keeps returning
    it through its 5-minute lookback; pod b is live (no timestamp: the scrape's time)."""

    def __init__(self) -> None:
        self.frozen_at = time.time() - 10

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("lab_frozen", "a gauge whose pod a stopped changing", labels=["pod"])
        gauge.add_metric(["a"], 1.0, timestamp=self.frozen_at)  # above the guard: anomalous if judged
        gauge.add_metric(["b"], 0.1)
        yield gauge


def test_samples_older_than_staleness_are_no_data_never_confirmed(
    cluster: Any, exporter: Exporter, prometheus: PrometheusServer, start_operator: Any
) -> None:
    exporter.registry.register(Frozen())
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_frozen", count=2)
    start_operator(prometheus.url)
    # The frozen series alone, aggregated: `timestamp(max(...))` would say "now"; its selector's does not.
    cluster.apply(policy("frozen", spec('max(lab_frozen{pod="a"})')))
    # Per series: pod a is stale, pod b is judged.
    cluster.apply(policy("per-pod", spec("max by (pod) (lab_frozen)")))
    # A sum over both pods reads pod a's old sample too: stale as a whole.
    cluster.apply(policy("sum", spec("sum(lab_frozen)")))

    frozen = wait_until(lambda: (s := status_of(cluster, "frozen")).get("phase") == "NoData" and s, timeout=30,
                        message="the frozen series is not reported as no data")
    message = frozen["signals"][0]["message"]
    assert message.startswith("stale: ") and 'lab_frozen{pod="a"}' in message and "spec.staleness 5s" in message
    assert condition(frozen, "DataAvailable")["status"] == "False"
    assert condition(frozen, "PrometheusReachable")["status"] == "True"  # it answered: the data is old

    def pods(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {s["labels"]["pod"]: s for s in (status.get("signals") or [{}])[0].get("series", [])}

    per_pod = wait_until(lambda: (s := status_of(cluster, "per-pod")) and {"a", "b"} <= set(pods(s)) and s,
                         timeout=30, message="per-pod: both pods not in the status")
    a, b = pods(per_pod)["a"], pods(per_pod)["b"]
    assert a["verdict"] == "no-data" and a["reason"].startswith("stale: ") and "lab_frozen{}" in a["reason"]
    assert b["verdict"] != "no-data" and b["value"] == pytest.approx(0.1)
    assert per_pod["signals"][0]["verdict"] != "no-data"  # pod b keeps the signal judged

    wait_for_cycles(cluster, ["frozen", "per-pod", "sum"], count=6)
    assert status_of(cluster, "sum")["signals"][0]["verdict"] == "no-data"
    assert "stale: " in status_of(cluster, "sum")["signals"][0]["message"]
    for name in ("frozen", "per-pod", "sum"):
        assert_never_anomalous(cluster, name)


# -- partial answers -------------------------------------------------------------------------------


ANSWERS: dict[str, dict[str, Any]] = {
    "/vm": {"isPartial": True},  # VictoriaMetrics
    "/thanos": {"warnings": ["receive-0: rpc error: code = Unavailable desc = connection refused"]},
    "/info": {  # PromQL's annotations: about the query, not missing data
        "warnings": ['PromQL warning: encountered a mix of histograms and floats for metric name "lab_x"'],
        "infos": ['PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: '
                  '"lab_x"'],
    },
    "/accept": {"isPartial": True},  # for a policy with spec.prometheus.partialResponse: accept
}


@pytest.fixture
def partial_prometheus() -> Iterator[str]:
    """Answers like Prometheus, with `lab_x` = 5 (above the guard) and, under each path prefix of
    ANSWERS, that answer's partial-response fields on every instant query."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            prefix, _, api = url.path.partition("/api/v1/")
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            if api == "query_range":
                body: dict[str, Any] = {"status": "success", "data": {"resultType": "matrix", "result": []}}
            else:
                t = float(params.get("time", time.time()))
                if "timestamp(" in params["query"]:  # the freshness query: every selector's data is new
                    result = [{"metric": {"__homeostat_selector": "0"}, "value": [t, f"{t:.3f}"]}]
                else:
                    result = [{"metric": {}, "value": [t, "5"]}]
                body = {"status": "success", "data": {"resultType": "vector", "result": result},
                        **ANSWERS[prefix]}
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_partial_answers_are_no_data_unless_accepted_and_promql_annotations_are_not_partial(
    cluster: Any, start_operator: Any, partial_prometheus: str
) -> None:
    cluster.apply(deployment("checkout"))
    start_operator(None)
    for name in ("vm", "thanos", "info"):
        cluster.apply(policy(name, spec("max(lab_x)", prometheus={"url": f"{partial_prometheus}/{name}"})))
    cluster.apply(policy("accept", spec("max(lab_x)", prometheus={"url": f"{partial_prometheus}/accept",
                                                                   "partialResponse": "accept"})))

    # Annotations do not blind the operator, and a policy that accepts partial answers judges them.
    for name in ("info", "accept"):
        wait_until(lambda n=name: status_of(cluster, n).get("phase") == "Anomalous", timeout=30,  # type: ignore[misc]
                   message=f"{name}: the guard breach is not confirmed")
    wait_for_cycles(cluster, ["vm", "thanos"], count=6)
    for name, says in (("vm", "isPartial: true"), ("thanos", "receive-0: rpc error")):
        status = status_of(cluster, name)
        assert status["phase"] == "NoData", status
        message = status["signals"][0]["message"]
        assert "answered partially" in message and says in message and "partialResponse: nodata" in message
        assert condition(status, "DataAvailable")["status"] == "False"
        assert_never_anomalous(cluster, name)


# -- credentials in URLs ---------------------------------------------------------------------------


SECRETS = ("s3cret", "hunter2")


def with_credentials(url: str) -> str:
    """`url` with a user and password, and a token in its query string (as some proxies want)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://ops:s3cret@{rest}/?token=hunter2"


@pytest.fixture
def failing_prometheus() -> Iterator[str]:
    """Answers every API call with 503 and Prometheus' error body."""

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


def test_credentials_in_a_prometheus_url_never_reach_status_events_or_log(
    cluster: Any, prometheus: PrometheusServer, latency: dict[str, float], start_operator: Any,
    closed_url: str, failing_prometheus: str,
) -> None:
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_latency_seconds", count=3)
    operator = start_operator(None)
    for name, url in (("closed", closed_url), ("failing", failing_prometheus), ("working", prometheus.url)):
        cluster.apply(policy(name, spec("max(lab_latency_seconds)",
                                        prometheus={"url": with_credentials(url), "timeout": "1s"})))
    for name, says in (("closed", "is unreachable"), ("failing", "failed: too many queries")):
        status = wait_until(lambda n=name: (s := status_of(cluster, n)).get("phase") == "NoData" and s,  # type: ignore[misc]
                            timeout=30, message=f"{name}: the failing Prometheus is not reported")
        host = urlsplit(closed_url if name == "closed" else failing_prometheus).netloc
        reachable = condition(status, "PrometheusReachable")["message"]
        assert f"Prometheus at http://***@{host}/?token=*** {says}" in reachable
        wait_until(lambda n=name: any(e["reason"] == "PrometheusUnavailable" for e in events_for(cluster, n)),  # type: ignore[misc]
                   timeout=15, message=f"{name}: no PrometheusUnavailable Event")
    # The URL's own query string goes with every request (Prometheus ignores it; a proxy may need it).
    working = wait_until(lambda: (s := status_of(cluster, "working")).get("signals") and s, timeout=30,
                         message="working: no evaluation")
    assert working["signals"][0]["series"][0]["value"] == pytest.approx(0.1, rel=0.1), working

    written = json.dumps([written_statuses(cluster, n) + events_for(cluster, n)
                          for n in ("closed", "failing", "working")])
    # Kopf's debug lines print the policy object itself, the URL as the user wrote it (which is in the
    # API server anyway): every other line, urllib3's retry warnings and request lines included, is ours.
    log = "\n".join(line for line in operator.log_path.read_text(errors="replace").splitlines()
                    if " kopf.objects: " not in line)
    for secret in SECRETS:
        assert secret not in written
        assert secret not in log, [line for line in log.splitlines() if secret in line][:3]
