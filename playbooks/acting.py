"""Calling an action and writing its outcome: steps 2 and 3 of the runner's order of writes.

The intent is on the Incident already (written by the transition that decided to act, or found
there after a restart); `perform` calls the action with its idempotency key and writes what came
of it. An action that raises is recorded as FAILED, never taken up to the loop; a success in a
dry run is recorded as DRY_RUN. `claim` writes, before a workload action, the claim that keeps
two decisions (two policies, two replicas) from acting on one workload in one cooldown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from homeostat.api.durations import parse_duration
from homeostat.api.incident import ActionPurpose, ActionRecord, ActionState, IncidentPhase, IncidentStatus
from homeostat.api.policy import Action
from homeostat.api.times import format_time, parse_time
from homeostat.playbooks import claims, guards, status_edits
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome
from homeostat.playbooks.machine import IncidentView
from homeostat.playbooks.remediator import ActionFn

if TYPE_CHECKING:
    from homeostat.playbooks.runner import Cycle

logger = logging.getLogger(__name__)

_STATE_OF = {
    Outcome.SUCCEEDED: ActionState.SUCCEEDED,
    Outcome.FAILED: ActionState.FAILED,
    Outcome.SKIPPED: ActionState.SKIPPED,
    Outcome.DRY_RUN: ActionState.DRY_RUN,
    Outcome.UNKNOWN: ActionState.UNKNOWN,
}


def _implementation(cycle: Cycle, view: IncidentView, *, action: Action,
                    purpose: ActionPurpose) -> ActionFn | None:
    """What to call: the step's action, the escalation notice, or the scale-back of a step."""
    deps = cycle.deps
    if purpose == ActionPurpose.SCALE_BACK and deps.scale_back is not None:
        scale_back, resolved_at = deps.scale_back, parse_time(view.status.resolved_at or view.spec.detected_at)

        async def perform(ctx: ActionContext) -> ActionResult:
            return await scale_back(ctx, resolved_at=resolved_at, now=deps.clock())

        return perform
    if purpose == ActionPurpose.ESCALATION:
        return deps.escalation_notice or deps.actions.get(Action.NOTIFY)
    return deps.actions.get(action)


async def perform(cycle: Cycle, view: IncidentView, *, step_index: int, key: str, purpose: ActionPurpose,
                  dry_run: bool, now: float) -> None:
    """Call the action of step `step_index` (for `purpose`) under `key`, then write its outcome."""
    step = cycle.spec.playbook.steps[step_index]
    what = {ActionPurpose.STEP: f"step {step_index + 1} {step.action}",
            ActionPurpose.ESCALATION: "escalation notice",
            ActionPurpose.SCALE_BACK: f"scale-back of step {step_index + 1}"}[purpose]
    implementation = _implementation(cycle, view, action=step.action, purpose=purpose)
    ctx = ActionContext(
        api=cycle.deps.workload_api, namespace=cycle.policy.namespace, policy=cycle.policy.name,
        incident=view.name, target=view.spec.target, step=step, step_index=step_index, key=key,
        involved=list(view.spec.involved),
        anomaly_started_at=parse_time(view.spec.anomaly_started_at or view.spec.detected_at),
        dry_run=dry_run, summary=status_edits.summary(
            view, namespace=cycle.policy.namespace, policy=cycle.policy.name,
            what="escalated: a human is needed" if purpose == ActionPurpose.ESCALATION else what),
        allowed_hosts=cycle.deps.allowed_hosts,
    )
    if implementation is None:
        result = ActionResult(outcome=Outcome.FAILED, message=f"no implementation of {step.action}")
    else:
        try:
            cycle.fence()  # raises past this `except` (a BaseException) when this process may not act
            result = await implementation(ctx)
        except Exception as exc:  # an action must not take the loop down; its intent stays recorded
            logger.exception("%s of incident %s raised", what, view.name)
            result = ActionResult(outcome=Outcome.FAILED, message=f"{type(exc).__name__}: {exc}")
    if dry_run and result.outcome == Outcome.SUCCEEDED:  # an action must never write in dry run
        result = ActionResult(outcome=Outcome.DRY_RUN, message=result.message, changes=result.changes)
    state = _STATE_OF[Outcome(result.outcome)]
    done = cycle.deps.clock()
    message = result.message  # what changed is in it ("replicas 2 -> 3"); `changes` is not written

    def outcome(s: IncidentStatus) -> None:
        record = status_edits.record_of(s, key)
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
                status_edits.enter(s, IncidentPhase.VERIFYING, done)  # the window starts when the action lands
            else:  # failed, did not apply or unknown (the cooldown paces that): on with the next step
                status_edits.enter(s, IncidentPhase.REMEDIATING, done)
                s.current_step = step_index + 1
            status_edits.clear_verification(s)
        status_edits.note(s, done, f"Action{state}", f"{what}: {message}")

    before = view.status.phase
    view = await cycle.write(view, outcome)
    cycle.count_action("scale-back" if purpose == ActionPurpose.SCALE_BACK else step.action, state)
    if view.status.phase != before:
        cycle.count_phase(view.status.phase)
    warn = state in (ActionState.FAILED, ActionState.UNKNOWN)
    await cycle.tell(view, type="Warning" if warn else "Normal", reason=f"Action{state}",
                     message=f"{what}: {message}", now=done, target=True,
                     policy=purpose != ActionPurpose.STEP or warn)


async def claim(cycle: Cycle, *, key: str, action: Action, now: float) -> str | None:
    """Claim the target for a workload action (`playbooks/claims.py`); why not, when another came first."""
    api = cycle.deps.workload_api
    if not guards.changes_workload(action) or api is None or not cycle.deps.claim_targets:
        return None
    claim_key = f"{cycle.policy.namespace}/{key}"
    cooldown = parse_duration(cycle.spec.playbook.cooldown)
    refused: str | None = await api.claim(
        namespace=cycle.policy.namespace, kind=cycle.spec.target.kind, name=cycle.spec.target.name,
        annotation=claims.CLAIM, value=claims.claim_value(key=claim_key, now=now),
        refuse=lambda notes: claims.refusal(notes, key=claim_key, now=now, cooldown=cooldown))
    return refused
