"""The incident state machine, transition by transition (pure: no API, no clock, no detectors)."""

from __future__ import annotations

from typing import Any

import pytest

from homeostat.api.incident import (
    ActionPurpose,
    ActionRecord,
    ActionState,
    IncidentPhase,
    IncidentSpec,
    IncidentStatus,
    InvolvedSeries,
)
from homeostat.api.policy import Action, PolicySpec
from homeostat.api.times import format_time
from homeostat.playbooks.guards import Guard, GuardFacts
from homeostat.playbooks.machine import (
    Decision,
    IncidentView,
    Kind,
    Observations,
    Recovery,
    SeriesNow,
    SignalNow,
    decide,
)
from homeostat.playbooks.verification import recovered_now

NOW = 1_800_000_000.0
NAME = "web-20270115-080000"
BAND = {"expected": 0.1, "lower": 0.05, "upper": 0.15}


def policy(steps: list[dict[str, Any]] | None = None, signals: list[dict[str, Any]] | None = None,
           **playbook: Any) -> PolicySpec:
    return PolicySpec.model_validate({
        "target": {"kind": "Deployment", "name": "web"},
        "signals": signals or [{"name": "latency", "query": "q"}, {"name": "errors", "query": "e"}],
        "playbook": {"steps": steps if steps is not None else [{"action": "restart"}, {"action": "scale-out"}],
                     "verify": "2m", "cooldown": "10m", **playbook},
    })


def series(value: float, *, confirmed: bool = False, anomalous: bool | None = None, **labels: str) -> SeriesNow:
    """A series whose last three points (evaluated at NOW - 2, NOW - 1, NOW) all had `value`."""
    return SeriesNow(labels=labels, value=value, confirmed=confirmed,
                     anomalous=confirmed if anomalous is None else anomalous, **BAND, score=0.9,
                     points=tuple((NOW - ago, value) for ago in (2, 1, 0)))


def observe(**signals: SeriesNow | list[SeriesNow] | None) -> Observations:
    """`latency=series(...)`; a None signal has no data (Prometheus down)."""
    built = {}
    for name, given in signals.items():
        if given is None:
            built[name] = SignalNow(name=name, usable=False, verdict="no-data", reason="Prometheus unreachable")
            continue
        items = given if isinstance(given, list) else [given]
        verdict = "anomalous" if any(s.anomalous for s in items) else "normal"
        built[name] = SignalNow(name=name, usable=True, verdict=verdict, series=tuple(items))
    return Observations(at=NOW, signals=built, anomaly_started_at=NOW - 3)


HIGH = series(1.0, confirmed=True)
NORMAL = series(0.1)


def incident(phase: IncidentPhase = IncidentPhase.DETECTED, *, step: int = 0, actions: list[ActionRecord] | None = None,
             annotations: dict[str, str] | None = None, **status: Any) -> IncidentView:
    spec = IncidentSpec(
        policy="web", target={"kind": "Deployment", "name": "web"},  # type: ignore[arg-type]
        detected_at=format_time(NOW - 300), signal="latency",
        involved=[InvolvedSeries(signal="latency", observed=1.0, score=0.99, **BAND)],
    )
    return IncidentView(name=NAME, namespace="shop", spec=spec,
                        status=IncidentStatus(phase=phase, current_step=step, actions=actions or [], **status),
                        annotations=annotations or {})


def record(step: int, state: ActionState, *, action: Action = Action.RESTART, at: float = NOW - 200,
           purpose: ActionPurpose = ActionPurpose.STEP) -> ActionRecord:
    return ActionRecord(key=f"{NAME}/{step}/1", step=step, action=action, state=state, started_at=format_time(at),
                        purpose=purpose)


def run(incidents: list[IncidentView], obs: Observations, spec: PolicySpec | None = None, *, now: float = NOW,
        **facts: Any) -> Decision:
    return decide(incidents=incidents, obs=obs, policy=spec or policy(), facts=GuardFacts(now=now, **facts), now=now)


# --- opening -------------------------------------------------------------------------------------


def test_nothing_happens_without_an_incident_or_a_confirmed_anomaly() -> None:
    assert run([], observe(latency=NORMAL, errors=NORMAL)).kind == Kind.IDLE
    # anomalous points that are not (yet) confirmed do not open an incident
    assert run([], observe(latency=series(1.0, anomalous=True), errors=NORMAL)).kind == Kind.IDLE


