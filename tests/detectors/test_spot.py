"""SPOT: GPD fit and the realised false-alarm rate on iid data versus the target q."""

from __future__ import annotations

import random

import pytest

from homeostat.detectors.spot import SPOT, fit_gpd_pwm

#: Stated tolerance: realised false-alarm rate on iid data within this factor of q.
FACTOR = 3.0


def test_pwm_recovers_exponential():
    rng = random.Random(0)
    gamma, sigma = fit_gpd_pwm([rng.expovariate(0.5) for _ in range(5000)])
    assert gamma == pytest.approx(0.0, abs=0.05)
    assert sigma == pytest.approx(2.0, rel=0.05)


def test_pwm_recovers_heavy_tail():
    rng = random.Random(1)
    xi, s = 0.3, 1.0  # GPD by inversion: s / xi * (U^-xi - 1)
    ys = [s / xi * ((1.0 - rng.random()) ** -xi - 1.0) for _ in range(20000)]
    gamma, sigma = fit_gpd_pwm(ys)
    assert gamma == pytest.approx(xi, abs=0.05)
    assert sigma == pytest.approx(s, rel=0.1)


@pytest.mark.parametrize("dist", ["gauss", "exp", "lognormal"])
@pytest.mark.parametrize("q", [1e-3, 1e-4])
def test_false_alarm_rate_within_factor_of_q(dist, q):
    rng = random.Random(42)
    draw = {
        "gauss": lambda: rng.gauss(0.0, 1.0),
        "exp": lambda: rng.expovariate(1.0),
        "lognormal": lambda: rng.lognormvariate(0.0, 1.0),
    }[dist]
    n = 200_000 if q < 1e-3 else 60_000
    spot = SPOT(q=q)
    alarms = sum(spot.step(draw()) for _ in range(n))
    rate = alarms / (n - spot.n_init)
    assert rate <= FACTOR * q, f"realised {rate:.2e} vs q={q:.0e}"
    assert rate >= q / FACTOR / 2, f"realised {rate:.2e} vs q={q:.0e} (far too conservative)"


def test_excluding_alarms_from_the_tail_inflates_the_rate():
    """The known SPOT pitfall, measured: not learning alarms truncates the peaks."""
    rng = random.Random(7)
    strict, learning = SPOT(q=1e-3, learn_alarms=False), SPOT(q=1e-3)
    xs = [rng.gauss(0.0, 1.0) for _ in range(60_000)]
    a_strict = sum(strict.step(x) for x in xs)
    a_learn = sum(learning.step(x) for x in xs)
    assert a_strict > 2 * a_learn


def test_no_alarm_before_calibration_and_state_round_trip():
    rng = random.Random(3)
    spot = SPOT(q=1e-3, n_init=100)
    assert not any(spot.step(1e9 if i == 50 else rng.random()) for i in range(100))
    for _ in range(500):
        spot.step(rng.random())
    twin = SPOT(q=0.01)
    twin.restore_state(spot.export_state())
    for _ in range(2000):
        x = rng.expovariate(3.0)
        assert spot.step(x) == twin.step(x)
        assert spot.z == twin.z
