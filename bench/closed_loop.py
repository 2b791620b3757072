"""Closed-loop benchmark: Homeostat healing faults, against a static-threshold baseline, in one run.

Each round starts a fresh lab (`homeostat.lab.world.Lab`: emulated API, simulated fleet, real
Prometheus at a 1 s scrape, the operator as its own process) with, for every fault scenario,
three identical services: one watched by Homeostat (an AnomalyPolicy from `fleet_policy`), one
by a Flagger-style analysis and one by an Argo-Rollouts-style analysis (`lab/baseline.py`, their
documented defaults; their one remedy, rollback, done with Homeostat's own rollback action
without its recent-rollout check). Every fault is injected into its three services at the same
moment; rounds repeat with other seeds. Then a soak: a healthy fleet for `--soak-minutes` of wall
clock, counting the actions (and incidents) that should not have happened, with the baselines
watching the same services passively (counting the rollbacks they would have made).

Measured per episode (`homeostat.lab.episode`): MTTD from the fault visible in Prometheus to
detection (seconds and scrape intervals), MTTR from the fault to p99 and errors back under their
healthy ceiling, whether the first workload change was the right one, the number of changes,
and how the episode ended.

Run from the repository root (it starts Prometheus, several HTTP servers and the operator):

    .venv/bin/python bench/closed_loop.py --rounds 3 --soak-minutes 30 --out /tmp/closed-loop

Options: `--only scenarios|soak`, `--round-seconds` (how long each round watches; the
baselines need minutes), `--services` (the soak fleet's size), `--seed`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from homeostat.lab.baseline import ARGO_ROLLOUTS, FLAGGER, AnalysisProfile, StaticAnalysis
from homeostat.lab.episode import Episode, from_incidents, measure_in_prometheus, prometheus_range
from homeostat.lab.faults import DependencyOutage, Fault, MemoryLeak, TrafficSurge
from homeostat.lab.scenarios import SCENARIOS, Scenario
from homeostat.lab.world import Lab

logger = logging.getLogger("closed_loop")

SHORT = {"bad-release": "release", "memory-leak": "leak", "traffic-surge": "surge",
         "dependency-outage": "outage", "noisy-healthy": "noisy"}
BASELINES = (FLAGGER, ARGO_ROLLOUTS)
ARMS = ("homeostat", *(p.name for p in BASELINES))
# Homeostat at a 1 s scrape: evaluate every second over 2 s rate windows (nearly independent
# points), confirm 3 of 4, verify for 12 s; the rest is `fleet_policy`'s default.
POLICY: dict[str, Any] = {"interval": "1s", "rate_window": "2s", "confirm_k": 3, "confirm_n": 4, "verify": "12s",
                          "scale_back_after": "30m"}


def fault_for(scenario: Scenario, *, round_seconds: float) -> Fault:
    """A fresh fault of the scenario, shaped to one round: a leak that does not come back within the
    round, a surge that passes after three minutes, an outage that lasts the whole round."""
    if scenario.name == "memory-leak":
        return MemoryLeak(onset=3600.0)
    if scenario.name == "traffic-surge":
        return TrafficSurge(duration=180.0)
    if scenario.name == "dependency-outage":
        return DependencyOutage(duration=round_seconds + 60)
    return scenario.fault()


def instant(url: str, promql: str) -> float | None:
    try:
        response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        result = response.json()["data"]["result"]
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    if not result:
        return None
    value = float(result[0]["value"][1])
    return value if math.isfinite(value) else None


@dataclass(kw_only=True)
class BaselineWatcher:
    """One static analysis watching one service: measures every interval, rolls back when it fails.

    Passive (the soak): counts the times it would have rolled back, and starts a fresh analysis.
    """

    profile: AnalysisProfile
    service: str
    namespace: str
    prometheus_url: str
    rollback: Callable[[str, float], str] | None  # (service, anomaly time) -> outcome; None: passive
    failed_at: list[float] = field(default_factory=list)
    actions: list[tuple[float, str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> BaselineWatcher:
        self._thread = threading.Thread(target=self._run, name=f"baseline-{self.service}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        analysis = StaticAnalysis(profile=self.profile)
        # Flagger measures after each interval; Argo Rollouts at once, then every interval.
        if self.profile is FLAGGER and self._stop.wait(self.profile.interval):
            return
        while not self._stop.is_set():
            values = {c.name: instant(self.prometheus_url, c.promql(namespace=self.namespace, service=self.service))
                      for c in self.profile.checks}
            if analysis.measure(values):
                now = time.time()
                self.failed_at.append(now)
                if self.rollback is None:
                    analysis = StaticAnalysis(profile=self.profile)
                else:
                    self.actions.append((time.time(), "rollback", self.rollback(self.service, now)))
                    return  # the analysis has failed and rolled back: it is over, as in Flagger and Argo
            if self._stop.wait(self.profile.interval):
                return


def make_rollback(lab: Lab) -> Callable[[str, float], str]:
    """Homeostat's rollback action on a service, without its recent-rollout check (the baselines have none)."""
    from kubernetes import config

    from homeostat.api.policy import Action, RollbackParams, Step, TargetRef, WorkloadKind
    from homeostat.playbooks.actions import rollback
    from homeostat.playbooks.base import ActionContext, ActionResult
    from homeostat.playbooks.kube import WorkloadApi

    def run(service: str, at: float) -> str:
        api_client = config.new_client_from_config(config_file=str(lab.cluster.kubeconfig_path))  # type: ignore[no-untyped-call]
        ctx = ActionContext(
            api=WorkloadApi(api_client), namespace=lab.namespace, policy=f"baseline-{service}",
            incident=f"baseline-{service}", target=TargetRef(kind=WorkloadKind.DEPLOYMENT, name=service),
            step=Step(action=Action.ROLLBACK, rollback=RollbackParams(within="1000h")), step_index=0,
            key=f"baseline-{service}/0/1", involved=[], anomaly_started_at=at, dry_run=False,
            summary=f"static analysis of {service} failed")
        try:
            outcome: ActionResult = asyncio.run(rollback.perform(ctx))  # type: ignore[arg-type]
        finally:
            api_client.close()
        logger.info("baseline rollback of %s: %s %s", service, outcome.outcome, outcome.message)
        return str(outcome.outcome)

    return run


