"""Label and field selectors, as parsed by apimachinery's ``labels.Parse``/``fields.ParseSelector``.

Supported label syntax: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
``k`` (exists), ``!k`` (does not exist), comma-separated (AND).
Field selectors: ``path=v``, ``path==v``, ``path!=v`` over the fields the real server supports
for the resource (``metadata.name``/``metadata.namespace`` everywhere, plus a few per kind).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from homeostat.lab.kube import errors

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "exists":
                return present
            case "!exists":
                return not present
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
        return False  # pragma: no cover


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( ... )`` value sets."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def parse_labels(text: str | None) -> list[Requirement]:
    if not text:
        return []
    requirements = []
    for term in _split_top_level(text):
        if m := re.fullmatch(rf"({_KEY})\s+(in|notin)\s+\(([^)]*)\)", term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := re.fullmatch(rf"!\s*({_KEY})", term):
            requirements.append(Requirement(m.group(1), "!exists"))
        elif m := re.fullmatch(rf"({_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)", term):
            op = "=" if m.group(2) in ("=", "==") else "!="
            requirements.append(Requirement(m.group(1), op, (m.group(3),)))
        elif m := re.fullmatch(rf"({_KEY})", term):
            requirements.append(Requirement(m.group(1), "exists"))
        else:
            raise errors.bad_request(f"unable to parse requirement: <nil>: Invalid value: {term!r}: "
                                     f"found '{term}', expected a valid label selector")
    return requirements


def match_labels(requirements: list[Requirement], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


def selector_to_requirements(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """A structured ``LabelSelector`` (matchLabels/matchExpressions) as requirements."""
    if not selector:
        return []
    result = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        result.append(Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return result


def selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """Render a structured selector the way ``metav1.LabelSelectorAsSelector(...).String()`` does."""
    parts = []
    for req in sorted(selector_to_requirements(selector), key=lambda r: r.key):
        match req.op:
            case "=":
                parts.append(f"{req.key}={req.values[0]}")
            case "in" | "notin":
                parts.append(f"{req.key} {req.op} ({','.join(sorted(req.values))})")
            case "exists":
                parts.append(req.key)
            case "!exists":
                parts.append(f"!{req.key}")
    return ",".join(parts)


# Field selectors that the real server accepts, by (group, plural); metadata.* is always there.
_EXTRA_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                   "status.phase", "status.podIP", "status.nominatedNodeName"),
    ("", "events"): ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                     "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    ("events.k8s.io", "events"): ("regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
                                  "reason", "type", "reportingController"),
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("apps", "replicasets"): ("status.replicas",),
}


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    path: str
    negate: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        current: Any = obj
        for part in self.path.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        text = "" if current is None else str(current)
        return (text != self.value) if self.negate else (text == self.value)


def parse_fields(text: str | None, *, group: str, plural: str) -> list[FieldRequirement]:
    if not text:
        return []
    allowed = {"metadata.name", "metadata.namespace", *_EXTRA_FIELDS.get((group, plural), ())}
    result = []
    for term in _split_top_level(text):
        m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", term)
        if not m:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if m.group(1) not in allowed:
            raise errors.bad_request(f'field label not supported: {m.group(1)}')
        result.append(FieldRequirement(m.group(1), m.group(2) == "!=", m.group(3)))
    return result


def match_fields(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)


Matcher = Callable[[Mapping[str, Any]], bool]


def matcher(*, labels: str | None, fields: str | None, group: str, plural: str) -> Matcher:
    """Parse both selectors once (raising 400 on bad syntax) and return a predicate for objects."""
    label_reqs = parse_labels(labels)
    field_reqs = parse_fields(fields, group=group, plural=plural)

    def check(obj: Mapping[str, Any]) -> bool:
        return match_labels(label_reqs, obj) and match_fields(field_reqs, obj)

    return check
