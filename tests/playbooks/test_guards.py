"""The guardrails, one by one: each blocks with a reason, and the facts come from Incident records."""

from __future__ import annotations

from homeostat.api.incident import ActionPurpose, ActionRecord, ActionState, IncidentPhase, IncidentStatus
from homeostat.api.policy import Action
from homeostat.api.times import format_time
from homeostat.playbooks import guards
from homeostat.playbooks.guards import Guard, GuardFacts, Hold, RemediationSlots

NOW = 1_800_000_000.0


def facts(**overrides: object) -> GuardFacts:
    values: dict[str, object] = {"now": NOW, "cooldown": 600.0, "max_actions_per_hour": 3}
    values.update(overrides)
    return GuardFacts(**values)  # type: ignore[arg-type]


def record(action: Action, state: ActionState, at: float, *, purpose: ActionPurpose = ActionPurpose.STEP
           ) -> ActionRecord:
    return ActionRecord(key=f"i/0/{at}", step=0, action=action, state=state, started_at=format_time(at),
                        purpose=purpose)


def test_nothing_blocks_by_default() -> None:
    assert guards.check(facts(), action=Action.RESTART) is None


def test_each_guard_blocks_with_its_reason() -> None:
    cases = {
        Guard.TARGET_MISSING: facts(target_found=False),
        Guard.PAUSED: facts(target_paused=True),
        Guard.SUSPENDED: facts(suspended=True),
        Guard.ESCALATION_HOLD: facts(hold=Hold(incident="web-20260101-000000", until=NOW + 60)),
        Guard.CONCURRENCY: facts(slot_available=False, slots_in_use=5, max_concurrent=5),
        Guard.RATE_LIMIT: facts(actions_in_last_hour=3),
        Guard.COOLDOWN: facts(last_action_on_target=NOW - 30),
    }
    for guard, given in cases.items():
        denial = guards.check(given, action=Action.RESTART)
        assert denial is not None and denial.guard == guard, guard
        assert denial.message
    cooldown = guards.check(cases[Guard.COOLDOWN], action=Action.RESTART)
    assert cooldown is not None and cooldown.until == NOW + 570 and "9m30s left" in cooldown.message
    hold = guards.check(cases[Guard.ESCALATION_HOLD], action=Action.RESTART)
    assert hold is not None and "homeostat.dev/cleared=true" in hold.message


def test_expired_hold_cooldown_and_an_hour_old_budget_do_not_block() -> None:
    assert guards.check(facts(hold=Hold(incident="x", until=NOW - 1)), action=Action.RESTART) is None
    assert guards.check(facts(last_action_on_target=NOW - 600), action=Action.RESTART) is None


def test_notify_changes_no_workload_so_cooldown_and_budget_do_not_apply() -> None:
    assert guards.check(facts(actions_in_last_hour=9, last_action_on_target=NOW - 1), action=Action.NOTIFY) is None
    # but a suspended policy or a paused workload stops every action
    assert guards.check(facts(suspended=True), action=Action.NOTIFY) is not None


def test_a_slot_already_held_is_not_counted_against_the_cap() -> None:
    full = facts(slot_available=False, slots_in_use=5, max_concurrent=5)
    assert guards.check(full, action=Action.RESTART, holds_slot=True) is None


def test_dry_run_is_a_mode_not_a_denial() -> None:
    assert guards.check(facts(policy_dry_run=True), action=Action.RESTART) is None
    operator_wide = facts(operator_dry_run=True)
    assert operator_wide.dry_run and operator_wide.dry_run_reason == "operator-wide --dry-run"
    assert facts(policy_dry_run=True).dry_run_reason == "playbook.dryRun"


def test_scale_back_never_during_an_incident_nor_on_a_paused_workload() -> None:
    assert guards.check_scale_back(facts(), target_in_incident=None) is None
    open_incident = guards.check_scale_back(facts(), target_in_incident="web-1")
    assert open_incident is not None and open_incident.guard == Guard.INCIDENT_OPEN
    paused = guards.check_scale_back(facts(target_paused=True), target_in_incident=None)
    assert paused is not None and paused.guard == Guard.PAUSED
    suspended = guards.check_scale_back(facts(suspended=True), target_in_incident=None)
    assert suspended is not None and suspended.guard == Guard.SUSPENDED


