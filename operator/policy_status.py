"""Turning what the monitor found into the policy's `status`: phase, summary, conditions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from homeostat.api.status import (
    ConditionType,
    PolicyPhase,
    PolicyStatus,
    SeriesVerdict,
    SignalStatus,
)
from homeostat.operator.conditions import set_condition
from homeostat.operator.monitor import CycleResult
from homeostat.operator.validation import SpecProblem


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarise(signals: Sequence[SignalStatus]) -> str:
    """`2/2 normal`, `1/3 anomalous`, `2/2 learning`, `0/2 data` — for `kubectl get ap`."""
    total = len(signals)
    confirmed = sum(1 for s in signals if s.confirmed)
    if confirmed:
        return f"{confirmed}/{total} anomalous"
    for verdict, word in (
        (SeriesVerdict.NO_DATA, "no data"),
        (SeriesVerdict.LEARNING, "learning"),
    ):
        count = sum(1 for s in signals if s.verdict == verdict)
        if count:
            return f"{count}/{total} {word}"
    return f"{total}/{total} normal"


def phase_of(signals: Sequence[SignalStatus], *, prometheus_ok: bool) -> PolicyPhase:
    if not prometheus_ok or all(s.verdict == SeriesVerdict.NO_DATA for s in signals):
        return PolicyPhase.NO_DATA
    if any(s.confirmed for s in signals):
        return PolicyPhase.ANOMALOUS
    if all(s.verdict in (SeriesVerdict.LEARNING, SeriesVerdict.NO_DATA) for s in signals):
        return PolicyPhase.LEARNING
    return PolicyPhase.HEALTHY


def invalid_status(previous: PolicyStatus, problems: Sequence[SpecProblem], *, generation: int | None) -> PolicyStatus:
    """Ready=False and SpecValid=False, naming every field at fault."""
    message = "; ".join(str(p) for p in problems)
    conditions = set_condition(
        previous.conditions, type=ConditionType.SPEC_VALID, status="False", reason="InvalidSpec",
        message=message, generation=generation,
    )
    conditions = set_condition(
        conditions, type=ConditionType.READY, status="False", reason="InvalidSpec",
        message=message, generation=generation,
    )
    return PolicyStatus(
        phase=PolicyPhase.INVALID, observed_generation=generation, conditions=conditions,
        last_evaluation=previous.last_evaluation, active_incident=previous.active_incident,
        signals_summary="invalid spec", signals=[],
    )


def cycle_status(
    previous: PolicyStatus,
    result: CycleResult,
    *,
    generation: int | None,
    query_problems: Sequence[SpecProblem],
    target_problem: str | None,
    verify_shortfalls: Sequence[str] = (),
) -> PolicyStatus:
    """The status after a successful or partly failed evaluation cycle."""
    conditions = set_condition(
        previous.conditions, type=ConditionType.VERIFY_COVERS_SETTLING,
        status="False" if verify_shortfalls else "True",
        reason="ExtendedToSettlingTime" if verify_shortfalls else "Covers",
        message="; ".join(verify_shortfalls), generation=generation,
    )
    if query_problems:
        message = "; ".join(str(p) for p in query_problems)
        conditions = set_condition(conditions, type=ConditionType.SPEC_VALID, status="False",
                                   reason="QueryRejected", message=message, generation=generation)
    else:
        conditions = set_condition(conditions, type=ConditionType.SPEC_VALID, status="True",
                                   reason="Valid", generation=generation)
    if result.unavailable:
        conditions = set_condition(conditions, type=ConditionType.PROMETHEUS_REACHABLE, status="False",
                                   reason="QueryFailed", message=result.unavailable, generation=generation)
    else:
        conditions = set_condition(conditions, type=ConditionType.PROMETHEUS_REACHABLE, status="True",
                                   reason="Answered", generation=generation)
    conditions = set_condition(
        conditions, type=ConditionType.TARGET_FOUND,
        status="False" if target_problem else "True",
        reason="TargetNotFound" if target_problem else "Found",
        message=target_problem or "", generation=generation,
    )
    no_data = [s.name for s in result.signals if s.verdict == SeriesVerdict.NO_DATA]
    conditions = set_condition(
        conditions, type=ConditionType.DATA_AVAILABLE,
        status="False" if no_data else "True",
        reason="NoData" if no_data else "Fresh",
        message=f"no usable data for signals: {', '.join(no_data)}" if no_data else "",
        generation=generation,
    )
    blockers = [
        c for c in conditions
        if c.type in (ConditionType.SPEC_VALID, ConditionType.PROMETHEUS_REACHABLE, ConditionType.TARGET_FOUND)
        and c.status != "True"
    ]
    conditions = set_condition(
        conditions, type=ConditionType.READY,
        status="False" if blockers else "True",
        reason=blockers[0].reason if blockers else "Monitoring",
        message=blockers[0].message if blockers else "",
        generation=generation,
    )
    signals = result.signals
    return PolicyStatus(
        phase=phase_of(signals, prometheus_ok=result.unavailable is None),
        observed_generation=generation,
        conditions=conditions,
        last_evaluation=_iso(result.evaluated_at),
        active_incident=previous.active_incident,
        signals_summary=summarise(signals),
        signals=signals,
    )
