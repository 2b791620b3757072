"""Scale benchmark of the operator (run on demand; prints figures, asserts nothing).

    python bench/scale.py                          # 100 and 1,000 policies (6-15 minutes)
    python bench/scale.py --policies 100           # one size
    python bench/scale.py --policies 10000         # only when asked: prints its estimate first
    python bench/scale.py --profile out/           # also py-spy the operator after each measurement
    python bench/scale.py --prometheus-max-connections 4096   # past Prometheus' 512-connection limit
    python bench/scale.py --policies 1000 --incidents 200     # with old Incidents in the namespace

For every N it runs, on this machine and all at once:

* one exporter (this process) serving ``bench_latency_seconds{policy="p0042", pod="p0042-3"}``
  for N policies x 10 pods, a deterministic noise around a per-pod level that changes every
  ``--interval`` seconds;
* a real Prometheus (``PrometheusServer``) scraping it every ``--interval``, with ``--lookback``
  of the same series imported by ``promtool`` first, so every detector is warm from its
  back-fill (the default detector needs 288 points: 72 minutes at 15 s);
* the emulated API server, ``EmulatedCluster(crds=crd_manifests(), controllers=False)``, in its own
  process (``python -m homeostat.lab.kube --no-controllers``) so that its CPU is measured apart;
* ``homeostat run --dev`` (``OperatorProcess``) and N AnomalyPolicies in namespace ``bench``, each
  with one signal ``max by (pod) (bench_latency_seconds{policy="pXXXX"})`` (10 series) at
  ``interval: 15s``, and the Deployment each one targets.

Once every policy has been evaluated with warm detectors and one more interval has passed, it
measures over ``--cycles`` intervals:

* the operator's CPU seconds per evaluation cycle (one cycle: every policy evaluated once), from
  ``/proc/<pid>/stat`` utime+stime, and its RSS (``VmRSS``, peak ``VmHWM``);
* evaluations done against evaluations scheduled (N per interval);
* evaluation lag: the operator's ``homeostat_evaluation_lag_seconds`` (how late a cycle started),
  sampled three times an interval, max and p95 over policies and samples; and how old each
  policy's ``status.lastEvaluation`` is when read (staleness, at most one interval when on time;
  the field has whole seconds, so up to a second more);
* Prometheus instant-query latency from ``homeostat_query_duration_seconds`` (mean, p50, p99
  interpolated in the histogram's buckets, as ``histogram_quantile`` does);
* detector CPU (``homeostat_detector_seconds_total``);
* the CPU of everything else sharing the machine: Prometheus, the emulator, this process
  (exporter and polling), and the whole machine from ``/proc/stat``.

Targets (the scale issue): one instance with 1,000 policies x 10 series at 15 s under 1 core and
1 GiB, lag under one interval.

``OperatorProcess`` always passes ``-v`` (debug logs, meant for tests); production runs without
it, so this benchmark drops it unless ``--debug-log`` is given (at 100 policies it costs about 5 %).

Prometheus runs with its defaults, like a real one: it accepts 512 connections
(``--web.max-connections``), and the operator keeps one per policy, so at 1,000 policies part of them
never get an answer. ``--prometheus-max-connections`` raises the limit to measure the operator past
that. ``--incidents K`` adds K resolved Incidents to the namespace, which every policy's cycle lists.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import numpy as np
import yaml
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from homeostat.api.crds import crd_manifests
from homeostat.lab import harness
from homeostat.lab.exporter import Exporter
from homeostat.lab.harness import OperatorProcess, deployment, policy
from homeostat.lab.prometheus import PrometheusServer

NAMESPACE = "bench"
METRIC = "bench_latency_seconds"
API = "/apis/homeostat.dev/v1alpha1"
TICK = os.sysconf("SC_CLK_TCK")
TARGETS = {"cores": 1.0, "rss_mib": 1024.0}


# --- the fleet: N policies x S pods, the same values live and in the imported history ------------


def policy_name(index: int) -> str:
    return f"p{index:04d}"


def fleet_values(n_series: int, step: int) -> np.ndarray:
    """Every series' value at time step `step`: a per-series level (50-150 ms) times a +-5 %
    noise from a hash of (series, step). Deterministic, so history and live scrapes agree."""
    index = np.arange(n_series, dtype=np.float64)
    level = 0.05 + 0.1 * ((index * 0.618034) % 1.0)
    u = np.sin(index * 12.9898 + step * 78.233) * 43758.5453
    return level * (1.0 + 0.1 * (u - np.floor(u) - 0.5))


class FleetCollector(Collector):
    """`bench_latency_seconds{policy, pod}` for the whole fleet, computed at scrape time."""

    def __init__(self, *, policies: int, pods: int, period: float) -> None:
        self.labels = [(policy_name(p), f"{policy_name(p)}-{s}") for p in range(policies) for s in range(pods)]
        self.period = period

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(METRIC, "bench latency", labels=["policy", "pod"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(METRIC, "bench latency", labels=["policy", "pod"])
        values = fleet_values(len(self.labels), int(time.time() // self.period)).tolist()
        for labels, value in zip(self.labels, values, strict=True):
            family.add_metric(labels, value)
        yield family


def import_history(server: PrometheusServer, *, target: str, labels: list[tuple[str, str]], period: float,
                   seconds: float) -> int:
    """Write `seconds` of the fleet's past into Prometheus' TSDB with promtool, streaming.

    `PrometheusServer.import_history` holds every sample line in memory (about 7 GB for 10,000
    policies); this writes the same OpenMetrics file series by series instead.
    """
    now_step = int(time.time() // period)
    steps = np.arange(now_step - int(seconds // period), now_step)  # ends one period before now
    values = np.stack([fleet_values(len(labels), int(step)) for step in steps], axis=1)
    source = server.dir / "history.om"
    with source.open("w") as out:
        out.write(f"# TYPE {METRIC} gauge\n")
        stamps = [f"{step * period:.3f}" for step in steps.tolist()]
        for row, (pname, pod) in enumerate(labels):
            head = f'{METRIC}{{instance="{target}",job="lab",pod="{pod}",policy="{pname}"}} '
            out.writelines(f"{head}{value!r} {stamp}\n" for value, stamp in zip(values[row].tolist(), stamps,
                                                                                    strict=True))
        out.write("# EOF\n")
    (server.dir / "data").mkdir(exist_ok=True)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(server.dir / "data")],
        capture_output=True, text=True, timeout=3600,
    )
    source.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"promtool could not import history: {done.stderr.strip() or done.stdout.strip()}")
    return int(values.size)


# --- processes ----------------------------------------------------------------------------------


class Emulator:
    """`EmulatedCluster(crds=crd_manifests(), controllers=False)` in a child process of its own."""

    def __init__(self, workdir: Path) -> None:
        crds = workdir / "crds"
        crds.mkdir()
        for index, crd in enumerate(crd_manifests()):
            (crds / f"{index}.yaml").write_text(yaml.safe_dump(crd))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "homeostat.lab.kube", "--no-controllers", "--crds", str(crds)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=workdir,  # not the repository: `-m` would let its operator/ shadow the stdlib's
        )
        assert self.process.stdout is not None
        self.url = self.kubeconfig = ""
        for line in self.process.stdout:
            if line.startswith("Emulated Kubernetes API on "):
                self.url = line.split()[-1]
            elif line.startswith("export KUBECONFIG="):
                self.kubeconfig = line.strip().split("=", 1)[1]
                break
        if not self.kubeconfig:
            raise RuntimeError(f"the emulator did not start (exit {self.process.poll()})")
        self.http = httpx.Client(base_url=self.url, timeout=120)

    def create(self, path: str, body: dict[str, Any]) -> None:
        response = self.http.post(path, json=body)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")

    def patch_status(self, path: str, status: dict[str, Any]) -> None:
        response = self.http.patch(f"{path}/status", content=json.dumps({"status": status}),
                                   headers={"Content-Type": "application/merge-patch+json"})
        if response.status_code != 200:
            raise RuntimeError(f"PATCH {path}/status: {response.status_code} {response.text[:300]}")

    def policies(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.http.get(f"{API}/namespaces/{NAMESPACE}/anomalypolicies").json()["items"]
        return items

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def without_debug_logging(enabled: bool) -> Iterator[None]:
    """Start `OperatorProcess` without the `-v` it always passes (debug logs cost CPU at scale)."""
    if not enabled:
        yield
        return
    real = subprocess.Popen

    def popen(args: list[str], **kwargs: Any) -> Any:
        return real([a for a in args if a != "-v"], **kwargs)

    with mock.patch.object(harness.subprocess, "Popen", popen):
        yield


# --- measuring ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[17])


def memory_mib(pid: int) -> dict[str, float]:
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0]) / 1024
    return found


def connections_to(port: int) -> int:
    """Established TCP connections whose remote end is 127.0.0.1:`port` (clients of that server)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICK, sum(values) / TICK


