"""What every action shares: the markers it stamps, reading its workload, refusing a paused one,
and turning an API failure into a FAILED result instead of an exception for the runner."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from homeostat.playbooks.base import ActionContext, ActionResult, Outcome

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


def parse_time(stamp: str) -> float:
    """Unix seconds of an RFC 3339 timestamp as the API server writes them (`...Z`)."""
    return datetime.fromisoformat(stamp).timestamp()


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(exc: BaseException) -> str:
    """One line for an API failure: status, reason and the server's message, never a URL."""
    if isinstance(exc, ApiException):
        message = exc.reason or ""
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(exc.body or "{}").get("message") or message
        return f"API error {exc.status}: {message}".rstrip(": ")
    return f"API unreachable ({type(exc).__name__})"


def api_failures(perform: Perform) -> Perform:
    """Report an API error (after the retries in WorkloadApi) as FAILED, with what the server said."""

    @functools.wraps(perform)
    async def wrapper(ctx: ActionContext) -> ActionResult:
        try:
            return await perform(ctx)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            return result(Outcome.FAILED, f"{ctx.step.action} on {where(ctx)} failed: {describe(exc)}")

    return wrapper
