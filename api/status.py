"""What the operator reports on an AnomalyPolicy: `status`, kept current every interval.

Shaped for `kubectl get ap` and `kubectl describe ap`: a phase, standard conditions, and for
every signal the series it tracks with value, expected band, score and verdict.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field

from homeostat.api.base import WireModel


class PolicyPhase(enum.StrEnum):
    PENDING = "Pending"  # accepted, first evaluation not done yet
    LEARNING = "Learning"  # detectors warming up, no verdicts yet
    HEALTHY = "Healthy"  # every series judged normal
    ANOMALOUS = "Anomalous"  # an anomaly is confirmed on at least one signal
    NO_DATA = "NoData"  # no usable data for any signal (Prometheus down, empty, stale)
    INVALID = "Invalid"  # the spec cannot be acted upon; see the SpecValid condition


class SeriesVerdict(enum.StrEnum):
    NORMAL = "normal"
    ANOMALOUS = "anomalous"  # this point is anomalous (confirmation counts these)
    LEARNING = "learning"
    NO_DATA = "no-data"


class ConditionType(enum.StrEnum):
    READY = "Ready"
    SPEC_VALID = "SpecValid"
    PROMETHEUS_REACHABLE = "PrometheusReachable"
    TARGET_FOUND = "TargetFound"
    DATA_AVAILABLE = "DataAvailable"
    VERIFY_COVERS_SETTLING = "VerifyCoversSettling"


class Condition(WireModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class SeriesStatus(WireModel):
    """One series of a signal as last evaluated."""

    labels: dict[str, str] = Field(default_factory=dict)
    value: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float | None = None
    verdict: SeriesVerdict
    reason: str = ""
    anomalous_points: str = Field(default="", description="Anomalous points among the last n, as `k/n`.")


class SignalStatus(WireModel):
    name: str
    verdict: SeriesVerdict
    confirmed: bool = Field(default=False, description="k of the last n points anomalous on some series.")
    series_count: int = 0
    anomalous_series: int = 0
    series: list[SeriesStatus] = Field(
        default_factory=list, description="The most anomalous series first, at most 20."
    )
    message: str = ""
    settling_time: str | None = Field(
        default=None,
        description="How long after an action this signal's data can reflect it: the query's longest "
        "window (plus subquery ranges and offsets) + evaluationDelay + interval.",
    )
    settling_basis: str = Field(default="", description="What the settling time is made of.")


class PolicyStatus(WireModel):
    phase: PolicyPhase = PolicyPhase.PENDING
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    last_evaluation: str | None = None
    active_incident: str | None = None
    signals_summary: str | None = Field(default=None, description="e.g. `2/2 normal` or `1/2 anomalous`.")
    signals: list[SignalStatus] = Field(default_factory=list)
