"""Guardrails: pure checks, each with a reason, between a decision to act and the action.

Everything here is computed from facts the runner gathered from the API (the policy, the target
workload, the Incidents of the namespace) and an operator-wide counter, never from what this
process happens to remember: an operator restarted a second ago applies the same cooldown,
hourly budget and escalation hold as one that has run for a week.

| guard | blocks | lifted by |
|---|---|---|
| target missing | every action | the workload existing again |
| `homeostat.dev/paused=true` on the workload | every action (and scale-back) | removing the annotation |
| `playbook.suspend` | every action (and scale-back) | `suspend: false` |
| escalation hold | every action on the target while one of its Incidents is Escalated/Failed | time, or `cleared` |
| concurrency cap | a new remediation beyond `--max-concurrent-remediations` | another remediation ending |
| `maxActionsPerHour` | a workload action when the policy took that many in the last hour | time |
| `cooldown` | a workload action sooner than `cooldown` after the last one on the target | time |

The escalation hold lasts `playbook.escalationHold`, or until a human annotates the Incident
`homeostat.dev/cleared=true`.

Dry run (the policy's `playbook.dryRun` or the operator's `--dry-run`) is not a denial: every
decision is made as usual and recorded as `DryRun`, and no workload is written. Notifications
change no workload, so they count neither towards the cooldown nor the hourly budget.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from homeostat.api.durations import format_duration
from homeostat.api.incident import ActionRecord, ActionState, IncidentPhase, IncidentStatus
from homeostat.api.policy import Action
from homeostat.api.times import parse_time
from homeostat.playbooks.actions.common import PAUSED

CLEARED_ANNOTATION = "homeostat.dev/cleared"
VERDICT_ANNOTATION = "homeostat.dev/verdict"
FALSE_POSITIVE = "false-positive"

HOUR = 3600.0  # the window of `maxActionsPerHour`


class Guard(enum.StrEnum):
    TARGET_MISSING = "TargetMissing"
    PAUSED = "Paused"
    SUSPENDED = "Suspended"
    ESCALATION_HOLD = "EscalationHold"
    CONCURRENCY = "ConcurrencyCap"
    RATE_LIMIT = "RateLimited"
    COOLDOWN = "Cooldown"
    INCIDENT_OPEN = "IncidentOpen"
    CLAIMED = "Claimed"  # another decision claimed the workload first (playbooks/claims.py)


@dataclass(frozen=True, kw_only=True)
class Denial:
    """Why an action may not run now; `until` is when time alone lifts it (None: a human must act)."""

    guard: Guard
    message: str
    until: float | None = None

    def __str__(self) -> str:
        return f"{self.guard}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class Hold:
    """An escalation hold standing on the target."""

    incident: str
    until: float


@dataclass(frozen=True, kw_only=True)
class GuardFacts:
    """What the guards look at, gathered by the runner from the API at decision time."""

    now: float
    target_found: bool = True
    target_paused: bool = False
    suspended: bool = False
    policy_dry_run: bool = False
    operator_dry_run: bool = False
    cooldown: float = 600.0
    max_actions_per_hour: int = 3
    last_action_on_target: float | None = None  # newest workload action on the target, any incident
    actions_in_last_hour: int = 0  # workload actions of this policy in the last hour
    slot_available: bool = True  # the incident holds a remediation slot, or one is free
    slots_in_use: int = 0
    max_concurrent: int = 5
    hold: Hold | None = None  # an escalation hold on the target by another incident
    target_settled_at: float | None = None  # when the target was read rolled out and available (None: it was not)

    @property
    def dry_run(self) -> bool:
        return self.policy_dry_run or self.operator_dry_run

    @property
    def dry_run_reason(self) -> str:
        if self.operator_dry_run:
            return "operator-wide --dry-run"
        return "playbook.dryRun" if self.policy_dry_run else ""


def changes_workload(action: Action | str) -> bool:
    """Whether an action writes to the workload (everything but `notify`)."""
    return Action(action) != Action.NOTIFY


def _hands_off(facts: GuardFacts) -> Denial | None:
    """What forbids touching the target at all: it is missing, paused, or its policy suspended."""
    if not facts.target_found:
        return Denial(guard=Guard.TARGET_MISSING, message="the target workload was not found")
    if facts.target_paused:
        return Denial(guard=Guard.PAUSED, message=f"the workload is annotated {PAUSED}=true")
    if facts.suspended:
        return Denial(guard=Guard.SUSPENDED, message="the policy's playbook.suspend is true")
    return None


def check(facts: GuardFacts, *, action: Action | str, holds_slot: bool = False) -> Denial | None:
    """The first guard that forbids `action` now, or None when it may run (for real or dry)."""
    denial = _hands_off(facts)
    if denial is not None:
        return denial
    if facts.hold is not None and facts.now < facts.hold.until:
        return Denial(
            guard=Guard.ESCALATION_HOLD,
            message=f"incident {facts.hold.incident} escalated; no action on the target for "
            f"{format_duration(facts.hold.until - facts.now)} more, or until it is annotated "
            f"{CLEARED_ANNOTATION}=true",
            until=facts.hold.until,
        )
    if not holds_slot and not facts.slot_available:
        return Denial(
            guard=Guard.CONCURRENCY,
            message=f"{facts.slots_in_use} remediations in progress, the operator's limit is {facts.max_concurrent}",
        )
    if not changes_workload(action):
        return None
    if facts.actions_in_last_hour >= facts.max_actions_per_hour:
        return Denial(
            guard=Guard.RATE_LIMIT,
            message=f"{facts.actions_in_last_hour} actions in the last hour, "
            f"playbook.maxActionsPerHour is {facts.max_actions_per_hour}",
        )
    if facts.last_action_on_target is not None and facts.now - facts.last_action_on_target < facts.cooldown:
        until = facts.last_action_on_target + facts.cooldown
        return Denial(
            guard=Guard.COOLDOWN,
            message=f"last action on the target {format_duration(facts.now - facts.last_action_on_target)} ago, "
            f"cooldown {format_duration(facts.cooldown)} ({format_duration(until - facts.now)} left)",
            until=until,
        )
    return None


def check_scale_back(facts: GuardFacts, *, target_in_incident: str | None) -> Denial | None:
    """Scaling in: never during an incident on the target, never on a paused or suspended one."""
    if target_in_incident is not None:
        return Denial(guard=Guard.INCIDENT_OPEN,
                      message=f"incident {target_in_incident} is open on the target; never scale in during one")
    return _hands_off(facts)


# --- facts from the API's Incidents ---------------------------------------------------------------


def counts_as_action(record: ActionRecord, *, dry_run: bool) -> bool:
    """A workload action for the cooldown and the hourly budget.

    Started (Intended), Succeeded and Unknown ones count: an Intended record may have changed the
    workload before a restart, an Unknown one may have changed it although its answer was lost.
    DryRun ones count in dry run, so that a dry run plays out as a real one would. Failed, Skipped
    and notifications changed nothing.
    """
    if not changes_workload(record.action):
        return False
    if record.state in (ActionState.SUCCEEDED, ActionState.INTENDED, ActionState.UNKNOWN):
        return True
    return dry_run and record.state == ActionState.DRY_RUN


def action_times(statuses: Iterable[IncidentStatus], *, dry_run: bool) -> list[float]:
    """When each workload action of these incidents started, oldest first."""
    times = [
        parse_time(record.started_at)
        for status in statuses
        for record in status.actions
        if counts_as_action(record, dry_run=dry_run)
    ]
    return sorted(times)


def last_action(statuses: Iterable[IncidentStatus], *, dry_run: bool) -> float | None:
    times = action_times(statuses, dry_run=dry_run)
    return times[-1] if times else None


def actions_since(statuses: Iterable[IncidentStatus], *, since: float, dry_run: bool) -> int:
    return sum(1 for t in action_times(statuses, dry_run=dry_run) if t > since)


def standing_hold(
    incidents: Iterable[tuple[str, IncidentStatus, dict[str, str]]], *, now: float, exclude: str | None = None
) -> Hold | None:
    """The escalation hold on a target, from its Incidents (name, status, annotations)."""
    longest: Hold | None = None
    for name, status, notes in incidents:
        if name == exclude or not hold_stands(status, notes, now=now):
            continue
        assert status.hold_until is not None
        until = parse_time(status.hold_until)
        if longest is None or until > longest.until:
            longest = Hold(incident=name, until=until)
    return longest


def hold_stands(status: IncidentStatus, annotations: dict[str, str], *, now: float) -> bool:
    """An Escalated or Failed incident holds its target until released, cleared or expired."""
    if status.phase not in (IncidentPhase.ESCALATED, IncidentPhase.FAILED) or status.hold_until is None:
        return False
    if status.hold_released is not None or cleared(annotations):
        return False
    return now < parse_time(status.hold_until)


def cleared(annotations: dict[str, str]) -> bool:
    return annotations.get(CLEARED_ANNOTATION, "").lower() == "true"


def marked_false_positive(annotations: dict[str, str]) -> bool:
    return annotations.get(VERDICT_ANNOTATION, "").lower() == FALSE_POSITIVE


def paused(annotations: dict[str, str]) -> bool:
    return annotations.get(PAUSED, "").lower() == "true"


class RemediationSlots:
    """The operator-wide cap on concurrent remediations (the blast radius).

    An incident holds a slot from its first action until it is resolved, escalated or failed.
    asyncio runs one coroutine at a time and nothing here awaits, so a check and the acquisition
    that follows it cannot interleave with another policy's. After a restart, each policy's loop
    takes its slot back when it finds its incident mid-remediation (`hold`, over the cap if need
    be: that remediation is already under way). Every cycle, each policy's slots are reconciled
    with its Incidents as read from the API (`reconcile`): the slot of an incident that is gone
    (deleted by a human mid-remediation) or no longer being remediated is freed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._holders: set[str] = set()

    def holds(self, key: str) -> bool:
        return key in self._holders

    @property
    def in_use(self) -> int:
        return len(self._holders)

    def available(self, key: str) -> bool:
        return key in self._holders or len(self._holders) < self.limit

    def try_acquire(self, key: str) -> bool:
        if not self.available(key):
            return False
        self._holders.add(key)
        return True

    def hold(self, key: str) -> None:
        self._holders.add(key)

    def release(self, key: str) -> None:
        self._holders.discard(key)

    def reconcile(self, prefix: str, active: set[str]) -> None:
        """Make the slots under `prefix` (one policy's, `<namespace>/<policy>/`) exactly `active`:
        those of its incidents being remediated now, as read from the API this cycle."""
        stray = [key for key in active if not key.startswith(prefix)]
        if stray:
            raise ValueError(f"slots {stray} are not under {prefix!r}")
        self._holders = {key for key in self._holders if not key.startswith(prefix)} | active

    def release_prefix(self, prefix: str) -> None:
        """Free the slots of a policy whose loop ends (keys are `<namespace>/<policy>/<incident>`)."""
        self._holders = {key for key in self._holders if not key.startswith(prefix)}