def test_a_confirmed_anomaly_opens_an_incident_with_the_band_at_detection() -> None:
    d = run([], observe(latency=HIGH, errors=NORMAL))
    assert d.kind == Kind.OPEN and d.signal == "latency" and d.anomaly_started_at == NOW - 3
    assert [(s.signal, s.observed, s.expected, s.lower, s.upper) for s in d.involved] == [
        ("latency", 1.0, 0.1, 0.05, 0.15)]


def test_a_context_signal_never_opens_or_reopens_an_incident_alone_but_is_involved_with_a_symptom() -> None:
    def with_load(**signals: SeriesNow) -> Observations:
        obs = observe(**signals)
        load = obs.signals["load"]
        context = SignalNow(name="load", usable=True, verdict=load.verdict, series=load.series, context=True)
        return Observations(at=obs.at, signals={**obs.signals, "load": context},
                            anomaly_started_at=obs.anomaly_started_at)

    assert run([], with_load(latency=NORMAL, errors=NORMAL, load=HIGH)).kind == Kind.IDLE  # a surge absorbed
    resolved = incident(IncidentPhase.RESOLVED, resolved_at=format_time(NOW - 60))
    assert run([resolved], with_load(latency=NORMAL, errors=NORMAL, load=HIGH)).kind == Kind.IDLE
    opened = run([], with_load(latency=HIGH, errors=NORMAL, load=HIGH))
    assert opened.kind == Kind.OPEN and opened.signal == "latency"
    assert {s.signal for s in opened.involved} == {"latency", "load"}  # verified back in band too


def test_no_data_never_opens_an_incident() -> None:
    assert run([], observe(latency=None, errors=None)).kind == Kind.IDLE


# --- acting --------------------------------------------------------------------------------------


def test_detected_acts_on_the_first_step_with_an_idempotency_key() -> None:
    d = run([incident()], observe(latency=HIGH, errors=NORMAL))
    assert d.kind == Kind.ACT and d.step == 0 and d.key == f"{NAME}/0/1" and not d.dry_run


def test_dry_run_decides_the_same_and_says_so() -> None:
    d = run([incident()], observe(latency=HIGH, errors=NORMAL), operator_dry_run=True)
    assert d.kind == Kind.ACT and d.dry_run and "operator-wide --dry-run" in d.message
    d = run([incident()], observe(latency=HIGH, errors=NORMAL), policy_dry_run=True)
    assert d.kind == Kind.ACT and d.dry_run


@pytest.mark.parametrize(("facts", "guard"), [
    ({"suspended": True}, Guard.SUSPENDED),
    ({"target_paused": True}, Guard.PAUSED),
    ({"last_action_on_target": NOW - 60}, Guard.COOLDOWN),
    ({"actions_in_last_hour": 3}, Guard.RATE_LIMIT),
    ({"slot_available": False}, Guard.CONCURRENCY),
    ({"target_found": False}, Guard.TARGET_MISSING),
])
def test_a_guardrail_holds_the_step(facts: dict[str, Any], guard: Guard) -> None:
    d = run([incident()], observe(latency=HIGH, errors=NORMAL), **facts)
    assert d.kind == Kind.HOLD and d.denial is not None and d.denial.guard == guard
    assert d.code == str(guard) and "restart (step 1) held" in d.message


def test_a_step_whose_when_does_not_match_is_skipped_with_the_reason() -> None:
    spec = policy([{"action": "restart", "when": {"normal": ["errors"]}}, {"action": "scale-out"}])
    d = run([incident()], observe(latency=HIGH, errors=series(5.0, anomalous=True)), spec)
    assert d.kind == Kind.SKIP_STEP and d.step == 0 and d.key == f"{NAME}/0/1"
    assert "errors is anomalous, the step wants it normal" in d.message
    d = run([incident()], observe(latency=HIGH, errors=NORMAL), spec)
    assert d.kind == Kind.ACT


def test_a_when_naming_a_signal_without_data_waits() -> None:
    spec = policy([{"action": "restart", "when": {"normal": ["errors"]}}])
    d = run([incident()], observe(latency=HIGH, errors=None), spec)
    assert d.kind == Kind.INCONCLUSIVE and "no verdict for errors" in d.message


