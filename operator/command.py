"""`homeostat run`: the operator process.

Builds the settings, metrics and API client once, registers the handlers with them, and
hands control to Kopf. `--dev` talks to the cluster of a local kubeconfig (or the lab's
emulator) and runs standalone, without Kopf's peering objects.

Several replicas: `--leader-election` (the default in a cluster) runs a Lease elector beside
Kopf; every replica watches, only the Lease's holder evaluates and acts, and the Lease is
released after Kopf has stopped every policy's daemon. Large clusters: `--shard-index I
--shard-count N` runs only the policies of shard I, with its own Lease. See docs/ha.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from homeostat.operator.leadership import (
    DEFAULT_LEASE_NAME,
    DEFAULT_LEASE_NAMESPACE,
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    Leadership,
    default_namespace,
)
from homeostat.operator.settings import DEFAULT_KUBE_REQUEST_TIMEOUT, OperatorSettings

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from homeostat.operator.metrics import OperatorMetrics
    from homeostat.playbooks.remediator import Remediator


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="watch only this namespace (repeatable; glob patterns allowed)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    parser.add_argument("--dev", action="store_true",
                        help="use the local kubeconfig ($KUBECONFIG or ~/.kube/config) and run standalone")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (implies out-of-cluster)")
    parser.add_argument("--prometheus-url", default=os.environ.get("HOMEOSTAT_PROMETHEUS_URL"),
                        help="Prometheus used by policies that name none [$HOMEOSTAT_PROMETHEUS_URL]")
    parser.add_argument("--allow-host", action="append", default=[], metavar="PATTERN",
                        help="a host a policy's spec.prometheus.url or webhook URL may name (repeatable: host, "
                             "host:port, *.suffix, or * for any); the host of --prometheus-url always may, and "
                             "no other unless listed (docs/safety.md)")
    parser.add_argument("--require-namespace-matcher", action="store_true",
                        help='refuse a signal query with a selector lacking namespace="<the policy\'s namespace>" '
                             "(a Prometheus shared by several teams)")
    parser.add_argument("--dry-run", action="store_true", help="operator-wide dry run: never change workloads")
    parser.add_argument("--max-concurrent-remediations", type=int, default=5, metavar="N",
                        help="operator-wide cap on incidents being remediated at once (blast radius)")
    parser.add_argument("--kube-request-timeout", type=_positive, default=DEFAULT_KUBE_REQUEST_TIMEOUT,
                        metavar="SECONDS",
                        help="how long one Kubernetes request of a policy's monitor or of the Incident store may "
                             "take (status, target, Secret, Incidents, Events; default: %(default)g)")
    parser.add_argument("--metrics-port", type=int, default=9464, help="port of /metrics (0: off)")
    parser.add_argument("--liveness-port", type=int, default=8080, help="port of /healthz (0: off)")
    parser.add_argument("--standalone", action="store_true",
                        help="no Kopf peering (the default; several replicas use --leader-election)")
    parser.add_argument("--peering", default=None,
                        help="Kopf peering name (not leader election: see docs/ha.md before using it)")
    ha = parser.add_argument_group("high availability and sharding (docs/ha.md)")
    ha.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=None,
                    help="only the holder of a coordination.k8s.io Lease acts; the other replicas stand by "
                         "(default: on in a cluster, off with --dev or --kubeconfig)")
    ha.add_argument("--lease-name", default=DEFAULT_LEASE_NAME,
                    help="the Lease's name; with several shards, NAME-shard-I (default: %(default)s)")
    ha.add_argument("--lease-namespace", default=None,
                    help=f"the Lease's namespace (default: $POD_NAMESPACE, else {DEFAULT_LEASE_NAMESPACE})")
    ha.add_argument("--lease-duration", type=float, default=LEASE_DURATION, metavar="SECONDS",
                    help="how long a standby waits after the last renewal it saw (default: %(default)g)")
    ha.add_argument("--renew-deadline", type=float, default=RENEW_DEADLINE, metavar="SECONDS",
                    help="the leader stops acting when it could not renew for this long (default: %(default)g)")
    ha.add_argument("--retry-period", type=float, default=RETRY_PERIOD, metavar="SECONDS",
                    help="how often to try to acquire or renew the Lease (default: %(default)g)")
    ha.add_argument("--shard-index", type=int, default=0, metavar="I",
                    help="run only the policies of shard I (0-based; default: %(default)s)")
    ha.add_argument("--shard-count", type=int, default=1, metavar="N",
                    help="the number of shards; a policy is in shard sha256(namespace/name) mod N (default: 1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import kopf

    from homeostat.api.hosts import HostAllowList
    from homeostat.operator.handlers import register_handlers
    from homeostat.operator.kube import KubeApi, load_api_client, single_attempt
    from homeostat.operator.leadership import KubeLeaseApi, LeaderElector, LeaseConfig, default_identity
    from homeostat.operator.loop import Dependencies
    from homeostat.operator.metrics import OperatorMetrics
    from homeostat.operator.sharding import Shard

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    out_of_cluster = args.dev or args.kubeconfig is not None
    try:
        shard = Shard(index=args.shard_index, count=args.shard_count)
        lease = LeaseConfig(
            name=shard.lease_name(args.lease_name), namespace=args.lease_namespace or default_namespace(),
            identity=default_identity(), lease_duration=args.lease_duration, renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
        )
    except ValueError as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 2
    leader_election = (not out_of_cluster) if args.leader_election is None else args.leader_election
    if leader_election:
        # Import every detector before starting, not on a policy's first monitor in the event loop:
        # that takes seconds on a busy node (river, numpy), and a standby that has just taken over
        # would stall its own Lease renewals with it. (This is for time only: the registry's lazy
        # set-up is thread-safe, under a lock.)
        from homeostat.detectors import registry as detectors

        detectors.names()
    settings = OperatorSettings(
        prometheus_url=args.prometheus_url,
        namespaces=tuple(args.namespace),
        dry_run=args.dry_run,
        max_concurrent_remediations=args.max_concurrent_remediations,
        kube_request_timeout=args.kube_request_timeout,
        metrics_port=args.metrics_port,
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
        leader_election=leader_election,
        lease=lease if leader_election else None,
        shard=shard,
        allowed_hosts=HostAllowList.of(prometheus_url=args.prometheus_url, patterns=args.allow_host),
        require_namespace_matcher=args.require_namespace_matcher,
    )
    api_client = load_api_client(kubeconfig=args.kubeconfig or os.environ.get("KUBECONFIG") if out_of_cluster
                                 else None, in_cluster=not out_of_cluster)
    # Which replica made a request, in audit logs (and the tests' request log): `homeostat/0.1.0 (pod)`.
    api_client.user_agent = f"{api_client.user_agent} ({lease.identity})"
    metrics = OperatorMetrics()
    if settings.metrics_port:
        metrics.serve(host=settings.metrics_host, port=settings.metrics_port)
    elector = (LeaderElector(api=KubeLeaseApi(api_client), config=settings.lease, metrics=metrics)
               if settings.lease is not None else None)
    leadership = elector.is_leader if elector is not None else None
    registry = kopf.OperatorRegistry()
    # The monitor's own calls are made once each, with a timeout: the next cycle is the retry.
    kube = KubeApi(single_attempt(api_client), request_timeout=settings.kube_request_timeout)
    deps = Dependencies(settings=settings, metrics=metrics, kube=kube,
                        remediation=build_remediator(api_client, settings=settings, metrics=metrics,
                                                     leadership=leadership),
                        leadership=leadership)
    register_handlers(registry=registry, deps=deps, in_cluster=not out_of_cluster, shard=shard)
    if out_of_cluster and args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # Kopf's own login reads it
    if shard.sharded:
        logging.getLogger(__name__).info("running the policies of %s (sha256(namespace/name) mod %d)",
                                         shard, shard.count)

    def operator(stop_flag: asyncio.Event) -> Coroutine[Any, Any, None]:
        return kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            standalone=args.standalone or args.dev or args.peering is None,
            peering_name=args.peering,
            liveness_endpoint=settings.liveness_endpoint,
            stop_flag=stop_flag,
        )

    return asyncio.run(_operate(operator, elector=elector))


async def _operate(operator: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, elector: Any) -> int:
    """Kopf, with the Lease elector beside it.

    The Lease is released only once Kopf has stopped (every policy's daemon is cancelled by then),
    so no two replicas ever act at once. Should the elector itself die (a bug: it survives every
    API error), Kopf is stopped and the process fails, rather than standing by forever."""
    stop = asyncio.Event()
    # Started before Kopf, so that Kopf's shutdown does not count it among its own tasks to cancel.
    election = asyncio.create_task(elector.run(), name="leader-election") if elector is not None else None
    if election is not None:
        election.add_done_callback(lambda _: stop.set())
    try:
        await operator(stop)
    finally:
        if election is not None and not election.done():
            election.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await election
    if election is not None and not election.cancelled() and election.exception() is not None:
        logging.getLogger(__name__).critical("leader election failed; the operator stops",
                                             exc_info=election.exception())
        return 1
    return 0


def build_remediator(
    api_client: ApiClient, *, settings: OperatorSettings, metrics: OperatorMetrics, leadership: Leadership | None = None
) -> Remediator:
    """The incident runner's dependencies (`playbooks.remediator.operator_remediator`), over this
    API client: the Incident store and the workload API, the operator-wide limits, and the
    leadership as the fence before every action and every Incident write."""
    from homeostat.operator.kube import single_attempt
    from homeostat.playbooks.incidents import IncidentStore
    from homeostat.playbooks.kube import WorkloadApi
    from homeostat.playbooks.remediator import operator_remediator

    return operator_remediator(
        # Each request once, with a timeout; the store retries what is transient with its own backoff.
        store=IncidentStore(single_attempt(api_client), request_timeout=settings.kube_request_timeout),
        workload_api=WorkloadApi(api_client),
        max_concurrent=settings.max_concurrent_remediations,
        metrics=metrics,
        operator_dry_run=settings.dry_run,
        fence=leadership,
        allowed_hosts=settings.host_allow_list,
    )
