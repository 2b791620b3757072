"""Robust baseline: rolling median / MAD z-score.

Idea
----
Keep the last ``window`` finite values. The expected value is their median ``m`` and the
scale is ``1.4826 * MAD`` (the median absolute deviation, scaled to equal the standard
deviation for Gaussian data). A point's robust z-score is ``(x - m) / scale``; the detector
alarms when the z-score in the watched direction exceeds the threshold of its sensitivity.
Median and MAD have a 50 % breakdown point: spikes barely move them, yet after a persistent
level shift the window fills with the new level and the baseline follows within
``window / 2 + 1`` points (the detector learns every point, flagged or not, so it cannot get
stuck the way filters that refuse to learn anomalies do: River issue #948).

When more than half the window is identical (MAD = 0, e.g. a flat line or a quantised
counter), the scale falls back to ``1.2533 * mean absolute deviation`` and then to a small
floor relative to the level, so a single change of a flat series is flagged but rounding
noise is not.

Parameters
----------
direction
    ``"up"``, ``"down"`` or ``"both"``.
sensitivity
    ``"low"`` (z > 6), ``"medium"`` (z > 4.5) or ``"high"`` (z > 3.5).
window
    Number of recent values kept (memory is ``window`` floats).
min_history
    Points learned before the detector judges anything.

References
----------
Iglewicz, B. and Hoaglin, D. (1993). How to Detect and Handle Outliers. ASQC.
Rousseeuw, P. and Croux, C. (1993). Alternatives to the median absolute deviation. JASA 88.

Example
-------
>>> from homeostat.detectors.robust_zscore import RobustZScore
>>> det = RobustZScore(direction="up", min_history=10)
>>> for i in range(30):
...     _ = det.update_one(60.0 * i, 100.0 + (i % 5))
>>> det.score_one(1800.0, 102.0).alarm
False
>>> v = det.score_one(1800.0, 150.0)
>>> v.alarm, v.expected
(True, 102.0)
>>> det.score_one(1800.0, 50.0).alarm  # direction "up": a drop is not an incident
False
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any, ClassVar

from .base import BaseDetector, Direction, Verdict, learning_verdict, zscore_verdict

__all__ = ["RobustZScore"]

MAD_TO_SIGMA = 1.4826
MEANAD_TO_SIGMA = 1.2533
THRESHOLDS: dict[str, float] = {"low": 6.0, "medium": 4.5, "high": 3.5}


def _median_sorted(s: list[float]) -> float:
    n = len(s)
    h = n // 2
    if n % 2:
        return s[h]
    return 0.5 * (s[h - 1] + s[h])


def _mad_sorted(s: list[float], m: float) -> float:
    """Median of ``|v - m|`` for sorted ``s`` in O(log n) (k-th smallest of two sorted runs)."""
    n = len(s)
    i = bisect.bisect_left(s, m)
    # run a: m - s[i-1], m - s[i-2], ... (ascending); run b: s[i] - m, s[i+1] - m, ... (ascending)
    na, nb = i, n - i

    def kth(k: int) -> float:  # k-th smallest (0-based) of the union of the two runs
        lo, hi = max(0, k - nb + 1), min(k + 1, na)
        # choose how many come from run a: c in [lo, hi]
        while lo < hi:
            c = (lo + hi) // 2  # take c from a, k + 1 - c from b
            # a[c] < b[k - c]  -> need more from a
            a_c = m - s[i - 1 - c]
            b_prev = s[i + k - c] - m if 0 <= k - c < nb else math.inf
            if a_c < b_prev:
                lo = c + 1
            else:
                hi = c
        c = lo
        best = -math.inf
        if c > 0:
            best = max(best, m - s[i - c])
        if k + 1 - c > 0:
            best = max(best, s[i + k - c] - m)
        return best

    h = n // 2
    if n % 2:
        return kth(h)
    return 0.5 * (kth(h - 1) + kth(h))


class RobustZScore(BaseDetector):
    """Rolling median/MAD z-score detector (see the module docstring)."""

    kind: ClassVar[str] = "robust_zscore"

    def __init__(
        self,
        direction: Direction | str = Direction.UP,
        sensitivity: str = "medium",
        *,
        window: int = 128,
        min_history: int = 30,
    ) -> None:
        super().__init__(direction, sensitivity)
        if window < 3:
            raise ValueError("window must be at least 3")
        self.window = int(window)
        self.min_history = int(min(min_history, window))
        self._buf: deque[float] = deque()
        self._sorted: list[float] = []
        self._median = math.nan
        self._scale = math.nan

    @property
    def threshold(self) -> float:
        """The z-score above which the detector alarms (including feedback)."""
        return THRESHOLDS[self.sensitivity] * self.fp_factor

    @property
    def warm(self) -> bool:
        return len(self._buf) >= self.min_history

    def _refresh(self) -> None:
        s = self._sorted
        if not s:
            self._median = self._scale = math.nan
            return
        m = _median_sorted(s)
        scale = MAD_TO_SIGMA * _mad_sorted(s, m)
        if not scale > 0.0:
            scale = MEANAD_TO_SIGMA * sum(abs(v - m) for v in s) / len(s)
        floor = 1e-3 * abs(m) + 1e-9
        self._median = m
        self._scale = max(scale, floor)

    def _score(self, t: float, x: float) -> Verdict:
        if not self.warm:
            return learning_verdict(len(self._buf), self.min_history)
        return zscore_verdict(self.direction, x, self._median, self._scale, self.threshold, label="robust")

    def _learn(self, t: float, x: float) -> None:
        self._buf.append(x)
        bisect.insort(self._sorted, x)
        if len(self._buf) > self.window:
            old = self._buf.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._refresh()

    def _export(self) -> dict[str, Any]:
        return {"window": self.window, "min_history": self.min_history, "buf": list(self._buf)}

    def _restore(self, model: dict[str, Any]) -> None:
        self.window = int(model["window"])
        self.min_history = int(model["min_history"])
        self._buf = deque(float(v) for v in model["buf"])
        self._sorted = sorted(self._buf)
        self._refresh()
