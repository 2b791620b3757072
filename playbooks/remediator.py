"""What the runner needs from outside, and the operator's remediator built from it.

A `Remediator` holds the dependencies of every remediation cycle (`runner.remediate`): the
Incident store, the actions, the operator-wide slots, the clock. There is one per operator,
shared by every policy loop. What playbooks asks of the operator is said here by two small
protocols, so that playbooks never imports it: `Fence`, checked before every action and every
Incident write (with leader election, `operator.leadership.Leadership`), and `RemediationMetrics`,
what the runner counts (`operator.metrics.OperatorMetrics`). `operator_remediator` is the one the
operator runs: the real actions, over the API it is given, behind its fence.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from homeostat.api.hosts import HostAllowList
from homeostat.api.policy import Action
from homeostat.playbooks.actions import ACTIONS, notify, scale_out
from homeostat.playbooks.base import ActionContext, ActionResult
from homeostat.playbooks.guards import RemediationSlots
from homeostat.playbooks.incidents import IncidentStore
from homeostat.playbooks.kube import WorkloadApi

ActionFn = Callable[[ActionContext], Awaitable[ActionResult]]


class ScaleBackFn(Protocol):
    """`scale_out.scale_back`: undo a step's scale-out once resolved and quiet."""

    def __call__(self, ctx: ActionContext, *, resolved_at: float, now: float) -> Awaitable[ActionResult]: ...


class Fence(Protocol):
    """Whether this process may act now.

    `check` returns when it may and raises when it may not: a `BaseException`, so that it passes
    through the runner's `except Exception` (which would record a failed action) up to the
    policy loop, which drops the cycle. An action's intent is on its Incident already; whoever
    acts next resumes it by its key."""

    def check(self) -> None: ...


class RemediationMetrics(Protocol):
    """What the runner counts."""

    def count_incident_phase(self, phase: str) -> None:
        """An Incident entered `phase` (Detected counts openings and reopenings)."""

    def count_action(self, action: str, outcome: str) -> None:
        """An action (or `scale-back`) finished with `outcome` (an `ActionState`)."""

    def count_false_positive(self) -> None:
        """A false-positive verdict was recorded on an Incident."""

    def set_remediations_in_progress(self, count: int) -> None:
        """How many Incidents hold a concurrent-remediation slot."""


@dataclass(kw_only=True)
class Remediator:
    """What the runner needs from outside; one per operator, shared by every policy loop."""

    store: IncidentStore
    actions: Mapping[Action, ActionFn]
    scale_back: ScaleBackFn | None = None
    escalation_notice: ActionFn | None = None  # notify on escalation (default: the notify action)
    workload_api: WorkloadApi | None = None  # handed to actions as ctx.api
    slots: RemediationSlots = field(default_factory=lambda: RemediationSlots(5))
    metrics: RemediationMetrics | None = None
    fence: Fence | None = None  # checked before every action call and every Incident create or write
    operator_dry_run: bool = False
    clock: Callable[[], float] = time.time
    claim_targets: bool = True  # write the claim on the workload before each action (playbooks/claims.py)
    allowed_hosts: HostAllowList | None = None  # hosts a webhook URL may name (--allow-host); None: any


def operator_remediator(
    *,
    store: IncidentStore,
    workload_api: WorkloadApi,
    max_concurrent: int,
    metrics: RemediationMetrics,
    operator_dry_run: bool,
    fence: Fence | None,
    allowed_hosts: HostAllowList,
) -> Remediator:
    """The operator's remediator: every action of `playbooks.actions`, scale-back, and the notice
    sent on escalation; at most `max_concurrent` incidents remediated at once.

    With a fence (leader election), no action starts and no Incident is created or written unless
    it passes: a leader that stalled past its renew deadline must not open a second Incident (a
    create carries no resourceVersion) nor record an intent."""
    return Remediator(
        store=store,
        actions=ACTIONS,
        scale_back=scale_out.scale_back,
        escalation_notice=notify.escalation,
        workload_api=workload_api,
        slots=RemediationSlots(max_concurrent),
        metrics=metrics,
        fence=fence,
        operator_dry_run=operator_dry_run,
        allowed_hosts=allowed_hosts,
    )
