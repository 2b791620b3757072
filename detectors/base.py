"""The detector contract: `Verdict`, `Direction`, the `Detector` protocol and a base class.

Every detector follows River's streaming convention, one series per instance:

* ``score_one(t, x)`` judges a point against what has been learned so far and never
  mutates the model;
* ``learn_one(t, x)`` folds the point into the model, always *after* it was scored;
* ``update_one(t, x)`` does both and returns the `Verdict`.

State is bounded (fixed memory per series) and travels as a JSON-serialisable dict
(``export_state`` / ``restore_state``). Non-finite values (NaN, +-Inf) are "no data":
they never alarm and are never learned.

This module imports nothing from the rest of Homeostat.
"""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = [
    "SENSITIVITIES",
    "BaseDetector",
    "Detector",
    "Direction",
    "Verdict",
    "directional_deviation",
    "gaussian_tail",
    "learning_verdict",
    "parse_direction",
    "parse_sensitivity",
    "ratio_to_score",
    "zscore_verdict",
]

SENSITIVITIES: tuple[str, ...] = ("low", "medium", "high")


class Direction(enum.StrEnum):
    """Which deviations count as anomalous."""

    UP = "up"  # only values above the band (latency, error rate)
    DOWN = "down"  # only values below the band (throughput, success rate)
    BOTH = "both"  # either side


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a detector says about one point.

    ``score`` is in [0, 1] (0 normal, 1 certainly anomalous, direction-aware) and is
    monotone in the detector's evidence, so it can be swept as a threshold. ``alarm`` is the
    detector's own decision at its sensitivity; it is never True while ``warm`` is False.
    ``pvalue`` (an addition to the original contract, defaulted) is the tail probability of
    the point under the detector's null model in the watched direction, or nan when the
    detector has no calibrated null model; it feeds Benjamini-Hochberg across many series.
    """

    score: float
    expected: float
    lower: float
    upper: float
    alarm: bool
    reason: str
    warm: bool
    pvalue: float = math.nan


@runtime_checkable
class Detector(Protocol):
    """A streaming detector for one series (River style)."""

    def score_one(self, t: float, x: float) -> Verdict:
        """Judge ``x`` observed at unix time ``t``; must not mutate the model."""
        ...

    def learn_one(self, t: float, x: float) -> None:
        """Fold ``x`` into the model (after it was scored)."""
        ...

    def update_one(self, t: float, x: float) -> Verdict:
        """``score_one`` then ``learn_one``."""
        ...

    def export_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of bounded size."""
        ...

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot taken by ``export_state`` of the same kind of detector."""
        ...

    def mark_false_positive(self, t: float, x: float) -> None:
        """User feedback: the point (t, x) was not an incident; become less sensitive to it."""
        ...


def parse_direction(direction: Direction | str) -> Direction:
    """Return ``direction`` as a `Direction`, with a clear error naming the valid choices."""
    try:
        return Direction(direction)
    except ValueError:
        valid = ", ".join(repr(d.value) for d in Direction)
        raise ValueError(f"unknown direction {direction!r}; valid directions: {valid}") from None


def parse_sensitivity(sensitivity: str) -> str:
    """Validate a sensitivity name (``low``, ``medium`` or ``high``)."""
    if sensitivity not in SENSITIVITIES:
        valid = ", ".join(repr(s) for s in SENSITIVITIES)
        raise ValueError(f"unknown sensitivity {sensitivity!r}; valid sensitivities: {valid}")
    return sensitivity


def directional_deviation(direction: Direction, x: float, expected: float, scale: float) -> tuple[float, str]:
    """Signed-by-direction standardised deviation ``(x - expected) / scale``.

    Returns ``(z, side)`` where ``z >= 0`` means "towards the watched side": for UP it is
    ``(x - e) / s``, for DOWN ``(e - x) / s`` and for BOTH ``|x - e| / s``; ``side`` is
    ``"upper"`` or ``"lower"`` (the side of the band the point lies on).
    """
    d = (x - expected) / scale
    side = "upper" if d >= 0 else "lower"
    if direction is Direction.UP:
        return d, side
    if direction is Direction.DOWN:
        return -d, side
    return abs(d), side


def ratio_to_score(r: float) -> float:
    """Map ``r = evidence / threshold >= 0`` to [0, 1) monotonically; ``r == 1`` gives 0.5.

    ``score = r^2 / (1 + r^2)``: at the alarm threshold the score is exactly 0.5, so a swept
    score threshold of 0.5 reproduces the detector's own alarm decision.
    """
    if not r > 0.0:  # also catches nan
        return 0.0
    if r > 1e150:  # also inf; r * r would overflow
        return 1.0
    r2 = r * r
    return r2 / (1.0 + r2)


def gaussian_tail(z: float, two_sided: bool = False) -> float:
    """Upper tail probability P(Z >= z) of a standard normal (or P(|Z| >= z) if two-sided)."""
    if math.isnan(z):
        return math.nan
    if two_sided:
        return math.erfc(abs(z) / math.sqrt(2.0))
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def zscore_verdict(
    direction: Direction,
    x: float,
    expected: float,
    scale: float,
    threshold: float,
    *,
    label: str,
    context: str = "",
) -> Verdict:
    """The verdict of a z-score detector that is warm: ``x`` against ``expected +- threshold * scale``.

    ``z`` is the standardised deviation in the watched direction (`directional_deviation`);
    the point alarms when ``z > threshold``, scores ``ratio_to_score(z / threshold)`` and gets
    a Gaussian tail p-value (two-sided for BOTH). The reason reads
    ``"<label> z=<z> >|<= <threshold><context> (<side>)"``.

    >>> from homeostat.detectors.base import Direction, zscore_verdict
    >>> v = zscore_verdict(Direction.UP, 16.0, 10.0, 1.5, 3.0, label="ewma")
    >>> v.alarm, v.score, v.lower, v.upper, v.reason
    (True, 0.64, 5.5, 14.5, 'ewma z=4.0 > 3.0 (upper)')
    >>> zscore_verdict(Direction.DOWN, 16.0, 10.0, 1.5, 3.0, label="seasonal", context=" vs same phase").reason
    'seasonal z=-4.0 <= 3.0 vs same phase (upper)'
    """
    z, side = directional_deviation(direction, x, expected, scale)
    alarm = z > threshold
    return Verdict(
        score=ratio_to_score(z / threshold),
        expected=expected,
        lower=expected - threshold * scale,
        upper=expected + threshold * scale,
        alarm=alarm,
        reason=f"{label} z={z:.1f} {'>' if alarm else '<='} {threshold:.1f}{context} ({side})",
        warm=True,
        pvalue=gaussian_tail(z, two_sided=direction is Direction.BOTH),
    )


def learning_verdict(seen: int, needed: int, expected: float = math.nan) -> Verdict:
    """The verdict of a detector that is still warming up."""
    return Verdict(
        score=0.0,
        expected=expected,
        lower=math.nan,
        upper=math.nan,
        alarm=False,
        reason=f"learning {seen}/{needed}",
        warm=False,
    )


NO_DATA_REASON = "no data (non-finite value)"


class BaseDetector(abc.ABC):
    """Shared plumbing: ``update_one``, no-data handling, state envelope and feedback.

    Subclasses implement ``_score`` / ``_learn`` for finite values and
    ``_export`` / ``_restore`` for their internals. ``mark_false_positive`` by default raises
    a multiplicative threshold factor (``self.fp_factor``) so that the reported point would
    have sat just inside the band; the factor decays back to 1 with a half-life of
    ``fp_half_life`` learned points, so one bad week does not blind a detector forever.
    """

    kind: ClassVar[str] = "base"
    state_version: ClassVar[int] = 1
    fp_half_life: ClassVar[float] = 2000.0
    fp_max_factor: ClassVar[float] = 4.0

    def __init__(self, direction: Direction | str = Direction.UP, sensitivity: str = "medium") -> None:
        self.direction = parse_direction(direction)
        self.sensitivity = parse_sensitivity(sensitivity)
        self.fp_factor = 1.0

    # -- the public protocol -------------------------------------------------------------
    def score_one(self, t: float, x: float) -> Verdict:
        """Judge ``x`` at time ``t`` without changing the model."""
        if not math.isfinite(x):
            v = self._score_nodata(t)
            return v
        return self._score(float(t), float(x))

    def learn_one(self, t: float, x: float) -> None:
        """Learn ``x`` (ignored when non-finite)."""
        if not math.isfinite(x):
            return
        self._learn(float(t), float(x))
        self._decay_feedback()

    def _decay_feedback(self) -> None:
        """Let the feedback factor relax towards 1 (called once per learned point)."""
        if self.fp_factor != 1.0:
            self.fp_factor = 1.0 + (self.fp_factor - 1.0) * 0.5 ** (1.0 / self.fp_half_life)
            if self.fp_factor < 1.0 + 1e-6:
                self.fp_factor = 1.0

    def update_one(self, t: float, x: float) -> Verdict:
        """Score then learn; returns the verdict given before learning."""
        verdict = self.score_one(t, x)
        self.learn_one(t, x)
        return verdict

    def export_state(self) -> dict[str, Any]:
        """JSON-serialisable snapshot (kind, version, configuration and internals)."""
        return {
            "kind": self.kind,
            "version": self.state_version,
            "direction": self.direction.value,
            "sensitivity": self.sensitivity,
            "fp_factor": self.fp_factor,
            "model": self._export(),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot from ``export_state`` of the same detector kind."""
        if state.get("kind") != self.kind:
            raise ValueError(f"state of kind {state.get('kind')!r} cannot restore a {self.kind!r} detector")
        if state.get("version") != self.state_version:
            raise ValueError(f"state version {state.get('version')!r} of {self.kind!r} is not {self.state_version}")
        self.direction = parse_direction(state["direction"])
        self.sensitivity = parse_sensitivity(state["sensitivity"])
        self.fp_factor = float(state["fp_factor"])
        self._restore(state["model"])

    def mark_false_positive(self, t: float, x: float) -> None:
        """Become less sensitive: raise the threshold so that ``x`` would not have alarmed."""
        if not math.isfinite(x):
            return
        needed = self._fp_needed_factor(float(t), float(x))
        if needed > self.fp_factor:
            self.fp_factor = min(self.fp_max_factor, needed * 1.05)

    # -- for subclasses ------------------------------------------------------------------
    def _score_nodata(self, t: float) -> Verdict:
        return Verdict(
            score=0.0,
            expected=math.nan,
            lower=math.nan,
            upper=math.nan,
            alarm=False,
            reason=NO_DATA_REASON,
            warm=self.warm,
        )

    @property
    @abc.abstractmethod
    def warm(self) -> bool:
        """True once the detector has enough history to judge."""

    @abc.abstractmethod
    def _score(self, t: float, x: float) -> Verdict: ...

    @abc.abstractmethod
    def _learn(self, t: float, x: float) -> None: ...

    @abc.abstractmethod
    def _export(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _restore(self, model: dict[str, Any]) -> None: ...

    def _fp_needed_factor(self, t: float, x: float) -> float:
        """Threshold factor under which ``x`` would score below the alarm level (>= 1 if it alarmed).

        The default derives it from the score: with ``score = r^2/(1+r^2)`` the ratio is
        ``r = sqrt(s / (1 - s))``, and the factor that brings it to 1 is ``r`` itself.
        """
        s = self.score_one(t, x).score
        if s <= 0.0:
            return 1.0
        if s >= 1.0:
            return self.fp_max_factor
        return self.fp_factor * math.sqrt(s / (1.0 - s))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(direction={self.direction.value!r}, sensitivity={self.sensitivity!r})"
