"""The scenario catalogue: each fault of `lab/faults.py`, what Homeostat should do, and the policy.

`SCENARIOS` lists one `Scenario` per fault: its factory (`scenario.fault(**overrides)` makes a
fresh fault), the first action that should change the workload (None: none should) and how the
episode should end: "Resolved" (the remedy worked), "Escalated" (nothing we can do: a human is
told, the target is held, no loop) or "Quiet" (no incident at all).

`fleet_policy(service=...)` is the AnomalyPolicy for one fleet service that sends each fault to
its remedy, with demo-speed intervals (every one a parameter). Three signals over the metrics
the services export:

* `latency-p99`: histogram_quantile(0.99) of the rate of the request-duration buckets;
* `error-ratio`: rate of 5xx over the rate of all requests (`or vector(0)`: no 5xx series
  is no errors, not no data);
* `load-per-pod` (role `context`, `CONTEXT_SIGNALS`: it routes steps and is verified when
  involved, but never opens an incident alone): the request rate per serving pod, avg over
  pods of each pod's rate. Not the service's total rate: a playbook step is verified by *every*
  involved signal being back in the band recorded at detection, and a surge's total rate stays
  high after a successful scale-out (the load is still there; it is the load per replica that
  scaling brings back).

One playbook, its `when` conditions routing each fault (a step whose `when` does not hold is
skipped at once, as is an action that finds nothing to do; exhausted steps escalate):

1. `rollback` when error-ratio is anomalous, only if the anomaly began within `rollback_within`
   of the latest rollout (the action's own check): a bad release. A dependency outage with no
   recent rollout reaches it too, and the action answers Skipped ("more than rollback.within",
   or "no previous revision"), which changes nothing.
2. `scale-out` (x `scale_factor`) when latency-p99 and load-per-pod are anomalous: a surge.
3. `restart` when latency-p99 is anomalous and load-per-pod normal: a leak.
4. (end) steps exhausted with the anomaly still there: Escalated, and the target held for
   `escalation_hold`, so an outage is told to a human once instead of being acted on in a loop.

Calibrated (docs/lab.md, `bench/fleet_calibration.py`) for a fleet whose day is
`DEMO_DAY_SECONDS` long: no false confirmation in healthy or noisy hours, every fault confirmed
within 6-24 s with the right signals anomalous.

Caveats for whoever drives the scenarios: a rollout (a restart too: it is a new revision) less
than `rollback_within` before an outage makes step 1 roll back a good release (verification
then fails and the incident escalates: one useless action, no loop), so inject an outage on a
service that has not rolled out recently. A leak comes back `onset` seconds after the restart
(`MemoryLeak.onset`, 300 s by default): within `playbook.reopenWindow` that reopens the incident
and escalates it (the step after restart). A surge still on when `scale_back_after` has passed
since the resolution is scaled back into.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from homeostat.api.base import API_VERSION
from homeostat.api.policy import PolicySpec
from homeostat.lab.faults import BadRelease, DependencyOutage, Fault, MemoryLeak, NoisyHealthy, TrafficSurge

End = Literal["Resolved", "Escalated", "Quiet"]

DEMO_DAY_SECONDS = 3600.0
"""A day per hour: the `Fleet(day_seconds=...)` that `fleet_policy`'s defaults are calibrated for.

The default detector's seasonal model has a real day's period and its level lags a steep cycle:
with a day of 20 minutes the cycle's rise alone is confirmed anomalous now and then (docs/lab.md,
`bench/fleet_calibration.py`).
"""
# Load explains a symptom (it routes the surge to scale-out) but is not one: a surge the service
# absorbs is no incident, so it never opens one alone.
CONTEXT_SIGNALS = ("load-per-pod",)
# The smallest relative move that may count: p99 or load per pod 25 % off what is expected, the
# error ratio at least doubled. Below that a statistically unusual move is operationally trivial
# (a noisy service's p99 20 % up for a few seconds is no reason to act; measured in the demo).
MIN_CHANGE = {"latency-p99": 0.25, "error-ratio": 1.0, "load-per-pod": 0.25}


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One fault and what Homeostat, with `fleet_policy`, should do about it."""

    name: str
    fault: Callable[..., Fault]  # `scenario.fault(**overrides)`: a fresh, not yet injected fault
    expected_action: str | None  # the first action that should change the workload (Succeeded); None: none
    expected_end: End  # the phase the incident should end in; "Quiet": no incident opened
    description: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(name="bad-release", fault=BadRelease, expected_action="rollback", expected_end="Resolved",
             description="a rollout whose pods fail 30 % of requests; rolling back to the previous revision fixes it"),
    Scenario(name="memory-leak", fault=MemoryLeak, expected_action="restart", expected_end="Resolved",
             description="latency creeps up with each process's age; new pods start clean"),
    Scenario(name="traffic-surge", fault=TrafficSurge, expected_action="scale-out", expected_end="Resolved",
             description="2.5x the offered load; 3x the ready replicas bring the load per pod back"),
    Scenario(name="dependency-outage", fault=DependencyOutage, expected_action=None, expected_end="Escalated",
             description="40 % of requests fail with 503 on every pod whatever is done; escalate, do not flap"),
    Scenario(name="noisy-healthy", fault=NoisyHealthy, expected_action=None, expected_end="Quiet",
             description="more noise and more frequent bursts, no change of level; nothing should happen"),
)


