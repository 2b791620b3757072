"""CRD openAPIV3Schema: validation with field paths (422), defaulting, pruning."""

from __future__ import annotations

import pytest

from homeostat.lab.kube.schema import process

from .conftest import MERGE, WIDGET_CRD, WIDGETS, widget

SCHEMA = WIDGET_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _causes(response):
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Invalid", 422)
    return {c["field"]: c for c in body["details"]["causes"]}


def test_pattern_violation_is_worded_like_the_api_server(http):
    response = http.post(WIDGETS, json=widget("w1", interval="5x"))
    causes = _causes(response)
    assert causes["spec.interval"]["reason"] == "FieldValueInvalid"
    assert response.json()["message"] == (
        'Widget.lab.homeostat.io "w1" is invalid: spec.interval: Invalid value: "5x": '
        "spec.interval in body should match '^[0-9]+[smh]$'")


@pytest.mark.parametrize("spec, field, text", [
    ({"target": 5}, "spec.target", 'Invalid value: "integer": spec.target in body must be of type string: "integer"'),
    ({"target": ""}, "spec.target", "spec.target in body should be at least 1 chars long"),
    ({"target": "x" * 21}, "spec.target", "Too long: may not be more than 20 bytes"),
    ({"target": "a", "mode": "boom"}, "spec.mode",
     'Unsupported value: "boom": supported values: "observe", "remediate"'),
    ({"target": "a", "replicas": -1}, "spec.replicas", "spec.replicas in body should be greater than or equal to 0"),
    ({"target": "a", "replicas": 11}, "spec.replicas", "spec.replicas in body should be less than or equal to 10"),
    ({"target": "a", "replicas": 1.5}, "spec.replicas", "must be of type integer"),
    ({"target": "a", "tags": ["a", "b", "c", "d"]}, "spec.tags", "must have at most 3 items"),
    ({"target": "a", "tags": [1]}, "spec.tags[0]", "must be of type string"),
    ({"target": "a", "labels": {"k": 1}}, "spec.labels.k", "must be of type string"),
    ({"target": "a", "port": 1.5}, "spec.port", "must be of type integer,string"),
    ({"target": "a", "mode": None}, "spec.mode", None),  # null, not nullable, has a default: defaulted
    ({}, "spec.target", "Required value"),
])
def test_validation_errors_name_the_field(http, spec, field, text):
    body = widget("w1")
    body["spec"] = spec
    response = http.post(WIDGETS, json=body)
    if text is None:
        assert response.status_code == 201 and response.json()["spec"]["mode"] == "observe"
        return
    causes = _causes(response)
    assert field in causes and text in causes[field]["message"], causes


def test_valid_values_pass(http):
    response = http.post(WIDGETS, json=widget("w1", port="http", threshold=None, replicas=3,
                                              labels={"a": "b"}, extra={"anything": {"goes": [1]}}))
    assert response.status_code == 201
    assert response.json()["spec"]["extra"] == {"anything": {"goes": [1]}}
    assert http.post(WIDGETS, json=widget("w2", port=8080)).status_code == 201


def test_defaults_are_applied_including_nested_ones(http):
    spec = http.post(WIDGETS, json=widget("w1")).json()["spec"]
    assert spec["interval"] == "30s" and spec["mode"] == "observe" and spec["limits"] == {"max": 5}


def test_unknown_fields_are_pruned(http):
    body = widget("w1", unknown="dropped")
    body["toplevel"] = "dropped"
    created = http.post(WIDGETS, json=body).json()
    assert "unknown" not in created["spec"] and "toplevel" not in created


def test_updates_and_patches_are_validated_too(http):
    http.post(WIDGETS, json=widget("w1"))
    assert "spec.interval" in _causes(http.patch(f"{WIDGETS}/w1", json={"spec": {"interval": "x"}}, headers=MERGE))
    current = http.get(f"{WIDGETS}/w1").json()
    current["spec"]["replicas"] = 99
    assert "spec.replicas" in _causes(http.put(f"{WIDGETS}/w1", json=current))
    assert http.get(f"{WIDGETS}/w1").json()["spec"]["interval"] == "30s"  # nothing was stored


def test_status_is_checked_against_the_schema_on_the_status_subresource():
    schema = {"type": "object", "properties": {"status": {"type": "object", "properties": {
        "count": {"type": "integer"}}}}}
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "status": {"count": "many", "junk": 1}}
    found = process(obj, schema)
    assert [(e.field, e.reason) for e in found] == [("status.count", "FieldValueTypeInvalid")]
    assert "junk" not in obj["status"]
