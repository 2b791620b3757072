"""restart: a rolling restart, the way `kubectl rollout restart` does it.

A new `kubectl.kubernetes.io/restartedAt` on the pod template makes the controller replace every
pod; the same strategic-merge patch stamps `homeostat.dev/action-key`, so finding our key on the
template means this restart was made already, and it is not made twice.
"""

from __future__ import annotations

from typing import Any

from homeostat.api.times import now_rfc3339
from homeostat.playbooks.actions.common import (
    ACTION_KEY,
    RESTARTED_AT,
    already_done,
    confirmed_by,
    is_paused,
    paused,
    read_target,
    result,
    where,
)
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome


def template_notes(obj: dict[str, Any]) -> dict[str, str]:
    notes: dict[str, str] = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("annotations") or {}
    return notes


async def landed(ctx: ActionContext, obj: dict[str, Any]) -> ActionResult | None:
    """After a lost answer: our key on the pod template is our restart, made."""
    notes = template_notes(obj)
    if notes.get(ACTION_KEY) != ctx.key:
        return None
    stamp = notes.get(RESTARTED_AT)
    return result(Outcome.SUCCEEDED, f"restarted {where(ctx)} (restartedAt {stamp}): its key is on the pod template",
                  restartedAt=stamp)


@confirmed_by(landed)
async def perform(ctx: ActionContext) -> ActionResult:
    obj = await read_target(ctx)
    if is_paused(obj):
        return paused(ctx)
    notes = template_notes(obj)
    if notes.get(ACTION_KEY) == ctx.key:
        return already_done(ctx, f"restart of {where(ctx)} (restartedAt {notes.get(RESTARTED_AT)})")
    if obj["spec"].get("paused"):  # kubectl refuses too: the new template would not roll out
        return result(Outcome.SKIPPED, f"{where(ctx)} has its rollout paused (spec.paused): a restart would not roll")
    stamp = now_rfc3339()
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would restart {where(ctx)}: pod-template annotation {RESTARTED_AT}={stamp}",
                      restartedAt=stamp)
    await ctx.api.patch_template_annotations(namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name,
                                             annotations={RESTARTED_AT: stamp, ACTION_KEY: ctx.key})
    return result(Outcome.SUCCEEDED, f"restarted {where(ctx)} (restartedAt {stamp})", restartedAt=stamp)
