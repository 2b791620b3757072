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
    UNKNOWN = "Unknown"  # a write's answer was lost and reading back could not tell: it may have been applied


class ActionPurpose(enum.StrEnum):
    STEP = "Step"  # a step of the playbook
    ESCALATION = "Escalation"  # the notification sent on escalation
    SCALE_BACK = "ScaleBack"  # undoing a step's scale-out once resolved and quiet


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
    detected_at: str = Field(description="When the anomaly was confirmed (RFC 3339, UTC).")
    anomaly_started_at: str | None = Field(
        default=None, description="When the first anomalous point of the confirmation window was seen."
    )
    signal: str = Field(description="The first signal confirmed anomalous.")
    involved: list[InvolvedSeries] = Field(
        default_factory=list,
        description="The series confirmed anomalous, with the band recorded at detection: verification "
        "compares later values with this band, not with the detectors' moving one.",
    )


class ActionRecord(WireModel):
    key: str = Field(description="Idempotency key: incident, step and attempt.")
    step: int
    action: Action
    state: ActionState
    started_at: str
    finished_at: str | None = None
    message: str = ""
    dry_run: bool = False
    purpose: ActionPurpose = ActionPurpose.STEP


class TimelineEntry(WireModel):
    time: str
    event: str = Field(description="What happened, e.g. Detected, ActionIntended, Verified, Escalated.")
    phase: IncidentPhase | None = None
    message: str = ""


class IncidentStatus(WireModel):
    phase: IncidentPhase = IncidentPhase.DETECTED
    phase_since: str | None = Field(default=None, description="When the current phase began.")
    current_step: int = 0
    last_action: str | None = Field(default=None, description="e.g. `restart Succeeded`, for `kubectl get`.")
    landed_at: str | None = Field(
        default=None,
        description="When the current step's action took effect: its write returned and the target's rollout "
        "completed. Verification judges only points whose whole query window starts after it.",
    )
    verify_until: str | None = Field(
        default=None,
        description="End of the current verification window: landedAt plus the step's verify, extended to "
        "the longest settling time of the incident's signals.",
    )
    waiting: str | None = Field(default=None, description="Why the next action is not taken now (a guardrail).")
    waiting_since: str | None = Field(default=None, description="Since when `waiting` has said the same.")
    actions: list[ActionRecord] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    resolved_at: str | None = None
    reopened: int = Field(default=0, description="Times a recurrence reopened this incident.")
    hold_until: str | None = Field(
        default=None, description="After escalation, no action on the target before this time."
    )
    hold_released: str | None = Field(
        default=None, description="When the escalation hold ended (cleared by a human or expired)."
    )
    back_in_band_since: str | None = Field(
        default=None,
        description="While escalated: since when every involved series is back in the band recorded at "
        "detection. Held for a full settling time, it ends the hold (RecoveredAfterEscalation).",
    )
    feedback: str | None = Field(default=None, description="`false-positive` once the verdict was fed back.")
    message: str = ""
