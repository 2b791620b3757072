"""The incident state machine: from what is known now to the one thing to do next. Pure.

`decide` is given the policy's Incidents as read from the API, this cycle's observations of the
signals, the policy's spec, the guard facts and the clock, and returns one `Decision`. It does
no I/O and keeps no state: the runner carries the decision out, writes it to the Incident, and
asks again (several decisions can follow each other in one cycle: open, then act on step 0).

    (none) --confirmed--> Detected --act--> Remediating --outcome--> Verifying --recovered--> Resolved
                                ^               ^   |                    |                       |
                                |               |   +--failed/skipped----+--not recovered------->+ next step
                                |               +--------------------------------------------------+
                                +-- Resolved, confirmed again within reopenWindow (Reopen: go on with the next step)
    steps exhausted --> Escalated (notify; hold the target) | Failed (every attempted action failed)

Rules that make it safe:

- Verification compares the current values with the band recorded ON THE INCIDENT at detection;
  detectors re-baseline on a sustained shift, the recorded band does not.
- No data is never a verdict: an involved signal without fresh data (Prometheus down, stale,
  empty) means Inconclusive: no action, no resolution, no escalation, wait.
- Before every step the anomaly must still be there: an incident that recovered while a
  guardrail held its next step is resolved, not acted on.
- A step whose `when` does not match is skipped (recorded with the reason); a `when` naming a
  signal without a verdict (no data, learning) waits.
- An action whose intent was recorded but whose outcome was not (the operator died in between)
  is resumed with the same idempotency key before anything else happens, if it is younger than
  `RESUME_WITHIN` and (for a step) its anomaly is still there on fresh data; otherwise it is
  abandoned with the reason (no data: it waits).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from homeostat.api.durations import format_duration, parse_duration
from homeostat.api.incident import (
    ActionPurpose,
    ActionRecord,
    ActionState,
    IncidentPhase,
    IncidentSpec,
    IncidentStatus,
    InvolvedSeries,
)
from homeostat.api.policy import Action, PolicySpec, Step
from homeostat.api.times import format_time, parse_time
from homeostat.playbooks import guards
from homeostat.playbooks.actions.common import PAUSED
from homeostat.playbooks.guards import Denial, GuardFacts
from homeostat.playbooks.observations import Observations, SeriesNow, SignalNow
from homeostat.playbooks.verification import (
    Recovery,
    back_in_band,
    judge_verification,
    longest_settling,
    recovered_now,
    series_label,
    verify_window,
)

__all__ = ["Decision", "IncidentView", "Kind", "Observations", "Recovery", "SeriesNow", "SignalNow", "decide",
           "series_label"]

ACTIVE_PHASES = (IncidentPhase.DETECTED, IncidentPhase.REMEDIATING, IncidentPhase.VERIFYING)
HOLDING_PHASES = (IncidentPhase.ESCALATED, IncidentPhase.FAILED)
RESUME_WITHIN = 600.0
"""An action interrupted (operator killed) longer ago than this is abandoned, not resumed: the data
it was decided on is that old. Younger, a step is resumed only while the anomaly is still there."""


# --- what the machine is given -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IncidentView:
    """An Incident as read from the API."""

    name: str
    spec: IncidentSpec
    status: IncidentStatus
    namespace: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    resource_version: str | None = None
    uid: str | None = None

    @property
    def detected_at(self) -> float:
        return parse_time(self.spec.detected_at)


# --- what it returns -----------------------------------------------------------------------------


class Kind(enum.StrEnum):
    IDLE = "Idle"  # nothing to do
    OPEN = "Open"  # create an Incident
    REOPEN = "Reopen"  # a resolved incident recurs within the reopen window
    INVOLVE = "Involve"  # more series confirmed during the incident: record them and their band
    SKIP_STEP = "SkipStep"  # the step's `when` does not match
    ACT = "Act"  # run step `step` (for real or dry)
    RESUME = "Resume"  # finish an action whose intent was recorded before a restart
    ABANDON = "Abandon"  # close such an intent without resuming it (paused, suspended, dry run now)
    HOLD = "Hold"  # a guardrail forbids the next action now
    WAIT = "Wait"  # verification window still running
    INCONCLUSIVE = "Inconclusive"  # no data to judge by: neither act nor resolve nor escalate
    RESOLVE = "Resolve"
    NEXT_STEP = "NextStep"  # verification failed: go on with the next step
    ESCALATE = "Escalate"
    FAIL = "Fail"
    RELEASE_HOLD = "ReleaseHold"  # an escalation hold ended (cleared or expired)
    FALSE_POSITIVE = "FalsePositive"  # a human said it was no incident
    SCALE_BACK = "ScaleBack"  # undo a step's scale-out after resolution and the quiet period
    LANDED = "Landed"  # the step's action took effect (rollout complete): its verification window starts
    BACK_IN_BAND = "BackInBand"  # escalated, and every involved series is back in its band: since when (or no more)
    RECOVERED_AFTER_ESCALATION = "RecoveredAfterEscalation"  # back in band for a settling time: the hold ends


@dataclass(frozen=True, kw_only=True)
class Decision:
    kind: Kind
    message: str = ""
    incident: str | None = None  # the Incident concerned (scale-back may be about an older one)
    step: int | None = None
    key: str | None = None  # idempotency key of the action to run or resume
    purpose: ActionPurpose = ActionPurpose.STEP
    dry_run: bool = False
    denial: Denial | None = None
    signal: str | None = None  # OPEN: the first confirmed signal
    involved: tuple[InvolvedSeries, ...] = ()  # OPEN / INVOLVE
    anomaly_started_at: float | None = None
    at: float | None = None  # LANDED: when the action took effect; BACK_IN_BAND: since when (None: no more)
    until: float | None = None  # LANDED: end of the verification window
    confirm_rollout: bool = False  # LANDED: the runner checks that no pod of an old revision still serves

    @property
    def code(self) -> str:
        """Stable identity of a waiting reason (the message may carry a countdown)."""
        if self.denial is not None:
            return str(self.denial.guard)
        return "NoData" if self.kind == Kind.INCONCLUSIVE else str(self.kind)


# --- helpers -------------------------------------------------------------------------------------


def newest(incidents: Iterable[IncidentView]) -> IncidentView | None:
    return max(incidents, key=lambda i: (i.spec.detected_at, i.name), default=None)


def pending_intent(incident: IncidentView) -> ActionRecord | None:
    """The action whose intent was written but whose outcome was not."""
    return next((r for r in reversed(incident.status.actions) if r.state == ActionState.INTENDED), None)


def is_active(incident: IncidentView) -> bool:
    return incident.status.phase in ACTIVE_PHASES


def holds_target(incident: IncidentView, *, now: float) -> bool:
    return guards.hold_stands(incident.status, dict(incident.annotations), now=now)


def is_open(incident: IncidentView, *, now: float) -> bool:
    """Active, or escalated and still holding its target: the policy's one incident at a time."""
    return is_active(incident) or holds_target(incident, now=now)


