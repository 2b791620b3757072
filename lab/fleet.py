"""A fleet of simulated services, each a Deployment in the emulated API server, exporting real metrics.

Each `FleetService` is a Deployment (`app=<name>`, container `app`, image
`example.com/<name>:1.0`) in the fleet's namespace and a `/metrics` endpoint of its own (one
scrape target per service, one `pod` label per pod). The fleet follows the cluster the way the
processes of a real workload would: every tick it reads the pods of the namespace and serves
the offered load on the **ready** pods of each service, split evenly (`lab/model.py` has the
equations). So what Homeostat's actions do to a Deployment has the effect it would have:

* a scale-out adds ready pods after the emulator's `pod_ready_delay`: less load per pod,
  lower latency;
* a restart (`kubectl.kubernetes.io/restartedAt` on the template) or any new revision replaces
  the pods: the new processes start with fresh counters and per-process state (a leak's age);
* a rollout to another image changes what the pods run: a fault can tie its effect to an
  image (`BadRelease`), and a rollback to the previous revision takes it away.

A pod exports from the moment it is ready until it is deleted or no longer ready; then its
series disappear from the endpoint (Prometheus marks them stale), like a dead process's.

Typical use, with `EmulatedCluster` and `PrometheusServer` (see docs/lab.md)::

    fleet = Fleet(cluster=cluster, services=["checkout", "payments"], namespace="shop",
                  day_seconds=1200, seed=7).deploy()
    prometheus = PrometheusServer(scrape_interval=1.0, targets=fleet.targets)
    now = time.time()
    prometheus.import_history(fleet.history(start=now - 1800, end=now, step=1.0))
    with fleet.start(), prometheus:
        fleet.inject(BadRelease(), service="checkout")
        ...

Public API: `Fleet(cluster=, services=, namespace="shop", day_seconds=86400.0, seed=0,
tick=0.25)`, `.services`, `.service(name)`, `.targets`, `.deploy(timeout=)`, `.pods()`,
`.settled(name)`, `.wait_settled(timeout=)`, `.history(start=, end=, step=, job=)`,
`.inject(fault, service=, now=)`, `.start()`, `.stop()` (also a context manager);
`FleetService.name/.namespace/.profile/.target/.pods/.behaviour/.effects/.add_effect/.remove_effect`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from homeostat.lab.exporter import Exporter
from homeostat.lab.harness import deployment
from homeostat.lab.model import Effect, Pod, PodBehaviour, ServiceProfile, ServiceSim
from homeostat.lab.service import RequestCounters, RequestMetrics, Series, append_history

if TYPE_CHECKING:
    from homeostat.lab.faults import Fault
    from homeostat.lab.kube import EmulatedCluster

logger = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
_LIVE, _HISTORY = 0, 1  # random streams of a service: live serving, and histories


def _stamp(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _controller(obj: dict[str, Any], kind: str) -> str | None:
    return next((ref["name"] for ref in obj["metadata"].get("ownerReferences") or []
                 if ref.get("kind") == kind and ref.get("controller")), None)


def ready_pods(cluster: EmulatedCluster, *, namespace: str, services: Collection[str]) -> dict[str, list[Pod]]:
    """The ready pods of each Deployment named in `services`, oldest first, as read from the API now.

    A pod belongs to a service when its controller is a ReplicaSet whose controller is that
    Deployment; its revision is the ReplicaSet's `deployment.kubernetes.io/revision`, its start
    `status.startTime` (set by the kubelet when the process starts; else its creation).
    """
    owners: dict[str, tuple[str, int]] = {}
    for rs in cluster.list("apps/v1", "replicasets", namespace):
        name = _controller(rs, "Deployment")
        if name is not None and name in services:
            owners[rs["metadata"]["name"]] = (name, int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")))
    found: dict[str, list[Pod]] = {name: [] for name in services}
    for pod in cluster.list("v1", "pods", namespace):
        owner = owners.get(_controller(pod, "ReplicaSet") or "")
        if owner is None or not _is_ready(pod):
            continue
        started = _stamp((pod.get("status") or {}).get("startTime")) or _stamp(pod["metadata"]["creationTimestamp"])
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        found[owner[0]].append(Pod(name=pod["metadata"]["name"], started=started or 0.0, revision=owner[1],
                                   image=str(containers[0].get("image", ""))))
    for pods in found.values():
        pods.sort(key=lambda p: (p.started, p.name))
    return found


class FleetService:
    """One service of the fleet: its model, its pods' counters and its /metrics endpoint."""

    def __init__(self, *, profile: ServiceProfile, namespace: str, day_seconds: float, seed: int, index: int) -> None:
        self.profile = profile
        self.name = profile.name
        self.namespace = namespace
        self.day_seconds = day_seconds
        self._seed = (seed, index)
        self.exporter = Exporter()
        self.metrics = RequestMetrics(namespace=namespace, service=profile.name, registry=self.exporter.registry)
        self.sim = ServiceSim(profile=profile, day_seconds=day_seconds,
                              rng=np.random.default_rng([seed, index, _LIVE]))
        self._pods: list[Pod] = []
        self._behaviour: list[PodBehaviour] = []
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        """`host:port` of this service's /metrics, for Prometheus."""
        return self.exporter.target

    @property
    def pods(self) -> list[Pod]:
        """The pods that served in the last tick (the ready pods of the Deployment then)."""
        with self._lock:
            return list(self._pods)

    @property
    def behaviour(self) -> list[PodBehaviour]:
        """What each pod did in the last tick: its load, utilisation, median latency, failures."""
        with self._lock:
            return list(self._behaviour)

    @property
    def effects(self) -> list[Effect]:
        with self._lock:
            return list(self.sim.effects)

    def add_effect(self, effect: Effect) -> None:
        with self._lock:
            self.sim.add_effect(effect)

    def remove_effect(self, effect: Effect) -> None:
        with self._lock:
            self.sim.remove_effect(effect)

    def manifest(self) -> dict[str, Any]:
        """The Deployment of this service, as created by `Fleet.deploy`."""
        return deployment(self.name, self.namespace, replicas=self.profile.replicas)

    def step(self, *, t: float, dt: float, pods: Sequence[Pod]) -> None:
        """Serve the last `dt` seconds up to `t` on `pods`; forget the counters of pods that are gone."""
        with self._lock:
            served = self.sim.serve(t=t, dt=dt, pods=pods)
            self.metrics.retain(pod.name for pod in pods)
            for now, sample in served:
                self.metrics.record(now.pod.name, sample)
            self._pods = list(pods)
            self._behaviour = [now for now, _ in served]

    def history(self, *, start: float, end: float, step: float, pods: Sequence[Pod], job: str = "lab") -> Series:
        """The cumulative series of `pods` from `start` to `end` (exclusive) every `step` seconds.

        The same model and daily cycle as live, healthy (no effects), from a random stream of
        its own: the same arguments and seed give the same history, and making one changes
        nothing live. Labelled as the scrape of `target` by `job`, so live samples continue
        the same series (the live counters start from zero: an ordinary counter reset).
        """
        sim = ServiceSim(profile=self.profile, day_seconds=self.day_seconds,
                         rng=np.random.default_rng([*self._seed, _HISTORY]))
        counters = {pod.name: RequestCounters() for pod in pods}
        labels = {pod.name: {"namespace": self.namespace, "service": self.name, "pod": pod.name,
                             "instance": self.target, "job": job} for pod in pods}
        out: Series = {}
        for t in np.arange(start, end, step):
            for now, sample in sim.serve(t=float(t), dt=step, pods=pods):
                counters[now.pod.name].add(sample)
                append_history(out, counters=counters[now.pod.name], labels=labels[now.pod.name], t=float(t))
        return out


