"""Discovery documents (``/api``, ``/apis``, group and group/version resource lists).

Rendered from the :class:`~homeostat.lab.kube.registry.Registry` rather than by KMock's
scaffold, because KMock's version lists have no subresource kinds (``deployments/scale`` must
say ``autoscaling/v1 Scale`` for ``kubectl scale``) and no verbs for subresources.
"""

from __future__ import annotations

import hashlib
from typing import Any

from homeostat.lab.kube.registry import Registry, ResourceType

SUBRESOURCE_VERBS = ["get", "patch", "update"]


def _hash(rt: ResourceType) -> str:
    return hashlib.sha256(f"{rt.group}/{rt.storage_version or rt.version}/{rt.plural}".encode()).hexdigest()[:11]


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.versions_of(group)
    if not versions:
        return None
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
    }


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [api_group(registry, group) for group in registry.groups()]
    for group in groups:
        if group is not None:
            del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [g for g in groups if g is not None]}


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = sorted(registry.in_version(group, version), key=lambda rt: rt.plural)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
            "storageVersionHash": _hash(rt),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        if rt.status:
            resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                              "kind": rt.kind, "verbs": SUBRESOURCE_VERBS})
        if rt.scale is not None:
            resources.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": rt.namespaced,
                              "group": "autoscaling", "version": "v1", "kind": "Scale",
                              "verbs": SUBRESOURCE_VERBS})
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
