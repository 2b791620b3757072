"""Precision, recall and F1 of the detector's own alarms (its ``Verdict.alarm``, no sweep).

NAB sweeps a threshold over the scores, which measures ranking; an operator pages on the
alarm decision the detector makes at its configured sensitivity, so that decision is
measured too, with the same probationary period and windows:

* recall = windows (that reach past probation) with at least one alarm inside / those windows;
* precision = alarm points inside a window / all alarm points after probation.

Recall counts anomalies found; precision counts pages that were justified. An alarm that
keeps firing through a window counts once per point, so long alarms inside windows are
cheap and alarms outside windows are each a false page, as they would be in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["AlarmCounts", "count_alarms"]


@dataclass(frozen=True, slots=True)
class AlarmCounts:
    """Counts behind precision and recall; add them up over files before dividing."""

    alarms: int = 0
    alarms_in_windows: int = 0
    windows: int = 0
    windows_alarmed: int = 0

    def __add__(self, other: AlarmCounts) -> AlarmCounts:
        return AlarmCounts(
            alarms=self.alarms + other.alarms,
            alarms_in_windows=self.alarms_in_windows + other.alarms_in_windows,
            windows=self.windows + other.windows,
            windows_alarmed=self.windows_alarmed + other.windows_alarmed,
        )

    @property
    def precision(self) -> float | None:
        """Share of alarms that fell inside a window; None without any alarm."""
        return self.alarms_in_windows / self.alarms if self.alarms else None

    @property
    def recall(self) -> float | None:
        """Share of windows with an alarm; None without any window."""
        return self.windows_alarmed / self.windows if self.windows else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall; None when either is undefined."""
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        """Counts and ratios, for JSON."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "alarms": self.alarms,
            "alarms_in_windows": self.alarms_in_windows,
            "windows": self.windows,
            "windows_alarmed": self.windows_alarmed,
        }


def count_alarms(*, alarms: npt.NDArray[np.bool_], window: npt.NDArray[np.intp], windows: int) -> AlarmCounts:
    """Count one file's alarms; ``alarms`` and ``window`` cover the points after probation."""
    inside = alarms & (window >= 0)
    return AlarmCounts(
        alarms=int(alarms.sum()),
        alarms_in_windows=int(inside.sum()),
        windows=windows,
        windows_alarmed=int(np.unique(window[inside]).size),
    )
