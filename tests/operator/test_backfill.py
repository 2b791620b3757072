"""Back-fill that cannot take the operator down: history read in range queries Prometheus accepts
(at most 1,000 steps each, oldest first), the event loop served between series, and a signal
whose history could not be read said so in a Warning Event."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homeostat.api.policy import PolicySpec
from homeostat.lab.exporter import Exporter
from homeostat.lab.harness import deployment, policy, wait_until
from homeostat.lab.prometheus import PrometheusServer
from homeostat.operator.metrics import OperatorMetrics
from homeostat.operator.monitor import PolicyMonitor
from homeostat.operator.prometheus import MAX_POINTS_PER_QUERY, RangeSeries, Sample

T0 = 1_800_000_000.0


class History:
    """A Prometheus stand-in whose history holds `series` series, one point every second."""

    def __init__(self, series: int) -> None:
        self.series = series
        self.calls: list[tuple[float, float, float]] = []

    def range(self, query: str, *, start: float, end: float, step: float) -> list[RangeSeries]:
        self.calls.append((start, end, step))
        points = []
        t = start
        while t <= end:
            points.append((t, 1.0 + (t % 7) / 10))
            t += step
        return [RangeSeries(labels={"pod": f"p{i}"}, points=list(points)) for i in range(self.series)]

    def instant(self, query: str, *, at: float) -> list[Sample]:
        return []


async def test_a_long_back_fill_is_cut_in_accepted_queries_and_leaves_the_loop_turns() -> None:
    spec = PolicySpec.model_validate({"target": {"kind": "Deployment", "name": "web"}, "interval": "1s",
                                      "lookback": "1h", "evaluationDelay": "0s", "maxSeriesPerSignal": 50,
                                      "signals": [{"name": "latency", "query": "q"}]})
    source = History(series=40)
    monitor = PolicyMonitor(namespace="shop", name="web", spec=spec, source=source,  # type: ignore[arg-type]
                            metrics=OperatorMetrics(), clock=lambda: T0)
    table = monitor.tables["latency"]
    seen: list[int] = []  # points learned so far, each time another task got a turn
    done = asyncio.Event()

    async def other_policy() -> None:
        while not done.is_set():
            seen.append(sum(state.learned_points for state in table))
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_policy())
    learned = await monitor.backfill()
    done.set()
    await ticker

    assert learned == 40 * 3601  # every second of the hour, for every series, once
    assert all(state.learned_points == 3601 for state in table)
    assert all(round((end - start) / step) + 1 <= MAX_POINTS_PER_QUERY for start, end, step in source.calls)
    assert [start for start, _, _ in source.calls] == sorted(start for start, _, _ in source.calls)
    # The other task ran while the history was being learned, not only before and after it.
    midway = {n for n in seen if 0 < n < learned}
    assert len(midway) >= 10, sorted(set(seen))
    assert monitor.backfill_notes == {}


def _events(cluster: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events("shop") if (e.get("involvedObject") or {}).get("name") == name]


def test_history_longer_than_prometheus_takes_in_one_query_is_learned(
    cluster: Any, exporter: Exporter, prometheus: PrometheusServer, start_operator: Any
) -> None:
    exporter.gauge("lab_value").set(1.0)
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_value")
    time.sleep(5)  # a few seconds of history
    start_operator(prometheus.url)
    # 4 h at 1 s is 14,401 points: over Prometheus' 11,000 points per series in one range query.
    spec = {"target": {"kind": "Deployment", "name": "checkout"}, "interval": "1s", "lookback": "4h",
            "evaluationDelay": "0s", "signals": [{"name": "latency", "query": "max(lab_value)"}]}
    cluster.apply(policy("long", spec))
    started = wait_until(lambda: next((e for e in _events(cluster, "long") if e["reason"] == "MonitorStarted"), None),
                         timeout=60, message="the monitor never started")
    learned = int(started["message"].split("back-filled ")[1].split()[0])
    assert learned >= 3, started["message"]
    assert not [e for e in _events(cluster, "long") if e["reason"] == "BackfillIncomplete"]


def test_a_signal_whose_history_is_refused_says_so(
    cluster: Any, exporter: Exporter, prometheus: PrometheusServer, start_operator: Any
) -> None:
    exporter.gauge("lab_value").set(1.0)
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_value")
    start_operator(prometheus.url)
    # Valid PromQL at an instant, refused over a range by Prometheus (a range vector has no range result).
    spec = {"target": {"kind": "Deployment", "name": "checkout"}, "interval": "1s", "lookback": "1m",
            "evaluationDelay": "0s", "signals": [{"name": "latency", "query": "lab_value[30s]"}]}
    cluster.apply(policy("refused", spec))
    warning = wait_until(lambda: next((e for e in _events(cluster, "refused") if e["reason"] == "BackfillIncomplete"),
                                      None), timeout=60, message="no BackfillIncomplete Warning")
    assert warning["type"] == "Warning" and "signal 'latency'" in warning["message"]
    assert "not learned" in warning["message"]
