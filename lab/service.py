"""Request metrics of simulated pods, served as a real instrumented service serves them.

`RequestMetrics` keeps the cumulative counters of each pod's process and exposes them through a
prometheus_client collector, exactly what an HTTP service instrumented with a Prometheus client
exports: `http_request_duration_seconds` (histogram) and `http_requests_total` (counter by
status code), labelled by namespace, service and pod. A pod that stops (deleted, not ready)
stops being exported, and Prometheus marks its series stale, as for a dead process. The same
counters render a *history* (the cumulative series a service would have exported in the past)
for `PrometheusServer.import_history`, so live scrapes and imported past are one model.

`SimulatedService` is the one-service simulation of `homeostat demo`: a fixed list of pods and
a few knobs (`ServiceModel`). The fleet of the lab (`lab/fleet.py`) follows Deployments in the
emulated API server instead, with the load, latency and fault model of `lab/model.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from homeostat.lab.exporter import Exporter
from homeostat.lab.model import CODES, LATENCY_BUCKETS, SERVER_ERROR, Pod, PodBehaviour, Sample, draw, queueing_factor

Labels = tuple[tuple[str, str], ...]
Series = dict[tuple[str, Labels], list[tuple[float, float]]]
"""(metric name, sorted label pairs) -> [(unix time, value)], oldest first: `import_history`'s input."""

LABELS = ("namespace", "service", "pod")
BUCKET_BOUNDS = tuple(repr(float(edge)) for edge in LATENCY_BUCKETS)  # the `le` labels, as the client writes them


class RequestCounters:
    """The cumulative counters of one pod's process since it started."""

    def __init__(self) -> None:
        self.buckets = np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64)  # per bucket, not cumulative
        self.count = 0
        self.latency_sum = 0.0
        self.codes = dict.fromkeys(CODES, 0)

    def add(self, sample: Sample) -> None:
        self.buckets += sample.buckets
        self.count += sample.requests
        self.latency_sum += sample.latency_sum
        for code, value in sample.codes.items():
            self.codes[code] = self.codes.get(code, 0) + value

    def series(self) -> list[tuple[str, dict[str, str], float]]:
        """(metric name, extra labels, value) of every exported sample, in exposition order."""
        cumulative = np.cumsum(self.buckets)
        found = [("http_request_duration_seconds_bucket", {"le": bound}, float(value))
                 for bound, value in zip(BUCKET_BOUNDS, cumulative[:-1], strict=True)]
        found += [
            ("http_request_duration_seconds_bucket", {"le": "+Inf"}, float(self.count)),
            ("http_request_duration_seconds_count", {}, float(self.count)),
            ("http_request_duration_seconds_sum", {}, self.latency_sum),
        ]
        found += [("http_requests_total", {"code": code}, float(value)) for code, value in sorted(self.codes.items())]
        return found


def append_history(out: Series, *, counters: RequestCounters, labels: dict[str, str], t: float) -> None:
    """Add the samples `counters` would be scraped with at `t`, labelled `labels`, to `out`."""
    for name, extra, value in counters.series():
        out.setdefault((name, tuple(sorted({**labels, **extra}.items()))), []).append((float(t), value))


class RequestMetrics(Collector):
    """The request metrics of one service's pods, exposed from `registry` (thread-safe)."""

    def __init__(self, *, namespace: str, service: str, registry: CollectorRegistry | None = None) -> None:
        self.namespace = namespace
        self.service = service
        self._pods: dict[str, RequestCounters] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def record(self, pod: str, sample: Sample) -> None:
        """Count what `pod` served; a pod seen for the first time starts from zero."""
        with self._lock:
            self._pods.setdefault(pod, RequestCounters()).add(sample)

    def retain(self, pods: Iterable[str]) -> None:
        """Keep exporting only these pods: the counters of a process that is gone go with it."""
        keep = set(pods)
        with self._lock:
            for name in [name for name in self._pods if name not in keep]:
                del self._pods[name]

    @property
    def pods(self) -> list[str]:
        with self._lock:
            return sorted(self._pods)

    def collect(self) -> Iterator[Metric]:
        histogram = HistogramMetricFamily("http_request_duration_seconds", "Request latency.", labels=LABELS)
        requests = CounterMetricFamily("http_requests", "Requests served, by status code.", labels=(*LABELS, "code"))
        with self._lock:
            for pod, counters in sorted(self._pods.items()):
                values = (self.namespace, self.service, pod)
                cumulative = np.cumsum(counters.buckets)
                buckets = [(bound, float(v)) for bound, v in zip(BUCKET_BOUNDS, cumulative[:-1], strict=True)]
                histogram.add_metric(values, [*buckets, ("+Inf", float(counters.count))], counters.latency_sum)
                for code, value in sorted(counters.codes.items()):
                    requests.add_metric((*values, code), float(value))
        yield histogram
        yield requests


