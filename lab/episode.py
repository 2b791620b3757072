"""One fault, start to end, measured: what the demo prints and the benchmark tabulates.

An `Episode` holds the facts of one injected fault on one service: when it was injected, when
it became visible in Prometheus, when it was detected, the actions taken, how it ended and
when the service's metrics were back in band. Detection and actions come from whoever watched
the service (Homeostat's Incident, or the benchmark's static-threshold baseline); visibility
and recovery come from Prometheus alone, with the same yardstick for every arm:

* the *health signals* are the service's p99 latency and error ratio (`signal_queries`, the
  PromQL of `fleet_policy`); load is a cause, not a symptom;
* the *healthy ceiling* of a signal is its highest value in the `baseline` seconds before the
  injection (plus `margin`, relative);
* the fault is *visible* at the first sample after injection where a health signal is above
  its ceiling; the metrics are *back in band* at the first sample after detection from which
  every health signal stays at or under its ceiling for `hold` seconds.

MTTD is detection minus visibility (also given in scrape intervals); MTTR is back-in-band
minus injection, as the issue defines it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from homeostat.lab.scenarios import signal_queries

HEALTH_SIGNALS = ("latency-p99", "error-ratio")
Points = list[tuple[float, float]]
RangeQuery = Callable[[str, float, float, float], Points]


@dataclass(kw_only=True)
class Episode:
    """The measured facts of one fault on one service, for one arm (who watched it)."""

    scenario: str
    service: str
    arm: str  # "homeostat", or the baseline profile's name
    injected_at: float
    expected_action: str | None
    expected_end: str
    detected_at: float | None = None
    visible_at: float | None = None
    recovered_at: float | None = None
    end: str = "Open"  # Resolved, Escalated, Quiet, Open (still going), RolledBack (baseline), ...
    actions: list[tuple[float, str, str]] = field(default_factory=list)  # (unix time, action, state)
    incident: str | None = None
    scrape_interval: float = 1.0

    @property
    def changes(self) -> list[tuple[float, str, str]]:
        """The actions that changed the workload (Succeeded), in order."""
        return [a for a in self.actions if a[2] == "Succeeded"]

    @property
    def first_action(self) -> str | None:
        changes = self.changes
        return changes[0][1] if changes else None

    @property
    def right_first_action(self) -> bool:
        return self.first_action == self.expected_action

    @property
    def mttd(self) -> float | None:
        """Seconds from visible in Prometheus to detected (None: not detected, or never visible)."""
        if self.detected_at is None or self.visible_at is None:
            return None
        return self.detected_at - self.visible_at

    @property
    def mttd_scrapes(self) -> float | None:
        return None if self.mttd is None else self.mttd / self.scrape_interval

    @property
    def mttr(self) -> float | None:
        """Seconds from injection to metrics back in band (None: not back)."""
        return None if self.recovered_at is None else self.recovered_at - self.injected_at

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "service": self.service, "arm": self.arm, "incident": self.incident,
            "expected_action": self.expected_action, "first_action": self.first_action,
            "right_first_action": self.right_first_action, "actions": len(self.changes),
            "expected_end": self.expected_end, "end": self.end,
            "mttd_s": _round(self.mttd), "mttd_scrapes": _round(self.mttd_scrapes), "mttr_s": _round(self.mttr),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- Homeostat's side: the Incident -----------------------------------------------------------


def _stamp(text: str | None) -> float | None:
    from homeostat.api.times import parse_time

    return parse_time(text) if text else None


def from_incidents(episode: Episode, incidents: Sequence[Mapping[str, Any]]) -> Episode:
    """Fill detection, actions and end from the Incidents of the episode's policy opened after injection."""
    mine = [i for i in incidents
            if (_stamp((i.get("spec") or {}).get("detectedAt")) or 0.0) >= episode.injected_at - 1.0]
    if not mine:
        episode.end = "Quiet"
        return episode
    mine.sort(key=lambda i: (i.get("spec") or {}).get("detectedAt", ""))
    first = mine[0]
    episode.incident = first["metadata"]["name"]
    episode.detected_at = _stamp(first["spec"]["detectedAt"])
    episode.actions = []
    for incident in mine:
        for record in (incident.get("status") or {}).get("actions") or []:
            if record.get("purpose", "Step") != "Step":
                continue  # a scale-back is housekeeping after the episode, not a remedy
            when = _stamp(record.get("finishedAt") or record.get("startedAt")) or 0.0
            episode.actions.append((when, str(record["action"]), str(record["state"])))
    episode.actions.sort()
    episode.end = str((mine[-1].get("status") or {}).get("phase") or "Detected")
    return episode


# --- Prometheus' side: visible and back in band -----------------------------------------------


def prometheus_range(url: str) -> RangeQuery:
    """A `query_range` over HTTP: (promql, start, end, step) -> [(t, value)], NaN-free."""

    def query(promql: str, start: float, end: float, step: float) -> Points:
        response = httpx.get(f"{url}/api/v1/query_range",
                             params={"query": promql, "start": start, "end": end, "step": step}, timeout=30)
        response.raise_for_status()
        result = response.json()["data"]["result"]
        points = [(float(t), float(v)) for t, v in result[0]["values"]] if result else []
        return [(t, v) for t, v in points if math.isfinite(v)]

    return query


def ceilings(*, query: RangeQuery, queries: Mapping[str, str], before: float, baseline: float, step: float,
             margin: float) -> dict[str, float]:
    """The healthy ceiling of each health signal: its maximum over `baseline` seconds before `before`."""
    out: dict[str, float] = {}
    for name in HEALTH_SIGNALS:
        values = [v for _, v in query(queries[name], before - baseline, before - step, step)]
        if values:
            out[name] = max(values) * (1.0 + margin) + 1e-9
    return out


def measure_in_prometheus(episode: Episode, *, query: RangeQuery, until: float, namespace: str,
                          rate_window: str = "10s", baseline: float = 300.0, margin: float = 0.05,
                          hold: float = 10.0) -> Episode:
    """Fill `visible_at` and `recovered_at` from Prometheus; see the module docstring."""
    step = episode.scrape_interval
    queries = signal_queries(service=episode.service, namespace=namespace, rate_window=rate_window)
    ceiling = ceilings(query=query, queries=queries, before=episode.injected_at, baseline=baseline, step=step,
                       margin=margin)
    series = {name: dict(query(queries[name], episode.injected_at, until, step)) for name in ceiling}
    times = sorted(set().union(*(s.keys() for s in series.values()))) if series else []

    def above(t: float) -> bool:
        return any(series[name].get(t, 0.0) > ceiling[name] for name in ceiling)

    episode.visible_at = next((t for t in times if above(t)), None)
    start = episode.detected_at if episode.detected_at is not None else episode.visible_at
    episode.recovered_at = None
    if start is not None:
        calm_since: float | None = None
        for t in times:
            if t < start:
                continue
            if above(t):
                calm_since = None
            elif calm_since is None:
                calm_since = t
            if calm_since is not None and t - calm_since >= hold:
                episode.recovered_at = calm_since
                break
    return episode
