"""Seasonal baseline: compare a point with the same phase of previous days (or weeks).

Idea
----
Service traffic repeats daily (and weekly). The period is cut into ``bins`` phase slots; each
slot keeps an exponentially weighted mean of the values seen at that phase on previous
periods (``alpha`` per visit, so roughly the last ``1 / alpha`` days) and an exponentially
weighted mean absolute deviation. A point is compared with its slot: ``z = (x - mean) /
(1.2533 * mad)`` (1.2533 turns a mean absolute deviation into a Gaussian standard
deviation). A slot judges only after ``min_periods`` visits on distinct periods, so the
detector is not warm before ``min_periods`` periods have passed. The slot deviation is
floored by a fraction of the series-wide deviation so a slot that happened to be quiet
does not turn every wiggle into an alarm. Updates are Huber-clipped, and every point is
learned: after a persistent shift each slot re-baselines within about ``3 / alpha`` periods.

Memory is fixed: ``2 * bins`` float32 values and ``bins`` small counters.

Parameters
----------
direction
    ``"up"``, ``"down"`` or ``"both"``.
sensitivity
    ``"low"`` (z > 6), ``"medium"`` (z > 4.5) or ``"high"`` (z > 3.5).
period
    Seconds per season: 86400 (daily, default) or 604800 (weekly).
bins
    Phase slots per period (288 = 5-minute slots over a day).
alpha
    Per-visit smoothing of a slot.
min_periods
    Visits a slot needs before it judges.

References
----------
Hyndman, R. and Athanasopoulos, G. Forecasting: Principles and Practice, 5.2 (seasonal
naive method). Vallis, O., Hochenbaum, J. and Kejariwal, A. (2014). A novel technique for
long-term anomaly detection in the cloud. HotCloud (seasonal baselines at Twitter).

Example
-------
>>> import math
>>> from homeostat.detectors.seasonal import SeasonalBaseline
>>> det = SeasonalBaseline(direction="up", bins=24)
>>> hourly = [100.0 + 50.0 * math.sin(2 * math.pi * h / 24) for h in range(24)]
>>> for day in range(4):
...     for h in range(24):
...         _ = det.update_one(86400.0 * day + 3600.0 * h, hourly[h] + (day % 2))
>>> det.score_one(86400.0 * 4 + 6 * 3600.0, 150.0).alarm  # the usual daily peak
False
>>> det.score_one(86400.0 * 4 + 18 * 3600.0, 150.0).alarm  # a peak at the usual trough
True
"""

from __future__ import annotations

import base64
import math
from array import array
from typing import Any, ClassVar

import numpy as np

from ._codec import pack_f32, unpack_f32
from .base import BaseDetector, Direction, Verdict, zscore_verdict

__all__ = ["THRESHOLDS", "SeasonalBaseline"]

THRESHOLDS: dict[str, float] = {"low": 6.0, "medium": 4.5, "high": 3.5}
MAD_TO_SIGMA = 1.2533


