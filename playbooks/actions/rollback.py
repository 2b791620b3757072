"""rollback: back to the previous release, the way `kubectl rollout undo` does it, but by content.

Deployment: a ReplicaSet (revision `deployment.kubernetes.io/revision`); its template, without
`pod-template-hash`, replaces the Deployment's, so the controller reuses that ReplicaSet and
stamps it with the next revision. StatefulSet: a ControllerRevision, its template likewise.

Which one: the newest revision below the current one whose template differs from the current
one in more than restart stamps (`kubectl rollout restart`'s `restartedAt`, our action key): a
restart makes a new revision of the same code, and going back to it changes nothing. And never
one this workload was already rolled back from: after a rollback the bad release is the
revision just below the current one, and a second rollback would go forward to it. The
templates rolled back from are remembered, as short content hashes, in the workload's
`homeostat.dev/rolled-back-from` annotation (the last 10).

Only when a previous revision exists, and only when the anomaly began within `rollback.within`
after the latest rollout: rolling back an old, good release because a dependency failed is the
classic wrong move. The key goes on the workload (`homeostat.dev/rolled-back-by`), in the same
write as the template, and not on the template itself: the template must equal the old one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from homeostat.api.durations import format_duration, parse_duration
from homeostat.api.policy import RollbackParams, WorkloadKind
from homeostat.api.times import parse_time
from homeostat.playbooks.actions.common import (
    ACTION_KEY,
    RESTARTED_AT,
    ROLLED_BACK_BY,
    already_done,
    confirmed_by,
    is_paused,
    marked_on_workload,
    notes_of,
    paused,
    read_target,
    result,
    where,
)
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
ROLLED_BACK_FROM = "homeostat.dev/rolled-back-from"  # on the workload: code hashes rolled back from, newest last
REMEMBERED = 10
RESTART_STAMPS = (RESTARTED_AT, ACTION_KEY)


def code_of(template: dict[str, Any]) -> str:
    """A short hash of what a template runs: everything but the restart stamps and the template hash."""
    meta = dict(template.get("metadata") or {})
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in RESTART_STAMPS}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    stripped = {**template, "metadata": {**meta, "annotations": notes, "labels": labels}}
    return hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).hexdigest()[:12]


def rolled_back_from(obj: dict[str, Any]) -> list[str]:
    return [c for c in notes_of(obj).get(ROLLED_BACK_FROM, "").split(",") if c]


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


async def revisions(ctx: ActionContext, obj: dict[str, Any]) -> tuple[Revision | None, Revision | None, str]:
    """The current revision, the one to go back to (None when there is none), and which were passed over."""
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
    if current is None:
        return None, None, ""
    running, bad = code_of(current.template), set(rolled_back_from(obj))
    passed: list[str] = []
    for older in sorted((r for r in found if r.number < current_number), key=lambda r: -r.number):
        code = code_of(older.template)
        if code == running:
            passed.append(f"revision {older.number} runs the same code (a restart)")
        elif code in bad:
            passed.append(f"revision {older.number} was rolled back from before")
        else:
            return current, older, "; ".join(passed)
    return current, None, "; ".join(passed)


@confirmed_by(marked_on_workload(ROLLED_BACK_BY, "rolled back"))  # the key and the template go in one write
async def perform(ctx: ActionContext) -> ActionResult:
    params = ctx.step.rollback or RollbackParams()
    obj = await read_target(ctx)
    if is_paused(obj):
        return paused(ctx)
    if notes_of(obj).get(ROLLED_BACK_BY) == ctx.key:
        return already_done(ctx, f"rollback of {where(ctx)}")
    if obj["spec"].get("paused"):
        return result(Outcome.SKIPPED, f"{where(ctx)} has its rollout paused (spec.paused): kubectl refuses too")
    current, previous, passed = await revisions(ctx, obj)
    if current is None or previous is None:
        return result(Outcome.SKIPPED, f"{where(ctx)} has no previous revision to roll back to"
                      + (f" ({passed})" if passed else ""))
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
    skipped = f"; passed over: {passed}" if passed else ""
    remembered = ",".join([*rolled_back_from(obj), code_of(current.template)][-REMEMBERED:])
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would roll {where(ctx)} back from revision {current.number} to "
                      f"{previous.number} ({previous.name}){skipped}", **change)
    written = await ctx.api.replace_pod_template(
        namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name, template=previous.template,
        annotations={ROLLED_BACK_BY: ctx.key, ROLLED_BACK_FROM: remembered}, expect_template=obj["spec"]["template"])
    if written is None:
        return result(Outcome.SKIPPED, f"{where(ctx)} was rolled out again while rolling back: left as it is now",
                      **change)
    return result(Outcome.SUCCEEDED, f"rolled {where(ctx)} back from revision {current.number} to "
                  f"{previous.number} ({previous.name}){skipped}", **change)
