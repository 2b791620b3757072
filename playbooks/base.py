"""The contract between the incident runner and the actions it carries out.

An action is one module in `playbooks/actions/` with one coroutine, `perform(ctx)`. It must be
idempotent: before changing anything it checks, by the idempotency key `ctx.key`, whether the
change is already there (an operator restarted between the API call and recording the outcome
must not act twice), and it must never touch anything outside `ctx.namespace`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from homeostat.api.hosts import HostAllowList
from homeostat.api.incident import InvolvedSeries
from homeostat.api.policy import Step, TargetRef


class Outcome(enum.StrEnum):
    SUCCEEDED = "Succeeded"  # the change was made (or was found already made under this key)
    FAILED = "Failed"  # the API refused or the action could not complete; the message says why
    SKIPPED = "Skipped"  # the action did not apply (no previous revision, rollout too old, at max ...)
    DRY_RUN = "DryRun"  # dry run: what would have been done is in the message; nothing was written
    UNKNOWN = "Unknown"  # a write's answer was lost and could not be read back: it may have been applied


@dataclass(frozen=True, kw_only=True)
class ActionResult:
    outcome: Outcome
    message: str
    # What was changed, as data (e.g. {"replicas": [3, 5]}), for whoever calls the action directly
    # (the tests). The runner does not write it: `message` says what changed and goes to the timeline.
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ActionContext:
    """Everything an action may use; nothing else is reachable from it."""

    api: Any  # playbooks.kube.WorkloadApi: the Kubernetes calls actions make
    namespace: str  # the policy's namespace; an action never leaves it
    policy: str
    incident: str  # the Incident's name
    target: TargetRef
    step: Step
    step_index: int
    key: str  # idempotency key: "<incident>/<step index>/<attempt>"
    involved: list[InvolvedSeries]  # the series anomalous at detection (per-pod ones name their pod)
    anomaly_started_at: float  # unix seconds: when the first anomalous point of this incident was seen
    dry_run: bool
    summary: str  # one line for humans (notifications)
    allowed_hosts: HostAllowList | None = None  # hosts a webhook URL may name (api/hosts.py); None: any

