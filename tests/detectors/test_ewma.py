"""EWMA chart: hand-computed moments, Huber clipping and level-shift re-baselining."""

from __future__ import annotations

import math
import random

import pytest

from homeostat.detectors.ewma import EWMA


def test_warmup_uses_plain_moments():
    det = EWMA(direction="both", min_history=4)
    for i, x in enumerate([2.0, 4.0, 4.0, 6.0]):
        det.learn_one(float(i), x)
    assert det.mean == pytest.approx(4.0)
    assert det.var == pytest.approx(2.0)  # population variance of 2, 4, 4, 6


def test_hand_computed_update_after_warmup():
    det = EWMA(direction="both", alpha=0.5, beta=0.5, min_history=2, huber=100.0)
    det.learn_one(0.0, 0.0)
    det.learn_one(1.0, 2.0)  # mean 1, var 1
    det.learn_one(2.0, 3.0)  # d = 2 -> mean 2, var (1 - .5) * (1 + .5 * 4) = 1.5
    assert det.mean == pytest.approx(2.0)
    assert det.var == pytest.approx(1.5)
    v = det.score_one(3.0, 2.0 + 4.0 * math.sqrt(1.5) * 1.01)
    assert v.alarm
    assert v.expected == pytest.approx(2.0)


def test_spike_barely_moves_the_baseline():
    rng = random.Random(1)
    det = EWMA(direction="up")
    for i in range(300):
        det.update_one(float(i), rng.gauss(50.0, 2.0))
    before = det.mean
    det.update_one(300.0, 5000.0)
    assert abs(det.mean - before) < 3.0 * 2.0 * det.alpha * 1.5


def test_level_shift_rebaselines():
    rng = random.Random(2)
    det = EWMA(direction="up", shift_after=12)
    for i in range(300):
        det.update_one(float(i), rng.gauss(50.0, 2.0))
    alarms = [det.update_one(float(300 + i), rng.gauss(90.0, 2.0)).alarm for i in range(200)]
    assert alarms[0]
    assert not any(alarms[20:])
    assert det.mean == pytest.approx(90.0, abs=3.0)
