"""Which resources the emulated server serves: built-ins plus CRDs, with their discovery facts.

The discovery half is KMock's own registry (``kmock.ResourcesArray`` of ``kmock.ResourceInfo``):
every type registered here is also put into the handler's ``resources`` so KMock's view of
the server stays truthful. What KMock's ``ResourceInfo`` cannot hold (scope of a subresource,
schemas, printer columns, scale paths) lives in :class:`ResourceType`.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScalePaths:
    """Where a resource keeps the numbers the ``/scale`` subresource exposes."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = ".status.selector"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceType:
    """One served group/version/resource and everything the server needs to know about it."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status: bool = False  # has the /status subresource
    scale: ScalePaths | None = None  # has the /scale subresource
    schema: dict[str, Any] | None = None  # openAPIV3Schema (custom resources only)
    printer_columns: tuple[dict[str, Any], ...] = ()
    custom: bool = False  # served from a CRD (not a built-in)
    storage_version: str = ""  # the CRD's storage version; objects are shared by all versions

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> tuple[str, str]:
        """The storage identity: all versions of one group/plural share their objects."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def subresources(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("status", self.status), ("scale", self.scale is not None)) if on)


def _b(group: str, version: str, plural: str, kind: str, *, namespaced: bool = True,
       short: tuple[str, ...] = (), cats: tuple[str, ...] = (), status: bool = False,
       scale: ScalePaths | None = None, verbs: tuple[str, ...] = ALL_VERBS) -> ResourceType:
    return ResourceType(group=group, version=version, plural=plural, kind=kind, singular=kind.lower(),
                        namespaced=namespaced, short_names=short, categories=cats, status=status,
                        scale=scale, verbs=verbs)


BUILTINS: tuple[ResourceType, ...] = (
    _b("", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",), status=True),
    _b("", "v1", "pods", "Pod", short=("po",), cats=("all",), status=True),
    _b("", "v1", "services", "Service", short=("svc",), cats=("all",), status=True),
    _b("", "v1", "secrets", "Secret"),
    _b("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    _b("", "v1", "events", "Event", short=("ev",)),
    _b("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _b("events.k8s.io", "v1", "events", "Event", short=("ev",)),
    _b("apps", "v1", "deployments", "Deployment", short=("deploy",), cats=("all",), status=True,
       scale=ScalePaths()),
    _b("apps", "v1", "statefulsets", "StatefulSet", short=("sts",), cats=("all",), status=True,
       scale=ScalePaths()),
    _b("apps", "v1", "daemonsets", "DaemonSet", short=("ds",), cats=("all",), status=True),
    _b("apps", "v1", "replicasets", "ReplicaSet", short=("rs",), cats=("all",), status=True,
       scale=ScalePaths()),
    _b("apps", "v1", "controllerrevisions", "ControllerRevision"),
    _b("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short=("hpa",),
       cats=("all",), status=True),
    _b("coordination.k8s.io", "v1", "leases", "Lease"),
    _b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True),
    _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _b("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _b("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
       namespaced=False, short=("crd", "crds"), cats=("api-extensions",), status=True),
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One :class:`ResourceType` per served version of an ``apiextensions.k8s.io/v1`` CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec["group"]
    plural = names["plural"]
    kind = names["kind"]
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")),
                   versions[0]["name"] if versions else "")
    result = []
    for version in versions:
        subresources = version.get("subresources") or {}
        scale = subresources.get("scale")
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        result.append(ResourceType(
            group=group, version=version["name"], plural=plural, kind=kind,
            singular=names.get("singular") or kind.lower(),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            status="status" in subresources,
            scale=None if scale is None else ScalePaths(
                spec_replicas=scale.get("specReplicasPath", ".spec.replicas"),
                status_replicas=scale.get("statusReplicasPath", ".status.replicas"),
                label_selector=scale.get("labelSelectorPath"),
            ),
            schema=copy.deepcopy(schema) if schema else None,
            printer_columns=tuple(copy.deepcopy(version.get("additionalPrinterColumns") or ())),
            custom=True,
            storage_version=storage,
        ))
    return result


class Registry:
    """The set of served resources; thread-safe because CRDs can arrive over HTTP at any time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[tuple[str, str, str]]] = {}  # CRD name -> keys
        for rt in BUILTINS:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def __iter__(self) -> Iterator[ResourceType]:
        with self._lock:
            return iter(list(self._types.values()))

    def add_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        name = crd["metadata"]["name"]
        types = types_from_crd(crd)
        with self._lock:
            for key in self._crd_types.pop(name, []):
                self._types.pop(key, None)
            keys = []
            for rt in types:
                key = (rt.group, rt.version, rt.plural)
                self._types[key] = rt
                keys.append(key)
            self._crd_types[name] = keys
        return types

    def remove_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            keys = self._crd_types.pop(name, [])
            return [rt for key in keys if (rt := self._types.pop(key, None)) is not None]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, plural))

    def has_namespaced(self, group: str, version: str, plural: str) -> bool:
        rt = self.get(group, version, plural)
        return rt is not None and rt.namespaced

    def versions_of(self, group: str) -> list[str]:
        with self._lock:
            found = [rt.version for rt in self._types.values() if rt.group == group]
        return _sort_versions(set(found))

    def groups(self) -> list[str]:
        with self._lock:
            return sorted({rt.group for rt in self._types.values() if rt.group})

    def in_version(self, group: str, version: str) -> list[ResourceType]:
        with self._lock:
            return [rt for rt in self._types.values() if rt.group == group and rt.version == version]

    def find(self, api_version: str, kind_or_plural: str) -> ResourceType | None:
        """Resolve ``("apps/v1", "Deployment" | "deployments" | "deploy")`` to a served type."""
        group, _, version = api_version.rpartition("/")
        with self._lock:
            candidates = [rt for rt in self._types.values() if rt.group == group and rt.version == version]
        for rt in candidates:
            if kind_or_plural in (rt.kind, rt.plural):
                return rt
        lowered = kind_or_plural.lower()
        for rt in candidates:
            if lowered in (rt.kind.lower(), rt.plural, rt.singular) or lowered in rt.short_names:
                return rt
        return None


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, then by numbers (v2 > v1)."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (-1, 0, 0)
    major = int(match.group(1))
    level = {"alpha": 0, "beta": 1, None: 2}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (level, major, minor)


def _sort_versions(versions: set[str]) -> list[str]:
    return sorted(versions, key=_version_priority, reverse=True)
