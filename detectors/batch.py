"""Many series at once: a vectorised `Adaptive` and a generic bank of per-series detectors.

Idea
----
The operator advances hundreds of thousands of series by one step per polling cycle; a
Python loop over per-series objects costs microseconds per series. `BatchAdaptive` holds
the state of ``N`` `Adaptive` detectors as numpy arrays and advances all of them with a
fixed number of vector operations per step, with exactly the arithmetic of the per-series
class (same float64 scalars, same float32 seasonal profile), so a series can move between
the two (``export_series`` / ``import_series`` speak `Adaptive`'s state format) and the
verdicts agree. `DetectorBank` gives the same ``update_many`` interface over any
registered detector by looping, and `create_batch` picks the vectorised class when there
is one. For back-fill of one series, `update_series` runs ``update_one`` over arrays.

Example
-------
>>> import numpy as np
>>> from homeostat.detectors.batch import create_batch
>>> bank = create_batch("adaptive", 3, direction="up")
>>> for i in range(400):
...     out = bank.update_many(300.0 * i, np.array([10.0, 20.0, 30.0]) + (i % 2))
>>> out = bank.update_many(120000.0, np.array([10.0, 90.0, np.nan]))
>>> out.alarm.tolist(), out.warm.tolist()
([False, True, False], [True, True, True])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ._codec import finite_or_none, none_or_float, pack_f32, unpack_f32
from .adaptive import (
    EXCURSION_ALPHA,
    TAIL_LEVEL,
    TAIL_MOMENT_ALPHA,
    TAIL_RATE_ALPHA,
    TAIL_STEP,
    THRESHOLDS,
    VARIANTS,
    Adaptive,
)
from .base import Detector, Direction, parse_direction, parse_sensitivity
from .registry import DEFAULT, create

__all__ = ["BatchAdaptive", "BatchVerdicts", "DetectorBank", "ManySeries", "create_batch", "update_series"]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class BatchVerdicts:
    """Column-wise verdicts of one step over ``N`` series (see `Verdict` for the meaning)."""

    score: F64
    expected: F64
    lower: F64
    upper: F64
    alarm: B
    warm: B
    pvalue: F64


class ManySeries(Protocol):
    """``N`` series advanced together."""

    size: int

    def update_many(self, t: float | F64, values: F64) -> BatchVerdicts:
        """Score every series at ``t`` then learn; non-finite values are skipped."""
        ...

    def export_series(self, i: int) -> dict[str, Any]:
        """State of series ``i`` in the per-series detector's format."""
        ...

    def import_series(self, i: int, state: dict[str, Any]) -> None:
        """Load series ``i`` from a per-series state."""
        ...


def _tail_pvalue(e: F64, u: F64, rate: F64, m1: F64, m2: F64) -> F64:
    """Vectorised `homeostat.detectors.adaptive.tail_pvalue` (same arithmetic)."""
    below = 1.0 - (1.0 - rate) * np.maximum(e, 0.0) / np.where(u > 0.0, u, 1.0)
    below = np.where(u > 0.0, below, 1.0)
    var = np.maximum(m2 - m1 * m1, 1e-12)
    ratio = m1 * m1 / var
    gamma = np.minimum(0.45, np.maximum(-0.5, 0.5 * (1.0 - ratio)))
    sigma = np.maximum(0.5 * m1 * (1.0 + ratio), 1e-12)
    y = e - u
    small = np.abs(gamma) < 1e-6
    g = np.where(small, 1.0, gamma)
    base = 1.0 + g * y / sigma
    power = rate * np.power(np.where(base > 0.0, base, 1.0), -1.0 / g)
    gpd = np.where(small, rate * np.exp(-y / sigma), np.where(base > 0.0, power, 0.0))
    return np.asarray(np.where(e > u, gpd, below), dtype=np.float64)


