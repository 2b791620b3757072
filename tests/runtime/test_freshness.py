"""The pieces behind fresh, complete data: URLs fit for messages. End to end:
tests/runtime/test_fresh_data.py."""

from __future__ import annotations

import pytest

from homeostat.operator.prometheus import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("http://prometheus:9090", "http://prometheus:9090"),
    ("https://ops:s3cret@prom.example:443/base?token=hunter2&org=1&flag",
     "https://***@prom.example:443/base?token=***&org=***&flag"),
    ("http://ops@prom/#frag", "http://***@prom/"),
])
def test_urls_in_messages_lose_userinfo_and_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown
