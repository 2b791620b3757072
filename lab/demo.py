"""`homeostat demo`: the whole loop on one machine, no cluster needed.

Starts the emulated Kubernetes API, a simulated `checkout` service exporting real metrics, a
real Prometheus scraping it, and the operator as its own process; applies a policy; shows
what `kubectl get ap` would show while a latency fault comes and goes; then stops every
process it started, whatever happens (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from homeostat.lab.prometheus import INSTALL_HINT, PrometheusMissing, find_prometheus

API = "homeostat.dev/v1alpha1"
NAMESPACE = "shop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--history", type=float, default=1800.0,
                        help="seconds of healthy past imported into Prometheus (detectors back-fill it)")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds shown before the fault")
    parser.add_argument("--fault", type=float, default=25.0, help="seconds the latency fault lasts")
    parser.add_argument("--recovery", type=float, default=15.0, help="seconds shown after the fault clears")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between status lines")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this folder")


def demo_policy() -> dict[str, Any]:
    """The checkout example, sped up for a demo: 1 s scrapes, 2 s evaluations."""
    return {
        "apiVersion": API,
        "kind": "AnomalyPolicy",
        "metadata": {"name": "checkout-latency", "namespace": NAMESPACE},
        "spec": {
            "target": {"kind": "Deployment", "name": "checkout"},
            "interval": "2s",
            "lookback": "20m",
            "evaluationDelay": "1s",
            "staleness": "10s",
            "signals": [
                {
                    "name": "latency-p99",
                    "query": 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket'
                             '{namespace="shop", service="checkout"}[10s])))',
                    "direction": "up",
                },
                {
                    "name": "error-ratio",
                    # `or vector(0)`: no 5xx series at all means no errors, not no data
                    "query": '(sum(rate(http_requests_total{namespace="shop", service="checkout", code=~"5.."}'
                             '[10s])) or vector(0)) / sum(rate(http_requests_total{namespace="shop", '
                             'service="checkout"}[10s]))',
                    "direction": "up",
                },
            ],
            "confirm": {"k": 3, "n": 4},
            "playbook": {"dryRun": True, "steps": [{"action": "restart"}]},
        },
    }


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "-"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return f"{max(0, int((datetime.now(UTC) - then).total_seconds()))}s"


def render(obj: dict[str, Any]) -> list[str]:
    """What `kubectl get ap` shows, then one line per signal: value, expected band, verdict."""
    status = obj.get("status") or {}
    lines = [
        f"{'NAME':<18} {'TARGET':<10} {'PHASE':<10} {'SIGNALS':<14} {'LAST-EVAL':<10} {'INCIDENT':<9}",
        f"{obj['metadata']['name']:<18} {obj['spec']['target']['name']:<10} {status.get('phase', '-'):<10} "
        f"{status.get('signalsSummary') or '-':<14} {_age(status.get('lastEvaluation')):<10} "
        f"{status.get('activeIncident') or '<none>':<9}",
    ]
    for row in status.get("signals", []):
        series = (row.get("series") or [{}])[0]
        value, expected = series.get("value"), series.get("expected")
        lower, upper = series.get("lower"), series.get("upper")
        band = f"[{lower:.4g}, {upper:.4g}]" if lower is not None and upper is not None else "[learning]"
        shown = f"{value:.4g}" if value is not None else "-"
        exp = f"{expected:.4g}" if expected is not None else "-"
        lines.append(f"  {row['name']:<12} value {shown:<9} expected {exp:<9} band {band:<22} "
                     f"{series.get('verdict', row['verdict']):<9} {series.get('reason', '')[:48]}")
    return lines


class _Interrupted(Exception):
    pass


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into an exception so every `finally` runs and stops its process."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        find_prometheus()
    except PrometheusMissing:
        print(f"homeostat demo: Prometheus is needed and was not found; {INSTALL_HINT}", file=sys.stderr)
        return 3
    from homeostat.api.crds import crd_manifests
    from homeostat.lab.harness import OperatorProcess, deployment
    from homeostat.lab.kube import EmulatedCluster
    from homeostat.lab.prometheus import PrometheusServer
    from homeostat.lab.service import SimulatedService

    workdir = Path(args.keep or tempfile.mkdtemp(prefix="homeostat-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", file=out, flush=True)

    shown: dict[str, Any] = {"key": None, "at": 0.0}

    def show(seconds: float, cluster: Any) -> None:
        """Print the table when the phase or a verdict changes, and every 6 s otherwise."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            obj = cluster.get(API, "anomalypolicies", NAMESPACE, "checkout-latency")
            status = (obj or {}).get("status") or {}
            key = (status.get("phase"), tuple((s["name"], s["verdict"]) for s in status.get("signals", [])))
            if obj and (key != shown["key"] or time.monotonic() - shown["at"] >= 6):
                shown.update(key=key, at=time.monotonic())
                say("kubectl get ap")
                for line in render(obj):
                    print("    " + line, file=out)
                print(file=out, flush=True)
            time.sleep(args.interval)

    with _interruptible(), contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(EmulatedCluster(crds=crd_manifests()))
            say(f"emulated Kubernetes API on {cluster.url} (kubeconfig {cluster.kubeconfig_path})")
            cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            cluster.apply(deployment("checkout", NAMESPACE, replicas=3))
            service = SimulatedService(name="checkout", namespace=NAMESPACE, seed=7).start()
            stack.callback(service.stop)
            say(f"simulated service `checkout` (3 pods) exporting metrics on {service.target}")
            prometheus = PrometheusServer(scrape_interval=1.0, targets=[service.target])
            now = time.time()
            prometheus.import_history(service.history(start=now - args.history, end=now - 1, step=1.0,
                                                      instance=service.target))
            stack.enter_context(prometheus)
            say(f"Prometheus {prometheus.url} scraping it every 1s, with {args.history / 60:.0f} minutes of "
                "healthy history imported by promtool")
            operator = OperatorProcess(kubeconfig=cluster.kubeconfig_path, prometheus_url=prometheus.url,
                                       log_path=workdir / "operator.log", extra=[])
            stack.callback(operator.stop)
            operator.wait_ready()
            say(f"operator running (pid {operator.process.pid}, log {workdir / 'operator.log'})")
            cluster.apply(demo_policy())
            say("applied AnomalyPolicy shop/checkout-latency; the operator back-fills its detectors "
                "(kubectl get ap):")
            show(args.warmup, cluster)
            say("FAULT: checkout latency x4 (a slow dependency)")
            service.model.latency_factor = 4.0
            show(args.fault, cluster)
            say("fault cleared")
            service.model.latency_factor = 1.0
            show(args.recovery, cluster)
            if args.keep:
                import yaml

                final = cluster.get(API, "anomalypolicies", NAMESPACE, "checkout-latency")
                (workdir / "checkout-latency.yaml").write_text(yaml.safe_dump(final, sort_keys=False))
                say(f"the policy as `kubectl get ap -o yaml` shows it: {workdir / 'checkout-latency.yaml'}")
            events = [e for e in cluster.events(NAMESPACE)
                      if (e.get("involvedObject") or e.get("regarding") or {}).get("name") == "checkout-latency"]
            say("Events on the policy (kubectl get events):")
            for event in events:
                print(f"    {event.get('type', ''):<8} {event.get('reason', ''):<18} {event.get('message', '')[:100]}",
                      file=out)
        except _Interrupted as exc:
            say(f"interrupted ({exc}); stopping everything")
            return 130
        finally:
            say("stopping the operator, Prometheus, the service and the API server")
    say("done; no process left behind")
    return 0
