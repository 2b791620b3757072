"""Adaptive forecast-residual detector: record-relative score, normal band, optional drift channel.

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

Rather than a fixed z threshold, ``e`` is compared with a *record*: a slowly decaying
maximum of past residuals (half-life ``record_half_life`` seconds; kept in the series' own
units, so a drifting error scale does not shrink or inflate it; never below
``record_floor`` mean absolute errors). Two records answer two questions:

* ``score`` (onset, for ranking and NAB) uses the record of **every** point: it is high
  only when the point is more extreme than anything in recent memory, so an anomaly scores
  high once, early, and its continuation does not (it is no longer a record). This is
  extreme-value thinking without the distributional fit.
* ``alarm`` and the band ``[lower, upper]`` (the current point against *normal* behaviour,
  what the operator confirms k of n on) use the record of **normal** points only. A point
  outside the band starts an *excursion*; while it lasts, its points teach the normal
  model nothing (the band's record, the level and the seasonal profile stay as they were
  before it; only the Huber-clipped error scales move, by at most 0.5 % a point), so every
  point of a sustained shift stays out of band. When the series comes back, an excursion
  of at most ``spike_len`` points was noise and goes on the band's record (a heavy-tailed
  series stops alarming on its usual spikes); a longer one does not (a remediated incident
  is not normal, its recurrence alarms again).

A score above 0.5 implies an alarm (the normal record never exceeds the full one); an
alarm may continue with a low score while an excursion lasts.

Multi-scale evidence (``drift_alpha`` > 0; the registry's ``multiscale``, the default): a
second, slow channel watches the exponentially weighted mean of the standardised residual
(each point clipped at ``record_floor`` mean absolute errors, so a spike moves it little;
span about ``2 / drift_alpha`` points), with its own decaying record (same half-life, floor
``drift_floor``). A moderate sustained shift or drift that never leaves the band point by
point still drives this mean to a record. Its score uses the same margin as the point's and
the higher of the two channels is the score, but a drift alone never lifts the score above
0.5: it is ranking evidence (for NAB, for sorting series), not an alarm, so ``alarm`` and
the band are exactly those of ``adaptive`` and the operator's behaviour does not change.

``Verdict.pvalue`` comes from a peaks-over-threshold model of ``e``: its 95 % quantile is
tracked online and the excesses get a generalised Pareto law fitted by moments (four
floats), calibrated enough for Benjamini-Hochberg across series (``fdr``).

Level shifts re-baseline deliberately: after ``shift_after`` consecutive points outside the
band on the same side (either side, whatever the direction), the level jumps to the mean
of that run (weighted towards its recent points) and the whole seasonal profile moves by
the run's mean offset from it, so a persistent shift that nobody remediates stops
alarming, and the model cannot get stuck refusing to learn (River issue #948). Memory is
fixed: a few floats plus ``bins`` float32 values.

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
    Consecutive same-side out-of-band points after which the model re-baselines on them
    (0 disables; not recommended). This is how long a sustained shift alarms. 30 points:
    at the operator's default 30 s interval that is 15 minutes, enough to confirm (k of n),
    act, verify (``playbook.verify``, 2 minutes) and wait out the cooldown before a second
    step, so the operator does not see a shift as normal while it is still acting on it.
    NAB is flat over 10-30 (``docs/detectors.md``).
spike_len
    Excursions of at most this many points are noise: once the series is back in its band
    they go on the band's record. Two: one point fewer than the usual confirmation (k = 3),
    so what the operator could confirm is never learned as normal.
drift_alpha, drift_floor
    Smoothing of the drift channel (0 disables it: the plain ``adaptive``; ``multiscale``
    uses 0.02, a span of ~100 points, about 8 hours at five-minute points) and the floor of
    its record in mean absolute errors.

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
>>> [det.update_one(300.0 * (600 + k), 180.0).alarm for k in range(4)]  # a sustained shift
[True, True, True, True]

With the drift channel, a shift of about two mean absolute errors that no single point gives
away (the seasonal forecast does not follow it) still breaks the drift's record; it ranks
higher than the plain detector's score, and it is not an alarm:

>>> import random
>>> from homeostat.detectors.adaptive import DRIFT_ALPHA
>>> rng = random.Random(1)
>>> day = [100.0 + 20.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0.0, 2.0) for i in range(1440)]
>>> plain, ms = Adaptive(direction="up"), Adaptive(direction="up", drift_alpha=DRIFT_ALPHA)
>>> for i, x in enumerate(day):
...     a = plain.update_one(300.0 * i, x + (3.0 if i >= 1152 else 0.0))
...     b = ms.update_one(300.0 * i, x + (3.0 if i >= 1152 else 0.0))
>>> b.score > a.score, b.alarm
(True, False)
"""

