"""The operator's side of the RBAC check: drive `homeostat run` through every kind of API call
it makes, so that test_rbac.py (which runs last) sees each one even when only tests/deploy runs.

Covered here: a Deployment and a StatefulSet target, a bearer-token Secret, status writes,
Events, Kopf's watches and patches, a deletion (Kopf's finalizer removal), and leader election
(its Lease in the operator's namespace: read, created, renewed). The operator's
requests must say who they are (`homeostat/` or `kopf/`): that is how test_rbac.py finds them.
"""

from __future__ import annotations

import base64
from typing import Any

from homeostat.lab.harness import deployment, policy, wait_until

API = "homeostat.dev/v1alpha1"
OPERATOR_AGENTS = ("homeostat/", "kopf/")


def statefulset(name: str, namespace: str = "shop") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "db", "image": "example.com/db:1.0"}]}},
        },
    }


def spec_for(kind: str, name: str, prometheus: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": {"kind": kind, "name": name},
        "interval": "1s", "lookback": "30s", "evaluationDelay": "0s",
        "prometheus": prometheus,
        "signals": [{"name": "up", "query": "up"}],
    }


def condition(cluster: Any, name: str, type_: str) -> dict[str, Any]:
    status = (cluster.get(API, "anomalypolicies", "shop", name) or {}).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_the_operator_makes_every_kind_of_call_and_identifies_itself(
    cluster: Any, start_operator: Any, closed_url: str
) -> None:
    closed = closed_url  # no Prometheus needed: the cycle runs all the same
    cluster.apply(deployment("checkout"))
    cluster.apply(statefulset("ledger"))
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-token", "namespace": "shop"},
                   "data": {"token": base64.b64encode(b"s3cret").decode()}})
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "homeostat-system"}})
    start_operator(None, extra=["--leader-election", "--retry-period", "1", "--renew-deadline", "5"])
    token = {"url": closed, "timeout": "1s", "bearerTokenSecretRef": {"name": "prom-token", "key": "token"}}
    cluster.apply(policy("web", spec_for("Deployment", "checkout", token)))
    cluster.apply(policy("db", spec_for("StatefulSet", "ledger", {"url": closed, "timeout": "1s"})))
    wait_until(lambda: all(condition(cluster, n, "TargetFound").get("status") == "True" for n in ("web", "db")),
               timeout=30, message="the policies' targets (a Deployment, a StatefulSet) were never found")
    assert condition(cluster, "web", "SpecValid").get("status") == "True"  # the Secret was read
    cluster.delete(API, "anomalypolicies", "shop", "db")
    wait_until(lambda: cluster.get(API, "anomalypolicies", "shop", "db") is None, timeout=30,
               message="Kopf never released its finalizer on the deleted policy")
    # Kopf posts the policies' Events in the background: wait for one to have been created.
    wait_until(lambda: any(r.verb == "create" and r.path.endswith("/events") and r.status == 201
                           for r in cluster.requests), timeout=20, message="the operator posted no Event")

    lease = "/apis/coordination.k8s.io/v1/namespaces/homeostat-system/leases"
    wait_until(lambda: any(r.verb == "update" and r.path == f"{lease}/homeostat" and r.status == 200
                           for r in cluster.requests), timeout=20, message="the Lease was never renewed")

    requests = cluster.requests
    strangers = {r.user_agent for r in requests if not (r.user_agent or "").startswith(OPERATOR_AGENTS)}
    assert not strangers, f"requests without the operator's user agent: {strangers}"
    seen = {(r.verb, r.path.split("/namespaces/shop/")[-1], r.status) for r in requests}
    assert ("get", "statefulsets/ledger", 200) in seen
    assert ("get", "deployments/checkout", 200) in seen
    assert ("get", "secrets/prom-token", 200) in seen
    assert ("patch", "anomalypolicies/web/status", 200) in seen
    assert ("create", "events", 201) in seen
    assert {("get", 404), ("create", 201)} <= {(r.verb, r.status) for r in requests if r.path.startswith(lease)}
    agents = {r.user_agent.split("/")[0] for r in requests if r.user_agent}
    assert agents == {"homeostat", "kopf"}
