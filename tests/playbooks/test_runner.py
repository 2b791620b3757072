"""The runner and the Incident store against the emulated API server (real HTTP), with test-double
actions and a clock the test moves: the order of writes, crash safety, conflicts, Events."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import kmock
import kubernetes
import pytest

import homeostat
from homeostat.api.incident import IncidentStatus
from homeostat.api.policy import Action, PolicySpec
from homeostat.lab.harness import deployment
from homeostat.operator.metrics import OperatorMetrics
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome
from homeostat.playbooks.guards import RemediationSlots
from homeostat.playbooks.incidents import INCIDENT_CALLS, Conflict, IncidentStore
from homeostat.playbooks.machine import Kind, Observations, SeriesNow, SignalNow
from homeostat.playbooks.remediator import Remediator
from homeostat.playbooks.runner import PolicyInfo, TargetInfo, remediate

API = "homeostat.dev/v1alpha1"
T0 = 1_800_000_000.0


@pytest.fixture
def kube_client(cluster: Any) -> Iterator[Any]:
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    client.user_agent = f"homeostat/{homeostat.__version__}"
    yield client
    client.close()


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class FakeActions:
    """Actions that record their calls; idempotent by key like the real ones."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.calls: list[tuple[str, str, bool]] = []  # (action, key, dry_run)
        self.applied: list[str] = []  # keys whose change was made (once each)
        self.outcome = Outcome.SUCCEEDED
        self.intent_seen: list[bool] = []
        self.block: asyncio.Event | None = None

    def make(self, action: Action) -> Any:
        async def perform(ctx: ActionContext, **_: Any) -> ActionResult:
            self.calls.append((str(action), ctx.key, ctx.dry_run))
            incident = self.cluster.get(API, "incidents", "shop", ctx.incident)
            records = (incident.get("status") or {}).get("actions", [])
            self.intent_seen.append(any(r["key"] == ctx.key and r["state"] == "Intended" for r in records))
            if self.block is not None:
                await self.block.wait()
            if ctx.dry_run:
                return ActionResult(outcome=Outcome.DRY_RUN, message=f"would {action}")
            if ctx.key in self.applied:
                return ActionResult(outcome=Outcome.SUCCEEDED, message="already done", changes={"already": True})
            if self.outcome == Outcome.SUCCEEDED:
                self.applied.append(ctx.key)
            return ActionResult(outcome=self.outcome, message=f"{action} {self.outcome}")

        return perform

    def registry(self) -> dict[Action, Any]:
        return {action: self.make(action) for action in Action}


def spec(**playbook: Any) -> PolicySpec:
    steps = playbook.pop("steps", [{"action": "restart"}, {"action": "scale-out"}])
    return PolicySpec.model_validate({
        "target": {"kind": "Deployment", "name": "web"},
        "signals": [{"name": "latency", "query": "q"}],
        "playbook": {"steps": steps, "verify": "30s", "cooldown": "1m", "maxActionsPerHour": 10, **playbook},
    })


def observe(value: float | None, *, confirmed: bool = False) -> Observations:
    if value is None:
        signal = SignalNow(name="latency", usable=False, verdict="no-data", reason="Prometheus unreachable")
    else:
        signal = SignalNow(name="latency", usable=True, verdict="anomalous" if confirmed else "normal", series=(
            SeriesNow(labels={}, value=value, anomalous=confirmed, confirmed=confirmed, expected=0.1, lower=0.05,
                      upper=0.15, score=0.99 if confirmed else 0.1),))
    return Observations(at=T0, signals={"latency": signal})


HIGH = observe(1.0, confirmed=True)
NORMAL = observe(0.1)


def stamped(obs: Observations, now: float) -> Observations:
    """`obs` as seen at `now`: each series' last three points (one a second) all had its value."""
    signals = {
        name: dataclasses.replace(signal, series=tuple(
            dataclasses.replace(s, points=tuple((now - ago, s.value) for ago in (2, 1, 0))) for s in signal.series))
        for name, signal in obs.signals.items()
    }
    return dataclasses.replace(obs, at=now, signals=signals)


