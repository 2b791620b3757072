"""scale-out: more replicas by `step` or `factor`, never above `max`, never fewer than now.

Through the scale subresource; but when an HPA targets the workload it would undo a direct scale,
so its `minReplicas` is raised instead (bounded by its `maxReplicas` and the policy's `max`).
The intent goes on the workload first (`homeostat.dev/scaled-by` = key, `replicas-before`,
`replicas-after`, `scaled-via`), then the replicas change: a run that finds its key finishes the
change if it is missing, instead of scaling twice. `scale_back` returns to `replicas-before` once
the incident is resolved and quiet, only if nobody changed the replicas meanwhile.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from homeostat.api.durations import format_duration, parse_duration
from homeostat.api.policy import ScaleOutParams
from homeostat.playbooks.actions.common import (
    REPLICAS_AFTER,
    REPLICAS_BEFORE,
    SCALED_BACK_BY,
    SCALED_BY,
    SCALED_VIA,
    already_done,
    api_failures,
    confirmed_by,
    is_paused,
    notes_of,
    paused,
    read_target,
    result,
    where,
)
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome

DIRECT = "scale"
HPA_PREFIX = "HorizontalPodAutoscaler/"


def raised(replicas: int, params: ScaleOutParams) -> int:
    """`replicas` grown by the factor (rounded up) or the step; always at least one more."""
    grown = math.ceil(replicas * params.factor) if params.factor is not None else replicas + params.step
    return max(grown, replicas + 1)


@dataclass(frozen=True, kw_only=True)
class Lever:
    """What holds the replica count: the scale subresource, or an HPA's minReplicas."""

    via: str  # DIRECT or "HorizontalPodAutoscaler/<name>"
    current: int  # replicas, or the HPA's minReplicas
    noun: str  # "replicas" or "HPA <name> minReplicas", for messages

    @property
    def hpa(self) -> str | None:
        return self.via.removeprefix(HPA_PREFIX) if self.via.startswith(HPA_PREFIX) else None


async def _set(ctx: ActionContext, *, via: str, value: int, when: Any) -> tuple[int, bool]:
    """Write through the lever named `via`, if `when(current)` still holds on fresh data."""
    if via.startswith(HPA_PREFIX):
        written: tuple[int, bool] = await ctx.api.set_hpa_min_replicas(
            namespace=ctx.namespace, name=via.removeprefix(HPA_PREFIX), min_replicas=value, when=when)
        return written
    written = await ctx.api.set_replicas(namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name,
                                         replicas=value, when=when)
    return written


async def _landed(ctx: ActionContext, obj: dict[str, Any]) -> ActionResult | None:
    """After a lost answer: our key on the workload is our intent; finish the change it records."""
    notes = notes_of(obj)
    return await _finish(ctx, notes) if notes.get(SCALED_BY) == ctx.key else None


@confirmed_by(_landed)
async def perform(ctx: ActionContext) -> ActionResult:
    params = ctx.step.scale_out or ScaleOutParams()
    obj = await read_target(ctx)
    if is_paused(obj):
        return paused(ctx)
    notes = notes_of(obj)
    if notes.get(SCALED_BY) == ctx.key:
        return await _finish(ctx, notes)
    replicas = await _replicas(ctx)
    hpa = await ctx.api.find_hpa(namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name)
    if hpa is not None:
        spec = hpa.get("spec") or {}
        hpa_min, hpa_max = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", params.max))
        lever = Lever(via=HPA_PREFIX + hpa["metadata"]["name"], current=hpa_min,
                      noun=f"HPA {hpa['metadata']['name']} minReplicas")
        # From what the HPA runs now, not its old floor: raising the floor below that does nothing.
        target, cap = min(raised(max(hpa_min, replicas), params), params.max, hpa_max), min(params.max, hpa_max)
    else:
        lever = Lever(via=DIRECT, current=replicas, noun="replicas")
        target, cap = min(raised(replicas, params), params.max), params.max
    if target <= lever.current:  # at the cap, or above it already: never lowered here
        return result(Outcome.SKIPPED, f"{where(ctx)}: {lever.noun} {lever.current} is at or above the cap {cap}")
    before = lever.current
    if notes.get(SCALED_BY, "").startswith(f"{ctx.incident}/") and notes.get(SCALED_VIA) == lever.via:
        before = int(notes.get(REPLICAS_BEFORE, before))  # a second scale-out in one incident: keep the first
    change = {"via": lever.via, lever.noun.split()[-1]: [lever.current, target]}
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would raise {where(ctx)} {lever.noun} {lever.current} -> {target} "
                      f"(max {cap})", **change)
    await ctx.api.patch_workload_annotations(
        namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name,
        annotations={SCALED_BY: ctx.key, REPLICAS_BEFORE: str(before), REPLICAS_AFTER: str(target),
                     SCALED_VIA: lever.via, SCALED_BACK_BY: None})
    found, written = await _set(ctx, via=lever.via, value=target, when=lambda current: current < target)
    if not written and found > target:
        return result(Outcome.SUCCEEDED, f"{where(ctx)}: {lever.noun} became {found} meanwhile, above {target}: "
                      "left as is", **change)
    return result(Outcome.SUCCEEDED, f"raised {where(ctx)} {lever.noun} {lever.current} -> {target}", **change)


