"""The mathematics of a simulated service: offered load, queueing latency, errors. No processes.

One service is a set of ready pods behind a load balancer. Everything here is a pure function
of its inputs and of a numpy `Generator` passed in, so the live fleet (`lab/fleet.py`), the
history imported into Prometheus and the tests all run the same model, deterministically for a
given seed and sequence of calls.

Offered load (requests per second to the whole service), at unix time t:

    rate(t) = base_rate * daily_cycle(t / day_seconds) * max(0, 1 + noise(t)) * (1 + burst(t)) * F(t)
    daily_cycle(x) = 1 - amplitude * cos(2 pi x)        period 1: trough at x = 0, peak at x = 0.5, mean 1

`noise` is an Ornstein-Uhlenbeck process (mean 0, standard deviation `noise_sigma`, correlation
time `noise_tau` seconds; stepped exactly, so any step size gives the same process), `burst`
is `burst_size` for `burst_length` seconds after each arrival of a Poisson process of rate
`burst_rate` per second, and F is the product of the effects' `load_factor` (a traffic surge).

Each ready pod gets an equal share (pods that are not ready get no traffic). For pod p of n:

    rate_p = rate / n                                       requests per second
    rho_p = rate_p / capacity_per_pod                       utilisation
    median_p = base_latency * 1 / (1 - min(rho_p, rho_max)) * L_p(t)
    latency ~ LogNormal(ln median_p, latency_sigma)         so p99 = median * exp(2.326 sigma)
    P(error) = 1 - (1 - base_error_rate) * prod_i (1 - e_i,p(t))

The factor 1/(1 - rho) is the M/M/1 sojourn time relative to the service time: latency grows
with the load per ready pod, so more ready replicas mean lower latency. It is capped at
`rho_max` (0.95: 20 times the service time) where a real queue would grow without bound.
L_p is the product of the effects' `latency_factor` for that pod (a memory leak), e_i,p their
`error_rate` (a bad release, a dependency outage). In a step of dt seconds a pod serves
Poisson(rate_p * dt) requests, each failing by cause in turn (`draw`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the request-duration histogram, as a service would configure them."""

OK = "200"
SERVER_ERROR = "500"
CODES = ("200", "500", "503")
"""Status codes the model produces; every pod exports all of them from its start (at 0)."""


def daily_cycle(x: float, *, amplitude: float) -> float:
    """Load relative to the daily mean at `x` days since the epoch: 1 - amplitude * cos(2 pi x)."""
    return 1.0 - amplitude * math.cos(2.0 * math.pi * x)


def queueing_factor(utilisation: float, *, ceiling: float = 0.95) -> float:
    """Sojourn time over service time of an M/M/1 queue, 1 / (1 - rho), with rho capped at `ceiling`."""
    return 1.0 / (1.0 - min(max(utilisation, 0.0), ceiling))


@dataclass(frozen=True, kw_only=True)
class ServiceProfile:
    """What one service is like when healthy. The defaults: 35 % utilisation on 3 pods at the daily mean."""

    name: str
    replicas: int = 3  # of the Deployment at creation
    base_rate: float = 200.0  # requests per second to the whole service, daily mean
    capacity_per_pod: float = 190.0  # requests per second one pod serves at full utilisation
    base_latency: float = 0.05  # seconds, median at zero load
    latency_sigma: float = 0.25  # log-normal spread of one request's latency
    base_error_rate: float = 0.002  # probability that a request fails with a 500 when healthy
    cycle_amplitude: float = 0.3  # daily swing of the load around its mean
    noise_sigma: float = 0.05  # standard deviation of the relative load noise
    noise_tau: float = 3.0  # seconds: correlation time of the load noise
    burst_rate: float = 1 / 90  # bursts per second
    burst_length: float = 2.0  # seconds one burst lasts
    burst_size: float = 0.25  # relative extra load during a burst
    rho_max: float = 0.95  # utilisation cap of the queueing factor


@dataclass(frozen=True, kw_only=True)
class Pod:
    """One ready pod as the fleet sees it in the API: a process that started at `started`."""

    name: str
    started: float  # unix seconds its process started (a restart is a new pod, with a new start)
    revision: int = 0  # deployment.kubernetes.io/revision of its ReplicaSet
    image: str = ""  # image of its first container


class Effect:
    """A change to a service's behaviour; neutral here. Faults (`lab/faults.py`) override some methods.

    Every method is asked at unix time `t`, so an effect that starts, ends or grows with time
    (a leak, an outage of set duration) answers for that instant.
    """

    error_code: str = SERVER_ERROR  # the status code of the requests this effect fails

    def load_factor(self, t: float) -> float:
        """Multiplier of the offered load of the whole service."""
        return 1.0

    def noise_factor(self, t: float) -> float:
        """Multiplier of the load noise's standard deviation."""
        return 1.0

    def burst_factor(self, t: float) -> float:
        """Multiplier of the rate at which load bursts arrive."""
        return 1.0

    def latency_factor(self, pod: Pod, t: float) -> float:
        """Multiplier of the pod's median latency."""
        return 1.0

    def error_rate(self, pod: Pod, t: float) -> float:
        """Probability that a request to this pod fails because of this effect."""
        return 0.0


@dataclass(frozen=True, kw_only=True)
class PodBehaviour:
    """What one pod does now: its share of the load, its latency, its failure causes."""

    pod: Pod
    rate: float  # requests per second
    utilisation: float
    median_latency: float  # seconds
    failures: tuple[tuple[str, float], ...]  # (status code, probability), one per cause, in order

    @property
    def error_probability(self) -> float:
        """P(a request fails) = 1 - prod(1 - p) over the causes."""
        return 1.0 - math.prod(1.0 - p for _, p in self.failures)