class BatchAdaptive:
    """``N`` `Adaptive` detectors as arrays (same parameters for all series)."""

    def __init__(
        self,
        size: int,
        direction: Direction | str = Direction.UP,
        sensitivity: str = "medium",
        **params: Any,
    ) -> None:
        proto = Adaptive(direction, sensitivity, **params)
        self.proto = proto
        self.size = int(size)
        self.direction = proto.direction
        self.sensitivity = proto.sensitivity
        n = self.size
        self.n = np.zeros(n, dtype=np.int64)
        self.level = np.full(n, np.nan)
        self.level_err = np.full(n, np.nan)
        self.season_err = np.full(n, np.nan)
        self.long_err = np.full(n, np.nan)
        self.record = np.zeros(n)
        self.band_record = np.zeros(n)
        self.drift = np.zeros(n)
        self.drift_record = np.zeros(n)
        self.last_t = np.full(n, np.nan)
        self.tail_u = np.full(n, 2.0)
        self.tail_rate = np.full(n, TAIL_LEVEL)
        self.tail_m1 = np.ones(n)
        self.tail_m2 = np.full(n, 2.0)
        self.exc = np.zeros(n, dtype=np.int64)
        self.exc_max = np.zeros(n)
        self.exc_level = np.zeros(n)
        self.exc_offset = np.zeros(n)
        self.exc_season_n = np.zeros(n, dtype=np.int64)
        self.fp_factor = np.ones(n)
        self.profile = np.full((n, proto.bins), np.nan, dtype=np.float32)
        self._rows = np.arange(n)

    def _slot(self, t: float | F64) -> npt.NDArray[np.int64] | int:
        p, b = self.proto.period, self.proto.bins
        if np.ndim(t) == 0:
            tf = float(t)
            return int((tf % p) / p * b) % b
        ta = np.asarray(t, dtype=np.float64)
        return np.asarray(((ta % p) / p * b).astype(np.int64) % b)

    def update_many(self, t: float | F64, values: F64) -> BatchVerdicts:
        """Score all series at time ``t`` (scalar or per-series array), then learn."""
        pr = self.proto
        x = np.asarray(values, dtype=np.float64)
        if x.shape != (self.size,):
            raise ValueError(f"expected {self.size} values, got shape {x.shape}")
        slot = self._slot(t)
        rows = self._rows
        p = self.profile[rows, slot].astype(np.float64)
        finite = np.isfinite(x)
        warm = self.n >= pr.min_history
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            use_season = ~np.isnan(p) & ~np.isnan(self.season_err) & ~(self.season_err >= self.level_err)
            f = np.where(use_season, p, self.level)
            s = np.where(use_season, self.season_err, self.level_err)
            floor = 1e-3 * np.abs(f) + 1e-9
            floor = np.where(np.isnan(self.long_err), floor, np.maximum(floor, 0.1 * self.long_err))
            s = np.maximum(s, floor)
            d = (x - f) / s
            e = self._directional(d)
            record = np.maximum(self.record / s, pr.record_floor)
            band = np.maximum(self.band_record / s, pr.record_floor)
            thr = THRESHOLDS[self.sensitivity] * self.fp_factor
            r = e / (record * thr)
            r2 = r * r
            score = np.where(r > 0.0, np.where(r > 1e150, 1.0, r2 / (1.0 + r2)), 0.0)
            judged = warm & finite & ~np.isnan(r)
            alarm = judged & (e > thr * band)
            drift = np.zeros(0)
            if pr.drift_alpha > 0.0:
                c = pr.record_floor
                drift = self.drift + pr.drift_alpha * (np.clip(d, -c, c) - self.drift)
                dr = self._directional(drift) / (np.maximum(self.drift_record, pr.drift_floor) * thr)
                dr2 = dr * dr
                drift_score = np.where(dr > 0.0, np.where(dr > 1e150, 1.0, dr2 / (1.0 + dr2)), 0.0)
                score = np.maximum(score, np.where(alarm, drift_score, np.minimum(drift_score, 0.5)))
            score = np.where(judged, score, 0.0)
            half = thr * band * s
            shown = warm & finite
            expected = np.where(shown, f, np.nan)
            lower = np.where(shown, f - half, np.nan)
            upper = np.where(shown, f + half, np.nan)
            pvalue = np.where(judged, _tail_pvalue(e, self.tail_u, self.tail_rate, self.tail_m1, self.tail_m2), np.nan)
            out = BatchVerdicts(score, expected, lower, upper, alarm, warm, pvalue)
            self._learn(t, x, finite, warm, slot, p, f, e, s, drift)
        return out

    def _directional(self, d: F64) -> F64:
        if self.direction is Direction.UP:
            return d
        if self.direction is Direction.DOWN:
            return -d
        return np.abs(d)

    def _record_decay(self, t: float | F64) -> F64:
        """Per-series ``0.5 ** (elapsed / half-life)``, computed with Python floats like `Adaptive`.

        Series advance together, so the elapsed times take one or a few distinct values:
        each distinct value is exponentiated once by Python (bit-identical to the per-series
        class), then broadcast.
        """
        hl = self.proto.record_half_life
        dt = np.asarray(t, dtype=np.float64) - self.last_t
        dt = np.where(np.isfinite(dt) & (dt > 0.0), dt, 0.0)
        if dt.size and np.all(dt == dt[0]):
            v = float(dt[0])
            return np.full(self.size, 0.5 ** (v / hl) if v > 0.0 else 1.0)
        values, inverse = np.unique(dt, return_inverse=True)
        table = np.asarray([0.5 ** (v / hl) if v > 0.0 else 1.0 for v in values.tolist()])
        return np.asarray(table[inverse], dtype=np.float64)

    def _learn(
        self,
        t: float | F64,
        x: F64,
        finite: B,
        warm: B,
        slot: npt.NDArray[np.int64] | int,
        p: F64,
        f: F64,
        e: F64,
        s: F64,
        drift: F64,
    ) -> None:
        pr = self.proto
        h = pr.huber
        upd = finite & warm & ~np.isnan(e)
        decay = self._record_decay(t)
        self.record = np.where(upd, np.maximum(e * s, self.record * decay), self.record)
        if pr.drift_alpha > 0.0:
            self.drift = np.where(upd, drift, self.drift)
            drift_record = np.maximum(self._directional(self.drift), self.drift_record * decay)
            self.drift_record = np.where(upd, drift_record, self.drift_record)
        # the band's record and the excursion (see Adaptive._update)
        thr = THRESHOLDS[self.sensitivity] * self.fp_factor
        half = np.maximum(self.band_record / s, pr.record_floor) * thr
        dv = (x - f) / s
        side = np.where(upd, np.where(dv > half, 1, np.where(dv < -half, -1, 0)), 0)
        out = side != 0
        self.band_record = np.where(upd, self.band_record * decay, self.band_record)
        self.exc_max = np.where(upd, self.exc_max * decay, self.exc_max)
        ending = (upd & ~out) | (out & (self.exc != 0) & ((self.exc > 0) != (side > 0)))
        run = np.abs(self.exc)
        fold = ending & (run > 0) & (run <= pr.spike_len)
        self.band_record = np.where(fold, np.maximum(self.band_record, self.exc_max), self.band_record)
        self._reset_excursion(ending)
        self.band_record = np.where(upd & ~out, np.maximum(self.band_record, e * s), self.band_record)
        self.exc = np.where(out, self.exc + side, self.exc)
        self.exc_max = np.where(out, np.maximum(self.exc_max, e * s), self.exc_max)
        w = np.maximum(1.0 / np.maximum(np.abs(self.exc), 1), EXCURSION_ALPHA)
        self.exc_level = np.where(out, self.exc_level + w * (x - self.exc_level), self.exc_level)
        seen = out & ~np.isnan(p)
        self.exc_season_n = self.exc_season_n + seen
        w = np.maximum(1.0 / np.maximum(self.exc_season_n, 1), EXCURSION_ALPHA)
        self.exc_offset = np.where(seen, self.exc_offset + w * (x - p - self.exc_offset), self.exc_offset)
        rebase = out & (np.abs(self.exc) >= pr.shift_after) & (pr.shift_after > 0)
        rebase_level = self.exc_level
        moved = np.flatnonzero(rebase & (self.exc_season_n > 0))
        if moved.size:
            offset = self.exc_offset[moved]
            self.profile[moved] = (self.profile[moved].astype(np.float64) + offset[:, None]).astype(np.float32)
        self._reset_excursion(rebase)
        u = self.tail_u
        exceed = e > u
        hit = np.where(exceed, 1.0, 0.0)
        self.tail_u = np.where(upd, u + TAIL_STEP * (hit - TAIL_LEVEL), u)
        self.tail_rate = np.where(upd, self.tail_rate + TAIL_RATE_ALPHA * (hit - self.tail_rate), self.tail_rate)
        y = e - u
        upd_tail = upd & exceed
        self.tail_m1 = np.where(upd_tail, self.tail_m1 + TAIL_MOMENT_ALPHA * (y - self.tail_m1), self.tail_m1)
        self.tail_m2 = np.where(upd_tail, self.tail_m2 + TAIL_MOMENT_ALPHA * (y * y - self.tail_m2), self.tail_m2)
        clip = self.n > pr.min_history
        # level forecaster error and long-run error
        has_level = finite & ~np.isnan(self.level)
        a = np.abs(x - self.level)
        c = np.where(clip, np.minimum(a, h * self.level_err), a)
        self.level_err = np.where(
            has_level,
            np.where(np.isnan(self.level_err), a, self.level_err + pr.error_alpha * (c - self.level_err)),
            self.level_err,
        )
        self.long_err = np.where(
            has_level, np.where(np.isnan(self.long_err), a, self.long_err + 0.001 * (a - self.long_err)), self.long_err
        )
        # seasonal forecaster error
        has_p = finite & ~np.isnan(p)
        a = np.abs(x - p)
        c = np.where(clip, np.minimum(a, h * self.season_err), a)
        self.season_err = np.where(
            has_p,
            np.where(np.isnan(self.season_err), a, self.season_err + pr.error_alpha * (c - self.season_err)),
            self.season_err,
        )
        # level: normal points only (Huber-clipped), or re-baselined by an excursion
        d = x - self.level
        bound = h * self.level_err
        d = np.where(clip & (bound > 0.0), np.clip(d, -bound, bound), d)
        moved_level = np.where(out, self.level, self.level + pr.level_alpha * d)
        level = np.where(np.isnan(self.level), x, np.where(rebase, rebase_level, moved_level))
        self.level = np.where(finite, level, self.level)
        # seasonal profile of normal points (float32)
        new_p = np.where(np.isnan(p), x, p + pr.season_alpha * (x - p)).astype(np.float32)
        rows = self._rows
        self.profile[rows, slot] = np.where(finite & ~out, new_p, self.profile[rows, slot])
        # feedback factor decays like BaseDetector.learn_one
        fp = self.fp_factor
        if np.any(fp != 1.0):
            dec = 1.0 + (fp - 1.0) * 0.5 ** (1.0 / Adaptive.fp_half_life)
            dec = np.where(dec < 1.0 + 1e-6, 1.0, dec)
            self.fp_factor = np.where(finite & (fp != 1.0), dec, fp)
        self.n = self.n + finite
        self.last_t = np.where(finite, np.asarray(t, dtype=np.float64), self.last_t)

    def _reset_excursion(self, where: B) -> None:
        """Forget the current excursion of the series selected by ``where``."""
        self.exc = np.where(where, 0, self.exc)
        self.exc_max = np.where(where, 0.0, self.exc_max)
        self.exc_level = np.where(where, 0.0, self.exc_level)
        self.exc_offset = np.where(where, 0.0, self.exc_offset)
        self.exc_season_n = np.where(where, 0, self.exc_season_n)

    def export_series(self, i: int) -> dict[str, Any]:
        """Series ``i`` as an `Adaptive` state (``Adaptive().restore_state`` accepts it)."""
        pr = self.proto
        return {
            "kind": Adaptive.kind,
            "version": Adaptive.state_version,
            "direction": self.direction.value,
            "sensitivity": self.sensitivity,
            "fp_factor": float(self.fp_factor[i]),
            "model": {
                "params": [
                    pr.bins,
                    pr.period,
                    pr.level_alpha,
                    pr.error_alpha,
                    pr.season_alpha,
                    pr.huber,
                    pr.record_half_life,
                    pr.record_floor,
                    pr.min_history,
                    pr.shift_after,
                    pr.spike_len,
                    pr.drift_alpha,
                    pr.drift_floor,
                ],
                "n": int(self.n[i]),
                "level": finite_or_none(float(self.level[i])),
                "level_err": finite_or_none(float(self.level_err[i])),
                "season_err": finite_or_none(float(self.season_err[i])),
                "long_err": finite_or_none(float(self.long_err[i])),
                "record": float(self.record[i]),
                "band_record": float(self.band_record[i]),
                "drift": [float(self.drift[i]), float(self.drift_record[i])],
                "last_t": finite_or_none(float(self.last_t[i])),
                "tail": [
                    float(self.tail_u[i]),
                    float(self.tail_rate[i]),
                    float(self.tail_m1[i]),
                    float(self.tail_m2[i]),
                ],
                "excursion": [
                    int(self.exc[i]),
                    float(self.exc_max[i]),
                    float(self.exc_level[i]),
                    float(self.exc_offset[i]),
                    int(self.exc_season_n[i]),
                ],
                "profile": pack_f32(self.profile[i]),
            },
        }

    def import_series(self, i: int, state: dict[str, Any]) -> None:
        """Load series ``i`` from an `Adaptive` state with this batch's parameters."""
        probe = Adaptive(self.direction, self.sensitivity)
        probe.restore_state(state)  # validates kind and version
        m = state["model"]
        self.fp_factor[i] = float(state["fp_factor"])
        self.n[i] = int(m["n"])
        self.level[i] = none_or_float(m["level"])
        self.level_err[i] = none_or_float(m["level_err"])
        self.season_err[i] = none_or_float(m["season_err"])
        self.long_err[i] = none_or_float(m["long_err"])
        self.record[i] = float(m["record"])
        self.band_record[i] = float(m["band_record"])
        self.drift[i], self.drift_record[i] = (float(v) for v in m["drift"])
        self.last_t[i] = none_or_float(m["last_t"])
        self.tail_u[i], self.tail_rate[i], self.tail_m1[i], self.tail_m2[i] = (float(v) for v in m["tail"])
        exc, exc_max, exc_level, exc_offset, exc_season_n = m["excursion"]
        self.exc[i], self.exc_max[i], self.exc_level[i] = int(exc), float(exc_max), float(exc_level)
        self.exc_offset[i], self.exc_season_n[i] = float(exc_offset), int(exc_season_n)
        self.profile[i] = np.asarray(unpack_f32(m["profile"]), dtype=np.float32)

    def mark_false_positive(self, i: int, t: float, x: float) -> None:
        """User feedback for series ``i``: exactly `Adaptive.mark_false_positive` (rare, not vectorised)."""
        det = Adaptive(self.direction, self.sensitivity)
        det.restore_state(self.export_series(i))
        det.mark_false_positive(t, x)
        self.import_series(i, det.export_state())

    def memory_bytes(self) -> int:
        """Bytes of numpy state held for all series."""
        arrays = [
            self.last_t,
            self.tail_u,
            self.tail_rate,
            self.tail_m1,
            self.tail_m2,
            self.n,
            self.level,
            self.level_err,
            self.season_err,
            self.long_err,
            self.record,
            self.band_record,
            self.drift,
            self.drift_record,
            self.exc,
            self.exc_max,
            self.exc_level,
            self.exc_offset,
            self.exc_season_n,
            self.fp_factor,
            self.profile,
        ]
        return int(sum(a.nbytes for a in arrays))