async def _replicas(ctx: ActionContext) -> int:
    scale = await ctx.api.read_scale(namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name)
    return int((scale.get("spec") or {}).get("replicas", 0))


async def _finish(ctx: ActionContext, notes: dict[str, str]) -> ActionResult:
    """Our key is on the workload: make sure the recorded change is in place, without repeating it."""
    via, after = notes.get(SCALED_VIA, DIRECT), int(notes.get(REPLICAS_AFTER, "0"))
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would make sure {where(ctx)} is at {after} via {via} (key {ctx.key})")
    found, written = await _set(ctx, via=via, value=after, when=lambda current: current < after)
    if written:
        return result(Outcome.SUCCEEDED, f"finished the scale-out of {where(ctx)} recorded under {ctx.key}: "
                      f"{found} -> {after} via {via}", via=via, replicas=[found, after])
    return already_done(ctx, f"scale-out of {where(ctx)} to {after} via {via}")


async def scale_back(ctx: ActionContext, *, resolved_at: float, now: float | None = None) -> ActionResult:
    """After the incident resolved and `scaleBackAfter` passed quietly: back to `replicas-before`.

    Only the scale-out of this incident is undone, only if the replicas (or HPA minReplicas) are
    still what it set, and never below the HPA's current minReplicas (nor below 1).
    """
    params = ctx.step.scale_out or ScaleOutParams()
    if not params.scale_back:
        return result(Outcome.SKIPPED, f"scaleBack is off: {where(ctx)} keeps its replicas")
    quiet, elapsed = parse_duration(params.scale_back_after), (time.time() if now is None else now) - resolved_at
    if elapsed < quiet:
        return result(Outcome.SKIPPED, f"{where(ctx)}: quiet period not over, scale back in "
                      f"{format_duration(quiet - elapsed)}")
    return await _undo(ctx)


@api_failures
async def _undo(ctx: ActionContext) -> ActionResult:
    obj = await read_target(ctx)
    if is_paused(obj):
        return paused(ctx)
    notes = notes_of(obj)
    if notes.get(SCALED_BACK_BY) == ctx.key:
        return already_done(ctx, f"scale-back of {where(ctx)}")
    if not notes.get(SCALED_BY, "").startswith(f"{ctx.incident}/") or REPLICAS_BEFORE not in notes:
        return result(Outcome.SKIPPED, f"{where(ctx)}: no scale-out of incident {ctx.incident} to undo")
    via, before, after = notes.get(SCALED_VIA, DIRECT), int(notes[REPLICAS_BEFORE]), int(notes[REPLICAS_AFTER])
    target, current = before, await _current(ctx, via)
    if via == DIRECT:
        hpa = await ctx.api.find_hpa(namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name)
        floor = int((hpa or {}).get("spec", {}).get("minReplicas", 1)) if hpa else 1
        target = max(before, floor)
    change: dict[str, Any] = {"via": via, "replicas": [current, target]}
    if current is None:
        return result(Outcome.SKIPPED, f"{where(ctx)}: {via} is gone, nothing to scale back")
    if current != target and current != after:
        return result(Outcome.SKIPPED, f"{where(ctx)}: changed since the scale-out ({after} then, {current} now): "
                      "leaving it", **change)
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would scale {where(ctx)} back {current} -> {target} via {via}", **change)
    found, _ = await _set(ctx, via=via, value=target, when=lambda now_at: now_at == after)
    if found not in (after, target):
        return result(Outcome.SKIPPED, f"{where(ctx)}: changed since the scale-out ({after} then, {found} now): "
                      "leaving it", **change)
    await ctx.api.patch_workload_annotations(
        namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name,
        annotations={SCALED_BY: None, REPLICAS_BEFORE: None, REPLICAS_AFTER: None, SCALED_VIA: None,
                     SCALED_BACK_BY: ctx.key})
    return result(Outcome.SUCCEEDED, f"scaled {where(ctx)} back {found} -> {target} via {via}", **change)


async def _current(ctx: ActionContext, via: str) -> int | None:
    if via == DIRECT:
        return await _replicas(ctx)
    hpa = await ctx.api.find_hpa(namespace=ctx.namespace, kind=ctx.target.kind, name=ctx.target.name)
    if hpa is None or HPA_PREFIX + hpa["metadata"]["name"] != via:
        return None
    return int((hpa.get("spec") or {}).get("minReplicas", 1))
