"""Fixtures for the emulated API server's tests (homeostat.lab.kube)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from homeostat.lab.kube import EmulatedCluster

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.lab.homeostat.io"},
    "spec": {
        "group": "lab.homeostat.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"],
                  "categories": ["homeostat"]},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas",
                                                     "labelSelectorPath": ".status.selector"}},
            "additionalPrinterColumns": [
                {"name": "Interval", "type": "string", "jsonPath": ".spec.interval"},
                {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["target"],
                        "properties": {
                            "target": {"type": "string", "minLength": 1, "maxLength": 20},
                            "interval": {"type": "string", "pattern": "^[0-9]+[smh]$", "default": "30s"},
                            "mode": {"type": "string", "enum": ["observe", "remediate"], "default": "observe"},
                            "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                            "threshold": {"type": "number", "nullable": True},
                            "port": {"x-kubernetes-int-or-string": True},
                            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            "limits": {"type": "object", "default": {},
                                       "properties": {"max": {"type": "integer", "default": 5}}},
                        },
                    },
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }},
        }],
    },
}

GADGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.lab.homeostat.io"},
    "spec": {
        "group": "lab.homeostat.io",
        "scope": "Cluster",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object",
                                                     "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


def widget(name: str = "w1", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "lab.homeostat.io/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"target": "api", **spec}}


@pytest.fixture
def crds() -> list[dict[str, Any]]:
    return [copy.deepcopy(WIDGET_CRD), copy.deepcopy(GADGET_CRD)]


@pytest.fixture
def cluster(crds: list[dict[str, Any]]) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(crds=crds, controllers=False) as emulated:
        yield emulated


@pytest.fixture
def http(cluster: EmulatedCluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.url, timeout=10) as client:
        yield client


@pytest.fixture
def api_client(cluster: EmulatedCluster) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    try:
        yield client
    finally:
        client.close()


MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
SMP = {"Content-Type": "application/strategic-merge-patch+json"}
WIDGETS = "/apis/lab.homeostat.io/v1/namespaces/default/widgets"
