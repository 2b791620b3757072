"""Small edits of an Incident's status, shared by the transitions and the action runner.

Each works on a copy of the status that the cycle then writes (`runner.Cycle.write`); none does
I/O. The timeline is bounded: its opening entry stays, the oldest after it go first.
"""

from __future__ import annotations

from homeostat.api.incident import ActionRecord, IncidentPhase, IncidentStatus, TimelineEntry
from homeostat.api.times import format_time
from homeostat.playbooks.machine import IncidentView, series_label

MAX_TIMELINE = 100


def note(status: IncidentStatus, now: float, event: str, message: str = "") -> None:
    """Append a timeline entry (in the status' phase as it is now)."""
    status.timeline.append(TimelineEntry(time=format_time(now), event=event, phase=status.phase, message=message))
    if len(status.timeline) > MAX_TIMELINE:  # keep the opening entry, drop the oldest after it
        del status.timeline[1 : len(status.timeline) - MAX_TIMELINE + 1]


def enter(status: IncidentStatus, phase: IncidentPhase, now: float) -> bool:
    """Move to `phase` (since `now`); False when already in it."""
    if status.phase == phase:
        return False
    status.phase = phase
    status.phase_since = format_time(now)
    return True


def clear_verification(status: IncidentStatus) -> None:
    """No step's action is landing or being verified any more."""
    status.verify_until = None
    status.landed_at = None


def clear_waiting(status: IncidentStatus) -> None:
    """Nothing holds the incident back any more (a guardrail, missing data)."""
    status.waiting = None
    status.waiting_since = None


def resolve(status: IncidentStatus, now: float, message: str) -> None:
    """Resolved at `now`: neither verifying nor waiting."""
    enter(status, IncidentPhase.RESOLVED, now)
    status.resolved_at = format_time(now)
    clear_verification(status)
    clear_waiting(status)
    status.message = message


def record_of(status: IncidentStatus, key: str) -> ActionRecord | None:
    """The action record with this idempotency key."""
    return next((r for r in status.actions if r.key == key), None)


def summary(view: IncidentView, *, namespace: str, policy: str, what: str) -> str:
    """One line for humans: what happened, to which target, on which series."""
    parts = []
    for series in view.spec.involved[:3]:
        observed = f"{series.observed:.4g}" if series.observed is not None else "?"
        expected = f", expected {series.expected:.4g}" if series.expected is not None else ""
        parts.append(f"{series.signal}{series_label(series.labels)} {observed}{expected}")
    target = f"{view.spec.target.kind} {namespace}/{view.spec.target.name}"
    return f"{what} — {target}: {'; '.join(parts) or view.spec.signal} (incident {view.name}, policy {policy})"
