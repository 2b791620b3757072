"""What the incident state machine is told about the signals each cycle: observations. Pure data.

The operator's judge makes them with each cycle's verdicts (`operator/judge.py`, handed over by
`CycleResult.observations()` in `operator/monitor.py`); the state machine (`machine.py`) and
verification (`verification.py`) read them. Per signal: whether there is fresh
data at all, its verdict, its settling time, and each series with a fresh finite point: value,
band, confirmation, and its last n points with the time each was evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class SeriesNow:
    """One series with a fresh, finite point this cycle."""

    labels: Mapping[str, str]
    value: float
    anomalous: bool = False  # this point is anomalous
    confirmed: bool = False  # k of the last n points were
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float | None = None
    points: tuple[tuple[float, float], ...] = ()  # the last n finite points: (evaluated at, value), oldest first


@dataclass(frozen=True, kw_only=True)
class SignalNow:
    """One signal this cycle. `usable` is False when there is no fresh data to judge by."""

    name: str
    usable: bool
    verdict: str = "normal"  # the signal's overall verdict: normal | anomalous | learning | no-data
    reason: str = ""
    series: tuple[SeriesNow, ...] = ()
    context: bool = False  # role: context (a cause such as load): never opens or reopens an incident alone
    settling: float = 0.0  # seconds after an action before a point of this signal is all post-action data

    @property
    def confirmed(self) -> bool:
        return any(s.confirmed for s in self.series)

    @property
    def anomalous(self) -> bool:
        return self.verdict == "anomalous" or any(s.anomalous for s in self.series)

    def find(self, labels: Mapping[str, str]) -> SeriesNow | None:
        wanted = dict(labels)
        return next((s for s in self.series if dict(s.labels) == wanted), None)


@dataclass(frozen=True, kw_only=True)
class Observations:
    """This cycle's view of the policy's signals (from the monitor's `CycleResult`)."""

    at: float
    signals: Mapping[str, SignalNow] = field(default_factory=dict)
    anomaly_started_at: float | None = None  # first anomalous point among the confirmed series

    @property
    def confirmed(self) -> list[str]:
        return [name for name, signal in self.signals.items() if signal.usable and signal.confirmed]

    @property
    def symptoms(self) -> list[str]:
        """The confirmed signals that are symptoms: only these open or reopen an incident."""
        return [name for name in self.confirmed if not self.signals[name].context]