def run_round(*, index: int, seed: int, round_seconds: float, workdir: Path,
              scenarios: Sequence[Scenario]) -> list[Episode]:
    names = {s.name: {arm: SHORT[s.name] if arm == "homeostat" else f"{SHORT[s.name]}-{arm}" for arm in ARMS}
             for s in scenarios}
    services = [svc for arms in names.values() for svc in arms.values()]
    managed = [arms["homeostat"] for arms in names.values()]
    print(f"round {index}: seed {seed}, {len(services)} services, starting the lab", file=sys.stderr, flush=True)
    with Lab(services=services, managed=managed, workdir=workdir / f"round-{index}", seed=seed,
             policy=POLICY, history=1500.0) as lab:
        rollback = make_rollback(lab)
        watchers = {(s.name, p.name): BaselineWatcher(profile=p, service=names[s.name][p.name],
                                                      namespace=lab.namespace, prometheus_url=lab.prometheus.url,
                                                      rollback=rollback).start()
                    for s in scenarios for p in BASELINES}
        injected = time.time()
        faults = []
        for s in scenarios:
            for service in names[s.name].values():
                faults.append(lab.fleet.inject(fault_for(s, round_seconds=round_seconds), service=service,
                                               now=injected))
        print(f"round {index}: faults injected; watching for {round_seconds:.0f}s", file=sys.stderr, flush=True)
        time.sleep(round_seconds)
        for watcher in watchers.values():
            watcher.stop()
        until = time.time()
        episodes = []
        query = prometheus_range(lab.prometheus.url)
        for s in scenarios:
            for arm in ARMS:
                episode = Episode(scenario=s.name, service=names[s.name][arm], arm=arm, injected_at=injected,
                                  expected_action=s.expected_action, expected_end=s.expected_end,
                                  scrape_interval=lab.scrape_interval)
                if arm == "homeostat":
                    from_incidents(episode, lab.incidents(episode.service))
                else:
                    watcher = watchers[(s.name, arm)]
                    episode.detected_at = watcher.failed_at[0] if watcher.failed_at else None
                    episode.actions = list(watcher.actions)
                    episode.end = "Quiet" if not watcher.failed_at else f"RolledBack:{watcher.actions[0][2]}"
                episodes.append(measure_in_prometheus(episode, query=query, until=until, namespace=lab.namespace,
                                                      rate_window=str(POLICY["rate_window"])))
        for fault in faults:
            fault.clear()
    for e in episodes:
        print(f"round {index}: {json.dumps(e.summary())}", file=sys.stderr, flush=True)
    return episodes


