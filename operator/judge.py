"""The `series -> detector -> verdict` step for one signal in one evaluation cycle.

Each fresh sample is scored then learned by its series' detector; hard guards (an SLO) make a
point anomalous whatever the baseline; a series is *confirmed* when at least k of its last n
points were anomalous. Missing, stale, NaN or Inf data is "no data": it is never anomalous,
never learned, and it breaks a run of anomalous points, so nothing is ever acted on because
of data we do not have.

The judgement is made here once and read twice: its `status` goes to the policy's status
(`policy_status.py`), its `observed` (a `playbooks.observations.SignalNow`: each series with a
fresh finite point, its band and whether it is confirmed) and `anomaly_started_at` to the
incident state machine (`CycleResult.observations` in `monitor.py`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from homeostat.api.durations import format_duration
from homeostat.api.policy import GuardSpec, Signal, SignalRole
from homeostat.api.status import SeriesStatus, SeriesVerdict, SignalStatus
from homeostat.detectors import Verdict
from homeostat.detectors._codec import finite_or_none
from homeostat.detectors.confirmation import is_confirmed, judge_point
from homeostat.operator.prometheus import Sample
from homeostat.operator.series import SeriesState, SeriesTable
from homeostat.operator.settling import Settling
from homeostat.playbooks.observations import SeriesNow, SignalNow

MAX_SERIES_IN_STATUS = 20


@dataclass
class SignalJudgement:
    """The outcome for one signal: its status, what the state machine reads of it, and the
    confirmed series, most anomalous first."""

    status: SignalStatus
    observed: SignalNow
    confirmed: list[SeriesState] = field(default_factory=list)
    # The data's time of the first anomalous point among the confirmed series (not the evaluation's:
    # a point evaluated at e is the data at e - evaluationDelay, which a rollout's time is compared with).
    anomaly_started_at: float | None = None
    detector_seconds: float = 0.0


def _guard_breach(guard: GuardSpec | None, value: float) -> str | None:
    """`guard: 0.7 > 0.5` when `value` is beyond the signal's guard (`GuardSpec.crossed`)."""
    crossed = guard.crossed(value) if guard is not None else None
    return f"guard: {value:.4g} {crossed[0]} {crossed[1]:g}" if crossed is not None else None


def _series_status(state: SeriesState, verdict: SeriesVerdict, reason: str, k: int) -> SeriesStatus:
    last = state.last_verdict
    return SeriesStatus(
        labels=state.labels,
        value=finite_or_none(state.last_value) if state.last_value is not None else None,
        expected=finite_or_none(last.expected) if last else None,
        lower=finite_or_none(last.lower) if last else None,
        upper=finite_or_none(last.upper) if last else None,
        score=finite_or_none(last.score) if last else None,
        verdict=verdict,
        reason=reason,
        anomalous_points=f"{state.anomalous_count}/{state.window.maxlen}",
    )