def test_action_facts_come_from_the_records() -> None:
    statuses = [
        IncidentStatus(actions=[
            record(Action.RESTART, ActionState.SUCCEEDED, NOW - 4000),  # more than an hour ago
            record(Action.SCALE_OUT, ActionState.FAILED, NOW - 100),  # changed nothing
            record(Action.NOTIFY, ActionState.SUCCEEDED, NOW - 50),  # changed no workload
        ]),
        IncidentStatus(actions=[
            record(Action.ROLLBACK, ActionState.INTENDED, NOW - 1000),  # may have changed it: counts
            record(Action.RESTART, ActionState.DRY_RUN, NOW - 10),  # counts in dry run only
            record(Action.SCALE_OUT, ActionState.SUCCEEDED, NOW - 20, purpose=ActionPurpose.SCALE_BACK),
        ]),
    ]
    assert guards.last_action(statuses, dry_run=False) == NOW - 20
    assert guards.last_action(statuses, dry_run=True) == NOW - 10
    assert guards.actions_since(statuses, since=NOW - 3600, dry_run=False) == 2
    assert guards.actions_since(statuses, since=NOW - 3600, dry_run=True) == 3
    assert guards.last_action([], dry_run=False) is None


def test_hold_stands_until_released_cleared_or_expired() -> None:
    escalated = IncidentStatus(phase=IncidentPhase.ESCALATED, hold_until=format_time(NOW + 100))
    assert guards.hold_stands(escalated, {}, now=NOW)
    assert not guards.hold_stands(escalated, {guards.CLEARED_ANNOTATION: "true"}, now=NOW)
    assert not guards.hold_stands(escalated, {}, now=NOW + 100)
    released = escalated.model_copy(update={"hold_released": format_time(NOW)})
    assert not guards.hold_stands(released, {}, now=NOW)
    failed = IncidentStatus(phase=IncidentPhase.FAILED, hold_until=format_time(NOW + 100))
    assert guards.hold_stands(failed, {}, now=NOW)
    resolved = IncidentStatus(phase=IncidentPhase.RESOLVED, hold_until=format_time(NOW + 100))
    assert not guards.hold_stands(resolved, {}, now=NOW)
    hold = guards.standing_hold([("a", escalated, {}), ("b", failed, {}), ("c", resolved, {})], now=NOW,
                                exclude="b")
    assert hold == Hold(incident="a", until=NOW + 100)


def test_annotations_are_read_case_insensitively() -> None:
    assert guards.paused({"homeostat.dev/paused": "True"})
    assert not guards.paused({"homeostat.dev/paused": "false"})
    assert guards.marked_false_positive({"homeostat.dev/verdict": "false-positive"})
    assert guards.cleared({"homeostat.dev/cleared": "TRUE"})


def test_remediation_slots_cap_and_take_back() -> None:
    slots = RemediationSlots(2)
    assert slots.try_acquire("a") and slots.try_acquire("b")
    assert not slots.try_acquire("c") and not slots.available("c")
    assert slots.try_acquire("a"), "a holder keeps its slot"
    slots.hold("c")  # resumed after a restart: taken back even over the cap
    assert slots.in_use == 3
    slots.release("a")
    slots.release("b")
    assert slots.in_use == 1 and slots.available("d")


def test_an_action_that_may_have_been_applied_counts_towards_the_cooldown_and_the_budget() -> None:
    statuses = [IncidentStatus(actions=[
        record(Action.RESTART, ActionState.UNKNOWN, NOW - 30),  # its answer was lost, reading back failed
        record(Action.SCALE_OUT, ActionState.FAILED, NOW - 10),  # read back: it did not land
    ])]
    assert guards.last_action(statuses, dry_run=False) == NOW - 30
    assert guards.actions_since(statuses, since=NOW - 3600, dry_run=False) == 1
    denial = guards.check(facts(last_action_on_target=NOW - 30), action=Action.ROLLBACK)
    assert denial is not None and denial.guard == Guard.COOLDOWN