def run_soak(*, minutes: float, services: int, seed: int, workdir: Path) -> dict[str, Any]:
    names = [f"svc-{i}" for i in range(services)]
    print(f"soak: {services} healthy services for {minutes:.0f} min", file=sys.stderr, flush=True)
    with Lab(services=names, workdir=workdir / "soak", seed=seed, policy=POLICY, history=1500.0) as lab:
        watchers = [BaselineWatcher(profile=p, service=n, namespace=lab.namespace, prometheus_url=lab.prometheus.url,
                                    rollback=None).start() for n in names for p in BASELINES]
        started = time.time()
        deadline = started + minutes * 60
        while time.time() < deadline:
            time.sleep(min(30.0, max(0.0, deadline - time.time())))
            print(f"soak: {(time.time() - started) / 60:.1f} min, {len(lab.incidents())} incidents",
                  file=sys.stderr, flush=True)
        for watcher in watchers:
            watcher.stop()
        incidents = lab.incidents()
        changes = [r for i in incidents for r in (i.get("status") or {}).get("actions") or []
                   if r.get("state") == "Succeeded"]
        evaluations = _evaluations(lab)
        return {
            "minutes": round((time.time() - started) / 60, 1), "services": services,
            "scrape_interval_s": lab.scrape_interval, "policy_interval": POLICY["interval"],
            "homeostat": {"incidents": len(incidents), "actions": len(changes),
                          "incident_names": [i["metadata"]["name"] for i in incidents],
                          "evaluations": evaluations},
            **{p.name: {"would_roll_back": sum(len(w.failed_at) for w in watchers if w.profile is p)}
               for p in BASELINES},
        }