def test_no_action_without_data() -> None:
    d = run([incident(IncidentPhase.REMEDIATING, step=1)], observe(latency=None, errors=NORMAL))
    assert d.kind == Kind.INCONCLUSIVE and "no action without data" in d.message and d.code == "NoData"


def test_an_incident_that_recovered_while_held_is_resolved_not_acted_on() -> None:
    d = run([incident(IncidentPhase.REMEDIATING, step=1)], observe(latency=NORMAL, errors=NORMAL),
            last_action_on_target=NOW - 60)
    assert d.kind == Kind.RESOLVE and "recovered before step 2 ran" in d.message


# --- verifying -----------------------------------------------------------------------------------


def verifying(until: float, **kwargs: Any) -> IncidentView:
    """Verifying step 1, whose action landed 2m (the policy's verify) before `until`."""
    return incident(IncidentPhase.VERIFYING, actions=[record(0, ActionState.SUCCEEDED)],
                    landed_at=format_time(until - 120), verify_until=format_time(until), **kwargs)


def test_verification_waits_for_its_window() -> None:
    d = run([verifying(NOW + 30)], observe(latency=NORMAL, errors=NORMAL))
    assert d.kind == Kind.WAIT


def test_back_in_the_recorded_band_resolves() -> None:
    d = run([verifying(NOW - 1)], observe(latency=NORMAL, errors=NORMAL))
    assert d.kind == Kind.RESOLVE and "back in the band recorded at detection" in d.message


def test_not_recovered_goes_on_with_the_next_step() -> None:
    d = run([verifying(NOW - 1)], observe(latency=series(0.9), errors=NORMAL))
    assert d.kind == Kind.NEXT_STEP and "0.9 > 0.15" in d.message


def test_the_recorded_band_decides_not_the_rebaselined_detector() -> None:
    # The detector re-baselined on the shift: its verdict is normal, its band now contains 0.9.
    rebaselined = SeriesNow(labels={}, value=0.9, anomalous=False, confirmed=False, expected=0.9, lower=0.8,
                            upper=1.0, points=((NOW - 2, 0.9), (NOW - 1, 0.9), (NOW, 0.9)))
    d = run([verifying(NOW - 1)], observe(latency=rebaselined, errors=NORMAL))
    assert d.kind == Kind.NEXT_STEP


def test_a_confirmation_made_of_points_before_the_action_does_not_count_against_recovery() -> None:
    # k of the last n points were anomalous, but the settled points are back inside the recorded band:
    # the confirmation still counts windows from before the action.
    d = run([verifying(NOW - 1)], observe(latency=series(0.12, confirmed=True), errors=NORMAL))
    assert d.kind == Kind.RESOLVE


def test_no_data_during_verification_neither_resolves_nor_escalates() -> None:
    d = run([verifying(NOW - 1)], observe(latency=None, errors=NORMAL))
    assert d.kind == Kind.INCONCLUSIVE and "cannot verify" in d.message
    last_step = incident(IncidentPhase.VERIFYING, step=1, landed_at=format_time(NOW - 200),
                         verify_until=format_time(NOW - 1))
    assert run([last_step], observe(latency=None, errors=None)).kind == Kind.INCONCLUSIVE


def test_a_series_that_is_gone_while_its_signal_answers_is_not_held_against_recovery() -> None:
    spec = policy([{"action": "delete-pod"}])
    view = verifying(NOW - 1)
    view.spec.involved[0].labels["pod"] = "web-a"
    d = run([view], observe(latency=[series(0.1, pod="web-d"), series(0.11, pod="web-b")], errors=NORMAL), spec)
    assert d.kind == Kind.RESOLVE


def test_a_guard_breach_is_not_recovered_even_inside_the_band() -> None:
    spec = policy(signals=[{"name": "latency", "query": "q", "guard": {"above": 0.12}}, {"name": "errors",
                                                                                        "query": "e"}])
    d = run([verifying(NOW - 1)], observe(latency=series(0.14), errors=NORMAL), spec)
    assert d.kind == Kind.NEXT_STEP and "guard" in d.message