class DetectorBank:
    """``N`` independent per-series detectors behind the ``update_many`` interface (a loop)."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = list(detectors)
        self.size = len(self.detectors)

    def update_many(self, t: float | F64, values: F64) -> BatchVerdicts:
        """Advance every detector by one point."""
        x = np.asarray(values, dtype=np.float64)
        ts = np.broadcast_to(np.asarray(t, dtype=np.float64), x.shape)
        cols: list[list[float]] = [[], [], [], [], []]
        alarm: list[bool] = []
        warm: list[bool] = []
        for det, ti, xi in zip(self.detectors, ts.tolist(), x.tolist(), strict=True):
            v = det.update_one(ti, xi)
            for col, val in zip(cols, (v.score, v.expected, v.lower, v.upper, v.pvalue), strict=True):
                col.append(val)
            alarm.append(v.alarm)
            warm.append(v.warm)
        score, expected, lower, upper, pvalue = (np.asarray(c, dtype=np.float64) for c in cols)
        return BatchVerdicts(score, expected, lower, upper, np.asarray(alarm), np.asarray(warm), pvalue)

    def export_series(self, i: int) -> dict[str, Any]:
        """State of detector ``i``."""
        return self.detectors[i].export_state()

    def import_series(self, i: int, state: dict[str, Any]) -> None:
        """Restore detector ``i``."""
        self.detectors[i].restore_state(state)


def create_batch(
    name: str, size: int, *, direction: Direction | str = "up", sensitivity: str = "medium"
) -> BatchAdaptive | DetectorBank:
    """``size`` series of detector ``name``: vectorised when available, else a `DetectorBank`."""
    d, s = parse_direction(direction), parse_sensitivity(sensitivity)
    key = DEFAULT if name == "default" else name
    if key in VARIANTS:
        return BatchAdaptive(size, d, s, **VARIANTS[key])
    return DetectorBank([create(name, direction=d, sensitivity=s) for _ in range(size)])


def update_series(det: Detector, t: Sequence[float] | F64, x: Sequence[float] | F64) -> BatchVerdicts:
    """Back-fill: run ``det.update_one`` over a whole series, returning column arrays."""
    ta, xa = np.asarray(t, dtype=np.float64), np.asarray(x, dtype=np.float64)
    n = xa.size
    score, expected, lower, upper, pvalue = (np.empty(n) for _ in range(5))
    alarm, warm = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    for i, (ti, xi) in enumerate(zip(ta.tolist(), xa.tolist(), strict=True)):
        v = det.update_one(ti, xi)
        score[i], expected[i], lower[i], upper[i], pvalue[i] = v.score, v.expected, v.lower, v.upper, v.pvalue
        alarm[i], warm[i] = v.alarm, v.warm
    return BatchVerdicts(score, expected, lower, upper, alarm, warm, pvalue)