def judge_signal(
    *,
    signal: Signal,
    table: SeriesTable,
    samples: list[Sample] | None,
    no_data_reason: str,
    now: float,
    staleness: float,
    confirm_k: int,
    settling: Settling,
) -> SignalJudgement:
    """Feed this cycle's samples to their detectors and judge the signal.

    `samples` is None when the query failed; `no_data_reason` then says why. `settling` is the
    signal's settling time; its evaluationDelay and interval also date the anomaly's first point.
    """
    table.refused = 0
    rows: list[tuple[float, SeriesStatus]] = []
    seen: set[int] = set()
    anomalous_now: set[int] = set()  # series whose fresh, finite point of this cycle is anomalous
    fresh: dict[int, SeriesNow] = {}  # series with a fresh, finite point this cycle, as the state machine reads it
    detector_seconds = 0.0

    for sample in samples or []:
        state = table.get_or_create(sample.labels, now=now)
        if state is None:
            continue
        seen.add(id(state))
        if sample.stale:  # returned, but its data is older than spec.staleness: no data, not seen now
            state.record(anomalous=False)
            rows.append((-1.0, _series_status(state, SeriesVerdict.NO_DATA, sample.stale, confirm_k)))
            continue
        state.last_seen = now
        state.last_value = sample.value
        if not math.isfinite(sample.value):
            state.record(anomalous=False)
            rows.append((0.0, _series_status(state, SeriesVerdict.NO_DATA, f"value is {sample.value}", confirm_k)))
            continue
        started = time.perf_counter()
        verdict: Verdict = state.detector.update_one(sample.t, sample.value)
        detector_seconds += time.perf_counter() - started
        state.last_verdict = verdict
        state.learned_points += 1
        breach = _guard_breach(signal.guard, sample.value)
        # The operator's rule (homeostat.detectors.confirmation, shared with `homeostat eval --confirm`).
        point = judge_point(value=sample.value, verdict=verdict, direction=signal.direction,
                            min_change=signal.min_change, breach=breach is not None)
        anomalous = point.anomalous
        state.record(anomalous=anomalous, alarm=point.alarm)
        state.recent.append((now, sample.value))
        if anomalous:
            anomalous_now.add(id(state))
            kind, reason = SeriesVerdict.ANOMALOUS, breach or verdict.reason
        elif not verdict.warm:
            kind, reason = SeriesVerdict.LEARNING, verdict.reason
        else:
            kind, reason = SeriesVerdict.NORMAL, verdict.reason
        row = _series_status(state, kind, reason, confirm_k)
        rows.append((verdict.score + (1.0 if anomalous else 0.0), row))
        fresh[id(state)] = SeriesNow(
            labels=dict(state.labels), value=sample.value, anomalous=anomalous, expected=row.expected,
            lower=row.lower, upper=row.upper, score=row.score, points=tuple(state.recent),
        )

    for state in table:
        if id(state) in seen:
            continue
        state.record(anomalous=False)  # no data breaks a run of anomalous points
        reason = no_data_reason if samples is None else f"stale: no sample for {now - state.last_seen:.0f}s"
        if samples is None or now - state.last_seen >= staleness:
            rows.append((-1.0, _series_status(state, SeriesVerdict.NO_DATA, reason, confirm_k)))

    # Confirmed: the point just seen is anomalous, so were k of the last n, and one of those
    # was an alarm. A series without a usable point this cycle is never confirmed, whatever its history.
    confirmed = sorted(
        (state for state in table
         if is_confirmed(anomalous_now=id(state) in anomalous_now, window=state.window, alarms=state.alarms,
                         k=confirm_k)),
        key=lambda s: -(s.last_verdict.score if s.last_verdict else 1.0),
    )
    rows.sort(key=lambda row: -row[0])
    series = [status for _, status in rows]
    counts = {verdict: sum(1 for s in series if s.verdict == verdict) for verdict in SeriesVerdict}
    if samples is None:
        overall, message = SeriesVerdict.NO_DATA, no_data_reason
    elif not samples:
        overall, message = SeriesVerdict.NO_DATA, "the query returned no series"
    elif counts[SeriesVerdict.ANOMALOUS]:
        overall, message = SeriesVerdict.ANOMALOUS, f"{counts[SeriesVerdict.ANOMALOUS]} series anomalous"
    elif counts[SeriesVerdict.NORMAL]:
        overall, message = SeriesVerdict.NORMAL, ""
    elif counts[SeriesVerdict.LEARNING]:
        overall, message = SeriesVerdict.LEARNING, "detectors are still learning"
    else:
        overall, message = SeriesVerdict.NO_DATA, "no series has a finite value"
    if table.refused:
        message = (message + "; " if message else "") + (
            f"{table.refused} series not tracked (limit {table.max_series}); raise spec.maxSeriesPerSignal"
        )
    status = SignalStatus(
        name=signal.name,
        verdict=overall,
        confirmed=bool(confirmed),
        series_count=len(table),
        anomalous_series=counts[SeriesVerdict.ANOMALOUS],
        series=series[:MAX_SERIES_IN_STATUS],
        message=message,
        settling_time=format_duration(settling.seconds),
        settling_basis=settling.explain(),
    )
    # For the state machine: the series with a fresh finite point, in the table's order; no such
    # series means no data, whatever the verdict.
    confirmed_now = {id(state) for state in confirmed}
    observed_series = tuple(
        replace(series_now, confirmed=True) if id(state) in confirmed_now else series_now
        for state in table if (series_now := fresh.get(id(state))) is not None
    )
    usable = overall != SeriesVerdict.NO_DATA and bool(observed_series)
    observed = SignalNow(
        name=signal.name, usable=usable, verdict=str(overall), reason=message or ("" if usable else "no fresh data"),
        series=observed_series, context=signal.role == SignalRole.CONTEXT, settling=settling.seconds,
    )
    at = now - settling.delay  # the data's time of this cycle's point
    anomaly_started = min((at - (len(state.window) - 1 - list(state.window).index(True)) * settling.interval
                   for state in confirmed), default=None)
    return SignalJudgement(status=status, observed=observed, confirmed=confirmed, anomaly_started_at=anomaly_started,
                           detector_seconds=detector_seconds)


def backfill_series(
    *, table: SeriesTable, labels: dict[str, str], points: list[tuple[float, float]], now: float
) -> int:
    """Warm a series' detector on history: learn only, never count towards confirmation."""
    state = table.get_or_create(labels, now=now)
    if state is None:
        return 0
    learned = 0
    for t, x in points:
        if math.isfinite(x):
            state.last_verdict = state.detector.update_one(t, x)
            state.last_value = x
            learned += 1
    state.learned_points += learned
    return learned
