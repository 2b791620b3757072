"""Properties every registered detector shares: direction semantics and level-shift recovery."""

from __future__ import annotations

import math
import random

import pytest

from homeostat.detectors import create, names

STEP = 300.0
DAY_POINTS = int(86400 / STEP)

#: Points after the start of a persistent shift by which every detector has stopped alarming.
SHIFT_BOUND = {
    "adaptive": 35,  # a sustained shift alarms until its deliberate re-baselining (shift_after = 30)
    "default": 35,
    "multiscale": 35,
    "ewma": 20,
    "forecast": 20,
    "dspot": 20,
    "robust_zscore": 65,  # half its window of 128
    "hst": 2 * 250,  # two reference windows
    "seasonal": 4 * DAY_POINTS,  # every phase slot re-learns over ~3 / alpha days
}


def _noise(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [100.0 + 5.0 * math.sin(2 * math.pi * i / DAY_POINTS) + rng.gauss(0.0, 1.0) for i in range(n)]


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("direction", ["up", "down", "both"])
def test_direction_semantics(name, direction):
    det = create(name, direction=direction)
    xs = _noise(4 * DAY_POINTS, seed=11)
    for i, x in enumerate(xs):
        det.update_one(STEP * i, x)
    t = STEP * len(xs)
    up, down = det.score_one(t, 200.0), det.score_one(t, 0.0)
    assert up.warm and down.warm
    assert up.alarm == (direction in ("up", "both"))
    assert down.alarm == (direction in ("down", "both"))
    if direction == "up":
        assert down.score == 0.0 or down.score < 0.5
    if direction == "down":
        assert up.score == 0.0 or up.score < 0.5


@pytest.mark.parametrize("name", sorted(SHIFT_BOUND))
def test_level_shift_rebaselines_within_bound(name):
    det = create(name, direction="up")
    xs = _noise(12 * DAY_POINTS, seed=5)
    start = 4 * DAY_POINTS
    for i, x in enumerate(xs[:start]):
        det.update_one(STEP * i, x)
    alarms = [det.update_one(STEP * i, x + 30.0).alarm for i, x in enumerate(xs[start:], start=start)]
    assert alarms[0], "a shift of 30 sigma must be noticed"
    bound = SHIFT_BOUND[name]
    late = [i for i, a in enumerate(alarms) if a and i >= bound]
    assert not late, f"{name} still alarming {len(late)} times after {bound} points, first at {late[:3]}"


GENERATORS = {
    "flat_then_jump": lambda i, r: 5.0 if i < 700 else 500.0,
    "huge": lambda i, r: 1e12 + r.gauss(0, 1e9),
    "tiny": lambda i, r: 1e-12 * r.random(),
    "negative": lambda i, r: -100 + r.gauss(0, 1),
    "zeros_and_spikes": lambda i, r: 0.0 if i % 37 else 1e6,
    "gaps_and_inf": lambda i, r: math.nan if (i // 50) % 3 == 0 else (math.inf if i % 101 == 0 else r.gauss(10, 1)),
    "small_counts": lambda i, r: float(r.randint(0, 3)),
    "alternating": lambda i, r: (-1) ** i * 1e3,
}


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_awkward_series_keep_the_contract(name, kind):
    """Irregular steps, gaps, infinities, extreme magnitudes: scores in [0, 1], strict-JSON state."""
    import json

    rng = random.Random(kind)
    gen = GENERATORS[kind]
    det = create(name, direction="both")
    t = 0.0
    for i in range(1200):
        t += rng.choice([60.0, 300.0, 300.0, 3600.0])
        x = gen(i, rng)
        v = det.update_one(t, x)
        assert 0.0 <= v.score <= 1.0
        assert not (v.alarm and not v.warm)
        assert not (v.alarm and not math.isfinite(x))
    json.dumps(det.export_state(), allow_nan=False)