def step_key(incident: str, step: int, attempt: int) -> str:
    return f"{incident}/{step}/{attempt}"


def next_attempt(status: IncidentStatus, step: int, purpose: ActionPurpose = ActionPurpose.STEP) -> int:
    return 1 + sum(1 for r in status.actions if r.step == step and r.purpose == purpose)


def key_for(incident: str, step: int, status: IncidentStatus, purpose: ActionPurpose) -> str:
    attempt = next_attempt(status, step, purpose)
    if purpose == ActionPurpose.ESCALATION:
        return f"{incident}/escalation/{attempt}"
    if purpose == ActionPurpose.SCALE_BACK:
        return f"{incident}/{step}/scale-back-{attempt}"
    return step_key(incident, step, attempt)


def when_matches(step: Step, obs: Observations) -> tuple[bool | None, str]:
    """(True, _) runs the step, (False, reason) skips it, (None, reason) waits for data."""
    if step.when is None:
        return True, ""
    unknown: list[str] = []
    mismatched: list[str] = []
    for name in step.when.anomalous:
        signal = obs.signals.get(name)
        if signal is None or not signal.usable or signal.verdict in ("learning", "no-data"):
            unknown.append(name)
        elif not signal.anomalous:
            mismatched.append(f"{name} is {signal.verdict}, the step wants it anomalous")
    for name in step.when.normal:
        signal = obs.signals.get(name)
        if signal is None or not signal.usable or signal.verdict in ("learning", "no-data"):
            unknown.append(name)
        elif signal.anomalous:
            mismatched.append(f"{name} is anomalous, the step wants it normal")
    if mismatched:
        return False, "when: " + "; ".join(mismatched)
    if unknown:
        return None, f"when: no verdict for {', '.join(unknown)}; the step waits for data"
    return True, ""


