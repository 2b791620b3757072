"""Speed and memory benchmark of the detectors (run on demand; prints, asserts nothing).

    python bench/detectors.py                 # everything (a few minutes)
    python bench/detectors.py --quick         # smaller sizes, for a smoke run
    python bench/detectors.py --only default  # one detector

For every registered detector it measures

* points/s of the single-series path (``update_one``, steady state after warm-up);
* series-points/s when 1,000 and 100,000 series advance one step together
  (``create_batch``: the vectorised class when there is one, else a per-series loop);
* bytes per series: exported state as JSON and an in-memory estimate;

and, in the same run, River's ``MinMaxScaler() | HalfSpaceTrees()`` single-series path,
the reference the single-series path is compared with. Targets: ``default`` at least
1,000,000 series-points/s with 100,000 series in a batch, single-series at least 3x faster
per point than the River pipeline, state at most 4 KiB per series.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from array import array
from collections import deque
from typing import Any

import numpy as np

from homeostat.detectors import create, names
from homeostat.detectors.batch import BatchAdaptive, DetectorBank, create_batch

STEP = 300.0
#: detectors whose 100,000-series run is skipped when they have no vectorised path:
#: their per-series objects would need gigabytes (River trees, 288-slot Python arrays).
HEAVY = {"hst", "seasonal", "robust_zscore", "dspot"}
#: names built from ``Adaptive`` (warmed for a full day before timing)
ADAPTIVE_NAMES = {"default", "adaptive", "multiscale"}


def series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    x = 100.0 + 20.0 * np.sin(2 * np.pi * i / 288.0) + rng.normal(0.0, 3.0, n)
    x[rng.integers(0, n, max(1, n // 500))] += 80.0
    return x


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Rough in-memory footprint of an object graph (numpy arrays by nbytes)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) + 112
    size = sys.getsizeof(obj)
    if isinstance(obj, (str, bytes, int, float, bool, array)) or obj is None:
        return size
    if isinstance(obj, dict):
        return size + sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        return size + sum(deep_size(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    for slot in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, slot):
            size += deep_size(getattr(obj, slot), seen)
    return size


def single_series_rate(name: str, xs: np.ndarray, warm: int) -> tuple[float, Any]:
    det = create(name, direction="both")
    ts = (np.arange(xs.size) * STEP).tolist()
    vals = xs.tolist()
    for i in range(warm):
        det.update_one(ts[i], vals[i])
    t0 = time.perf_counter()
    for i in range(warm, xs.size):
        det.update_one(ts[i], vals[i])
    dt = time.perf_counter() - t0
    return (xs.size - warm) / dt, det


def river_rate(xs: np.ndarray, warm: int) -> float:
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42))
    vals = xs.tolist()
    for v in vals[:warm]:
        model.score_one({"x": v})
        model.learn_one({"x": v})
    t0 = time.perf_counter()
    for v in vals[warm:]:
        model.score_one({"x": v})
        model.learn_one({"x": v})
    return (len(vals) - warm) / (time.perf_counter() - t0)


def batch_rate(name: str, n_series: int, warm_steps: int, steps: int) -> tuple[float, str, int]:
    bank = create_batch(name, n_series, direction="both")
    rng = np.random.default_rng(1)
    base = 100.0 + 10.0 * rng.random(n_series)
    kind = "vectorised" if isinstance(bank, BatchAdaptive) else "per-series loop"
    for k in range(warm_steps):
        bank.update_many(k * STEP, base + rng.normal(0.0, 1.0, n_series))
    frames = [base + rng.normal(0.0, 1.0, n_series) for _ in range(steps)]
    t0 = time.perf_counter()
    for k, frame in enumerate(frames):
        bank.update_many((warm_steps + k) * STEP, frame)
    dt = time.perf_counter() - t0
    mem = bank.memory_bytes() // n_series if isinstance(bank, BatchAdaptive) else -1
    if isinstance(bank, DetectorBank):
        mem = sum(deep_size(d) for d in bank.detectors[:50]) // min(50, n_series)
    return n_series * steps / dt, kind, mem


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes")
    p.add_argument("--only", action="append", help="detector name (repeatable)")
    args = p.parse_args(argv)
    quick = args.quick
    n_points = 6_000 if quick else 20_000
    warm = 1_200  # past every detector's warm-up (SPOT calibration, a day of seasonal slots)
    xs = series(n_points)
    chosen = args.only or names()

    print(f"single series: {n_points - warm} timed points after {warm} warm-up points; one core")
    r_rate = river_rate(xs, warm)
    print(f"River MinMaxScaler() | HalfSpaceTrees(): {r_rate:,.0f} points/s (reference)\n")

    header = (
        f"{'detector':15s} {'1 series pts/s':>15s} {'x River':>8s} {'1,000 series':>14s} {'100,000 series':>15s}"
        f" {'path':>16s} {'state JSON B':>13s} {'in-memory B':>12s}"
    )
    print(header)
    print("-" * len(header))
    for name in chosen:
        gc.collect()
        rate1, det = single_series_rate(name, xs, warm)
        state_bytes = len(json.dumps(det.export_state()))
        mem_single = deep_size(det)
        r1k, kind, mem_b = batch_rate(name, 1_000, 300 if name in ADAPTIVE_NAMES else 30, 20 if quick else 50)
        if name in HEAVY and not isinstance(create_batch(name, 1), BatchAdaptive):
            r100k_s = "skipped"
        else:
            big = 100_000 if not quick else 20_000
            steps = 10 if quick else 30
            warm_steps = 300 if name in ADAPTIVE_NAMES else 3
            r100k, kind, mem_b = batch_rate(name, big, warm_steps, steps)
            r100k_s = f"{r100k:,.0f}"
        mem = mem_b if mem_b > 0 else mem_single
        print(
            f"{name:15s} {rate1:15,.0f} {rate1 / r_rate:8.1f} {r1k:14,.0f} {r100k_s:>15s} {kind:>16s}"
            f" {state_bytes:13,d} {mem:12,d}"
        )
    print(
        "\n'100,000 series' is series-points/s with every series advancing one step per update_many;"
        "\n'skipped': no vectorised path and per-series objects too large to hold 100,000"
        f" ({', '.join(sorted(HEAVY))})."
        "\nin-memory B: numpy state per series for vectorised paths, else a deep getsizeof of one detector."
    )
    if quick:
        print("(--quick: 20,000 instead of 100,000 series)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
