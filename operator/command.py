"""`homeostat run`: the operator process.

Builds the settings, metrics and API client once, registers the handlers with them, and
hands control to Kopf. `--dev` talks to the cluster of a local kubeconfig (or the lab's
emulator) and runs standalone, without Kopf's peering objects.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from homeostat.operator.settings import OperatorSettings


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
    parser.add_argument("--dry-run", action="store_true", help="operator-wide dry run: never change workloads")
    parser.add_argument("--max-concurrent-remediations", type=int, default=5, metavar="N",
                        help="operator-wide cap on incidents being remediated at once (blast radius)")
    parser.add_argument("--metrics-port", type=int, default=9464, help="port of /metrics (0: off)")
    parser.add_argument("--liveness-port", type=int, default=8080, help="port of /healthz (0: off)")
    parser.add_argument("--standalone", action="store_true", help="no Kopf peering (a single replica)")
    parser.add_argument("--peering", default=None, help="Kopf peering name (several replicas, one active)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import kopf

    from homeostat.operator.handlers import register_handlers
    from homeostat.operator.kube import KubeApi, load_api_client
    from homeostat.operator.loop import Dependencies
    from homeostat.operator.metrics import OperatorMetrics

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    out_of_cluster = args.dev or args.kubeconfig is not None
    settings = OperatorSettings(
        prometheus_url=args.prometheus_url,
        namespaces=tuple(args.namespace),
        dry_run=args.dry_run,
        max_concurrent_remediations=args.max_concurrent_remediations,
        metrics_port=args.metrics_port,
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
    )
    api_client = load_api_client(kubeconfig=args.kubeconfig or os.environ.get("KUBECONFIG") if out_of_cluster
                                 else None, in_cluster=not out_of_cluster)
    metrics = OperatorMetrics()
    if settings.metrics_port:
        metrics.serve(host=settings.metrics_host, port=settings.metrics_port)
    registry = kopf.OperatorRegistry()
    deps = Dependencies(settings=settings, metrics=metrics, kube=KubeApi(api_client),
                        remediation=build_remediator(api_client, settings=settings, metrics=metrics))
    register_handlers(registry=registry, deps=deps, in_cluster=not out_of_cluster)
    if out_of_cluster and args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # Kopf's own login reads it
    asyncio.run(kopf.operator(
        registry=registry,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        standalone=args.standalone or args.dev or args.peering is None,
        peering_name=args.peering,
        liveness_endpoint=settings.liveness_endpoint,
    ))
    return 0


def build_remediator(api_client: Any, *, settings: OperatorSettings, metrics: Any) -> Any:
    """The incident runner's dependencies: the Incident store, the actions, the operator-wide slots."""
    from homeostat.api.incident import IncidentPhase
    from homeostat.playbooks.actions import ACTIONS, notify, scale_out
    from homeostat.playbooks.base import ActionContext, ActionResult
    from homeostat.playbooks.guards import RemediationSlots
    from homeostat.playbooks.incidents import IncidentStore
    from homeostat.playbooks.kube import WorkloadApi
    from homeostat.playbooks.runner import Remediator

    async def escalation_notice(ctx: ActionContext) -> ActionResult:
        return await notify.send(ctx, phase=IncidentPhase.ESCALATED)

    return Remediator(
        store=IncidentStore(api_client), actions=ACTIONS, scale_back=scale_out.scale_back,
        escalation_notice=escalation_notice, workload_api=WorkloadApi(api_client),
        slots=RemediationSlots(settings.max_concurrent_remediations), metrics=metrics,
        operator_dry_run=settings.dry_run,
    )
