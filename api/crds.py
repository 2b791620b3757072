"""CustomResourceDefinitions generated from the pydantic models, the single source of truth.

Pydantic writes JSON Schema (draft 2020-12); Kubernetes wants a *structural* OpenAPI v3 schema:
every node typed, no `$ref`, no `anyOf` of a type and null, `exclusiveMinimum` as a flag, no
`additionalProperties: false`. `structural_schema` does that conversion, and `crd_manifests`
adds names, printer columns and the status subresource. `crds/` holds its output; a test fails
when they differ.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from homeostat.api.base import GROUP, VERSION
from homeostat.api.incident import IncidentSpec, IncidentStatus
from homeostat.api.policy import PolicySpec
from homeostat.api.status import PolicyStatus

_DROPPED_KEYS = {"title", "$defs", "discriminator"}


@dataclass(frozen=True, kw_only=True)
class ResourceKind:
    """What a CRD needs to know about one of our kinds."""

    kind: str
    plural: str
    singular: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


ANOMALY_POLICY = ResourceKind(
    kind="AnomalyPolicy",
    plural="anomalypolicies",
    singular="anomalypolicy",
    short_names=["ap"],
    spec=PolicySpec,
    status=PolicyStatus,
    description="Watch a workload's Prometheus signals for anomalies and remediate them.",
    printer_columns=[
        {"name": "Target", "type": "string", "jsonPath": ".spec.target.name"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Signals", "type": "string", "jsonPath": ".status.signalsSummary"},
        {"name": "Last-Eval", "type": "date", "jsonPath": ".status.lastEvaluation"},
        {"name": "Incident", "type": "string", "jsonPath": ".status.activeIncident"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
)

INCIDENT = ResourceKind(
    kind="Incident",
    plural="incidents",
    singular="incident",
    short_names=["inc"],
    spec=IncidentSpec,
    status=IncidentStatus,
    description="One confirmed anomaly of a policy's target, and every action taken about it.",
    printer_columns=[
        {"name": "Policy", "type": "string", "jsonPath": ".spec.policy"},
        {"name": "Target", "type": "string", "jsonPath": ".spec.target.name"},
        {"name": "Signal", "type": "string", "jsonPath": ".spec.signal"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Last-Action", "type": "string", "jsonPath": ".status.lastAction"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
)

KINDS: tuple[ResourceKind, ...] = (ANOMALY_POLICY, INCIDENT)


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Turn a model's JSON Schema into a structural OpenAPI v3 schema for a CRD."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.get("$defs", {})
    return _convert(raw, definitions)


def _convert(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        target = definitions[node.pop("$ref").split("/")[-1]]
        merged = {**target, **node}  # keep a field's own description and default
        return _convert(merged, definitions)
    if "anyOf" in node:
        options = [option for option in node.pop("anyOf") if option.get("type") != "null"]
        nullable = len(options) == 1
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {len(options)} types in a structural schema")
        merged = {**options[0], **node}
        converted = _convert(merged, definitions)
        if nullable:
            converted["nullable"] = True
        return converted

    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            result["properties"] = {name: _convert(prop, definitions) for name, prop in value.items()}
        elif key == "items":
            result["items"] = _convert(value, definitions)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                result["additionalProperties"] = _convert(value, definitions)
        elif key == "const":
            result["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            result[bound] = value
            result[key] = True
        else:
            result[key] = value
    if "properties" in result:
        result.setdefault("type", "object")
        for name, prop in result["properties"].items():
            # An object field built by a default factory defaults to {}, so the API server
            # fills in the defaults inside it (it only defaults fields of present objects).
            optional_object = prop.get("type") == "object" and not prop.get("nullable")
            if optional_object and "default" not in prop and name not in result.get("required", []):
                prop["default"] = {}
    if "default" in result and result["default"] is None:
        del result["default"]  # absent means unset; a null default only adds noise
    if "enum" in result and "type" not in result:
        result["type"] = "string"
    return result


def crd_manifest(resource: ResourceKind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = structural_schema(resource.spec)
    status_schema = structural_schema(resource.status)
    spec_schema.pop("default", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": resource.crd_name, "labels": {"app.kubernetes.io/part-of": "homeostat"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": resource.short_names,
                "categories": ["homeostat"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": resource.printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": resource.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_manifests() -> list[dict[str, Any]]:
    """Every CRD of the project, in a stable order."""
    return [crd_manifest(resource) for resource in KINDS]


def render_yaml(manifest: dict[str, Any]) -> str:
    """Stable YAML text for a manifest, as written to `crds/`."""
    return yaml.safe_dump(manifest, sort_keys=False, width=100)
