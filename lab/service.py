"""A simulated microservice that serves real Prometheus metrics.

Each pod of the service handles Poisson-distributed requests whose latencies are log-normal
around a base that grows with the load per pod (a simple queueing effect), and a small
fraction of which fail with 5xx. It exports what a real HTTP service instrumented with a
Prometheus client exports: `http_request_duration_seconds` (histogram) and
`http_requests_total` (counter by status code), labelled by namespace, service and pod.
Faults change the model (`latency_factor`, `error_rate`) so detectors have something to find.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Counter, Histogram

from homeostat.lab.exporter import Exporter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)


@dataclass
class ServiceModel:
    """The knobs of one service; faults are changes to these."""

    base_latency: float = 0.05  # seconds, median at nominal load
    latency_sigma: float = 0.25  # log-normal spread
    rate_per_second: float = 40.0  # offered load of the whole service
    capacity_per_pod: float = 30.0  # requests per second one pod serves before queueing
    base_error_rate: float = 0.002
    latency_factor: float = 1.0  # > 1 during a latency fault
    error_rate: float | None = None  # overrides the base rate during an error fault
    pod_latency_factor: dict[str, float] = field(default_factory=dict)  # one sick pod

    def median_latency(self, pods: int, pod: str) -> float:
        utilisation = min(self.rate_per_second / max(pods, 1) / self.capacity_per_pod, 0.95)
        queueing = 1.0 / (1.0 - utilisation)  # M/M/1-like growth with load
        return self.base_latency * queueing * self.latency_factor * self.pod_latency_factor.get(pod, 1.0)


class SimulatedService:
    """One service with a few pods, publishing its metrics on its own exporter."""

    def __init__(
        self, *, name: str, namespace: str = "default", pods: list[str] | None = None,
        model: ServiceModel | None = None, tick: float = 0.25, seed: int = 0,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.pods = pods or [f"{name}-{i}" for i in range(3)]
        self.model = model or ServiceModel()
        self.tick = tick
        self.exporter = Exporter()
        self._rng = np.random.default_rng(seed)
        labels = ("namespace", "service", "pod")
        self.latency = Histogram(
            "http_request_duration_seconds", "Request latency.", labels,
            buckets=LATENCY_BUCKETS, registry=self.exporter.registry,
        )
        self.requests = Counter(
            "http_requests", "Requests served, by status code.", (*labels, "code"), registry=self.exporter.registry
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        return self.exporter.target

    def step(self, seconds: float) -> None:
        """Serve `seconds` worth of requests on every pod."""
        with self._lock:
            model = self.model
            pods = list(self.pods)
            for pod in pods:
                expected = model.rate_per_second / max(len(pods), 1) * seconds
                count = int(self._rng.poisson(expected))
                if count == 0:
                    continue
                median = model.median_latency(len(pods), pod)
                latencies = self._rng.lognormal(math.log(median), model.latency_sigma, size=count)
                error_rate = model.base_error_rate if model.error_rate is None else model.error_rate
                errors = int(self._rng.binomial(count, min(max(error_rate, 0.0), 1.0)))
                histogram = self.latency.labels(self.namespace, self.name, pod)
                for value in latencies:
                    histogram.observe(float(value))
                self.requests.labels(self.namespace, self.name, pod, "200").inc(count - errors)
                if errors:
                    self.requests.labels(self.namespace, self.name, pod, "500").inc(errors)

    def set_pods(self, pods: list[str]) -> None:
        """Follow the workload: the pods that exist now (dead pods stop reporting)."""
        with self._lock:
            self.pods = list(pods)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self.step(self.tick)

    def start(self) -> SimulatedService:
        self.exporter.start()
        self._thread = threading.Thread(target=self._run, name=f"service-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.exporter.stop()
