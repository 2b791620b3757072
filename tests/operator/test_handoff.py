"""From the monitor to the incident state machine and back: observations of a cycle, and the
false-positive verdict applied to the detectors of the involved series (once per detector)."""

from __future__ import annotations

from typing import Any

from homeostat.api.incident import IncidentSpec, IncidentStatus, InvolvedSeries
from homeostat.api.policy import PolicySpec
from homeostat.api.times import format_time
from homeostat.detectors import Verdict
from homeostat.operator.metrics import OperatorMetrics
from homeostat.operator.monitor import Feedback, PolicyMonitor
from homeostat.operator.prometheus import PrometheusUnavailable, Sample
from homeostat.playbooks.machine import IncidentView

T0 = 1_800_000_000.0


class Spy:
    """Band [0, 10] around 5, warm at once; remembers the feedback it got."""

    def __init__(self) -> None:
        self.feedback: list[tuple[float, float]] = []

    def update_one(self, t: float, x: float) -> Verdict:
        return Verdict(score=min(x / 20, 1.0), expected=5.0, lower=0.0, upper=10.0, alarm=x > 10, reason="",
                       warm=True)

    def mark_false_positive(self, t: float, x: float) -> None:
        self.feedback.append((t, x))


class Source:
    def __init__(self) -> None:
        self.values: dict[str, float] | None = {}

    def instant(self, query: str, *, at: float) -> list[Sample]:
        if self.values is None:
            raise PrometheusUnavailable("Prometheus at http://p unreachable")
        if "timestamp(" in query:  # the monitor's freshness query: the data is as new as `at`
            return [Sample(labels={"__homeostat_selector": "0"}, t=at, value=at)]
        return [Sample(labels={"pod": pod}, t=at, value=v) for pod, v in self.values.items()]

    def range(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def monitor(delay: str = "0s") -> tuple[PolicyMonitor, Source, list[float]]:
    spec = PolicySpec.model_validate({"target": {"kind": "Deployment", "name": "web"}, "interval": "1s",
                                      "evaluationDelay": delay, "signals": [{"name": "latency", "query": "q"}],
                                      "confirm": {"k": 2, "n": 3}})
    source = Source()
    clock = [T0]
    m = PolicyMonitor(namespace="shop", name="web", spec=spec, source=source, metrics=OperatorMetrics(),  # type: ignore[arg-type]
                      clock=lambda: clock[0])
    m.tables["latency"].make_detector = Spy  # type: ignore[assignment]
    return m, source, clock


async def test_observations_carry_values_bands_and_confirmation() -> None:
    m, source, clock = monitor()
    results = []
    for values in ({"a": 5.0, "b": 5.0}, {"a": 50.0, "b": 5.0}, {"a": 50.0, "b": 5.0}):
        source.values = values
        results.append(await m.evaluate())
        clock[0] += 1
    obs = results[-1].observations()
    latency = obs.signals["latency"]
    assert latency.usable and latency.confirmed and obs.confirmed == ["latency"]
    a = latency.find({"pod": "a"})
    assert a is not None and a.value == 50.0 and a.confirmed and (a.lower, a.upper) == (0.0, 10.0)
    assert obs.anomaly_started_at == T0 + 1  # the first anomalous point of the window

    source.values = {"b": 5.0}  # pod a gone: its series has no fresh point
    clock[0] += 1
    obs = (await m.evaluate()).observations()
    assert obs.signals["latency"].find({"pod": "a"}) is None and obs.signals["latency"].usable


async def test_prometheus_down_is_no_data_for_every_signal() -> None:
    m, source, _ = monitor()
    source.values = None
    obs = (await m.evaluate()).observations()
    assert not obs.signals["latency"].usable and "unreachable" in obs.signals["latency"].reason
    assert obs.confirmed == []


async def test_feedback_marks_the_involved_series_detector_once() -> None:
    m, source, _ = monitor()
    source.values = {"a": 50.0, "b": 5.0}
    await m.evaluate()
    incident = IncidentView(name="web-1", namespace="shop", status=IncidentStatus(), spec=IncidentSpec(
        policy="web", target={"kind": "Deployment", "name": "web"},  # type: ignore[arg-type]
        detected_at=format_time(T0), signal="latency",
        involved=[InvolvedSeries(signal="latency", labels={"pod": "a"}, observed=50.0),
                  InvolvedSeries(signal="latency", labels={"pod": "zz"}, observed=9.0),  # forgotten since
                  InvolvedSeries(signal="gone", labels={}, observed=1.0)]))  # signal removed from the spec
    feedback = Feedback(m)
    assert feedback(incident) == 1
    assert feedback(incident) == 1, "a second call (a write retried after a conflict) says the same"
    spy = m.tables["latency"].states[(("pod", "a"),)].detector
    assert spy.feedback == [(T0, 50.0)], "marked once per detector"  # type: ignore[attr-defined]


async def test_the_anomaly_starts_at_the_data_time_not_the_evaluation_time() -> None:
    # Evaluated 10 s behind now: the first anomalous point is the data of 10 s before its evaluation,
    # and that is what a rollback compares with the rollout's time.
    m, source, clock = monitor(delay="10s")
    results = []
    for values in ({"a": 5.0}, {"a": 50.0}, {"a": 50.0}):
        source.values = values
        results.append(await m.evaluate())
        clock[0] += 1
    obs = results[-1].observations()
    assert obs.confirmed == ["latency"] and obs.anomaly_started_at == T0 + 1 - 10
