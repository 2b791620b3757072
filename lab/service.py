"""Request metrics of simulated pods, served as a real instrumented service serves them.

`RequestMetrics` keeps the cumulative counters of each pod's process and exposes them through a
prometheus_client collector, exactly what an HTTP service instrumented with a Prometheus client
exports: `http_request_duration_seconds` (histogram) and `http_requests_total` (counter by
status code), labelled by namespace, service and pod. A pod that stops (deleted, not ready)
stops being exported, and Prometheus marks its series stale, as for a dead process. The same
counters render a *history* (the cumulative series a service would have exported in the past)
for `PrometheusServer.import_history`, so live scrapes and imported past are one model.

The fleet of the lab (`lab/fleet.py`) serves them for the pods of Deployments in the emulated
API server, with the load, latency and fault model of `lab/model.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from homeostat.lab.model import CODES, LATENCY_BUCKETS, Sample

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
