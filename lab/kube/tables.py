"""Server-side printing for ``kubectl get``: ``meta.k8s.io/v1`` Tables.

Custom resources use their CRD's ``additionalPrinterColumns`` (a JSONPath subset: ``.a.b``,
``.a[0].b``, ``.a[*].b``, ``.a[?(@.type=="Ready")].status``), with ``date`` columns shown as
ages, as the API server does; built-ins get the usual kubectl columns for the common kinds and
Name/Age for the rest.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from typing import Any

from homeostat.lab.kube.registry import ResourceType

Row = Callable[[dict[str, Any]], list[Any]]
_TOKEN = re.compile(r"""\.([A-Za-z0-9_\-/$]+)|\[(\d+)\]|\[\*\]|\[\?\(@\.([\w.\-/]+)\s*==\s*["']([^"']*)["']\)\]""")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """All values at ``path`` (an empty list when nothing matches)."""
    values = [obj]
    position = 0
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath: {path!r}")
        position = match.end()
        field, index, key, wanted = match.groups()
        nxt: list[Any] = []
        for value in values:
            if field is not None and isinstance(value, dict) and field in value:
                nxt.append(value[field])
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                nxt.append(value[int(index)])
            elif match.group(0) == "[*]" and isinstance(value, list):
                nxt.extend(value)
            elif key is not None and isinstance(value, list):
                for item in value:
                    found = jsonpath(item, "." + key)
                    if found and str(found[0]) == wanted:
                        nxt.append(item)
        values = nxt
    return values


def age(timestamp: str | None, *, now: datetime.datetime | None = None) -> str:
    """kubectl's ``HumanDuration`` of the time since ``timestamp``."""
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int(((now or datetime.datetime.now(tz=datetime.UTC)) - then).total_seconds())
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d"


def _cell(value: list[Any], kind: str) -> Any:
    if not value:
        return None
    if kind == "date":
        return age(str(value[0]))
    if kind in ("integer", "number", "boolean"):
        return value[0]
    return ",".join(json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in value)


def _col(name: str, kind: str = "string", priority: int = 0, fmt: str = "", description: str = "") -> dict[str, Any]:
    return {"name": name, "type": kind, "format": fmt, "description": description or name, "priority": priority}


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = obj.get("status") or {}
    return status


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj.get("spec") or {}
    return spec


def _created(obj: dict[str, Any]) -> str:
    return age(obj["metadata"].get("creationTimestamp"))


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    statuses = _status(pod).get("containerStatuses") or []
    total = len(_spec(pod).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    phase = "Terminating" if pod["metadata"].get("deletionTimestamp") else _status(pod).get("phase", "Pending")
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    return [f"{ready}/{total}", phase, restarts, _created(pod), _status(pod).get("podIP") or "<none>",
            _spec(pod).get("nodeName") or "<none>"]


def _ports(svc: dict[str, Any]) -> str:
    ports = _spec(svc).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


BUILTIN_COLUMNS: dict[tuple[str, str], tuple[list[dict[str, Any]], Row]] = {
    ("", "pods"): (
        [_col("Ready"), _col("Status"), _col("Restarts", "integer"), _col("Age"), _col("IP", priority=1),
         _col("Node", priority=1)], _pod_row),
    ("apps", "deployments"): (
        [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Age")],
        lambda d: [f"{_status(d).get('readyReplicas', 0)}/{_spec(d).get('replicas', 1)}",
                   _status(d).get("updatedReplicas", 0), _status(d).get("availableReplicas", 0), _created(d)]),
    ("apps", "replicasets"): (
        [_col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"), _col("Age")],
        lambda r: [_spec(r).get("replicas", 1), _status(r).get("replicas", 0), _status(r).get("readyReplicas", 0),
                   _created(r)]),
    ("apps", "statefulsets"): (
        [_col("Ready"), _col("Age")],
        lambda s: [f"{_status(s).get('readyReplicas', 0)}/{_spec(s).get('replicas', 1)}", _created(s)]),
    ("", "services"): (
        [_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _col("Age")],
        lambda s: [_spec(s).get("type", "ClusterIP"), _spec(s).get("clusterIP", "<none>"), "<none>", _ports(s),
                   _created(s)]),
    ("", "namespaces"): ([_col("Status"), _col("Age")], lambda n: [_status(n).get("phase", "Active"), _created(n)]),
    ("", "configmaps"): ([_col("Data", "integer"), _col("Age")],
                         lambda c: [len(c.get("data") or {}) + len(c.get("binaryData") or {}), _created(c)]),
    ("", "secrets"): ([_col("Type"), _col("Data", "integer"), _col("Age")],
                      lambda s: [s.get("type", "Opaque"), len(s.get("data") or {}), _created(s)]),
    ("", "events"): (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        lambda e: [age(e.get("lastTimestamp") or e.get("eventTime") or e["metadata"].get("creationTimestamp")),
                   e.get("type", ""), e.get("reason", ""),
                   f"{(e.get('involvedObject') or {}).get('kind', '').lower()}/"
                   f"{(e.get('involvedObject') or {}).get('name', '')}", e.get("message", "")]),
    ("apps", "controllerrevisions"): (
        [_col("Controller"), _col("Revision", "integer"), _col("Age")],
        lambda c: [next((f"{r['kind'].lower()}.apps/{r['name']}" for r in c["metadata"].get("ownerReferences") or []),
                        "<none>"), c.get("revision"), _created(c)]),
}


def _columns(rt: ResourceType) -> tuple[list[dict[str, Any]], Row]:
    name_col = _col("Name", fmt="name", description="Name must be unique within a namespace.")
    if rt.custom:
        extra = [dict(c) for c in rt.printer_columns]
        if not extra:
            return [name_col, _col("Age", "date")], lambda o: [o["metadata"]["name"], _created(o)]
        defs = [name_col] + [_col(c["name"], c.get("type", "string"), int(c.get("priority", 0)), c.get("format", ""),
                                  c.get("description", "")) for c in extra]
        return defs, lambda o: [o["metadata"]["name"]] + [_cell(jsonpath(o, c["jsonPath"]), c.get("type", "string"))
                                                          for c in extra]
    if rt.group_resource == ("", "events"):  # the event table lists the name last, in -o wide only
        defs, row = BUILTIN_COLUMNS[rt.group_resource]
        return [*defs, {**name_col, "priority": 1}], lambda o: [*row(o), o["metadata"]["name"]]
    if rt.group_resource in BUILTIN_COLUMNS:
        defs, row = BUILTIN_COLUMNS[rt.group_resource]
        return [name_col, *defs], lambda o: [o["metadata"]["name"], *row(o)]
    return [name_col, _col("Age")], lambda o: [o["metadata"]["name"], _created(o)]


def table(rt: ResourceType, items: list[dict[str, Any]], *, list_meta: dict[str, Any],
          params: Any) -> dict[str, Any]:
    columns, row = _columns(rt)
    include = params.get("includeObject") or "Metadata"
    rows = []
    for item in items:
        entry: dict[str, Any] = {"cells": row(item)}
        if include == "Object":
            entry["object"] = item
        elif include == "Metadata":
            entry["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": item["metadata"]}
        rows.append(entry)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows}
