"""Shared fixtures: a real Prometheus, exporters the test drives, the emulated API server,
and the operator running as its own process against both, exactly as in a cluster."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from homeostat.api.crds import crd_manifests
from homeostat.lab.exporter import Exporter
from homeostat.lab.harness import (
    LAB_PODS,
    OperatorProcess,
    noise,
    noise_history,
    retry_port_clash,
    start_prometheus,
)
from homeostat.lab.prometheus import PrometheusServer


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    ex = retry_port_clash(lambda: Exporter().start())  # on a new port if its port was taken meanwhile
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture
def closed_url() -> Iterator[str]:
    """`http://127.0.0.1:PORT` where nothing answers (connections refused) for the whole test: the
    port stays bound but is never listened on, so no other process can start serving on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def prometheus(exporter: Exporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping `exporter` every 0.5 s (target known before start)."""
    server = start_prometheus(targets=[exporter.target])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def warm_prometheus(exporter: Exporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping `exporter`, with 15 minutes of the healthy noise as history, so
    detectors are warm from their back-fill as they would be in a long-running cluster."""
    server = start_prometheus(targets=[exporter.target], history=noise_history(exporter.target))
    try:
        # The history ends before Prometheus started, and its first scrape comes seconds later:
        # until then the newest samples are too old for any `staleness`, so wait for live data.
        server.wait_for(f'up{{instance="{exporter.target}"}} == 1')
        yield server
    finally:
        server.stop()


@pytest.fixture
def latency(exporter: Exporter) -> Iterator[dict[str, float]]:
    """Per-pod latency levels (`lab_latency_seconds{pod}` with noise), published 10 times a second;
    tests change them."""
    gauge = exporter.gauge("lab_latency_seconds", ("pod",))
    levels = dict.fromkeys(LAB_PODS, 0.1)
    stop = threading.Event()

    def run() -> None:
        step = 0
        while not stop.wait(0.1):
            step += 1
            for index, pod in enumerate(LAB_PODS):
                gauge.labels(pod).set(noise(levels[pod], step, index))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield levels
    stop.set()
    thread.join()


# Every request that clients made to emulated clusters during the session, for the RBAC test
# (tests marked `last` run after all others and read it through `all_api_requests`).
_SESSION_REQUESTS: list[Any] = []


@pytest.fixture
def cluster() -> Iterator[Any]:
    """The emulated Kubernetes API over HTTP, with our CRDs and a `shop` namespace."""
    from homeostat.lab.kube import EmulatedCluster

    with EmulatedCluster(crds=crd_manifests()) as emulated:
        emulated.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        yield emulated
        _SESSION_REQUESTS.extend(emulated.requests)


@pytest.fixture
def all_api_requests() -> list[Any]:
    """The requests recorded by every `cluster` fixture used so far in this session."""
    return _SESSION_REQUESTS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run tests marked `last` after every other test (they read what the others did)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture
def start_operator(cluster: Any, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(prometheus_url: str | None = None, extra: list[str] | None = None) -> OperatorProcess:
        def attempt() -> OperatorProcess:
            process = OperatorProcess(
                kubeconfig=cluster.kubeconfig_path, prometheus_url=prometheus_url,
                log_path=tmp_path / f"operator-{len(started)}.log", extra=extra or [],
            )
            started.append(process)  # stopped at teardown whatever happens next
            process.wait_ready()
            return process

        return retry_port_clash(attempt)  # new ports if one was taken before the operator bound it

    yield start
    for process in started:
        process.stop()