def test_direction_down_recovers_above_the_lower_bound() -> None:
    spec = policy(signals=[{"name": "latency", "query": "q", "direction": "down"}, {"name": "errors", "query": "e"}])
    view = verifying(NOW - 1)
    assert run([view], observe(latency=series(0.5), errors=NORMAL), spec).kind == Kind.RESOLVE  # above: fine
    assert run([view], observe(latency=series(0.01), errors=NORMAL), spec).kind == Kind.NEXT_STEP


def test_recovered_now_names_what_is_missing() -> None:
    view = verifying(NOW)
    state, why = recovered_now(view.spec, observe(latency=None, errors=NORMAL), policy())
    assert state == Recovery.NO_DATA and "latency: Prometheus unreachable" in why


# --- escalating ----------------------------------------------------------------------------------


def test_steps_exhausted_escalate() -> None:
    view = incident(IncidentPhase.REMEDIATING, step=2,
                    actions=[record(0, ActionState.SUCCEEDED), record(1, ActionState.SUCCEEDED)])
    d = run([view], observe(latency=HIGH, errors=NORMAL))
    assert d.kind == Kind.ESCALATE and "exhausted" in d.message


def test_every_action_failed_is_failed() -> None:
    view = incident(IncidentPhase.REMEDIATING, step=2,
                    actions=[record(0, ActionState.FAILED), record(1, ActionState.FAILED)])
    assert run([view], observe(latency=HIGH, errors=NORMAL)).kind == Kind.FAIL


def test_escalation_holds_until_cleared_or_expired() -> None:
    escalated = incident(IncidentPhase.ESCALATED, step=2, hold_until=format_time(NOW + 600))
    assert run([escalated], observe(latency=HIGH, errors=NORMAL)).kind == Kind.IDLE  # no new incident either
    cleared = incident(IncidentPhase.ESCALATED, step=2, hold_until=format_time(NOW + 600),
                       annotations={"homeostat.dev/cleared": "true"})
    d = run([cleared], observe(latency=HIGH, errors=NORMAL))
    assert d.kind == Kind.RELEASE_HOLD and "cleared by a human" in d.message
    expired = incident(IncidentPhase.ESCALATED, step=2, hold_until=format_time(NOW - 1))
    assert run([expired], observe(latency=HIGH, errors=NORMAL)).kind == Kind.RELEASE_HOLD
    released = incident(IncidentPhase.ESCALATED, step=2, hold_until=format_time(NOW - 1),
                        hold_released=format_time(NOW - 1))
    assert run([released], observe(latency=HIGH, errors=NORMAL)).kind == Kind.OPEN
    assert run([released], observe(latency=NORMAL, errors=NORMAL)).kind == Kind.IDLE


# --- after resolution ----------------------------------------------------------------------------


def resolved(ago: float, **kwargs: Any) -> IncidentView:
    return incident(IncidentPhase.RESOLVED, actions=[record(0, ActionState.SUCCEEDED)],
                    resolved_at=format_time(NOW - ago), **kwargs)


def test_a_recurrence_within_the_window_reopens_later_a_new_one_opens() -> None:
    d = run([resolved(60)], observe(latency=HIGH, errors=NORMAL))
    assert d.kind == Kind.REOPEN and d.incident == NAME and "1m after resolution" in d.message
    assert run([resolved(3600)], observe(latency=HIGH, errors=NORMAL)).kind == Kind.OPEN
    assert run([resolved(60)], observe(latency=NORMAL, errors=NORMAL)).kind == Kind.IDLE


def test_a_false_positive_is_never_reopened() -> None:
    view = resolved(60, feedback="false-positive")
    assert run([view], observe(latency=HIGH, errors=NORMAL)).kind == Kind.OPEN


def test_continuing_anomaly_involves_new_series_instead_of_opening() -> None:
    view = incident(IncidentPhase.VERIFYING, landed_at=format_time(NOW - 60), verify_until=format_time(NOW + 60))
    d = run([view], observe(latency=HIGH, errors=series(3.0, confirmed=True)))
    assert d.kind == Kind.INVOLVE and [s.signal for s in d.involved] == ["errors"]
    assert run([view], observe(latency=HIGH, errors=NORMAL)).kind == Kind.WAIT


