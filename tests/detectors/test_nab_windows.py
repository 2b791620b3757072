"""Per-point NAB geometry: probation length, window spans, the scaled sigmoid."""

from __future__ import annotations

import numpy as np
import pytest

from homeostat.detectors.evaluation.windows import (
    probation_length,
    scaled_sigmoid,
    unweighted_scores,
    window_spans,
)


@pytest.mark.parametrize(
    ("points", "expected"),
    [(0, 0), (6, 0), (7, 1), (100, 15), (4032, 604), (5000, 750), (5001, 750), (15902, 750)],
)
def test_probation_is_15_percent_capped_at_750(points: int, expected: int) -> None:
    assert probation_length(points=points) == expected


def test_scaled_sigmoid_matches_nab_landmarks() -> None:
    values = scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 2.9, 3.0, 3.01, 100.0]))
    assert values[:5] == pytest.approx([0.98661430, 0.84828364, 0.0, -0.98661430, -0.99999899], abs=1e-8)
    assert values[5] == pytest.approx(-0.99999939, abs=1e-8)  # y = 3 is still on the curve
    assert list(values[6:]) == [-1.0, -1.0]  # beyond 3: flat -1


def test_window_spans_use_exact_edges_snap_inside_and_drop_empty_windows() -> None:
    times = np.array([0, 10, 20, 30, 40, 50, 60], dtype=np.int64)
    starts, ends = window_spans(times_us=times, windows=[(10, 30), (35, 55), (61, 90)])
    assert starts.tolist() == [1, 4]
    assert ends.tolist() == [3, 5]


def test_window_ending_on_a_repeated_timestamp_ends_at_its_first_occurrence() -> None:
    times = np.array([0, 10, 20, 20, 30], dtype=np.int64)
    starts, ends = window_spans(times_us=times, windows=[(10, 20)])
    assert (starts.tolist(), ends.tolist()) == ([1], [2])


def test_windows_follow_file_order_when_time_goes_back() -> None:
    """NAB's sweeper walks rows in file order: a window runs from the row of its start to the
    next row of its end, whatever the timestamps in between."""
    # Rows 0..5 are 0..50; time goes back to 20 at row 6 and runs on to 90.
    times = np.array([0, 10, 20, 30, 40, 50, 20, 30, 40, 50, 60, 70, 80, 90], dtype=np.int64)
    # [10, 30] closes at row 3; rows 6 and 7 (20, 30) are inside it by timestamp but come
    # after it closed, so they are points after the window, as in NAB.
    starts, ends = window_spans(times_us=times, windows=[(10, 30)])
    assert (starts.tolist(), ends.tolist()) == ([1], [3])
    # [40, 60] opens at the first 40 (row 4) and closes at 60 (row 10): rows 6..9, whose
    # timestamps went back before 40, are inside it.
    starts, ends = window_spans(times_us=times, windows=[(40, 60)])
    assert (starts.tolist(), ends.tolist()) == ([4], [10])
    # Several windows: each is searched for after the previous one's end.
    starts, ends = window_spans(times_us=times, windows=[(30, 40), (50, 70)])
    assert (starts.tolist(), ends.tolist()) == ([3, 5], [4, 11])


def test_inexact_edges_snap_inwards_in_file_order() -> None:
    times = np.array([0, 10, 20, 30, 40, 15, 25, 35, 45], dtype=np.int64)
    # Opens at the first row within [12, 33] (row 2: 20) and closes before the first later
    # row past 33 (row 4: 40).
    starts, ends = window_spans(times_us=times, windows=[(12, 33)])
    assert (starts.tolist(), ends.tolist()) == ([2], [3])
    # A window between the rows' times that no row falls in is dropped.
    starts, ends = window_spans(times_us=times, windows=[(46, 50)])
    assert starts.size == 0 and ends.size == 0


def test_unweighted_scores_by_hand() -> None:
    # 12 points, one window on rows 3..6 (w = 4). tanh(-2.5 y) is the scaled sigmoid.
    score, window = unweighted_scores(points=12, starts=np.array([3]), ends=np.array([6]))
    assert window.tolist() == [-1, -1, -1, 0, 0, 0, 0, -1, -1, -1, -1, -1]
    assert score[:3].tolist() == [-1.0, -1.0, -1.0]  # before any window
    assert score[3] == pytest.approx(0.98661430, abs=1e-8)  # y = -1
    assert score[6] == pytest.approx(0.55459972, abs=1e-8)  # y = -1/4: tanh(0.625)
    assert score[7] == pytest.approx(-0.68226179, abs=1e-8)  # y = 1/3: tanh(-5/6)
    assert score[11] == pytest.approx(-0.99951938, abs=1e-8)  # y = 5/3: tanh(-25/6), still on the curve
    assert list(np.diff(score[3:7]) < 0) == [True, True, True]  # earlier is better


def test_points_after_a_one_point_window_are_far_false_positives() -> None:
    score, window = unweighted_scores(points=5, starts=np.array([1]), ends=np.array([1]))
    assert window.tolist() == [-1, 0, -1, -1, -1]
    assert score[2:].tolist() == [-1.0, -1.0, -1.0]


def test_distance_is_measured_from_the_latest_window() -> None:
    score, window = unweighted_scores(points=20, starts=np.array([2, 10]), ends=np.array([4, 12]))
    assert window[10:13].tolist() == [1, 1, 1]
    # Row 8 is 4 rows after the first window (w = 3): y = 4 / 2 = 2 -> tanh(-5)
    assert score[8] == pytest.approx(-0.99990920, abs=1e-8)
    # Row 13 is 1 row after the second window: y = 1 / 2 -> tanh(-1.25)
    assert score[13] == pytest.approx(-0.84828364, abs=1e-8)