def _round(value: float | None) -> float | None:
    """Six significant digits: what a human reads, and far finer than any band."""
    return None if value is None else float(f"{value:.6g}")


def involved_now(obs: Observations, *, only_new_for: IncidentSpec | None = None) -> tuple[InvolvedSeries, ...]:
    """The confirmed series of this cycle with their band (not already in `only_new_for`)."""
    known = set()
    if only_new_for is not None:
        known = {(s.signal, tuple(sorted(s.labels.items()))) for s in only_new_for.involved}
    found = []
    for name in obs.confirmed:
        for series in obs.signals[name].series:
            key = (name, tuple(sorted(series.labels.items())))
            if series.confirmed and key not in known:
                found.append(InvolvedSeries(
                    signal=name, labels=dict(series.labels), observed=_round(series.value),
                    expected=_round(series.expected), lower=_round(series.lower), upper=_round(series.upper),
                    score=_round(series.score),
                ))
    return tuple(found)


def _steps_exhausted(incident: IncidentView) -> Decision:
    attempted = [
        r for r in incident.status.actions
        if r.purpose == ActionPurpose.STEP and r.state in (ActionState.SUCCEEDED, ActionState.FAILED,
                                                              ActionState.DRY_RUN, ActionState.UNKNOWN)
    ]
    if attempted and all(r.state == ActionState.FAILED for r in attempted):
        return Decision(kind=Kind.FAIL, incident=incident.name,
                        message=f"every action failed ({len(attempted)}); a human must look")
    return Decision(kind=Kind.ESCALATE, incident=incident.name,
                    message="the playbook's steps are exhausted and the anomaly persists")


def escalation_step(policy: PolicySpec) -> int | None:
    """The notify step whose webhooks are told on escalation (the first one), if any."""
    return next((i for i, s in enumerate(policy.playbook.steps) if s.action == Action.NOTIFY), None)


def _scale_back_pending(incident: IncidentView, policy: PolicySpec, now: float) -> tuple[int, float] | None:
    """(step, due time) of a scale-out of this resolved incident still to be undone."""
    if incident.status.phase != IncidentPhase.RESOLVED or incident.status.resolved_at is None:
        return None
    for record in incident.status.actions:
        if record.purpose != ActionPurpose.STEP or record.action != Action.SCALE_OUT:
            continue
        if record.state != ActionState.SUCCEEDED:
            continue
        steps = policy.playbook.steps
        step = steps[record.step] if 0 <= record.step < len(steps) else None
        params = step.scale_out if step is not None and step.action == Action.SCALE_OUT else None
        if params is None or not params.scale_back:
            continue
        done = any(
            r.purpose == ActionPurpose.SCALE_BACK and r.step == record.step
            and r.state in (ActionState.SUCCEEDED, ActionState.SKIPPED, ActionState.INTENDED)
            for r in incident.status.actions
        )
        if not done:
            return record.step, parse_time(incident.status.resolved_at) + parse_duration(params.scale_back_after)
    return None


def _landed_step(incident: IncidentView) -> ActionRecord | None:
    """The outcome record of the action of the step being verified."""
    status = incident.status
    return next((r for r in reversed(status.actions)
                 if r.purpose == ActionPurpose.STEP and r.step == status.current_step
                 and r.state in (ActionState.SUCCEEDED, ActionState.DRY_RUN)), None)


