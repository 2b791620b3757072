"""The scenario catalogue and `fleet_policy`: each fault's signal pattern walks the playbook to its remedy.

Pure: the policy is validated by the API model, and its steps are walked by the incident state
machine (`playbooks/machine.py`) the way the runner carries its decisions out. What each fault
does to the signals is what `bench/fleet_calibration.py` measures at the first confirmation
(docs/lab.md): a bad release and an outage raise the error ratio only, a surge the latency and
the load per pod, a leak the latency only.
"""

from __future__ import annotations

import pytest

from homeostat.api.incident import IncidentPhase, IncidentSpec, IncidentStatus, InvolvedSeries
from homeostat.api.policy import PolicySpec
from homeostat.api.times import format_time
from homeostat.lab.scenarios import CONTEXT_SIGNALS, SCENARIOS, Scenario, fleet_policy, scenario, signal_queries
from homeostat.playbooks.guards import GuardFacts
from homeostat.playbooks.machine import IncidentView, Kind, Observations, SeriesNow, SignalNow, decide

NOW = 1_800_000_000.0
RAISES = {"bad-release": {"error-ratio"}, "dependency-outage": {"error-ratio"},
          "traffic-surge": {"latency-p99", "load-per-pod"}, "memory-leak": {"latency-p99"}}


def observe(anomalous: set[str]) -> Observations:
    signals = {}
    for name in ("latency-p99", "error-ratio", "load-per-pod"):
        bad = name in anomalous
        point = SeriesNow(labels={}, value=2.0 if bad else 1.0, anomalous=bad, confirmed=bad,
                          expected=1.0, lower=0.8, upper=1.2)
        signals[name] = SignalNow(name=name, usable=True, verdict="anomalous" if bad else "normal", series=(point,),
                                  context=name in CONTEXT_SIGNALS)
    return Observations(at=NOW, signals=signals, anomaly_started_at=NOW - 9)


def walk(spec: PolicySpec, anomalous: set[str], *, skipped_by_action: set[str]) -> tuple[list[str], Kind]:
    """The actions the runner would call, in order, and the decision that ends the walk.

    An action in `skipped_by_action` answers Skipped (it finds nothing to do), which the runner
    records by going on with the next step at once; any other action is the remedy.
    """
    first = sorted(anomalous)[0]
    status = IncidentStatus(phase=IncidentPhase.DETECTED, phase_since=format_time(NOW - 1))
    incident = IncidentView(name="web-1", namespace="shop", status=status, spec=IncidentSpec(
        policy="web-health", target=spec.target, detected_at=format_time(NOW - 1), signal=first,
        involved=[InvolvedSeries(signal=name, observed=2.0, expected=1.0, lower=0.8, upper=1.2)
                  for name in sorted(anomalous)]))
    called: list[str] = []
    for _ in range(10):
        decision = decide(incidents=[incident], obs=observe(anomalous), policy=spec, facts=GuardFacts(now=NOW),
                          now=NOW)
        if decision.kind == Kind.SKIP_STEP:
            status.current_step += 1
        elif decision.kind == Kind.ACT:
            assert decision.step is not None
            action = str(spec.playbook.steps[decision.step].action)
            called.append(action)
            if action not in skipped_by_action:
                return called, decision.kind
            status.current_step += 1
        else:
            return called, decision.kind
    raise AssertionError(f"the walk did not end: {called}")


def test_the_policy_is_valid_and_watches_the_service_it_is_for() -> None:
    manifest = fleet_policy(service="checkout", namespace="shop", prometheus_url="http://prometheus:9090")
    spec = PolicySpec.model_validate(manifest["spec"])
    assert manifest["metadata"] == {"name": "checkout-health", "namespace": "shop"}
    assert spec.target.name == "checkout" and spec.prometheus.url == "http://prometheus:9090"
    assert [s.name for s in spec.signals] == list(signal_queries(service="checkout"))
    for signal in spec.signals:
        assert 'namespace="shop", service="checkout"' in signal.query and "[4s]" in signal.query
    assert [str(step.action) for step in spec.playbook.steps] == ["rollback", "scale-out", "restart"]
    assert {s.name: str(s.role) for s in spec.signals} == {
        "latency-p99": "symptom", "error-ratio": "symptom", "load-per-pod": "context"}
    with pytest.raises(ValueError, match="interval"):
        fleet_policy(service="checkout", interval="100ms")  # refused here, not in the operator's status


@pytest.mark.parametrize("case", [s for s in SCENARIOS if s.expected_end != "Quiet"], ids=lambda s: s.name)
def test_each_fault_walks_the_playbook_to_its_remedy_or_escalates(case: Scenario) -> None:
    spec = PolicySpec.model_validate(fleet_policy(service="web")["spec"])
    # the outage has no rollout within `rollback.within`: the rollback action finds nothing to roll back
    skipped = {"rollback"} if case.expected_action is None else set()
    called, end = walk(spec, RAISES[case.name], skipped_by_action=skipped)
    if case.expected_end == "Escalated":
        assert end == Kind.ESCALATE
        assert all(action in skipped for action in called)  # nothing that changes the workload
    else:
        assert called[-1] == case.expected_action and end == Kind.ACT
        assert called == [case.expected_action]  # the first action is the remedy, nothing before it


def test_a_rise_of_the_load_per_pod_alone_opens_no_incident() -> None:
    spec = PolicySpec.model_validate(fleet_policy(service="web")["spec"])
    facts = GuardFacts(now=NOW)
    assert decide(incidents=[], obs=observe({"load-per-pod"}), policy=spec, facts=facts, now=NOW).kind == Kind.IDLE
    both = observe({"latency-p99", "load-per-pod"})
    assert decide(incidents=[], obs=both, policy=spec, facts=facts, now=NOW).kind == Kind.OPEN


def test_the_catalogue_names_each_fault_with_its_remedy() -> None:
    assert {s.name for s in SCENARIOS} == set(RAISES) | {"noisy-healthy"}
    for case in SCENARIOS:
        fault = case.fault()
        assert fault.name == case.name and fault.injected_at is None
        assert fault.remedy == case.expected_action
    assert scenario("memory-leak").expected_end == "Resolved"
    assert scenario("noisy-healthy").expected_end == "Quiet"
    with pytest.raises(KeyError, match="known"):
        scenario("meteor-strike")
