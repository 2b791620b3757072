"""EWMA control chart with adaptive (exponentially weighted) variance.

Idea
----
The expected value is an exponentially weighted moving average ``mu`` and the spread an
exponentially weighted variance ``var`` of the one-step residuals (Roberts' EWMA chart with
the variance estimated online instead of known in advance). A point alarms when
``z = (x - mu) / sqrt(var)`` exceeds the threshold of the sensitivity in the watched
direction. Updates are Huber-clipped at ``huber`` standard deviations so one spike barely
moves the baseline.

Level shifts: a run of ``shift_after`` consecutive points beyond the band on the same side
is taken as a new normal nobody remediated, and the chart re-baselines on the mean of that
run instead of alarming forever (every point is learned, so the filter cannot get stuck
as in River issue #948). The run is counted by `level_shift.SameSideRun`.

Parameters
----------
direction
    ``"up"``, ``"down"`` or ``"both"``.
sensitivity
    ``"low"`` (z > 5), ``"medium"`` (z > 4) or ``"high"`` (z > 3).
alpha
    Smoothing of the mean (0 < alpha <= 1).
beta
    Smoothing of the variance.
huber
    Clipping of the updates, in standard deviations.
min_history
    Points learned before the detector judges anything.
shift_after
    Consecutive same-side out-of-band points that trigger a re-baseline (0 disables).

References
----------
Roberts, S. W. (1959). Control chart tests based on geometric moving averages.
Technometrics 1(3).
Lucas, J. and Saccucci, M. (1990). Exponentially weighted moving average control schemes.
Technometrics 32(1).

Example
-------
>>> from homeostat.detectors.ewma import EWMA
>>> det = EWMA(direction="both", min_history=20)
>>> for i in range(100):
...     _ = det.update_one(60.0 * i, 10.0 + (-1) ** i)
>>> det.score_one(6000.0, 10.5).alarm
False
>>> det.score_one(6000.0, 30.0).alarm, det.score_one(6000.0, -10.0).alarm
(True, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ._codec import finite_or_none, none_or_float
from .base import BaseDetector, Direction, Verdict, learning_verdict, zscore_verdict
from .level_shift import SameSideRun

__all__ = ["EWMA", "THRESHOLDS"]

THRESHOLDS: dict[str, float] = {"low": 5.0, "medium": 4.0, "high": 3.0}


class EWMA(BaseDetector):
    """EWMA control chart with adaptive variance and level-shift re-baselining."""

    kind: ClassVar[str] = "ewma"

    def __init__(
        self,
        direction: Direction | str = Direction.UP,
        sensitivity: str = "medium",
        *,
        alpha: float = 0.1,
        beta: float = 0.02,
        huber: float = 3.0,
        min_history: int = 30,
        shift_after: int = 12,
    ) -> None:
        super().__init__(direction, sensitivity)
        if not (0.0 < alpha <= 1.0 and 0.0 < beta <= 1.0):
            raise ValueError("alpha and beta must be in (0, 1]")
        self.alpha, self.beta, self.huber = alpha, beta, huber
        self.min_history, self.shift_after = int(min_history), int(shift_after)
        self.n = 0
        self.mean = math.nan
        self.var = math.nan
        self.run = SameSideRun()

    @property
    def threshold(self) -> float:
        """The z-score above which the chart alarms (including feedback)."""
        return THRESHOLDS[self.sensitivity] * self.fp_factor

    @property
    def warm(self) -> bool:
        return self.n >= self.min_history

    def _sd(self) -> float:
        sd = math.sqrt(self.var) if self.var > 0.0 else 0.0
        return max(sd, 1e-3 * abs(self.mean) + 1e-9)

    def _score(self, t: float, x: float) -> Verdict:
        if not self.warm:
            return learning_verdict(self.n, self.min_history)
        return zscore_verdict(self.direction, x, self.mean, self._sd(), self.threshold, label="ewma")

    def _learn(self, t: float, x: float) -> None:
        self.n += 1
        if math.isnan(self.mean):
            self.mean, self.var = x, 0.0
            return
        d = x - self.mean
        if self.n <= self.min_history:  # warm-up: plain moments (Welford-like)
            self.mean += d / self.n
            self.var += (d * (x - self.mean) - self.var) / self.n
            return
        sd = self._sd()
        bound = self.huber * sd
        if abs(d) > bound:
            level = self.run.outlier(d, x, self.shift_after)
            if not math.isnan(level):
                self.mean = level
                return
            d = math.copysign(bound, d)
        else:
            self.run.reset()
        self.mean += self.alpha * d
        self.var = (1.0 - self.beta) * (self.var + self.beta * d * d)

    def _export(self) -> dict[str, Any]:
        return {
            "params": [self.alpha, self.beta, self.huber, self.min_history, self.shift_after],
            "n": self.n,
            "mean": finite_or_none(self.mean),
            "var": finite_or_none(self.var),
            "run": self.run.length,
            "run_sum": self.run.total,
        }

    def _restore(self, model: dict[str, Any]) -> None:
        self.alpha, self.beta, self.huber, mh, sa = model["params"]
        self.min_history, self.shift_after = int(mh), int(sa)
        self.n = int(model["n"])
        self.mean = none_or_float(model["mean"])
        self.var = none_or_float(model["var"])
        self.run = SameSideRun(model["run"], model["run_sum"])