class Fleet:
    """N simulated services bound to an `EmulatedCluster`; see the module docstring."""

    def __init__(
        self,
        *,
        cluster: EmulatedCluster,
        services: Sequence[str | ServiceProfile],
        namespace: str = "shop",
        day_seconds: float = 86400.0,
        seed: int = 0,
        tick: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        profiles = [ServiceProfile(name=s) if isinstance(s, str) else s for s in services]
        names = [p.name for p in profiles]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique: {names}")
        self.cluster = cluster
        self.namespace = namespace
        self.day_seconds = day_seconds
        self.seed = seed
        self.tick = tick
        self.services = [FleetService(profile=profile, namespace=namespace, day_seconds=day_seconds, seed=seed,
                                      index=index) for index, profile in enumerate(profiles)]
        self._by_name = {s.name: s for s in self.services}
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    def service(self, name: str) -> FleetService:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no service {name!r} in the fleet; it has {sorted(self._by_name)}") from None

    @property
    def targets(self) -> list[str]:
        """The /metrics endpoints, one per service, for `PrometheusServer(targets=...)`."""
        return [s.target for s in self.services]

    # -- the cluster side ------------------------------------------------------------------
    def deploy(self, *, timeout: float = 30.0) -> Self:
        """Create the namespace and each service's Deployment (those missing), and wait until all are settled."""
        if self.cluster.get("v1", "namespaces", None, self.namespace) is None:
            self.cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}})
        for service in self.services:
            if self.cluster.get("apps/v1", "deployments", self.namespace, service.name) is None:
                self.cluster.apply(service.manifest())
        return self.wait_settled(timeout=timeout)

    def pods(self) -> dict[str, list[Pod]]:
        """The ready pods of every service, read from the API server now."""
        return ready_pods(self.cluster, namespace=self.namespace, services=self._by_name)

    def settled(self, name: str) -> bool:
        """Is the rollout of this service's Deployment done: the controller has seen its latest spec,
        and exactly `spec.replicas` pods are ready, all of the Deployment's current revision?"""
        obj = self.cluster.get("apps/v1", "deployments", self.namespace, name)
        if obj is None:
            return False
        if int((obj.get("status") or {}).get("observedGeneration", 0)) < int(obj["metadata"].get("generation", 1)):
            return False  # the controller has not seen the latest spec yet: its revision may be about to change
        revision = int((obj["metadata"].get("annotations") or {}).get(REVISION, "-1"))
        pods = self.pods()[name]
        return len(pods) == int(obj["spec"].get("replicas", 1)) and all(p.revision == revision for p in pods)

    def wait_settled(self, *, timeout: float = 30.0, services: Collection[str] | None = None) -> Self:
        """Wait until every service (or those named) is `settled`; TimeoutError names those that are not."""
        names = list(services) if services is not None else list(self._by_name)
        deadline = time.monotonic() + timeout
        pending = names
        while time.monotonic() < deadline:
            pending = [name for name in names if not self.settled(name)]
            if not pending:
                return self
            time.sleep(0.1)
        raise TimeoutError(f"Deployments not settled after {timeout}s: {pending}")

    # -- the metrics side ------------------------------------------------------------------
    def history(self, *, start: float, end: float, step: float = 1.0, job: str = "lab") -> Series:
        """Healthy past of every service for `PrometheusServer.import_history`, on the pods ready now.

        `deploy()` first: the history continues the series of the pods that will serve live.
        """
        pods = self.pods()
        missing = [s.name for s in self.services if not pods[s.name]]
        if missing:
            raise RuntimeError(f"no ready pods for {missing}: deploy() the fleet before making its history")
        out: Series = {}
        for service in self.services:
            out.update(service.history(start=start, end=end, step=step, pods=pods[service.name], job=job))
        return out

    def inject(self, fault: Fault, *, service: str, now: float | None = None) -> Fault:
        """`fault.inject(service=..., cluster=...)` on the named service; returns the fault."""
        fault.inject(service=self.service(service), cluster=self.cluster, now=now)
        return fault

    def step(self, *, dt: float) -> None:
        """One tick: read the ready pods, and serve `dt` seconds up to now on them."""
        now = self._clock()
        pods = self.pods()
        for service in self.services:
            service.step(t=now, dt=dt, pods=pods[service.name])

    def _run(self) -> None:
        last = self._clock()
        while not self._stop.wait(self.tick):
            now = self._clock()
            try:
                self.step(dt=now - last)
            except Exception:  # a failed tick must not stop the fleet; the next one reads afresh
                logger.exception("fleet tick failed")
            last = now

    def start(self) -> Self:
        """Serve: start every /metrics endpoint and the tick thread (pods exported from the first read)."""
        if self._started:
            return self
        for service in self.services:
            service.exporter.start()
        self._started = True
        self._stop.clear()
        self.step(dt=0.0)  # every ready pod is exported (at zero) before the first scrape
        self._thread = threading.Thread(target=self._run, name="lab-fleet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the tick thread and every endpoint; the Deployments stay in the cluster."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
        if self._started:
            for service in self.services:
                service.exporter.stop()
            self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