from __future__ import annotations

import math
from array import array
from typing import Any, ClassVar

from ._codec import finite_or_none, none_or_float
from .base import BaseDetector, Direction, Verdict, learning_verdict, ratio_to_score

__all__ = ["DRIFT_ALPHA", "EXCURSION_ALPHA", "THRESHOLDS", "VARIANTS", "Adaptive"]

#: Margin (ratio to the running record) above which the detector alarms, per sensitivity.
THRESHOLDS: dict[str, float] = {"low": 1.5, "medium": 1.09, "high": 0.9}
MAE_TO_SIGMA = 1.2533
#: Tail model of the residual (for ``Verdict.pvalue``): exceedance level tracked, step of the
#: quantile tracker, smoothing of the exceedance rate and of the excess moments.
TAIL_LEVEL, TAIL_STEP, TAIL_RATE_ALPHA, TAIL_MOMENT_ALPHA = 0.05, 0.02, 0.002, 0.02
#: An excursion's level (where a re-baselining moves to) is the mean of its points weighted
#: towards the recent ones (the newest weighs at least this much), so a noise point that
#: happened to open the run hardly moves it.
EXCURSION_ALPHA = 0.2
#: Smoothing of the drift channel of ``multiscale`` (span ~100 points).
DRIFT_ALPHA = 0.02
#: Registered names built from this class and their parameters (the registry and
#: ``batch.create_batch`` both read this).
VARIANTS: dict[str, dict[str, float]] = {"adaptive": {}, "multiscale": {"drift_alpha": DRIFT_ALPHA}}


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
    state_version: ClassVar[int] = 3  # 2: band record and excursion; 3: drift channel

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
        shift_after: int = 30,
        spike_len: int = 2,
        drift_alpha: float = 0.0,
        drift_floor: float = 1.0,
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
        self.spike_len = int(spike_len)
        self.drift_alpha = float(drift_alpha)
        self.drift_floor = float(drift_floor)
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.level = math.nan
        self.level_err = math.nan
        self.season_err = math.nan
        self.long_err = math.nan
        self.record = 0.0  # decaying maximum residual of every point (sets the score)
        self.band_record = 0.0  # the same, of normal points only (sets the band and the alarm)
        self.last_t = math.nan  # time of the last learned point (for the record's decay)
        # drift channel: EW mean of the clipped standardised residual (signed) and the decaying
        # record of its value in the watched direction (in mean absolute errors)
        self.drift = 0.0
        self.drift_record = 0.0
        # peaks-over-threshold model of the residual, for calibrated tail probabilities
        self.tail_u, self.tail_rate, self.tail_m1, self.tail_m2 = 2.0, TAIL_LEVEL, 1.0, 2.0
        # the current excursion: signed length (+ above the band, - below), largest residual
        # (series' units), mean of its values and of their offsets from the seasonal profile
        # (weighted towards its recent points), and how many points had a profile value
        self.exc = 0
        self.exc_max = 0.0
        self.exc_level = 0.0
        self.exc_offset = 0.0
        self.exc_season_n = 0
        self.profile = array("f", [math.nan]) * self.bins

    # -- helpers ---------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """Margin over the record above which a point breaks it / leaves the band (including feedback)."""
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

    def _directional(self, d: float) -> float:
        if self.direction is Direction.UP:
            return d
        if self.direction is Direction.DOWN:
            return -d
        return abs(d)

    def _drift_next(self, x: float, f: float, s: float) -> float:
        """The drift channel's mean after a point ``x`` with forecast ``f`` and scale ``s`` (signed)."""
        c = self.record_floor
        d = (x - f) / s
        if d > c:
            d = c
        elif d < -c:
            d = -c
        return self.drift + self.drift_alpha * (d - self.drift)

    # -- the estimator ---------------------------------------------------------------------
    def _score(self, t: float, x: float) -> Verdict:
        if not self.warm:
            return learning_verdict(self.n, self.min_history)
        f, s, name = self._forecast(self._slot(t))
        drift = self._drift_next(x, f, s) if self.drift_alpha > 0.0 else 0.0
        return self._verdict(x, f, s, name, self._deviation(x, f, s), drift)

    def _verdict(self, x: float, f: float, s: float, name: str, e: float, drift_next: float) -> Verdict:
        """The verdict on ``x`` (residual ``e``); ``drift_next`` is the drift channel's mean with ``x`` (signed)."""
        record = max(self.record / s, self.record_floor)  # the record in current error units
        band = max(self.band_record / s, self.record_floor)  # the normal record, <= record
        thr = self.threshold
        r = e / (record * thr)
        alarm = e > thr * band
        half = thr * band * s
        side = "upper" if x >= f else "lower"
        drift, drift_record, drift_r = 0.0, 0.0, 0.0
        if self.drift_alpha > 0.0:
            way = self.direction
            drift = drift_next if way is Direction.UP else (-drift_next if way is Direction.DOWN else abs(drift_next))
            drift_record = self.drift_record if self.drift_record > self.drift_floor else self.drift_floor
            drift_r = drift / (drift_record * thr)
        if drift_r > r:  # the drift is the stronger evidence; alone it lifts the score to 0.5 at most
            score = ratio_to_score(drift_r)
            if not alarm and score > 0.5:
                score = 0.5
        else:
            score = ratio_to_score(r)
        if r > 1.0:
            reason = f"{name} residual {e:.1f} MAE breaks record {record:.1f} x{thr:.2f} ({side})"
        elif drift_r > 1.0:
            reason = f"drift {drift:.2f} MAE breaks record {drift_record:.2f} x{thr:.2f} ({side})"
        elif alarm:
            run = abs(self.exc) + 1 if (self.exc > 0) == (x >= f) else 1
            reason = f"{name} residual {e:.1f} MAE beyond normal {band:.1f} x{thr:.2f}, point {run} ({side})"
        elif abs(x - f) > half:
            reason = f"{name} residual {e:.1f} MAE outside normal {band:.1f} x{thr:.2f}, unwatched side ({side})"
        else:
            reason = f"{name} residual {e:.1f} MAE within normal {band:.1f} x{thr:.2f} ({side})"
        return Verdict(
            score=score,
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
        drift = self._drift_next(x, f, s) if self.drift_alpha > 0.0 else 0.0
        verdict = self._verdict(x, f, s, name, e, drift)
        self._update(t, x, slot, f, e, s, drift)
        self._decay_feedback()
        return verdict

    def _learn(self, t: float, x: float) -> None:
        slot = self._slot(t)
        f, e, s, drift = math.nan, math.nan, math.nan, 0.0
        if self.warm:
            f, s, _ = self._forecast(slot)
            e = self._deviation(x, f, s)
            if self.drift_alpha > 0.0:
                drift = self._drift_next(x, f, s)
        self._update(t, x, slot, f, e, s, drift)

    def _record_decay(self, t: float) -> float:
        """Decay of the record since the last learned point: 0.5 ** (elapsed / half-life)."""
        dt = t - self.last_t
        return 0.5 ** (dt / self.record_half_life) if dt > 0.0 else 1.0

    def _update(self, t: float, x: float, slot: int, f: float, e: float, s: float, drift: float) -> None:
        """Learn ``x`` given its residual ``e`` (in units of ``s``) against the pre-update forecast ``f``.

        ``e`` is nan while learning. The records are kept in the series' own units (``e * s``),
        so a drifting error scale does not make old records look small or large. A point
        outside the band (``out``, either side) is part of an excursion and is not learned
        by the normal model: the band's record, the level and the profile stay put. ``drift``
        is the drift channel's new mean (signed; ignored while learning or when disabled).
        """
        p = self.profile[slot]
        out = 0
        rebaseline = math.nan
        if self.warm and not math.isnan(e):
            half = max(self.band_record / s, self.record_floor) * self.threshold
            dv = (x - f) / s
            out = 1 if dv > half else (-1 if dv < -half else 0)
            decay = self._record_decay(t)
            self.record = max(e * s, self.record * decay)
            if self.drift_alpha > 0.0:
                self.drift = drift
                way = self.direction
                watched = drift if way is Direction.UP else (-drift if way is Direction.DOWN else abs(drift))
                held = self.drift_record * decay
                self.drift_record = watched if watched > held else held
            self.band_record *= decay
            self.exc_max *= decay
            if out:
                rebaseline = self._excursion_point(out, x, e * s, p)
            else:
                self._end_excursion()
                self.band_record = max(self.band_record, e * s)
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
        # forecast errors (before the forecasters move), Huber-clipped: learned at every point
        if not math.isnan(self.level):
            a = abs(x - self.level)
            if math.isnan(self.level_err):
                self.level_err = a
            else:
                c = min(a, h * self.level_err) if clip else a
                self.level_err += self.error_alpha * (c - self.level_err)
            self.long_err = a if math.isnan(self.long_err) else self.long_err + 0.001 * (a - self.long_err)
        if not math.isnan(p):
            a = abs(x - p)
            if math.isnan(self.season_err):
                self.season_err = a
            else:
                c = min(a, h * self.season_err) if clip else a
                self.season_err += self.error_alpha * (c - self.season_err)
        # level: Huber-clipped exponential smoothing of normal points; re-baselined by an excursion
        if math.isnan(self.level):
            self.level = x
        elif not math.isnan(rebaseline):
            self.level = rebaseline
        elif not out:
            d = x - self.level
            bound = h * self.level_err
            if clip and bound > 0.0:
                d = max(-bound, min(bound, d))
            self.level += self.level_alpha * d
        # seasonal profile of normal points (float32: what is exported is exactly what is used)
        if not out:
            self.profile[slot] = x if math.isnan(p) else p + self.season_alpha * (x - p)
        self.n += 1
        self.last_t = t

    def _excursion_point(self, side: int, x: float, y: float, p: float) -> float:
        """Add an out-of-band point (``side`` +1/-1, residual ``y`` in units) to the excursion.

        Returns the new level when the excursion has lasted ``shift_after`` points (the
        profile is then moved by the run's mean offset from it), nan otherwise.
        """
        if self.exc != 0 and (self.exc > 0) != (side > 0):
            self._end_excursion()  # it crossed the band: the run on the other side is over
        self.exc += side
        self.exc_max = max(self.exc_max, y)
        self.exc_level += max(1.0 / abs(self.exc), EXCURSION_ALPHA) * (x - self.exc_level)
        if not math.isnan(p):
            self.exc_season_n += 1
            self.exc_offset += max(1.0 / self.exc_season_n, EXCURSION_ALPHA) * (x - p - self.exc_offset)
        if self.shift_after <= 0 or abs(self.exc) < self.shift_after:
            return math.nan
        level = self.exc_level
        if self.exc_season_n:
            offset = self.exc_offset
            for i, v in enumerate(self.profile):
                if not math.isnan(v):
                    self.profile[i] = v + offset
        self._reset_excursion()
        return level

    def _end_excursion(self) -> None:
        """The excursion is over: one of at most ``spike_len`` points was noise and goes on record."""
        if 0 < abs(self.exc) <= self.spike_len:
            self.band_record = max(self.band_record, self.exc_max)
        self._reset_excursion()

    def _reset_excursion(self) -> None:
        self.exc, self.exc_max, self.exc_level, self.exc_offset, self.exc_season_n = 0, 0.0, 0.0, 0.0, 0

    def mark_false_positive(self, t: float, x: float) -> None:
        """Feedback: put the point's residual on both records, so it and anything smaller stay quiet.

        The drift channel's mean goes on its own record too. Records decay like any other
        (half-life ``record_half_life`` seconds), so the detector becomes sensitive to that
        pattern again after a while.
        """
        if not math.isfinite(x) or not self.warm:
            return
        f, s, _ = self._forecast(self._slot(float(t)))
        e = self._deviation(float(x), f, s)
        if e > 0.0:
            self.record = max(self.record, e * s * 1.05 / self.threshold)
            self.band_record = max(self.band_record, e * s * 1.05 / self.threshold)
        if self.drift_alpha > 0.0:
            drift = self._directional(self._drift_next(float(x), f, s))
            self.drift_record = max(self.drift_record, drift * 1.05 / self.threshold)

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
                self.spike_len,
                self.drift_alpha,
                self.drift_floor,
            ],
            "n": self.n,
            "level": finite_or_none(self.level),
            "level_err": finite_or_none(self.level_err),
            "season_err": finite_or_none(self.season_err),
            "long_err": finite_or_none(self.long_err),
            "record": self.record,
            "band_record": self.band_record,
            "drift": [self.drift, self.drift_record],
            "last_t": finite_or_none(self.last_t),
            "tail": [self.tail_u, self.tail_rate, self.tail_m1, self.tail_m2],
            "excursion": [self.exc, self.exc_max, self.exc_level, self.exc_offset, self.exc_season_n],
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
            spike_len,
            self.drift_alpha,
            self.drift_floor,
        ) = model["params"]
        self.bins, self.min_history, self.shift_after = int(bins), int(min_history), int(shift_after)
        self.spike_len = int(spike_len)
        self.n = int(model["n"])
        self.level = none_or_float(model["level"])
        self.level_err = none_or_float(model["level_err"])
        self.season_err = none_or_float(model["season_err"])
        self.long_err = none_or_float(model["long_err"])
        self.record = float(model["record"])
        self.band_record = float(model["band_record"])
        self.drift, self.drift_record = (float(v) for v in model["drift"])
        self.last_t = none_or_float(model["last_t"])
        self.tail_u, self.tail_rate, self.tail_m1, self.tail_m2 = (float(v) for v in model["tail"])
        exc, exc_max, exc_level, exc_offset, exc_season_n = model["excursion"]
        self.exc, self.exc_max, self.exc_level = int(exc), float(exc_max), float(exc_level)
        self.exc_offset, self.exc_season_n = float(exc_offset), int(exc_season_n)
        self.profile = array("f", unpack_f32(model["profile"]))
