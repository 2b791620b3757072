"""Server-side printing (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``) for kubectl."""

from __future__ import annotations

from typing import Any

from homeostat.lab.kube.registry import ResourceType


def table(rt: ResourceType, items: list[dict[str, Any]], *, list_meta: dict[str, Any],
          params: Any) -> dict[str, Any]:
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    rows = [{"cells": [item["metadata"]["name"]], "object": {"kind": "PartialObjectMetadata",
             "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]}} for item in items]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows}