def scenario(name: str) -> Scenario:
    """The scenario of that name; KeyError lists the known ones."""
    found = {s.name: s for s in SCENARIOS}
    if name not in found:
        raise KeyError(f"no scenario {name!r}; known: {sorted(found)}")
    return found[name]


def signal_queries(*, service: str, namespace: str = "shop", rate_window: str = "4s") -> dict[str, str]:
    """The PromQL of the three signals of `fleet_policy`, by signal name."""
    selector = f'namespace="{namespace}", service="{service}"'
    requests = f"http_requests_total{{{selector}}}"
    return {
        "latency-p99": f"histogram_quantile(0.99, sum by (le) "
                       f"(rate(http_request_duration_seconds_bucket{{{selector}}}[{rate_window}])))",
        "error-ratio": f'(sum(rate(http_requests_total{{{selector}, code=~"5.."}}[{rate_window}])) or vector(0))'
                       f" / sum(rate({requests}[{rate_window}]))",
        "load-per-pod": f"avg(sum by (pod) (rate({requests}[{rate_window}])))",
    }


def fleet_policy(
    *,
    service: str,
    namespace: str = "shop",
    name: str | None = None,
    prometheus_url: str | None = None,
    interval: str = "3s",
    rate_window: str = "4s",
    lookback: str = "20m",
    evaluation_delay: str = "1s",
    staleness: str = "10s",
    confirm_k: int = 3,
    confirm_n: int = 4,
    sensitivity: str = "medium",
    verify: str = "15s",
    cooldown: str = "5s",
    max_actions_per_hour: int = 10,
    rollback_within: str = "1m",
    scale_factor: float = 3.0,
    scale_max: int = 12,
    scale_back_after: str = "5m",
    escalation_hold: str = "10m",
    reopen_window: str = "2m",
    dry_run: bool = False,
) -> dict[str, Any]:
    """The AnomalyPolicy manifest (validated) that routes each fault of `service` to its remedy.

    Defaults suit a demo on a compressed day, with Prometheus scraping every second: an
    evaluation every 3 s of rates over 4 s, 3 anomalous points of 4 to confirm, 15 s to verify
    (the pods' ready delay, then a few fresh windows). The rate window must not be much longer
    than the interval: consecutive points of overlapping windows are correlated, and the default
    detector, which learns only excursions of at most 2 points as noise, then sees every
    natural extreme of the smoothed series as a multi-point excursion (with 10 s windows every
    2 s, ~10-30 false confirmations per healthy 20 minutes; with 4 s every 3 s, none; docs/lab.md).
    `lookback` must hold the detector's 288 warm-up points at `interval` (14.4 min at 3 s) and
    be covered by the imported history.
    """
    queries = signal_queries(service=service, namespace=namespace, rate_window=rate_window)
    detector = {"name": "default", "sensitivity": sensitivity}
    spec: dict[str, Any] = {
        "target": {"kind": "Deployment", "name": service},
        "interval": interval,
        "lookback": lookback,
        "evaluationDelay": evaluation_delay,
        "staleness": staleness,
        "signals": [{"name": signal, "query": query, "direction": "up", "detector": dict(detector),
                     "minChange": MIN_CHANGE[signal],
                     **({"role": "context"} if signal in CONTEXT_SIGNALS else {})}
                    for signal, query in queries.items()],
        "confirm": {"k": confirm_k, "n": confirm_n},
        "playbook": {
            "verify": verify,
            "cooldown": cooldown,
            "maxActionsPerHour": max_actions_per_hour,
            "escalationHold": escalation_hold,
            "reopenWindow": reopen_window,
            "dryRun": dry_run,
            "steps": [
                {"action": "rollback", "when": {"anomalous": ["error-ratio"]},
                 "rollback": {"within": rollback_within}},
                {"action": "scale-out", "when": {"anomalous": ["latency-p99", "load-per-pod"]},
                 "scaleOut": {"factor": scale_factor, "max": scale_max, "scaleBackAfter": scale_back_after}},
                {"action": "restart", "when": {"anomalous": ["latency-p99"], "normal": ["load-per-pod"]}},
            ],
        },
    }
    if prometheus_url is not None:
        spec["prometheus"] = {"url": prometheus_url}
    PolicySpec.model_validate(spec)  # a typo in a parameter fails here, not in the operator's status
    return {"apiVersion": API_VERSION, "kind": "AnomalyPolicy",
            "metadata": {"name": name or f"{service}-health", "namespace": namespace}, "spec": spec}