class SeasonalBaseline(BaseDetector):
    """Same-phase-of-previous-periods baseline (see the module docstring)."""

    kind: ClassVar[str] = "seasonal"

    def __init__(
        self,
        direction: Direction | str = Direction.UP,
        sensitivity: str = "medium",
        *,
        period: float = 86400.0,
        bins: int = 288,
        alpha: float = 0.3,
        min_periods: int = 2,
        huber: float = 3.0,
    ) -> None:
        super().__init__(direction, sensitivity)
        if bins < 1 or period <= 0:
            raise ValueError("bins must be >= 1 and period > 0")
        self.period, self.bins, self.alpha = float(period), int(bins), alpha
        self.min_periods, self.huber = int(min_periods), huber
        self.mean = array("f", [math.nan]) * self.bins
        self.mad = array("f", [math.nan]) * self.bins
        self.visits = array("H", [0]) * self.bins
        self.last_period = array("q", [-1]) * self.bins
        self.global_mad = math.nan

    @property
    def threshold(self) -> float:
        """The z-score above which the detector alarms (including feedback)."""
        return THRESHOLDS[self.sensitivity] * self.fp_factor

    @property
    def warm(self) -> bool:
        return max(self.visits, default=0) >= self.min_periods

    def _slot(self, t: float) -> tuple[int, int]:
        k = math.floor(t / self.period)
        return int((t - k * self.period) / self.period * self.bins) % self.bins, int(k)

    def _scale(self, slot: int) -> float:
        s = MAD_TO_SIGMA * self.mad[slot]
        floor = 1e-9 + 1e-3 * abs(self.mean[slot])
        if not math.isnan(self.global_mad):
            floor = max(floor, 0.25 * MAD_TO_SIGMA * self.global_mad)
        return max(s, floor) if not math.isnan(s) else floor

    def _score(self, t: float, x: float) -> Verdict:
        slot, _ = self._slot(t)
        if self.visits[slot] < self.min_periods:
            reason = f"learning {self.visits[slot]}/{self.min_periods} periods for this phase"
            return Verdict(0.0, math.nan, math.nan, math.nan, False, reason, False)
        m, s = self.mean[slot], self._scale(slot)
        return zscore_verdict(self.direction, x, m, s, self.threshold, label="seasonal", context=" vs same phase")

    def _learn(self, t: float, x: float) -> None:
        slot, k = self._slot(t)
        m = self.mean[slot]
        if math.isnan(m):
            self.mean[slot] = x
            self.mad[slot] = math.nan
        else:
            d = x - m
            mad = self.mad[slot]
            a = abs(d)
            if math.isnan(mad):
                self.mad[slot] = a
            else:
                bound = self.huber * max(mad, 0.25 * (self.global_mad if not math.isnan(self.global_mad) else 0))
                if bound > 0.0 and a > bound:
                    d, a = math.copysign(bound, d), bound
                self.mad[slot] = mad + self.alpha * (a - mad)
            self.mean[slot] = m + self.alpha * d
            g = abs(x - m)
            self.global_mad = g if math.isnan(self.global_mad) else self.global_mad + 0.01 * (g - self.global_mad)
        if self.last_period[slot] != k:
            self.last_period[slot] = k
            self.visits[slot] = min(self.visits[slot] + 1, 255)

    def _export(self) -> dict[str, Any]:
        last = max(self.last_period, default=-1)
        seen = np.packbits(np.frombuffer(self.last_period, dtype=np.int64) == last)
        return {
            "params": [self.period, self.bins, self.alpha, self.min_periods, self.huber],
            "mean": pack_f32(self.mean),
            "mad": pack_f32(self.mad),
            "visits": base64.b64encode(
                np.minimum(np.frombuffer(self.visits, dtype=np.uint16), 255).astype(np.uint8).tobytes()
            ).decode("ascii"),
            "last_period": last,
            "seen": base64.b64encode(seen.tobytes()).decode("ascii"),
            "global_mad": None if math.isnan(self.global_mad) else self.global_mad,
        }

    def _restore(self, model: dict[str, Any]) -> None:
        period, bins, self.alpha, mp, self.huber = model["params"]
        self.period, self.bins, self.min_periods = float(period), int(bins), int(mp)
        self.mean = array("f", unpack_f32(model["mean"]))
        self.mad = array("f", unpack_f32(model["mad"]))
        self.visits = array("H", np.frombuffer(base64.b64decode(model["visits"]), dtype=np.uint8).tolist())
        last = int(model["last_period"])
        seen = np.unpackbits(np.frombuffer(base64.b64decode(model["seen"]), dtype=np.uint8))[: self.bins]
        self.last_period = array("q", [last if b else (last - 1 if last >= 0 else -1) for b in seen.tolist()])
        g = model["global_mad"]
        self.global_mad = math.nan if g is None else float(g)