def _no_data(incident: IncidentView, *, step: int, message: str, policy: PolicySpec, now: float) -> Decision:
    """Inconclusive: wait for data; but not past `playbook.noDataTimeout` after the incident
    started waiting for it (`status.waiting` says NoData since `waiting_since`): then escalate."""
    decision = Decision(kind=Kind.INCONCLUSIVE, incident=incident.name, step=step, message=message)
    if pending_intent(incident) is not None or not is_active(incident):
        return decision
    waiting, since = incident.status.waiting or "", incident.status.waiting_since
    if not waiting.startswith(f"{decision.code}:") or since is None:
        return decision
    waited = now - parse_time(since)
    if waited < parse_duration(policy.playbook.no_data_timeout):
        return decision
    return Decision(kind=Kind.ESCALATE, incident=incident.name,
                    message=f"no data for {format_duration(waited)} (playbook.noDataTimeout "
                            f"{policy.playbook.no_data_timeout}): {decision.message}; a human must look")


def _verifying(incident: IncidentView, obs: Observations, policy: PolicySpec, facts: GuardFacts,
               now: float) -> Decision:
    """A step's action ran: wait for it to land, then for its window, then judge on settled points."""
    status = incident.status
    index = status.current_step
    steps = policy.playbook.steps
    step = steps[index] if 0 <= index < len(steps) else None
    what = f"step {index + 1}" + (f" {step.action}" if step is not None else "")
    if status.landed_at is None:
        window = verify_window(step, policy, incident.spec, obs)
        record = _landed_step(incident)
        finished = parse_time(record.finished_at) if record is not None and record.finished_at else \
            parse_time(status.phase_since or incident.spec.detected_at)
        target = f"{policy.target.kind} {policy.target.name}"
        confirm = False
        if record is not None and record.dry_run:
            landed, how = finished, "dry run: nothing changed"
        elif facts.target_settled_at is not None and facts.target_settled_at > finished:
            landed, how, confirm = now, f"{target} rolled out and available, no old pod left", True
        elif now >= finished + window.seconds:
            landed, how = now, (f"{target} still not rolled out and available {format_duration(now - finished)} "
                                "after the action; verifying from now")
        else:
            return Decision(kind=Kind.WAIT, incident=incident.name, step=index,
                            message=f"{what}: waiting for {target} to roll out and be available")
        until = landed + window.seconds
        return Decision(kind=Kind.LANDED, incident=incident.name, step=index, at=landed, until=until,
                        confirm_rollout=confirm,
                        message=f"{what} took effect ({how}); verifying until {format_time(until, round_up=True)}: "
                                f"{window.describe()}")
    until = parse_time(status.verify_until) if status.verify_until else now
    if now < until:
        return Decision(kind=Kind.WAIT, incident=incident.name, step=index,
                        message=f"verifying {what} until {status.verify_until}")
    recovery, why = judge_verification(incident.spec, obs, policy, landed=parse_time(status.landed_at))
    if recovery == Recovery.NO_DATA:
        return _no_data(incident, step=index, message=f"cannot verify: {why}; waiting for data", policy=policy,
                        now=now)
    if recovery == Recovery.PENDING:
        return Decision(kind=Kind.WAIT, incident=incident.name, step=index, message=f"verifying {what}: {why}")
    if recovery == Recovery.RECOVERED:
        record = _landed_step(incident)
        if record is not None and record.dry_run:  # nothing was done: the step did not help, time did
            why = f"recovered on its own: {what} ran in dry run and changed nothing; {why}"
        return Decision(kind=Kind.RESOLVE, incident=incident.name, step=index, message=why)
    return Decision(kind=Kind.NEXT_STEP, incident=incident.name, step=index,
                    message=f"not recovered after {what}: {why}")


