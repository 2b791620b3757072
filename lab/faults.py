"""Faults to inject into a fleet service, each with the remedy that should fix it.

A fault is a model `Effect` (`lab/model.py`) that starts when it is injected, plus, for a bad
release, the change a real deploy makes through the API. Each says which action of a playbook
should remedy it (`remedy`), or None when no action can:

* `BadRelease` (remedy `rollback`): rolls out a new image (tag `-bad`) the way `kubectl set image`
  does; requests to the pods running it fail with `failure_rate` (500). The previous
  revision's pods are clean, so rolling back removes it.
* `MemoryLeak` (remedy `restart`): a pod's median latency x (1 + growth * seconds since its
  leak began). The pods running at injection leak from then; a pod started later (a restart)
  only `onset` seconds after its start.
* `TrafficSurge` (remedy `scale-out`): offered load x `factor`, reached linearly over `ramp`
  seconds; the load per pod, so the queueing latency, rises. Enough more ready replicas bring
  the load per pod, so the latency, back.
* `DependencyOutage` (remedy None: escalate): `failure_rate` of the requests fail with 503 on
  every pod, whatever the replicas, revision or restarts, for `duration` seconds.
* `NoisyHealthy` (remedy None: nothing should happen): load noise x `noise` and bursts
  `bursts` times as frequent, of the usual size; no change of level.

Use: ``fault.inject(service=fleet.service("checkout"), cluster=cluster)`` (or
``fleet.inject(fault, service="checkout")``), later ``fault.clear()``. ``fault.start(now=...)``
turns the effect on without a cluster or a fleet, for the model's tests and offline runs
(`ServiceSim.add_effect(fault)`); `inject` is `start` plus what the fault does to the cluster.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, ClassVar, Self

import httpx

from homeostat.lab.model import Effect, Pod

if TYPE_CHECKING:
    from homeostat.lab.fleet import FleetService
    from homeostat.lab.kube import EmulatedCluster

USER_AGENT = "homeostat-lab-faults"  # how the fault's own requests appear in `cluster.requests`


class Fault(Effect):
    """An effect active from `injected_at` until `clear()` or the end of `duration` seconds."""

    name: ClassVar[str]
    remedy: ClassVar[str | None]  # the playbook action that should fix it; None: nothing should be done

    def __init__(self, *, duration: float | None = None) -> None:
        self.duration = duration
        self.injected_at: float | None = None
        self.cleared_at: float | None = None
        self._service: FleetService | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(injected_at={self.injected_at}, cleared_at={self.cleared_at})"

    def active(self, t: float) -> bool:
        if self.injected_at is None or t < self.injected_at:
            return False
        if self.cleared_at is not None and t >= self.cleared_at:
            return False
        return self.duration is None or t < self.injected_at + self.duration

    def start(self, *, now: float) -> Self:
        """Turn the model effect on at `now` (nothing else: no cluster, no service)."""
        self.injected_at = now
        self.cleared_at = None
        return self

    def inject(self, *, service: FleetService, cluster: EmulatedCluster | None = None,
               now: float | None = None) -> Self:
        """Make the fault happen to `service` at `now` (default: now): the cluster change, then the effect."""
        self._change(service=service, cluster=cluster)
        self.start(now=time.time() if now is None else now)
        service.add_effect(self)
        self._service = service
        return self

    def clear(self, *, now: float | None = None) -> None:
        """End the effect (a bad release's image stays rolled out: undoing it is the remedy's job)."""
        self.cleared_at = time.time() if now is None else now
        if self._service is not None:
            self._service.remove_effect(self)
            self._service = None

    def _change(self, *, service: FleetService, cluster: EmulatedCluster | None) -> None:
        """What the fault does to the cluster when injected; most faults do nothing there."""


class BadRelease(Fault):
    """A release whose pods fail `failure_rate` of their requests; rolled out through the API."""

    name = "bad-release"
    remedy = "rollback"

    def __init__(self, *, failure_rate: float = 0.3, tag_suffix: str = "-bad", container: str = "app",
                 duration: float | None = None) -> None:
        super().__init__(duration=duration)
        self.failure_rate = failure_rate
        self.tag_suffix = tag_suffix
        self.container = container
        self.image: str | None = None  # the bad image, once rolled out

    def bad(self, pod: Pod) -> bool:
        """Does this pod run the bad release?"""
        return pod.image.endswith(self.tag_suffix)

    def error_rate(self, pod: Pod, t: float) -> float:
        return self.failure_rate if self.active(t) and self.bad(pod) else 0.0

    def _change(self, *, service: FleetService, cluster: EmulatedCluster | None) -> None:
        """`kubectl set image deployment/<name> app=<image>-bad`: a strategic-merge patch of the template."""
        if cluster is None:
            raise ValueError("a bad release is rolled out through the API: pass the cluster")
        url = f"{cluster.url}/apis/apps/v1/namespaces/{service.namespace}/deployments/{service.name}"
        with httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=10) as client:
            current = client.get(url)
            current.raise_for_status()
            containers = current.json()["spec"]["template"]["spec"].get("containers") or []
            image = next((c.get("image", "") for c in containers if c.get("name") == self.container), None)
            if image is None:
                raise ValueError(f"Deployment {service.namespace}/{service.name} has no container {self.container!r}")
            self.image = image if image.endswith(self.tag_suffix) else image + self.tag_suffix
            patch = {"spec": {"template": {"spec": {"containers": [{"name": self.container, "image": self.image}]}}}}
            done = client.patch(url, content=json.dumps(patch),
                                headers={"Content-Type": "application/strategic-merge-patch+json"})
            done.raise_for_status()


class MemoryLeak(Fault):
    """Latency that creeps up with each process's age; a restart (new pods) resets it for `onset` seconds."""

    name = "memory-leak"
    remedy = "restart"

    def __init__(self, *, growth: float = 0.08, onset: float = 300.0, duration: float | None = None) -> None:
        super().__init__(duration=duration)
        self.growth = growth  # latency factor added per second of leaking
        self.onset = onset  # seconds a fresh process runs before its leak shows

    def leaking_since(self, pod: Pod) -> float:
        """When this pod's leak began: at injection for the pods already running, `onset` after start for others."""
        injected = self.injected_at if self.injected_at is not None else math.inf
        return injected if pod.started < injected else pod.started + self.onset

    def latency_factor(self, pod: Pod, t: float) -> float:
        if not self.active(t):
            return 1.0
        return 1.0 + self.growth * max(0.0, t - self.leaking_since(pod))


