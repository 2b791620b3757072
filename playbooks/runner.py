"""The remediation runner: each cycle, read the policy's Incidents, decide, write, act, write.

`remediate` is called by the policy loop after every evaluation. It reads the Incidents from the
API (never from memory), asks the pure state machine (`machine.decide`) what to do, and carries it
out. The order of writes is what makes it crash-safe:

1. the transition and the *intent* of an action (an `Intended` ActionRecord with its idempotency
   key `<incident>/<step>/<attempt>`) are written to the Incident's status;
2. only then is the action called, with that key;
3. then its outcome is written.

An operator killed between 1 and 3 finds the `Intended` record when it starts again and calls the
action again with the same key; actions are idempotent by key (a restart finds its key on the pod
template and does not restart twice), so a started action is neither forgotten nor repeated. A
failure to write the intent means the action is not called at all: nothing is half-applied.

Several decisions may follow each other within one cycle (open, then act on step 0); the loop
ends on a decision that waits (verification running, a guardrail, no data) or after a bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from homeostat.api.durations import parse_duration
from homeostat.api.incident import (
    ActionPurpose,
    ActionRecord,
    ActionState,
    IncidentPhase,
    IncidentSpec,
    IncidentStatus,
    TimelineEntry,
)
from homeostat.api.policy import Action, PolicySpec
from homeostat.api.times import format_time, parse_time
from homeostat.operator.metrics import OperatorMetrics
from homeostat.playbooks import claims, guards
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome
from homeostat.playbooks.guards import GuardFacts, RemediationSlots
from homeostat.playbooks.incidents import Conflict, IncidentStore, ObjectRef, incident_ref
from homeostat.playbooks.machine import (
    Decision,
    IncidentView,
    Kind,
    Observations,
    decide,
    escalation_step,
    is_open,
    newest,
    series_label,
)

logger = logging.getLogger(__name__)

ActionFn = Callable[[ActionContext], Awaitable[ActionResult]]
ScaleBackFn = Callable[..., Awaitable[ActionResult]]
"""`scale_out.scale_back(ctx, *, resolved_at, now)`: undo a step's scale-out once resolved and quiet."""
MAX_TIMELINE = 100
MAX_DECISIONS_PER_CYCLE = 10
HOUR = 3600.0
_STATE_OF = {
    Outcome.SUCCEEDED: ActionState.SUCCEEDED,
    Outcome.FAILED: ActionState.FAILED,
    Outcome.SKIPPED: ActionState.SKIPPED,
    Outcome.DRY_RUN: ActionState.DRY_RUN,
    Outcome.UNKNOWN: ActionState.UNKNOWN,
}


