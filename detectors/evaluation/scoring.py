"""NAB application profiles and the score of one file at one threshold.

A detection is a point whose anomaly score is ``>= threshold``, after the probationary
period. Each window contributes once: ``A_TP * S / S(-1)`` for its earliest detection (so a
detection at the window's first point earns exactly ``A_TP``), or ``-A_FN`` if it has none.
Every detection outside a window adds ``A_FP * S`` (``S`` <= 0: a penalty, smaller right
after a window). The raw file scores add up over the corpus and are normalised so that
the null detector scores 0 and a perfect one 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .corpus import Window
from .windows import probation_length, scaled_sigmoid, unweighted_scores, window_spans

__all__ = [
    "MAX_TP",
    "PROFILES",
    "FileScore",
    "PreparedFile",
    "Profile",
    "ScorableSeries",
    "normalised_score",
    "prepare_series",
    "score_at_threshold",
]

#: ``S`` at a window's first point; dividing by it makes an on-time detection worth ``A_TP``.
MAX_TP = float(scaled_sigmoid(np.array([-1.0]))[0])


@dataclass(frozen=True, slots=True)
class Profile:
    """An application profile: the magnitudes of NAB's cost matrix (``A_FP = -fp``, ``A_FN = -fn``)."""

    name: str
    tp: float
    fp: float
    fn: float
    tn: float = 1.0  # in NAB's profiles but unused by its scorer, as here


#: NAB's ``config/profiles.json``.
PROFILES: tuple[Profile, ...] = (
    Profile(name="standard", tp=1.0, fp=0.11, fn=1.0),
    Profile(name="reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile(name="reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


@dataclass(frozen=True, slots=True)
class ScorableSeries:
    """One file reduced to what scoring needs: its points after the probationary period.

    ``window`` numbers the windows that reach past probation ``0..windows-1`` (-1 outside);
    windows that end inside probation are dropped, as NAB's sweeper never sees them.
    """

    path: str
    scores: npt.NDArray[np.float64]
    unweighted: npt.NDArray[np.float64]
    window: npt.NDArray[np.intp]
    windows: int

    def weighted(self, *, profile: Profile) -> npt.NDArray[np.float64]:
        """Per point, what a detection there adds: ``S * A_TP / S(-1)`` in a window, ``S * fp`` outside."""
        inside = self.window >= 0
        return np.where(inside, self.unweighted * (profile.tp / MAX_TP), self.unweighted * profile.fp)


@dataclass(frozen=True, slots=True)
class PreparedFile:
    """A file ready for scoring, with the window bookkeeping reported to the user."""

    series: ScorableSeries
    probation: int  # leading points never scored
    windows_in_probation: int  # labelled windows that end before scoring starts
    windows_without_points: int  # labelled windows that hold no point of the file


def prepare_series(
    *,
    path: str,
    times_us: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    windows: Sequence[Window],
    probation_fraction: float,
) -> PreparedFile:
    """Locate the windows and cut the probationary period off one file."""
    starts, ends = window_spans(times_us=times_us, windows=windows)
    unweighted, window = unweighted_scores(points=times_us.size, starts=starts, ends=ends)
    probation = probation_length(points=times_us.size, fraction=probation_fraction)
    window = window[probation:]
    unweighted = unweighted[probation:]
    live = ends >= probation  # windows with at least one point after probation
    renumber = np.full(max(ends.size, 1), -1, dtype=np.intp)
    renumber[: ends.size][live] = np.arange(int(live.sum()), dtype=np.intp)
    window = np.where(window >= 0, renumber[np.maximum(window, 0)], -1)
    series = ScorableSeries(
        path=path,
        scores=np.asarray(scores[probation:], dtype=np.float64),
        unweighted=unweighted,
        window=window,
        windows=int(live.sum()),
    )
    return PreparedFile(
        series=series,
        probation=probation,
        windows_in_probation=int(ends.size - live.sum()),
        windows_without_points=len(windows) - int(starts.size),
    )


@dataclass(frozen=True, slots=True)
class FileScore:
    """A file's NAB result at one threshold."""

    raw: float
    windows_detected: int
    false_positives: int  # detections outside every window


def score_at_threshold(*, series: ScorableSeries, profile: Profile, threshold: float) -> FileScore:
    """Score one file directly (the sweep does all thresholds at once; this is the plain definition)."""
    detected = series.scores >= threshold
    weighted = series.weighted(profile=profile)
    best = np.full(series.windows, -np.inf)
    in_window = detected & (series.window >= 0)
    np.maximum.at(best, series.window[in_window], weighted[in_window])
    found = np.isfinite(best)
    window_part = float(np.sum(np.where(found, np.maximum(best, -profile.fn), -profile.fn)))
    outside = detected & (series.window < 0)
    return FileScore(
        raw=window_part + float(np.sum(weighted[outside])),
        windows_detected=int(found.sum()),
        false_positives=int(outside.sum()),
    )


def normalised_score(*, raw: float, null: float, perfect: float) -> float | None:
    """``100 * (raw - null) / (perfect - null)``; None when the corpus has no window to find."""
    if perfect == null:
        return None
    return 100.0 * (raw - null) / (perfect - null)
