"""Adaptive forecast-residual detector with record-relative scoring (the NAB-selected default).

Idea
----
Two cheap one-step forecasters run side by side:

* a robust level: an exponentially weighted mean whose update is Huber-clipped, so a spike
  moves it by at most ``huber`` typical errors;
* a daily seasonal baseline: the value at the same phase of the previous days (a profile
  of ``bins`` time-of-day slots, each an exponentially weighted mean across days).

Each forecaster keeps a slow, Huber-clipped mean absolute error. The point is judged by the
forecaster that has been more accurate lately (forecast-model selection), giving a
standardised residual ``e = |x - forecast| / error`` in the watched direction.

Rather than a fixed z threshold, ``e`` is compared with the *record*: a slowly decaying
maximum of the residuals seen so far (half-life ``record_half_life`` seconds; kept in the series' own
units, so a drifting error scale does not shrink or inflate it; never below
``record_floor`` mean absolute errors). The score is high only when the point is more extreme than anything in
recent memory, so a heavy-tailed but healthy series stops alarming once its usual bursts
are on record, an anomaly fires once, early, and its continuation does not fire again
(it is no longer a record). This is extreme-value thinking without the distributional
fit: a point is anomalous when it breaks the running record by a margin.

``Verdict.pvalue`` comes from a peaks-over-threshold model of ``e``: its 95 % quantile is
tracked online and the excesses get a generalised Pareto law fitted by moments (four
floats), calibrated enough for Benjamini-Hochberg across series (``fdr``).

Level shifts re-baseline: after ``shift_after`` consecutive same-side residuals beyond the
Huber bound, the level jumps to the mean of that run, so a persistent shift that nobody
remediates stops alarming (every point is learned, the model cannot get stuck: River
issue #948). Memory is fixed: a few floats plus ``bins`` float32 values.

Parameters
----------
direction
    ``"up"``, ``"down"`` or ``"both"``.
sensitivity
    ``"low"``, ``"medium"`` or ``"high"``: the margin by which a point must break the record.
bins, period
    Seasonal profile resolution and period in seconds (default 288 slots over one day).
level_alpha, error_alpha, season_alpha
    Smoothing of the level, of the forecast errors and of the seasonal profile (per visit).
huber
    Clipping of the updates, in mean absolute errors.
record_half_life, record_floor
    Half-life of the running record in seconds and its floor (in mean absolute errors).
    Two weeks: longer than the weekly cycle, so last week's peak hour is still on record
    when it comes round again; in time rather than points so the memory does not depend
    on the sampling rate.
min_history
    Points learned before the detector judges anything (288: a day of five-minute points,
    so the running record is not set by the warm-up transient).
shift_after
    Consecutive same-side outliers after which the level re-baselines.

References
----------
Huber, P. (1964). Robust estimation of a location parameter. Ann. Math. Statist. 35.
Hyndman, R. and Athanasopoulos, G. Forecasting: Principles and Practice, ch. 8 (exponential
smoothing) and 5.8 (seasonal naive).
Lavin, A. and Ahmad, S. (2015). Evaluating real-time anomaly detection algorithms: the
Numenta Anomaly Benchmark. arXiv:1510.03336.

Example
-------
>>> import math
>>> from homeostat.detectors.adaptive import Adaptive
>>> det = Adaptive(direction="up")
>>> for i in range(600):
...     _ = det.update_one(300.0 * i, 100.0 + 5.0 * math.sin(i / 10.0))
>>> det.score_one(300.0 * 600, 101.0).alarm
False
>>> v = det.score_one(300.0 * 600, 180.0)
>>> v.alarm, v.score > 0.9
(True, True)
>>> det.score_one(300.0 * 600, 20.0).alarm  # direction "up": a drop is not an incident
False
"""

from __future__ import annotations

import math
from array import array
from typing import Any, ClassVar

from ._codec import finite_or_none, none_or_float
from .base import BaseDetector, Direction, Verdict, learning_verdict, ratio_to_score

