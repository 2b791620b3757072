"""What the operator makes of Prometheus' answers, end to end: `homeostat run` against a real
Prometheus and servers that fail, with no credential of a Prometheus URL in what it writes."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

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
