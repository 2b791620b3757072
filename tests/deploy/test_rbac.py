"""The RBAC of deploy/ against what the operator really did in this test session.

Every request that an operator made to an emulated cluster during the session (the
`all_api_requests` fixture; the operator's are those with a `homeostat/` or `kopf/` user agent) is
mapped to RBAC attributes the way kube-apiserver does (API group, resource[/subresource], verb,
namespace, name) and must be allowed by the rules bound to the operator's ServiceAccount. The other
way round, every verb on every resource that the rules grant must have been used by some request,
and no rule may contain a wildcard. Runs last: it reads what the other tests did.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest

pytestmark = pytest.mark.last

OPERATOR_AGENTS = ("homeostat/", "kopf/")
NAMESPACE = "homeostat-system"
SERVICE_ACCOUNT = "homeostat-operator"
# The test that drives the operator through every kind of call: without it in the session, an
# unused grant may only mean that the tests which would use it did not run (`-k`, one file...).
EXERCISE = "test_operator_requests.py::test_the_operator_makes_every_kind_of_call_and_identifies_itself"
# Paths that every authenticated client may read (the `system:discovery` and
# `system:public-info-viewer` ClusterRoles of every cluster): discovery, version, health.
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")
NAMESPACE_SUBRESOURCES = {"status", "finalize"}  # kube-apiserver's RequestInfoFactory


@dataclasses.dataclass(frozen=True)
class Attributes:
    """What RBAC sees of a resource request."""

    group: str
    resource: str  # "anomalypolicies" or "anomalypolicies/status"
    verb: str
    namespace: str | None
    name: str | None


def attributes(path: str, verb: str) -> Attributes | None:
    """RBAC attributes of a request path, as kube-apiserver derives them; None for non-resource URLs."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # /api/v1, /apis/GROUP/VERSION: discovery
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    return Attributes(group=group, resource=resource, verb=verb, namespace=namespace,
                      name=rest[1] if len(rest) > 1 else None)


@dataclasses.dataclass(frozen=True)
class Grant:
    """One rule of a role, and where the binding makes it apply (None: every namespace)."""

    role: str
    rule: dict[str, Any]
    namespace: str | None

    def allows(self, a: Attributes) -> bool:
        if self.namespace is not None and a.namespace != self.namespace:
            return False
        names = self.rule.get("resourceNames") or []
        return (
            a.group in self.rule.get("apiGroups", [])
            and a.resource in self.rule.get("resources", [])
            and a.verb in self.rule.get("verbs", [])
            and (not names or a.name in names)
        )

    def triples(self) -> list[tuple[str, str, str]]:
        return [(g, r, v) for g in self.rule.get("apiGroups", []) for r in self.rule.get("resources", [])
                for v in self.rule.get("verbs", [])]