class World:
    """One policy and its target in the emulated cluster, and a runner over them."""

    def __init__(self, cluster: Any, client: Any, **settings: Any) -> None:
        self.cluster = cluster
        cluster.apply(deployment("web"))
        cluster.apply({"apiVersion": API, "kind": "AnomalyPolicy", "metadata": {"name": "web", "namespace": "shop"},
                       "spec": spec().to_wire()})
        self.policy_uid = cluster.get(API, "anomalypolicies", "shop", "web")["metadata"]["uid"]
        self.clock = Clock()
        self.actions = FakeActions(cluster)
        self.metrics = OperatorMetrics()
        self.policy_events: list[tuple[str, str]] = []
        self.store = IncidentStore(client, retry=dataclasses.replace(INCIDENT_CALLS, base=0.01))
        self.deps = Remediator(store=self.store, actions=self.actions.registry(), scale_back=self.actions.make(
            Action.SCALE_OUT), slots=RemediationSlots(settings.pop("slots", 5)), metrics=self.metrics,
            clock=self.clock, **settings)

    def target(self) -> TargetInfo:
        obj = self.cluster.get("apps/v1", "deployments", "shop", "web")
        return TargetInfo(found=obj is not None, uid=obj["metadata"]["uid"],
                          annotations=obj["metadata"].get("annotations") or {},
                          settled_at=self.clock.t)  # the fake actions change nothing: always rolled out

    async def cycle(self, obs: Observations, policy: PolicySpec | None = None, *, advance: float = 1.0) -> Any:
        self.clock.t += advance

        def emit(*, type: str, reason: str, message: str) -> None:
            self.policy_events.append((reason, message))

        return await remediate(policy=PolicyInfo(namespace="shop", name="web", uid=self.policy_uid),
                               spec=policy or spec(), obs=stamped(obs, self.clock.t), target=self.target(),
                               deps=self.deps, emit=emit)

    def incidents(self) -> list[dict[str, Any]]:
        return self.cluster.list(API, "incidents", namespace="shop")

    def status(self) -> IncidentStatus:
        (only,) = self.incidents()
        return IncidentStatus.model_validate(only.get("status") or {})

    def events(self, kind: str) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.cluster.events("shop")
                if (e.get("involvedObject") or {}).get("kind") == kind]

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def world(cluster: Any, kube_client: Any) -> World:
    return World(cluster, kube_client)


async def test_an_anomaly_opens_one_owned_incident_acts_after_writing_the_intent_and_resolves(world: World) -> None:
    report = await world.cycle(HIGH)
    (incident,) = world.incidents()
    name = incident["metadata"]["name"]
    assert re.fullmatch(r"web-\d{8}-\d{6}", name) and report.active_incident == name
    assert incident["metadata"]["ownerReferences"][0]["uid"] == world.policy_uid
    assert incident["metadata"]["labels"]["homeostat.dev/policy"] == "web"
    assert incident["spec"]["involved"][0] == {"signal": "latency", "labels": {}, "observed": 1.0, "expected": 0.1,
                                               "lower": 0.05, "upper": 0.15, "score": 0.99}
    assert world.actions.calls == [("restart", f"{name}/0/1", False)]
    assert world.actions.intent_seen == [True], "the intent must be in the API before the action runs"
    status = world.status()
    assert status.phase == "Verifying" and status.last_action == "restart Succeeded"
    assert [e.event for e in status.timeline] == ["Detected", "ActionIntended", "ActionSucceeded"]
    assert [(r.key, r.state) for r in status.actions] == [(f"{name}/0/1", "Succeeded")]

    await world.cycle(HIGH)  # a continuing anomaly updates nothing, opens nothing
    assert len(world.incidents()) == 1 and len(world.actions.calls) == 1
    await world.cycle(NORMAL, advance=31)  # verify window over, back in band
    status = world.status()
    assert status.phase == "Resolved" and status.resolved_at
    assert ("IncidentResolved" in {r for r, _ in world.events("Incident")})
    assert {"IncidentOpened", "ActionSucceeded", "IncidentResolved"} <= {r for r, _ in world.events("Deployment")}
    assert world.metric("homeostat_incidents_total", phase="Detected") == 1
    assert world.metric("homeostat_incidents_total", phase="Resolved") == 1
    assert world.metric("homeostat_actions_total", action="restart", outcome="Succeeded") == 1
    assert {r for r, _ in world.policy_events} >= {"IncidentOpened", "IncidentResolved"}
    assert (await world.cycle(NORMAL)).active_incident is None


