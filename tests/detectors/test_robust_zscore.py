"""Robust median/MAD z-score: hand-computed cases and the O(log n) MAD."""

from __future__ import annotations

import bisect
import math
import random

import numpy as np
import pytest

from homeostat.detectors.robust_zscore import MAD_TO_SIGMA, RobustZScore, _mad_sorted, _median_sorted


def test_hand_computed_z():
    det = RobustZScore(direction="both", window=5, min_history=5)
    for i, x in enumerate([1.0, 2.0, 3.0, 4.0, 100.0]):
        det.update_one(float(i), x)
    # median 3, |x - 3| = 2, 1, 0, 1, 97 -> MAD 1 -> scale 1.4826
    v = det.score_one(5.0, 3.0 + 1.4826 * 5.0)
    assert v.expected == 3.0
    assert v.reason.startswith("robust z=5.0")
    assert v.alarm  # 5.0 > 4.5 (medium)
    assert v.lower == pytest.approx(3.0 - 4.5 * MAD_TO_SIGMA)
    assert v.upper == pytest.approx(3.0 + 4.5 * MAD_TO_SIGMA)
    assert not det.score_one(5.0, 3.0 + 1.4826 * 4.0).alarm
    # score is 0.5 exactly at the threshold
    assert det.score_one(5.0, 3.0 + 1.4826 * 4.5).score == pytest.approx(0.5)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 33, 128])
def test_mad_matches_numpy(n):
    rng = random.Random(n)
    for _ in range(50):
        xs = sorted(round(rng.gauss(0, 3), 1) for _ in range(n))
        m = _median_sorted(xs)
        assert m == pytest.approx(float(np.median(xs)))
        assert _mad_sorted(xs, m) == pytest.approx(float(np.median(np.abs(np.asarray(xs) - m))))


def test_flat_series_falls_back_to_a_floor():
    det = RobustZScore(direction="up", min_history=10)
    for i in range(50):
        det.update_one(float(i), 45.0)
    assert not det.score_one(50.0, 45.0).alarm
    assert det.score_one(50.0, 46.0).alarm  # a change of a flat line is news
    assert math.isfinite(det.score_one(50.0, 46.0).upper)


def test_level_shift_rebaselines_within_half_a_window():
    rng = random.Random(0)
    det = RobustZScore(direction="up", window=64, min_history=30)
    for i in range(200):
        det.update_one(float(i), rng.gauss(10.0, 1.0))
    alarms = [det.update_one(float(200 + i), rng.gauss(30.0, 1.0)).alarm for i in range(100)]
    assert alarms[0]
    assert not any(alarms[64 // 2 + 1 :])


def test_sorted_window_stays_consistent():
    det = RobustZScore(window=16)
    rng = random.Random(5)
    for i in range(200):
        det.learn_one(float(i), rng.choice([1.0, 2.0, 2.0, 3.0, rng.random()]))
        assert det._sorted == sorted(det._buf)
        assert bisect.bisect_left(det._sorted, det._median) <= len(det._sorted)
