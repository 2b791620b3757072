"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Several operator replicas may run; the one holding the Lease acts, the others stand by. This
module is only the elector: it keeps a `Leadership` flag up to date, and whoever acts checks the
flag (the policy loop before each cycle and before writing, the remediator before each action).
docs/ha.md explains the choice (a Lease rather than Kopf peering) and the timings.

The protocol is client-go's `leaderelection` package, so the Lease reads the same in
`kubectl get lease` and behaves the same as kube-controller-manager's:

* a candidate reads the Lease every `retry_period`; it may take it only when it is released (no
  holder) or expired, and "expired" is judged by the candidate's own clock: `leaseDurationSeconds`
  after the moment it first saw the Lease's current version (never from `renewTime`, so clock skew
  between nodes does not matter);
* every write is a PUT carrying the resourceVersion that was read, so of two candidates racing for
  an expired Lease one gets 409 Conflict and stays a candidate;
* the leader renews every `retry_period`; it stops claiming leadership as soon as `renew_deadline`
  has passed since the *start* of its last successful renewal, which is before any other replica
  can consider the Lease expired (`lease_duration` after it saw that renewal land): the difference
  is the margin within which an action started by the old leader ends;
* on a clean shutdown the leader releases the Lease (empty holder), so a standby takes over within
  one `retry_period` instead of waiting for it to expire.

All times here are `time.monotonic()`; the wall clock only fills the Lease's informative fields.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from homeostat.playbooks import kube

logger = logging.getLogger(__name__)

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
DEFAULT_LEASE_NAME = "homeostat"
DEFAULT_LEASE_NAMESPACE = "homeostat-system"

T = TypeVar("T")


class LeadershipLost(BaseException):
    """Raised where an action would start without leadership held with margin.

    A BaseException on purpose: it must travel up through the remediator's `except Exception`
    (which would record it as a failed action) to the policy loop, which drops the cycle. The
    action's intent is already on the Incident, so the next leader resumes it by its key.
    """


class Leadership:
    """Whether this process leads right now: an `asyncio.Event` with a deadline.

    `is_set()` is True only while the last renewal is younger than the renew deadline, so a
    leader whose renewals fail stops claiming leadership on time even before the elector notices.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._event = asyncio.Event()
        self._valid_until = -math.inf

    def is_set(self) -> bool:
        return self._event.is_set() and self._clock() < self._valid_until

    async def wait(self) -> None:
        """Return once leadership is held (at once if it is)."""
        while not self.is_set():
            if self._event.is_set():  # held but overdue: the elector renews or steps down shortly
                await asyncio.sleep(0.1)
            else:
                await self._event.wait()

    def check(self) -> None:
        """Raise `LeadershipLost` unless leadership is held now (the fence before every action)."""
        if not self.is_set():
            raise LeadershipLost("leadership is not held (lost, or its renewal is overdue)")

    def remaining(self) -> float:
        """Seconds until leadership lapses without a renewal (0 when not held)."""
        return max(0.0, self._valid_until - self._clock()) if self._event.is_set() else 0.0

    # -- for the elector ---------------------------------------------------------------------------

    def _hold(self, *, until: float) -> bool:
        """Held until `until` (monotonic); True when it was not held before."""
        gained = not self.is_set()
        self._valid_until = until
        self._event.set()
        return gained

    def _drop(self) -> bool:
        """Not held any more; True when it was."""
        was = self._event.is_set()
        self._event.clear()
        self._valid_until = -math.inf
        return was


def fenced(leadership: Leadership, action: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """`action`, which first checks that leadership is held (raising `LeadershipLost` if not)."""

    async def guarded(*args: Any, **kwargs: Any) -> T:
        leadership.check()
        return await action(*args, **kwargs)

    guarded.__name__ = getattr(action, "__name__", "action")
    guarded.__doc__ = action.__doc__
    return guarded


def default_identity() -> str:
    """The pod's name ($POD_NAME, from the downward API), else `<hostname>-<pid>`."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_namespace() -> str:
    """The operator's namespace ($POD_NAMESPACE, from the downward API), else `homeostat-system`."""
    return os.environ.get("POD_NAMESPACE") or DEFAULT_LEASE_NAMESPACE


@dataclass(frozen=True, kw_only=True)
class LeaseConfig:
    """Which Lease, who we are, and client-go's three timings (its defaults)."""

    name: str
    namespace: str
    identity: str
    lease_duration: float = LEASE_DURATION  # how long a standby trusts a Lease it saw renewed
    renew_deadline: float = RENEW_DEADLINE  # how long the leader trusts its last renewal
    retry_period: float = RETRY_PERIOD  # how often every replica tries to acquire or renew

    def __post_init__(self) -> None:
        if not self.name or not self.namespace or not self.identity:
            raise ValueError("a Lease needs a name, a namespace and an identity")
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration "
                f"(got {self.retry_period:g}s, {self.renew_deadline:g}s, {self.lease_duration:g}s)"
            )

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def request_timeout(self) -> float:
        """One Lease request may take this long; several fit in the renew deadline."""
        return max(1.0, min(self.renew_deadline / 3, 5.0))

    @property
    def calls(self) -> kube.Retry:
        """The elector's calls: each made once, its thread given a second past the request's own
        timeout; the next round (`retry_period`) is the retry."""
        return kube.Retry(retry_on=kube.never, attempts=1, deadline=self.request_timeout + 1.0)


