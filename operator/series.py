"""Per-series state: one detector and one confirmation window for each labelled series.

A query such as `... by (pod)` yields one series per pod; each has its own detector, keyed
by its labels. Series that stop appearing are reported as stale, then forgotten after a TTL,
and a signal never tracks more than its limit, so memory stays bounded however the fleet
churns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from homeostat.detectors import Detector, Verdict
from homeostat.detectors.confirmation import record_point

SeriesKey = tuple[tuple[str, str], ...]


def series_key(labels: Mapping[str, str]) -> SeriesKey:
    """A stable, hashable key for a label set (`__name__` included when present)."""
    return tuple(sorted(labels.items()))


@dataclass
class SeriesState:
    """What we remember about one series between evaluations."""

    labels: dict[str, str]
    detector: Detector
    window: deque[bool]  # the last n points: anomalous (alarm, out of band on the watched side, guard breach)
    last_seen: float
    last_value: float | None = None
    last_verdict: Verdict | None = None
    learned_points: int = 0
    # The same n points: did the detector alarm (or a guard break)? A run of points just outside
    # the band is not enough to confirm: one of them must have been a real alarm.
    alarms: deque[bool] = field(default_factory=deque)
    # The same n evaluations' finite values, with the time each was evaluated (wall clock): what
    # verification compares with the band recorded on an Incident, point by point.
    recent: deque[tuple[float, float]] = field(default_factory=deque)

    def record(self, *, anomalous: bool, alarm: bool = False) -> None:
        """Push this cycle's point into the confirmation window (no data: both False)."""
        record_point(self.window, self.alarms, anomalous=anomalous, alarm=alarm)

    @property
    def anomalous_count(self) -> int:
        return sum(self.window)

    @property
    def alarmed(self) -> bool:
        """Did an alarm (not just an out-of-band point) happen within the window?"""
        return any(self.alarms)


@dataclass
class SeriesTable:
    """The series of one signal, created on first sight and dropped after `ttl` unseen."""

    make_detector: Callable[[], Detector]
    window_size: int
    ttl: float
    max_series: int
    states: dict[SeriesKey, SeriesState] = field(default_factory=dict)
    refused: int = 0  # series not tracked because of `max_series`, in the last cycle

    def get_or_create(self, labels: Mapping[str, str], *, now: float) -> SeriesState | None:
        """The state of a series, created if new; None when the table is full."""
        key = series_key(labels)
        state = self.states.get(key)
        if state is None:
            if len(self.states) >= self.max_series:
                self.refused += 1
                return None
            state = SeriesState(
                labels=dict(labels),
                detector=self.make_detector(),
                window=deque(maxlen=self.window_size),
                alarms=deque(maxlen=self.window_size),
                recent=deque(maxlen=self.window_size),
                last_seen=now,
            )
            self.states[key] = state
        return state

    def expire(self, *, now: float) -> list[SeriesKey]:
        """Forget series unseen for longer than the TTL; return their keys."""
        gone = [key for key, state in self.states.items() if now - state.last_seen > self.ttl]
        for key in gone:
            del self.states[key]
        return gone

    def __iter__(self) -> Iterator[SeriesState]:
        return iter(self.states.values())

    def __len__(self) -> int:
        return len(self.states)
