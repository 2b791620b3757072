"""What every action shares: the markers it stamps, reading its workload, refusing a paused one,
and turning an API failure into a FAILED result instead of an exception for the runner.

A write whose answer was lost (`AmbiguousWrite`: a read timeout, a reset connection, a 5xx after
the request went out) is neither: the workload is read back (a few times) and the action's key
marker looked for. Found, the action is SUCCEEDED (finishing what the marker records, for the
actions that write it first); not found, FAILED (it did not land); the read-back failing too,
UNKNOWN: it may have been applied, and it counts towards the cooldown and the hourly budget.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from homeostat.playbooks import kube
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome
from homeostat.playbooks.kube import AmbiguousWrite

PAUSED = "homeostat.dev/paused"  # "true" on a workload: Homeostat never touches it
ACTION_KEY = "homeostat.dev/action-key"  # restart: on the pod template, next to restartedAt
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets
SCALED_BY = "homeostat.dev/scaled-by"  # scale-out: key of the latest scale-out
REPLICAS_BEFORE = "homeostat.dev/replicas-before"  # scale-out: replicas (or HPA minReplicas) before it
REPLICAS_AFTER = "homeostat.dev/replicas-after"  # scale-out: what it set them to
SCALED_VIA = "homeostat.dev/scaled-via"  # scale-out: "scale" or "HorizontalPodAutoscaler/<name>"
SCALED_BACK_BY = "homeostat.dev/scaled-back-by"  # scale-back: key of the scale-back that undid it
ROLLED_BACK_BY = "homeostat.dev/rolled-back-by"  # rollback: on the workload, not the template
POD_DELETED_BY = "homeostat.dev/pod-deleted-by"  # delete-pod: key, written before the deletion
DELETED_POD = "homeostat.dev/deleted-pod"  # delete-pod: "<name>/<uid>" of the pod it deletes

Perform = Callable[[ActionContext], Awaitable[ActionResult]]
Landed = Callable[[ActionContext, dict[str, Any]], Awaitable[ActionResult | None]]
"""After a write whose answer was lost, given the workload read back: the action's result when its
key marker is there (having finished what the marker records, if need be), None when it is not."""


def _api_failure(exc: BaseException) -> bool:
    return isinstance(exc, ApiException | urllib3.exceptions.HTTPError)


READ_BACK = kube.Retry(retry_on=_api_failure, attempts=3, base=0.5, cap=1.0, jitter=False, retry_after=False)
"""Reads of the workload after a lost answer: on any API or HTTP error (each read retried by WorkloadApi
on 5xx already), three in all, 0.5 s before the second, 1 s before the third."""


def notes_of(obj: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    return found


def is_paused(obj: dict[str, Any]) -> bool:
    return notes_of(obj).get(PAUSED, "").strip().lower() == "true"


def where(ctx: ActionContext) -> str:
    """`Deployment shop/checkout`, for messages."""
    return f"{ctx.target.kind} {ctx.namespace}/{ctx.target.name}"


async def read_target(ctx: ActionContext) -> dict[str, Any]:
    """The target workload, always from the policy's own namespace."""
    obj: dict[str, Any] = await ctx.api.read_workload(namespace=ctx.namespace, kind=ctx.target.kind,
                                                      name=ctx.target.name)
    return obj


def result(outcome: Outcome, message: str, **changes: Any) -> ActionResult:
    return ActionResult(outcome=outcome, message=message, changes=changes)


def paused(ctx: ActionContext) -> ActionResult:
    return result(Outcome.SKIPPED, f"{where(ctx)} is annotated {PAUSED}=true: not touching it")


def already_done(ctx: ActionContext, what: str) -> ActionResult:
    return result(Outcome.SUCCEEDED, f"already done: {what} under key {ctx.key}", already=True)


def describe(exc: BaseException) -> str:
    """One line for an API failure: status, reason and the server's message, never a URL."""
    if isinstance(exc, ApiException):
        message = exc.reason or ""
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(exc.body or "{}").get("message") or message
        return f"API error {exc.status}: {message}".rstrip(": ")
    return f"API unreachable ({type(exc).__name__})"


def api_failures(perform: Perform, landed: Landed | None = None) -> Perform:
    """Report an API error (after the retries in WorkloadApi) as FAILED, with what the server said;
    a write whose answer was lost by what `landed` finds on the workload read back (see above;
    without `landed`, UNKNOWN)."""

    @functools.wraps(perform)
    async def wrapper(ctx: ActionContext) -> ActionResult:
        try:
            return await perform(ctx)
        except AmbiguousWrite as exc:
            return await _lost_answer(ctx, exc, landed)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            return result(Outcome.FAILED, f"{ctx.step.action} on {where(ctx)} failed: {describe(exc)}")

    return wrapper


def confirmed_by(landed: Landed) -> Callable[[Perform], Perform]:
    """`api_failures` with `landed` telling, after a lost answer, whether the write is there."""

    def decorate(perform: Perform) -> Perform:
        return api_failures(perform, landed)

    return decorate


def marked_on_workload(annotation: str, what: str) -> Landed:
    """A `Landed` for an action whose key goes on the workload (`annotation`) in the same write as its change."""

    async def landed(ctx: ActionContext, obj: dict[str, Any]) -> ActionResult | None:
        if notes_of(obj).get(annotation) != ctx.key:
            return None
        return result(Outcome.SUCCEEDED, f"{what} {where(ctx)}: {annotation}={ctx.key} is on it")

    return landed


async def read_back(ctx: ActionContext) -> dict[str, Any]:
    """The workload, read again after a lost answer, per `READ_BACK`."""
    return await kube.retrying(lambda: read_target(ctx), retry=READ_BACK)


async def _lost_answer(ctx: ActionContext, exc: AmbiguousWrite, landed: Landed | None) -> ActionResult:
    lost = f"{ctx.step.action} on {where(ctx)}: the answer to its write was lost ({describe(exc.cause)})"
    unknown = "it may have been applied; counted towards the cooldown and the hourly budget"
    if landed is None:
        return result(Outcome.UNKNOWN, f"{lost}: {unknown}")
    try:
        found = await landed(ctx, await read_back(ctx))
    except (AmbiguousWrite, ApiException, urllib3.exceptions.HTTPError) as again:
        cause = again.cause if isinstance(again, AmbiguousWrite) else again
        return result(Outcome.UNKNOWN, f"{lost}, and reading it back failed too ({describe(cause)}): {unknown}")
    if found is None:
        return result(Outcome.FAILED, f"{lost}; read back, it does not carry key {ctx.key}: not applied")
    return result(found.outcome, f"{lost}; read back: {found.message}", **found.changes)
