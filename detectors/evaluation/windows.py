"""Where each point sits relative to the anomaly windows: NAB's per-point geometry.

NAB gives every point an unweighted score ``S`` that depends only on its position:

* inside a window of ``w`` points ending at index ``b``: the relative position is
  ``y = -(b - i + 1) / w`` (-1 at the window's first point, just below 0 at its last) and
  ``S = 2 * sigmoid(-5 y) - 1``: 0.98661 at the start, 0.2449 at the end of a 10-point window;
* after a window (ending at ``b``, of ``w`` points): ``y = (i - b) / (w - 1)`` and the same
  ``S``, which goes negative and reaches -1 (beyond ``y = 3``);
* before the first window: ``S = -1``.

Indices are rows in file order, which is also the order the detector saw them in; when a
file's time goes back, windows are still placed by walking the rows in that order, as NAB
does (`window_spans`).

A detection's reward is then this ``S`` weighted by the application profile
(`homeostat.detectors.evaluation.scoring`). Points in the probationary period keep their
geometry but are never scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .corpus import Window

__all__ = [
    "PROBATION_FRACTION",
    "probation_length",
    "scaled_sigmoid",
    "unweighted_scores",
    "window_spans",
]

#: Share of each file that is the detector's learning period (NAB: 15 %).
PROBATION_FRACTION = 0.15
#: NAB caps the probationary period at ``PROBATION_FRACTION * 5000`` points (750).
PROBATION_CAP_POINTS = 5000


def probation_length(*, points: int, fraction: float = PROBATION_FRACTION) -> int:
    """Number of leading points that are never scored: ``min(floor(f * n), f * 5000)``."""
    return math.ceil(min(math.floor(fraction * points), fraction * PROBATION_CAP_POINTS))


def scaled_sigmoid(position: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """NAB's ``2 * sigmoid(-5 y) - 1``, flattened to -1 beyond ``y = 3``."""
    with np.errstate(over="ignore"):
        value = 2.0 * (1.0 / (1.0 + np.exp(5.0 * position))) - 1.0
    return np.where(position > 3.0, -1.0, value)


def window_spans(
    *, times_us: npt.NDArray[np.int64], windows: Sequence[Window]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """First and last point index (inclusive) of every window that holds at least one point.

    Points are in file order, which need not be time order. NAB's scorer
    (``Sweeper.calcSweepScore``) walks the rows in file order and assigns them to windows
    by timestamp as it goes: a window opens at the first row whose timestamp is its start
    and closes at the first row after that whose timestamp is its end (``list.index``, so a
    repeated end timestamp ends it at its first occurrence); every row in between is in the
    window, whatever its timestamp. So when time goes back, a row whose timestamp falls
    inside a window but that comes after the window closed is *not* in it: it is scored as
    a point after the window (a softened false positive), as NAB scores it; and a row inside
    the span whose timestamp went back before the start is in it. Windows are taken in time
    order, each searched for after the previous one's end, as NAB pops them. (NAB measures
    a window's width from the first occurrence of each edge anywhere in the file; that is
    the row walked to unless an edge's timestamp also occurs earlier in the file, where
    NAB's width is wrong, even negative, and the rows walked to are used here.)

    With NAB's labels both edges are rows of the file. Edges that are not (NAB refuses
    them) snap inwards: the window opens at the first row whose timestamp is within it and
    closes at the row before the first later row past its end. For rows in time order this
    is the first point at or after the start and the last at or before the end. Windows
    that hold no point are dropped (the caller counts them).
    """
    starts: list[int] = []
    ends: list[int] = []
    size = times_us.size
    searched = 0  # rows before this belong to earlier windows or the gaps between them
    for start_us, end_us in sorted(windows):
        rest = times_us[searched:]
        hits = np.flatnonzero(rest == start_us)
        if not hits.size:
            hits = np.flatnonzero((rest >= start_us) & (rest <= end_us))
            if not hits.size:
                continue
        first = searched + int(hits[0])
        rest = times_us[first:]
        hits = np.flatnonzero(rest == end_us)
        if hits.size:
            last = first + int(hits[0])
        else:
            past = np.flatnonzero(rest > end_us)
            last = first + int(past[0]) - 1 if past.size else size - 1
        starts.append(first)
        ends.append(last)
        searched = last + 1
    return np.array(starts, dtype=np.intp), np.array(ends, dtype=np.intp)


def unweighted_scores(
    *, points: int, starts: npt.NDArray[np.intp], ends: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Per point: NAB's unweighted score ``S`` and the index of its window (-1 outside).

    ``starts``/``ends`` are sorted, disjoint, inclusive spans from `window_spans`. A window of
    a single point has no width to measure distance after it (NAB divides by zero there);
    here any point after it scores -1, as if far away.
    """
    index = np.arange(points, dtype=np.intp)
    score = np.full(points, -1.0)
    window = np.full(points, -1, dtype=np.intp)
    if starts.size == 0:
        return score, window
    width = (ends - starts + 1).astype(np.float64)
    # The last window starting at or before each point; the point is inside it or after it.
    candidate = np.searchsorted(starts, index, side="right") - 1
    safe = np.maximum(candidate, 0)
    inside = (candidate >= 0) & (index <= ends[safe])
    window[inside] = candidate[inside]
    k = candidate[inside]
    score[inside] = scaled_sigmoid(-(ends[k] - index[inside] + 1) / width[k])
    after = (candidate >= 0) & ~inside
    k = candidate[after]
    with np.errstate(divide="ignore"):
        distance = (index[after] - ends[k]) / (width[k] - 1.0)
    score[after] = scaled_sigmoid(distance)
    return score, window