@dataclass
class Scrape:
    """The operator's metrics that the benchmark reads, summed over policies."""

    evaluations: Counter[str] = field(default_factory=Counter)
    per_policy: Counter[str] = field(default_factory=Counter)
    lag: list[float] = field(default_factory=list)
    buckets: dict[str, dict[float, float]] = field(default_factory=lambda: defaultdict(dict))
    counts: Counter[str] = field(default_factory=Counter)
    sums: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    detector_seconds: float = 0.0
    series_tracked: float = 0.0


def scrape(operator: OperatorProcess) -> Scrape:
    found = Scrape()
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "homeostat_evaluations_total":
                found.evaluations[labels["outcome"]] += value
                found.per_policy[labels["policy"]] += value
            elif name == "homeostat_evaluation_lag_seconds":
                found.lag.append(value)
            elif name == "homeostat_query_duration_seconds_bucket":
                found.buckets[labels["kind"]][float(labels["le"])] = value
            elif name == "homeostat_query_duration_seconds_count":
                found.counts[labels["kind"]] += value
            elif name == "homeostat_query_duration_seconds_sum":
                found.sums[labels["kind"]] += value
            elif name == "homeostat_query_errors_total":
                found.errors[labels["reason"]] += value
            elif name == "homeostat_detector_seconds_total":
                found.detector_seconds += value
            elif name == "homeostat_series_tracked":
                found.series_tracked += value
    return found


def bucket_quantile(q: float, buckets: dict[float, float]) -> float:
    """`histogram_quantile` over cumulative bucket counts (linear within a bucket)."""
    bounds = sorted(buckets)
    total = buckets[math.inf] if bounds else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (keeps inf: a policy never evaluated is infinitely stale)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def staleness(items: list[dict[str, Any]], now: float) -> list[float]:
    from datetime import datetime

    ages = []
    for item in items:
        stamp = (item.get("status") or {}).get("lastEvaluation")
        ages.append(now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else math.inf)
    return ages


# --- one run ------------------------------------------------------------------------------------


@dataclass
class Args:
    policies: int
    pods: int
    interval: float
    cycles: int
    lookback: float
    debug_log: bool
    profile: Path | None
    keep: Path | None
    warmup_timeout: float
    incidents: int
    prometheus_max_connections: int | None


def old_incident(index: int, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A resolved Incident of some other, long-gone policy: what accumulates in a namespace."""
    def stamp(ago: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - ago))

    name = f"old-{index:05d}"
    body = {
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "Incident",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"policy": f"retired-{index % 50}", "target": {"kind": "Deployment", "name": f"retired-{index % 50}"},
                 "detectedAt": stamp(86400 + index), "signal": "latency",
                 "involved": [{"signal": "latency", "labels": {"pod": f"retired-{index % 50}-1"}, "observed": 0.9,
                               "expected": 0.1, "lower": 0.08, "upper": 0.12, "score": 0.99}]},
    }
    events = ["Detected", "ActionIntended", "ActionSucceeded", "VerificationStarted", "Resolved"]
    status = {
        "phase": "Resolved", "phaseSince": stamp(86000 + index), "currentStep": 0, "lastAction": "restart Succeeded",
        "resolvedAt": stamp(86000 + index),
        "actions": [{"key": f"{name}/0/0", "step": 0, "action": "restart", "state": "Succeeded",
                     "startedAt": stamp(86300 + index), "finishedAt": stamp(86290 + index),
                     "message": "restarted deployment"}],
        "timeline": [{"time": stamp(86400 - 60 * k + index), "event": event, "message": f"{event} (bench)"}
                     for k, event in enumerate(events)],
    }
    return body, status


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_one(args: Args) -> dict[str, Any]:
    n, interval = args.policies, args.interval
    workdir = Path(tempfile.mkdtemp(prefix=f"homeostat-scale-{n}-"))
    result: dict[str, Any] = {"policies": n, "series": n * args.pods, "interval": interval,
                              "incidents": args.incidents}
    exporter = Exporter()
    exporter.registry.register(FleetCollector(policies=n, pods=args.pods, period=interval))
    exporter.start()
    flags = [f"--web.max-connections={args.prometheus_max_connections}"] if args.prometheus_max_connections else []
    prometheus = PrometheusServer(scrape_interval=interval, targets=[exporter.target], extra_flags=flags)
    emulator: Emulator | None = None
    operator: OperatorProcess | None = None
    try:
        started = time.monotonic()
        labels = [(policy_name(p), f"{policy_name(p)}-{s}") for p in range(n) for s in range(args.pods)]
        samples = import_history(prometheus, target=exporter.target, labels=labels, period=interval,
                                 seconds=args.lookback + 5 * interval)
        result["history_s"] = time.monotonic() - started
        log(f"history: {samples:,} samples imported by promtool in {result['history_s']:.0f}s")
        prometheus.start(timeout=300)
        emulator = Emulator(workdir)
        emulator.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": NAMESPACE}})
        for p in range(n):
            emulator.create(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
                            deployment(policy_name(p), NAMESPACE, replicas=args.pods))
        for index in range(args.incidents):
            body, status = old_incident(index, time.time())
            emulator.create(f"{API}/namespaces/{NAMESPACE}/incidents", body)
            emulator.patch_status(f"{API}/namespaces/{NAMESPACE}/incidents/{body['metadata']['name']}", status)
        with without_debug_logging(not args.debug_log):
            operator = OperatorProcess(kubeconfig=Path(emulator.kubeconfig), prometheus_url=prometheus.url,
                                       log_path=workdir / "operator.log", extra=[])
        operator.wait_ready(timeout=60)
        pid = operator.process.pid
        lookback = f"{int(args.lookback // 60)}m"
        applied = time.monotonic()
        for p in range(n):
            name = policy_name(p)
            emulator.create(f"{API}/namespaces/{NAMESPACE}/anomalypolicies", policy(name, {
                "target": {"kind": "Deployment", "name": name},
                "interval": f"{interval:g}s",
                "lookback": lookback,
                "signals": [{"name": "latency", "query": f'max by (pod) ({METRIC}{{policy="{name}"}})'}],
            }, NAMESPACE))
        result["apply_s"] = time.monotonic() - applied
        log(f"{n} policies applied in {result['apply_s']:.1f}s; waiting until each is evaluated, warm")

        deadline = applied + args.warmup_timeout
        phases: Counter[str] = Counter()
        last_report = applied
        while True:
            items = emulator.policies()
            phases = Counter((i.get("status") or {}).get("phase", "none") for i in items)
            ready = sum(phases[p] for p in ("Healthy", "Anomalous"))
            if ready == n or time.monotonic() > deadline:
                break
            if operator.process.poll() is not None:
                raise RuntimeError(f"the operator exited:\n{operator.log()}")
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                now = scrape(operator)
                log(f"phases {dict(phases)}; evaluations {dict(now.evaluations)}; "
                    f"connections to Prometheus {connections_to(prometheus.port)}; "
                    f"query errors {dict(now.errors)}; queries {dict(now.counts)}")
            time.sleep(min(interval / 3, 5))
        result["warmup_s"] = time.monotonic() - applied
        result["phases_warm"] = dict(phases)
        result["warm_policies"] = ready
        if ready < n:
            log(f"WARM-UP INCOMPLETE after {result['warmup_s']:.0f}s: {dict(phases)}; measuring anyway")
            result["warmup_s"] = math.nan
        else:
            log(f"all evaluated and warm {result['warmup_s']:.0f}s after applying; settling one interval")
        time.sleep(interval)

        pids = {"operator": pid, "prometheus": prometheus._process.pid,  # type: ignore[union-attr]
                "emulator": emulator.process.pid, "bench": os.getpid()}
        before = scrape(operator)
        cpu0 = {k: cpu_seconds(v) for k, v in pids.items()}
        busy0, total0 = machine_busy()
        t0 = time.monotonic()
        lags: list[float] = []
        ages: list[float] = []
        end = t0 + args.cycles * interval
        tick = 0
        while (now := time.monotonic()) < end:
            time.sleep(min(interval / 3, end - now))
            tick += 1
            lags.extend(scrape(operator).lag)
            if tick % 3 == 2:  # once an interval, mid-way: how old is each policy's lastEvaluation
                ages.extend(staleness(emulator.policies(), time.time()))
        t1 = time.monotonic()
        busy1, total1 = machine_busy()
        cpu1 = {k: cpu_seconds(v) for k, v in pids.items()}
        after = scrape(operator)
        wall = t1 - t0
        memory = memory_mib(pid)

        rounds = wall / interval
        per_policy = [after.per_policy[name] - before.per_policy[name] for name in map(policy_name, range(n))]
        evaluations = sum(after.evaluations.values()) - sum(before.evaluations.values())
        instant = {le: after.buckets["instant"][le] - before.buckets["instant"].get(le, 0.0)
                   for le in after.buckets["instant"]}
        count = after.counts["instant"] - before.counts["instant"]
        op_cpu = cpu1["operator"] - cpu0["operator"]
        result.update({
            "window_s": wall,
            "cycles": rounds,
            "evaluations": evaluations,
            "evaluated_vs_scheduled": evaluations / (n * rounds),
            "evaluations_per_policy": f"{min(per_policy):.0f}-{max(per_policy):.0f}",
            "outcomes": {k: after.evaluations[k] - before.evaluations[k] for k in after.evaluations},
            "query_errors": {k: after.errors[k] - before.errors[k] for k in after.errors
                             if after.errors[k] - before.errors[k]},
            "operator_cpu_per_cycle_s": op_cpu / rounds,
            "operator_cores": op_cpu / wall,
            "operator_cpu_per_evaluation_ms": 1000 * op_cpu / max(evaluations, 1),
            "detector_cpu_per_cycle_s": (after.detector_seconds - before.detector_seconds) / rounds,
            "rss_mib": memory.get("VmRSS", math.nan),
            "peak_rss_mib": memory.get("VmHWM", math.nan),
            "operator_threads": threads(pid),
            "prometheus_connections": connections_to(prometheus.port),
            "series_tracked": after.series_tracked,
            "lag_max_s": max(lags, default=math.nan),
            "lag_p95_s": percentile(lags, 95),
            "staleness_max_s": max(ages, default=math.nan),
            "staleness_p95_s": percentile(ages, 95),
            "stale_over_interval": sum(1 for a in ages if a > interval + 1) / max(len(ages), 1),
            "query_count": count,
            "query_mean_ms": 1000 * (after.sums["instant"] - before.sums["instant"]) / max(count, 1),
            "query_p50_ms": 1000 * bucket_quantile(0.5, instant),
            "query_p99_ms": 1000 * bucket_quantile(0.99, instant),
            "prometheus_cores": (cpu1["prometheus"] - cpu0["prometheus"]) / wall,
            "emulator_cores": (cpu1["emulator"] - cpu0["emulator"]) / wall,
            "bench_cores": (cpu1["bench"] - cpu0["bench"]) / wall,
            "machine_busy_cores": (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1),
        })
        ours = sum(cpu1[k] - cpu0[k] for k in pids) / wall
        result["other_cores"] = max(0.0, result["machine_busy_cores"] - ours)
        if args.profile is not None:
            result["profile"] = profile(pid, args.profile, n, seconds=max(2 * interval, 20))
        return result
    finally:
        if operator is not None:
            operator.stop()
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(workdir / "operator.log", args.keep / f"operator-{n}.log")
        if emulator is not None:
            emulator.stop()
        prometheus.stop()
        exporter.stop()
        shutil.rmtree(workdir, ignore_errors=True)


#: Where the operator's CPU goes: (part, substrings that must all be in a sample's stack), first match wins.
#: Blocking calls run in the event loop's default executor (`concurrent/futures/thread.py`).
WORKER = "concurrent/futures/thread.py"
PROFILE_PARTS = [
    ("Kopf: processing watch events (each status write comes back as one)", ("kopf/_core/reactor/queueing.py",)),
    ("thread: Kubernetes status patch", (WORKER, "patch_namespaced_custom_object_status")),
    ("thread: Kubernetes target read (typed V1Deployment)", (WORKER, "read_namespaced_")),
    ("thread: Kubernetes Incident list", (WORKER, "list_namespaced_custom_object")),
    ("thread: Kubernetes, other calls", (WORKER, "kubernetes/")),
    ("thread: Prometheus queries (requests)", (WORKER, "homeostat/operator/prometheus.py")),
    ("thread: other", (WORKER,)),
    ("policy loops on the event loop: detectors", ("monitor_policy", "homeostat/detectors/")),
    ("policy loops on the event loop: remediation runner", ("monitor_policy", "homeostat/playbooks/")),
    ("policy loops on the event loop: judge, status, metrics, rest", ("monitor_policy",)),
    ("/metrics exposition", ("prometheus_client/",)),
    ("Kopf, other", ("kopf/",)),
]


#: Frames every sample passes through (entry points, the event loop, thread bootstraps): left out of
#: the inclusive list, where they would only say 100 %.
GENERIC_FRAMES = ("(runners.py)", "(base_events.py)", "(events.py)", "(threading.py)", "(thread.py)", "(runpy>)",
                  "(__main__.py)", "(cli.py)", "(command.py)")


def profile_part(stack: str) -> str:
    for name, needles in PROFILE_PARTS:
        if all(needle in stack for needle in needles):
            return name
    return "event loop, GC, other"


def profile(pid: int, out: Path, n: int, *, seconds: float) -> dict[str, Any]:
    """py-spy the operator after the measurement (so it does not count): a thread dump, then
    `seconds` of samples of the thread holding the GIL (`--gil`: where the CPU goes), summarised
    by part of the operator, by function (self) and inclusive."""
    # The venv's first (`.venv/bin/pip install py-spy` puts it there, which is not on PATH), then PATH.
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        log("py-spy not found (.venv/bin/pip install py-spy): no profile")
        return {}
    out.mkdir(parents=True, exist_ok=True)
    dump = subprocess.run([py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
    (out / f"operator-{n}-dump.txt").write_text(dump.stdout + dump.stderr)
    raw = out / f"operator-{n}.txt"
    subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
                    "--gil", "--nonblocking", "--format", "raw", "--output", str(raw)],
                   capture_output=True, timeout=600)
    parts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines() if raw.exists() else []:
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        parts[profile_part(stack)] += count
        short = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                 if " (" in f else f for f in frames]
        own[short[-1]] += count
        for frame in set(short):
            if not any(generic in frame for generic in GENERIC_FRAMES):
                inclusive[frame] += count
    summary = {
        "samples": total,
        "parts": [(f, c / max(total, 1)) for f, c in parts.most_common()],
        "self": [(f, c / max(total, 1)) for f, c in own.most_common(15)],
        "inclusive": [(f, c / max(total, 1)) for f, c in inclusive.most_common(40)],
        "files": [str(raw), str(out / f"operator-{n}-dump.txt")],
    }
    (out / f"operator-{n}-summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# --- report -------------------------------------------------------------------------------------

ROWS = [
    ("operator CPU per cycle (s)", "operator_cpu_per_cycle_s", "{:.2f}"),
    ("operator cores (avg)", "operator_cores", "{:.3f}"),
    ("operator CPU per policy evaluation (ms)", "operator_cpu_per_evaluation_ms", "{:.1f}"),
    ("  of which detectors, per cycle (s)", "detector_cpu_per_cycle_s", "{:.3f}"),
    ("operator RSS (MiB)", "rss_mib", "{:.0f}"),
    ("operator peak RSS (MiB)", "peak_rss_mib", "{:.0f}"),
    ("operator threads", "operator_threads", "{:d}"),
    ("TCP connections to Prometheus", "prometheus_connections", "{:d}"),
    ("policies warm before measuring", "warm_policies", "{:d}"),
    ("series tracked", "series_tracked", "{:,.0f}"),
    ("evaluated / scheduled", "evaluated_vs_scheduled", "{:.3f}"),
    ("evaluations per policy in the window", "evaluations_per_policy", "{}"),
    ("evaluation lag max (s)", "lag_max_s", "{:.2f}"),
    ("evaluation lag p95 (s)", "lag_p95_s", "{:.2f}"),
    ("lastEvaluation age max (s)", "staleness_max_s", "{:.1f}"),
    ("lastEvaluation age p95 (s)", "staleness_p95_s", "{:.1f}"),
    ("share older than interval+1s", "stale_over_interval", "{:.3f}"),
    ("instant queries", "query_count", "{:,.0f}"),
    ("query latency mean (ms)", "query_mean_ms", "{:.1f}"),
    ("query latency p50 (ms)", "query_p50_ms", "{:.1f}"),
    ("query latency p99 (ms)", "query_p99_ms", "{:.1f}"),
    ("Prometheus cores", "prometheus_cores", "{:.3f}"),
    ("emulated API server cores", "emulator_cores", "{:.3f}"),
    ("bench (exporter, polling) cores", "bench_cores", "{:.3f}"),
    ("whole machine busy cores (of {cpus})", "machine_busy_cores", "{:.2f}"),
    ("  of which other processes (cores)", "other_cores", "{:.2f}"),
    ("warm-up: applied -> all evaluated (s)", "warmup_s", "{:.0f}"),
]
RATIO_KEYS = ["operator_cpu_per_cycle_s", "operator_cpu_per_evaluation_ms", "rss_mib", "lag_p95_s",
              "staleness_p95_s", "query_p50_ms", "query_p99_ms", "prometheus_cores", "emulator_cores", "warmup_s"]


def fmt(template: str, value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if "{:d}" in template:
        value = int(value)
    return template.format(value)


def report(results: list[dict[str, Any]]) -> None:
    cpus = os.cpu_count() or 1
    sizes = [r["policies"] for r in results]
    width = 42
    print()
    print(f"{'':{width}s}" + "".join(f"{f'{n:,} policies':>18s}" for n in sizes))
    print("-" * (width + 18 * len(sizes)))
    for label, key, template in ROWS:
        print(f"{label.format(cpus=cpus):{width}s}" + "".join(f"{fmt(template, r.get(key, math.nan)):>18s}"
                                                             for r in results))
    for r in results:
        extra = {"outcomes": r.get("outcomes"), "query errors": r.get("query_errors") or "none"}
        print(f"{r['policies']:,} policies: window {r['window_s']:.0f}s = {r['cycles']:.1f} cycles; {extra}")
    if len(results) > 1:
        print("\ngrowth ratios")
        pairs = list(itertools.pairwise(results))
        heads = [f"{a['policies']:,}->{b['policies']:,}" for a, b in pairs]
        print(f"{'':{width}s}" + "".join(f"{h:>18s}" for h in heads))
        for key in RATIO_KEYS:
            label = next(label for label, k, _ in ROWS if k == key)
            cells = []
            for a, b in pairs:
                if min(a["evaluated_vs_scheduled"], b["evaluated_vs_scheduled"]) <= 0.97:
                    cells.append("(stalled)")
                    continue
                ratio = b.get(key, math.nan) / a.get(key, math.nan) if a.get(key) else math.nan
                cells.append("n/a" if math.isnan(ratio) else f"x{ratio:.1f}")
            print(f"{label.format(cpus=cpus):{width}s}" + "".join(f"{c:>18s}" for c in cells))
    print("\ntargets at 1,000 policies x 10 series, 15 s: < 1 core, < 1 GiB, lag < one interval")
    for r in results:
        if r["policies"] != 1000:
            continue
        done = r["evaluated_vs_scheduled"]
        checks = {
            "CPU": r["operator_cores"] < TARGETS["cores"],
            "memory": r["peak_rss_mib"] < TARGETS["rss_mib"],
            # on time: cycles start less than an interval late, every policy is evaluated every
            # interval, and no status is older than two intervals (one interval, plus the time the
            # cycle took between its start, which lastEvaluation records, and its status write)
            "lag": r["lag_max_s"] < r["interval"] and r["staleness_max_s"] < 2 * r["interval"] and done > 0.97,
        }
        print("  " + ", ".join(f"{k}: {'met' if ok else 'MISSED'}" for k, ok in checks.items()))
        if done <= 0.97:
            print(f"  (only {done:.0%} of the scheduled evaluations were done: the CPU and memory figures are "
                  "those of a stalled operator, not of one doing the work)")
    for r in results:
        prof = r.get("profile")
        if not prof:
            continue
        print(f"\npy-spy --gil, {r['policies']:,} policies ({prof['samples']} samples; {prof['files']})")
        print("  by part of the operator:")
        for part, share in prof["parts"]:
            print(f"    {share:6.1%}  {part}")
        print("  self time:")
        for frame, share in prof["self"][:12]:
            print(f"    {share:6.1%}  {frame}")
        print("  inclusive:")
        for frame, share in prof["inclusive"][:20]:
            print(f"    {share:6.1%}  {frame}")


def revision() -> str:
    """The commit measured, and whether the operator's code differs from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "operator", "playbooks",
                                "detectors", "api", "src"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "unknown (no git)"
    changed = len(dirty.splitlines())
    return head[:90] + (f" (+{changed} uncommitted files in the operator's packages)" if changed else "")


def estimate(n: int, *, pods: int, interval: float, cycles: int, lookback: float,
             warmup_timeout: float) -> tuple[float, float]:
    """(typical, worst) seconds for one size, from runs on a 2-core machine: history ~300,000
    samples/s through promtool, ~3 ms per created object, warm-up ~0.1 s per policy when the
    operator keeps up (the worst case waits for `warmup_timeout`), profiling and stopping ~1 min."""
    samples = n * pods * (lookback / interval + 5)
    fixed = samples / 300_000 + n * 2 * 0.003 + (cycles + 2) * interval + 60
    return fixed + max(3 * interval, 0.1 * n), fixed + warmup_timeout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, nargs="+", default=[100, 1000], metavar="N",
                        help="fleet sizes (default: 100 1000; 10000 only when you mean it)")
    parser.add_argument("--pods", type=int, default=10, help="series per policy (default 10)")
    parser.add_argument("--interval", type=float, default=15.0, help="policy interval and scrape interval, s")
    parser.add_argument("--cycles", type=int, default=4, help="intervals measured after warm-up")
    parser.add_argument("--lookback", type=float, default=80 * 60.0,
                        help="history imported and back-filled, s (default 80 min: the default detector "
                             "needs 288 points)")
    parser.add_argument("--warmup-timeout", type=float, default=None, metavar="S",
                        help="give up waiting for every policy to be warm after S seconds and measure anyway "
                             "(default 120 + 0.3 s per policy)")
    parser.add_argument("--prometheus-max-connections", type=int, default=None, metavar="N",
                        help="Prometheus --web.max-connections (default: Prometheus' own, 512)")
    parser.add_argument("--incidents", type=int, default=0, metavar="K",
                        help="also create K resolved Incidents of retired policies in the namespace (they "
                             "accumulate in a real one; each policy's cycle lists them all)")
    parser.add_argument("--debug-log", action="store_true", help="keep OperatorProcess's -v (debug logging)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="after each measurement, py-spy the operator into DIR and summarise")
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR", help="copy operator logs here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    total = 0.0
    print(f"tree: {revision()}")
    print(f"machine: {os.cpu_count()} CPUs; interval {args.interval:g}s, {args.pods} series per policy, "
          f"{args.cycles} cycles measured, {args.lookback / 60:g} min history")
    worst_total = 0.0
    for n in args.policies:
        seconds, worst = estimate(n, pods=args.pods, interval=args.interval, cycles=args.cycles,
                                  lookback=args.lookback, warmup_timeout=args.warmup_timeout or 120 + 0.3 * n)
        total += seconds
        worst_total += worst
        print(f"  {n:,} policies: about {seconds / 60:.0f} min (at most {worst / 60:.0f} min if the operator "
              f"cannot keep up and the warm-up wait times out)")
    print(f"estimated total: about {total / 60:.0f} min, at most {worst_total / 60:.0f} min", flush=True)
    results = []
    for n in args.policies:
        print(f"\n== {n:,} policies x {args.pods} series ==", flush=True)
        results.append(run_one(Args(policies=n, pods=args.pods, interval=args.interval, cycles=args.cycles,
                                    lookback=args.lookback, debug_log=args.debug_log, profile=args.profile,
                                    keep=args.keep_logs,
                                    warmup_timeout=args.warmup_timeout or 120 + 0.3 * n,
                                    prometheus_max_connections=args.prometheus_max_connections,
                                    incidents=args.incidents)))
    report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
