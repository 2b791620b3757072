"""Did a step help? Verification read the way Prometheus computes the data. Pure.

A point of `rate(errors[30s])` evaluated 10 s behind now still holds 40 s of the past, so a
point judged too soon after an action is partly pre-action data: a fixed problem looks "not
recovered" (keptn/keptn#4147), and a point of no post-action data at all must never pass for
"recovered" (kubernaut#722). The rules (docs/playbooks.md):

- An action *lands* when its write returned and the target's rollout completed (every replica
  updated and available), or when its verification time has passed waiting for that.
- Each signal has a *settling time* (`operator/settling.py`: its query's longest window, plus
  evaluationDelay, plus one interval): a point evaluated at `e` reflects only post-action data
  when `e >= landed + settling`. Such points are *settled*.
- The verification window is the step's `verify`, extended to the longest settling time of the
  incident's signals; it starts when the action lands.
- Then, per involved series, on its settled points (the last n): **not recovered** when the
  newest is outside the band recorded at detection (or beyond the guard) and at least k of them
  are; **recovered** when the newest is inside and fewer than k are outside; otherwise (the
  newest outside, fewer than k so far) wait for the next point. No settled point: wait.
- After an escalation, every involved series back inside its recorded band for a full settling
  time ends the hold (`back_in_band`).

An involved series that is gone while its signal answers (a restarted or deleted pod) is not
held against the signal; when every involved series of a signal is gone, the signal's present
series (the new pods) are judged against the widest band recorded for it, so a restart of
per-pod series is verified on the new pods instead of passing on no data.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from homeostat.api.durations import format_duration, parse_duration
from homeostat.api.incident import IncidentSpec, InvolvedSeries
from homeostat.api.policy import Direction, PolicySpec, Signal, Step
from homeostat.playbooks.observations import Observations, SeriesNow, SignalNow


class Recovery(enum.StrEnum):
    RECOVERED = "Recovered"
    NOT_RECOVERED = "NotRecovered"
    NO_DATA = "NoData"
    PENDING = "Pending"  # data, but no verdict yet: no settled point, or too few to tell


def series_label(labels: Mapping[str, str]) -> str:
    """Labels as the operator writes them in messages: `{pod=a,zone=b}` (`__name__` left out)."""
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") + "}" if labels else ""


def outside_band(direction: str, value: float, series: InvolvedSeries) -> str | None:
    """`0.09 > 0.0044` when `value` is outside the recorded band on the watched side."""
    if direction in (Direction.UP, Direction.BOTH) and series.upper is not None and value > series.upper:
        return f"{value:.4g} > {series.upper:.4g}"
    if direction in (Direction.DOWN, Direction.BOTH) and series.lower is not None and value < series.lower:
        return f"{value:.4g} < {series.lower:.4g}"
    return None


def guard_breach(signal: Signal, value: float) -> str | None:
    """`0.7 > guard 0.5` when `value` is beyond the signal's guard (`GuardSpec.crossed`, as the judge)."""
    crossed = signal.guard.crossed(value) if signal.guard is not None else None
    return f"{value:.4g} {crossed[0]} guard {crossed[1]:g}" if crossed is not None else None


def _problem(signal: Signal, value: float, band: InvolvedSeries) -> str | None:
    """Why `value` is still anomalous against the recorded band, as the judge would say it: a guard
    breach always; outside the band on the watched side unless within `minChange` of the recorded
    expected value (a move the policy calls trivial is no anomaly at detection, nor after it)."""
    breach = guard_breach(signal, value)
    if breach is not None:
        return breach
    expected = band.expected
    if signal.min_change > 0 and expected is not None and abs(value - expected) <= signal.min_change * abs(expected):
        return None
    return outside_band(signal.direction, value, band)


def _widest(involved: Sequence[InvolvedSeries]) -> InvolvedSeries:
    """The widest band recorded for a signal: what a replacement series is judged against."""
    uppers = [s.upper for s in involved if s.upper is not None]
    lowers = [s.lower for s in involved if s.lower is not None]
    first = involved[0]
    return first.model_copy(update={"labels": {}, "upper": max(uppers) if uppers else None,
                                    "lower": min(lowers) if lowers else None})


def _by_signal(spec: IncidentSpec) -> dict[str, list[InvolvedSeries]]:
    grouped: dict[str, list[InvolvedSeries]] = {}
    for series in spec.involved:
        grouped.setdefault(series.signal, []).append(series)
    if not grouped:
        grouped[spec.signal] = []
    return grouped


def _signals(
    spec: IncidentSpec, obs: Observations, policy: PolicySpec,
) -> Iterator[tuple[str, Signal, list[InvolvedSeries], SignalNow | str]]:
    """Each signal of the incident that the policy still watches: its name, spec and involved
    series, and what is seen of it this cycle, or why nothing usable is (`name: reason`)."""
    signals = {s.name: s for s in policy.signals}
    for name, involved in _by_signal(spec).items():
        signal = signals.get(name)
        if signal is None:
            continue  # the policy no longer watches it
        now = obs.signals.get(name)
        if now is None or not now.usable:
            yield name, signal, involved, f"{name}: {(now.reason if now else '') or 'no data'}"
        else:
            yield name, signal, involved, now


def _judged(involved: Sequence[InvolvedSeries], now: SignalNow) -> list[tuple[str, SeriesNow, InvolvedSeries]]:
    """(label, series now, recorded band) for each involved series present; replacements when none is."""
    pairs = []
    for band in involved:
        current = now.find(band.labels)
        if current is not None:
            pairs.append((series_label(band.labels), current, band))
    if not pairs and involved:
        widest = _widest(involved)
        pairs = [(series_label(s.labels) + " (replacing the involved series)", s, widest) for s in now.series]
    return pairs


# --- settling and the verification window ---------------------------------------------------------


def longest_settling(spec: IncidentSpec, obs: Observations) -> tuple[float, str | None]:
    """The longest settling time among the incident's signals, and that signal's name."""
    best: tuple[float, str | None] = (0.0, None)
    for name in _by_signal(spec):
        signal = obs.signals.get(name)
        if signal is not None and signal.settling > best[0]:
            best = (signal.settling, name)
    return best


@dataclass(frozen=True, kw_only=True)
class VerifyWindow:
    seconds: float  # how long verification runs after the action landed
    requested: float  # the step's (or the playbook's) `verify`
    extended_for: str | None = None  # the signal whose settling time extended it

    def describe(self) -> str:
        if self.extended_for is None:
            return format_duration(self.seconds)
        return (f"{format_duration(self.seconds)} (verify {format_duration(self.requested)} extended to the "
                f"settling time of {self.extended_for})")


def requested_verify(step: Step | None, policy: PolicySpec) -> float:
    return parse_duration((step.verify if step is not None and step.verify else None) or policy.playbook.verify)


def verify_window(step: Step | None, policy: PolicySpec, spec: IncidentSpec, obs: Observations) -> VerifyWindow:
    """The step's `verify`, extended to the longest settling time of the incident's signals."""
    requested = requested_verify(step, policy)
    settling, name = longest_settling(spec, obs)
    if settling > requested:
        return VerifyWindow(seconds=settling, requested=requested, extended_for=name)
    return VerifyWindow(seconds=requested, requested=requested)


# --- the verdicts -----------------------------------------------------------------------------------


def recovered_now(spec: IncidentSpec, obs: Observations, policy: PolicySpec) -> tuple[Recovery, str]:
    """Before a step runs: are the incident's series back in the band recorded at detection?

    Per involved signal: it must have fresh data (else NO_DATA, which wins: no verdict on part of
    the picture), no series of it may be confirmed anomalous now, and each involved series seen
    now must be inside its recorded band on the watched side and within the signal's guard.
    """
    missing: list[str] = []
    problems: list[str] = []
    checked: list[str] = []
    for name, signal, involved, now in _signals(spec, obs, policy):
        if isinstance(now, str):
            missing.append(now)
            continue
        checked.append(name)
        if now.confirmed:
            problems.append(f"{name} still confirmed anomalous")
            continue
        for label, current, band in _judged(involved, now):
            breach = _problem(signal, current.value, band)
            if breach:
                problems.append(f"{name}{label} {breach}")
    if missing:
        return Recovery.NO_DATA, "no data for " + "; ".join(missing)
    if not checked:
        return Recovery.NO_DATA, "the policy no longer watches any signal of this incident"
    if problems:
        return Recovery.NOT_RECOVERED, "; ".join(problems)
    return Recovery.RECOVERED, f"{', '.join(checked)} back in the band recorded at detection"


