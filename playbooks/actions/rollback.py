"""rollback: back to the previous revision, the way `kubectl rollout undo` does it.

Deployment: the ReplicaSet with the highest `deployment.kubernetes.io/revision` below the
current one; its template, without `pod-template-hash`, replaces the Deployment's, so the
controller reuses that ReplicaSet and stamps it with the next revision. StatefulSet: the
ControllerRevision before the current `updateRevision`, its template likewise.

Only when a previous revision exists, and only when the anomaly began within `rollback.within`
after the latest rollout: rolling back an old, good release because a dependency failed is the
classic wrong move. The key goes on the workload (`homeostat.dev/rolled-back-by`), in the same
write as the template, and not on the template itself: the template must equal the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeostat.api.durations import format_duration, parse_duration
from homeostat.api.policy import RollbackParams, WorkloadKind
from homeostat.playbooks.actions.common import (
    ROLLED_BACK_BY,
    already_done,
    api_failures,
    is_paused,
    notes_of,
    parse_time,
    paused,
    read_target,
    result,
    where,
)
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True, kw_only=True)
class Revision:
    number: int
    name: str  # the ReplicaSet or ControllerRevision
    created: float  # unix seconds: when this revision was rolled out
    template: dict[str, Any]  # as it goes back into the workload


def _replicaset_revision(rs: dict[str, Any]) -> Revision:
    template = dict(rs["spec"]["template"])
    meta = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    template["metadata"] = {**meta, "labels": labels}
    return Revision(number=int(notes_of(rs).get(REVISION, "0")), name=rs["metadata"]["name"],
                    created=parse_time(rs["metadata"]["creationTimestamp"]), template=template)


def _controller_revision(cr: dict[str, Any]) -> Revision:
    stored = (cr.get("data") or {}).get("spec", {}).get("template") or {}
    template = {k: v for k, v in stored.items() if k != "$patch"}  # kept as a strategic-merge "replace"
    return Revision(number=int(cr.get("revision", 0)), name=cr["metadata"]["name"],
                    created=parse_time(cr["metadata"]["creationTimestamp"]), template=template)


async def revisions(ctx: ActionContext, obj: dict[str, Any]) -> tuple[Revision | None, Revision | None]:
    """The current revision of the workload, and the one before it (None when there is none)."""
    if ctx.target.kind == WorkloadKind.DEPLOYMENT:
        found = [_replicaset_revision(rs) for rs in await ctx.api.list_replicasets(namespace=ctx.namespace, owner=obj)]
        current_number = int(notes_of(obj).get(REVISION, "0")) or max((r.number for r in found), default=0)
    else:
        found = [_controller_revision(cr)
                 for cr in await ctx.api.list_controller_revisions(namespace=ctx.namespace, owner=obj)]
        update = (obj.get("status") or {}).get("updateRevision")
        named = [r.number for r in found if r.name == update]
        current_number = named[0] if named else max((r.number for r in found), default=0)
    current = next((r for r in found if r.number == current_number), None)
    older = [r for r in found if r.number < current_number]
    return current, max(older, key=lambda r: r.number, default=None)


@api_failures
async def perform(ctx: ActionContext) -> ActionResult:
    params = ctx.step.rollback or RollbackParams()
    obj = await read_target(ctx)
    if is_paused(obj):
        return paused(ctx)
    if notes_of(obj).get(ROLLED_BACK_BY) == ctx.key:
        return already_done(ctx, f"rollback of {where(ctx)}")
    if obj["spec"].get("paused"):
        return result(Outcome.SKIPPED, f"{where(ctx)} has its rollout paused (spec.paused): kubectl refuses too")
    current, previous = await revisions(ctx, obj)
    if current is None or previous is None:
        return result(Outcome.SKIPPED, f"{where(ctx)} has no previous revision to roll back to")
    if current.template != obj["spec"]["template"]:
        return result(Outcome.SKIPPED, f"{where(ctx)} is being rolled out (its template is not revision "
                      f"{current.number} yet): not rolling back from under it")
    within, since = parse_duration(params.within), ctx.anomaly_started_at - current.created
    if since < 0:
        return result(Outcome.SKIPPED, f"the anomaly began before the latest rollout of {where(ctx)} "
                      f"(revision {current.number}): that rollout did not cause it")
    if since > within:
        return result(Outcome.SKIPPED, f"the anomaly began {format_duration(since)} after the latest rollout of "
                      f"{where(ctx)} (revision {current.number}), more than rollback.within {params.within}: "
                      "not blaming an old release")
    change = {"revision": [current.number, previous.number], "from": current.name, "to": previous.name}
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would roll {where(ctx)} back from revision {current.number} to "
                      f"{previous.number} ({previous.name})", **change)
    written = await ctx.api.replace_pod_template(
        namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name, template=previous.template,
        annotations={ROLLED_BACK_BY: ctx.key}, expect_template=obj["spec"]["template"])
    if written is None:
        return result(Outcome.SKIPPED, f"{where(ctx)} was rolled out again while rolling back: left as it is now",
                      **change)
    return result(Outcome.SUCCEEDED, f"rolled {where(ctx)} back from revision {current.number} to "
                  f"{previous.number} ({previous.name})", **change)
