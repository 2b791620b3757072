"""`homeostat_policies{phase}`: how many policies this process evaluates, by phase."""

from __future__ import annotations

from homeostat.operator.metrics import OperatorMetrics


def _value(m: OperatorMetrics, phase: str) -> float | None:
    return m.registry.get_sample_value("homeostat_policies", {"phase": phase})


def test_phases_are_counted_moved_and_forgotten() -> None:
    m = OperatorMetrics()
    m.set_phase(namespace="shop", policy="a", phase="Healthy")
    m.set_phase(namespace="shop", policy="b", phase="Healthy")
    m.set_phase(namespace="web", policy="a", phase="Invalid")
    assert (_value(m, "Healthy"), _value(m, "Invalid")) == (2, 1)
    m.set_phase(namespace="shop", policy="b", phase="Anomalous")  # a policy is in one phase at a time
    assert (_value(m, "Healthy"), _value(m, "Anomalous")) == (1, 1)
    m.set_phase(namespace="web", policy="a", phase=None)  # deleted, or this replica stands by
    assert _value(m, "Invalid") == 0  # reads 0, not its last count
    assert _value(m, "Learning") is None  # never seen: no series at all