def test_the_false_positive_annotation_is_fed_back_once() -> None:
    view = incident(IncidentPhase.VERIFYING, annotations={"homeostat.dev/verdict": "false-positive"})
    assert run([view], observe(latency=HIGH, errors=NORMAL)).kind == Kind.FALSE_POSITIVE
    done = incident(IncidentPhase.RESOLVED, annotations={"homeostat.dev/verdict": "false-positive"},
                    feedback="false-positive", resolved_at=format_time(NOW - 10))
    assert run([done], observe(latency=NORMAL, errors=NORMAL)).kind == Kind.IDLE


# --- restarts ------------------------------------------------------------------------------------


def test_an_interrupted_action_is_resumed_with_its_key_first() -> None:
    view = incident(IncidentPhase.REMEDIATING, actions=[record(0, ActionState.INTENDED)])
    d = run([view], observe(latency=HIGH, errors=NORMAL))  # the anomaly is still there (issue 11 item 8)
    assert d.kind == Kind.RESUME and d.key == f"{NAME}/0/1" and d.step == 0


def test_an_interrupted_action_on_a_now_paused_workload_is_closed_not_resumed() -> None:
    view = incident(IncidentPhase.REMEDIATING, actions=[record(0, ActionState.INTENDED)])
    d = run([view], observe(latency=HIGH, errors=NORMAL), target_paused=True)
    assert d.kind == Kind.ABANDON and "may or may not" in d.message


def test_the_next_attempt_of_a_step_gets_a_new_key() -> None:
    view = incident(IncidentPhase.REMEDIATING, actions=[record(0, ActionState.SKIPPED)])
    assert run([view], observe(latency=HIGH, errors=NORMAL)).key == f"{NAME}/0/2"


# --- scale-back ----------------------------------------------------------------------------------


def scaled_out(ago: float) -> IncidentView:
    return incident(IncidentPhase.RESOLVED, step=0,
                    actions=[record(0, ActionState.SUCCEEDED, action=Action.SCALE_OUT)],
                    resolved_at=format_time(NOW - ago))


SCALE = policy([{"action": "scale-out", "scaleOut": {"max": 5, "scaleBackAfter": "15m"}}], reopenWindow="1m")


def test_scale_back_after_the_quiet_period_only() -> None:
    assert run([scaled_out(60)], observe(latency=NORMAL, errors=NORMAL), SCALE).kind == Kind.IDLE
    d = run([scaled_out(900)], observe(latency=NORMAL, errors=NORMAL), SCALE)
    assert d.kind == Kind.SCALE_BACK and d.step == 0 and d.key == f"{NAME}/0/scale-back-1"


def test_never_scale_in_during_an_incident_or_on_a_paused_workload() -> None:
    d = decide(incidents=[scaled_out(900)], obs=observe(latency=NORMAL, errors=NORMAL), policy=SCALE,
               facts=GuardFacts(now=NOW), now=NOW, target_incident="other-20270115-080000")
    assert d.kind == Kind.HOLD and d.denial is not None and d.denial.guard == Guard.INCIDENT_OPEN
    d = run([scaled_out(900)], observe(latency=NORMAL, errors=NORMAL), SCALE, target_paused=True)
    assert d.kind == Kind.HOLD and d.denial is not None and d.denial.guard == Guard.PAUSED


def test_no_scale_back_when_the_step_did_not_ask_for_it_or_it_was_done() -> None:
    keep = policy([{"action": "scale-out", "scaleOut": {"scaleBack": False}}])
    assert run([scaled_out(3600)], observe(latency=NORMAL, errors=NORMAL), keep).kind == Kind.IDLE
    done = scaled_out(3600)
    done.status.actions.append(record(0, ActionState.SUCCEEDED, action=Action.SCALE_OUT,
                                      purpose=ActionPurpose.SCALE_BACK))
    assert run([done], observe(latency=NORMAL, errors=NORMAL), SCALE).kind == Kind.IDLE


def test_a_recurrence_reopens_rather_than_scaling_in() -> None:
    d = run([scaled_out(30)], observe(latency=HIGH, errors=NORMAL), SCALE)
    assert d.kind == Kind.REOPEN


# --- landing and settling ------------------------------------------------------------------------


