"""The incident runner's side of the RBAC check: one incident driven through the runner with the
operator's client against the emulator, so that test_rbac.py (which runs last) sees every kind of
call made about Incidents even when only tests/deploy runs (tests/playbooks covers what they do).

Covered: listing a namespace's Incidents (and one by name, a list with a field selector), creating
one, patching its spec (more involved series) and its status, Events on the Incident and on the
target workload.
"""

from __future__ import annotations

from typing import Any

import kubernetes

import homeostat
from homeostat.api.policy import Action, PolicySpec
from homeostat.lab.harness import deployment
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome
from homeostat.playbooks.incidents import IncidentStore
from homeostat.playbooks.machine import Observations, SeriesNow, SignalNow
from homeostat.playbooks.remediator import Remediator
from homeostat.playbooks.runner import PolicyInfo, TargetInfo, remediate

from .test_rbac import attributes

API = "homeostat.dev/v1alpha1"


def observe(*pods: str) -> Observations:
    series = tuple(SeriesNow(labels={"pod": pod}, value=1.0, anomalous=True, confirmed=True, expected=0.1,
                             lower=0.05, upper=0.15) for pod in pods)
    return Observations(at=0.0, signals={"latency": SignalNow(name="latency", usable=True, verdict="anomalous",
                                                               series=series)})


async def test_an_incident_makes_its_calls_as_the_operator(cluster: Any) -> None:
    cluster.apply(deployment("web"))
    spec = PolicySpec.model_validate({"target": {"kind": "Deployment", "name": "web"},
                                      "signals": [{"name": "latency", "query": "q"}],
                                      "playbook": {"steps": [{"action": "restart"}], "verify": "1h"}})
    cluster.apply({"apiVersion": API, "kind": "AnomalyPolicy", "metadata": {"name": "web", "namespace": "shop"},
                   "spec": spec.to_wire()})
    uid = cluster.get(API, "anomalypolicies", "shop", "web")["metadata"]["uid"]
    target = cluster.get("apps/v1", "deployments", "shop", "web")["metadata"]["uid"]

    async def restart(ctx: ActionContext) -> ActionResult:
        return ActionResult(outcome=Outcome.SUCCEEDED, message="restarted (a test double)")

    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    client.user_agent = f"homeostat/{homeostat.__version__}"
    store = IncidentStore(client)
    deps = Remediator(store=store, actions={Action.RESTART: restart})
    policy = PolicyInfo(namespace="shop", name="web", uid=uid)
    try:
        await remediate(policy=policy, spec=spec, obs=observe("a"), target=TargetInfo(found=True, uid=target),
                        deps=deps)
        await remediate(policy=policy, spec=spec, obs=observe("a", "b"), target=TargetInfo(found=True, uid=target),
                        deps=deps)
        (incident,) = cluster.list(API, "incidents", namespace="shop")
        assert await store.get("shop", incident["metadata"]["name"]) is not None
    finally:
        client.close()
    assert [s["labels"]["pod"] for s in incident["spec"]["involved"]] == ["a", "b"]

    made = {(a.verb, a.resource) for r in cluster.requests if (a := attributes(r.path, r.verb)) is not None}
    assert {("list", "incidents"), ("create", "incidents"), ("patch", "incidents"), ("patch", "incidents/status"),
            ("create", "events")} <= made
    kinds = {(e.get("involvedObject") or {}).get("kind") for e in cluster.events("shop")}
    assert {"Incident", "Deployment"} <= kinds
