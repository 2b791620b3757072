"""The few Kubernetes calls the monitor makes itself: status, target, secrets.

Kopf watches and posts Events; writing a daemon's status every interval, checking that the
target exists and reading a bearer-token Secret go through the official client here. The
client is blocking, so every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from homeostat import __version__
from homeostat.api.base import GROUP, VERSION
from homeostat.api.policy import TargetRef, WorkloadKind


def load_api_client(*, kubeconfig: str | None = None, in_cluster: bool | None = None) -> client.ApiClient:
    """An API client from the pod's service account, or from a kubeconfig in dev mode.

    Its requests say `User-Agent: homeostat/<version>` (Kopf's own say `kopf/<version>`), so audit
    logs and the RBAC test can tell the operator's requests from anyone else's.
    """
    configuration = client.Configuration()
    api_client: client.ApiClient | None = None
    if in_cluster or (in_cluster is None and kubeconfig is None):
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api_client = client.ApiClient(configuration)
        except config.ConfigException:
            if in_cluster:
                raise
    if api_client is None:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        api_client = client.ApiClient(configuration)
    api_client.user_agent = f"homeostat/{__version__}"
    return api_client


def rolled_out(workload: Any) -> bool:
    """Is the workload's rollout complete, every replica updated and available (`kubectl rollout status`)?

    Verification starts when an action has taken effect: until then old pods still serve.
    """
    meta, spec, status = workload.metadata, workload.spec, workload.status
    if status is None or (status.observed_generation or 0) < (meta.generation or 0):
        return False
    desired = spec.replicas if spec.replicas is not None else 1
    updated = status.updated_replicas or 0
    if isinstance(workload, client.V1StatefulSet):
        same_revision = status.update_revision is None or status.update_revision == status.current_revision
        return same_revision and updated >= desired and (status.ready_replicas or 0) >= desired
    total = status.replicas or 0
    return updated >= desired and total == updated and (status.available_replicas or 0) >= updated


class KubeApi:
    """Typed, async-friendly wrappers over the calls the monitor needs."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)

    async def patch_policy_status(self, *, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (lists in it are replaced whole)."""
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, "anomalypolicies", name, {"status": status},
        )

    async def read_target_metadata(self, *, namespace: str, target: TargetRef) -> dict[str, Any] | None:
        """The target workload's metadata (uid, annotations), or None when it does not exist."""
        read = (
            self._apps.read_namespaced_deployment
            if target.kind == WorkloadKind.DEPLOYMENT
            else self._apps.read_namespaced_stateful_set
        )
        try:
            obj: Any = await asyncio.to_thread(read, target.name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        meta = obj.metadata
        return {"uid": meta.uid, "annotations": dict(meta.annotations or {}), "settled": rolled_out(obj)}

    async def target_exists(self, *, namespace: str, target: TargetRef) -> bool:
        return await self.read_target_metadata(namespace=namespace, target=target) is not None

    async def read_secret_key(self, *, namespace: str, name: str, key: str) -> str | None:
        """The decoded value of a Secret's key, or None when the Secret or key is missing."""
        try:
            secret = await asyncio.to_thread(self._core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        value = (secret.data or {}).get(key)
        return base64.b64decode(value).decode() if value is not None else None