__all__ = ["THRESHOLDS", "Adaptive"]

#: Margin (ratio to the running record) above which the detector alarms, per sensitivity.
THRESHOLDS: dict[str, float] = {"low": 1.5, "medium": 1.09, "high": 0.9}
MAE_TO_SIGMA = 1.2533
#: Tail model of the residual (for ``Verdict.pvalue``): exceedance level tracked, step of the
#: quantile tracker, smoothing of the exceedance rate and of the excess moments.
TAIL_LEVEL, TAIL_STEP, TAIL_RATE_ALPHA, TAIL_MOMENT_ALPHA = 0.05, 0.02, 0.002, 0.02


def tail_pvalue(e: float, u: float, rate: float, m1: float, m2: float) -> float:
    """P(residual >= e) from a peaks-over-threshold model: GPD fitted by moments above ``u``.

    Above the tracked quantile ``u`` (exceeded with probability ``rate``) the excesses follow
    a generalised Pareto law whose shape and scale come from their first two moments
    (``gamma = (1 - m1^2 / var) / 2``, ``sigma = m1 (1 + m1^2 / var) / 2``); below ``u`` the
    value is interpolated linearly to 1 at ``e = 0`` (only the tail matters for FDR).
    """
    if not e > u:
        return 1.0 - (1.0 - rate) * max(e, 0.0) / u if u > 0.0 else 1.0
    var = max(m2 - m1 * m1, 1e-12)
    ratio = m1 * m1 / var
    gamma = min(0.45, max(-0.5, 0.5 * (1.0 - ratio)))
    sigma = max(0.5 * m1 * (1.0 + ratio), 1e-12)
    y = e - u
    if abs(gamma) < 1e-6:
        return rate * math.exp(-y / sigma)
    base = 1.0 + gamma * y / sigma
    if base <= 0.0:
        return 0.0
    return rate * math.pow(base, -1.0 / gamma)


