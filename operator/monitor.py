"""One policy's detection state and its evaluation cycle: queries -> series -> verdicts.

A `PolicyMonitor` owns the per-series detector tables of one policy's signals. It knows
nothing of Kubernetes: it is given a Prometheus source and a clock, and returns what it
found: a `CycleResult`, which `loop.py` writes to the policy's status (`signals`) and hands to
the incident state machine (`observations()`, built from the judge's verdicts, not recomputed).

`Feedback` goes the other way: it applies an Incident's `homeostat.dev/verdict=false-positive`
to the detectors of its series, once per detector: the detectors are rebuilt (and back-filled)
after a restart or a spec edit, so a verdict recorded on an Incident is applied again to the new
ones; it is counted in the metrics only once, when the runner records it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from homeostat.api.durations import parse_duration
from homeostat.api.policy import Absent, PartialResponsePolicy, PolicySpec, Signal
from homeostat.api.status import SignalStatus
from homeostat.api.times import parse_time
from homeostat.detectors import Detector, create
from homeostat.operator.freshness import FreshnessCheck, grouping_of
from homeostat.operator.judge import SignalJudgement, backfill_series, judge_signal
from homeostat.operator.metrics import OperatorMetrics
from homeostat.operator.prometheus import (
    PartialResponse,
    PrometheusSource,
    PrometheusUnavailable,
    QueryRejected,
    RangeSeries,
    Sample,
    range_chunks,
)
from homeostat.operator.series import SeriesTable, series_key
from homeostat.operator.settling import Settling, settling_times
from homeostat.playbooks.machine import IncidentView
from homeostat.playbooks.observations import Observations

YIELD_EVERY_POINTS = 2000
"""Back-fill points learned between two turns of the event loop: ~25 ms of detector work at
~12 µs a point, well inside the Lease's renew deadline and any policy's interval."""


@dataclass
class CycleResult:
    """What one evaluation cycle found."""

    evaluated_at: float
    judgements: dict[str, SignalJudgement] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)  # signal index -> Prometheus' error
    unavailable: str | None = None  # why Prometheus gave no data, when it did not

    @property
    def signals(self) -> list[SignalStatus]:
        return [judgement.status for judgement in self.judgements.values()]

    @property
    def confirmed(self) -> list[str]:
        return [name for name, judgement in self.judgements.items() if judgement.confirmed]

    def observations(self) -> Observations:
        """What this cycle saw, for the state machine: each signal as judged, no data for all of
        them when Prometheus did not answer, and when the anomaly began."""
        signals = {name: judgement.observed for name, judgement in self.judgements.items()}
        if self.unavailable:
            signals = {name: replace(signal, usable=False, verdict="no-data", reason=self.unavailable)
                       for name, signal in signals.items()}
        # When the anomaly began is the symptom's start: load rising before a bad rollout must not make
        # the rollback think the anomaly predates the release. Context signals date it only when no
        # symptom is confirmed.
        started = [j.anomaly_started_at for j in self.judgements.values()
                   if j.anomaly_started_at is not None and not j.observed.context]
        context_started = [j.anomaly_started_at for j in self.judgements.values()
                           if j.anomaly_started_at is not None and j.observed.context]
        return Observations(at=self.evaluated_at, signals=signals,
                            anomaly_started_at=min(started or context_started, default=None))


def _detector_factory(signal: Signal) -> Callable[[], Detector]:
    def make() -> Detector:
        return create(signal.detector.name, direction=signal.direction, sensitivity=signal.detector.sensitivity)

    return make


class PolicyMonitor:
    """Detection state of one policy; rebuilt from scratch when the spec changes."""

    def __init__(
        self,
        *,
        namespace: str,
        name: str,
        spec: PolicySpec,
        source: PrometheusSource,
        metrics: OperatorMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.spec = spec
        self.source = source
        self.metrics = metrics
        self.clock = clock
        self.delay = parse_duration(spec.evaluation_delay)
        self.staleness = parse_duration(spec.staleness)
        self.settling: dict[str, Settling] = settling_times(spec)
        self.accept_partial = spec.prometheus.partial_response == PartialResponsePolicy.ACCEPT
        # The selectors whose samples' age decides each signal's freshness; a query that does not
        # parse here (Prometheus may accept more than promql-parser does) cannot be checked: no data.
        self.freshness: dict[str, FreshnessCheck | str] = {}
        for signal in spec.signals:
            try:
                self.freshness[signal.name] = FreshnessCheck.of(signal.query)
            except ValueError as exc:
                self.freshness[signal.name] = (
                    f"the age of this query's data cannot be checked: promql-parser does not parse it ({exc})")
        self.backfill_notes: dict[str, str] = {}  # signal -> why its history was not (all) learned
        self.tables: dict[str, SeriesTable] = {
            signal.name: SeriesTable(
                make_detector=_detector_factory(signal),
                window_size=spec.confirm.n,
                ttl=parse_duration(spec.series_ttl),
                max_series=spec.max_series_per_signal,
            )
            for signal in spec.signals
        }

    async def _query(self, kind: str, call: Callable[[], object]) -> object:
        histogram = self.metrics.query_seconds.labels(kind)

        def timed() -> object:
            # Timed inside the worker thread: the time spent waiting for a free worker is not
            # Prometheus' latency (bench/scale.py found the two confused at 1,000 policies).
            started = time.perf_counter()
            try:
                return call()
            finally:
                histogram.observe(time.perf_counter() - started)

        try:
            return await asyncio.to_thread(timed)
        except QueryRejected:
            self.metrics.query_errors.labels("rejected").inc()
            raise
        except PrometheusUnavailable:
            self.metrics.query_errors.labels("unavailable").inc()
            raise
        except PartialResponse:
            self.metrics.query_errors.labels("partial").inc()
            raise

    async def backfill(self) -> int:
        """Warm every detector on `lookback` of history, learning only; the points learned.

        Each signal's history is read in range queries of at most `MAX_POINTS_PER_QUERY` steps,
        oldest first (Prometheus refuses more than 11,000 points per series, and one answer stays
        small), and the event loop gets a turn every `YIELD_EVERY_POINTS` points learned, so a
        policy of many series never stalls the other policies or the Lease renewals. Errors are
        not fatal: a signal whose history could not be read (or was refused as too large) stops
        there, says why in `backfill_notes`, and its detectors learn from live data.
        """
        end = self.clock() - self.delay
        start = end - parse_duration(self.spec.lookback)
        step = self.spec.interval_seconds
        learned = 0
        since_yield = 0
        self.backfill_notes = {}
        for signal in self.spec.signals:
            for left, right in range_chunks(start=start, end=end, step=step):
                try:
                    result = await self._query(
                        "range", functools.partial(self.source.range, signal.query, start=left, end=right, step=step))
                except PartialResponse as exc:
                    if not self.accept_partial:
                        self.backfill_notes[signal.name] = f"{exc}; history from there on not learned"
                        break
                    result = exc.series
                except (QueryRejected, PrometheusUnavailable) as exc:
                    self.backfill_notes[signal.name] = f"{exc}; history from there on not learned"
                    break
                assert isinstance(result, list)
                if not result and signal.absent == Absent.ZERO:  # no series all along: none happened all along
                    steps = int((right - left) // step)
                    result = [RangeSeries(labels={}, points=[(left + i * step, 0.0) for i in range(steps + 1)])]
                for series in result:
                    count = backfill_series(
                        table=self.tables[signal.name], labels=dict(series.labels), points=series.points, now=end
                    )
                    learned += count
                    since_yield += count
                    if since_yield >= YIELD_EVERY_POINTS:
                        since_yield = 0
                        await asyncio.sleep(0)  # let the loop serve the others (one series chunk at most between turns)
        return learned

    async def evaluate(self) -> CycleResult:
        """One cycle: query every signal at `now - delay`, judge each series, expire old ones."""
        now = self.clock()
        at = now - self.delay
        result = CycleResult(evaluated_at=now)
        for index, signal in enumerate(self.spec.signals):
            samples: list[Sample] | None = None
            reason = ""
            try:
                answer = await self._query("instant", functools.partial(self.source.instant, signal.query, at=at))
                assert isinstance(answer, list)
                samples = answer
            except PartialResponse as exc:
                if self.accept_partial:
                    samples = exc.samples
                else:
                    reason = f"{exc}; a partial answer is no data (spec.prometheus.partialResponse: nodata)"
            except QueryRejected as exc:
                result.rejected[index] = str(exc)
                reason = f"Prometheus rejected the query: {exc}"
            except PrometheusUnavailable as exc:
                result.unavailable = str(exc)
                reason = str(exc)
            if samples == [] and signal.absent == Absent.ZERO:  # the policy says: no series means none happened
                samples = [Sample(labels={}, t=at, value=0.0)]  # nothing was sampled, so nothing can be stale
            elif samples:
                samples, reason = await self._fresh(signal, samples, at=at, result=result)
            table = self.tables[signal.name]
            judgement = judge_signal(
                signal=signal, table=table, samples=samples, no_data_reason=reason,
                now=now, staleness=self.staleness, confirm_k=self.spec.confirm.k,
                settling=self.settling[signal.name],
            )
            table.expire(now=now)
            result.judgements[signal.name] = judgement
            self.metrics.detector_seconds.labels(signal.detector.name).inc(judgement.detector_seconds)
            self.metrics.series_tracked.labels(self.namespace, self.name, signal.name).set(len(table))
            self.metrics.anomalous_series.labels(self.namespace, self.name, signal.name).set(
                judgement.status.anomalous_series
            )
        return result

    async def _fresh(
        self, signal: Signal, samples: list[Sample], *, at: float, result: CycleResult
    ) -> tuple[list[Sample] | None, str]:
        """`samples` with the stale ones marked, or (None, why) when none can be judged.

        One instant query for every selector of the signal (operator/freshness.py); when it
        fails, or is partial, the age of the data is unknown: no data.
        """
        check = self.freshness[signal.name]
        if isinstance(check, str):
            return None, check
        if not check.selectors:
            return samples, ""  # vector(1), time(): nothing that could be old
        by = grouping_of(samples)
        try:
            answer = await self._query(
                "freshness", functools.partial(self.source.instant, check.query(by), at=at))
            assert isinstance(answer, list)
            rows = answer
        except PartialResponse as exc:
            if not self.accept_partial:
                return None, f"the age of the data is unknown: {exc}"
            rows = exc.samples  # a selector missing from it is stale
        except QueryRejected as exc:
            return None, f"the age of the data is unknown: Prometheus rejected the freshness query: {exc}"
        except PrometheusUnavailable as exc:
            result.unavailable = str(exc)
            return None, f"the age of the data is unknown: {exc}"
        assessed = check.assess(samples, rows=rows, by=by, at=at, staleness=self.staleness)
        stale = [sample.stale for sample in assessed if sample.stale]
        if len(stale) == len(assessed):
            return None, stale[0]  # all of it too old: the signal has no data, and says why
        return assessed, ""


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
