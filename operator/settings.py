"""Operator-wide settings, built once from the command line and passed in explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field

from homeostat.api.hosts import HostAllowList
from homeostat.operator.leadership import LeaseConfig
from homeostat.operator.sharding import Shard

DEFAULT_KUBE_REQUEST_TIMEOUT = 10.0
"""Seconds one Kubernetes request of a policy loop may take (`--kube-request-timeout`)."""


@dataclass(frozen=True, kw_only=True)
class OperatorSettings:
    """What every policy monitor shares; nothing here is read from globals."""

    prometheus_url: str | None = None  # used when a policy names none
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    dry_run: bool = False  # operator-wide dry run: decide and record, never change workloads
    metrics_port: int = 9464  # 0 disables the metrics endpoint
    metrics_host: str = "0.0.0.0"
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    status_interval_floor: float = 1.0  # never evaluate more often than this, whatever a spec says
    max_concurrent_remediations: int = 5  # operator-wide blast radius (per process: per shard)
    kube_request_timeout: float = DEFAULT_KUBE_REQUEST_TIMEOUT  # per request of a policy loop
    leader_election: bool = False  # several replicas, one acting: the holder of `lease`
    lease: LeaseConfig | None = None  # set when leader_election is on
    shard: Shard = field(default_factory=Shard)  # which policies this instance runs (all by default)
    allowed_hosts: HostAllowList | None = None  # hosts a policy's URLs may name; None: --prometheus-url's only
    require_namespace_matcher: bool = False  # every selector must carry namespace="<policy's namespace>"

    @property
    def host_allow_list(self) -> HostAllowList:
        """The hosts a policy's Prometheus and webhook URLs may name (api/hosts.py)."""
        return self.allowed_hosts or HostAllowList.of(prometheus_url=self.prometheus_url)
