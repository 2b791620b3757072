"""The fleet bound to the emulated API server and scraped by a real Prometheus, at small scale.

What an action does to a Deployment (a rollout, a restart, a scale) must show in the metrics as
it would in a cluster: read back with PromQL, the way Homeostat reads them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from homeostat.api.crds import crd_manifests
from homeostat.lab.faults import BadRelease, MemoryLeak
from homeostat.lab.fleet import Fleet
from homeostat.lab.harness import wait_until
from homeostat.lab.kube import EmulatedCluster
from homeostat.lab.model import ServiceProfile
from homeostat.lab.prometheus import PrometheusServer

NS = "shop"
SMP = {"Content-Type": "application/strategic-merge-patch+json"}
MERGE = {"Content-Type": "application/merge-patch+json"}

pytestmark = pytest.mark.slow


@pytest.fixture
def kube() -> Iterator[EmulatedCluster]:
    """The emulated API server with its controllers; pods are ready 0.3 s after creation."""
    with EmulatedCluster(crds=crd_manifests(), pod_ready_delay=0.3) as cluster:
        yield cluster


@pytest.fixture
def fleet(kube: EmulatedCluster) -> Iterator[Fleet]:
    """Two services: `web` on 3 pods, and `busy` on 1 pod at 80 % utilisation. No daily swing."""
    services = [ServiceProfile(name="web", cycle_amplitude=0.0),
                ServiceProfile(name="busy", replicas=1, base_rate=150.0, cycle_amplitude=0.0)]
    fleet = Fleet(cluster=kube, services=services, namespace=NS, day_seconds=600.0, seed=11, tick=0.2).deploy()
    yield fleet
    fleet.stop()


@pytest.fixture
def prometheus(fleet: Fleet) -> Iterator[PrometheusServer]:
    with PrometheusServer(scrape_interval=0.5, targets=fleet.targets) as server:
        yield server


def exported_pods(prometheus: PrometheusServer, service: str) -> set[str]:
    """The pods whose series are live in Prometheus now (a gone pod's series are stale at once)."""
    found = prometheus.query(f'count by (pod) (http_requests_total{{service="{service}"}})')
    return {r["metric"]["pod"] for r in found}


def mean_latency(prometheus: PrometheusServer, service: str, window: str = "3s") -> dict[str, float]:
    """Mean request latency of each pod over the last `window`, from the histogram's sum and count."""
    selector = f'service="{service}"'
    query = (f"sum by (pod) (rate(http_request_duration_seconds_sum{{{selector}}}[{window}]))"
             f" / sum by (pod) (rate(http_request_duration_seconds_count{{{selector}}}[{window}]))")
    return {r["metric"]["pod"]: float(r["value"][1]) for r in prometheus.query(query)}


def error_ratio(prometheus: PrometheusServer, service: str, pods: set[str]) -> float | None:
    regex = "|".join(sorted(pods))
    selector = f'service="{service}", pod=~"{regex}"'
    found = prometheus.query(f'sum(rate(http_requests_total{{{selector}, code=~"5.."}}[3s]))'
                             f" / sum(rate(http_requests_total{{{selector}}}[3s]))")
    return float(found[0]["value"][1]) if found else None


def patch(kube: EmulatedCluster, path: str, body: dict[str, object], headers: dict[str, str]) -> None:
    response = httpx.patch(f"{kube.url}{path}", content=json.dumps(body), headers=headers, timeout=10)
    response.raise_for_status()


def test_history_prefills_prometheus_and_live_scrapes_continue_its_series(kube: EmulatedCluster, fleet: Fleet) -> None:
    now = time.time()
    history = fleet.history(start=now - 120, end=now, step=1.0)
    server = PrometheusServer(scrape_interval=0.5, targets=fleet.targets)
    server.import_history(history)
    with fleet.start(), server:
        pods = {p.name for p in fleet.pods()["web"]}
        # the past is there, on the pods that serve now, labelled as their live scrapes
        past = server.query('count_over_time(http_requests_total{service="web", code="200"}[2m] offset 10s)')
        assert {r["metric"]["pod"] for r in past} == pods
        assert {r["metric"]["instance"] for r in past} == {fleet.service("web").target}
        assert all(int(r["value"][1]) >= 90 for r in past)
        # and live scrapes continue the same series: one series per pod and code over both
        wait_until(lambda: exported_pods(server, "web") == pods, timeout=20, message="live scrapes of web")
        both = server.query('count(count by (pod, code) (count_over_time(http_requests_total{service="web"}[3m])))')
        assert int(both[0]["value"][1]) == len(pods) * 3  # 200, 500, 503


def test_a_rollout_moves_the_exported_pods_to_the_new_revision(
    kube: EmulatedCluster, fleet: Fleet, prometheus: PrometheusServer
) -> None:
    fleet.start()
    before = {p.name for p in fleet.pods()["web"]}
    wait_until(lambda: exported_pods(prometheus, "web") == before, timeout=20, message="web's pods exported")
    release = fleet.inject(BadRelease(failure_rate=0.3), service="web")
    fleet.wait_settled(timeout=20, services=["web"])
    after = fleet.pods()["web"]
    assert {p.revision for p in after} == {2}
    assert {p.image for p in after} == {"example.com/web:1.0-bad"} and release.image == "example.com/web:1.0-bad"
    new = {p.name for p in after}
    assert not new & before
    wait_until(lambda: exported_pods(prometheus, "web") == new, timeout=20, message="only the new pods exported")
    # the new revision's pods fail as the fault says; the other service is untouched
    wait_until(lambda: (error_ratio(prometheus, "web", new) or 0) > 0.15, timeout=20,
               message="the bad release's errors in Prometheus")
    assert (error_ratio(prometheus, "busy", {p.name for p in fleet.pods()["busy"]}) or 0) < 0.05


def test_a_restart_resets_the_leak(kube: EmulatedCluster, fleet: Fleet, prometheus: PrometheusServer) -> None:
    fleet.start()
    old = {p.name for p in fleet.pods()["web"]}
    healthy = wait_until(lambda: (m := mean_latency(prometheus, "web")) and set(m) == old and m, timeout=20,
                         message="web's latency in Prometheus")
    baseline = max(healthy.values())
    fleet.inject(MemoryLeak(growth=1.0, onset=120.0), service="web")
    wait_until(lambda: min(mean_latency(prometheus, "web").get(p, 0.0) for p in old) > 3 * baseline, timeout=30,
               message="the leak shows in the old pods' latency")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # what `kubectl rollout restart` writes
    patch(kube, f"/apis/apps/v1/namespaces/{NS}/deployments/web",
          {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}, SMP)
    fleet.wait_settled(timeout=20, services=["web"])
    new = {p.name for p in fleet.pods()["web"]}
    assert not new & old

    def fresh() -> dict[str, float] | None:
        latency = mean_latency(prometheus, "web")
        return latency if new <= set(latency) and not set(latency) & old else None

    recovered = wait_until(fresh, timeout=20, message="only the restarted pods in the latency")
    assert max(recovered.values()) < 1.5 * baseline


def test_scaling_a_deployment_out_lowers_its_latency(
    kube: EmulatedCluster, fleet: Fleet, prometheus: PrometheusServer
) -> None:
    fleet.start()
    one = {p.name for p in fleet.pods()["busy"]}
    assert len(one) == 1
    loaded = wait_until(lambda: (m := mean_latency(prometheus, "busy")) and set(m) == one and m, timeout=20,
                        message="busy's latency in Prometheus")
    web_before = {p.name for p in fleet.pods()["web"]}
    patch(kube, f"/apis/apps/v1/namespaces/{NS}/deployments/busy/scale", {"spec": {"replicas": 4}}, MERGE)
    wait_until(lambda: len(exported_pods(prometheus, "busy")) == 4, timeout=20, message="4 busy pods exported")

    def relieved() -> dict[str, float] | None:
        latency = mean_latency(prometheus, "busy")
        return latency if len(latency) == 4 and max(latency.values()) < 0.5 * max(loaded.values()) else None

    wait_until(relieved, timeout=20, message="busy's latency lower on 4 pods than on 1")
    assert {p.name for p in fleet.pods()["web"]} == web_before  # the other Deployment is untouched