async def test_not_recovered_goes_through_the_steps_then_escalates_and_holds(world: World) -> None:
    policy = spec(steps=[{"action": "restart"}, {"action": "scale-out"},
                         {"action": "notify", "notify": {"webhooks": [{"urlSecretRef": {"name": "s", "key": "k"}}]}}],
                  escalationHold="10m")
    await world.cycle(HIGH, policy)
    await world.cycle(HIGH, policy)  # the restart has landed (rolled out): its verify window starts
    await world.cycle(HIGH, policy, advance=31)  # not recovered: next step, held by the 1m cooldown
    assert world.status().waiting.startswith("Cooldown")
    await world.cycle(HIGH, policy, advance=30)
    assert [c[0] for c in world.actions.calls] == ["restart", "scale-out"]
    await world.cycle(HIGH, policy)  # landed
    await world.cycle(HIGH, policy, advance=31)  # notify is no workload action: no cooldown
    await world.cycle(HIGH, policy)  # landed
    await world.cycle(HIGH, policy, advance=31)
    status = world.status()
    assert status.phase == "Escalated" and status.hold_until
    assert [c[0] for c in world.actions.calls] == ["restart", "scale-out", "notify", "notify"]
    escalation = status.actions[-1]
    assert escalation.purpose == "Escalation" and escalation.key.endswith("/escalation/1")
    assert ("IncidentEscalated" in {r for r, _ in world.events("Deployment")})
    for _ in range(3):  # held: no further action, no new incident
        assert (await world.cycle(HIGH, policy, advance=60)).active_incident == world.incidents()[0]["metadata"]["name"]
    assert len(world.actions.calls) == 4 and len(world.incidents()) == 1
    assert world.metric("homeostat_incidents_total", phase="Escalated") == 1
    assert world.metric("homeostat_incidents_total", phase="Remediating") == 4  # the first act, 3x not recovered
    assert world.metric("homeostat_incidents_total", phase="Verifying") == 3

    name = world.incidents()[0]["metadata"]["name"]
    world.cluster.apply({**world.incidents()[0], "metadata": {**world.incidents()[0]["metadata"],
                                                              "annotations": {"homeostat.dev/cleared": "true"}}})
    await world.cycle(HIGH, policy, advance=1)  # cleared by a human: a new incident, the playbook again
    assert world.cluster.get(API, "incidents", "shop", name)["status"]["holdReleased"]
    assert len(world.incidents()) == 2


async def test_killed_between_intent_and_outcome_the_action_is_resumed_with_the_same_key(
    cluster: Any, kube_client: Any
) -> None:
    world = World(cluster, kube_client)
    world.actions.block = asyncio.Event()
    task = asyncio.create_task(world.cycle(HIGH))
    while not world.actions.calls:
        await asyncio.sleep(0.01)
    task.cancel()  # the process dies while the action runs: intent written, outcome not
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.state for r in world.status().actions] == ["Intended"]

    restarted = World(cluster, kube_client)  # a new process: nothing in memory
    restarted.clock.t = world.clock.t
    restarted.actions = world.actions
    restarted.actions.block = None
    restarted.deps.actions = world.actions.registry()
    await restarted.cycle(HIGH)
    key = world.status().actions[0].key
    assert [c[1] for c in world.actions.calls] == [key, key], "resumed with the same idempotency key"
    assert world.actions.applied == [key], "and applied once"
    status = world.status()
    assert [(r.key, r.state) for r in status.actions] == [(key, "Succeeded")] and status.phase == "Verifying"
    assert "ActionResumed" in {r for r, _ in world.events("Incident")}


