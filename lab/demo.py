"""`homeostat demo`: Homeostat healing a simulated fleet, one scenario after another, on one machine.

Starts the lab (`lab/world.py`: the emulated Kubernetes API, one simulated service per scenario
exporting real metrics, a real Prometheus scraping them with a warm past, the operator as its
own process, one AnomalyPolicy per service), then plays the scenarios of `lab/scenarios.py` in
order with a live timeline (`lab/timeline.py`): the fault injected, the anomaly detected with
observed vs expected, each action, its verification, resolved or escalated. It ends with a
table of what happened (detection time, first action, end) and an incident report
(`lab/report.py`: a plot per incident, `index.html`), and stops every process it started,
whatever happens (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from homeostat.lab.prometheus import INSTALL_HINT, PrometheusMissing, find_prometheus
from homeostat.lab.scenarios import SCENARIOS, Scenario

NAMESPACE = "shop"
# One service per scenario, so each plays on a workload no other scenario touched.
SERVICES = {"bad-release": "checkout", "memory-leak": "cart", "traffic-surge": "search",
            "dependency-outage": "payments", "noisy-healthy": "catalog"}


@dataclass(frozen=True, kw_only=True)
class Pace:
    """The policy's timings at a given speed.

    Speed 1 is `fleet_policy`'s calibrated default: evaluations every 3 s over 4 s rate windows
    (nearly independent points: overlapping windows stretch every natural peak over several
    points, which the detector then confirms; docs/lab.md). Speed 2 and more evaluates every
    second over 2 s windows: detection within a few scrapes, at the price of a noisier signal.
    """

    interval: str
    rate_window: str
    verify: str

    @classmethod
    def at(cls, speed: float) -> Pace:
        if speed <= 0:
            raise ValueError("--speed must be positive")
        if speed >= 2:
            return cls(interval="1s", rate_window="2s", verify="12s")
        return cls(interval="3s", rate_window="4s", verify="15s")

    def policy_args(self) -> dict[str, Any]:
        return {"interval": self.interval, "rate_window": self.rate_window, "verify": self.verify}


def _scenario_list(text: str) -> list[Scenario]:
    known = {s.name: s for s in SCENARIOS}
    names = [n.strip() for n in text.split(",") if n.strip()] if text != "all" else list(known)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {unknown}; choose from {', '.join(known)} or all")
    return [known[n] for n in names]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", type=_scenario_list, default=list(SCENARIOS),
                        help="comma-separated scenarios to play, in order (default: all): "
                             + ", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--speed", type=float, default=1.0,
                        help="1: evaluations every 3 s over 4 s windows, 15 s verification (default); "
                             "2 or more: every 1 s over 2 s windows, 12 s verification")
    parser.add_argument("--timeout", type=float, default=150.0,
                        help="seconds a scenario may take before the demo moves on (it says so)")
    parser.add_argument("--quiet-for", type=float, default=45.0,
                        help="seconds the noisy-but-healthy scenario plays (nothing should happen)")
    parser.add_argument("--history", type=float, default=1500.0,
                        help="seconds of healthy past imported into Prometheus (the detectors back-fill it)")
    parser.add_argument("--report", type=Path, default=None,
                        help="folder for the incident report (default: report/ in the demo's folder)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this folder (operator log, report); default: a new temporary folder")
    parser.add_argument("--seed", type=int, default=7, help="the fleet's random seed")


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


def _wait(until: Callable[[], bool], timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return True
        time.sleep(step)
    return until()


def play(*, lab: Any, timeline: Any, scenario: Scenario, timeout: float, quiet_for: float,
         say: Callable[[str], None], hold: float = 20.0, settle: float = 12.0) -> Any:
    """Play one scenario on its service; return its measured `Episode`."""
    from homeostat.api.times import parse_time
    from homeostat.lab.episode import Episode, from_incidents, measure_in_prometheus, prometheus_range

    service = SERVICES[scenario.name]
    timeline.scenario(f"{scenario.name} on {service}", scenario.description)
    fault = scenario.fault()
    injected = time.time()
    lab.fleet.inject(fault, service=service, now=injected)
    remedy = f"the right remedy: {scenario.expected_action}" if scenario.expected_action else (
        "nothing can fix it: Homeostat should escalate once, not loop" if scenario.expected_end == "Escalated"
        else "nothing should happen")
    timeline.fault(f"FAULT {fault.name} on {service} ({remedy})")

    def phase() -> str | None:
        """The phase of this scenario's incident (None: none opened since the fault)."""
        found = [i for i in lab.incidents(service)
                 if (parse_time((i.get("spec") or {}).get("detectedAt") or "1970-01-01T00:00:00Z")) >= injected - 1]
        return ((found[-1].get("status") or {}).get("phase") or "Detected") if found else None

    if scenario.expected_end == "Quiet":
        _wait(lambda: phase() is not None, quiet_for)
    elif not _wait(lambda: phase() in (scenario.expected_end, "Escalated", "Failed"), timeout):
        say(f"{scenario.name}: not over after {timeout:.0f}s (phase {phase()}); moving on")
    elif phase() == "Escalated":
        time.sleep(hold)  # the fault goes on: show that nothing more is done (no loop, no new incident)
    fault.clear()
    timeline.fault_cleared(f"fault cleared on {service}")
    if scenario.expected_end == "Quiet":
        _wait(lambda: phase() is not None, settle)  # a confirmation of the last noisy points still counts
    episode = Episode(scenario=scenario.name, service=service, arm="homeostat", injected_at=injected,
                      expected_action=scenario.expected_action, expected_end=scenario.expected_end,
                      scrape_interval=lab.scrape_interval)
    from_incidents(episode, lab.incidents(service))
    time.sleep(2 * lab.scrape_interval)  # the last scrapes land before the range is read
    return measure_in_prometheus(episode, query=prometheus_range(lab.prometheus.url), until=time.time(),
                                 namespace=lab.namespace)


