"""The fleet's model (lab/model.py, lab/faults.py), without processes: load, queueing, faults, histories."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from homeostat.lab.faults import BadRelease, DependencyOutage, MemoryLeak, NoisyHealthy, TrafficSurge
from homeostat.lab.fleet import FleetService
from homeostat.lab.model import (
    LoadProcess,
    Pod,
    ServiceProfile,
    ServiceSim,
    behaviour,
    daily_cycle,
    draw,
)

T0 = 1_800_000_000.0  # a unix time; a whole number of days of every length used below
DAY = 600.0


def pods(n: int, *, started: float = T0 - 100, image: str = "example.com/a:1.0", prefix: str = "a") -> list[Pod]:
    return [Pod(name=f"{prefix}-{i}", started=started, revision=1, image=image) for i in range(n)]


def sim(profile: ServiceProfile | None = None, seed: int = 1) -> ServiceSim:
    return ServiceSim(profile=profile or ServiceProfile(name="a"), day_seconds=DAY, rng=np.random.default_rng(seed))


def served(service: ServiceSim, *, pods: list[Pod], seconds: float, t: float = T0, dt: float = 1.0) -> dict[str, float]:
    """Totals over `seconds` of serving: requests, failures by code, mean latency."""
    totals = {"requests": 0.0, "latency_sum": 0.0, "200": 0.0, "500": 0.0, "503": 0.0}
    for step in np.arange(t, t + seconds, dt):
        for _, sample in service.serve(t=float(step), dt=dt, pods=pods):
            totals["requests"] += sample.requests
            totals["latency_sum"] += sample.latency_sum
            for code, value in sample.codes.items():
                totals[code] += value
    totals["mean_latency"] = totals["latency_sum"] / max(totals["requests"], 1.0)
    totals["error_ratio"] = (totals["500"] + totals["503"]) / max(totals["requests"], 1.0)
    return totals


# --- load and latency ------------------------------------------------------------------------------


def test_latency_falls_as_ready_replicas_rise() -> None:
    profile = ServiceProfile(name="a")
    medians = [behaviour(profile=profile, offered=400.0, pods=pods(n), t=T0)[0].median_latency for n in (2, 3, 4, 8)]
    assert medians == sorted(medians, reverse=True) and len(set(medians)) == 4
    # and what the pods serve says the same: more replicas, lower observed latency
    two = served(sim(profile), pods=pods(2), seconds=60)
    eight = served(sim(profile), pods=pods(8), seconds=60)
    assert eight["mean_latency"] < two["mean_latency"]


def test_the_load_is_split_over_ready_pods_and_queueing_is_capped() -> None:
    profile = ServiceProfile(name="a")
    shares = behaviour(profile=profile, offered=300.0, pods=pods(3), t=T0)
    assert [s.rate for s in shares] == [100.0, 100.0, 100.0]
    assert shares[0].utilisation == pytest.approx(100.0 / profile.capacity_per_pod)
    saturated = behaviour(profile=profile, offered=1e6, pods=pods(1), t=T0)[0]
    assert saturated.median_latency == pytest.approx(profile.base_latency / (1 - profile.rho_max))
    assert behaviour(profile=profile, offered=300.0, pods=[], t=T0) == []


def test_offered_load_follows_the_daily_cycle() -> None:
    quiet = ServiceProfile(name="a", noise_sigma=0.0, burst_rate=0.0)
    load = LoadProcess(profile=quiet, day_seconds=DAY, rng=np.random.default_rng(0))
    trough, peak = load.advance(t=T0, dt=1.0), load.advance(t=T0 + DAY / 2, dt=1.0)
    assert trough == pytest.approx(quiet.base_rate * (1 - quiet.cycle_amplitude))
    assert peak == pytest.approx(quiet.base_rate * (1 + quiet.cycle_amplitude))
    day = [load.advance(t=T0 + s, dt=1.0) for s in np.arange(0.0, DAY, 1.0)]
    assert np.mean(day) == pytest.approx(quiet.base_rate, rel=1e-3)  # the base is the daily mean
    assert daily_cycle(0.25, amplitude=0.3) == pytest.approx(1.0)

    noisy = LoadProcess(profile=ServiceProfile(name="a"), day_seconds=DAY, rng=np.random.default_rng(0))
    rates = np.array([noisy.advance(t=T0 + s, dt=1.0) for s in np.arange(0.0, 3 * DAY, 1.0)])
    phase = (np.arange(0.0, 3 * DAY, 1.0) / DAY) % 1.0
    near_peak, near_trough = rates[np.abs(phase - 0.5) < 0.1], rates[(phase < 0.1) | (phase > 0.9)]
    assert near_peak.mean() > 1.3 * near_trough.mean()
    relative = rates / np.array([daily_cycle((T0 + s) / DAY, amplitude=0.3) for s in np.arange(0.0, 3 * DAY, 1.0)])
    assert 0.02 < np.std(relative / ServiceProfile(name="a").base_rate) < 0.15  # noise, around the cycle


def test_base_error_rate_is_small_and_observed() -> None:
    totals = served(sim(), pods=pods(3), seconds=300)
    profile = ServiceProfile(name="a")
    assert totals["requests"] > 10_000
    assert totals["error_ratio"] == pytest.approx(profile.base_error_rate, abs=0.002)
    assert totals["503"] == 0


# --- faults ------------------------------------------------------------------------------------------


def test_a_leak_grows_with_each_pods_age_and_new_pods_start_clean() -> None:
    leak = MemoryLeak(growth=0.1, onset=60.0).start(now=T0)
    old = pods(1, started=T0 - 500)[0]
    assert leak.latency_factor(old, T0 - 1) == 1.0  # not injected yet
    factors = [leak.latency_factor(old, T0 + s) for s in (0, 10, 20, 40)]
    assert factors[0] == pytest.approx(1.0) and factors == sorted(factors) and factors[-1] > 4
    # a restart: a new process, clean for `onset` seconds, then leaking at the same pace
    restarted = Pod(name="a-new", started=T0 + 40, revision=2, image=old.image)
    assert leak.latency_factor(restarted, T0 + 41) == 1.0
    assert leak.latency_factor(restarted, T0 + 40 + 59) == 1.0
    assert leak.latency_factor(restarted, T0 + 40 + 70) == pytest.approx(leak.latency_factor(old, T0 + 10))
    leak.clear(now=T0 + 200)
    assert leak.latency_factor(old, T0 + 201) == 1.0

    # served: the old pods' latency climbs, the restarted ones' does not
    service = sim()
    service.add_effect(leak.start(now=T0))
    before = served(service, pods=pods(3), seconds=10, t=T0)
    later = served(service, pods=pods(3), seconds=10, t=T0 + 30)
    fresh = served(service, pods=pods(3, started=T0 + 29, prefix="b"), seconds=10, t=T0 + 30)
    assert later["mean_latency"] > 2 * before["mean_latency"]
    assert fresh["mean_latency"] < 1.3 * before["mean_latency"]


def test_a_bad_release_fails_the_pods_running_it_and_only_those() -> None:
    release = BadRelease(failure_rate=0.3)
    good, bad = pods(3), pods(3, image="example.com/a:1.0-bad", prefix="bad")
    assert release.error_rate(bad[0], T0) == 0.0  # not injected yet
    service = sim()
    service.add_effect(release.start(now=T0))
    on_bad = served(service, pods=bad, seconds=60)
    on_good = served(service, pods=good, seconds=60)  # after a rollback: the previous image
    assert on_bad["error_ratio"] == pytest.approx(0.3, abs=0.03)
    assert on_good["error_ratio"] < 0.01
    assert on_bad["500"] > 0 and on_bad["503"] == 0


def test_an_outage_fails_every_pod_whatever_the_replicas_and_ends_after_its_duration() -> None:
    outage = DependencyOutage(failure_rate=0.4, duration=120.0).start(now=T0)
    service = sim()
    service.add_effect(outage)
    few = served(service, pods=pods(3), seconds=30, t=T0)
    many = served(service, pods=pods(9, started=T0 + 5, image="example.com/a:0.9", prefix="n"), seconds=30, t=T0 + 30)
    assert few["error_ratio"] == pytest.approx(0.4, abs=0.03)
    assert many["error_ratio"] == pytest.approx(0.4, abs=0.03)
    assert few["503"] > 0.9 * (few["500"] + few["503"])  # told apart by its status code
    after = served(service, pods=pods(3), seconds=30, t=T0 + 130)
    assert after["error_ratio"] < 0.01
    # latency is not what it changes
    assert many["mean_latency"] < few["mean_latency"]


def test_a_surge_raises_latency_and_enough_replicas_bring_it_back() -> None:
    profile = ServiceProfile(name="a", noise_sigma=0.0, burst_rate=0.0)
    normal = behaviour(profile=profile, offered=profile.base_rate, pods=pods(3), t=T0)[0]
    surge = TrafficSurge(factor=2.5, ramp=0.0).start(now=T0)
    service = sim(profile)
    service.add_effect(surge)
    surged = service.behaviour(t=T0 + DAY / 4, dt=1.0, pods=pods(3))[0]  # phase 0.25: the daily mean
    scaled = service.behaviour(t=T0 + DAY / 4, dt=1.0, pods=pods(9))[0]
    assert surged.rate == pytest.approx(2.5 * normal.rate)
    assert surged.median_latency > 2 * normal.median_latency
    assert scaled.median_latency < normal.median_latency  # x3 replicas for x2.5 load


def test_noisy_periods_add_noise_and_bursts_but_keep_the_level() -> None:
    def rates(noisy: bool) -> np.ndarray:
        load = LoadProcess(profile=ServiceProfile(name="a", cycle_amplitude=0.0), day_seconds=DAY,
                           rng=np.random.default_rng(3))
        effects = [NoisyHealthy().start(now=T0)] if noisy else []
        return np.array([load.advance(t=T0 + s, dt=1.0, effects=effects) for s in range(20_000)])

    calm, noisy = rates(False), rates(True)
    assert noisy.mean() == pytest.approx(calm.mean(), rel=0.03)
    assert noisy.std() > 1.5 * calm.std()


def test_a_fault_is_active_from_injection_until_cleared_or_its_duration() -> None:
    surge = TrafficSurge(factor=2.0, ramp=10.0, duration=60.0)
    assert not surge.active(T0)
    surge.start(now=T0)
    assert surge.load_factor(T0) == pytest.approx(1.0)
    assert surge.load_factor(T0 + 5) == pytest.approx(1.5)  # halfway up the ramp
    assert surge.load_factor(T0 + 30) == pytest.approx(2.0)
    assert surge.load_factor(T0 + 61) == 1.0
    assert (BadRelease.remedy, MemoryLeak.remedy, TrafficSurge.remedy) == ("rollback", "restart", "scale-out")
    assert DependencyOutage.remedy is None and NoisyHealthy.remedy is None


# --- determinism and histories -------------------------------------------------------------------------


def test_the_same_seed_serves_the_same_requests() -> None:
    def run(seed: int) -> list[tuple[int, float, tuple[int, ...]]]:
        service = sim(seed=seed)
        service.add_effect(MemoryLeak().start(now=T0 + 5))
        return [(s.requests, s.latency_sum, tuple(s.codes.values()))
                for t in np.arange(T0, T0 + 20, 0.25) for _, s in service.serve(t=float(t), dt=0.25, pods=pods(3))]

    assert run(7) == run(7)
    assert run(7) != run(8)


def history_of(seed: int, *, seconds: float = 600.0) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
    """A service's history, keyed without the `instance` label (each service has its own port)."""
    service = FleetService(profile=ServiceProfile(name="a"), namespace="shop", day_seconds=DAY, seed=seed, index=0)
    series = service.history(start=T0, end=T0 + seconds, step=1.0, pods=pods(3))
    return {(name, tuple(kv for kv in labels if kv[0] != "instance")): [v for _, v in points]
            for (name, labels), points in series.items()}


