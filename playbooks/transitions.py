"""The transitions: how the runner carries out each kind of decision, and their table.

`machine.decide` says what to do; the transition for its kind, looked up in `TRANSITIONS`, does
it on the cycle (`runner.Cycle`): it edits a copy of the Incident's status, writes it, tells
(Events), and for an action writes the intent before `acting.perform` calls it (the order of
writes is in `runner`'s docstring). `IDLE` and `WAIT` have nothing to carry out: the cycle ends
on them. Every other kind has exactly one transition; the table is checked complete at import.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from homeostat.api.durations import parse_duration
from homeostat.api.incident import (
    ActionPurpose,
    ActionRecord,
    ActionState,
    IncidentPhase,
    IncidentSpec,
    IncidentStatus,
)
from homeostat.api.policy import Action
from homeostat.api.times import format_time
from homeostat.playbooks import acting, guards, status_edits
from homeostat.playbooks.machine import Decision, IncidentView, Kind, escalation_step
from homeostat.playbooks.status_edits import clear_verification, clear_waiting, note

if TYPE_CHECKING:
    from homeostat.playbooks.runner import Cycle

Transition = Callable[["Cycle", Decision, float], Awaitable[None]]
"""`transition(cycle, decision, now)`: carry out `decision`, decided at `now`."""


# --- opening, following, closing ------------------------------------------------------------------


async def on_open(cycle: Cycle, d: Decision, now: float) -> None:
    spec = IncidentSpec(
        policy=cycle.policy.name, target=cycle.spec.target, detected_at=format_time(now),
        anomaly_started_at=format_time(d.anomaly_started_at) if d.anomaly_started_at else None,
        signal=d.signal or cycle.spec.signals[0].name, involved=list(d.involved),
    )
    status = IncidentStatus(phase=IncidentPhase.DETECTED, phase_since=format_time(now))
    view = IncidentView(name="", spec=spec, status=status, namespace=cycle.policy.namespace)
    message = status_edits.summary(view, namespace=cycle.policy.namespace, policy=cycle.policy.name,
                                   what="anomaly confirmed").split(" (incident")[0]
    note(status, now, "Detected", message)
    created = await cycle.create(spec=spec, status=status, now=now)
    cycle.count_phase(IncidentPhase.DETECTED)
    await cycle.tell(created, type="Warning", reason="IncidentOpened", message=message, now=now,
                     target=True, policy=True)


async def on_reopen(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)

    def mutate(s: IncidentStatus) -> None:
        # A dry-run step changed nothing, so a recurrence says nothing of it: the same step again.
        helped = any(r.step == s.current_step and r.purpose == ActionPurpose.STEP
                     and r.state == ActionState.SUCCEEDED for r in s.actions)
        if helped:  # it came back after this step: go on with the next one
            s.current_step += 1
        status_edits.enter(s, IncidentPhase.DETECTED, now)
        s.reopened += 1
        s.resolved_at = None
        clear_verification(s)
        clear_waiting(s)
        s.message = d.message
        note(s, now, "Reopened", d.message)

    view = await cycle.write(view, mutate)
    cycle.count_phase(IncidentPhase.DETECTED)
    await cycle.tell(view, type="Warning", reason="IncidentReopened", message=d.message, now=now,
                     target=True, policy=True)


async def on_involve(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)
    written = await cycle.write_involved(view, [*view.spec.involved, *d.involved])
    await cycle.write(written, lambda s: note(s, now, "SeriesInvolved", d.message))


async def on_resolve(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)

    def mutate(s: IncidentStatus) -> None:
        status_edits.resolve(s, now, d.message)
        note(s, now, "Resolved", d.message)

    view = await cycle.write(view, mutate)
    cycle.deps.slots.release(cycle.slot_key(view.name))
    cycle.count_phase(IncidentPhase.RESOLVED)
    await cycle.tell(view, type="Normal", reason="IncidentResolved", message=d.message, now=now,
                     target=True, policy=True)


async def on_false_positive(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)
    marked = cycle.feedback(view) if cycle.feedback is not None else 0
    message = (f"marked false positive: fed back to the detectors of {marked} of "
               f"{len(view.spec.involved)} series (less sensitive to this pattern)")

    def mutate(s: IncidentStatus) -> None:
        s.feedback = guards.FALSE_POSITIVE
        if s.phase in (IncidentPhase.DETECTED, IncidentPhase.REMEDIATING, IncidentPhase.VERIFYING):
            status_edits.resolve(s, now, "closed: " + message)
        elif s.phase in (IncidentPhase.ESCALATED, IncidentPhase.FAILED) and s.hold_released is None:
            s.hold_released = format_time(now)
        note(s, now, "FalsePositive", message)

    before = view.status.phase
    view = await cycle.write(view, mutate)
    cycle.count_false_positive()  # once the verdict is recorded (a conflict retries it)
    if view.status.phase != before:
        cycle.count_phase(view.status.phase)
        cycle.deps.slots.release(cycle.slot_key(view.name))
    await cycle.tell(view, type="Normal", reason="FalsePositive", message=message, now=now, policy=True)


# --- steps ------------------------------------------------------------------------------------------


async def on_skip_step(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)
    assert d.step is not None and d.key is not None
    step = cycle.spec.playbook.steps[d.step]

    def mutate(s: IncidentStatus) -> None:
        s.actions.append(ActionRecord(
            key=d.key or "", step=d.step or 0, action=step.action, state=ActionState.SKIPPED,
            started_at=format_time(now), finished_at=format_time(now), message=d.message,
        ))
        s.current_step = (d.step or 0) + 1
        s.last_action = f"{step.action} Skipped"
        clear_waiting(s)
        note(s, now, "StepSkipped", f"step {(d.step or 0) + 1} {step.action}: {d.message}")

    view = await cycle.write(view, mutate)
    cycle.count_action(step.action, ActionState.SKIPPED)
    await cycle.tell(view, type="Normal", reason="ActionSkipped",
                     message=f"step {d.step + 1} {step.action} skipped: {d.message}", now=now, target=True)


async def on_act(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)
    assert d.step is not None and d.key is not None
    step = cycle.spec.playbook.steps[d.step]
    slot = cycle.slot_key(view.name)
    if not d.dry_run:
        if not cycle.deps.slots.try_acquire(slot):
            return  # taken since the facts were gathered; the next cycle holds it properly
        try:
            refused = await acting.claim(cycle, key=d.key, action=step.action, now=now)
        except BaseException:
            cycle.deps.slots.release(slot)
            raise
        if refused is not None:
            cycle.deps.slots.release(slot)
            denial = guards.Denial(guard=guards.Guard.CLAIMED, message=refused)
            await on_hold(cycle, Decision(kind=Kind.HOLD, incident=view.name, step=d.step, denial=denial,
                                          message=f"{step.action} (step {d.step + 1}) held: {denial}"), now)
            return

        def intend(s: IncidentStatus) -> None:
            status_edits.enter(s, IncidentPhase.REMEDIATING, now)
            s.current_step = d.step or 0
            clear_waiting(s)
            s.last_action = f"{step.action} Intended"
            s.actions.append(ActionRecord(key=d.key or "", step=d.step or 0, action=step.action,
                                          state=ActionState.INTENDED, started_at=format_time(now)))
            note(s, now, "ActionIntended", f"{d.message} ({d.key})")

        before = view.status.phase
        try:
            view = await cycle.write(view, intend)
        except BaseException:
            cycle.deps.slots.release(slot)
            raise
        if view.status.phase != before:
            cycle.count_phase(view.status.phase)
    await acting.perform(cycle, view, step_index=d.step, key=d.key, purpose=ActionPurpose.STEP,
                         dry_run=d.dry_run, now=now)


async def on_resume(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)
    assert d.step is not None and d.key is not None
    steps = cycle.spec.playbook.steps
    record = status_edits.record_of(view.status, d.key)
    assert record is not None
    if d.purpose == ActionPurpose.STEP:
        cycle.deps.slots.hold(cycle.slot_key(view.name))
    if not (0 <= d.step < len(steps)) or steps[d.step].action != record.action:
        await on_abandon(cycle, Decision(
            kind=Kind.ABANDON, incident=d.incident, step=d.step, key=d.key, purpose=d.purpose,
            message=f"interrupted {record.action} not resumed: the playbook changed since; it may or may "
                    "not have been applied before the interruption"), now)
        return
    await cycle.tell(view, type="Normal", reason="ActionResumed", message=d.message, now=now)
    await acting.perform(cycle, view, step_index=d.step, key=d.key, purpose=d.purpose, dry_run=False, now=now)


async def on_abandon(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)

    def mutate(s: IncidentStatus) -> None:
        record = status_edits.record_of(s, d.key or "")
        if record is not None:
            record.state = ActionState.SKIPPED
            record.finished_at = format_time(now)
            record.message = d.message
            s.last_action = f"{record.action} Skipped"
        note(s, now, "ActionAbandoned", d.message)

    view = await cycle.write(view, mutate)
    await cycle.tell(view, type="Warning", reason="ActionSkipped", message=d.message, now=now, target=True)


async def on_scale_back(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)
    assert d.step is not None and d.key is not None
    if cycle.deps.scale_back is None:
        return
    if not d.dry_run:
        def intend(s: IncidentStatus) -> None:
            clear_waiting(s)
            s.actions.append(ActionRecord(key=d.key or "", step=d.step or 0, action=Action.SCALE_OUT,
                                          state=ActionState.INTENDED, started_at=format_time(now),
                                          purpose=ActionPurpose.SCALE_BACK))
            note(s, now, "ScaleBackIntended", f"{d.message} ({d.key})")

        view = await cycle.write(view, intend)
    await acting.perform(cycle, view, step_index=d.step, key=d.key, purpose=ActionPurpose.SCALE_BACK,
                         dry_run=d.dry_run, now=now)


# --- waiting ------------------------------------------------------------------------------------------


async def on_hold(cycle: Cycle, d: Decision, now: float) -> None:
    await _wait(cycle, d, now, waiting=f"{d.code}: {d.denial.message if d.denial else d.message}",
                event="ActionHeld", type="Normal", reason="ActionSkipped", target=True)


async def on_inconclusive(cycle: Cycle, d: Decision, now: float) -> None:
    await _wait(cycle, d, now, waiting=f"{d.code}: {d.message}", event="Inconclusive", type="Warning",
                reason="Inconclusive", target=False)


async def _wait(cycle: Cycle, d: Decision, now: float, *, waiting: str, event: str, type: str, reason: str,
                target: bool) -> None:
    """Record why the incident waits, once per reason (`d.code`), not every cycle."""
    view = cycle.view(d.incident)
    if view.status.waiting is not None and view.status.waiting.split(":")[0] == d.code:
        return

    def mutate(s: IncidentStatus) -> None:
        s.waiting = waiting
        s.waiting_since = format_time(now)
        note(s, now, event, d.message)

    view = await cycle.write(view, mutate)
    await cycle.tell(view, type=type, reason=reason, message=d.message, now=now, target=target)


# --- verification ---------------------------------------------------------------------------------------


async def on_landed(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)
    assert d.at is not None and d.until is not None
    if d.confirm_rollout and not await cycle.old_pods_gone():
        cycle.waiting = True  # decided again next cycle
        return

    def mutate(s: IncidentStatus) -> None:
        s.landed_at = format_time(d.at or now)
        s.verify_until = format_time(d.until or now, round_up=True)
        clear_waiting(s)
        note(s, now, "ActionLanded", d.message)

    await cycle.write(view, mutate)


async def on_next_step(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)

    def mutate(s: IncidentStatus) -> None:
        s.current_step += 1
        status_edits.enter(s, IncidentPhase.REMEDIATING, now)
        clear_verification(s)
        clear_waiting(s)
        note(s, now, "NotRecovered", d.message)

    before = view.status.phase
    view = await cycle.write(view, mutate)
    if view.status.phase != before:
        cycle.count_phase(view.status.phase)
    await cycle.tell(view, type="Warning", reason="NotRecovered", message=d.message, now=now)


# --- escalation -----------------------------------------------------------------------------------------


async def on_escalate(cycle: Cycle, d: Decision, now: float) -> None:
    await _escalate(cycle, d, now, IncidentPhase.ESCALATED)


async def on_fail(cycle: Cycle, d: Decision, now: float) -> None:
    await _escalate(cycle, d, now, IncidentPhase.FAILED)


async def _escalate(cycle: Cycle, d: Decision, now: float, phase: IncidentPhase) -> None:
    """Escalated or Failed: hold the target, free the slot, and send the escalation notice."""
    view = cycle.view(d.incident)
    spec = cycle.spec
    hold = parse_duration(spec.playbook.escalation_hold)
    notify = escalation_step(spec)
    dry_run = spec.playbook.dry_run or cycle.deps.operator_dry_run
    key = None
    if notify is not None:
        attempts = sum(1 for r in view.status.actions if r.purpose == ActionPurpose.ESCALATION)
        key = f"{view.name}/escalation/{attempts + 1}"
    hold_note = (f"no action on {spec.target.kind} {spec.target.name} until "
                 f"{format_time(now + hold, round_up=True)} or until this Incident is annotated "
                 f"{guards.CLEARED_ANNOTATION}=true")

    def mutate(s: IncidentStatus) -> None:
        status_edits.enter(s, phase, now)
        s.hold_until = format_time(now + hold, round_up=True)
        s.hold_released = None
        s.back_in_band_since = None
        clear_verification(s)
        clear_waiting(s)
        s.message = f"{d.message}; {hold_note}"
        note(s, now, str(phase), s.message)
        if key is not None and notify is not None and not dry_run:
            s.actions.append(ActionRecord(
                key=key, step=notify, action=Action.NOTIFY, state=ActionState.INTENDED,
                started_at=format_time(now), purpose=ActionPurpose.ESCALATION,
            ))

    view = await cycle.write(view, mutate)
    cycle.deps.slots.release(cycle.slot_key(view.name))
    cycle.count_phase(phase)
    await cycle.tell(view, type="Warning", reason=f"Incident{phase}", message=f"{d.message}; {hold_note}",
                     now=now, target=True, policy=True)
    if key is not None and notify is not None:
        await acting.perform(cycle, view, step_index=notify, key=key, purpose=ActionPurpose.ESCALATION,
                             dry_run=dry_run, now=now)


async def on_back_in_band(cycle: Cycle, d: Decision, now: float) -> None:
    view = cycle.view(d.incident)

    def mutate(s: IncidentStatus) -> None:
        s.back_in_band_since = format_time(d.at) if d.at is not None else None

    await cycle.write(view, mutate)


async def on_recovered_after_escalation(cycle: Cycle, d: Decision, now: float) -> None:
    await _end_hold(cycle, d, now, event="RecoveredAfterEscalation", message=d.message)


async def on_release_hold(cycle: Cycle, d: Decision, now: float) -> None:
    await _end_hold(cycle, d, now, event="HoldReleased", message=None)


async def _end_hold(cycle: Cycle, d: Decision, now: float, *, event: str, message: str | None) -> None:
    """The escalation hold on the target ends (`message`: also the Incident's message)."""
    view = cycle.view(d.incident)

    def mutate(s: IncidentStatus) -> None:
        s.hold_released = format_time(now)
        if message is not None:
            s.message = message
        note(s, now, event, d.message)

    view = await cycle.write(view, mutate)
    await cycle.tell(view, type="Normal", reason=event, message=d.message, now=now, target=True, policy=True)


# --- the table ------------------------------------------------------------------------------------------

NOTHING_TO_DO = frozenset({Kind.IDLE, Kind.WAIT})
"""Decisions with nothing to carry out: the cycle ends on them."""

TRANSITIONS: Mapping[Kind, Transition] = {
    Kind.OPEN: on_open,
    Kind.REOPEN: on_reopen,
    Kind.INVOLVE: on_involve,
    Kind.SKIP_STEP: on_skip_step,
    Kind.ACT: on_act,
    Kind.RESUME: on_resume,
    Kind.ABANDON: on_abandon,
    Kind.HOLD: on_hold,
    Kind.INCONCLUSIVE: on_inconclusive,
    Kind.RESOLVE: on_resolve,
    Kind.NEXT_STEP: on_next_step,
    Kind.ESCALATE: on_escalate,
    Kind.FAIL: on_fail,
    Kind.RELEASE_HOLD: on_release_hold,
    Kind.FALSE_POSITIVE: on_false_positive,
    Kind.SCALE_BACK: on_scale_back,
    Kind.LANDED: on_landed,
    Kind.BACK_IN_BAND: on_back_in_band,
    Kind.RECOVERED_AFTER_ESCALATION: on_recovered_after_escalation,
}



def _check_complete() -> None:
    """Every kind of decision is carried out by one transition or is one of `NOTHING_TO_DO`."""
    unhandled = set(Kind) - NOTHING_TO_DO - set(TRANSITIONS)
    both = NOTHING_TO_DO & set(TRANSITIONS)
    if unhandled or both:
        raise ImportError(f"decision kinds without a transition: {sorted(unhandled)}; with one but "
                          f"ending the cycle: {sorted(both)}")


_check_complete()