class EmitEvent(Protocol):
    """Post an Event on the policy (the loop's reporter)."""

    def __call__(self, *, type: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class PolicyInfo:
    namespace: str
    name: str
    uid: str | None = None


@dataclass(frozen=True, kw_only=True)
class TargetInfo:
    """The target workload as read this cycle."""

    found: bool
    uid: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    settled_at: float | None = None  # read at this time with its rollout complete (None: rolling out, or unknown)


@dataclass(kw_only=True)
class Remediator:
    """What the runner needs from outside; one per operator, shared by every policy loop."""

    store: IncidentStore
    actions: Mapping[Action, ActionFn]
    scale_back: ScaleBackFn | None = None
    escalation_notice: ActionFn | None = None  # notify on escalation (default: the notify action)
    workload_api: Any = None  # playbooks.kube.WorkloadApi, handed to actions as ctx.api
    slots: RemediationSlots = field(default_factory=lambda: RemediationSlots(5))
    metrics: OperatorMetrics | None = None
    operator_dry_run: bool = False
    clock: Callable[[], float] = time.time
    claim_targets: bool = True  # write the claim on the workload before each action (playbooks/claims.py)


@dataclass
class CycleReport:
    active_incident: str | None = None
    decisions: list[Decision] = field(default_factory=list)


Feedback = Callable[[IncidentView], int]
"""Applies an incident's false-positive verdict to the detectors of its series; returns how many."""


def slot_key(namespace: str, policy: str, incident: str) -> str:
    """The concurrent-remediation slot of an incident (`release_prefix(f"{ns}/{policy}/")` frees a policy's)."""
    return f"{namespace}/{policy}/{incident}"


# --- status editing helpers -------------------------------------------------------------------------


def _note(status: IncidentStatus, now: float, event: str, message: str = "") -> None:
    status.timeline.append(TimelineEntry(time=format_time(now), event=event, phase=status.phase, message=message))
    if len(status.timeline) > MAX_TIMELINE:  # keep the opening entry, drop the oldest after it
        del status.timeline[1 : len(status.timeline) - MAX_TIMELINE + 1]


def _enter(status: IncidentStatus, phase: IncidentPhase, now: float) -> bool:
    if status.phase == phase:
        return False
    status.phase = phase
    status.phase_since = format_time(now)
    return True


def _record(status: IncidentStatus, key: str) -> ActionRecord | None:
    return next((r for r in status.actions if r.key == key), None)


def _latest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _summary(view: IncidentView, policy: PolicyInfo, what: str) -> str:
    parts = []
    for series in view.spec.involved[:3]:
        observed = f"{series.observed:.4g}" if series.observed is not None else "?"
        expected = f", expected {series.expected:.4g}" if series.expected is not None else ""
        parts.append(f"{series.signal}{series_label(series.labels)} {observed}{expected}")
    target = f"{view.spec.target.kind} {policy.namespace}/{view.spec.target.name}"
    return f"{what} — {target}: {'; '.join(parts) or view.spec.signal} (incident {view.name}, policy {policy.name})"


# --- the runner -----------------------------------------------------------------------------------------


class _Cycle:
    """One call of `remediate`: the views read this cycle, updated as they are written."""

    def __init__(self, *, policy: PolicyInfo, spec: PolicySpec, obs: Observations, target: TargetInfo,
                 deps: Remediator, feedback: Feedback | None, emit: EmitEvent | None,
                 incidents: list[IncidentView], fresh_until: float | None = None) -> None:
        self.policy = policy
        self.spec = spec
        self.obs = obs
        self.target = target
        self.deps = deps
        self.feedback = feedback
        self.emit = emit
        self.all = incidents
        self.fresh_until = fresh_until
        self.report = CycleReport()
        self.waiting = False  # a handler found that the decision must wait for the next cycle

    # -- views ---------------------------------------------------------------------------------------

    @property
    def mine(self) -> list[IncidentView]:
        return [i for i in self.all if i.spec.policy == self.policy.name]

    @property
    def on_target(self) -> list[IncidentView]:
        return [i for i in self.all if i.spec.target == self.spec.target]

    def view(self, name: str | None) -> IncidentView:
        found = next((i for i in self.all if i.name == name), None)
        if found is None:
            raise LookupError(f"Incident {name!r} not among those read this cycle")
        return found

    def _replace(self, view: IncidentView) -> IncidentView:
        self.all = [view if i.name == view.name else i for i in self.all]
        if not any(i.name == view.name for i in self.all):
            self.all.append(view)
        return view

    def slot_key(self, name: str) -> str:
        return slot_key(self.policy.namespace, self.policy.name, name)

    def facts(self, now: float) -> GuardFacts:
        spec = self.spec
        dry_run = spec.playbook.dry_run or self.deps.operator_dry_run
        latest = newest(self.mine)
        slots = self.deps.slots
        target_statuses = [i.status for i in self.on_target]
        return GuardFacts(
            now=now,
            target_found=self.target.found,
            target_paused=guards.paused(dict(self.target.annotations)),
            suspended=spec.playbook.suspend,
            policy_dry_run=spec.playbook.dry_run,
            operator_dry_run=self.deps.operator_dry_run,
            cooldown=parse_duration(spec.playbook.cooldown),
            max_actions_per_hour=spec.playbook.max_actions_per_hour,
            last_action_on_target=_latest(guards.last_action(target_statuses, dry_run=dry_run),
                                          None if dry_run else claims.claimed_at(self.target.annotations)),
            actions_in_last_hour=guards.actions_since([i.status for i in self.mine], since=now - HOUR,
                                                      dry_run=dry_run),
            slot_available=latest is None or slots.available(self.slot_key(latest.name)),
            slots_in_use=slots.in_use,
            max_concurrent=slots.limit,
            target_settled_at=self.target.settled_at,
            hold=guards.standing_hold(
                [(i.name, i.status, dict(i.annotations)) for i in self.on_target], now=now,
                exclude=latest.name if latest is not None else None,
            ),
        )

    def sync_slots(self) -> None:
        """An incident holds a slot while Remediating or Verifying (taken back after a restart); the
        policy's other slots are freed, those of deleted Incidents too (`RemediationSlots.reconcile`)."""
        self.deps.slots.reconcile(self.slot_key(""), {
            self.slot_key(i.name) for i in self.mine if i.status.phase in (IncidentPhase.REMEDIATING,
                                                                            IncidentPhase.VERIFYING)})
        if self.deps.metrics is not None:
            self.deps.metrics.remediations_active.set(self.deps.slots.in_use)

    # -- output ----------------------------------------------------------------------------------------

    def target_ref(self) -> ObjectRef:
        return ObjectRef(api_version="apps/v1", kind=self.spec.target.kind, name=self.spec.target.name,
                         namespace=self.policy.namespace, uid=self.target.uid)

    async def tell(self, view: IncidentView, *, type: str, reason: str, message: str, now: float,
                   target: bool = False, policy: bool = False) -> None:
        """Events on the Incident, and on the target workload and the policy when asked."""
        await self.deps.store.post_event(about=incident_ref(view), type=type, reason=reason, message=message, now=now)
        if target and self.target.found:
            await self.deps.store.post_event(about=self.target_ref(), type=type, reason=reason,
                                             message=f"{message} (incident {view.name})", now=now)
        if policy and self.emit is not None:
            self.emit(type=type, reason=reason, message=f"{view.name}: {message}")

    def count_phase(self, phase: IncidentPhase | str) -> None:
        if self.deps.metrics is not None:
            self.deps.metrics.incidents.labels(str(phase)).inc()

    def count_action(self, action: Action | str, state: ActionState | str) -> None:
        if self.deps.metrics is not None:
            self.deps.metrics.actions.labels(str(action), str(state)).inc()

    async def write(self, view: IncidentView, mutate: Callable[[IncidentStatus], None]) -> IncidentView:
        status = view.status.model_copy(deep=True)
        mutate(status)
        written = await self.deps.store.write_status(view, status)
        return self._replace(written)

    # -- carrying out decisions ------------------------------------------------------------------------

    async def run(self) -> CycleReport:
        for _ in range(MAX_DECISIONS_PER_CYCLE):
            now = self.deps.clock()
            self.sync_slots()
            if self.fresh_until is not None and now > self.fresh_until:  # the API was slow: decide next cycle
                logger.info("%s/%s: observations %.1fs old, not decided on", self.policy.namespace, self.policy.name,
                            now - self.obs.at)
                break
            for incident in self.mine:  # re-apply fed-back verdicts to detectors rebuilt since (restart, edit)
                if incident.status.feedback == guards.FALSE_POSITIVE and self.feedback is not None:
                    self.feedback(incident)
            latest = newest(self.mine)
            target_open = next((i.name for i in self.on_target if is_open(i, now=now)), None)
            decision = decide(
                incidents=self.mine, obs=self.obs, policy=self.spec, facts=self.facts(now), now=now,
                holds_slot=latest is not None and self.deps.slots.holds(self.slot_key(latest.name)),
                target_incident=target_open,
            )
            self.report.decisions.append(decision)
            logger.debug("%s/%s: %s %s", self.policy.namespace, self.policy.name, decision.kind, decision.message)
            if decision.kind in (Kind.IDLE, Kind.WAIT):
                break
            handler = getattr(self, f"_on_{decision.kind.name.lower()}")
            await handler(decision, now)
            if decision.kind in (Kind.HOLD, Kind.INCONCLUSIVE) or self.waiting:
                break
        self.sync_slots()
        now = self.deps.clock()
        latest = newest(self.mine)
        self.report.active_incident = latest.name if latest is not None and is_open(latest, now=now) else None
        return self.report

    async def _on_open(self, d: Decision, now: float) -> None:
        involved = list(d.involved)
        spec = IncidentSpec(
            policy=self.policy.name, target=self.spec.target, detected_at=format_time(now),
            anomaly_started_at=format_time(d.anomaly_started_at) if d.anomaly_started_at else None,
            signal=d.signal or self.spec.signals[0].name, involved=involved,
        )
        status = IncidentStatus(phase=IncidentPhase.DETECTED, phase_since=format_time(now))
        view = IncidentView(name="", spec=spec, status=status, namespace=self.policy.namespace)
        message = _summary(view, self.policy, "anomaly confirmed").split(" (incident")[0]
        _note(status, now, "Detected", message)
        created = await self.deps.store.create(
            namespace=self.policy.namespace, policy=self.policy.name, policy_uid=self.policy.uid,
            spec=spec, status=status, now=now,
        )
        self._replace(created)
        self.count_phase(IncidentPhase.DETECTED)
        await self.tell(created, type="Warning", reason="IncidentOpened", message=message, now=now,
                        target=True, policy=True)

    async def _on_reopen(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)

        def mutate(s: IncidentStatus) -> None:
            helped = any(r.step == s.current_step and r.purpose == ActionPurpose.STEP
                         and r.state in (ActionState.SUCCEEDED, ActionState.DRY_RUN) for r in s.actions)
            if helped:  # it came back after this step: go on with the next one
                s.current_step += 1
            _enter(s, IncidentPhase.DETECTED, now)
            s.reopened += 1
            s.resolved_at = None
            s.verify_until = None
            s.landed_at = None
            s.waiting = None
            s.waiting_since = None
            s.message = d.message
            _note(s, now, "Reopened", d.message)

        view = await self.write(view, mutate)
        self.count_phase(IncidentPhase.DETECTED)
        await self.tell(view, type="Warning", reason="IncidentReopened", message=d.message, now=now,
                        target=True, policy=True)

    async def _on_involve(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        written = await self.deps.store.write_involved(view, [*view.spec.involved, *d.involved])
        written = self._replace(written)
        await self.write(written, lambda s: _note(s, now, "SeriesInvolved", d.message))

    async def _on_skip_step(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        assert d.step is not None and d.key is not None
        step = self.spec.playbook.steps[d.step]

        def mutate(s: IncidentStatus) -> None:
            s.actions.append(ActionRecord(
                key=d.key or "", step=d.step or 0, action=step.action, state=ActionState.SKIPPED,
                started_at=format_time(now), finished_at=format_time(now), message=d.message,
            ))
            s.current_step = (d.step or 0) + 1
            s.last_action = f"{step.action} Skipped"
            s.waiting = None
            s.waiting_since = None
            _note(s, now, "StepSkipped", f"step {(d.step or 0) + 1} {step.action}: {d.message}")

        view = await self.write(view, mutate)
        self.count_action(step.action, ActionState.SKIPPED)
        await self.tell(view, type="Normal", reason="ActionSkipped",
                        message=f"step {d.step + 1} {step.action} skipped: {d.message}", now=now, target=True)

    async def _on_hold(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        waiting = f"{d.code}: {d.denial.message if d.denial else d.message}"
        if view.status.waiting is not None and view.status.waiting.split(":")[0] == d.code:
            return  # said already; not every cycle

        def mutate(s: IncidentStatus) -> None:
            s.waiting = waiting
            s.waiting_since = format_time(now)
            _note(s, now, "ActionHeld", d.message)

        view = await self.write(view, mutate)
        await self.tell(view, type="Normal", reason="ActionSkipped", message=d.message, now=now, target=True)

    async def _on_inconclusive(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        if view.status.waiting is not None and view.status.waiting.split(":")[0] == d.code:
            return

        def mutate(s: IncidentStatus) -> None:
            s.waiting = f"{d.code}: {d.message}"
            s.waiting_since = format_time(now)
            _note(s, now, "Inconclusive", d.message)

        view = await self.write(view, mutate)
        await self.tell(view, type="Warning", reason="Inconclusive", message=d.message, now=now)

    async def _on_resolve(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)

        def mutate(s: IncidentStatus) -> None:
            _enter(s, IncidentPhase.RESOLVED, now)
            s.resolved_at = format_time(now)
            s.verify_until = None
            s.landed_at = None
            s.waiting = None
            s.waiting_since = None
            s.message = d.message
            _note(s, now, "Resolved", d.message)

        view = await self.write(view, mutate)
        self.deps.slots.release(self.slot_key(view.name))
        self.count_phase(IncidentPhase.RESOLVED)
        await self.tell(view, type="Normal", reason="IncidentResolved", message=d.message, now=now,
                        target=True, policy=True)

    async def _on_next_step(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)

        def mutate(s: IncidentStatus) -> None:
            s.current_step += 1
            _enter(s, IncidentPhase.REMEDIATING, now)
            s.verify_until = None
            s.landed_at = None
            s.waiting = None
            s.waiting_since = None
            _note(s, now, "NotRecovered", d.message)

        before = view.status.phase
        view = await self.write(view, mutate)
        if view.status.phase != before:
            self.count_phase(view.status.phase)
        await self.tell(view, type="Warning", reason="NotRecovered", message=d.message, now=now)

    async def _on_escalate(self, d: Decision, now: float) -> None:
        await self._escalate(d, now, IncidentPhase.ESCALATED)

    async def _on_fail(self, d: Decision, now: float) -> None:
        await self._escalate(d, now, IncidentPhase.FAILED)

    async def _escalate(self, d: Decision, now: float, phase: IncidentPhase) -> None:
        view = self.view(d.incident)
        hold = parse_duration(self.spec.playbook.escalation_hold)
        notify = escalation_step(self.spec)
        dry_run = self.spec.playbook.dry_run or self.deps.operator_dry_run
        key = None
        if notify is not None:
            attempts = sum(1 for r in view.status.actions if r.purpose == ActionPurpose.ESCALATION)
            key = f"{view.name}/escalation/{attempts + 1}"
        hold_note = (f"no action on {self.spec.target.kind} {self.spec.target.name} until "
                     f"{format_time(now + hold, round_up=True)} or until this Incident is annotated "
                     f"{guards.CLEARED_ANNOTATION}=true")

        def mutate(s: IncidentStatus) -> None:
            _enter(s, phase, now)
            s.hold_until = format_time(now + hold, round_up=True)
            s.hold_released = None
            s.back_in_band_since = None
            s.verify_until = None
            s.landed_at = None
            s.waiting = None
            s.waiting_since = None
            s.message = f"{d.message}; {hold_note}"
            _note(s, now, str(phase), s.message)
            if key is not None and notify is not None and not dry_run:
                s.actions.append(ActionRecord(
                    key=key, step=notify, action=Action.NOTIFY, state=ActionState.INTENDED,
                    started_at=format_time(now), purpose=ActionPurpose.ESCALATION,
                ))

        view = await self.write(view, mutate)
        self.deps.slots.release(self.slot_key(view.name))
        self.count_phase(phase)
        await self.tell(view, type="Warning", reason=f"Incident{phase}", message=f"{d.message}; {hold_note}",
                        now=now, target=True, policy=True)
        if key is not None and notify is not None:
            await self._perform(view, step_index=notify, key=key, purpose=ActionPurpose.ESCALATION,
                                dry_run=dry_run, now=now)

    async def _on_landed(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        assert d.at is not None and d.until is not None
        if d.confirm_rollout and not await self._old_pods_gone():
            self.waiting = True  # decided again next cycle
            return

        def mutate(s: IncidentStatus) -> None:
            s.landed_at = format_time(d.at or now)
            s.verify_until = format_time(d.until or now, round_up=True)
            s.waiting = None
            s.waiting_since = None
            _note(s, now, "ActionLanded", d.message)

        await self.write(view, mutate)

    async def _old_pods_gone(self) -> bool:
        """No pod of the target is terminating and there are no more pods than replicas: an old
        revision's pod that still serves keeps its series in every rate window (Prometheus' `rate`
        of a series present for part of a window is its rate over that part, not diluted)."""
        api = self.deps.workload_api
        if api is None:
            return True
        target = self.spec.target
        obj = await api.read_workload(namespace=self.policy.namespace, kind=target.kind, name=target.name)
        selector = (obj.get("spec") or {}).get("selector") or {}
        desired = (obj.get("spec") or {}).get("replicas", 1)
        pods = await api.list_pods(namespace=self.policy.namespace, selector=selector)
        return len(pods) <= desired and not any((p.get("metadata") or {}).get("deletionTimestamp") for p in pods)

    async def _on_back_in_band(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)

        def mutate(s: IncidentStatus) -> None:
            s.back_in_band_since = format_time(d.at) if d.at is not None else None

        await self.write(view, mutate)

    async def _on_recovered_after_escalation(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)

        def mutate(s: IncidentStatus) -> None:
            s.hold_released = format_time(now)
            s.message = d.message
            _note(s, now, "RecoveredAfterEscalation", d.message)

        view = await self.write(view, mutate)
        await self.tell(view, type="Normal", reason="RecoveredAfterEscalation", message=d.message, now=now,
                        target=True, policy=True)

    async def _on_release_hold(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)

        def mutate(s: IncidentStatus) -> None:
            s.hold_released = format_time(now)
            _note(s, now, "HoldReleased", d.message)

        view = await self.write(view, mutate)
        await self.tell(view, type="Normal", reason="HoldReleased", message=d.message, now=now, target=True,
                        policy=True)

    async def _on_false_positive(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        marked = self.feedback(view) if self.feedback is not None else 0
        message = (f"marked false positive: fed back to the detectors of {marked} of "
                   f"{len(view.spec.involved)} series (less sensitive to this pattern)")

        def mutate(s: IncidentStatus) -> None:
            s.feedback = guards.FALSE_POSITIVE
            if s.phase in (IncidentPhase.DETECTED, IncidentPhase.REMEDIATING, IncidentPhase.VERIFYING):
                _enter(s, IncidentPhase.RESOLVED, now)
                s.resolved_at = format_time(now)
                s.verify_until = None
                s.landed_at = None
                s.waiting = None
                s.waiting_since = None
                s.message = "closed: " + message
            elif s.phase in (IncidentPhase.ESCALATED, IncidentPhase.FAILED) and s.hold_released is None:
                s.hold_released = format_time(now)
            _note(s, now, "FalsePositive", message)

        before = view.status.phase
        view = await self.write(view, mutate)
        if self.deps.metrics is not None:  # counted once the verdict is recorded (a conflict retries it)
            self.deps.metrics.false_positives.inc()
        if view.status.phase != before:
            self.count_phase(view.status.phase)
            self.deps.slots.release(self.slot_key(view.name))
        await self.tell(view, type="Normal", reason="FalsePositive", message=message, now=now, policy=True)

    async def _on_act(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        assert d.step is not None and d.key is not None
        step = self.spec.playbook.steps[d.step]
        if not d.dry_run:
            if not self.deps.slots.try_acquire(self.slot_key(view.name)):
                return  # taken since the facts were gathered; the next cycle holds it properly
            try:
                refused = await self._claim(d.key, step.action, now)
            except BaseException:
                self.deps.slots.release(self.slot_key(view.name))
                raise
            if refused is not None:
                self.deps.slots.release(self.slot_key(view.name))
                denial = guards.Denial(guard=guards.Guard.CLAIMED, message=refused)
                await self._on_hold(Decision(kind=Kind.HOLD, incident=view.name, step=d.step, denial=denial,
                                             message=f"{step.action} (step {d.step + 1}) held: {denial}"), now)
                return

            def intend(s: IncidentStatus) -> None:
                _enter(s, IncidentPhase.REMEDIATING, now)
                s.current_step = d.step or 0
                s.waiting = None
                s.waiting_since = None
                s.last_action = f"{step.action} Intended"
                s.actions.append(ActionRecord(key=d.key or "", step=d.step or 0, action=step.action,
                                              state=ActionState.INTENDED, started_at=format_time(now)))
                _note(s, now, "ActionIntended", f"{d.message} ({d.key})")

            before = view.status.phase
            try:
                view = await self.write(view, intend)
            except BaseException:
                self.deps.slots.release(self.slot_key(view.name))
                raise
            if view.status.phase != before:
                self.count_phase(view.status.phase)
        await self._perform(view, step_index=d.step, key=d.key, purpose=ActionPurpose.STEP, dry_run=d.dry_run,
                            now=now)

    async def _claim(self, key: str, action: Action, now: float) -> str | None:
        """Claim the target for a workload action (`playbooks/claims.py`); why not, when another came first."""
        if not guards.changes_workload(action) or self.deps.workload_api is None or not self.deps.claim_targets:
            return None
        claim_key = f"{self.policy.namespace}/{key}"
        cooldown = parse_duration(self.spec.playbook.cooldown)
        refused: str | None = await self.deps.workload_api.claim(
            namespace=self.policy.namespace, kind=self.spec.target.kind, name=self.spec.target.name,
            annotation=claims.CLAIM, value=claims.claim_value(key=claim_key, now=now),
            refuse=lambda notes: claims.refusal(notes, key=claim_key, now=now, cooldown=cooldown))
        return refused

    async def _on_resume(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        assert d.step is not None and d.key is not None
        steps = self.spec.playbook.steps
        record = _record(view.status, d.key)
        assert record is not None
        if d.purpose == ActionPurpose.STEP:
            self.deps.slots.hold(self.slot_key(view.name))
        if not (0 <= d.step < len(steps)) or steps[d.step].action != record.action:
            await self._on_abandon(Decision(
                kind=Kind.ABANDON, incident=d.incident, step=d.step, key=d.key, purpose=d.purpose,
                message=f"interrupted {record.action} not resumed: the playbook changed since; it may or may "
                        "not have been applied before the interruption"), now)
            return
        await self.tell(view, type="Normal", reason="ActionResumed", message=d.message, now=now)
        await self._perform(view, step_index=d.step, key=d.key, purpose=d.purpose, dry_run=False, now=now)

    async def _on_abandon(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)

        def mutate(s: IncidentStatus) -> None:
            record = _record(s, d.key or "")
            if record is not None:
                record.state = ActionState.SKIPPED
                record.finished_at = format_time(now)
                record.message = d.message
                s.last_action = f"{record.action} Skipped"
            _note(s, now, "ActionAbandoned", d.message)

        view = await self.write(view, mutate)
        await self.tell(view, type="Warning", reason="ActionSkipped", message=d.message, now=now, target=True)

    async def _on_scale_back(self, d: Decision, now: float) -> None:
        view = self.view(d.incident)
        assert d.step is not None and d.key is not None
        if self.deps.scale_back is None:
            return
        if not d.dry_run:
            def intend(s: IncidentStatus) -> None:
                s.waiting = None
                s.waiting_since = None
                s.actions.append(ActionRecord(key=d.key or "", step=d.step or 0, action=Action.SCALE_OUT,
                                              state=ActionState.INTENDED, started_at=format_time(now),
                                              purpose=ActionPurpose.SCALE_BACK))
                _note(s, now, "ScaleBackIntended", f"{d.message} ({d.key})")

            view = await self.write(view, intend)
        await self._perform(view, step_index=d.step, key=d.key, purpose=ActionPurpose.SCALE_BACK,
                            dry_run=d.dry_run, now=now)

    # -- the action call and its outcome ---------------------------------------------------------------

    async def _perform(self, view: IncidentView, *, step_index: int, key: str, purpose: ActionPurpose,
                       dry_run: bool, now: float) -> None:
        step = self.spec.playbook.steps[step_index]
        what = {ActionPurpose.STEP: f"step {step_index + 1} {step.action}",
                ActionPurpose.ESCALATION: "escalation notice",
                ActionPurpose.SCALE_BACK: f"scale-back of step {step_index + 1}"}[purpose]
        perform: ActionFn | None
        if purpose == ActionPurpose.SCALE_BACK and self.deps.scale_back is not None:
            scale_back, resolved_at = self.deps.scale_back, parse_time(view.status.resolved_at or view.spec.detected_at)

            async def perform(ctx: ActionContext) -> ActionResult:
                return await scale_back(ctx, resolved_at=resolved_at, now=self.deps.clock())
        elif purpose == ActionPurpose.ESCALATION:
            perform = self.deps.escalation_notice or self.deps.actions.get(Action.NOTIFY)
        else:
            perform = self.deps.actions.get(step.action)
        ctx = ActionContext(
            api=self.deps.workload_api, namespace=self.policy.namespace, policy=self.policy.name,
            incident=view.name, target=view.spec.target, step=step, step_index=step_index, key=key,
            involved=list(view.spec.involved),
            anomaly_started_at=parse_time(view.spec.anomaly_started_at or view.spec.detected_at),
            dry_run=dry_run, summary=_summary(view, self.policy, "escalated: a human is needed"
                                               if purpose == ActionPurpose.ESCALATION else what),
        )
        if perform is None:
            result = ActionResult(outcome=Outcome.FAILED, message=f"no implementation of {step.action}")
        else:
            try:
                result = await perform(ctx)
            except Exception as exc:  # an action must not take the loop down; its intent stays recorded
                logger.exception("%s of incident %s raised", what, view.name)
                result = ActionResult(outcome=Outcome.FAILED, message=f"{type(exc).__name__}: {exc}")
        if dry_run and result.outcome == Outcome.SUCCEEDED:  # an action must never write in dry run
            result = ActionResult(outcome=Outcome.DRY_RUN, message=result.message, changes=result.changes)
        state = _STATE_OF[Outcome(result.outcome)]
        done = self.deps.clock()
        message = result.message  # what changed is in it ("replicas 2 -> 3"); `changes` is for the actions' own use

        def outcome(s: IncidentStatus) -> None:
            record = _record(s, key)
            if record is None:
                action = Action.SCALE_OUT if purpose == ActionPurpose.SCALE_BACK else step.action
                record = ActionRecord(key=key, step=step_index, action=action, state=state,
                                      started_at=format_time(now), purpose=purpose)
                s.actions.append(record)
            record.state = state
            record.finished_at = format_time(done)
            record.message = message
            record.dry_run = dry_run
            label = "scale-back" if purpose == ActionPurpose.SCALE_BACK else str(record.action)
            s.last_action = f"{label} {state}"
            if purpose == ActionPurpose.STEP:
                s.current_step = step_index
                if state in (ActionState.SUCCEEDED, ActionState.DRY_RUN):
                    _enter(s, IncidentPhase.VERIFYING, done)  # the window starts when the action lands
                    s.verify_until = None
                    s.landed_at = None
                else:  # failed, did not apply or unknown (the cooldown paces that): on with the next step
                    _enter(s, IncidentPhase.REMEDIATING, done)
                    s.current_step = step_index + 1
                    s.verify_until = None
                    s.landed_at = None
            _note(s, done, f"Action{state}", f"{what}: {message}")

        before = view.status.phase
        view = await self.write(view, outcome)
        self.count_action("scale-back" if purpose == ActionPurpose.SCALE_BACK else step.action, state)
        if view.status.phase != before:
            self.count_phase(view.status.phase)
        warn = state in (ActionState.FAILED, ActionState.UNKNOWN)
        event_type = "Warning" if warn else "Normal"
        await self.tell(view, type=event_type, reason=f"Action{state}", message=f"{what}: {message}", now=done,
                        target=True, policy=purpose != ActionPurpose.STEP or warn)


async def remediate(
    *,
    policy: PolicyInfo,
    spec: PolicySpec,
    obs: Observations,
    target: TargetInfo,
    deps: Remediator,
    feedback: Feedback | None = None,
    emit: EmitEvent | None = None,
    fresh_until: float | None = None,
) -> CycleReport:
    """One cycle of remediation for one policy; see the module docstring.

    Nothing is decided after `fresh_until` (by `deps.clock`): when reading or writing the Incidents
    took that long, `obs` may no longer be true, and the next cycle decides on fresh observations.

    Raises the API's errors (after retries) and `Conflict`; the caller logs them and tries again
    next cycle, when the Incidents are read afresh.
    """
    incidents = await deps.store.list_all(policy.namespace)
    cycle = _Cycle(policy=policy, spec=spec, obs=obs, target=target, deps=deps, feedback=feedback, emit=emit,
                   incidents=incidents, fresh_until=fresh_until)
    try:
        return await cycle.run()
    except Conflict as exc:
        logger.info("%s/%s: %s; deciding again next cycle", policy.namespace, policy.name, exc)
        latest = newest(cycle.mine)
        now = deps.clock()
        cycle.report.active_incident = latest.name if latest is not None and is_open(latest, now=now) else None
        return cycle.report