def acted(ago: float, *, dry_run: bool = False) -> IncidentView:
    """Verifying step 1, whose action finished `ago` seconds ago and has not landed yet."""
    done = record(0, ActionState.DRY_RUN if dry_run else ActionState.SUCCEEDED, at=NOW - ago)
    done.finished_at = format_time(NOW - ago)
    done.dry_run = dry_run
    return incident(IncidentPhase.VERIFYING, actions=[done], phase_since=format_time(NOW - ago))


def with_settling(obs: Observations, seconds: float) -> Observations:
    signals = {name: SignalNow(name=s.name, usable=s.usable, verdict=s.verdict, reason=s.reason, series=s.series,
                               settling=seconds) for name, s in obs.signals.items()}
    return Observations(at=obs.at, signals=signals, anomaly_started_at=obs.anomaly_started_at)


def test_verification_starts_when_the_rollout_is_complete_not_when_the_write_returned() -> None:
    obs = with_settling(observe(latency=HIGH, errors=NORMAL), 41)
    rolling = run([acted(5)], obs)  # the target has not been read rolled out since the action
    assert rolling.kind == Kind.WAIT and "waiting for Deployment web to roll out" in rolling.message
    stale = run([acted(5)], obs, target_settled_at=NOW - 6)  # read before the action finished: says nothing
    assert stale.kind == Kind.WAIT
    d = run([acted(5)], obs, target_settled_at=NOW)
    assert d.kind == Kind.LANDED and d.at == NOW and d.until == NOW + 120  # verify 2m > settling 41s
    assert "rolled out and available" in d.message


def test_the_window_is_extended_to_the_settling_time_and_says_so() -> None:
    d = run([acted(5)], with_settling(observe(latency=HIGH, errors=NORMAL), 300), target_settled_at=NOW)
    assert d.kind == Kind.LANDED and d.until == NOW + 300
    assert "verify 2m extended to the settling time of latency" in d.message


def test_a_dry_run_lands_at_once_and_a_rollout_that_never_completes_lands_at_its_deadline() -> None:
    d = run([acted(5, dry_run=True)], observe(latency=HIGH, errors=NORMAL))
    assert d.kind == Kind.LANDED and d.at == NOW - 5
    late = run([acted(121)], observe(latency=HIGH, errors=NORMAL))
    assert late.kind == Kind.LANDED and late.at == NOW and "still not rolled out" in late.message


# --- recovery after an escalation ----------------------------------------------------------------


def escalated(**status: Any) -> IncidentView:
    return incident(IncidentPhase.ESCALATED, step=2, hold_until=format_time(NOW + 3600), **status)


def test_an_escalated_incident_back_in_band_for_a_settling_time_releases_its_hold() -> None:
    obs = with_settling(observe(latency=NORMAL, errors=NORMAL), 41)
    start = run([escalated()], obs)
    assert start.kind == Kind.BACK_IN_BAND and start.at == NOW
    counting = run([escalated(back_in_band_since=format_time(NOW - 40))], obs)
    assert counting.kind == Kind.IDLE
    done = run([escalated(back_in_band_since=format_time(NOW - 41))], obs)
    assert done.kind == Kind.RECOVERED_AFTER_ESCALATION
    assert "at least the settling time 41s" in done.message and "the hold on Deployment web ends" in done.message


def test_out_of_band_again_restarts_the_count_and_no_data_neither_starts_nor_breaks_it() -> None:
    again = run([escalated(back_in_band_since=format_time(NOW - 30))], observe(latency=HIGH, errors=NORMAL))
    assert again.kind == Kind.BACK_IN_BAND and again.at is None and "out of the recorded band" in again.message
    assert run([escalated()], observe(latency=HIGH, errors=NORMAL)).kind == Kind.IDLE
    blind = run([escalated(back_in_band_since=format_time(NOW - 300))], observe(latency=None, errors=NORMAL))
    assert blind.kind == Kind.IDLE


# --- an interrupted action -----------------------------------------------------------------------


def interrupted(ago: float, *, purpose: ActionPurpose = ActionPurpose.STEP) -> IncidentView:
    """An incident whose step-1 action was intended `ago` seconds ago and has no outcome."""
    return incident(IncidentPhase.REMEDIATING, actions=[record(0, ActionState.INTENDED, at=NOW - ago,
                                                               purpose=purpose)])


