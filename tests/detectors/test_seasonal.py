"""Seasonal baseline: same phase of previous days, per-phase warm-up."""

from __future__ import annotations

import math

import pytest

from homeostat.detectors.seasonal import SeasonalBaseline

DAY = 86400.0


def _profile(h: int) -> float:
    return 100.0 + 50.0 * math.sin(2 * math.pi * h / 24)


def test_not_warm_for_a_phase_seen_once():
    det = SeasonalBaseline(bins=24)
    for h in range(24):
        det.update_one(3600.0 * h, _profile(h))
    v = det.score_one(DAY + 3600.0, 1e6)
    assert not v.warm
    assert not v.alarm
    assert "learning 1/2" in v.reason


def test_hand_computed_slot():
    det = SeasonalBaseline(direction="both", bins=24, alpha=0.5)
    det.update_one(0.0, 10.0)
    det.update_one(DAY, 14.0)  # mean 10 + .5 * 4 = 12, mad = |14 - 10| = 4
    assert det.mean[0] == pytest.approx(12.0)
    assert det.mad[0] == pytest.approx(4.0)
    v = det.score_one(2 * DAY, 12.0)
    assert v.warm
    assert v.expected == pytest.approx(12.0)


def test_usual_peak_normal_unusual_peak_alarms():
    det = SeasonalBaseline(direction="up", bins=24)
    for day in range(5):
        for h in range(24):
            det.update_one(DAY * day + 3600.0 * h, _profile(h) + (day % 2))
    assert not det.score_one(5 * DAY + 6 * 3600.0, 151.0).alarm
    assert det.score_one(5 * DAY + 18 * 3600.0, 150.0).alarm
