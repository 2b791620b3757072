"""Homeostat's one Kubernetes layer: how every call reaches the API server, what its failures
mean, and the reads and writes on workloads, their pods, HPAs and Secrets.

Every caller goes through `call` (a blocking client call in a worker thread, retried per a
`Retry` policy the caller states) and reads objects as the plain JSON the API server speaks
(`_preload_content=False`), so a template copied from a ReplicaSet back into its Deployment
loses nothing that the client's models do not know. Every request carries a timeout
(`--kube-request-timeout` for the monitor's and the Incident store's calls).

The policies, each stated where its caller lives:

- `WorkloadApi`, the actions' calls: `ACTION_CALLS` (here). 409, 429 and 5xx (`retryable`),
  5 attempts, pauses of 0.1 s doubling to 5 s, jittered, a Retry-After header honoured; no deadline.
- `IncidentStore`: `incidents.INCIDENT_CALLS`. 429, 5xx, a status-less error, connection and
  timeout errors (`transient`; never a 409), 5 attempts, 0.2 s doubling to 5 s, jittered.
- The monitor (`operator.kube.KubeApi`): `operator.kube.MONITOR_CALLS`. Once (`never`): the next
  cycle is the retry.
- The Lease elector: `operator.leadership.LeaseConfig.calls`. Once, in the elector's own thread,
  with a deadline of the request timeout + 1 s: the next round is the retry.
- Reading a workload back after a lost answer: `actions.common.READ_BACK`. Any API or HTTP error,
  3 attempts, 0.5 s then 1 s, no jitter (each read retried by `WorkloadApi` too).

A write that depends on what was read carries the resourceVersion it was decided on, and when
the server answers 409 the whole read-decide-write is done again, never the stale write alone.

A write that was sent but whose answer is lost may have been applied: a read timeout, a
connection reset or closed after the request went out, a 5xx (504 Gateway Timeout among them).
A write is marked as such (`_send`); when the last attempt of a call leaves such a write behind,
the call raises `AmbiguousWrite`, for the action to read the workload back and look for its key.
A 4xx, or a connection that was never made, is a write that was definitely not applied and
raises as before. What a failure is, for the monitor's metric `homeostat_kube_errors_total`:
`KUBE_ERRORS` and `error_reason`.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from homeostat.api.policy import WorkloadKind

JSON = dict[str, Any]
T = TypeVar("T")

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

_SNAKE = {WorkloadKind.DEPLOYMENT: "deployment", WorkloadKind.STATEFULSET: "stateful_set"}

# --- what a failure means ------------------------------------------------------------------------

KUBE_ERRORS: tuple[type[BaseException], ...] = (
    ApiException,  # the API server answered with an error
    urllib3.exceptions.HTTPError,  # no usable answer: timeouts, refused or reset connections (urllib3's)
    http.client.HTTPException,  # a broken HTTP exchange that urllib3 did not wrap
    OSError,  # ConnectionError, TimeoutError, socket errors
)
"""What a Kubernetes call raises when the API server fails or cannot be reached."""


def error_reason(exc: BaseException) -> str:
    """The `reason` label of `homeostat_kube_errors_total`: `api`, `timeout` or `connection`."""
    if isinstance(exc, ApiException):
        return "api"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError by inheritance only
        return "connection"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout"
    return "connection"


def describe(exc: BaseException) -> str:
    """A short account of a failed call, for logs and messages."""
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{error_reason(exc)}: {type(exc).__name__}: {exc}"


def retryable(exc: BaseException) -> bool:
    """Conflicts, throttling and server errors pass; any other answer will not change by waiting."""
    return isinstance(exc, ApiException) and (exc.status in (409, 429) or 500 <= (exc.status or 0) <= 599)


def transient(exc: BaseException) -> bool:
    """Throttling, server errors, an error without a status, and no answer at all (no conflicts)."""
    if isinstance(exc, ApiException):
        return exc.status in (429, 0, None) or 500 <= (exc.status or 0) <= 599
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def never(exc: BaseException) -> bool:
    """No failure is retried: the caller's next round is its retry."""
    return False