def test_an_interrupted_step_is_resumed_only_while_its_anomaly_is_still_there() -> None:
    assert run([interrupted(30)], observe(latency=HIGH, errors=NORMAL)).kind == Kind.RESUME
    gone = run([interrupted(30)], observe(latency=NORMAL, errors=NORMAL))
    assert gone.kind == Kind.ABANDON and "the anomaly is gone" in gone.message
    blind = run([interrupted(30)], observe(latency=None, errors=NORMAL))
    assert blind.kind == Kind.INCONCLUSIVE and "not resumed without data" in blind.message


def test_an_interrupted_action_older_than_the_bound_is_abandoned_whatever_the_data() -> None:
    old = run([interrupted(601)], observe(latency=HIGH, errors=NORMAL))
    assert old.kind == Kind.ABANDON and "started 10m1s ago, more than 10m" in old.message
    notice = run([interrupted(601, purpose=ActionPurpose.ESCALATION)], observe(latency=None, errors=None))
    assert notice.kind == Kind.ABANDON
    # an escalation notice younger than the bound is sent whatever the data says
    assert run([interrupted(30, purpose=ActionPurpose.ESCALATION)], observe(latency=None, errors=None)).kind \
        == Kind.RESUME


# --- waiting for data has a deadline -------------------------------------------------------------


def test_an_incident_waiting_for_data_past_the_no_data_timeout_is_escalated() -> None:
    spec = policy([{"action": "restart", "when": {"anomalous": ["errors"]}}], noDataTimeout="10m")
    waiting = incident(waiting="NoData: when: no verdict for errors; the step waits for data",
                       waiting_since=format_time(NOW - 599))
    assert run([waiting], observe(latency=HIGH, errors=None), spec).kind == Kind.INCONCLUSIVE
    late = incident(waiting="NoData: when: no verdict for errors; the step waits for data",
                    waiting_since=format_time(NOW - 600))
    d = run([late], observe(latency=HIGH, errors=None), spec)
    assert d.kind == Kind.ESCALATE and "no data for 10m (playbook.noDataTimeout 10m)" in d.message
    assert "when: no verdict for errors" in d.message and "a human must look" in d.message
    # a guardrail's hold is no wait for data: it has its own end
    held = incident(waiting="Cooldown: ...", waiting_since=format_time(NOW - 3600))
    assert run([held], observe(latency=HIGH, errors=None), spec).kind == Kind.INCONCLUSIVE


def test_verification_without_data_past_the_timeout_escalates_too() -> None:
    view = verifying(NOW - 700, waiting="NoData: cannot verify: no data for latency",
                     waiting_since=format_time(NOW - 601))
    d = run([view], observe(latency=None, errors=NORMAL))
    assert d.kind == Kind.ESCALATE and "cannot verify" in d.message


def test_a_lone_blip_neither_starts_nor_breaks_the_count_after_an_escalation() -> None:
    # A noisy series back in its band: one point just above it is no return of the anomaly.
    blip = SeriesNow(labels={}, value=0.2, **BAND, points=((NOW - 2, 0.1), (NOW - 1, 0.1), (NOW, 0.2)))
    counting = escalated(back_in_band_since=format_time(NOW - 30))
    assert run([counting], observe(latency=blip, errors=NORMAL)).kind == Kind.IDLE  # count goes on
    assert run([escalated()], observe(latency=blip, errors=NORMAL)).kind == Kind.IDLE  # nor does it start one


def test_a_recovery_after_a_dry_run_step_is_not_credited_to_it() -> None:
    dry = record(0, ActionState.DRY_RUN)
    dry.dry_run = True
    view = incident(IncidentPhase.VERIFYING, actions=[dry], landed_at=format_time(NOW - 121),
                    verify_until=format_time(NOW - 1))
    d = run([view], observe(latency=NORMAL, errors=NORMAL))
    assert d.kind == Kind.RESOLVE
    assert "recovered on its own: step 1 restart ran in dry run and changed nothing" in d.message
    real = run([verifying(NOW - 1)], observe(latency=NORMAL, errors=NORMAL))
    assert real.kind == Kind.RESOLVE and "on its own" not in real.message
