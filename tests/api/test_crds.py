"""`crds/` is exactly what the models generate, and it is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homeostat.api.crds import KINDS, crd_manifest, render_yaml
from homeostat.api.policy import PolicySpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("resource", KINDS, ids=lambda r: r.kind)
def test_crds_folder_matches_the_models(resource: Any) -> None:
    path = ROOT / "crds" / f"{resource.crd_name}.yaml"
    assert path.exists(), f"{path} missing; run `homeostat crds --out crds`"
    assert path.read_text() == render_yaml(crd_manifest(resource)), (
        f"{path} is out of date; run `homeostat crds --out crds`"
    )


def _walk(node: dict[str, Any], path: str) -> list[str]:
    """Problems that make a schema non-structural (Kubernetes' rules, as far as we use them)."""
    problems = []
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields") \
            and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "$defs", "title", "const"):
        if forbidden in node:
            problems.append(f"{path}: {forbidden}")
    if node.get("additionalProperties") is False or ("additionalProperties" in node and "properties" in node):
        problems.append(f"{path}: additionalProperties with properties")
    if "default" in node and node["default"] is None:
        problems.append(f"{path}: null default")
    for name, child in node.get("properties", {}).items():
        problems += _walk(child, f"{path}.{name}")
    if "items" in node:
        problems += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk(node["additionalProperties"], f"{path}{{}}")
    return problems


@pytest.mark.parametrize("resource", KINDS, ids=lambda r: r.kind)
def test_schemas_are_structural(resource: Any) -> None:
    manifest = crd_manifest(resource)
    version = manifest["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert _walk(version["schema"]["openAPIV3Schema"], "") == []


def test_policy_schema_carries_defaults_enums_minimums_and_patterns() -> None:
    spec = crd_manifest(KINDS[0])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert props["interval"]["default"] == "30s" and "pattern" in props["interval"]
    assert props["target"]["properties"]["kind"]["enum"] == ["Deployment", "StatefulSet"]
    assert props["playbook"]["properties"]["maxActionsPerHour"]["minimum"] == 0
    assert props["signals"]["items"]["properties"]["direction"]["default"] == "up"
    assert set(spec["required"]) == {"target", "signals"}


def test_printer_columns_for_on_call() -> None:
    columns = [c["name"] for c in crd_manifest(KINDS[0])["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Target", "Phase", "Signals", "Last-Eval", "Incident", "Age"]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_policies(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert document["kind"] == "AnomalyPolicy"
    PolicySpec.model_validate(document["spec"])
