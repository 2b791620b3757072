"""Incident-level precision, recall and detection delay of the operator's confirmation rule.

``homeostat eval --confirm K/N`` streams every file through the detector as the operator
would and applies the operator's rule (`homeostat.detectors.confirmation`) at each point.
What the operator would act on is then counted, after the probationary period:

* an **incident** is a maximal run of confirmed points, two confirmations fewer than ``n``
  points apart belonging to the same incident (their k-of-n windows overlap);
* an incident is **true** when its span (first to last confirmed point) overlaps a labelled
  window; **precision** = true incidents / incidents;
* **recall** = windows overlapped by at least one incident / windows (reaching past probation);
* **delay** of a found window, in points: the first point of its earliest overlapping
  incident minus the window's first point (0 when the incident was already open then). NAB
  windows are centred on the anomaly, so this counts from before the onset;
* ``window_points_median``: the windows' median length, to read the delays against;
* **false incidents per 1,000 points** = (incidents - true incidents) per 1,000 scored points.

Counts are summed over files before dividing; a ratio with an empty denominator is None.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["IncidentCounts", "count_incidents", "incident_spans"]


@dataclass(frozen=True, slots=True)
class IncidentCounts:
    """Counts behind the incident metrics; add them up over files before dividing."""

    incidents: int = 0
    true_incidents: int = 0
    windows: int = 0
    windows_found: int = 0
    points: int = 0
    delays: tuple[int, ...] = ()  # one per found window, in points
    window_points: tuple[int, ...] = ()  # one per window (after probation): to read the delays against

    def __add__(self, other: IncidentCounts) -> IncidentCounts:
        return IncidentCounts(
            incidents=self.incidents + other.incidents,
            true_incidents=self.true_incidents + other.true_incidents,
            windows=self.windows + other.windows,
            windows_found=self.windows_found + other.windows_found,
            points=self.points + other.points,
            delays=self.delays + other.delays,
            window_points=self.window_points + other.window_points,
        )

    @property
    def precision(self) -> float | None:
        """Share of incidents that overlap a window; None without any incident."""
        return self.true_incidents / self.incidents if self.incidents else None

    @property
    def recall(self) -> float | None:
        """Share of windows overlapped by an incident; None without any window."""
        return self.windows_found / self.windows if self.windows else None

    @property
    def false_per_1000(self) -> float | None:
        """False incidents per 1,000 scored points; None without any point."""
        return 1000.0 * (self.incidents - self.true_incidents) / self.points if self.points else None

    def delay(self, percentile: float) -> float | None:
        """A percentile (linear interpolation) of the delays of found windows; None if none was found."""
        return float(np.percentile(np.array(self.delays, dtype=np.float64), percentile)) if self.delays else None

    def as_dict(self) -> dict[str, float | int | None]:
        """Counts and ratios, for JSON."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "delay_median": self.delay(50),
            "delay_p90": self.delay(90),
            "false_per_1000_points": self.false_per_1000,
            "window_points_median": float(np.median(self.window_points)) if self.window_points else None,
            "incidents": self.incidents,
            "true_incidents": self.true_incidents,
            "windows": self.windows,
            "windows_found": self.windows_found,
            "points": self.points,
        }


def incident_spans(confirmed: npt.NDArray[np.bool_], *, n: int) -> list[tuple[int, int]]:
    """``(first, last)`` confirmed point of each incident; confirmations < ``n`` apart are merged."""
    points = np.flatnonzero(confirmed)
    if not points.size:
        return []
    breaks = np.flatnonzero(np.diff(points) >= n)
    firsts = np.concatenate(([points[0]], points[breaks + 1]))
    lasts = np.concatenate((points[breaks], [points[-1]]))
    return [(int(a), int(b)) for a, b in zip(firsts, lasts, strict=True)]


def count_incidents(
    *, confirmed: npt.NDArray[np.bool_], window: npt.NDArray[np.intp], windows: int, n: int
) -> IncidentCounts:
    """Count one file; ``confirmed`` and ``window`` (window number per point, -1 outside) cover the
    points after probation, ``windows`` is the number of windows reaching past it."""
    spans = incident_spans(confirmed, n=n)
    index = np.arange(window.size)
    starts = [int(index[window == w][0]) for w in range(windows)]
    ends = [int(index[window == w][-1]) for w in range(windows)]
    true = 0
    first_hit: dict[int, int] = {}  # window -> first point of its earliest overlapping incident
    for first, last in spans:
        overlapped = [w for w in range(windows) if first <= ends[w] and last >= starts[w]]
        true += bool(overlapped)
        for w in overlapped:
            first_hit.setdefault(w, first)
    return IncidentCounts(
        incidents=len(spans),
        true_incidents=true,
        windows=windows,
        windows_found=len(first_hit),
        points=int(window.size),
        delays=tuple(max(first_hit[w] - starts[w], 0) for w in sorted(first_hit)),
        window_points=tuple(ends[w] - starts[w] + 1 for w in range(windows)),
    )
