"""The few Kubernetes calls the monitor makes itself: status, target, secrets.

Kopf watches and posts Events; writing a daemon's status every interval, checking that the
target exists and reading a bearer-token Secret go through the official client here. The
client is blocking, so every call runs in a worker thread.

Every call has a timeout (`--kube-request-timeout`) and is made once: the client given here is
built by `single_attempt`, so urllib3 does not silently try a timed-out read three more times.
What fails (`KUBE_ERRORS`: an HTTP error answer, or no answer at all) is raised to the loop,
which reports it and tries again next cycle (docs/safety.md, "The Kubernetes API down").
"""

from __future__ import annotations

import asyncio
import base64
import copy
import http.client
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from homeostat import __version__
from homeostat.api.base import GROUP, VERSION
from homeostat.api.policy import TargetRef, WorkloadKind
from homeostat.operator.settings import DEFAULT_KUBE_REQUEST_TIMEOUT


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


KUBE_ERRORS: tuple[type[BaseException], ...] = (
    ApiException,  # the API server answered with an error
    urllib3.exceptions.HTTPError,  # no usable answer: timeouts, refused or reset connections (urllib3's)
    http.client.HTTPException,  # a broken HTTP exchange that urllib3 did not wrap
    OSError,  # ConnectionError, TimeoutError, socket errors
)
"""What a Kubernetes call of the operator raises when the API server fails or cannot be reached."""


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


def single_attempt(api_client: client.ApiClient) -> client.ApiClient:
    """A client like `api_client` (same server, credentials and User-Agent) whose requests urllib3
    never retries, so that a call takes at most its timeout; the caller decides what to do next
    (the monitor tries again next cycle, the Incident store after its own backoff).

    The actions keep the shared client: urllib3 retries their idempotent reads."""
    configuration = copy.deepcopy(api_client.configuration)
    configuration.retries = False
    single = client.ApiClient(configuration)
    single.user_agent = api_client.user_agent
    return single


class KubeApi:
    """Typed, async-friendly wrappers over the calls the monitor needs, each with a timeout."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float = DEFAULT_KUBE_REQUEST_TIMEOUT) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self.timeout = request_timeout

    async def patch_policy_status(self, *, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (lists in it are replaced whole)."""
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, "anomalypolicies", name, {"status": status}, _request_timeout=self.timeout,
        )

    async def read_target_metadata(self, *, namespace: str, target: TargetRef) -> dict[str, Any] | None:
        """The target workload's metadata (uid, annotations), or None when it does not exist."""
        read = (
            self._apps.read_namespaced_deployment
            if target.kind == WorkloadKind.DEPLOYMENT
            else self._apps.read_namespaced_stateful_set
        )
        try:
            obj: Any = await asyncio.to_thread(read, target.name, namespace, _request_timeout=self.timeout)
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
            secret = await asyncio.to_thread(self._core.read_namespaced_secret, name, namespace,
                                             _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        value = (secret.data or {}).get(key)
        return base64.b64decode(value).decode() if value is not None else None