def _escalated(incident: IncidentView, obs: Observations, policy: PolicySpec, now: float) -> Decision:
    """An escalation hold stands: does the anomaly go away on its own for a full settling time?"""
    status = incident.status
    holding = Decision(kind=Kind.IDLE, incident=incident.name,
                       message=f"escalated; holding the target until {status.hold_until}")
    back, why = back_in_band(incident.spec, obs, policy)
    since = status.back_in_band_since
    if back is None:
        return holding  # no data: neither starts nor breaks the count
    if not back:
        if since is None:
            return holding
        return Decision(kind=Kind.BACK_IN_BAND, incident=incident.name, at=None,
                        message=f"out of the recorded band again: {why}")
    if since is None:
        return Decision(kind=Kind.BACK_IN_BAND, incident=incident.name, at=now, message=why)
    settling, signal = longest_settling(incident.spec, obs)
    settling = max(settling, policy.interval_seconds)
    held = now - parse_time(since)
    if held < settling:
        return holding
    target = f"{policy.target.kind} {policy.target.name}"
    return Decision(kind=Kind.RECOVERED_AFTER_ESCALATION, incident=incident.name,
                    message=f"recovered after the escalation: {why} since {since} "
                            f"({format_duration(held)}, at least the settling time {format_duration(settling)}"
                            f"{' of ' + signal if signal else ''}); the hold on {target} ends")


# --- the decision --------------------------------------------------------------------------------