def _table(episodes: list[Any]) -> list[str]:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{round(value) + 0:d}s"

    rows = [("SCENARIO", "SERVICE", "EXPECTED", "FIRST-ACTION", "ACTIONS", "END", "DETECTED", "BACK-IN-BAND", "OK")]
    for e in episodes:
        ok = e.right_first_action and e.end == e.expected_end
        rows.append((e.scenario, e.service, e.expected_action or f"none ({e.expected_end})", e.first_action or "none",
                     str(len(e.changes)), e.end, seconds(e.mttd), seconds(e.mttr), "yes" if ok else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        find_prometheus()
    except PrometheusMissing:
        print(f"homeostat demo: Prometheus is needed and was not found; {INSTALL_HINT}", file=sys.stderr)
        return 3
    try:
        pace = Pace.at(args.speed)
    except ValueError as exc:
        print(f"homeostat demo: {exc}", file=sys.stderr)
        return 2
    from homeostat.lab.report import write_report
    from homeostat.lab.timeline import Timeline
    from homeostat.lab.world import Lab

    scenarios: list[Scenario] = args.scenarios
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="homeostat-demo-"))
    report_dir = args.report or workdir / "report"

    def say(text: str) -> None:
        print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", file=out, flush=True)

    services = [SERVICES[s.name] for s in scenarios]
    lab = Lab(services=services, workdir=workdir, namespace=NAMESPACE, seed=args.seed, history=args.history,
              policy=pace.policy_args())
    episodes: list[Any] = []
    timeline: Timeline | None = None
    with _interruptible():
        try:
            say(f"starting the lab in {workdir}: emulated Kubernetes API, {len(services)} simulated services "
                f"({', '.join(services)}), Prometheus with {args.history / 60:.0f} min of healthy history, "
                "the operator, one AnomalyPolicy per service")
            lab.start()
            say(f"API {lab.cluster.url} (kubeconfig {lab.cluster.kubeconfig_path}), Prometheus {lab.prometheus.url}, "
                f"operator pid {lab.operator.process.pid} (log {workdir / 'operator.log'}); every policy Healthy")
            say(f"policies evaluate every {pace.interval} over {pace.rate_window} rate windows, confirm 3 of 4, verify "
                f"{pace.verify}; playbook: rollback if errors and a recent rollout, scale-out if latency and "
                "load, restart if latency alone, else escalate")
            timeline = Timeline(lab.cluster, namespace=NAMESPACE, out=out).start()
            for scenario in scenarios:
                episodes.append(play(lab=lab, timeline=timeline, scenario=scenario, timeout=args.timeout,
                                     quiet_for=args.quiet_for, say=say))
                time.sleep(2)
            timeline.stop()
            print(file=out)
            say("what happened (DETECTED: seconds from the fault visible in Prometheus to the incident; "
                "BACK-IN-BAND: from the fault to p99 and errors back under their healthy ceiling)")
            for line in _table(episodes):
                print("    " + line, file=out)
            index = write_report(recording=timeline.snapshot(), out_dir=report_dir, prometheus_url=lab.prometheus.url)
            (report_dir / "episodes.json").write_text(json.dumps([e.summary() for e in episodes], indent=2))
            say(f"incident report: {index}")
        except _Interrupted as exc:
            say(f"interrupted ({exc}); stopping everything")
            return 130
        finally:
            if timeline is not None:
                timeline.stop(final_poll=False)
            say("stopping the operator, Prometheus, the fleet and the API server")
            lab.stop()
    say("done; no process left behind")
    failed = [e.scenario for e in episodes if not (e.right_first_action and e.end == e.expected_end)]
    if failed:
        say(f"scenarios that did not go as expected: {', '.join(failed)}")
    return 0