def _evaluations(lab: Lab) -> int | None:
    """Evaluation cycles the operator ran (its own counter), for a false-alarm rate per evaluation."""
    try:
        text = lab.operator.metrics()
    except Exception:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("homeostat_evaluations_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total) or None


# --- the table ------------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def table(episodes: Sequence[Episode]) -> list[str]:
    rows = [("SCENARIO", "ARM", "RUNS", "DETECTED", "MTTD p50", "MTTD scrapes p50", "MTTR p50",
             "RIGHT 1ST ACTION", "CHANGES/RUN", "ENDS")]
    for scenario in dict.fromkeys(e.scenario for e in episodes):
        for arm in ARMS:
            mine = [e for e in episodes if e.scenario == scenario and e.arm == arm]
            if not mine:
                continue
            detected = sum(e.detected_at is not None for e in mine)
            ends: dict[str, int] = {}
            for e in mine:
                ends[e.end] = ends.get(e.end, 0) + 1
            rows.append((scenario, arm, str(len(mine)), f"{detected}/{len(mine)}",
                         _fmt(_median([e.mttd for e in mine])), _fmt(_median([e.mttd_scrapes for e in mine]), ""),
                         _fmt(_median([e.mttr for e in mine])),
                         f"{sum(e.right_first_action for e in mine)}/{len(mine)}",
                         f"{statistics.mean(len(e.changes) for e in mine):.1f}",
                         ", ".join(f"{k} x{v}" for k, v in sorted(ends.items()))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def ratios(episodes: Sequence[Episode]) -> list[str]:
    """Baseline over Homeostat, on the fault scenarios where both have a value (MTTD, MTTR medians).

    A noisy-but-healthy period has no time to repair: it is left out.
    """
    lines = []
    for arm in ARMS[1:]:
        for what in ("mttd", "mttr"):
            pairs = []
            for scenario in dict.fromkeys(e.scenario for e in episodes if e.expected_end != "Quiet"):
                ours = _median([getattr(e, what) for e in episodes if e.scenario == scenario and e.arm == "homeostat"])
                theirs = _median([getattr(e, what) for e in episodes if e.scenario == scenario and e.arm == arm])
                if ours and theirs and ours > 0:
                    pairs.append((scenario, theirs / ours))
            text = ", ".join(f"{s} x{r:.1f}" for s, r in pairs) or "no scenario where both had a value"
            lines.append(f"{arm} / homeostat {what.upper()}: {text}")
        theirs_right = [e.right_first_action for e in episodes if e.arm == arm]
        ours_right = [e.right_first_action for e in episodes if e.arm == "homeostat"]
        if theirs_right and ours_right:
            lines.append(f"right first action: homeostat {sum(ours_right)}/{len(ours_right)} "
                         f"({100 * sum(ours_right) / len(ours_right):.0f}%), {arm} {sum(theirs_right)}/"
                         f"{len(theirs_right)} ({100 * sum(theirs_right) / len(theirs_right):.0f}%)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-seconds", type=float, default=420.0)
    parser.add_argument("--soak-minutes", type=float, default=30.0)
    parser.add_argument("--services", type=int, default=6, help="services in the soak's fleet")
    parser.add_argument("--only", choices=("scenarios", "soak"), default=None)
    parser.add_argument("--scenarios", default="all", help="comma-separated scenario names, or all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/homeostat-closed-loop"))
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every `with Lab(...)` stops the processes it started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in SCENARIOS if args.scenarios == "all" or s.name in args.scenarios.split(",")]
    results: dict[str, Any] = {"policy": POLICY, "round_seconds": args.round_seconds}
    if args.only != "soak":
        episodes: list[Episode] = []
        for r in range(args.rounds):
            episodes += run_round(index=r + 1, seed=args.seed + r, round_seconds=args.round_seconds, workdir=args.out,
                                  scenarios=chosen)
        results["episodes"] = [e.summary() for e in episodes]
        print(f"\nClosed loop: {args.rounds} rounds x {len(chosen)} scenarios x {len(ARMS)} arms, "
              f"scrape 1s, Homeostat policy {POLICY['interval']} k={POLICY['confirm_k']}/{POLICY['confirm_n']}; "
              f"each round watched {args.round_seconds:.0f}s")
        for line in table(episodes):
            print("  " + line)
        print()
        for line in ratios(episodes):
            print("  " + line)
        ours = [e for e in episodes if e.arm == "homeostat"]
        within = [e for e in ours if e.mttd_scrapes is not None and e.mttd_scrapes <= 3]
        visible = [e for e in ours if e.visible_at is not None and e.expected_end != "Quiet"]
        print(f"  homeostat detections within 3 scrape intervals of visible: {len(within)}/{len(visible)}")
    if args.only != "scenarios":
        soak = run_soak(minutes=args.soak_minutes, services=args.services, seed=args.seed + 100, workdir=args.out)
        results["soak"] = soak
        print(f"\nSoak: {soak['services']} healthy services, {soak['minutes']} min at a 1s scrape: "
              f"homeostat {soak['homeostat']['actions']} actions, {soak['homeostat']['incidents']} incidents "
              f"({soak['homeostat']['evaluations']} evaluations); "
              + ", ".join(f"{p.name} would have rolled back {soak[p.name]['would_roll_back']} times"
                          for p in BASELINES))
    path = args.out / "results.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
