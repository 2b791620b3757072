"""The pieces behind fresh, complete data: what makes an answer partial, and URLs fit for
messages. End to end: tests/runtime/test_fresh_data.py."""

from __future__ import annotations

import pytest

from homeostat.operator.prometheus import partial_reason, redact_url


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
