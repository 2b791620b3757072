"""The lab as one object: the emulated API, the fleet, a real Prometheus and the operator.

`homeostat demo`, the closed-loop benchmark and the scenario tests all need the same world, in
the same order: the API server with our CRDs, the fleet's Deployments settled, Prometheus
started on a history of the fleet (so the detectors back-fill and are warm at once), the
operator as its own process (`homeostat run --dev`, talking HTTP to the emulated API exactly as
to a cluster), then one `fleet_policy` per managed service, each waited on until Healthy.
`Lab` does that and, on `stop()` (or leaving its `with` block, or any failure while starting),
stops every process and thread it started, in reverse order.

Services that are not managed get no policy: the benchmark's baseline arms watch those.

Example (doctest skipped: it starts Prometheus and the operator)::

    with Lab(services=("checkout", "cart"), workdir=Path("/tmp/lab")) as lab:
        lab.fleet.inject(BadRelease(), service="checkout")
        ...
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from homeostat.api.base import API_VERSION
from homeostat.api.crds import crd_manifests
from homeostat.lab.fleet import Fleet
from homeostat.lab.harness import OperatorProcess
from homeostat.lab.kube import EmulatedCluster
from homeostat.lab.prometheus import PrometheusServer
from homeostat.lab.scenarios import DEMO_DAY_SECONDS, fleet_policy

logger = logging.getLogger(__name__)


class Lab:
    """One lab world; see the module docstring.

    Args:
        services: the fleet's services (one Deployment and one /metrics endpoint each).
        managed: the services that get an AnomalyPolicy (default: all).
        workdir: where the operator's log goes.
        namespace: the fleet's namespace.
        seed: the fleet's random seed.
        day_seconds: length of the load's daily cycle (compressed for the demo and benchmark).
        history: seconds of healthy past imported into Prometheus before it starts.
        scrape_interval: Prometheus' scrape interval, seconds.
        policy: keyword arguments for `fleet_policy` (intervals, confirmation, playbook timings).
        operator_args: extra `homeostat run` arguments.
        pod_ready_delay: seconds before a new pod of the emulator becomes ready.
    """

    def __init__(
        self,
        *,
        services: Sequence[str],
        workdir: Path,
        managed: Sequence[str] | None = None,
        namespace: str = "shop",
        seed: int = 7,
        day_seconds: float = DEMO_DAY_SECONDS,
        history: float = 1500.0,
        scrape_interval: float = 1.0,
        policy: Mapping[str, Any] | None = None,
        operator_args: Sequence[str] = (),
        pod_ready_delay: float = 1.0,
    ) -> None:
        self.services = tuple(services)
        self.managed = tuple(self.services if managed is None else managed)
        unknown = set(self.managed) - set(self.services)
        if unknown:
            raise ValueError(f"managed services not in the fleet: {sorted(unknown)}")
        self.workdir = workdir
        self.namespace = namespace
        self.seed = seed
        self.day_seconds = day_seconds
        self.history = history
        self.scrape_interval = scrape_interval
        self.policy_args = dict(policy or {})
        self.operator_args = list(operator_args)
        self.pod_ready_delay = pod_ready_delay
        self._stack = contextlib.ExitStack()
        self.cluster: EmulatedCluster
        self.fleet: Fleet
        self.prometheus: PrometheusServer
        self.operator: OperatorProcess

    def policy_name(self, service: str) -> str:
        return f"{service}-health"

    def policy(self, service: str) -> dict[str, Any]:
        """The AnomalyPolicy manifest of a managed service."""
        return fleet_policy(service=service, namespace=self.namespace, name=self.policy_name(service),
                            **self.policy_args)

    def start(self, *, healthy_timeout: float = 120.0) -> Self:
        """Bring the world up; on any failure, stop what was started and raise."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start(healthy_timeout=healthy_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, *, healthy_timeout: float) -> None:
        self.cluster = self._stack.enter_context(EmulatedCluster(crds=crd_manifests(),
                                                                 pod_ready_delay=self.pod_ready_delay))
        self.fleet = Fleet(cluster=self.cluster, services=self.services, namespace=self.namespace,
                           day_seconds=self.day_seconds, seed=self.seed).deploy()
        self.prometheus = PrometheusServer(scrape_interval=self.scrape_interval, targets=self.fleet.targets)
        now = time.time()
        self.prometheus.import_history(self.fleet.history(start=now - self.history, end=now - self.scrape_interval,
                                                          step=self.scrape_interval))
        self._stack.enter_context(self.fleet)
        self._stack.enter_context(self.prometheus)
        self._wait_for_live_windows()
        self.operator = OperatorProcess(kubeconfig=self.cluster.kubeconfig_path, prometheus_url=self.prometheus.url,
                                        log_path=self.workdir / "operator.log", extra=self.operator_args)
        self._stack.callback(self.operator.stop)
        self.operator.wait_ready()
        for service in self.managed:
            self.cluster.apply(self.policy(service))
        self.wait_healthy(timeout=healthy_timeout)

    def _wait_for_live_windows(self) -> None:
        """Wait until every target is scraped live and a whole rate window holds live samples.

        Between the imported past and the first live scrape lies a gap (the import, Prometheus'
        start, target discovery) in which `rate()` has too few samples; a policy applied now
        would rightly report NoData for a while. Applied after this, its back-fill skips the
        gap and its live evaluations start on full windows.
        """
        from homeostat.api.durations import parse_duration

        self.prometheus.wait_for("up == 1", count=len(self.services), timeout=60)
        window = parse_duration(str(self.policy_args.get("rate_window", "4s")))
        time.sleep(window + 2 * self.scrape_interval)

    def policy_status(self, service: str) -> dict[str, Any]:
        obj = self.cluster.get(API_VERSION, "anomalypolicies", self.namespace, self.policy_name(service))
        return (obj or {}).get("status") or {}

    def wait_healthy(self, *, timeout: float) -> None:
        """Wait until every managed policy reads Healthy (its detectors warm on the imported past)."""
        deadline = time.monotonic() + timeout
        pending = list(self.managed)
        while time.monotonic() < deadline:
            pending = [s for s in self.managed if self.policy_status(s).get("phase") != "Healthy"]
            if not pending:
                return
            time.sleep(0.5)
        phases = {s: self.policy_status(s).get("phase") for s in pending}
        raise TimeoutError(f"policies not Healthy after {timeout:.0f}s: {phases}; operator log: "
                           f"{self.workdir / 'operator.log'}")

    def incidents(self, service: str | None = None) -> list[dict[str, Any]]:
        """The Incidents of the fleet's namespace (of one service's policy), oldest first."""
        found = self.cluster.list(API_VERSION, "incidents", namespace=self.namespace)
        if service is not None:
            found = [i for i in found if (i.get("spec") or {}).get("policy") == self.policy_name(service)]
        return sorted(found, key=lambda i: i["metadata"].get("creationTimestamp", ""))

    def stop(self) -> None:
        """Stop everything started, newest first; safe to call twice."""
        self._stack.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
