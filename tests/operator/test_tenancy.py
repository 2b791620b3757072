"""What a policy may reach, end to end: `homeostat run` with a policy that names a Prometheus
host the operator's admin did not allow (request forgery), and, with
`--require-namespace-matcher`, queries that could read another team's series.

A refused policy gets Ready=False naming the field and the fix, a Warning Event, and not one
request reaches the host it named."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from homeostat.lab.harness import deployment, policy, wait_until

API = "homeostat.dev/v1alpha1"


class Recorder:
    """A Prometheus stand-in on 127.0.0.1 that answers every query with no series and keeps
    (Host header, query) of each request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query).get("query", [""])[0]
                outer.seen.append((self.headers.get("Host", ""), query))
                kind = "matrix" if url.path.endswith("query_range") else "vector"
                raw = json.dumps({"status": "success", "data": {"resultType": kind, "result": []}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hosts(self) -> set[str]:
        return {host.split(":")[0] for host, _ in self.seen}


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.server.shutdown()
    server.server.server_close()


def spec(url: str, query: str = "max(lab_x)") -> dict[str, Any]:
    return {"target": {"kind": "Deployment", "name": "checkout"}, "interval": "1s", "lookback": "10s",
            "evaluationDelay": "0s", "prometheus": {"url": url}, "signals": [{"name": "latency", "query": query}]}


def ready(cluster: Any, name: str) -> dict[str, Any]:
    status = (cluster.get(API, "anomalypolicies", "shop", name) or {}).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def assert_refused(cluster: Any, name: str, *words: str) -> None:
    condition = wait_until(lambda: (c := ready(cluster, name)).get("status") == "False" and c, timeout=30,
                           message=f"{name}: no Ready=False")
    for word in words:
        assert word in condition["message"], condition["message"]
    wait_until(lambda: any((e.get("involvedObject") or {}).get("name") == name and e["type"] == "Warning"
                           and words[0] in e["message"] for e in cluster.events("shop")),
               timeout=20, message=f"{name}: no Warning Event naming {words[0]}")


def test_a_prometheus_host_outside_the_allow_list_is_refused_and_never_asked(
    cluster: Any, start_operator: Any, recorder: Recorder
) -> None:
    cluster.apply(deployment("checkout"))
    start_operator(None)  # the lab allows 127.0.0.1 only (lab/harness.py)
    cluster.apply(policy("allowed", spec(f"http://127.0.0.1:{recorder.port}")))
    cluster.apply(policy("forged", spec(f"http://localhost:{recorder.port}")))  # the same server by another name
    assert_refused(cluster, "forged", "spec.prometheus.url", f"localhost:{recorder.port}", "--allow-host")
    wait_until(lambda: "127.0.0.1" in recorder.hosts(), timeout=30, message="the allowed policy never queried")
    time.sleep(3)  # a few more of the allowed policy's cycles
    assert recorder.hosts() == {"127.0.0.1"}, recorder.seen


def test_an_admin_allowed_host_is_queried(cluster: Any, start_operator: Any, recorder: Recorder) -> None:
    cluster.apply(deployment("checkout"))
    start_operator(None, extra=["--allow-host", "localhost"])
    cluster.apply(policy("listed", spec(f"http://localhost:{recorder.port}")))
    wait_until(lambda: "localhost" in recorder.hosts(), timeout=30, message="the listed host was never queried")
    wait_until(lambda: ready(cluster, "listed").get("status") == "True", timeout=30,
               message="a policy on an allowed host is not Ready")


def test_with_namespace_confinement_only_queries_selecting_the_policys_namespace_run(
    cluster: Any, start_operator: Any, recorder: Recorder
) -> None:
    cluster.apply(deployment("checkout"))
    start_operator(None, extra=["--require-namespace-matcher"])
    url = f"http://127.0.0.1:{recorder.port}"
    loose = {"none": "max(lab_x)", "other": 'max(lab_x{namespace="bank"})', "regex": 'max(lab_x{namespace=~"shop"})',
             "half": 'max(lab_x{namespace="shop"}) / max(lab_y)'}
    for name, query in loose.items():
        cluster.apply(policy(name, spec(url, query)))
    tight = 'max(lab_x{namespace="shop"}) / max(rate(lab_y{namespace="shop",code=~"5.."}[1m]))'
    cluster.apply(policy("tight", spec(url, tight)))
    for name in loose:
        assert_refused(cluster, name, "spec.signals[0].query", 'namespace="shop"', "--require-namespace-matcher")
    assert "lab_y{}" in ready(cluster, "half")["message"]  # names the selector that lacks it
    wait_until(lambda: ready(cluster, "tight").get("status") == "True", timeout=30,
               message="a confined query was refused")
    signal_queries = {query for _, query in recorder.seen if "timestamp(" not in query}  # not freshness checks
    assert signal_queries == {tight}, recorder.seen  # no refused query was ever sent