class TrafficSurge(Fault):
    """Offered load `factor` times higher, reached linearly over `ramp` seconds."""

    name = "traffic-surge"
    remedy = "scale-out"

    def __init__(self, *, factor: float = 2.5, ramp: float = 3.0, duration: float | None = None) -> None:
        super().__init__(duration=duration)
        self.factor = factor
        self.ramp = ramp

    def load_factor(self, t: float) -> float:
        if not self.active(t) or self.injected_at is None:
            return 1.0
        progress = min(1.0, (t - self.injected_at) / self.ramp) if self.ramp > 0 else 1.0
        return 1.0 + (self.factor - 1.0) * progress


class DependencyOutage(Fault):
    """A dependency is down: `failure_rate` of all requests fail with 503 on every pod, whatever is done."""

    name = "dependency-outage"
    remedy = None
    error_code = "503"

    def __init__(self, *, failure_rate: float = 0.4, duration: float | None = 120.0) -> None:
        super().__init__(duration=duration)
        self.failure_rate = failure_rate

    def error_rate(self, pod: Pod, t: float) -> float:
        return self.failure_rate if self.active(t) else 0.0


class NoisyHealthy(Fault):
    """A noisier but healthy period: more load noise and more frequent bursts of the usual size."""

    name = "noisy-healthy"
    remedy = None

    def __init__(self, *, noise: float = 2.0, bursts: float = 4.0, duration: float | None = None) -> None:
        super().__init__(duration=duration)
        self.noise = noise
        self.bursts = bursts

    def noise_factor(self, t: float) -> float:
        return self.noise if self.active(t) else 1.0

    def burst_factor(self, t: float) -> float:
        return self.bursts if self.active(t) else 1.0
