"""The Incident store: Incidents and their Events, over the Kubernetes API.

The API server is the only memory of what was done: every cycle the runner reads the policy's
Incidents from it, and every transition is written back before the next step is taken. That is
what makes a restart safe: a new process reads the same Incidents and goes on.

- Created with an ownerReference to the policy (deleting the policy deletes its Incidents), the
  label `homeostat.dev/policy`, and a name for humans: `<policy>-<yyyymmdd-hhmmss>` (UTC), with
  `-2`, `-3`... if that name is taken. A create whose answer was lost and is retried finds its
  own Incident under the name and adopts it instead of making a second one.
- Status writes carry the resourceVersion they were decided on. A 409 whose fresh copy has the
  same status (someone annotated the Incident meanwhile) is retried on the fresh copy; a 409
  whose status changed raises `Conflict`: the runner then decides again on fresh data.
- 429, 5xx and connection errors are retried with capped exponential backoff (`INCIDENT_CALLS`,
  through the one Kubernetes layer, `playbooks/kube.py`); a 409 is never retried blindly.

The official client blocks, so every call runs in a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from homeostat.api.base import API_VERSION, GROUP, VERSION
from homeostat.api.incident import IncidentSpec, IncidentStatus, InvolvedSeries
from homeostat.api.times import compact_time, format_time
from homeostat.playbooks import kube
from homeostat.playbooks.machine import IncidentView

logger = logging.getLogger(__name__)

PLURAL = "incidents"
POLICY_LABEL = "homeostat.dev/policy"
MANAGED_BY = {"app.kubernetes.io/managed-by": "homeostat"}
MAX_NAME = 253
T = TypeVar("T")


class Conflict(Exception):
    """The Incident changed on the server since it was read; decide again on fresh data."""


@dataclass(frozen=True, kw_only=True)
class ObjectRef:
    """What an Event is about."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str | None = None

    def to_wire(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "namespace": self.namespace}
        if self.uid:
            ref["uid"] = self.uid
        return ref


def label_value(name: str) -> str:
    """A policy name as a label value (at most 63 characters; longer names get a hash suffix)."""
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-.')}-{digest}"


def incident_name(policy: str, t: float, attempt: int = 1) -> str:
    suffix = f"-{compact_time(t)}" + (f"-{attempt}" if attempt > 1 else "")
    return policy[: MAX_NAME - len(suffix)].rstrip("-.") + suffix


def parse_incident(obj: Mapping[str, Any]) -> IncidentView | None:
    """An Incident object as a view; None (logged) when it does not fit the model."""
    meta = obj.get("metadata") or {}
    try:
        spec = IncidentSpec.model_validate(obj.get("spec") or {})
        status = IncidentStatus.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        logger.warning("Incident %s/%s ignored, it does not fit the model: %s",
                       meta.get("namespace"), meta.get("name"), exc)
        return None
    return IncidentView(
        name=meta["name"], namespace=meta.get("namespace") or "", spec=spec, status=status,
        annotations=dict(meta.get("annotations") or {}), labels=dict(meta.get("labels") or {}),
        resource_version=meta.get("resourceVersion"), uid=meta.get("uid"),
    )


INCIDENT_CALLS = kube.Retry(retry_on=kube.transient, attempts=5, base=0.2, cap=5.0, jitter=True, retry_after=False)
"""The store's calls: 429, 5xx and no answer, five attempts, 0.2 s doubling to 5 s; conflicts are
handled by each write (same status: again on the fresh copy; else `Conflict`)."""


