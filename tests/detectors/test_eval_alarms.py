"""Precision, recall and F1 of the detector's own alarms."""

from __future__ import annotations

import numpy as np
import pytest

from homeostat.detectors.evaluation.alarms import AlarmCounts, count_alarms


def test_counts_by_hand() -> None:
    # Three windows (0, 1, 2); alarms: two in window 0, none in 1, one in 2, three outside.
    window = np.array([-1, 0, 0, 0, -1, 1, 1, -1, 2, 2, -1, -1])
    alarms = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0], dtype=bool)
    counts = count_alarms(alarms=alarms, window=window, windows=3)
    assert counts == AlarmCounts(alarms=6, alarms_in_windows=3, windows=3, windows_alarmed=2)
    assert counts.precision == 0.5
    assert counts.recall == pytest.approx(2 / 3)
    assert counts.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_counts_add_up_over_files_before_dividing() -> None:
    total = AlarmCounts(alarms=1, alarms_in_windows=1, windows=1, windows_alarmed=1) + AlarmCounts(
        alarms=3, alarms_in_windows=0, windows=1, windows_alarmed=0
    )
    assert (total.precision, total.recall) == (0.25, 0.5)
    assert total.f1 == pytest.approx(1 / 3)


def test_undefined_ratios_are_none_not_zero() -> None:
    no_alarm = AlarmCounts(alarms=0, windows=2)
    assert (no_alarm.precision, no_alarm.recall, no_alarm.f1) == (None, 0.0, None)
    no_window = AlarmCounts(alarms=4)
    assert (no_window.precision, no_window.recall, no_window.f1) == (0.0, None, None)
    missed_all = AlarmCounts(alarms=4, windows=2)
    assert (missed_all.precision, missed_all.recall, missed_all.f1) == (0.0, 0.0, 0.0)
