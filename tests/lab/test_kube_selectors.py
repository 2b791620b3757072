"""Label and field selectors, parsed like apimachinery and applied on list (and watch)."""

from __future__ import annotations

import pytest

from homeostat.lab.kube.errors import ApiError
from homeostat.lab.kube.selectors import matcher, parse_labels, selector_to_string

OBJ = {"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web", "tier": "front"}}}


@pytest.mark.parametrize("selector, expected", [
    ("app=web", True), ("app==web", True), ("app!=web", False), ("app!=db", True),
    ("app in (web,db)", True), ("app notin (web,db)", False), ("tier", True), ("!tier", False),
    ("!missing", True), ("missing!=x", True), ("app=web,tier=back", False), ("app in (db), tier", False),
    ("", True),
])
def test_label_selector_operators(selector, expected):
    assert matcher(labels=selector, fields=None, group="", plural="pods")(OBJ) is expected


@pytest.mark.parametrize("selector, expected", [
    ("metadata.name=a", True), ("metadata.name==b", False), ("metadata.name!=b", True),
    ("metadata.namespace=ns,metadata.name=a", True),
])
def test_field_selectors(selector, expected):
    assert matcher(labels=None, fields=selector, group="", plural="pods")(OBJ) is expected


def test_bad_selectors_are_400():
    with pytest.raises(ApiError) as err:
        parse_labels("app in web")
    assert err.value.code == 400
    with pytest.raises(ApiError) as err:
        matcher(labels=None, fields="spec.whatever=1", group="", plural="configmaps")
    assert err.value.code == 400 and "field label not supported" in err.value.message


def test_structured_selector_rendering():
    selector = {"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "c", "operator": "In", "values": ["y", "x"]}, {"key": "d", "operator": "DoesNotExist"}]}
    assert selector_to_string(selector) == "a=1,b=2,c in (x,y),!d"


def test_selectors_on_http_list(http):
    for name, labels in (("p1", {"app": "web"}), ("p2", {"app": "db"}), ("p3", {})):
        http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": name, "labels": labels}})

    def names(**params):
        response = http.get("/api/v1/namespaces/default/configmaps", params=params)
        assert response.status_code == 200
        return [i["metadata"]["name"] for i in response.json()["items"]]

    assert names(labelSelector="app=web") == ["p1"]
    assert names(labelSelector="app") == ["p1", "p2"]
    assert names(labelSelector="!app") == ["p3"]
    assert names(labelSelector="app notin (web)") == ["p2", "p3"]
    assert names(fieldSelector="metadata.name=p2") == ["p2"]
    assert names(fieldSelector="metadata.namespace=default", labelSelector="app in (db,web)") == ["p1", "p2"]
    assert http.get("/api/v1/configmaps", params={"fieldSelector": "metadata.namespace=other"}).json()["items"] == []


def test_pagination_with_limit_and_continue(http):
    for i in range(5):
        http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": f"c{i}"}})
    first = http.get("/api/v1/namespaces/default/configmaps", params={"limit": "2"}).json()
    assert len(first["items"]) == 2 and first["metadata"]["remainingItemCount"] == 3
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = http.get("/api/v1/namespaces/default/configmaps", params={"limit": "2", "continue": token}).json()
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert seen == [f"c{i}" for i in range(5)]
