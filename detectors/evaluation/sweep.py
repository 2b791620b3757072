"""The threshold sweep: the corpus score at every distinct threshold, in O(n log n).

As NAB's sweeper and optimizer do, all scorable points of the corpus are sorted by anomaly
score, highest first, and lowering the threshold past each distinct score turns one more
group of points into detections. The candidate thresholds are 1.1 (nothing detected) and
every distinct score; the best is the one with the highest corpus score, the highest
threshold winning a tie (NAB sorts the candidates stably by score).

A window's contribution is the reward of its earliest detection, and rewards inside a
window fall with time, so as the threshold drops a window gains only when a point earlier
than all its current detections turns on; an exact running minimum of point indices per
window gives that without floating-point tricks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .scoring import Profile, ScorableSeries

__all__ = ["NOTHING_DETECTED", "Sweep", "sweep_corpus"]

#: NAB's starting threshold, above any score in [0, 1]: no detection at all.
NOTHING_DETECTED = 1.1


@dataclass(frozen=True, slots=True)
class Sweep:
    """Corpus raw score per candidate threshold, thresholds in decreasing order."""

    thresholds: npt.NDArray[np.float64]
    raw: npt.NDArray[np.float64]

    def best(self) -> tuple[float, float]:
        """``(threshold, raw score)`` of the best candidate; ties go to the highest threshold."""
        i = int(np.argmax(self.raw))
        return float(self.thresholds[i]), float(self.raw[i])


def sweep_corpus(*, series: Sequence[ScorableSeries], profile: Profile) -> Sweep:
    """Raw NAB score of the whole corpus at every candidate threshold."""
    offsets = np.cumsum([0] + [s.windows for s in series])
    scores = np.concatenate([np.empty(0), *(s.scores for s in series)])
    weighted = np.concatenate([np.empty(0), *(s.weighted(profile=profile) for s in series)])
    window = np.concatenate(
        [
            np.empty(0, dtype=np.intp),
            *(np.where(s.window >= 0, s.window + offsets[i], -1) for i, s in enumerate(series)),
        ]
    )
    total_windows = int(offsets[-1])
    nothing = 0.0 - profile.fn * total_windows  # 0.0, not -0.0, for a corpus without windows
    if scores.size == 0:
        return Sweep(thresholds=np.array([NOTHING_DETECTED]), raw=np.array([float(nothing)]))

    order = np.argsort(-scores, kind="stable")  # rank -> point, highest score first
    delta = np.where(window[order] < 0, weighted[order], 0.0)

    # Window points, grouped by window in decreasing window order, by rank inside a group.
    # Point indices grow with the window number, so a running minimum over this sequence
    # restarts at every group: it is each window's earliest detection so far.
    ranks = np.flatnonzero(window[order] >= 0)
    if ranks.size:
        groups = window[order][ranks]
        by_group = np.lexsort((ranks, -groups))
        ranks, groups = ranks[by_group], groups[by_group]
        earliest = np.minimum.accumulate(order[ranks])
        reward = np.maximum(weighted[earliest], -profile.fn)
        previous = np.empty_like(reward)
        previous[0] = -profile.fn
        previous[1:] = reward[:-1]
        new_group = np.ones(ranks.size, dtype=bool)
        new_group[1:] = groups[1:] != groups[:-1]
        previous[new_group] = -profile.fn
        delta[ranks] = reward - previous

    sorted_scores = scores[order]
    last_of_group = np.ones(scores.size, dtype=bool)
    last_of_group[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    running = nothing + np.cumsum(delta)
    thresholds = np.concatenate(([NOTHING_DETECTED], sorted_scores[last_of_group]))
    raw = np.concatenate(([float(nothing)], running[last_of_group]))
    return Sweep(thresholds=thresholds, raw=raw)
