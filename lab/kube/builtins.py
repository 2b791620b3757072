"""Defaulting and the few validations of built-in kinds that clients visibly depend on.

The real server defaults every field of every built-in type from Go code; here only the fields
that change what clients read back are defaulted (Deployment replicas/strategy/history, the
pod template's restart/DNS/scheduler fields and containers' pull policy, Service cluster IPs and
ports, Pod phase, Namespace phase). Validation covers names, label selectors of workloads and
selector-vs-template labels, nothing else.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from typing import Any

from homeostat.lab.kube.errors import FieldError, format_value
from homeostat.lab.kube.registry import ResourceType
from homeostat.lab.kube.selectors import match_labels, selector_to_requirements

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_service_ips = (str(ipaddress.IPv4Address("10.96.0.10") + n) for n in itertools.count())

WORKLOADS = {("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"), ("apps", "replicasets")}


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = ":" not in tag or tag.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def apply_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Default the built-in object in place (no-op for custom resources)."""
    key = rt.group_resource
    spec = obj.setdefault("spec", {}) if key in WORKLOADS or key in {("", "pods"), ("", "services")} else None
    if key == ("apps", "deployments") and spec is not None:
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    if key in (("apps", "statefulsets"), ("apps", "replicasets")) and spec is not None:
        spec.setdefault("replicas", 1)
    if key == ("apps", "statefulsets") and spec is not None:
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    if key in WORKLOADS and spec is not None:
        template = spec.get("template")
        if isinstance(template, dict):
            default_pod_spec(template.setdefault("spec", {}))
    if key == ("", "pods") and spec is not None:
        default_pod_spec(spec)
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", "BestEffort")
    if key == ("", "services") and spec is not None:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            spec.setdefault("clusterIP", next(_service_ips))
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})
    if key == ("", "namespaces"):
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    if key == ("", "secrets"):
        obj.setdefault("type", "Opaque")
    if key == ("", "serviceaccounts"):
        pass


def validate(rt: ResourceType, obj: dict[str, Any]) -> list[FieldError]:
    """Validations of built-ins: names and workload selectors."""
    found: list[FieldError] = []
    name = obj.get("metadata", {}).get("name", "")
    pattern = DNS1123_LABEL if rt.group_resource in {("", "namespaces"), ("", "services")} else DNS1123_SUBDOMAIN
    if name and rt.group_resource not in {("", "events"), ("events.k8s.io", "events")} and (
            not pattern.match(name) or len(name) > 253):
        found.append(FieldError("FieldValueInvalid", "metadata.name",
                                f"Invalid value: {format_value(name)}: a lowercase RFC 1123 subdomain must "
                                f"consist of lower case alphanumeric characters, '-' or '.', and must start "
                                f"and end with an alphanumeric character"))
    if rt.group_resource in WORKLOADS:
        spec = obj.get("spec") or {}
        selector = spec.get("selector")
        if not selector:
            found.append(FieldError("FieldValueRequired", "spec.selector", "Required value"))
        else:
            template_meta = (spec.get("template") or {}).get("metadata") or {}
            labels = template_meta.get("labels") or {}
            if not match_labels(selector_to_requirements(selector), {"metadata": {"labels": labels}}):
                found.append(FieldError("FieldValueInvalid", "spec.template.metadata.labels",
                                        f"Invalid value: map[string]string{labels}: `selector` does not "
                                        f"match template `labels`"))
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
        if not containers:
            found.append(FieldError("FieldValueRequired", "spec.template.spec.containers", "Required value"))
    if rt.group_resource == ("", "pods") and not (obj.get("spec") or {}).get("containers"):
        found.append(FieldError("FieldValueRequired", "spec.containers", "Required value"))
    return found
