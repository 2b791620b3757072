"""A minimal kube-controller-manager: Deployments, ReplicaSets, StatefulSets, and a fake kubelet.

Runs as one asyncio task in the server's loop and writes through the same :class:`Store` as
clients do, so every change it makes is versioned and watchable:

* Deployment: a pod-template change (or creation) makes (or, on rollback, reuses) a ReplicaSet
  ``<deployment>-<hash>`` stamped with ``deployment.kubernetes.io/revision`` = the next revision
  (also put on the Deployment). The new ReplicaSet gets the desired replicas at once; the old ones
  are scaled to 0 once the new one is fully ready (a surge of 100%, no maxUnavailable steps).
  Old ReplicaSets beyond ``revisionHistoryLimit`` are deleted. Status and conditions follow.
* ReplicaSet: creates/deletes Pods to match ``spec.replicas``; deleted Pods are recreated.
* StatefulSet: one ControllerRevision per distinct template (``revision`` field), Pods
  ``<name>-0..N-1`` created in order (OrderedReady) or at once (Parallel), outdated Pods replaced
  from the highest ordinal, one at a time, once all are ready.
* "kubelet": a Pod becomes Running and Ready ``pod_ready_delay`` seconds after it was created.

Not emulated: DaemonSets, Jobs, HPA decisions, scheduling, probes, crash loops, image pulls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from typing import Any

from homeostat.api.times import now_rfc3339
from homeostat.lab.kube import errors
from homeostat.lab.kube.registry import ResourceType
from homeostat.lab.kube.selectors import selector_to_string
from homeostat.lab.kube.store import Store, clone

logger = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
HASH_LABEL = "pod-template-hash"
STS_HASH_LABEL = "controller-revision-hash"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
NODE = "homeostat-lab-node"


def template_hash(template: Any) -> str:
    """A stable, DNS-safe hash of a pod template (the real one is fnv32a; only stability matters)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def _without_hash(template: dict[str, Any], label: str) -> dict[str, Any]:
    result: dict[str, Any] = clone(template)
    labels = (result.get("metadata") or {}).get("labels") or {}
    labels.pop(label, None)
    return result


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or [])


def _owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _revision_label(pod: dict[str, Any]) -> str | None:
    labels: dict[str, str] = pod["metadata"].get("labels") or {}
    return labels.get(STS_HASH_LABEL)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _condition(kind: str, status: bool, reason: str, message: str,
               previous: list[dict[str, Any]]) -> dict[str, Any]:
    stamp = now_rfc3339()
    old = next((c for c in previous if c.get("type") == kind), None)
    text = "True" if status else "False"
    transition = old["lastTransitionTime"] if old and old.get("status") == text else stamp
    update = old["lastUpdateTime"] if old and old.get("reason") == reason and old.get("status") == text else stamp
    return {"type": kind, "status": text, "lastUpdateTime": update, "lastTransitionTime": transition,
            "reason": reason, "message": message}


