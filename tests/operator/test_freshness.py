"""The pieces behind fresh, complete data: the selectors a query reads and the age of their samples,
what makes an answer partial, and URLs fit for messages. End to end: tests/operator/test_fresh_data.py."""

from __future__ import annotations

import datetime  # noqa: F401 - before promql_parser (pyo3)

import promql_parser
import pytest

from homeostat.operator.freshness import SELECTOR_LABEL, FreshnessCheck, grouping_of, selectors_of
from homeostat.operator.prometheus import Sample, partial_reason, redact_url

AT = 1_800_000_000.0


def test_selectors_are_the_plain_ones_without_range_offset_or_at_each_once() -> None:
    query = ('histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout"}[2m]'
             ' offset 5m))) / on() max_over_time(rate(x[1m])[10m:1m]) + (x @ 100)'
             ' + {__name__=~"a|b", pod!~"q\\"\\\\d"}')
    assert selectors_of(query) == (
        'http_request_duration_seconds_bucket{service="checkout"}', "x{}", '{__name__=~"a|b",pod!~"q\\"\\\\d"}',
    )
    assert selectors_of("vector(1) + time()") == ()
    with pytest.raises(ValueError):
        selectors_of("sum(")


def test_rendered_selectors_and_the_freshness_query_parse_back_to_the_same_matchers() -> None:
    check = FreshnessCheck.of('rate(a{pod="x\\"y",path=~"/api/.*\\\\.json"}[1m]) / b')
    query = check.query(["pod"])
    assert query == (
        'label_replace(min by (pod) (timestamp(a{pod="x\\"y",path=~"/api/.*\\\\.json"})), '
        f'"{SELECTOR_LABEL}", "0", "", "") or label_replace(min by (pod) (timestamp(b{{}})), "{SELECTOR_LABEL}", '
        '"1", "", "")'
    )
    found: list[tuple[str, str]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.extend((m.name, m.value) for m in node.matchers.matchers)

    promql_parser.walk(promql_parser.parse(query), visit)
    assert found == [("pod", 'x"y'), ("path", "/api/.*\\.json")]
    assert FreshnessCheck.of("a").query([]).startswith("label_replace(min (timestamp(a{})),")


def _row(selector: int, t: float, **labels: str) -> Sample:
    return Sample(labels={SELECTOR_LABEL: str(selector), **labels}, t=AT, value=t)


def test_a_series_is_stale_when_any_selector_it_reads_is_old_in_its_own_group_or_overall() -> None:
    check = FreshnessCheck(selectors=("a{}", "b{}"))
    samples = [Sample(labels={"__name__": "x", "pod": pod}, t=AT, value=1.0) for pod in ("p", "q", "r")]
    by = grouping_of(samples)
    assert by == ("pod",)
    rows = [_row(0, AT - 1, pod="p"), _row(0, AT - 30, pod="q"), _row(0, AT - 1, pod="r"),
            _row(1, AT - 2)]  # b has no pod label: its one group stands for every pod
    p, q, r = check.assess(samples, rows=rows, by=by, at=AT, staleness=10)
    assert p.stale == "" and r.stale == ""
    assert q.stale == "stale: a{} has a series whose newest sample is 30s old (spec.staleness 10s)"
    p, q, r = check.assess(samples, rows=[*rows[:3], _row(1, AT - 60)], by=by, at=AT, staleness=10)
    assert all("b{} has a series whose newest sample is 60s old" in s.stale for s in (p, r))
    assert "60s old" in q.stale  # the older of its two selectors
    (lone,) = check.assess(samples[:1], rows=rows[:1], by=by, at=AT, staleness=10)
    assert lone.stale == "stale: b{} has no sample within Prometheus' lookback"


def test_a_pod_missing_from_its_selectors_groups_is_judged_by_the_selectors_oldest() -> None:
    check = FreshnessCheck(selectors=("a{}",))
    sample = Sample(labels={"pod": "renamed"}, t=AT, value=1.0)
    (fresh,) = check.assess([sample], rows=[_row(0, AT - 1, pod="p")], by=("pod",), at=AT, staleness=10)
    (stale,) = check.assess([sample], rows=[_row(0, AT - 1, pod="p"), _row(0, AT - 20, pod="q")], by=("pod",),
                            at=AT, staleness=10)
    assert fresh.stale == "" and "20s old" in stale.stale


@pytest.mark.parametrize(("payload", "partial"), [
    ({"status": "success"}, None),
    ({"status": "success", "isPartial": False}, None),
    ({"status": "success", "isPartial": True}, "the answer says isPartial: true"),
    ({"status": "success", "warnings": ["No StoreAPIs matched for this query"]},
     "warnings: No StoreAPIs matched for this query"),
    ({"status": "success", "warnings": ['PromQL info: metric might not be a counter: "x"',
                                        "PromQL warning: bucket label \"le\" is missing"],
      "infos": ["PromQL info: anything"]}, None),
    ({"status": "success", "warnings": ["PromQL info: fine", "remote_read: store down"]},
     "warnings: remote_read: store down"),
])
def test_partial_answers_are_told_from_promql_annotations(payload: dict[str, object], partial: str | None) -> None:
    assert partial_reason(payload) == partial


@pytest.mark.parametrize(("url", "shown"), [
    ("http://prometheus:9090", "http://prometheus:9090"),
    ("https://ops:s3cret@prom.example:443/base?token=hunter2&org=1&flag",
     "https://***@prom.example:443/base?token=***&org=***&flag"),
    ("http://ops@prom/#frag", "http://***@prom/"),
])
def test_urls_in_messages_lose_userinfo_and_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown
