"""The operator's confirmation rule, as pure functions: when a point counts, when a series is confirmed.

One rule, used by the operator (`homeostat.operator.judge`) and by ``homeostat eval
--confirm`` (`homeostat.detectors.evaluation`), so that what the evaluation measures is what
the operator acts on:

* a point is an **alarm** if a guard breaks, or if the detector is warm, alarms and the move
  is not trivial (within ``min_change``, relative, of the expected value);
* a point is **anomalous** if it is an alarm, or if the detector is warm, the move is not
  trivial and the value lies outside the band on the watched side;
* a series is **confirmed** when its current point is anomalous, at least ``k`` of its last
  ``n`` points were, and one of those was an alarm.

No data (missing, NaN, Inf) is recorded as a point that is neither: it breaks a run.

Example
-------
>>> from collections import deque
>>> from homeostat.detectors.base import Verdict
>>> from homeostat.detectors.confirmation import ConfirmRule, is_confirmed, judge_point, record_point
>>> rule = ConfirmRule.parse("3/5")
>>> window, alarms = deque(maxlen=rule.n), deque(maxlen=rule.n)
>>> onset = Verdict(score=0.9, expected=10.0, lower=8.0, upper=12.0, alarm=True, reason="", warm=True)
>>> after = Verdict(score=0.3, expected=10.0, lower=8.0, upper=12.0, alarm=False, reason="", warm=True)
>>> confirmed = []
>>> for value, verdict in [(9.0, after), (20.0, onset), (19.0, after), (18.0, after)]:
...     p = judge_point(value=value, verdict=verdict, direction="up", min_change=rule.min_change, breach=False)
...     record_point(window, alarms, anomalous=p.anomalous, alarm=p.alarm)
...     confirmed.append(is_confirmed(anomalous_now=p.anomalous, window=window, alarms=alarms, k=rule.k))
>>> confirmed  # the third point out of band confirms: 3 of the last 5, one of them an alarm
[False, False, False, True]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .base import Verdict

__all__ = ["ConfirmRule", "PointJudgement", "is_confirmed", "judge_point", "outside_band", "record_point", "trivial"]


def outside_band(direction: str, value: float, verdict: Verdict) -> bool:
    """The Verdict contract: values in [lower, upper] are normal; outside, on the watched side, not."""
    above = math.isfinite(verdict.upper) and value > verdict.upper
    below = math.isfinite(verdict.lower) and value < verdict.lower
    return (above and direction in ("up", "both")) or (below and direction in ("down", "both"))


def trivial(value: float, verdict: Verdict, min_change: float) -> bool:
    """Within `min_change` (relative) of the expected value: too small a move to count."""
    if min_change <= 0 or not math.isfinite(verdict.expected):
        return False
    return abs(value - verdict.expected) <= min_change * abs(verdict.expected)


@dataclass(frozen=True, slots=True)
class PointJudgement:
    """What one finite point counts as in the confirmation window."""

    anomalous: bool
    alarm: bool


def judge_point(*, value: float, verdict: Verdict, direction: str, min_change: float, breach: bool) -> PointJudgement:
    """Classify one finite point (``breach``: a guard, an SLO, broke on it).

    A detector may alarm once at the onset of an anomaly; confirmation needs to know that
    the following points are still out of band, so both count as anomalous points. But a
    run of points just outside the band with no alarm at all is noise at the band's edge:
    confirmation also needs an alarm (or a guard breach) among the window's points.
    """
    significant = not trivial(value, verdict, min_change)
    alarm = breach or (verdict.warm and verdict.alarm and significant)
    anomalous = alarm or (verdict.warm and significant and outside_band(direction, value, verdict))
    return PointJudgement(anomalous=anomalous, alarm=alarm)


def record_point(window: deque[bool], alarms: deque[bool], *, anomalous: bool, alarm: bool = False) -> None:
    """Push one point into a confirmation window of ``maxlen`` n (no data: both False)."""
    window.append(anomalous)
    alarms.append(alarm and anomalous)


def is_confirmed(*, anomalous_now: bool, window: Iterable[bool], alarms: Iterable[bool], k: int) -> bool:
    """The point just seen is anomalous, so were ``k`` of the window's points, and one was an alarm."""
    return anomalous_now and sum(window) >= k and any(alarms)


@dataclass(frozen=True, slots=True)
class ConfirmRule:
    """A policy's ``confirm: {k, n}`` and a signal's ``minChange``, as the evaluation applies them."""

    k: int
    n: int
    min_change: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"confirm K/N must have 1 <= K <= N, got {self.k}/{self.n}")
        if not (math.isfinite(self.min_change) and self.min_change >= 0):
            raise ValueError(f"min-change must be a finite number >= 0, got {self.min_change}")

    @classmethod
    def parse(cls, text: str, *, min_change: float = 0.0) -> ConfirmRule:
        """``"3/5"`` -> k=3, n=5."""
        k_text, sep, n_text = text.partition("/")
        try:
            if not sep:
                raise ValueError
            k, n = int(k_text), int(n_text)
        except ValueError:
            raise ValueError(f"{text!r} is not K/N (e.g. 3/5: 3 anomalous points of the last 5)") from None
        return cls(k=k, n=n, min_change=min_change)

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"
