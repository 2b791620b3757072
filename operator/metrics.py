"""The operator's own Prometheus metrics (`homeostat_` prefix), so it can be watched too.

One `OperatorMetrics` per process, built on its own registry and passed to whoever records,
which keeps tests free to build as many as they like.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

OUTCOMES = ("ok", "invalid", "rejected", "unavailable")
"""The `outcome` label values of `homeostat_evaluations_total`."""


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.evaluations = Counter(
            "homeostat_evaluations", "Policy evaluation cycles, by outcome.", ["namespace", "policy", "outcome"],
            registry=r,
        )
        self.query_seconds = Histogram(
            "homeostat_query_duration_seconds", "Latency of Prometheus queries.", ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )
        self.query_errors = Counter(
            "homeostat_query_errors", "Prometheus queries that failed, by reason.", ["reason"], registry=r
        )
        self.series_tracked = Gauge(
            "homeostat_series_tracked", "Series with detector state.", ["namespace", "policy", "signal"], registry=r
        )
        self.detector_seconds = Counter(
            "homeostat_detector_seconds", "CPU time spent in detectors.", ["detector"], registry=r
        )
        self.anomalous_series = Gauge(
            "homeostat_anomalous_series", "Series judged anomalous in the last cycle.",
            ["namespace", "policy", "signal"], registry=r,
        )
        self.policies = Gauge("homeostat_policies", "Policies this process evaluates, by phase.", ["phase"],
                              registry=r)
        self._phases: dict[tuple[str, str], str] = {}
        self._phase_counts: dict[str, int] = {}
        self.incidents = Counter(
            "homeostat_incidents", "Incidents entering each phase (Detected counts openings and reopenings).",
            ["phase"], registry=r,
        )
        self.actions = Counter(
            "homeostat_actions", "Remediation actions by type and outcome (Intended is not an outcome).",
            ["action", "outcome"], registry=r,
        )
        self.false_positives = Counter(
            "homeostat_false_positives", "Incidents annotated homeostat.dev/verdict=false-positive, fed back.",
            registry=r,
        )
        self.remediations_active = Gauge(
            "homeostat_remediations_in_progress", "Incidents holding a concurrent-remediation slot.", registry=r,
        )
        self.kube_errors = Counter(
            "homeostat_kube_errors",
            "Kubernetes calls of the policy loops that failed (after the Incident store's retries), by call "
            "(status, target, secret, incidents) and reason (api: an error answer; timeout; connection).",
            ["call", "reason"], registry=r,
        )
        self.evaluation_lag = Gauge(
            "homeostat_evaluation_lag_seconds", "How late the last cycle started against its schedule.",
            ["namespace", "policy"], registry=r,
        )
        self.leader = Gauge(
            "homeostat_leader", "1 while this process holds the leader-election Lease (acts), 0 on standby.",
            ["lease"], registry=r,
        )

    def set_phase(self, *, namespace: str, policy: str, phase: str | None) -> None:
        """Record a policy's phase (None: no longer evaluated here); called every evaluation, so
        only the old and the new phase's counts change."""
        key = (namespace, policy)
        old = self._phases.pop(key, None)
        if phase is not None:
            self._phases[key] = phase
        if old == phase:
            return
        if old is not None:
            self._phase_counts[old] -= 1
            self.policies.labels(old).set(self._phase_counts[old])  # a phase nobody is in reads 0
        if phase is not None:
            self._phase_counts[phase] = self._phase_counts.get(phase, 0) + 1
            self.policies.labels(phase).set(self._phase_counts[phase])

    # What the remediation runner records (`playbooks.remediator.RemediationMetrics`).

    def count_incident_phase(self, phase: str) -> None:
        self.incidents.labels(phase).inc()

    def count_action(self, action: str, outcome: str) -> None:
        self.actions.labels(action, outcome).inc()

    def count_false_positive(self) -> None:
        self.false_positives.inc()

    def set_remediations_in_progress(self, count: int) -> None:
        self.remediations_active.set(count)

    def forget_policy(self, *, namespace: str, policy: str, signals: list[str]) -> None:
        """Drop a deleted policy's labelled series so the metrics do not grow forever."""
        for metric in (self.series_tracked, self.anomalous_series):
            for signal in signals:
                with contextlib.suppress(KeyError):
                    metric.remove(namespace, policy, signal)
        with contextlib.suppress(KeyError):
            self.evaluation_lag.remove(namespace, policy)
        for outcome in OUTCOMES:
            with contextlib.suppress(KeyError):
                self.evaluations.remove(namespace, policy, outcome)

    def serve(self, *, host: str, port: int) -> None:
        """Expose `/metrics` on a port (a background thread of prometheus_client)."""
        start_http_server(port, addr=host, registry=self.registry)
