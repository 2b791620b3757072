"""delete-pod: delete the one pod whose own series is the most anomalous, and let it be replaced.

Needs per-pod signals: the candidates are the `pod` labels of `ctx.involved`, most anomalous
first, and only pods of the target workload (its selector, its ownership) qualify. Never more
than `deletePod.maxFraction` of the ready pods, and at least one ready pod remains. The key and
the pod (`<name>/<uid>`) are written on the workload before the deletion, which carries a uid
precondition: a run that finds its key finishes that deletion, and never deletes another pod.
"""

from __future__ import annotations

import math
from typing import Any

from homeostat.api.incident import InvolvedSeries
from homeostat.api.policy import DeletePodParams, WorkloadKind
from homeostat.playbooks.actions.common import (
    DELETED_POD,
    POD_DELETED_BY,
    already_done,
    confirmed_by,
    is_paused,
    notes_of,
    paused,
    read_target,
    result,
    where,
)
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome
from homeostat.playbooks.kube import owned_by


def anomaly(series: InvolvedSeries) -> float:
    """How anomalous a series was: the detector's score, else how far outside its band it was."""
    if series.score is not None:
        return series.score
    if series.observed is None or series.expected is None:
        return 0.0
    width = (series.upper - series.lower) if series.upper is not None and series.lower is not None else 0.0
    return abs(series.observed - series.expected) / width if width > 0 else abs(series.observed - series.expected)


def ranked_pods(involved: list[InvolvedSeries]) -> list[str]:
    """Pod names from the per-pod series, most anomalous first (a pod counts by its worst series)."""
    worst: dict[str, float] = {}
    for series in involved:
        pod = series.labels.get("pod")
        if pod:
            worst[pod] = max(worst.get(pod, -math.inf), anomaly(series))
    return sorted(worst, key=lambda pod: (-worst[pod], pod))


def is_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def _landed(ctx: ActionContext, obj: dict[str, Any]) -> ActionResult | None:
    """After a lost answer: our key on the workload names the pod; make sure that one is gone."""
    notes = notes_of(obj)
    return await _finish(ctx, notes.get(DELETED_POD, "")) if notes.get(POD_DELETED_BY) == ctx.key else None


@confirmed_by(_landed)
async def perform(ctx: ActionContext) -> ActionResult:
    params = ctx.step.delete_pod or DeletePodParams()
    obj = await read_target(ctx)
    if is_paused(obj):
        return paused(ctx)
    notes = notes_of(obj)
    if notes.get(POD_DELETED_BY) == ctx.key:
        return await _finish(ctx, notes.get(DELETED_POD, ""))
    candidates = ranked_pods(ctx.involved)
    if not candidates:
        return result(Outcome.SKIPPED, "no anomalous series names a pod (delete-pod needs per-pod signals, "
                      "e.g. `sum by (pod) (...)`)")
    owners = await _controllers(ctx, obj)
    pods = [p for p in await ctx.api.list_pods(namespace=ctx.namespace, selector=obj["spec"].get("selector") or {})
            if any(owned_by(p, uid) for uid in owners)]
    by_name = {p["metadata"]["name"]: p for p in pods if not p["metadata"].get("deletionTimestamp")}
    victim = next((by_name[name] for name in candidates if name in by_name), None)
    if victim is None:
        return result(Outcome.SKIPPED, f"none of the anomalous pods {candidates} is a live pod of {where(ctx)}")
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    ready = sum(1 for p in pods if is_ready(p))
    if is_ready(victim) and (params.max_fraction * ready < 1 or ready - 1 < 1):
        return result(Outcome.SKIPPED, f"deleting {name} would take 1 of {ready} ready pods of {where(ctx)}: more than "
                      f"maxFraction {params.max_fraction:g}, or none left ready", pod=name, ready=ready)
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would delete pod {name} of {where(ctx)} (the most anomalous; {ready} ready)",
                      pod=name, ready=ready)
    await ctx.api.patch_workload_annotations(namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name,
                                             annotations={POD_DELETED_BY: ctx.key, DELETED_POD: f"{name}/{uid}"})
    deleted = await ctx.api.delete_pod(namespace=ctx.namespace, name=name, uid=uid)
    what = "deleted" if deleted else "found already gone:"
    return result(Outcome.SUCCEEDED, f"{what} pod {name} of {where(ctx)} ({ready} were ready)", pod=name, ready=ready)


async def _controllers(ctx: ActionContext, obj: dict[str, Any]) -> set[str]:
    """Uids that control the workload's pods: the StatefulSet itself, or the Deployment's ReplicaSets.

    The selector alone is not enough: another workload's pods may carry matching labels.
    """
    if ctx.target.kind == WorkloadKind.STATEFULSET:
        return {obj["metadata"]["uid"]}
    return {rs["metadata"]["uid"] for rs in await ctx.api.list_replicasets(namespace=ctx.namespace, owner=obj)}


async def _finish(ctx: ActionContext, recorded: str) -> ActionResult:
    """Our key is on the workload: that deletion was decided; make sure it happened, to that pod only."""
    name, _, uid = recorded.partition("/")
    if not name or not uid:
        return already_done(ctx, f"delete-pod on {where(ctx)}")
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would make sure pod {name} ({uid}) is deleted", pod=name)
    deleted = await ctx.api.delete_pod(namespace=ctx.namespace, name=name, uid=uid)
    if deleted:
        return result(Outcome.SUCCEEDED, f"finished the deletion of pod {name} recorded under {ctx.key}", pod=name)
    return already_done(ctx, f"deletion of pod {name}")
