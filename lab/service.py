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

    def history(
        self, *, start: float, end: float, step: float, instance: str, job: str = "lab"
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]]:
        """The cumulative series this service would have exported from `start` to `end`.

        Same model and pods as the live service, sampled every `step` seconds, labelled as the
        scrape of `instance` would be; fed to `PrometheusServer.import_history` so the demo and
        the tests start with a warm past instead of waiting for one. The live counters start
        from zero afterwards, which Prometheus' `rate()` reads as an ordinary counter reset.
        """
        model = self.model
        error_rate = model.base_error_rate if model.error_rate is None else model.error_rate
        edges = np.asarray(LATENCY_BUCKETS)
        times = np.arange(start, end, step)
        out: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = {}
        for pod in self.pods:
            base = {"namespace": self.namespace, "service": self.name, "pod": pod, "instance": instance, "job": job}
            buckets = np.zeros(len(edges) + 1)
            total = ok = failed = 0.0
            latency_sum = 0.0
            rows: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = {}

            def put(name: str, extra: dict[str, str], t: float, value: float,
                    rows: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = rows,
                    base: dict[str, str] = base) -> None:
                rows.setdefault((name, tuple(sorted({**base, **extra}.items()))), []).append((float(t), value))

            median = model.median_latency(len(self.pods), pod)
            for t in times:
                count = int(self._rng.poisson(model.rate_per_second / max(len(self.pods), 1) * step))
                latencies = self._rng.lognormal(math.log(median), model.latency_sigma, size=count)
                buckets += np.bincount(np.searchsorted(edges, latencies, side="left"), minlength=len(edges) + 1)
                errors = int(self._rng.binomial(count, min(max(error_rate, 0.0), 1.0)))
                total += count
                failed += errors
                ok += count - errors
                latency_sum += float(latencies.sum())
                cumulative = np.cumsum(buckets)
                for edge, value in zip(LATENCY_BUCKETS, cumulative[:-1], strict=True):
                    put("http_request_duration_seconds_bucket", {"le": repr(edge)}, t, float(value))
                put("http_request_duration_seconds_bucket", {"le": "+Inf"}, t, total)
                put("http_request_duration_seconds_count", {}, t, total)
                put("http_request_duration_seconds_sum", {}, t, latency_sum)
                put("http_requests_total", {"code": "200"}, t, ok)
                put("http_requests_total", {"code": "500"}, t, failed)
            out.update(rows)
        return out

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
