"""Bad input: every invalid policy gets Ready=False and a Warning Event naming the field and
the fix, while the operator keeps running the valid ones. What the CRD schema can express is
refused by the API server itself (422 naming the field), as kubectl users would see it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from homeostat.lab.exporter import Exporter
from homeostat.lab.harness import deployment, policy, wait_until
from homeostat.lab.prometheus import PrometheusServer

API = "homeostat.dev/v1alpha1"

VALID: dict[str, Any] = {
    "target": {"kind": "Deployment", "name": "checkout"},
    "interval": "1s",
    "lookback": "30s",
    "evaluationDelay": "0s",
    "signals": [{"name": "latency", "query": "max(lab_value)"}],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(VALID)
    node: Any = spec
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    return spec


# name -> (spec, field the message must name, a word of the fix)
OPERATOR_CHECKED: dict[str, tuple[dict[str, Any], str, str]] = {
    "unknown-detector": (_with("signals.0.detector", {"name": "psychic"}), "spec.signals[0].detector.name",
                         "robust_zscore"),
    "k-above-n": (_with("confirm", {"k": 5, "n": 3}), "spec.confirm", "must not exceed"),
    "short-lookback": (_with("lookback", "500ms"), "spec.lookback", "at least the interval"),
    "duplicate-signals": (_with("signals", VALID["signals"] * 2), "spec.signals", "rename the repeated"),
    "unknown-signal-in-step": (
        _with("playbook", {"steps": [{"action": "restart", "when": {"anomalous": ["errors"]}}]}),
        "spec.playbook", "known: ['latency']",
    ),
    "params-for-other-action": (
        _with("playbook", {"steps": [{"action": "restart", "scaleOut": {"step": 2}}]}),
        "spec.playbook.steps[0]", "set action: scale-out",
    ),
    "guard-inverted": (_with("signals.0.guard", {"above": 1.0, "below": 2.0}), "guard.below", "lower than"),
    "missing-token-secret": (
        _with("prometheus", {"bearerTokenSecretRef": {"name": "prom-token", "key": "token"}}),
        "spec.prometheus.bearerTokenSecretRef", "create it",
    ),
    "rejected-promql": (_with("signals.0.query", "sum(rate(lab_value[5m]"), "spec.signals[0].query", "fix the PromQL"),
    "target-missing": (_with("target", {"kind": "Deployment", "name": "nosuch"}), "spec.target.name",
                       "create it or fix the name"),
    "notify-without-webhooks": (_with("playbook", {"steps": [{"action": "notify"}]}), "spec.playbook.steps[0]",
                                "notify.webhooks"),
}


def _status(cluster: Any, name: str) -> dict[str, Any]:
    return (cluster.get(API, "anomalypolicies", "shop", name) or {}).get("status") or {}


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def test_each_invalid_spec_gets_ready_false_naming_the_field_while_valid_ones_run(
    cluster: Any, exporter: Exporter, prometheus: PrometheusServer, start_operator: Any
) -> None:
    exporter.gauge("lab_value").set(1.0)
    cluster.apply(deployment("checkout"))
    prometheus.wait_for("lab_value")
    start_operator(prometheus.url)
    for name, (spec, _, _) in OPERATOR_CHECKED.items():
        cluster.apply(policy(name, spec))
    cluster.apply(policy("fine", VALID))

    for name, (_, field, fix) in OPERATOR_CHECKED.items():
        ready = wait_until(lambda n=name: (r := _ready(_status(cluster, n))).get("status") == "False" and r,
                           timeout=30, message=f"{name}: no Ready=False")
        assert field in ready["message"], f"{name}: {ready['message']!r} does not name {field}"
        assert fix in ready["message"], f"{name}: {ready['message']!r} does not say how to fix it"
        wait_until(  # Kopf posts Events in the background, shortly after the status is written
            lambda n=name, f=field: any(
                (e.get("involvedObject") or {}).get("name") == n and e["type"] == "Warning" and f in e["message"]
                for e in cluster.events("shop")
            ),
            timeout=20, message=f"{name}: no Warning Event naming {field}",
        )

    fine = wait_until(lambda: (s := _status(cluster, "fine")).get("signals") and s, timeout=30,
                      message="the valid policy did not run beside the invalid ones")
    assert _ready(fine)["status"] == "True"


# What the CRD schema expresses never reaches the operator: the API server refuses it.
SCHEMA_CHECKED: dict[str, tuple[dict[str, Any], str]] = {
    "bad-duration": (_with("interval", "5x"), "spec.interval"),
    "negative-limit": (_with("playbook", {"maxActionsPerHour": -1}), "spec.playbook.maxActionsPerHour"),
    "bad-kind": (_with("target", {"kind": "Pod", "name": "checkout"}), "spec.target.kind"),
    "bad-direction": (_with("signals.0.direction", "sideways"), "spec.signals[0].direction"),
    "no-target": ({k: v for k, v in VALID.items() if k != "target"}, "spec.target"),
}


@pytest.mark.parametrize("name", sorted(SCHEMA_CHECKED))
def test_schema_violations_are_refused_by_the_api_server_naming_the_field(cluster: Any, name: str) -> None:
    spec, field = SCHEMA_CHECKED[name]
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))
    with pytest.raises(ApiException) as refused:
        api.create_namespaced_custom_object("homeostat.dev", "v1alpha1", "shop", "anomalypolicies", policy(name, spec))
    assert refused.value.status == 422
    assert field in (refused.value.body or "")