class Conflict(Exception):
    """409: the Lease changed since it was read (or was created meanwhile)."""


class LeaseApi(Protocol):
    """The three calls the elector makes on its Lease (blocking; run in the elector's thread)."""

    def read(self, *, namespace: str, name: str, timeout: float) -> dict[str, Any] | None: ...

    def create(self, *, namespace: str, body: dict[str, Any], timeout: float) -> dict[str, Any]: ...

    def replace(self, *, namespace: str, name: str, body: dict[str, Any], timeout: float) -> dict[str, Any]: ...


class KubeLeaseApi:
    """`LeaseApi` over the official client: get, create and update (PUT) of one Lease, as JSON."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = client.CoordinationV1Api(api_client)

    def read(self, *, namespace: str, name: str, timeout: float) -> dict[str, Any] | None:
        try:
            response = self._api.read_namespaced_lease(name, namespace, _preload_content=False,
                                                       _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _lease(response)

    def create(self, *, namespace: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            response = self._api.create_namespaced_lease(namespace, cast(Any, body), _preload_content=False,
                                                         _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Lease {namespace}/{body['metadata']['name']} was created meanwhile") from exc
            raise
        return _lease(response)

    def replace(self, *, namespace: str, name: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            response = self._api.replace_namespaced_lease(name, namespace, cast(Any, body), _preload_content=False,
                                                          _request_timeout=timeout)
        except ApiException as exc:
            if exc.status in (404, 409):  # deleted or changed: either way not the version we read
                raise Conflict(f"Lease {namespace}/{name} changed since it was read") from exc
            raise
        return _lease(response)


def _lease(response: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = kube.read_json(response)
    return loaded


def _micro_time(now: float) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Attempt(enum.Enum):
    """The outcome of one `try_acquire_or_renew`."""

    ACQUIRED = "acquired"  # the Lease was free or expired and is ours now
    RENEWED = "renewed"  # it was ours and still is
    HELD = "held"  # another replica holds it and it has not expired
    CONFLICT = "conflict"  # someone wrote it between our read and our write (409): try again


class LeaderElector:
    """Acquires and renews one Lease; `is_leader` says whether this process holds it now.

    `run()` is a long-running coroutine (a task owned by the operator's run): it tries every
    `retry_period`, and releases the Lease when cancelled. Lease requests run in a thread of the
    elector's own, so slow Prometheus queries filling the shared pool cannot delay a renewal.
    """

    def __init__(self, *, api: LeaseApi, config: LeaseConfig, metrics: Any = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.is_leader = Leadership(clock=clock)
        self._api = api
        self._metrics = metrics
        self._clock = clock
        self._wall = wall_clock
        self._lease: dict[str, Any] | None = None  # the Lease as last read or written
        self._observed_at = -math.inf  # when its current version was first seen (monotonic)
        self._holder: str | None = None  # the holder last reported in the log
        self._last_error: str | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="homeostat-lease")
        self._set_metric(0)

    # -- the loop ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Acquire, then keep renewing, until cancelled; release the Lease on the way out."""
        logger.info("leader election on Lease %s as %r (lease %gs, renew deadline %gs, retry %gs)",
                    self.config.where, self.config.identity, self.config.lease_duration,
                    self.config.renew_deadline, self.config.retry_period)
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.config.retry_period)
        finally:
            await self.release()
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def step(self) -> Attempt | None:
        """One round: try to acquire or renew, and update `is_leader` (None: the API failed)."""
        self._step_down_if_overdue()
        started = self._clock()
        attempt: Attempt | None
        try:
            attempt = await self.try_acquire_or_renew()
        except Exception as exc:  # unreachable, 5xx, 403, timeout: retried next round
            attempt = None
            self._report_error(exc)
        else:
            self._last_error = None
        if attempt in (Attempt.ACQUIRED, Attempt.RENEWED):
            if self.is_leader._hold(until=started + self.config.renew_deadline):
                transitions = ((self._lease or {}).get("spec") or {}).get("leaseTransitions", 0)
                logger.info("became the leader of Lease %s as %r (transition %s)", self.config.where,
                            self.config.identity, transitions)
                self._set_metric(1)
            self._holder = self.config.identity
        elif attempt == Attempt.HELD:
            self._step_down(f"Lease {self.config.where} is held by {self._current_holder()!r}")
            holder = self._current_holder()
            if holder != self._holder:
                self._holder = holder
                logger.info("standing by: Lease %s is held by %r", self.config.where, holder)
        else:
            self._step_down_if_overdue()
        return attempt

    async def try_acquire_or_renew(self) -> Attempt:
        """client-go's `tryAcquireOrRenew`: read, decide, write on the resourceVersion read."""
        cfg = self.config
        now = self._wall()
        if self.is_leader.is_set() and self._lease is not None:
            # The fast path of a leader: write on the version we wrote last; anything else is a 409.
            try:
                self._observe(await self._call(self._api.replace, namespace=cfg.namespace, name=cfg.name,
                                               body=self._record(self._lease, now=now)))
                return Attempt.RENEWED
            except Conflict:
                pass  # changed behind our back: read it and decide like a candidate
        lease = await self._call(self._api.read, namespace=cfg.namespace, name=cfg.name)
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                    "spec": self._spec(now=now, acquired=True, transitions=0)}
            try:
                self._observe(await self._call(self._api.create, namespace=cfg.namespace, body=body))
            except Conflict:
                return Attempt.CONFLICT
            return Attempt.ACQUIRED
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != cfg.identity and not self._expired(spec):
            return Attempt.HELD
        try:
            self._observe(await self._call(self._api.replace, namespace=cfg.namespace, name=cfg.name,
                                           body=self._record(lease, now=now)))
        except Conflict:
            return Attempt.CONFLICT
        return Attempt.RENEWED if holder == cfg.identity else Attempt.ACQUIRED

    async def release(self) -> bool:
        """Give the Lease up if this process holds it (clean shutdown): standbys take it at once.

        Reads the Lease first: a renewal cancelled on its way out may still land (its request runs
        in the elector's thread), and a release written on the version before it would be a 409.
        """
        self._step_down("shutting down", level=logging.INFO)
        if self._lease is None:
            return False  # never reached the API server: nothing of ours to release
        for _ in range(2):
            try:
                lease = await self._call(self._api.read, namespace=self.config.namespace, name=self.config.name)
                spec = (lease or {}).get("spec") or {}
                if lease is None or spec.get("holderIdentity") != self.config.identity:
                    return False
                now = self._wall()
                released = {**lease, "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                                              "acquireTime": _micro_time(now), "renewTime": _micro_time(now)}}
                self._observe(await self._call(self._api.replace, namespace=self.config.namespace,
                                               name=self.config.name, body=released))
            except Conflict:
                continue  # written meanwhile: read it again
            except Exception as exc:
                logger.warning("could not release Lease %s (it expires on its own in %gs): %s", self.config.where,
                               self.config.lease_duration, _describe(exc))
                return False
            logger.info("released Lease %s", self.config.where)
            return True
        logger.warning("could not release Lease %s: it kept changing (it expires on its own in %gs)",
                       self.config.where, self.config.lease_duration)
        return False

    # -- helpers -------------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], **kwargs: Any) -> T:
        timeout = self.config.request_timeout
        return await kube.call(lambda: fn(timeout=timeout, **kwargs), retry=self.config.calls,
                               executor=self._executor)

    def _observe(self, lease: dict[str, Any]) -> None:
        """Remember the Lease; a new version restarts the expiry clock (client-go's observedTime)."""
        version = (lease.get("metadata") or {}).get("resourceVersion")
        previous = ((self._lease or {}).get("metadata") or {}).get("resourceVersion")
        if self._lease is None or version != previous:
            self._observed_at = self._clock()
        self._lease = lease

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = spec.get("leaseDurationSeconds") or self.config.lease_duration
        return bool(self._clock() >= self._observed_at + float(duration))

    def _spec(self, *, now: float, acquired: bool, transitions: int,
              acquire_time: str | None = None) -> dict[str, Any]:
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.config.lease_duration)),
            "acquireTime": _micro_time(now) if acquired or acquire_time is None else acquire_time,
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }

    def _record(self, lease: dict[str, Any], *, now: float) -> dict[str, Any]:
        """The Lease with us as holder, keeping its resourceVersion (the write's precondition)."""
        spec = lease.get("spec") or {}
        ours = spec.get("holderIdentity") == self.config.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        return {**lease, "spec": {**spec, **self._spec(now=now, acquired=not ours, transitions=transitions,
                                                      acquire_time=spec.get("acquireTime"))}}

    def _current_holder(self) -> str:
        return ((self._lease or {}).get("spec") or {}).get("holderIdentity") or ""

    def _step_down_if_overdue(self) -> None:
        if self.is_leader._event.is_set() and not self.is_leader.is_set():
            self._step_down(f"could not renew Lease {self.config.where} within the renew deadline "
                            f"({self.config.renew_deadline:g}s)")

    def _step_down(self, why: str, *, level: int = logging.WARNING) -> None:
        if self.is_leader._drop():
            logger.log(level, "stopped leading (Lease %s): %s", self.config.where, why)
            self._set_metric(0)
            self._holder = None

    def _report_error(self, exc: BaseException) -> None:
        message = _describe(exc)
        if message != self._last_error:  # once per distinct error, not every retry
            logger.warning("Lease %s: %s (retrying every %gs)", self.config.where, message, self.config.retry_period)
        else:
            logger.debug("Lease %s: %s", self.config.where, message)
        self._last_error = message

    def _set_metric(self, value: int) -> None:
        if self._metrics is not None:
            self._metrics.leader.labels(self.config.name).set(value)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    if isinstance(exc, TimeoutError):
        return "request timed out"
    return f"{type(exc).__name__}: {exc}"
