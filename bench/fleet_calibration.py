"""Calibration of the lab's model against `fleet_policy`'s signals, offline (prints, asserts nothing).

    python bench/fleet_calibration.py                          # 3 s interval, 4 s rate window
    python bench/fleet_calibration.py --interval 2 --window 10s  # the overlapping windows that alarm
    python bench/fleet_calibration.py --day 600 --seed 3

For each case (two healthy services, a noisy-healthy one, and one per fault) it makes an hour
of the model's history (`lab/model.py`, the faults of `lab/faults.py` started at minute 40 on
fixed pods: no cluster, no remedy), imports it into a real Prometheus with promtool, runs the
three PromQL signals of `lab/scenarios.py` over it as range queries at the policy's interval,
and feeds each point to the `default` detector the way the operator judges it (anomalous =
warm and outside the band on the watched side; confirmed = k of the last n). It prints, per
signal, the confirmations before the fault (false ones: the judged period starts at minute 20,
after the detector's warm-up) and the delay of the first one after it, and which signals were
anomalous at that first confirmation: what the playbook's `when` conditions will see.
"""

from __future__ import annotations

import argparse
import collections
import math
import time

import httpx
import numpy as np

from homeostat.detectors import create
from homeostat.lab.faults import BadRelease, DependencyOutage, Fault, MemoryLeak, NoisyHealthy, TrafficSurge
from homeostat.lab.model import Pod, ServiceProfile, ServiceSim
from homeostat.lab.prometheus import PrometheusServer
from homeostat.lab.scenarios import signal_queries
from homeostat.lab.service import RequestCounters, Series, append_history

TOTAL, JUDGED_FROM, FAULT_AT = 3600.0, 1200.0, 2400.0


def history(name: str, fault: Fault | None, *, start: float, end: float, day: float, seed: int,
            profile: dict[str, float]) -> Series:
    """An hour of one service on 3 fixed pods; a bad release swaps them for pods of the bad image."""
    sim = ServiceSim(profile=ServiceProfile(name=name, **profile), day_seconds=day, rng=np.random.default_rng(seed))
    good = [Pod(name=f"{name}-{i}", started=start - 100, image="example.com/app:1.0") for i in range(3)]
    bad = [Pod(name=f"{name}-bad-{i}", started=start + FAULT_AT, image="example.com/app:1.0-bad") for i in range(3)]
    if fault is not None:
        sim.add_effect(fault.start(now=start + (JUDGED_FROM if isinstance(fault, NoisyHealthy) else FAULT_AT)))
    out: Series = {}
    counters: dict[str, RequestCounters] = {}
    for t in np.arange(start, end, 1.0):
        pods = bad if isinstance(fault, BadRelease) and t >= start + FAULT_AT else good
        for now, sample in sim.serve(t=float(t), dt=1.0, pods=pods):
            counters.setdefault(now.pod.name, RequestCounters()).add(sample)
            append_history(out, counters=counters[now.pod.name], t=float(t), labels={
                "namespace": "shop", "service": name, "pod": now.pod.name, "instance": "lab:0", "job": "lab"})
    return out


def judge(points: list[tuple[float, float]], *, k: int, n: int, judged_from: float,
          sensitivity: str) -> tuple[list[float], dict[int, bool]]:
    """Confirmation times, and whether each judged point (by rounded time) was anomalous."""
    detector = create("default", direction="up", sensitivity=sensitivity)
    window: collections.deque[bool] = collections.deque(maxlen=n)
    confirmed, anomalous = [], {}
    for t, value in points:
        if not math.isfinite(value):
            window.append(False)
            continue
        verdict = detector.update_one(t, value)
        if t < judged_from:
            continue
        outside = verdict.warm and (verdict.alarm or (math.isfinite(verdict.upper) and value > verdict.upper))
        window.append(outside)
        anomalous[round(t)] = outside
        if outside and sum(window) >= k:
            confirmed.append(t)
    return confirmed, anomalous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=float, default=3600.0, help="day_seconds of the compressed day")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between evaluations")
    parser.add_argument("--window", default="4s", help="rate() window of the signals")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--sensitivity", default="medium")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--amplitude", type=float, default=ServiceProfile(name="x").cycle_amplitude,
                        help="daily swing of the load (ServiceProfile.cycle_amplitude)")
    parser.add_argument("--rate", type=float, default=ServiceProfile(name="x").base_rate,
                        help="mean requests per second of a service (capacity scales with it)")
    args = parser.parse_args()
    cases: dict[str, Fault | None] = {
        "healthy-a": None, "healthy-b": None, "noisy": NoisyHealthy(), "leak": MemoryLeak(), "surge": TrafficSurge(),
        "outage": DependencyOutage(duration=None), "release": BadRelease(),
    }
    end = time.time()
    start = end - TOTAL
    series: Series = {}
    for index, (name, fault) in enumerate(cases.items()):
        default = ServiceProfile(name=name)
        profile = {"cycle_amplitude": args.amplitude, "base_rate": args.rate,
                   "capacity_per_pod": default.capacity_per_pod * args.rate / default.base_rate}
        series.update(history(name, fault, start=start, end=end, day=args.day, seed=args.seed + index,
                              profile=profile))
    print(f"day {args.day:g} s, swing {args.amplitude:g}, {args.rate:g} req/s, every {args.interval:g} s "
          f"over rate windows of {args.window}, "
          f"confirm {args.k} of {args.n}, sensitivity {args.sensitivity}; judged from minute "
          f"{JUDGED_FROM / 60:.0f}, fault at minute {FAULT_AT / 60:.0f} (noisy from minute 20)")
    server = PrometheusServer(scrape_interval=1.0)
    server.import_history(series)
    with server:
        for name in cases:
            marks: dict[str, dict[int, bool]] = {}
            firsts: dict[str, float] = {}
            print(f"{name}:")
            for signal, query in signal_queries(service=name, rate_window=args.window).items():
                found = httpx.get(f"{server.url}/api/v1/query_range", timeout=60, params={
                    "query": query, "start": start + 15, "end": end - 2, "step": args.interval}).json()
                result = found["data"]["result"]
                points = [(float(t), float(v)) for t, v in result[0]["values"]] if result else []
                confirmed, marks[signal] = judge(points, k=args.k, n=args.n, judged_from=start + JUDGED_FROM,
                                                 sensitivity=args.sensitivity)
                before = [t for t in confirmed if t < start + FAULT_AT]
                after = [t - start - FAULT_AT for t in confirmed if t >= start + FAULT_AT]
                if after:
                    firsts[signal] = after[0]
                delay = f"{after[0]:.0f} s" if after else "-"
                print(f"  {signal:<13} false confirmations before the fault: {len(before):>3}   "
                      f"first confirmation after it: {delay}")
            if firsts:
                at = round(start + FAULT_AT + min(firsts.values()))
                state = {s: next((m[t] for t in (at, at - 1, at + 1) if t in m), None) for s, m in marks.items()}
                print("  anomalous at the first confirmation: "
                      + ", ".join(s for s, v in state.items() if v) + "; normal: "
                      + ", ".join(s for s, v in state.items() if v is False))


if __name__ == "__main__":
    main()
