"""Shared fixtures: a real Prometheus, exporters the test drives, the emulated API server,
and the operator running as its own process against both, exactly as in a cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from homeostat.api.crds import crd_manifests
from homeostat.lab.exporter import Exporter
from homeostat.lab.harness import OperatorProcess
from homeostat.lab.prometheus import PrometheusServer


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    with Exporter() as ex:
        yield ex


@pytest.fixture
def prometheus(exporter: Exporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping `exporter` every 0.5 s (target known before start)."""
    server = PrometheusServer(scrape_interval=0.5, targets=[exporter.target])
    with server:
        yield server


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
        process = OperatorProcess(
            kubeconfig=cluster.kubeconfig_path, prometheus_url=prometheus_url,
            log_path=tmp_path / f"operator-{len(started)}.log", extra=extra or [],
        )
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()
