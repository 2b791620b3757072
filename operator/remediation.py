"""Between the monitor and the remediation runner: observations in, feedback out.

`observations` turns a cycle's `CycleResult` (and the monitor's per-series state) into what the
incident state machine reads: per signal, whether there is fresh data at all, its verdict, and
each series with a fresh finite point (value, band, confirmed). `Feedback` applies an Incident's
`homeostat.dev/verdict=false-positive` to the detectors of its series, once per detector: the
detectors are rebuilt (and back-filled) after a restart or a spec edit, so a verdict recorded on
an Incident is applied again to the new ones; it is counted in the metrics only once, when the
runner records it.
"""

from __future__ import annotations

import math

from homeostat.api.policy import SignalRole
from homeostat.api.status import SeriesVerdict
from homeostat.api.times import parse_time
from homeostat.operator.monitor import CycleResult, PolicyMonitor
from homeostat.operator.series import series_key
from homeostat.playbooks.machine import IncidentView
from homeostat.playbooks.observations import Observations, SeriesNow, SignalNow


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def observations(result: CycleResult, monitor: PolicyMonitor) -> Observations:
    """What this cycle saw, for the state machine; no fresh finite point means no data."""
    signals: dict[str, SignalNow] = {}
    started: list[float] = []  # first anomalous point of each confirmed symptom series
    context_started: list[float] = []  # the same for context signals: used only when no symptom is confirmed
    context = {s.name for s in monitor.spec.signals if s.role == SignalRole.CONTEXT}
    interval = monitor.spec.interval_seconds
    for name, judgement in result.judgements.items():
        table = monitor.tables[name]
        confirmed = {id(state) for state in judgement.confirmed}
        series = []
        for state in table:
            if state.last_seen != result.evaluated_at or _finite(state.last_value) is None:
                continue  # not seen this cycle (stale, gone) or NaN/Inf: no data
            verdict = state.last_verdict
            anomalous = bool(state.window) and state.window[-1]
            series.append(SeriesNow(
                labels=dict(state.labels), value=float(state.last_value or 0.0), anomalous=anomalous,
                confirmed=id(state) in confirmed,
                expected=_finite(verdict.expected) if verdict else None,
                lower=_finite(verdict.lower) if verdict else None,
                upper=_finite(verdict.upper) if verdict else None,
                score=_finite(verdict.score) if verdict else None,
                points=tuple(state.recent),
            ))
            if id(state) in confirmed:
                flags = list(state.window)
                first = flags.index(True)
                # The data's time, not the evaluation's: a point evaluated at e is the data at
                # e - evaluationDelay, which is what a rollout's time is compared with.
                (context_started if name in context else started).append(
                    result.evaluated_at - monitor.delay - (len(flags) - 1 - first) * interval)
        status = judgement.status
        usable = status.verdict != SeriesVerdict.NO_DATA and bool(series)
        signals[name] = SignalNow(
            name=name, usable=usable, verdict=str(status.verdict),
            reason=status.message or ("" if usable else "no fresh data"), series=tuple(series),
            context=name in context, settling=monitor.settling[name].seconds,
        )
    if result.unavailable:
        for name, signal in signals.items():
            signals[name] = SignalNow(name=name, usable=False, verdict="no-data", reason=result.unavailable,
                                      series=signal.series, context=signal.context, settling=signal.settling)
    # When the anomaly began is the symptom's start: load rising before a bad rollout must not make
    # the rollback think the anomaly predates the release.
    return Observations(at=result.evaluated_at, signals=signals,
                        anomaly_started_at=min(started or context_started, default=None))


class Feedback:
    """Marks the series of a false-positive Incident on the monitor's detectors, once each."""

    def __init__(self, monitor: PolicyMonitor) -> None:
        self.monitor = monitor
        self.applied: dict[str, int] = {}  # incident -> series marked

    def __call__(self, incident: IncidentView) -> int:
        """How many of the incident's series are marked; marked on the first call only, so a
        cycle that must write the Incident again (a conflict) neither marks twice nor says 0."""
        if incident.name in self.applied:
            return self.applied[incident.name]
        t = parse_time(incident.spec.detected_at)
        marked = 0
        for series in incident.spec.involved:
            table = self.monitor.tables.get(series.signal)
            if table is None or series.observed is None:
                continue
            state = table.states.get(series_key(series.labels))
            if state is None:
                continue
            state.detector.mark_false_positive(t, series.observed)
            marked += 1
        self.applied[incident.name] = marked
        return marked
