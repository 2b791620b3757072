"""From per-point scores and alarms to the corpus result: sweep, normalise, break down.

Kept apart from running detectors so that stored scores (a results folder, or scores
transformed during tuning) can be scored again without re-running anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .alarms import AlarmCounts, count_alarms
from .corpus import Backstep, Window
from .incidents import IncidentCounts, count_incidents
from .results import EvaluationResult, FileResult, ProfileResult
from .scoring import PROFILES, FileScore, PreparedFile, Profile, normalised_score, prepare_series, score_at_threshold
from .sweep import sweep_corpus
from .windows import PROBATION_FRACTION

if TYPE_CHECKING:
    from homeostat.detectors.confirmation import ConfirmRule

__all__ = ["NULL_SCORE", "DetectedSeries", "score_detections"]

#: NAB's null detector says 0.5 at every point; any constant gives the same baseline.
NULL_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class DetectedSeries:
    """What a detector said about one file, point by point, in file order."""

    path: str
    times_us: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]
    alarms: npt.NDArray[np.bool_]
    backstep: Backstep | None = None  # where the file's time first goes back, if it does
    confirmed: npt.NDArray[np.bool_] | None = None  # points the operator's rule confirms (eval --confirm)


def score_detections(
    *,
    detected: Sequence[DetectedSeries],
    labels: Mapping[str, Sequence[Window]],
    detector: str = "",
    direction: str = "",
    sensitivity: str = "",
    profiles: Sequence[Profile] = PROFILES,
    probation_fraction: float = PROBATION_FRACTION,
    confirm: ConfirmRule | None = None,
) -> EvaluationResult:
    """Score the labelled files of ``detected``; files without a labels entry are listed, not scored.

    With ``confirm`` (and ``confirmed`` points in every labelled file) the incidents the
    operator would open are counted too (``incidents``).

    For each profile the threshold is swept over the whole corpus and the best one is kept;
    the null baseline is the same sweep over a constant score, and the perfect score is
    ``A_TP`` per window that reaches past probation.
    """
    labelled = sorted((d for d in detected if d.path in labels), key=lambda d: d.path)
    prepared = [
        prepare_series(
            path=d.path,
            times_us=d.times_us,
            scores=d.scores,
            windows=labels[d.path],
            probation_fraction=probation_fraction,
        )
        for d in labelled
    ]
    series = [p.series for p in prepared]
    constant = [replace(s, scores=np.full(s.scores.size, NULL_SCORE)) for s in series]
    total_windows = sum(s.windows for s in series)

    profile_results: dict[str, ProfileResult] = {}
    per_file_nab: list[dict[str, FileScore]] = [{} for _ in series]
    for profile in profiles:
        threshold, raw = sweep_corpus(series=series, profile=profile).best()
        _, null_raw = sweep_corpus(series=constant, profile=profile).best()
        perfect_raw = profile.tp * total_windows
        file_scores = [score_at_threshold(series=s, profile=profile, threshold=threshold) for s in series]
        for i, file_score in enumerate(file_scores):
            per_file_nab[i][profile.name] = file_score
        profile_results[profile.name] = ProfileResult(
            profile=profile.name,
            score=normalised_score(raw=raw, null=null_raw, perfect=perfect_raw),
            threshold=threshold,
            raw=raw,
            null_raw=null_raw,
            perfect_raw=perfect_raw,
            windows_detected=sum(f.windows_detected for f in file_scores),
            false_positives=sum(f.false_positives for f in file_scores),
        )

    files = [
        _file_result(detected=d, prepared=p, nab=nab, confirm=confirm)
        for d, p, nab in zip(labelled, prepared, per_file_nab, strict=True)
    ]
    return EvaluationResult(
        detector=detector,
        direction=direction,
        sensitivity=sensitivity,
        profiles=profile_results,
        alarms=sum((f.alarms for f in files), AlarmCounts()),
        files=files,
        points=sum(f.points for f in files),
        unlabeled=sorted(d.path for d in detected if d.path not in labels),
        labels_without_file=sorted(set(labels) - {d.path for d in detected}),
        time_goes_back={d.path: d.backstep for d in sorted(detected, key=lambda d: d.path) if d.backstep},
        confirm=None if confirm is None else str(confirm),
        min_change=None if confirm is None else confirm.min_change,
        incidents=None if confirm is None else sum((f.incidents or IncidentCounts() for f in files), IncidentCounts()),
    )


def _file_result(
    *, detected: DetectedSeries, prepared: PreparedFile, nab: Mapping[str, FileScore], confirm: ConfirmRule | None
) -> FileResult:
    series = prepared.series
    incidents = None
    if confirm is not None:
        if detected.confirmed is None:
            raise ValueError(f"{detected.path}: no confirmed points; run the detector with the confirmation rule")
        incidents = count_incidents(
            confirmed=np.asarray(detected.confirmed[prepared.probation :], dtype=bool),
            window=series.window,
            windows=series.windows,
            n=confirm.n,
        )
    return FileResult(
        path=detected.path,
        points=int(detected.times_us.size),
        probation=prepared.probation,
        windows=series.windows,
        windows_in_probation=prepared.windows_in_probation,
        windows_without_points=prepared.windows_without_points,
        alarms=count_alarms(
            alarms=np.asarray(detected.alarms[prepared.probation :], dtype=bool),
            window=series.window,
            windows=series.windows,
        ),
        nab=dict(nab),
        incidents=incidents,
    )