class Controllers:
    """Reconciles all workloads whenever any of them (or their Pods) change."""

    WATCHED = (("apps/v1", "deployments"), ("apps/v1", "replicasets"), ("apps/v1", "statefulsets"),
               ("apps/v1", "controllerrevisions"), ("v1", "pods"))

    def __init__(self, store: Store, *, pod_ready_delay: float) -> None:
        self.store = store
        self.pod_ready_delay = pod_ready_delay
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    def rt(self, api_version: str, plural: str) -> ResourceType:
        return self.store.rt(api_version, plural)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for api_version, plural in self.WATCHED:
            watcher, _ = self.store.watch(self.rt(api_version, plural), None, None, None, loop=loop)
            self._tasks.append(asyncio.create_task(self._forward(watcher.queue)))
        self._dirty.set()
        self._tasks.append(asyncio.create_task(self._run()))

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _forward(self, queue: asyncio.Queue[Any]) -> None:
        while await queue.get() is not None:
            self._dirty.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.01)  # batch bursts of events into one pass
            self._dirty.clear()
            try:
                self.reconcile()
            except errors.ApiError as e:  # a race with a client (e.g. a 409): just try again
                logger.debug("controller pass interrupted: %s", e.message)
                self._dirty.set()
            except Exception:
                logger.exception("emulated controller failed")

    def reconcile(self) -> None:
        for deployment in self.store.list(self.rt("apps/v1", "deployments"), None)[0]:
            self._deployment(deployment)
        for rs in self.store.list(self.rt("apps/v1", "replicasets"), None)[0]:
            self._replicaset(rs)
        for sts in self.store.list(self.rt("apps/v1", "statefulsets"), None)[0]:
            self._statefulset(sts)

    # --- Deployments ----------------------------------------------------------------------------

    def _deployment(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        if meta.get("deletionTimestamp"):
            return
        rs_rt = self.rt("apps/v1", "replicasets")
        namespace, uid = meta["namespace"], meta["uid"]
        owned = [rs for rs in self.store.list(rs_rt, namespace)[0] if _owned_by(rs, uid)]
        template = spec.get("template") or {}
        desired = int(spec.get("replicas", 1))
        revision_of = {rs["metadata"]["name"]: int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
                       for rs in owned}
        top = max(revision_of.values(), default=0)
        current = next((rs for rs in owned if _without_hash(rs["spec"]["template"], HASH_LABEL) == template), None)
        if spec.get("paused") and current is None:
            return
        if current is None:
            current = self._create_replicaset(deployment, template, desired, top + 1)
        elif revision_of[current["metadata"]["name"]] < top:  # a rollback: re-stamp the old ReplicaSet
            annotations = dict(current["metadata"].get("annotations") or {})
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(revision_of[current["metadata"]["name"]])])
            annotations[REVISION] = str(top + 1)
            current = self._patch(rs_rt, current, {"metadata": {"annotations": annotations}})
        new_name = current["metadata"]["name"]
        if (current.get("spec") or {}).get("replicas") != desired:
            current = self._patch(rs_rt, current, {"spec": {"replicas": desired},
                                                   "metadata": {"annotations": {DESIRED: str(desired)}}})
        new_ready = int((current.get("status") or {}).get("readyReplicas", 0))
        olds = [rs for rs in owned if rs["metadata"]["name"] != new_name]
        if new_ready >= desired:
            for rs in olds:
                if (rs.get("spec") or {}).get("replicas", 0) != 0:
                    self._patch(rs_rt, rs, {"spec": {"replicas": 0}})
        limit = int(spec.get("revisionHistoryLimit", 10))
        idle = sorted((rs for rs in olds if (rs.get("spec") or {}).get("replicas", 0) == 0
                       and not (rs.get("status") or {}).get("replicas")),
                      key=lambda rs: revision_of.get(rs["metadata"]["name"], 0))
        for rs in idle[:max(0, len(idle) - limit)]:
            with contextlib.suppress(errors.ApiError):
                self.store.delete(rs_rt, namespace, rs["metadata"]["name"])
        revision = (current["metadata"].get("annotations") or {}).get(REVISION, "1")
        if (meta.get("annotations") or {}).get(REVISION) != revision:
            deployment = self._patch(self.rt("apps/v1", "deployments"), deployment,
                                     {"metadata": {"annotations": {REVISION: revision}}})
        self._deployment_status(deployment, current, olds)

    def _create_replicaset(self, deployment: dict[str, Any], template: dict[str, Any], replicas: int,
                           revision: int) -> dict[str, Any]:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        pod_hash = template_hash(template)
        rs_template = clone(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        body = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
                "labels": rs_template["metadata"]["labels"],
                "annotations": {REVISION: str(revision), DESIRED: str(replicas),
                                "deployment.kubernetes.io/max-replicas": str(replicas)},
                "ownerReferences": [_owner_ref(deployment)],
            },
            "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0),
                     "selector": selector, "template": rs_template},
        }
        return self.store.create(self.rt("apps/v1", "replicasets"), meta["namespace"], body)

    def _deployment_status(self, deployment: dict[str, Any], current: dict[str, Any],
                           olds: list[dict[str, Any]]) -> None:
        desired = int((deployment.get("spec") or {}).get("replicas", 1))
        statuses = [rs.get("status") or {} for rs in [current, *olds]]
        total = sum(int(s.get("replicas", 0)) for s in statuses)
        ready = sum(int(s.get("readyReplicas", 0)) for s in statuses)
        updated = int((current.get("status") or {}).get("replicas", 0))
        updated_ready = int((current.get("status") or {}).get("readyReplicas", 0))
        previous = (deployment.get("status") or {}).get("conditions") or []
        complete = updated_ready >= desired and total == updated
        available = ready >= desired
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": total, "updatedReplicas": updated, "readyReplicas": ready,
            "availableReplicas": ready, "unavailableReplicas": max(0, desired - ready),
            "conditions": [
                _condition("Available", available,
                           "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                           "Deployment has minimum availability." if available
                           else "Deployment does not have minimum availability.", previous),
                _condition("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                           f'ReplicaSet "{current["metadata"]["name"]}" '
                           f'{"has successfully progressed." if complete else "is progressing."}', previous),
            ],
        }
        for key in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas", "replicas"):
            if status[key] == 0:
                del status[key]  # omitempty, as the real API does
        if status != deployment.get("status"):
            self._write_status(self.rt("apps/v1", "deployments"), deployment, status)

    # --- ReplicaSets ----------------------------------------------------------------------------

    def _replicaset(self, rs: dict[str, Any]) -> None:
        meta, spec = rs["metadata"], rs.get("spec") or {}
        if meta.get("deletionTimestamp"):
            return
        pod_rt = self.rt("v1", "pods")
        pods = [p for p in self.store.list(pod_rt, meta["namespace"])[0] if _owned_by(p, meta["uid"])]
        alive = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        desired = int(spec.get("replicas", 1))
        for _ in range(desired - len(alive)):
            alive.append(self._create_pod(rs, spec.get("template") or {}, generate=f"{meta['name']}-"))
        if len(alive) > desired:
            doomed = sorted(alive, key=lambda p: (_ready(p), p["metadata"]["creationTimestamp"]))[:len(alive) - desired]
            for pod in doomed:
                with contextlib.suppress(errors.ApiError):
                    self.store.delete(pod_rt, meta["namespace"], pod["metadata"]["name"])
            alive = [p for p in alive if p not in doomed]
        ready = sum(1 for p in alive if _ready(p))
        status = {"replicas": len(alive), "fullyLabeledReplicas": len(alive), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": meta["generation"]}
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        if status != rs.get("status"):
            self._write_status(self.rt("apps/v1", "replicasets"), rs, status)

    # --- StatefulSets ---------------------------------------------------------------------------

    def _statefulset(self, sts: dict[str, Any]) -> None:
        meta, spec = sts["metadata"], sts.get("spec") or {}
        if meta.get("deletionTimestamp"):
            return
        namespace, name = meta["namespace"], meta["name"]
        cr_rt, pod_rt = self.rt("apps/v1", "controllerrevisions"), self.rt("v1", "pods")
        template = spec.get("template") or {}
        revisions = [cr for cr in self.store.list(cr_rt, namespace)[0] if _owned_by(cr, meta["uid"])]
        top = max((int(cr.get("revision", 0)) for cr in revisions), default=0)
        stored = {**clone(template), "$patch": "replace"}
        update = next((cr for cr in revisions if (cr.get("data") or {}).get("spec", {}).get("template") == stored),
                      None)
        if update is None:
            rev_hash = template_hash(template)
            update = self.store.create(cr_rt, namespace, {
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": f"{name}-{rev_hash}", "namespace": namespace,
                             "labels": {**((template.get("metadata") or {}).get("labels") or {}),
                                        STS_HASH_LABEL: f"{name}-{rev_hash}"},
                             "ownerReferences": [_owner_ref(sts)]},
                "data": {"spec": {"template": stored}},
                "revision": top + 1,
            })
        elif int(update.get("revision", 0)) < top:
            update = self.store.replace(cr_rt, namespace, update["metadata"]["name"],
                                        {**update, "revision": top + 1}, check_rv=False)
        update_name = update["metadata"]["name"]
        desired = int(spec.get("replicas", 1))
        pods = {p["metadata"]["name"]: p for p in self.store.list(pod_rt, namespace)[0] if _owned_by(p, meta["uid"])}
        parallel = spec.get("podManagementPolicy") == "Parallel"
        for ordinal in range(desired):
            pod_name = f"{name}-{ordinal}"
            if pod_name in pods:
                continue
            if not parallel and not all(_ready(pods[f"{name}-{i}"]) for i in range(ordinal) if f"{name}-{i}" in pods):
                break
            labels = {STS_HASH_LABEL: update_name, "statefulset.kubernetes.io/pod-name": pod_name,
                      "apps.kubernetes.io/pod-index": str(ordinal)}
            pods[pod_name] = self._create_pod(sts, template, name=pod_name, extra_labels=labels)
            if not parallel:
                break
        for pod_name, pod in sorted(pods.items(), key=lambda kv: -int(kv[0].rsplit("-", 1)[1])):
            if int(pod_name.rsplit("-", 1)[1]) >= desired and not pod["metadata"].get("deletionTimestamp"):
                with contextlib.suppress(errors.ApiError):
                    self.store.delete(pod_rt, namespace, pod_name)
        live = {n: p for n, p in pods.items() if int(n.rsplit("-", 1)[1]) < desired}
        outdated = [n for n, p in live.items() if _revision_label(p) != update_name]
        if outdated and all(_ready(p) for p in live.values()) and len(live) == desired:
            victim = max(outdated, key=lambda n: int(n.rsplit("-", 1)[1]))
            with contextlib.suppress(errors.ApiError):
                self.store.delete(pod_rt, namespace, victim)
        current_names = {_revision_label(p) for p in live.values()}
        current_revision = (sts.get("status") or {}).get("currentRevision", update_name)
        if not outdated or current_revision not in current_names:
            current_revision = update_name if not outdated else next(iter(current_names - {update_name}), update_name)
        ready = sum(1 for p in live.values() if _ready(p))
        status = {
            "observedGeneration": meta["generation"], "replicas": len(live), "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": sum(1 for p in live.values() if _revision_label(p) == current_revision),
            "updatedReplicas": len(live) - len(outdated), "currentRevision": current_revision,
            "updateRevision": update_name, "collisionCount": 0,
        }
        if status != sts.get("status"):
            self._write_status(self.rt("apps/v1", "statefulsets"), sts, status)

    # --- Pods and the fake kubelet --------------------------------------------------------------

    def _create_pod(self, owner: dict[str, Any], template: dict[str, Any], *, generate: str | None = None,
                    name: str | None = None, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
        tmeta = template.get("metadata") or {}
        metadata: dict[str, Any] = {
            "namespace": owner["metadata"]["namespace"],
            "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
            "ownerReferences": [_owner_ref(owner)],
        }
        if tmeta.get("annotations"):
            metadata["annotations"] = dict(tmeta["annotations"])
        if name is not None:
            metadata["name"] = name
        else:
            metadata["generateName"] = generate
        spec = clone(template.get("spec") or {})
        spec["nodeName"] = NODE
        pod = self.store.create(self.rt("v1", "pods"), owner["metadata"]["namespace"],
                                {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
        self._schedule_ready(pod)
        return pod

    def _schedule_ready(self, pod: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"])
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._mark_ready(*key)

        handle = loop.call_later(self.pod_ready_delay, fire)
        self._timers.add(handle)

    def _mark_ready(self, namespace: str, name: str, uid: str) -> None:
        pod_rt = self.rt("v1", "pods")
        try:
            pod = self.store.get(pod_rt, namespace, name)
        except errors.ApiError:
            return
        if pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            return
        stamp = now_rfc3339()
        containers = (pod.get("spec") or {}).get("containers") or []
        index = sum(ord(c) for c in uid) % 250 + 2
        status = {
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": f"10.244.0.{index}", "startTime": stamp,
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
            "conditions": [{"type": kind, "status": "True", "lastTransitionTime": stamp, "lastProbeTime": None}
                           for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c.get("name"), "image": c.get("image"), "imageID": "",
                                   "ready": True, "started": True, "restartCount": 0,
                                   "state": {"running": {"startedAt": stamp}}} for c in containers],
        }
        try:
            self._write_status(pod_rt, pod, status)
        except errors.ApiError:
            return

    # --- helpers --------------------------------------------------------------------------------

    def _patch(self, rt: ResourceType, obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return self.store.patch(rt, meta.get("namespace"), meta["name"], patch, "application/merge-patch+json")

    def _write_status(self, rt: ResourceType, obj: dict[str, Any], status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        current = self.store.get(rt, meta.get("namespace"), meta["name"])
        current["status"] = status
        self.store.replace(rt, meta.get("namespace"), meta["name"], current, subresource="status", check_rv=False)


__all__ = ["Controllers", "selector_to_string", "template_hash"]