async def test_an_action_interrupted_long_ago_or_whose_anomaly_is_gone_is_abandoned_not_resumed(
    cluster: Any, kube_client: Any
) -> None:
    world = World(cluster, kube_client)
    world.actions.block = asyncio.Event()
    task = asyncio.create_task(world.cycle(HIGH))
    while not world.actions.calls:
        await asyncio.sleep(0.01)
    task.cancel()  # killed while the restart runs: intent written, outcome not
    with pytest.raises(asyncio.CancelledError):
        await task

    restarted = World(cluster, kube_client)  # back an hour later, the anomaly still there
    restarted.clock.t = world.clock.t + 3600
    await restarted.cycle(HIGH)
    first, second = world.status().actions
    assert first.state == "Skipped" and "more than 10m" in first.message
    assert "ActionAbandoned" in [e.event for e in world.status().timeline]
    # The step is decided afresh on today's data (a new attempt, its own key), not resumed.
    assert [c[1] for c in restarted.actions.calls] == [second.key] and second.key.endswith("/0/2")


async def test_dry_run_records_what_would_be_done_and_writes_no_intent(cluster: Any, kube_client: Any) -> None:
    world = World(cluster, kube_client, operator_dry_run=True)
    await world.cycle(HIGH)
    status = world.status()
    assert [(c[0], c[2]) for c in world.actions.calls] == [("restart", True)]
    assert world.actions.intent_seen == [False]
    assert [(r.state, r.dry_run) for r in status.actions] == [("DryRun", True)]
    assert status.phase == "Verifying" and status.last_action == "restart DryRun"
    assert world.actions.applied == []


async def test_a_failed_action_goes_on_with_the_next_step_and_all_failed_is_failed(world: World) -> None:
    world.actions.outcome = Outcome.FAILED
    policy = spec(cooldown="0s")
    await world.cycle(HIGH, policy)  # nothing changed, nothing to verify: the next step at once
    status = world.status()
    assert status.phase == "Failed" and [r.state for r in status.actions] == ["Failed", "Failed"]
    assert any(r == "ActionFailed" for r, _ in world.events("Deployment"))


async def test_guardrails_hold_with_one_event_per_reason(world: World) -> None:
    await world.cycle(HIGH, spec(suspend=True))
    await world.cycle(HIGH, spec(suspend=True))
    status = world.status()
    assert world.actions.calls == [] and status.phase == "Detected"
    assert status.waiting.startswith("Suspended")
    skipped = [m for r, m in world.events("Deployment") if r == "ActionSkipped"]
    assert len(skipped) == 1 and "suspend" in skipped[0]
    await world.cycle(HIGH, spec())
    assert len(world.actions.calls) == 1 and world.status().waiting is None


async def test_concurrency_cap_is_operator_wide(cluster: Any, kube_client: Any) -> None:
    world = World(cluster, kube_client, slots=1)
    world.deps.slots.hold("other/elsewhere-20270101-000000")
    await world.cycle(HIGH)
    assert world.actions.calls == [] and world.status().waiting.startswith("ConcurrencyCap")
    world.deps.slots.release("other/elsewhere-20270101-000000")
    await world.cycle(HIGH)
    assert len(world.actions.calls) == 1 and world.deps.slots.in_use == 1
    await world.cycle(NORMAL)  # landed
    await world.cycle(NORMAL, advance=31)
    assert world.deps.slots.in_use == 0


async def test_a_recurrence_reopens_and_goes_on_with_the_next_step(world: World) -> None:
    await world.cycle(HIGH)
    await world.cycle(HIGH)  # landed
    await world.cycle(NORMAL, advance=31)
    assert world.status().phase == "Resolved"
    await world.cycle(HIGH, advance=120)
    status = world.status()
    assert len(world.incidents()) == 1 and status.reopened == 1
    assert [c[0] for c in world.actions.calls] == ["restart", "scale-out"]
    assert "Reopened" in [e.event for e in status.timeline]


async def test_a_recurrence_after_a_dry_run_step_runs_the_same_step_again(cluster: Any, kube_client: Any) -> None:
    world = World(cluster, kube_client, operator_dry_run=True)
    await world.cycle(HIGH)
    await world.cycle(HIGH)  # landed at once: nothing was done
    await world.cycle(NORMAL, advance=31)
    status = world.status()
    assert status.phase == "Resolved" and "recovered on its own" in status.message
    await world.cycle(HIGH, advance=120)
    assert world.status().reopened == 1
    assert [(c[0], c[2]) for c in world.actions.calls] == [("restart", True), ("restart", True)]