@dataclass(kw_only=True)
class Sample:
    """The requests one pod served in one step: the increments of its counters."""

    requests: int
    buckets: np.ndarray  # count per histogram bucket, not cumulative; the last one is +Inf
    latency_sum: float
    codes: dict[str, int] = field(default_factory=dict)


class LoadProcess:
    """The offered load of one service over time: cycle, noise and bursts, stepped forward.

    `advance(t=..., dt=...)` moves the noise and the bursts from t - dt to t and returns the
    rate at t. It always draws the same number of random numbers, so a sequence of calls gives
    the same rates for the same generator seed, whatever the effects.
    """

    def __init__(self, *, profile: ServiceProfile, day_seconds: float, rng: np.random.Generator) -> None:
        if day_seconds <= 0:
            raise ValueError(f"day_seconds must be positive, not {day_seconds}")
        self.profile = profile
        self.day_seconds = day_seconds
        self._rng = rng
        self.noise = float(rng.normal(0.0, profile.noise_sigma))  # start in the stationary law
        self.burst_until = -math.inf

    def cycle(self, t: float) -> float:
        return daily_cycle(t / self.day_seconds, amplitude=self.profile.cycle_amplitude)

    def advance(self, *, t: float, dt: float, effects: Sequence[Effect] = ()) -> float:
        profile = self.profile
        sigma = profile.noise_sigma * math.prod(e.noise_factor(t) for e in effects)
        decay = math.exp(-max(dt, 0.0) / profile.noise_tau)
        self.noise = self.noise * decay + sigma * math.sqrt(1.0 - decay * decay) * float(self._rng.normal())
        arrival = 1.0 - math.exp(-profile.burst_rate * math.prod(e.burst_factor(t) for e in effects) * max(dt, 0.0))
        if float(self._rng.random()) < arrival:
            self.burst_until = t + profile.burst_length
        burst = profile.burst_size if t < self.burst_until else 0.0
        factor = math.prod(e.load_factor(t) for e in effects)
        return profile.base_rate * self.cycle(t) * max(0.0, 1.0 + self.noise) * (1.0 + burst) * factor


def behaviour(
    *, profile: ServiceProfile, offered: float, pods: Sequence[Pod], t: float, effects: Sequence[Effect] = ()
) -> list[PodBehaviour]:
    """Each ready pod's share of `offered` requests per second, its latency and failure causes at `t`."""
    if not pods:
        return []
    rate = offered / len(pods)
    utilisation = rate / profile.capacity_per_pod
    queueing = queueing_factor(utilisation, ceiling=profile.rho_max)
    found = []
    for pod in pods:
        median = profile.base_latency * queueing * math.prod(e.latency_factor(pod, t) for e in effects)
        failures = [(SERVER_ERROR, profile.base_error_rate)]
        failures += [(e.error_code, p) for e in effects if (p := e.error_rate(pod, t)) > 0.0]
        found.append(PodBehaviour(pod=pod, rate=rate, utilisation=utilisation, median_latency=median,
                                  failures=tuple((code, min(max(p, 0.0), 1.0)) for code, p in failures)))
    return found


def draw(rng: np.random.Generator, pod: PodBehaviour, *, dt: float, latency_sigma: float) -> Sample:
    """The requests `pod` serves in `dt` seconds: Poisson count, log-normal latencies, failures by cause."""
    count = int(rng.poisson(max(pod.rate * dt, 0.0)))
    latencies = rng.lognormal(math.log(pod.median_latency), latency_sigma, size=count)
    edges = np.asarray(LATENCY_BUCKETS)
    buckets = np.bincount(np.searchsorted(edges, latencies, side="left"), minlength=len(edges) + 1)
    codes = dict.fromkeys(CODES, 0)
    remaining = count
    for code, probability in pod.failures:
        failed = int(rng.binomial(remaining, probability))
        codes[code] = codes.get(code, 0) + failed
        remaining -= failed
    codes[OK] = remaining
    return Sample(requests=count, buckets=buckets, latency_sum=float(latencies.sum()), codes=codes)


class ServiceSim:
    """One service's model: its load process and effects, stepped over the pods that are ready.

    `serve(t=..., dt=..., pods=...)` advances the load to `t` and returns what each pod served
    in the last `dt` seconds, with its behaviour. The caller owns the pods (from the API server,
    or a fixed list for a history) and the counters.
    """

    def __init__(self, *, profile: ServiceProfile, day_seconds: float, rng: np.random.Generator) -> None:
        self.profile = profile
        self.load = LoadProcess(profile=profile, day_seconds=day_seconds, rng=rng)
        self.effects: list[Effect] = []
        self._rng = rng

    def add_effect(self, effect: Effect) -> None:
        if effect not in self.effects:
            self.effects.append(effect)

    def remove_effect(self, effect: Effect) -> None:
        if effect in self.effects:
            self.effects.remove(effect)

    def behaviour(self, *, t: float, dt: float, pods: Sequence[Pod]) -> list[PodBehaviour]:
        """Advance the load to `t` and say what every pod does now (no requests drawn)."""
        offered = self.load.advance(t=t, dt=dt, effects=self.effects)
        return behaviour(profile=self.profile, offered=offered, pods=pods, t=t, effects=self.effects)

    def serve(self, *, t: float, dt: float, pods: Sequence[Pod]) -> list[tuple[PodBehaviour, Sample]]:
        """Advance to `t` and draw the requests each pod served in the last `dt` seconds."""
        return [(now, draw(self._rng, now, dt=dt, latency_sigma=self.profile.latency_sigma))
                for now in self.behaviour(t=t, dt=dt, pods=pods)]