def may_have_landed(exc: BaseException) -> bool:
    """Whether a write that raised `exc` after it was sent may have been applied nonetheless.

    No for a 4xx (refused before anything changed) and for a connection that could not be made
    (refused, connect timeout: nothing was sent); yes for a 5xx, a status-less API error, a read
    timeout, a reset or closed connection, and anything else unexpected.
    """
    if isinstance(exc, ApiException):
        return not exc.status or exc.status >= 500
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        return exc.reason is None or may_have_landed(exc.reason)
    return not isinstance(exc, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


class AmbiguousWrite(Exception):
    """A write was sent and its answer lost: it may or may not have been applied."""

    def __init__(self, cause: BaseException, *, last: BaseException | None = None) -> None:
        self.cause = cause  # what the write got
        self.last = last if last is not None else cause  # what the call ended on (a later retry's read)
        super().__init__(f"a write may have been applied: {type(cause).__name__}")


class _WriteFailed(Exception):
    """Internal: the write of an attempt (not its read) raised `cause`."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(repr(cause))


def _send(write: Callable[[], T]) -> T:
    """Make the write, marking what it raises as a write's failure (see `retrying`)."""
    try:
        return write()
    except Exception as exc:
        raise _WriteFailed(exc) from exc


# --- retry policies and the one helper -------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Retry:
    """How a caller's calls are retried: which failures, how often, how long between, how long in all."""

    retry_on: Callable[[BaseException], bool]
    """Whether a failure is tried again (`retryable`, `transient`, `never`...)."""
    attempts: int
    """Attempts in all, the first included (1: made once)."""
    base: float = 0.1
    """Seconds of the first pause; each next one doubles, up to `cap`."""
    cap: float = 5.0
    """Seconds that no pause exceeds (a Retry-After header included)."""
    jitter: bool = True
    """Each pause drawn between half its ceiling and the ceiling (False: the ceiling exactly)."""
    retry_after: bool = False
    """Whether the server's Retry-After header (429, 503), capped, replaces the computed pause."""
    deadline: float | None = None
    """Seconds the whole call may take, attempts and pauses included; past it `TimeoutError`."""

    def delay(self, *, attempt: int, exc: BaseException) -> float:
        """The pause after the failed attempt `attempt` (0-based): base, 2x base, 4x base... up to cap."""
        after = _retry_after(exc) if self.retry_after else None
        if after is not None:
            return min(self.cap, after)
        ceiling = min(self.cap, self.base * 2**attempt)
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


ONCE = Retry(retry_on=never, attempts=1)
"""Each call made once; what fails is raised to the caller."""

ACTION_CALLS = Retry(retry_on=retryable, attempts=5, base=0.1, cap=5.0, jitter=True, retry_after=True)
"""The actions' calls (`WorkloadApi`): 409, 429 and 5xx, five attempts, 0.1 s doubling to 5 s."""


async def retrying(attempt: Callable[[], Awaitable[T]], *, retry: Retry) -> T:
    """Await `attempt()`; again, after a pause, while `retry` says so; within `retry.deadline`.

    Raises `AmbiguousWrite` when the call gives up after a write (`_send`) of any attempt may have
    landed; otherwise what the last attempt raised.
    """
    if retry.deadline is not None:
        return await asyncio.wait_for(_retrying(attempt, retry), retry.deadline)
    return await _retrying(attempt, retry)


async def _retrying(attempt: Callable[[], Awaitable[T]], retry: Retry) -> T:
    failures = 0
    ambiguous: BaseException | None = None
    while True:
        try:
            return await attempt()
        except Exception as caught:
            exc = caught.cause if isinstance(caught, _WriteFailed) else caught
            if isinstance(caught, _WriteFailed) and may_have_landed(exc):
                ambiguous = exc
            failures += 1
            if not retry.retry_on(exc) or failures >= retry.attempts:
                if ambiguous is not None:
                    raise AmbiguousWrite(ambiguous, last=exc) from exc
                if exc is caught:
                    raise
                raise exc from None
            await asyncio.sleep(retry.delay(attempt=failures - 1, exc=exc))


async def call(operation: Callable[[], T], *, retry: Retry, executor: Executor | None = None) -> T:
    """Run the blocking `operation` in a worker thread (of `executor`, if given), retried per `retry`."""

    async def attempt() -> T:
        if executor is None:
            return await asyncio.to_thread(operation)
        return await asyncio.get_running_loop().run_in_executor(executor, operation)

    return await retrying(attempt, retry=retry)


# --- JSON objects ----------------------------------------------------------------------------


def read_json(response: Any) -> Any:
    """The body of a `_preload_content=False` response."""
    return json.loads(response.data)


def selector_string(selector: Mapping[str, Any]) -> str:
    """A LabelSelector (`matchLabels` and `matchExpressions`) as the `labelSelector` query parameter."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(parts)


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether `uid` is the controller of `obj` (how a workload's ReplicaSets and Pods are told apart)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def rolled_out(workload: Mapping[str, Any], *, kind: str) -> bool:
    """Is the workload's rollout complete, every replica updated and available (`kubectl rollout status`)?

    Verification starts when an action has taken effect: until then old pods still serve.
    """
    meta, spec, status = workload.get("metadata") or {}, workload.get("spec") or {}, workload.get("status")
    if status is None or (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False
    desired = spec["replicas"] if spec.get("replicas") is not None else 1
    updated = status.get("updatedReplicas") or 0
    if kind == WorkloadKind.STATEFULSET:
        update_revision = status.get("updateRevision")
        same_revision = update_revision is None or update_revision == status.get("currentRevision")
        return same_revision and updated >= desired and (status.get("readyReplicas") or 0) >= desired
    total = status.get("replicas") or 0
    return updated >= desired and total == updated and (status.get("availableReplicas") or 0) >= updated


# --- the calls on workloads, pods, HPAs and Secrets ----------------------------------------------


class WorkloadApi:
    """The reads and writes on workloads, pods, HPAs and Secrets; every method names its namespace.

    The actions' (with `ACTION_CALLS`), and the monitor's (`operator.kube.KubeApi`, with its own
    policy): one way to read a workload, one way to read a Secret's key.
    """

    def __init__(self, api_client: client.ApiClient, *, retry: Retry = ACTION_CALLS,
                 request_timeout: float = 30.0) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._autoscaling = client.AutoscalingV2Api(api_client)
        self._retry = retry
        self._timeout = request_timeout

    async def _retrying(self, operation: Callable[[], T]) -> T:
        """`operation` in a worker thread, retried per this API's policy (see `retrying`)."""
        return await call(operation, retry=self._retry)

    def _workload_call(self, verb: str, kind: str, *, scale: bool = False) -> Callable[..., Any]:
        method: Callable[..., Any] = getattr(
            self._apps, f"{verb}_namespaced_{_SNAKE[WorkloadKind(kind)]}{'_scale' if scale else ''}")
        return method

    # --- the workload ---------------------------------------------------------------------------

    def _get_workload(self, namespace: str, kind: str, name: str) -> JSON:
        read = self._workload_call("read", kind)
        obj: JSON = read_json(read(name, namespace, _preload_content=False, _request_timeout=self._timeout))
        return obj

    async def read_workload(self, *, namespace: str, kind: str, name: str) -> JSON:
        return await self._retrying(lambda: self._get_workload(namespace, kind, name))

    async def patch_workload_annotations(self, *, namespace: str, kind: str, name: str,
                                         annotations: Mapping[str, str | None]) -> JSON:
        """Merge-patch the workload's own annotations (None removes one): where actions keep their markers."""
        patch = self._workload_call("patch", kind)
        body = {"metadata": {"annotations": dict(annotations)}}
        return await self._retrying(lambda: read_json(_send(lambda: patch(
            name, namespace, body, _content_type=MERGE, _preload_content=False, _request_timeout=self._timeout))))

    async def claim(self, *, namespace: str, kind: str, name: str, value: str, annotation: str,
                    refuse: Callable[[Mapping[str, str]], str | None]) -> str | None:
        """Set `annotation` to `value` on the workload unless `refuse(annotations)` says why not.

        Read, ask, write with the resourceVersion read: a concurrent write (another claim) is a 409,
        and the whole read-ask-write is done again on the fresh object. None when claimed.
        """
        patch = self._workload_call("patch", kind)

        def attempt() -> str | None:
            current = self._get_workload(namespace, kind, name)
            meta = current["metadata"]
            notes = meta.get("annotations") or {}
            why = refuse(notes)
            if why is not None or notes.get(annotation) == value:
                return why
            body = {"metadata": {"resourceVersion": meta["resourceVersion"], "annotations": {annotation: value}}}
            read_json(patch(name, namespace, body, _content_type=MERGE, _preload_content=False,
                        _request_timeout=self._timeout))
            return None

        return await self._retrying(attempt)

    async def patch_template_annotations(self, *, namespace: str, kind: str, name: str,
                                         annotations: Mapping[str, str]) -> JSON:
        """Strategic-merge the pod template's annotations, as `kubectl rollout restart` does: a new rollout."""
        patch = self._workload_call("patch", kind)
        body = {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}
        return await self._retrying(lambda: read_json(_send(lambda: patch(
            name, namespace, body, _content_type=STRATEGIC_MERGE, _preload_content=False,
            _request_timeout=self._timeout))))

    async def replace_pod_template(self, *, namespace: str, kind: str, name: str, template: JSON,
                                   annotations: Mapping[str, str], expect_template: JSON) -> JSON | None:
        """Put `template` in place of the pod template (a rollback), with `annotations` on the workload.

        Only while the template is still `expect_template` (what the rollback was decided on): None
        when someone rolled out meanwhile. One JSON patch carrying the resourceVersion it was built
        from, so the template and the markers change together or not at all.
        """
        patch = self._workload_call("patch", kind)

        def attempt() -> JSON | None:
            current = self._get_workload(namespace, kind, name)
            meta = current["metadata"]
            present = meta.get("annotations") or {}
            if all(present.get(k) == v for k, v in annotations.items()) and current["spec"]["template"] == template:
                return current  # done already (e.g. the response to our own write was lost)
            if current["spec"]["template"] != expect_template:
                return None
            ops = [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "add", "path": "/metadata/annotations", "value": {**present, **annotations}},
            ]
            written: JSON = read_json(_send(lambda: patch(name, namespace, ops, _content_type=JSON_PATCH,
                                                      _preload_content=False, _request_timeout=self._timeout)))
            return written

        return await self._retrying(attempt)

    # --- replicas -------------------------------------------------------------------------------

    async def read_scale(self, *, namespace: str, kind: str, name: str) -> JSON:
        read = self._workload_call("read", kind, scale=True)
        return await self._retrying(lambda: read_json(read(
            name, namespace, _preload_content=False, _request_timeout=self._timeout)))

    async def set_replicas(self, *, namespace: str, kind: str, name: str, replicas: int,
                           when: Callable[[int], bool]) -> tuple[int, bool]:
        """Write `replicas` through the scale subresource if `when(current)` holds.

        Returns the replicas found and whether they were written. The write carries the Scale's
        resourceVersion, so a concurrent change is a 409 and `when` is asked again on fresh data.
        """
        read = self._workload_call("read", kind, scale=True)
        patch = self._workload_call("patch", kind, scale=True)

        def attempt() -> tuple[int, bool]:
            scale = read_json(read(name, namespace, _preload_content=False, _request_timeout=self._timeout))
            current = int((scale.get("spec") or {}).get("replicas", 0))
            if current == replicas or not when(current):
                return current, False
            body = {"metadata": {"resourceVersion": scale["metadata"]["resourceVersion"]},
                    "spec": {"replicas": replicas}}
            _send(lambda: patch(name, namespace, body, _content_type=MERGE, _preload_content=False,
                                _request_timeout=self._timeout))
            return current, True

        return await self._retrying(attempt)

    # --- HorizontalPodAutoscalers ---------------------------------------------------------------

    async def find_hpa(self, *, namespace: str, kind: str, name: str) -> JSON | None:
        """The HPA (autoscaling/v2) whose scaleTargetRef is this workload, if any (first by name)."""

        def attempt() -> JSON | None:
            listing = read_json(self._autoscaling.list_namespaced_horizontal_pod_autoscaler(
                namespace, _preload_content=False, _request_timeout=self._timeout))
            for hpa in sorted(listing.get("items") or [], key=lambda h: h["metadata"]["name"]):
                ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
                if (ref.get("kind") == kind and ref.get("name") == name
                        and str(ref.get("apiVersion", "apps/v1")).startswith("apps/")):
                    found: JSON = hpa
                    return found
            return None

        return await self._retrying(attempt)

    async def set_hpa_min_replicas(self, *, namespace: str, name: str, min_replicas: int,
                                   when: Callable[[int], bool]) -> tuple[int, bool]:
        """Write the HPA's minReplicas if `when(current minReplicas)` holds; like `set_replicas`."""

        def attempt() -> tuple[int, bool]:
            hpa = read_json(self._autoscaling.read_namespaced_horizontal_pod_autoscaler(
                name, namespace, _preload_content=False, _request_timeout=self._timeout))
            current = int((hpa.get("spec") or {}).get("minReplicas", 1))
            if current == min_replicas or not when(current):
                return current, False
            body = {"metadata": {"resourceVersion": hpa["metadata"]["resourceVersion"]},
                    "spec": {"minReplicas": min_replicas}}
            _send(lambda: self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                name, namespace, body, _content_type=MERGE, _preload_content=False, _request_timeout=self._timeout))
            return current, True

        return await self._retrying(attempt)

    # --- revisions ------------------------------------------------------------------------------

    async def list_replicasets(self, *, namespace: str, owner: JSON) -> list[JSON]:
        """The ReplicaSets that the Deployment `owner` controls (its revisions)."""
        selector = selector_string(owner["spec"].get("selector") or {})
        listing = await self._retrying(lambda: read_json(self._apps.list_namespaced_replica_set(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=self._timeout)))
        return [rs for rs in listing.get("items") or [] if owned_by(rs, owner["metadata"]["uid"])]

    async def list_controller_revisions(self, *, namespace: str, owner: JSON) -> list[JSON]:
        """The ControllerRevisions that the StatefulSet `owner` controls (its revisions)."""
        selector = selector_string(owner["spec"].get("selector") or {})
        listing = await self._retrying(lambda: read_json(self._apps.list_namespaced_controller_revision(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=self._timeout)))
        return [cr for cr in listing.get("items") or [] if owned_by(cr, owner["metadata"]["uid"])]

    # --- pods -----------------------------------------------------------------------------------

    async def list_pods(self, *, namespace: str, selector: Mapping[str, Any]) -> list[JSON]:
        """The pods matching a workload's selector (`spec.selector`)."""
        query = selector_string(selector)
        listing = await self._retrying(lambda: read_json(self._core.list_namespaced_pod(
            namespace, label_selector=query, _preload_content=False, _request_timeout=self._timeout)))
        items: list[JSON] = listing.get("items") or []
        return items

    async def delete_pod(self, *, namespace: str, name: str, uid: str) -> bool:
        """Delete the pod `name` only if it is still the one with `uid`; False when it is gone already.

        A replacement pod with the same name (StatefulSets) has another uid: the precondition turns
        that into a 409, and the pod is read again to tell "replaced" from a real conflict.
        """

        def attempt() -> bool:
            try:
                self._core.delete_namespaced_pod(
                    name, namespace, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
                    _preload_content=False, _request_timeout=self._timeout)
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                if exc.status == 409 and self._pod_uid(namespace, name) != uid:
                    return False
                raise _WriteFailed(exc) from exc
            except Exception as exc:
                raise _WriteFailed(exc) from exc

        return await self._retrying(attempt)

    def _pod_uid(self, namespace: str, name: str) -> str | None:
        """The uid of the pod called `name` now (listed by name: `list` is granted already, `get` is not)."""
        listing = read_json(self._core.list_namespaced_pod(namespace, field_selector=f"metadata.name={name}",
                                                       _preload_content=False, _request_timeout=self._timeout))
        uids = [pod["metadata"].get("uid") for pod in listing.get("items") or []]
        return uids[0] if uids else None

    # --- secrets --------------------------------------------------------------------------------

    async def read_secret_key(self, *, namespace: str, name: str, key: str) -> str | None:
        """The decoded value of a Secret's key; None when the Secret or the key is missing."""

        def attempt() -> str | None:
            try:
                secret = read_json(self._core.read_namespaced_secret(name, namespace, _preload_content=False,
                                                                 _request_timeout=self._timeout))
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            value = (secret.get("data") or {}).get(key)
            return base64.b64decode(value).decode() if value is not None else None

        return await self._retrying(attempt)