def settled_points(series: SeriesNow, *, landed: float, settling: float) -> list[tuple[float, float]]:
    """The series' recent points whose whole query window starts after the action landed."""
    return [(t, v) for t, v in series.points if t >= landed + settling]


def judge_verification(
    spec: IncidentSpec, obs: Observations, policy: PolicySpec, *, landed: float,
) -> tuple[Recovery, str]:
    """After a step landed and its window passed: did it help? See the module docstring."""
    k = policy.confirm.k
    missing: list[str] = []
    problems: list[str] = []
    pending: list[str] = []
    checked: list[str] = []
    for name, signal, involved, now in _signals(spec, obs, policy):
        if isinstance(now, str):
            missing.append(now)
            continue
        if not involved:  # an incident recorded without its series: the signal's confirmation decides
            (problems if now.confirmed else checked).append(name if not now.confirmed
                                                            else f"{name} still confirmed anomalous")
            continue
        for label, current, band in _judged(involved, now):
            points = settled_points(current, landed=landed, settling=now.settling)
            where = f"{name}{label}"
            if not points:
                pending.append(f"{where}: no point yet whose window starts after the action "
                               f"(settling {format_duration(now.settling)})")
                continue
            out = [why for _, v in points if (why := _problem(signal, v, band))]
            newest_out = _problem(signal, points[-1][1], band) is not None
            if newest_out and len(out) >= k:
                problems.append(f"{where} {out[-1]} ({len(out)} of {len(points)} settled points)")
            elif newest_out:
                pending.append(f"{where} {out[-1]} on {len(out)} of {len(points)} settled points; "
                               f"{k} make it not recovered")
            else:
                checked.append(name)
    if missing:
        return Recovery.NO_DATA, "no data for " + "; ".join(missing)
    if problems:
        return Recovery.NOT_RECOVERED, "; ".join(problems)
    if pending:
        return Recovery.PENDING, "; ".join(pending)
    if not checked:
        return Recovery.NO_DATA, "no series of this incident's signals to verify"
    return Recovery.RECOVERED, (f"{', '.join(sorted(set(checked)))} back in the band recorded at detection "
                                "on points whose window starts after the action")


def back_in_band(spec: IncidentSpec, obs: Observations, policy: PolicySpec) -> tuple[bool | None, str]:
    """While escalated: is every involved series back inside its recorded band?

    (True, why) the newest point of every involved series is inside and none has k of its last n
    points outside; (False, why) one has k of its last n points outside (a sustained excursion:
    the count starts again); (None, why) no data, or a newest point outside without k: no
    change, so a lone blip of a noisy series neither starts nor breaks the count.
    """
    k = policy.confirm.k
    undecided: list[str] = []
    checked: list[str] = []
    for name, signal, involved, now in _signals(spec, obs, policy):
        if isinstance(now, str):
            return None, f"no data for {now}"
        if not involved:
            if now.confirmed:
                return False, f"{name} still confirmed anomalous"
            checked.append(name)
            continue
        for label, current, band in _judged(involved, now):
            points = current.points or ((obs.at, current.value),)
            out = [why for _, v in points if (why := _problem(signal, v, band))]
            if len(out) >= k:
                return False, f"{name}{label} {out[-1]} ({len(out)} of its last {len(points)} points)"
            if _problem(signal, points[-1][1], band) is not None:
                undecided.append(f"{name}{label} {out[-1]}")
            else:
                checked.append(name)
    if undecided:
        return None, "; ".join(undecided)
    if not checked:
        return None, "no series of this incident's signals to judge"
    return True, f"{', '.join(sorted(set(checked)))} back in the band recorded at detection"