@dataclass
class ServiceModel:
    """The knobs of the demo's one service; faults are changes to these."""

    base_latency: float = 0.05  # seconds, median at nominal load
    latency_sigma: float = 0.25  # log-normal spread
    rate_per_second: float = 40.0  # offered load of the whole service
    capacity_per_pod: float = 30.0  # requests per second one pod serves before queueing
    base_error_rate: float = 0.002
    latency_factor: float = 1.0  # > 1 during a latency fault
    error_rate: float | None = None  # overrides the base rate during an error fault
    pod_latency_factor: dict[str, float] = field(default_factory=dict)  # one sick pod

    def median_latency(self, pods: int, pod: str) -> float:
        utilisation = self.rate_per_second / max(pods, 1) / self.capacity_per_pod
        return self.base_latency * queueing_factor(utilisation) * self.latency_factor \
            * self.pod_latency_factor.get(pod, 1.0)

    def behaviour(self, pods: list[str]) -> list[PodBehaviour]:
        error_rate = self.base_error_rate if self.error_rate is None else self.error_rate
        rate = self.rate_per_second / max(len(pods), 1)
        return [PodBehaviour(pod=Pod(name=pod, started=0.0), rate=rate, utilisation=rate / self.capacity_per_pod,
                             median_latency=self.median_latency(len(pods), pod),
                             failures=((SERVER_ERROR, min(max(error_rate, 0.0), 1.0)),))
                for pod in pods]


class SimulatedService:
    """One service with a fixed list of pods, publishing its metrics on its own exporter."""

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
        self.metrics = RequestMetrics(namespace=namespace, service=name, registry=self.exporter.registry)
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        return self.exporter.target

    def step(self, seconds: float) -> None:
        """Serve `seconds` worth of requests on every pod."""
        with self._lock:
            for pod in self.model.behaviour(list(self.pods)):
                self.metrics.record(pod.pod.name, draw(self._rng, pod, dt=seconds,
                                                       latency_sigma=self.model.latency_sigma))

    def history(self, *, start: float, end: float, step: float, instance: str, job: str = "lab") -> Series:
        """The cumulative series this service would have exported from `start` to `end`.

        Same model and pods as the live service, sampled every `step` seconds, labelled as the
        scrape of `instance` would be; fed to `PrometheusServer.import_history` so the demo and
        the tests start with a warm past instead of waiting for one. The live counters start
        from zero afterwards, which Prometheus' `rate()` reads as an ordinary counter reset.
        """
        out: Series = {}
        counters = {pod: RequestCounters() for pod in self.pods}
        for t in np.arange(start, end, step):
            for pod in self.model.behaviour(list(self.pods)):
                counters[pod.pod.name].add(draw(self._rng, pod, dt=step, latency_sigma=self.model.latency_sigma))
                labels = {"namespace": self.namespace, "service": self.name, "pod": pod.pod.name,
                          "instance": instance, "job": job}
                append_history(out, counters=counters[pod.pod.name], labels=labels, t=float(t))
        return out

    def set_pods(self, pods: list[str]) -> None:
        """Follow the workload: the pods that exist now (dead pods stop reporting)."""
        with self._lock:
            self.pods = list(pods)
            self.metrics.retain(self.pods)

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