def operator_grants(objects: list[dict[str, Any]]) -> list[Grant]:
    """The rules bound to the operator's ServiceAccount by the bindings in `objects`."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    grants = []
    for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == SERVICE_ACCOUNT
                   and s.get("namespace") == NAMESPACE for s in binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        key = (ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])
        assert key in roles, f"{binding['kind']} {binding['metadata']['name']} refers to a missing {key}"
        grants += [Grant(role=ref["name"], rule=rule, namespace=scope) for rule in roles[key].get("rules") or []]
    return grants


def operator_requests(all_api_requests: list[Any]) -> list[Any]:
    return [r for r in all_api_requests if (r.user_agent or "").startswith(OPERATOR_AGENTS)]


def describe(a: Attributes) -> str:
    where = f" in {a.namespace}" if a.namespace else ""
    return f"{a.verb} {a.group or 'core'}/{a.resource}{where}"


# --- the rules' own shape -----------------------------------------------------------------------


def test_rbac_has_no_wildcards(kustomized: list[dict[str, Any]]) -> None:
    roles = [o for o in kustomized if o["kind"] in ("Role", "ClusterRole")]
    assert roles, "deploy/ has no Role or ClusterRole"
    for role in roles:
        assert not role.get("aggregationRule"), f"{role['metadata']['name']}: aggregated roles grant unseen rules"
        for rule in role.get("rules") or []:
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                values = rule.get(key) or []
                assert not any("*" in v for v in values), f"{role['metadata']['name']}: wildcard in {key}: {rule}"
            assert not rule.get("nonResourceURLs"), "the operator needs no non-resource URLs beyond discovery"


def test_the_operator_account_is_bound(kustomized: list[dict[str, Any]]) -> None:
    accounts = [o for o in kustomized if o["kind"] == "ServiceAccount"]
    assert [(a["metadata"]["namespace"], a["metadata"]["name"]) for a in accounts] == [(NAMESPACE, SERVICE_ACCOUNT)]
    assert operator_grants(kustomized), "no binding gives the operator's ServiceAccount any rule"


def test_attributes_follow_kube_apiserver() -> None:
    a = attributes("/apis/homeostat.dev/v1alpha1/namespaces/shop/anomalypolicies/p/status", "patch")
    assert a == Attributes("homeostat.dev", "anomalypolicies/status", "patch", "shop", "p")
    assert attributes("/api/v1/namespaces/shop/events", "create") == Attributes("", "events", "create", "shop", None)
    assert attributes("/api/v1/namespaces/shop", "get") == Attributes("", "namespaces", "get", "shop", "shop")
    assert attributes("/api/v1/namespaces/shop/status", "get") == Attributes(
        "", "namespaces/status", "get", "shop", "shop")
    assert attributes("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "watch") == Attributes(
        "apiextensions.k8s.io", "customresourcedefinitions", "watch", None, None)
    assert attributes("/apis/apps/v1", "get") is None
    assert attributes("/version", "get") is None


# --- against the session's requests -------------------------------------------------------------


def test_every_operator_request_is_allowed(kustomized: list[dict[str, Any]], all_api_requests: list[Any]) -> None:
    requests = operator_requests(all_api_requests)
    if not requests:
        pytest.skip("no test in this session ran the operator against an emulated cluster: nothing to check")
    grants = operator_grants(kustomized)
    denied: Counter[str] = Counter()
    for request in requests:
        a = attributes(request.path, request.verb)
        if a is None:
            if not request.path.startswith(DISCOVERY_PREFIXES):
                denied[f"{request.method} {request.path} (non-resource URL)"] += 1
            continue
        if not any(g.allows(a) for g in grants):
            denied[describe(a)] += 1
    assert not denied, (
        f"deploy/ RBAC would forbid {sum(denied.values())} of {len(requests)} operator requests:\n"
        + "\n".join(f"  {count:5d} x {what}" for what, count in denied.most_common())
    )


def test_every_grant_was_used(
    kustomized: list[dict[str, Any]], all_api_requests: list[Any], request: pytest.FixtureRequest
) -> None:
    requests = operator_requests(all_api_requests)
    if not requests:
        pytest.skip("no test in this session ran the operator against an emulated cluster: nothing to check")
    if not any(item.nodeid.endswith(EXERCISE) for item in request.session.items):
        pytest.skip(f"only part of the suite ran ({len(requests)} operator requests, without {EXERCISE}): "
                    "an unused grant would prove nothing; run tests/deploy or the whole suite")
    used = [a for a in (attributes(r.path, r.verb) for r in requests) if a is not None]
    unused = []
    for grant in operator_grants(kustomized):
        for group, resource, verb in grant.triples():
            probe = Grant(role=grant.role, rule={"apiGroups": [group], "resources": [resource], "verbs": [verb],
                                                 "resourceNames": grant.rule.get("resourceNames") or []},
                          namespace=grant.namespace)
            if not any(probe.allows(a) for a in used):
                unused.append(f"{grant.role}: {verb} {group or 'core'}/{resource}")
    assert not unused, (
        "deploy/ RBAC grants what no operator request used in this session (remove it, or add a test "
        "that makes the operator use it):\n  " + "\n  ".join(unused)
    )
