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

Here is the cycle: the Incidents read this cycle and kept up to date as they are written, the
guard facts, the writes and the Events. Each decision is carried out by its transition, found in
the table `transitions.TRANSITIONS`; actions are called, and their outcome written, by
`acting.perform`. What the runner needs from outside is a `remediator.Remediator`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from homeostat.api.durations import parse_duration
from homeostat.api.incident import ActionState, IncidentPhase, IncidentSpec, IncidentStatus, InvolvedSeries
from homeostat.api.policy import Action, PolicySpec
from homeostat.playbooks import claims, guards, transitions
from homeostat.playbooks.guards import GuardFacts
from homeostat.playbooks.incidents import Conflict, ObjectRef, incident_ref
from homeostat.playbooks.machine import Decision, IncidentView, Kind, Observations, decide, is_open, newest
from homeostat.playbooks.remediator import Remediator

logger = logging.getLogger(__name__)

MAX_DECISIONS_PER_CYCLE = 10


class EmitEvent(Protocol):
    """Post a Kubernetes Event about the policy (Kopf's `kopf.event` in production; the policy
    loop passes its reporter's)."""

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


@dataclass
class CycleReport:
    active_incident: str | None = None
    decisions: list[Decision] = field(default_factory=list)


Feedback = Callable[[IncidentView], int]
"""Applies an incident's false-positive verdict to the detectors of its series; returns how many."""


def slot_key(namespace: str, policy: str, incident: str) -> str:
    """The concurrent-remediation slot of an incident (`release_prefix(f"{ns}/{policy}/")` frees a policy's)."""
    return f"{namespace}/{policy}/{incident}"


def _latest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


class Cycle:
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
        self.waiting = False  # a transition found that the decision must wait for the next cycle

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
            actions_in_last_hour=guards.actions_since([i.status for i in self.mine], since=now - guards.HOUR,
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

    async def old_pods_gone(self) -> bool:
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

    def sync_slots(self) -> None:
        """An incident holds a slot while Remediating or Verifying (taken back after a restart); the
        policy's other slots are freed, those of deleted Incidents too (`RemediationSlots.reconcile`)."""
        self.deps.slots.reconcile(self.slot_key(""), {
            self.slot_key(i.name) for i in self.mine if i.status.phase in (IncidentPhase.REMEDIATING,
                                                                            IncidentPhase.VERIFYING)})
        if self.deps.metrics is not None:
            self.deps.metrics.set_remediations_in_progress(self.deps.slots.in_use)

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
            self.deps.metrics.count_incident_phase(str(phase))

    def count_action(self, action: Action | str, state: ActionState | str) -> None:
        if self.deps.metrics is not None:
            self.deps.metrics.count_action(str(action), str(state))

    def count_false_positive(self) -> None:
        if self.deps.metrics is not None:
            self.deps.metrics.count_false_positive()

    def fence(self) -> None:
        """Before every action call and every Incident create or write: raises unless this
        process may act now (`Remediator.fence`, leader election)."""
        if self.deps.fence is not None:
            self.deps.fence.check()

    async def create(self, *, spec: IncidentSpec, status: IncidentStatus, now: float) -> IncidentView:
        self.fence()
        created = await self.deps.store.create(
            namespace=self.policy.namespace, policy=self.policy.name, policy_uid=self.policy.uid,
            spec=spec, status=status, now=now,
        )
        return self._replace(created)

    async def write_involved(self, view: IncidentView, involved: list[InvolvedSeries]) -> IncidentView:
        self.fence()
        return self._replace(await self.deps.store.write_involved(view, involved))

    async def write(self, view: IncidentView, mutate: Callable[[IncidentStatus], None]) -> IncidentView:
        status = view.status.model_copy(deep=True)
        mutate(status)
        self.fence()
        written = await self.deps.store.write_status(view, status)
        return self._replace(written)

    # -- deciding and carrying out -----------------------------------------------------------------------

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
            if decision.kind in transitions.NOTHING_TO_DO:
                break
            await transitions.TRANSITIONS[decision.kind](self, decision, now)
            if decision.kind in (Kind.HOLD, Kind.INCONCLUSIVE) or self.waiting:
                break
        self.sync_slots()
        self.set_active_incident()
        return self.report

    def set_active_incident(self) -> None:
        """The report's `active_incident`: the policy's newest incident, while open."""
        latest = newest(self.mine)
        now = self.deps.clock()
        self.report.active_incident = latest.name if latest is not None and is_open(latest, now=now) else None


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
    cycle = Cycle(policy=policy, spec=spec, obs=obs, target=target, deps=deps, feedback=feedback, emit=emit,
                  incidents=incidents, fresh_until=fresh_until)
    try:
        return await cycle.run()
    except Conflict as exc:
        logger.info("%s/%s: %s; deciding again next cycle", policy.namespace, policy.name, exc)
        cycle.set_active_incident()
        return cycle.report