class IncidentStore:
    """Reads and writes Incidents and posts Events; every call names its namespace."""

    def __init__(self, api_client: client.ApiClient, *, retry: kube.Retry = INCIDENT_CALLS,
                 request_timeout: float = 30.0) -> None:
        self._custom: Any = client.CustomObjectsApi(api_client)
        self._core: Any = client.CoreV1Api(api_client)
        self.retry = retry
        self.timeout = request_timeout
        self.instance = os.environ.get("HOSTNAME") or "homeostat"

    async def _call(self, operation: Callable[[], T]) -> T:
        """Run a blocking call in a thread, retried per this store's policy."""
        return await kube.call(operation, retry=self.retry)

    # --- reading ---------------------------------------------------------------------------------

    async def list_all(self, namespace: str) -> list[IncidentView]:
        """Every Incident in the namespace (the policy's, and others' on the same target)."""
        answer = await self._call(lambda: self._custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _request_timeout=self.timeout))
        views = (parse_incident(item) for item in answer.get("items") or [])
        return [view for view in views if view is not None]

    async def get(self, namespace: str, name: str) -> IncidentView | None:
        """One Incident, by a list with a field selector (the operator's RBAC grants list, not get)."""
        answer = await self._call(lambda: self._custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, field_selector=f"metadata.name={name}", _request_timeout=self.timeout))
        views = [view for view in map(parse_incident, answer.get("items") or []) if view is not None]
        return views[0] if views else None

    # --- writing ---------------------------------------------------------------------------------

    async def create(
        self, *, namespace: str, policy: str, policy_uid: str | None, spec: IncidentSpec, status: IncidentStatus,
        now: float,
    ) -> IncidentView:
        """Create an Incident named for humans, owned by its policy, then write its first status."""
        metadata: dict[str, Any] = {
            "namespace": namespace,
            "labels": {POLICY_LABEL: label_value(policy), **MANAGED_BY},
        }
        if policy_uid:
            metadata["ownerReferences"] = [{
                "apiVersion": API_VERSION, "kind": "AnomalyPolicy", "name": policy, "uid": policy_uid,
                "controller": True,
            }]
        created: IncidentView | None = None
        for attempt in range(1, 20):
            name = incident_name(policy, now, attempt)
            body = {"apiVersion": API_VERSION, "kind": "Incident", "metadata": {**metadata, "name": name},
                    "spec": spec.to_wire()}
            try:
                obj = await self._call(lambda body=body: self._custom.create_namespaced_custom_object(  # type: ignore[misc]
                    GROUP, VERSION, namespace, PLURAL, body, _request_timeout=self.timeout))
            except ApiException as exc:
                if exc.status != 409:
                    raise
                existing = await self.get(namespace, name)
                if (existing is not None and existing.spec.policy == policy
                        and existing.spec.detected_at == spec.detected_at):
                    created = existing  # our own create, answered by an error after all: adopt it
                    break
                continue  # the name is taken by another incident: next suffix
            created = parse_incident(obj)
            break
        if created is None:
            raise RuntimeError(f"could not name an Incident for policy {policy!r} at {format_time(now)}")
        return await self.write_status(created, status)

    async def write_status(self, view: IncidentView, status: IncidentStatus) -> IncidentView:
        """Replace the status (nulls clear fields), on the resourceVersion of `view`."""
        ns = view.namespace
        current = view
        for _ in range(5):
            body = {"metadata": {"resourceVersion": current.resource_version},
                    "status": status.model_dump(mode="json", by_alias=True)}
            try:
                obj = await self._call(lambda body=body: self._custom.patch_namespaced_custom_object_status(  # type: ignore[misc]
                    GROUP, VERSION, ns, PLURAL, view.name, body, _request_timeout=self.timeout))
            except ApiException as exc:
                if exc.status != 409:
                    raise
                fresh = await self.get(ns, view.name)
                if fresh is None or fresh.status != current.status:
                    raise Conflict(f"Incident {ns}/{view.name} changed since it was read") from exc
                current = fresh  # only its metadata changed (an annotation): same write, fresh version
                continue
            written = parse_incident(obj)
            if written is None:
                raise RuntimeError(f"Incident {ns}/{view.name} unreadable after writing its status")
            return written
        raise Conflict(f"Incident {ns}/{view.name} kept changing while its status was written")

    async def write_involved(self, view: IncidentView, involved: list[InvolvedSeries]) -> IncidentView:
        """Record more involved series (their band at the time they were confirmed) in the spec."""
        ns = view.namespace
        body = {"metadata": {"resourceVersion": view.resource_version},
                "spec": {"involved": [s.to_wire() for s in involved]}}
        try:
            obj = await self._call(lambda: self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, view.name, body, _request_timeout=self.timeout))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Incident {ns}/{view.name} changed since it was read") from exc
            raise
        written = parse_incident(obj)
        if written is None:
            raise RuntimeError(f"Incident {ns}/{view.name} unreadable after writing its spec")
        return written

    # --- events ----------------------------------------------------------------------------------

    async def post_event(self, *, about: ObjectRef, type: str, reason: str, message: str, now: float) -> None:
        """A core/v1 Event (what `kubectl describe` shows); a failure is logged, never raised."""
        stamp = format_time(now)
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{about.name}.{uuid.uuid4().hex[:16]}", "namespace": about.namespace},
            "involvedObject": about.to_wire(),
            "reason": reason, "message": message[:1024], "type": type,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "source": {"component": "homeostat"},
            "reportingComponent": "homeostat.dev/operator", "reportingInstance": self.instance,
        }
        try:
            await self._call(lambda: self._core.create_namespaced_event(
                about.namespace, body, _request_timeout=self.timeout))
        except (ApiException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
            logger.warning("Event %s on %s %s/%s not posted: %s", reason, about.kind, about.namespace, about.name,
                           getattr(exc, "reason", exc))


def incident_ref(view: IncidentView) -> ObjectRef:
    return ObjectRef(api_version=API_VERSION, kind="Incident", name=view.name, namespace=view.namespace, uid=view.uid)