async def test_prometheus_down_during_verification_neither_resolves_nor_escalates(world: World) -> None:
    await world.cycle(HIGH)
    for _ in range(3):
        await world.cycle(observe(None), advance=31)
    status = world.status()
    assert status.phase == "Verifying" and status.waiting.startswith("NoData")
    assert [e.event for e in status.timeline].count("Inconclusive") == 1
    await world.cycle(NORMAL)
    status = world.status()
    assert status.phase == "Resolved" and status.waiting is None


async def test_a_false_positive_closes_the_incident_feeds_back_once_and_is_counted(world: World) -> None:
    fed: list[str] = []
    await world.cycle(HIGH)
    obj = world.incidents()[0]
    obj["metadata"]["annotations"] = {"homeostat.dev/verdict": "false-positive"}
    world.cluster.apply(obj)

    async def cycle() -> None:
        world.clock.t += 1
        await remediate(policy=PolicyInfo(namespace="shop", name="web", uid=world.policy_uid), spec=spec(),
                        obs=NORMAL, target=world.target(), deps=world.deps,
                        feedback=lambda view: fed.append(view.name) or 1)

    await cycle()
    await cycle()
    status = world.status()
    assert status.feedback == "false-positive" and status.phase == "Resolved"
    assert world.metric("homeostat_false_positives_total") == 1
    assert fed and set(fed) == {obj["metadata"]["name"]}  # re-offered each cycle; the loop applies it once


async def test_a_status_write_survives_an_annotation_made_meanwhile_but_not_a_status_change(
    world: World, kube_client: Any
) -> None:
    await world.cycle(HIGH)
    (view,) = await world.store.list_all("shop")
    obj = world.incidents()[0]
    obj["metadata"]["annotations"] = {"team": "checkout"}
    world.cluster.apply(obj)  # bumps the resourceVersion
    written = await world.store.write_status(view, view.status.model_copy(update={"message": "hello"}))
    assert written.status.message == "hello"
    with pytest.raises(Conflict):  # `view` is stale and its status changed since: decide again
        await world.store.write_status(view, view.status.model_copy(update={"message": "stale"}))


async def test_transient_api_errors_are_retried(world: World) -> None:
    world.cluster.handler["patch", kmock.resource("homeostat.dev/v1alpha1/incidents")][:2] << 503
    await world.cycle(HIGH)
    assert world.status().phase == "Verifying"
    patches = [r.status for r in world.cluster.requests if r.method == "PATCH" and "/incidents/" in r.path]
    assert patches[:3] == [503, 503, 200]


async def test_names_collide_safely(world: World) -> None:
    await world.cycle(HIGH)
    (view,) = await world.store.list_all("shop")
    other = await world.store.create(namespace="shop", policy="web", policy_uid=world.policy_uid,
                                     spec=view.spec.model_copy(update={"detected_at": "2027-01-15T08:00:00Z"}),
                                     status=IncidentStatus(), now=world.clock.t)
    assert other.name == f"{view.name}-2"
    again = await world.store.create(namespace="shop", policy="web", policy_uid=world.policy_uid, spec=view.spec,
                                     status=view.status, now=world.clock.t)
    assert again.name == view.name, "a retried create adopts its own Incident"


def test_skip_kinds_are_all_handled() -> None:
    from homeostat.playbooks.transitions import TRANSITIONS

    for kind in Kind:
        if kind not in (Kind.IDLE, Kind.WAIT):
            assert kind in TRANSITIONS, kind


async def test_no_action_runs_when_its_intent_cannot_be_written(world: World) -> None:
    from kubernetes.client.exceptions import ApiException

    world.cluster.handler["patch", kmock.resource("homeostat.dev/v1alpha1/incidents")][:10] << 503
    for _ in range(2):  # the first status write, then the intent: each retried 5 times, then given up
        with pytest.raises(ApiException):
            await world.cycle(HIGH)
    assert world.actions.calls == [], "an action whose intent is not recorded must not run"
    await world.cycle(HIGH)  # the API answers again
    assert len(world.actions.calls) == 1 and world.status().actions[0].state == "Succeeded"

