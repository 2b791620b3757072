"""Forecast-residual detector: damped-trend exponential smoothing (Holt) plus residual scale.

Idea
----
A one-step forecast ``f = level + phi * trend`` from Holt's linear method with a damped
trend is compared with the observation; the residual is standardised by an exponentially
weighted mean absolute residual (times 1.2533, the Gaussian MAD-to-sigma factor) and
alarms above the sensitivity's threshold in the watched direction. This is River's
``PredictiveAnomalyDetection`` pattern (forecast, then score the surprise) with the model
written out so that its state is a handful of floats that export to JSON exactly; River's
``time_series.HoltWinters`` / ``SNARIMAX`` carry unbounded or non-serialisable state.

Updates are Huber-clipped (a spike moves the level by at most ``huber`` typical residuals)
and a run of ``shift_after`` same-side outliers re-baselines the level on the run's mean
(`level_shift.SameSideRun`, shared with `EWMA`).

Parameters
----------
direction
    ``"up"``, ``"down"`` or ``"both"``.
sensitivity
    ``"low"`` (z > 6), ``"medium"`` (z > 4.5) or ``"high"`` (z > 3.5).
alpha, beta, phi
    Level smoothing, trend smoothing and trend damping (Gardner & McKenzie).
error_alpha
    Smoothing of the mean absolute residual.
huber
    Clipping of the updates, in residual scales.
min_history
    Points learned before the detector judges anything.
shift_after
    Consecutive same-side outliers that trigger a re-baseline (0 disables).

References
----------
Holt, C. (1957/2004). Forecasting seasonals and trends by exponentially weighted moving
averages. Int. J. Forecasting 20(1).
Gardner, E. and McKenzie, E. (1985). Forecasting trends in time series. Management Science 31(10).

Example
-------
>>> from homeostat.detectors.forecast import HoltResidual
>>> det = HoltResidual(direction="up")
>>> for i in range(200):
...     _ = det.update_one(60.0 * i, 50.0 + 0.5 * i + (i % 3))  # a steady ramp is normal
>>> det.score_one(12000.0, 151.0).alarm
False
>>> det.score_one(12000.0, 190.0).alarm
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ._codec import finite_or_none, none_or_float
from .base import BaseDetector, Direction, Verdict, learning_verdict, zscore_verdict
from .level_shift import SameSideRun

__all__ = ["THRESHOLDS", "HoltResidual"]

THRESHOLDS: dict[str, float] = {"low": 6.0, "medium": 4.5, "high": 3.5}
MAE_TO_SIGMA = 1.2533


class HoltResidual(BaseDetector):
    """Damped-trend Holt forecaster; alarms on standardised one-step residuals."""

    kind: ClassVar[str] = "forecast"

    def __init__(
        self,
        direction: Direction | str = Direction.UP,
        sensitivity: str = "medium",
        *,
        alpha: float = 0.3,
        beta: float = 0.05,
        phi: float = 0.95,
        error_alpha: float = 0.02,
        huber: float = 3.0,
        min_history: int = 30,
        shift_after: int = 12,
    ) -> None:
        super().__init__(direction, sensitivity)
        self.alpha, self.beta, self.phi = alpha, beta, phi
        self.error_alpha, self.huber = error_alpha, huber
        self.min_history, self.shift_after = int(min_history), int(shift_after)
        self.n = 0
        self.level = math.nan
        self.trend = 0.0
        self.mae = math.nan
        self.run = SameSideRun()

    @property
    def threshold(self) -> float:
        """The z-score above which the detector alarms (including feedback)."""
        return THRESHOLDS[self.sensitivity] * self.fp_factor

    @property
    def warm(self) -> bool:
        return self.n >= self.min_history

    def forecast(self) -> float:
        """The one-step-ahead forecast (nan before the first point)."""
        return self.level + self.phi * self.trend

    def _scale(self, f: float) -> float:
        s = MAE_TO_SIGMA * self.mae if not math.isnan(self.mae) else 0.0
        return max(s, 1e-3 * abs(f) + 1e-9)

    def _score(self, t: float, x: float) -> Verdict:
        if not self.warm:
            return learning_verdict(self.n, self.min_history)
        f = self.forecast()
        return zscore_verdict(self.direction, x, f, self._scale(f), self.threshold, label="forecast residual")

    def _learn(self, t: float, x: float) -> None:
        self.n += 1
        if math.isnan(self.level):
            self.level = x
            return
        f = self.forecast()
        r = x - f
        a = abs(r)
        if math.isnan(self.mae):
            self.mae = a
        elif self.n > self.min_history:
            bound = self.huber * self._scale(f)
            if a > bound:
                level = self.run.outlier(r, x, self.shift_after)
                if not math.isnan(level):
                    self.level, self.trend = level, 0.0
                    return
                r, a = math.copysign(bound, r), bound
            else:
                self.run.reset()
            self.mae += self.error_alpha * (a - self.mae)
        else:
            self.mae += (a - self.mae) / self.n
        new_level = f + self.alpha * r
        self.trend = self.phi * self.trend + self.beta * (new_level - self.level - self.phi * self.trend)
        self.level = new_level

    def _export(self) -> dict[str, Any]:
        return {
            "params": [
                self.alpha,
                self.beta,
                self.phi,
                self.error_alpha,
                self.huber,
                self.min_history,
                self.shift_after,
            ],
            "n": self.n,
            "level": finite_or_none(self.level),
            "trend": self.trend,
            "mae": finite_or_none(self.mae),
            "run": self.run.length,
            "run_sum": self.run.total,
        }

    def _restore(self, model: dict[str, Any]) -> None:
        self.alpha, self.beta, self.phi, self.error_alpha, self.huber, mh, sa = model["params"]
        self.min_history, self.shift_after = int(mh), int(sa)
        self.n = int(model["n"])
        self.level = none_or_float(model["level"])
        self.trend = float(model["trend"])
        self.mae = none_or_float(model["mae"])
        self.run = SameSideRun(model["run"], model["run_sum"])
