"""The `Incident` custom resource: the record of one confirmed anomaly and what was done.

The incident is the operator's memory: every transition and the intent of every action is
written here before the action runs, so an operator restarted at any point can resume without
repeating or forgetting an action.
"""

from __future__ import annotations

import enum

from pydantic import Field

from homeostat.api.base import WireModel
from homeostat.api.policy import Action, TargetRef


class IncidentPhase(enum.StrEnum):
    DETECTED = "Detected"
    REMEDIATING = "Remediating"
    VERIFYING = "Verifying"
    RESOLVED = "Resolved"
    ESCALATED = "Escalated"
    FAILED = "Failed"


class ActionState(enum.StrEnum):
    INTENDED = "Intended"  # written before the API call; found on restart means "check, then finish"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"  # a guardrail said no (reason in the message)
    DRY_RUN = "DryRun"  # would have been done


class InvolvedSeries(WireModel):
    """A series that was anomalous when the incident was opened."""

    signal: str
    labels: dict[str, str] = Field(default_factory=dict)
    observed: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float | None = None


class IncidentSpec(WireModel):
    policy: str
    target: TargetRef
    detected_at: str
    signal: str = Field(description="The first signal confirmed anomalous.")
    involved: list[InvolvedSeries] = Field(default_factory=list)


class ActionRecord(WireModel):
    key: str = Field(description="Idempotency key: incident, step and attempt.")
    step: int
    action: Action
    state: ActionState
    started_at: str
    finished_at: str | None = None
    message: str = ""
    dry_run: bool = False


class TimelineEntry(WireModel):
    time: str
    event: str = Field(description="What happened, e.g. Detected, ActionIntended, Verified, Escalated.")
    phase: IncidentPhase | None = None
    message: str = ""


class IncidentStatus(WireModel):
    phase: IncidentPhase = IncidentPhase.DETECTED
    current_step: int = 0
    last_action: str | None = None
    actions: list[ActionRecord] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    resolved_at: str | None = None
    message: str = ""
