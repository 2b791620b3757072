"""NAB scoring on hand-computed cases.

One file of 100 points, one minute apart: probation is floor(0.15 * 100) = 15 points and
the single window spans rows 40..49 (w = 10). ``S(y) = 2 sigmoid(-5y) - 1 = tanh(-2.5 y)``,
so the numbers below can be checked on a calculator:

* S at the window start (y = -1): tanh(2.5) = 0.9866143 -> reward exactly A_TP = 1;
* S at the window end (y = -1/10): tanh(0.25) = 0.2449187 -> 0.2449187 / 0.9866143 = 0.2482415;
* S six rows after the end (y = 6 / (10 - 1)): tanh(-5/3) = -0.9311096 -> x 0.11 = -0.1024221;
* a detection before any window: S = -1 -> x 0.11 = -0.11.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from homeostat.detectors.evaluation.scorecard import DetectedSeries, score_detections
from homeostat.detectors.evaluation.scoring import (
    MAX_TP,
    PROFILES,
    Profile,
    ScorableSeries,
    normalised_score,
    prepare_series,
    score_at_threshold,
)

MINUTE_US = 60_000_000
N = 100
WINDOW = (40, 49)
STANDARD, LOW_FP, LOW_FN = PROFILES
LABELS = {"one.csv": [(WINDOW[0] * MINUTE_US, WINDOW[1] * MINUTE_US)]}


def one_file(*detections: int) -> ScorableSeries:
    times = np.arange(N, dtype=np.int64) * MINUTE_US
    scores = np.zeros(N)
    scores[list(detections)] = 1.0
    return prepare_series(
        path="one.csv", times_us=times, scores=scores, windows=LABELS["one.csv"], probation_fraction=0.15
    ).series


def raw(*detections: int, profile: Profile = STANDARD) -> float:
    return score_at_threshold(series=one_file(*detections), profile=profile, threshold=0.5).raw


def normalised(*detections: int, profile: Profile = STANDARD) -> float | None:
    """Through the whole pipeline: sweep, null baseline, perfect score."""
    times = np.arange(N, dtype=np.int64) * MINUTE_US
    scores = np.zeros(N)
    scores[list(detections)] = 1.0
    detected = [DetectedSeries(path="one.csv", times_us=times, scores=scores, alarms=np.zeros(N, dtype=bool))]
    return score_detections(detected=detected, labels=LABELS, profiles=[profile]).profiles[profile.name].score


def test_profiles_are_nabs_cost_matrices() -> None:
    assert [(p.name, p.tp, p.fp, p.fn) for p in PROFILES] == [
        ("standard", 1.0, 0.11, 1.0),
        ("reward_low_FP_rate", 1.0, 0.22, 1.0),
        ("reward_low_FN_rate", 1.0, 0.11, 2.0),
    ]
    assert pytest.approx(0.9866143, abs=1e-7) == MAX_TP


def test_no_detection_is_one_missed_window() -> None:
    assert raw() == -1.0
    assert raw(profile=LOW_FN) == -2.0


def test_detection_at_window_start_earns_a_full_true_positive() -> None:
    assert raw(40) == pytest.approx(1.0, abs=1e-12)
    assert normalised(40) == pytest.approx(100.0)


def test_detection_at_window_end_earns_little() -> None:
    assert raw(49) == pytest.approx(0.2482415, abs=1e-7)
    # (0.2482415 - (-1)) / (1 - (-1))
    assert normalised(49) == pytest.approx(62.41208, abs=1e-5)


def test_detection_after_window_is_a_softened_false_positive_and_the_window_is_missed() -> None:
    assert raw(55) == pytest.approx(-1.0 - 0.1024221, abs=1e-7)
    assert raw(55, profile=LOW_FP) == pytest.approx(-1.0 - 0.2048441, abs=1e-7)
    assert raw(55, profile=LOW_FN) == pytest.approx(-2.0 - 0.1024221, abs=1e-7)
    # At this threshold: 100 * (-1.1024221 + 1) / 2; the sweep prefers detecting nothing (0).
    assert normalised_score(raw=raw(55), null=-1.0, perfect=1.0) == pytest.approx(-5.121103, abs=1e-5)
    assert normalised(55) == 0.0


def test_false_positive_far_after_window_or_before_any_window_costs_the_full_weight() -> None:
    # Row 80: 31 rows after the end, y = 31/9 > 3, S = -1.
    assert raw(80) == pytest.approx(-1.11, abs=1e-12)
    assert raw(20) == pytest.approx(-1.11, abs=1e-12)


def test_detection_in_probation_is_ignored() -> None:
    assert raw(10) == -1.0
    assert raw(14, 40) == pytest.approx(1.0, abs=1e-12)
    assert normalised(10) == 0.0


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    # Row 42: y = -(49 - 42 + 1)/10 = -0.8, tanh(2) / tanh(2.5) = 0.9771068
    assert raw(42, 45, 49) == pytest.approx(0.9771068, abs=1e-7)
    assert raw(42) == raw(42, 45, 49)


def test_window_partly_in_probation_keeps_its_position_but_loses_probation_points() -> None:
    times = np.arange(N, dtype=np.int64) * MINUTE_US
    scores = np.zeros(N)
    scores[[10, 16]] = 1.0  # window rows 10..19; row 10 is in probation, row 16 is not
    prepared = prepare_series(
        path="x.csv", times_us=times, scores=scores, windows=[(10 * MINUTE_US, 19 * MINUTE_US)], probation_fraction=0.15
    )
    assert prepared.probation == 15 and prepared.series.windows == 1
    # Row 16: y = -(19 - 16 + 1)/10 = -0.4 -> tanh(1) / tanh(2.5)
    expected = math.tanh(1.0) / math.tanh(2.5)
    assert score_at_threshold(series=prepared.series, profile=STANDARD, threshold=0.5).raw == pytest.approx(expected)


def test_window_entirely_in_probation_is_not_scored() -> None:
    times = np.arange(N, dtype=np.int64) * MINUTE_US
    prepared = prepare_series(
        path="x.csv",
        times_us=times,
        scores=np.zeros(N),
        windows=[(2 * MINUTE_US, 8 * MINUTE_US)],
        probation_fraction=0.15,
    )
    assert prepared.series.windows == 0
    assert prepared.windows_in_probation == 1
    assert score_at_threshold(series=prepared.series, profile=STANDARD, threshold=0.5).raw == 0.0


def test_file_score_counts_detected_windows_and_false_positives() -> None:
    result = score_at_threshold(series=one_file(20, 42, 45, 55, 80), profile=STANDARD, threshold=0.5)
    assert (result.windows_detected, result.false_positives) == (1, 3)


def two_file_corpus(scores_for: dict[str, np.ndarray]) -> list[DetectedSeries]:
    times = np.arange(N, dtype=np.int64) * MINUTE_US
    return [
        DetectedSeries(path=path, times_us=times, scores=scores, alarms=np.zeros(N, dtype=bool))
        for path, scores in scores_for.items()
    ]


CORPUS_LABELS = {
    "a.csv": [(30 * MINUTE_US, 39 * MINUTE_US), (70 * MINUTE_US, 79 * MINUTE_US)],
    "b.csv": [],
}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_null_detector_scores_zero_and_perfect_detector_scores_hundred(profile: Profile) -> None:
    null = two_file_corpus({"a.csv": np.full(N, 0.5), "b.csv": np.full(N, 0.5)})
    perfect_a = np.zeros(N)
    perfect_a[[30, 70]] = 1.0
    perfect = two_file_corpus({"a.csv": perfect_a, "b.csv": np.zeros(N)})

    null_result = score_detections(detected=null, labels=CORPUS_LABELS, profiles=[profile]).profiles[profile.name]
    perfect_result = score_detections(detected=perfect, labels=CORPUS_LABELS, profiles=[profile]).profiles[profile.name]

    assert null_result.score == 0.0
    assert null_result.null_raw == -2 * profile.fn
    assert perfect_result.score == pytest.approx(100.0)
    assert perfect_result.perfect_raw == 2 * profile.tp
    assert (perfect_result.threshold, perfect_result.windows_detected, perfect_result.false_positives) == (1.0, 2, 0)


def test_normalisation_is_relative_to_null_and_perfect() -> None:
    assert normalised_score(raw=0.0, null=-4.0, perfect=4.0) == 50.0
    assert normalised_score(raw=-6.0, null=-4.0, perfect=4.0) == -25.0
    assert normalised_score(raw=-1.0, null=0.0, perfect=0.0) is None  # no window anywhere


def test_a_row_whose_time_went_back_into_a_closed_window_is_scored_after_it() -> None:
    """As NAB's sweeper does, rows count in file order: after row 49 closes the window, time
    going back 6 minutes makes rows 50..55 repeat minutes 44..49, inside the window by
    timestamp, but they come after it: a detection at row 55 (minute 49) is the same
    softened false positive as in the sorted file, and the window is missed."""
    times = np.arange(N, dtype=np.int64) * MINUTE_US
    times[50:] -= 6 * MINUTE_US
    scores = np.zeros(N)
    scores[55] = 1.0
    series = prepare_series(
        path="one.csv", times_us=times, scores=scores, windows=LABELS["one.csv"], probation_fraction=0.15
    ).series
    assert series.window.tolist() == one_file().window.tolist()  # rows 40..49, as if sorted
    result = score_at_threshold(series=series, profile=STANDARD, threshold=0.5)
    assert result.raw == pytest.approx(raw(55), abs=1e-12)
    assert (result.windows_detected, result.false_positives) == (0, 1)
