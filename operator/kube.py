"""The monitor's Kubernetes client and calls: building the client, the policy status, the target, Secrets.

Kopf watches and posts Events; building the API client (its User-Agent), writing a daemon's
status every interval, reading the target workload and a bearer-token Secret are here, over
the one Kubernetes layer (`homeostat.playbooks.kube`, which says how every call is made).

Every call has a timeout (`--kube-request-timeout`) and is made once (`MONITOR_CALLS`): the client
given here is built by `single_attempt`, so urllib3 does not silently try a timed-out read three
more times. What fails (`KUBE_ERRORS`: an HTTP error answer, or no answer at all) is raised to the
loop, which reports it and tries again next cycle (docs/safety.md, "The Kubernetes API down").
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from homeostat import __version__
from homeostat.api.base import GROUP, VERSION
from homeostat.api.policy import TargetRef
from homeostat.operator.settings import DEFAULT_KUBE_REQUEST_TIMEOUT
from homeostat.playbooks import kube


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


MONITOR_CALLS = kube.Retry(retry_on=kube.never, attempts=1)
"""The monitor's calls: each made once, no deadline beyond the request's timeout; the next cycle is the retry."""


class KubeApi:
    """Async wrappers over the calls the monitor needs, each with a timeout, each made once."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float = DEFAULT_KUBE_REQUEST_TIMEOUT) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._workloads = kube.WorkloadApi(api_client, retry=MONITOR_CALLS, request_timeout=request_timeout)
        self.timeout = request_timeout

    async def patch_policy_status(self, *, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (lists in it are replaced whole)."""
        await kube.call(lambda: self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "anomalypolicies", name, {"status": status}, _request_timeout=self.timeout,
        ), retry=MONITOR_CALLS)

    async def read_target_metadata(self, *, namespace: str, target: TargetRef) -> dict[str, Any] | None:
        """The target workload's metadata (uid, annotations) and whether it is rolled out; None when
        it does not exist."""
        try:
            obj = await self._workloads.read_workload(namespace=namespace, kind=target.kind, name=target.name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        meta = obj.get("metadata") or {}
        return {"uid": meta.get("uid"), "annotations": dict(meta.get("annotations") or {}),
                "settled": kube.rolled_out(obj, kind=target.kind)}

    async def read_secret_key(self, *, namespace: str, name: str, key: str) -> str | None:
        """The decoded value of a Secret's key, or None when the Secret or key is missing."""
        return await self._workloads.read_secret_key(namespace=namespace, name=name, key=key)