class Adaptive(BaseDetector):
    """Forecast-residual detector with record-relative scoring (see the module docstring)."""

    kind: ClassVar[str] = "adaptive"

    def __init__(
        self,
        direction: Direction | str = Direction.UP,
        sensitivity: str = "medium",
        *,
        bins: int = 288,
        period: float = 86400.0,
        level_alpha: float = 0.1,
        error_alpha: float = 0.005,
        season_alpha: float = 0.5,
        huber: float = 2.0,
        record_half_life: float = 14 * 86400.0,
        record_floor: float = 3.0,
        min_history: int = 288,
        shift_after: int = 12,
    ) -> None:
        super().__init__(direction, sensitivity)
        self.bins = int(bins)
        self.period = float(period)
        self.level_alpha = level_alpha
        self.error_alpha = error_alpha
        self.season_alpha = season_alpha
        self.huber = huber
        self.record_half_life = float(record_half_life)
        self.record_floor = record_floor
        self.min_history = int(min_history)
        self.shift_after = int(shift_after)
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.level = math.nan
        self.level_err = math.nan
        self.season_err = math.nan
        self.long_err = math.nan
        self.record = 0.0
        self.last_t = math.nan  # time of the last learned point (for the record's decay)
        # peaks-over-threshold model of the residual, for calibrated tail probabilities
        self.tail_u, self.tail_rate, self.tail_m1, self.tail_m2 = 2.0, TAIL_LEVEL, 1.0, 2.0
        self.run = 0
        self.run_sum = 0.0
        self.profile = array("f", [math.nan]) * self.bins

    # -- helpers ---------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """Record-breaking margin above which the detector alarms (including feedback)."""
        return THRESHOLDS[self.sensitivity] * self.fp_factor

    @property
    def warm(self) -> bool:
        return self.n >= self.min_history

    def _slot(self, t: float) -> int:
        return int((t % self.period) / self.period * self.bins) % self.bins

    def _forecast(self, slot: int) -> tuple[float, float, str]:
        """(forecast, scale, name) of the forecaster with the lower recent error."""
        f, s, name = self.level, self.level_err, "level"
        p = self.profile[slot]
        if not math.isnan(p) and not math.isnan(self.season_err) and not self.season_err >= s:
            f, s, name = p, self.season_err, "seasonal"
        floor = 1e-3 * abs(f) + 1e-9
        if not math.isnan(self.long_err):
            floor = max(floor, 0.1 * self.long_err)
        return f, max(s, floor), name

    def _deviation(self, x: float, f: float, s: float) -> float:
        d = (x - f) / s
        if self.direction is Direction.UP:
            return d
        if self.direction is Direction.DOWN:
            return -d
        return abs(d)

    # -- the estimator ---------------------------------------------------------------------
    def _score(self, t: float, x: float) -> Verdict:
        if not self.warm:
            return learning_verdict(self.n, self.min_history)
        f, s, name = self._forecast(self._slot(t))
        return self._verdict(x, f, s, name, self._deviation(x, f, s))

    def _verdict(self, x: float, f: float, s: float, name: str, e: float) -> Verdict:
        record = max(self.record / s, self.record_floor)  # the record in current error units
        thr = self.threshold
        r = e / (record * thr)
        alarm = r > 1.0
        half = thr * record * s
        reason = (
            f"{name} residual {e:.1f} MAE {'breaks' if alarm else 'within'} record {record:.1f} x{thr:.2f}"
            f" ({'upper' if x >= f else 'lower'})"
        )
        return Verdict(
            score=ratio_to_score(r),
            expected=f,
            lower=f - half,
            upper=f + half,
            alarm=alarm,
            reason=reason,
            warm=True,
            pvalue=tail_pvalue(e, self.tail_u, self.tail_rate, self.tail_m1, self.tail_m2),
        )

    def update_one(self, t: float, x: float) -> Verdict:
        """``score_one`` then ``learn_one``, sharing the forecast (the same arithmetic, once)."""
        if not self.warm or not math.isfinite(x):
            return super().update_one(t, x)
        t, x = float(t), float(x)
        slot = self._slot(t)
        f, s, name = self._forecast(slot)
        e = self._deviation(x, f, s)
        verdict = self._verdict(x, f, s, name, e)
        self._update(t, x, slot, e, s)
        self._decay_feedback()
        return verdict

    def _learn(self, t: float, x: float) -> None:
        slot = self._slot(t)
        e, s = math.nan, math.nan
        if self.warm:
            f, s, _ = self._forecast(slot)
            e = self._deviation(x, f, s)
        self._update(t, x, slot, e, s)

    def _record_decay(self, t: float) -> float:
        """Decay of the record since the last learned point: 0.5 ** (elapsed / half-life)."""
        dt = t - self.last_t
        return 0.5 ** (dt / self.record_half_life) if dt > 0.0 else 1.0

    def _update(self, t: float, x: float, slot: int, e: float, s: float) -> None:
        """Learn ``x`` given its residual ``e`` (in units of ``s``) against the pre-update forecast.

        ``e`` is nan while learning. The record is kept in the series' own units (``e * s``),
        so a drifting error scale does not make old records look small or large.
        """
        if self.warm and not math.isnan(e):
            self.record = max(e * s, self.record * self._record_decay(t))
            u = self.tail_u
            exceed = e > u
            self.tail_u = u + TAIL_STEP * ((1.0 if exceed else 0.0) - TAIL_LEVEL)
            self.tail_rate += TAIL_RATE_ALPHA * ((1.0 if exceed else 0.0) - self.tail_rate)
            if exceed:
                y = e - u
                self.tail_m1 += TAIL_MOMENT_ALPHA * (y - self.tail_m1)
                self.tail_m2 += TAIL_MOMENT_ALPHA * (y * y - self.tail_m2)
        clip = self.n > self.min_history
        h = self.huber
        # forecast errors (before the forecasters move)
        if not math.isnan(self.level):
            a = abs(x - self.level)
            if math.isnan(self.level_err):
                self.level_err = a
            else:
                c = min(a, h * self.level_err) if clip else a
                self.level_err += self.error_alpha * (c - self.level_err)
            self.long_err = a if math.isnan(self.long_err) else self.long_err + 0.001 * (a - self.long_err)
        p = self.profile[slot]
        if not math.isnan(p):
            a = abs(x - p)
            if math.isnan(self.season_err):
                self.season_err = a
            else:
                c = min(a, h * self.season_err) if clip else a
                self.season_err += self.error_alpha * (c - self.season_err)
        # level: Huber-clipped exponential smoothing, re-baselined after a persistent shift
        if math.isnan(self.level):
            self.level = x
        else:
            d = x - self.level
            bound = h * self.level_err
            if clip and bound > 0.0 and abs(d) > bound:
                if self.shift_after > 0:
                    same = self.run == 0 or (d > 0) == (self.run > 0)
                    self.run = (self.run + (1 if d > 0 else -1)) if same else (1 if d > 0 else -1)
                    self.run_sum = (self.run_sum + x) if same else x
                    if abs(self.run) >= self.shift_after:
                        self.level = self.run_sum / abs(self.run)
                        self.run, self.run_sum = 0, 0.0
                        d = 0.0
                d = max(-bound, min(bound, d))
            else:
                self.run, self.run_sum = 0, 0.0
            self.level += self.level_alpha * d
        # seasonal profile (stored as float32: what is exported is exactly what is used)
        self.profile[slot] = x if math.isnan(p) else p + self.season_alpha * (x - p)
        self.n += 1
        self.last_t = t

    def mark_false_positive(self, t: float, x: float) -> None:
        """Feedback: put the point's residual on record, so it and anything smaller stay quiet.

        The record decays like any other (half-life ``record_half_life`` seconds), so
        the detector becomes sensitive to that pattern again after a while.
        """
        if not math.isfinite(x) or not self.warm:
            return
        f, s, _ = self._forecast(self._slot(float(t)))
        e = self._deviation(float(x), f, s)
        if e > 0.0:
            self.record = max(self.record, e * s * 1.05 / self.threshold)

    # -- state -----------------------------------------------------------------------------
    def _export(self) -> dict[str, Any]:
        from ._codec import pack_f32

        return {
            "params": [
                self.bins,
                self.period,
                self.level_alpha,
                self.error_alpha,
                self.season_alpha,
                self.huber,
                self.record_half_life,
                self.record_floor,
                self.min_history,
                self.shift_after,
            ],
            "n": self.n,
            "level": finite_or_none(self.level),
            "level_err": finite_or_none(self.level_err),
            "season_err": finite_or_none(self.season_err),
            "long_err": finite_or_none(self.long_err),
            "record": self.record,
            "last_t": finite_or_none(self.last_t),
            "tail": [self.tail_u, self.tail_rate, self.tail_m1, self.tail_m2],
            "run": self.run,
            "run_sum": self.run_sum,
            "profile": pack_f32(self.profile),
        }

    def _restore(self, model: dict[str, Any]) -> None:
        from ._codec import unpack_f32

        (
            bins,
            self.period,
            self.level_alpha,
            self.error_alpha,
            self.season_alpha,
            self.huber,
            self.record_half_life,
            self.record_floor,
            min_history,
            shift_after,
        ) = model["params"]
        self.bins, self.min_history, self.shift_after = int(bins), int(min_history), int(shift_after)
        self.n = int(model["n"])
        self.level = none_or_float(model["level"])
        self.level_err = none_or_float(model["level_err"])
        self.season_err = none_or_float(model["season_err"])
        self.long_err = none_or_float(model["long_err"])
        self.record = float(model["record"])
        self.last_t = none_or_float(model["last_t"])
        self.tail_u, self.tail_rate, self.tail_m1, self.tail_m2 = (float(v) for v in model["tail"])
        self.run = int(model["run"])
        self.run_sum = float(model["run_sum"])
        self.profile = array("f", unpack_f32(model["profile"]))