def decide(
    *,
    incidents: Sequence[IncidentView],
    obs: Observations,
    policy: PolicySpec,
    facts: GuardFacts,
    now: float,
    holds_slot: bool = False,
    target_incident: str | None = None,
) -> Decision:
    """The next thing to do about this policy's incidents.

    `incidents` are the policy's Incidents as read from the API; `facts` the guardrails' view of
    the target; `holds_slot` whether the newest incident holds a concurrent-remediation slot;
    `target_incident` another policy's open incident on the same target (no scale-in then).
    Waiting for data has a deadline: an incident Inconclusive for `playbook.noDataTimeout` is
    escalated (a human must look) instead of holding its slot and its target in silence.
    """
    # 1. Feedback from humans first: it may close the incident.
    for incident in sorted(incidents, key=lambda i: i.name):
        if guards.marked_false_positive(dict(incident.annotations)) and incident.status.feedback is None:
            return Decision(kind=Kind.FALSE_POSITIVE, incident=incident.name,
                            message=f"annotated {guards.VERDICT_ANNOTATION}={guards.FALSE_POSITIVE}")

    # 2. An action started before a restart is finished before anything else is decided.
    for incident in incidents:
        record = pending_intent(incident)
        if record is None:
            continue
        blocker = (
            f"the workload is now annotated {PAUSED}=true" if facts.target_paused
            else "the policy is now suspended" if facts.suspended
            else f"dry run is now on ({facts.dry_run_reason})" if facts.dry_run
            else None
        )
        age = now - parse_time(record.started_at)
        if blocker is None and age > RESUME_WITHIN:
            blocker = (f"it was started {format_duration(age)} ago, more than {format_duration(RESUME_WITHIN)}: "
                       "what it was decided on is no longer known")
        if blocker is None and record.purpose == ActionPurpose.STEP:
            recovery, why = recovered_now(incident.spec, obs, policy)
            if recovery == Recovery.NO_DATA:  # no action without data, not even a resumed one
                return Decision(kind=Kind.INCONCLUSIVE, incident=incident.name, step=record.step,
                                message=f"interrupted {record.action} not resumed without data: {why}")
            if recovery == Recovery.RECOVERED:
                blocker = f"the anomaly is gone ({why})"
        if blocker is not None:
            return Decision(kind=Kind.ABANDON, incident=incident.name, step=record.step, key=record.key,
                            purpose=record.purpose,
                            message=f"interrupted {record.action} not resumed: {blocker}; it may or may not "
                                    "have been applied before the interruption")
        return Decision(kind=Kind.RESUME, incident=incident.name, step=record.step, key=record.key,
                        purpose=record.purpose,
                        message=f"resuming {record.action} ({record.key}) interrupted before its outcome was recorded")

    latest = newest(incidents)

    # 3. Escalation holds end when a human clears them or their time is up.
    if latest is not None and latest.status.phase in HOLDING_PHASES and latest.status.hold_released is None:
        if guards.cleared(dict(latest.annotations)):
            return Decision(kind=Kind.RELEASE_HOLD, incident=latest.name,
                            message=f"cleared by a human ({guards.CLEARED_ANNOTATION}=true)")
        if latest.status.hold_until is None or now >= parse_time(latest.status.hold_until):
            return Decision(kind=Kind.RELEASE_HOLD, incident=latest.name,
                            message=f"escalation hold of {policy.playbook.escalation_hold} passed")
        return _escalated(latest, obs, policy, now)

    # 4. No incident in progress: open (or reopen) one on a confirmed anomaly, else tidy up.
    if latest is None or not is_active(latest):
        if obs.symptoms:
            if (
                latest is not None
                and latest.status.phase == IncidentPhase.RESOLVED
                and latest.status.feedback is None
                and latest.status.resolved_at is not None
                and now - parse_time(latest.status.resolved_at) <= parse_duration(policy.playbook.reopen_window)
            ):
                return Decision(
                    kind=Kind.REOPEN, incident=latest.name,
                    message=f"{', '.join(obs.symptoms)} anomalous again "
                            f"{format_duration(now - parse_time(latest.status.resolved_at))} after resolution",
                )
            return Decision(kind=Kind.OPEN, signal=obs.symptoms[0], involved=involved_now(obs),
                            anomaly_started_at=obs.anomaly_started_at,
                            message="anomaly confirmed on " + ", ".join(obs.confirmed))
        for incident in sorted(incidents, key=lambda i: i.spec.detected_at):
            pending = _scale_back_pending(incident, policy, now)
            if pending is None:
                continue
            scaled, due = pending
            if now < due:
                continue
            denial = guards.check_scale_back(facts, target_in_incident=target_incident)
            if denial is not None:
                return Decision(kind=Kind.HOLD, incident=incident.name, step=scaled, denial=denial,
                                purpose=ActionPurpose.SCALE_BACK, message=f"scale-back held: {denial}")
            return Decision(kind=Kind.SCALE_BACK, incident=incident.name, step=scaled, dry_run=facts.dry_run,
                            purpose=ActionPurpose.SCALE_BACK,
                            key=key_for(incident.name, scaled, incident.status, ActionPurpose.SCALE_BACK),
                            message="resolved and quiet: scaling back")
        return Decision(kind=Kind.IDLE)

    # 5. An incident in progress.
    incident = latest
    status = incident.status
    new_series = involved_now(obs, only_new_for=incident.spec)
    if new_series:
        return Decision(kind=Kind.INVOLVE, incident=incident.name, involved=new_series,
                        message="also confirmed: " + ", ".join(f"{s.signal}{series_label(s.labels)}"
                                                               for s in new_series))
    if status.phase == IncidentPhase.VERIFYING:
        return _verifying(incident, obs, policy, facts, now)
    recovery, why = recovered_now(incident.spec, obs, policy)
    steps = policy.playbook.steps

    # Detected or Remediating: the next step is `current_step`.
    if recovery == Recovery.NO_DATA:
        return _no_data(incident, step=status.current_step, message=f"no action without data: {why}", policy=policy,
                        now=now)
    if recovery == Recovery.RECOVERED:
        return Decision(kind=Kind.RESOLVE, incident=incident.name, step=status.current_step,
                        message=f"recovered before step {status.current_step + 1} ran: {why}")
    index = status.current_step
    if index >= len(steps):
        return _steps_exhausted(incident)
    step = steps[index]
    matches, reason = when_matches(step, obs)
    if matches is None:
        return _no_data(incident, step=index, message=reason, policy=policy, now=now)
    if not matches:
        return Decision(kind=Kind.SKIP_STEP, incident=incident.name, step=index,
                        key=key_for(incident.name, index, status, ActionPurpose.STEP), message=reason)
    denial = guards.check(facts, action=step.action, holds_slot=holds_slot)
    if denial is not None:
        return Decision(kind=Kind.HOLD, incident=incident.name, step=index, denial=denial,
                        message=f"{step.action} (step {index + 1}) held: {denial}")
    return Decision(
        kind=Kind.ACT, incident=incident.name, step=index, dry_run=facts.dry_run,
        key=key_for(incident.name, index, status, ActionPurpose.STEP),
        message=f"step {index + 1}/{len(steps)}: {step.action}" + (f" (dry run: {facts.dry_run_reason})"
                                                                   if facts.dry_run else ""),
    )
