"""The remediation actions, one module each, and `ACTIONS`: what the runner calls for a step.

Every action reads its workload in `ctx.namespace` only, refuses a workload annotated
`homeostat.dev/paused=true` (SKIPPED), writes nothing in a dry run (DRY_RUN, saying what it would
do), and is idempotent by `ctx.key`: it stamps the key on what it changes and, finding it there,
answers SUCCEEDED "already done" (finishing a change that an interrupted run left half made).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeostat.api.policy import Action
from homeostat.playbooks.actions import delete_pod, notify, restart, rollback, scale_out
from homeostat.playbooks.base import ActionContext, ActionResult

ACTIONS: dict[Action, Callable[[ActionContext], Awaitable[ActionResult]]] = {
    Action.RESTART: restart.perform,
    Action.SCALE_OUT: scale_out.perform,
    Action.ROLLBACK: rollback.perform,
    Action.DELETE_POD: delete_pod.perform,
    Action.NOTIFY: notify.perform,
}

__all__ = ["ACTIONS", "scale_out"]