def test_a_history_is_deterministic_and_follows_the_model() -> None:
    first, again, other = history_of(5), history_of(5), history_of(6)
    assert first == again and first != other
    key = next(k for k in first if k[0] == "http_requests_total" and ("code", "200") in k[1])
    assert all(len(points) == 600 for points in first.values())
    for values in first.values():  # counters: cumulative, never decreasing
        assert all(b >= a for a, b in itertools.pairwise(values))
    # +Inf bucket and _count agree, and the codes add up to the requests
    for pod in ("a-0", "a-1", "a-2"):
        def get(name: str, extra: tuple[tuple[str, str], ...] = (), pod: str = pod) -> list[float]:
            labels = {"job": "lab", "namespace": "shop", "pod": pod, "service": "a", **dict(extra)}
            return first[(name, tuple(sorted(labels.items())))]

        count = get("http_request_duration_seconds_count")
        assert get("http_request_duration_seconds_bucket", (("le", "+Inf"),)) == count
        codes = [np.array(get("http_requests_total", (("code", c),))) for c in ("200", "500", "503")]
        assert list(sum(codes)) == count
    # the requests per second follow the daily cycle: more around noon (phase 0.5) than midnight
    increases = np.diff(np.array(first[key]))
    phase = ((T0 + np.arange(1, 600)) / DAY) % 1.0
    noon, midnight = increases[np.abs(phase - 0.5) < 0.1].mean(), increases[(phase < 0.1) | (phase > 0.9)].mean()
    assert noon > 1.3 * midnight
    assert math.isclose(increases.mean() * 3, ServiceProfile(name="a").base_rate, rel_tol=0.1)


def test_draw_puts_each_latency_in_its_bucket() -> None:
    profile = ServiceProfile(name="a")
    pod = behaviour(profile=profile, offered=3000.0, pods=pods(1), t=T0)[0]
    sample = draw(np.random.default_rng(1), pod, dt=10.0, latency_sigma=profile.latency_sigma)
    assert sample.buckets.sum() == sample.requests
    assert sum(sample.codes.values()) == sample.requests
    # the histogram's median bucket holds the model's median latency
    edges = (0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, math.inf)
    cumulative = np.cumsum(sample.buckets) / sample.requests
    index = int(np.searchsorted(cumulative, 0.5))
    assert edges[index] < pod.median_latency <= edges[index + 1]
