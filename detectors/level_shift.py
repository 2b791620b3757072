"""Level-shift re-baselining: a run of same-side outliers becomes the new normal.

Idea
----
A detector that Huber-clips its updates cannot follow a persistent level shift by itself:
every point after the shift is an outlier, is clipped, and alarms for ever (the stuck
filter of River issue #948). `SameSideRun` counts the consecutive outliers on one side of
the band and sums their values; when ``shift_after`` of them have come in a row, the shift
is taken as a new normal nobody remediated and the run's mean is returned as the level to
re-baseline on. An outlier on the other side starts a new run, and a point inside the band
(``reset``) ends it.

It holds two numbers (the signed length and the sum of the run), exported by the detector
that owns it. Used by `EWMA` and `HoltResidual`; `Adaptive` and `DSpot` re-baseline in
their own ways (a weighted excursion level, the drift window).

Parameters
----------
length
    Signed length of the current run: ``+k`` for ``k`` outliers above, ``-k`` below.
total
    Sum of the run's values.

Example
-------
>>> from homeostat.detectors.level_shift import SameSideRun
>>> run = SameSideRun()
>>> [run.outlier(+1.0, x, shift_after=3) for x in (20.0, 21.0)]
[nan, nan]
>>> run.length, run.total
(2, 41.0)
>>> run.outlier(+1.0, 22.0, shift_after=3)  # the third in a row: re-baseline on their mean
21.0
>>> run.length
0
>>> _ = run.outlier(+1.0, 20.0, shift_after=3); run.outlier(-1.0, 0.0, shift_after=3)  # the side changed
nan
>>> run.length, run.total
(-1, 0.0)
>>> run.outlier(-1.0, 0.0, shift_after=0)  # 0 disables re-baselining (and counts nothing)
nan
>>> run.reset(); run.length
0
"""

from __future__ import annotations

import math

__all__ = ["SameSideRun"]


class SameSideRun:
    """Consecutive same-side outliers and their sum (see the module docstring)."""

    __slots__ = ("length", "total")

    def __init__(self, length: int = 0, total: float = 0.0) -> None:
        self.length = int(length)
        self.total = float(total)

    def outlier(self, deviation: float, x: float, shift_after: int) -> float:
        """Count ``x``, an outlier on the side of the sign of ``deviation``.

        Returns the run's mean, and starts afresh, when the run reaches ``shift_after``
        points; nan otherwise (and always when ``shift_after <= 0``, which counts nothing).
        """
        if shift_after <= 0:
            return math.nan
        same = self.length == 0 or (deviation > 0) == (self.length > 0)
        sign = 1 if deviation > 0 else -1
        self.length = self.length + sign if same else sign
        self.total = self.total + x if same else x
        if abs(self.length) < shift_after:
            return math.nan
        level = self.total / abs(self.length)
        self.reset()
        return level

    def reset(self) -> None:
        """A point inside the band: the run is over."""
        self.length, self.total = 0, 0.0

    def __repr__(self) -> str:
        return f"SameSideRun(length={self.length}, total={self.total!r})"
