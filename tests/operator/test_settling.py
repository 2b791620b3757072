"""The settling time of a signal: how far back its query reads, plus the evaluation lag and one interval."""

from __future__ import annotations

from typing import Any

import pytest

from homeostat.api.policy import PolicySpec
from homeostat.operator.settling import RULE_EVALUATION, RULE_WINDOW, query_reach, settling_time, verify_shortfalls

ERRORS_30S = 'sum(rate(http_requests_total{code=~"5.."}[30s])) / sum(rate(http_requests_total[30s]))'


@pytest.mark.parametrize(("query", "seconds"), [
    (ERRORS_30S, 30),
    ("histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[2m])))", 120),
    ("sum(increase(http_requests_total[5m]))", 300),
    ("avg_over_time(queue_depth[2m])", 120),
    ("max_over_time(up[30s])", 30),
    ("sum(rate(a[1m])) + sum(rate(b[5m]))", 300),  # the longest window of the expression
    ("rate(a[1m] offset 2m)", 180),  # offset moves the window further back
    ("queue_depth offset 5m", 300),
    ("max_over_time(rate(a[1m])[10m:30s])", 660),  # a subquery's range on top of its inner window
    ("max_over_time(rate(a[1m])[10m:30s] offset 1m)", 720),
    ("(sum(rate(a{code=~'5..'}[4s])) or vector(0)) / sum(rate(a[4s]))", 4),
    ("queue_depth", 0),  # a gauge: the newest sample
    ("-sum(rate(a[2m]))", 120),
    ("topk(3, rate(a[1m]))", 60),
])
def test_visible_windows(query: str, seconds: float) -> None:
    reach = query_reach(query)
    assert reach.visible and reach.seconds == seconds, reach


def test_the_basis_names_the_part_that_sets_the_reach() -> None:
    assert query_reach(ERRORS_30S).basis == 'rate(http_requests_total{code=~"5.."}[30s])'
    assert query_reach("sum(rate(a[1m])) + sum(increase(b[5m]))").basis == "increase(b[5m])"
    assert query_reach("max_over_time(rate(a[1m])[10m:30s])").basis == "rate(a[1m])[10m:30s]"


def test_recording_rules_hide_their_window_so_it_is_read_from_the_name_or_assumed() -> None:
    named = query_reach("job:http_errors:ratio_rate5m")
    assert not named.visible and named.seconds == 300 + RULE_EVALUATION and "from its name" in named.basis
    assumed = query_reach("sum(job:http_requests:sum)")
    assert not assumed.visible and assumed.seconds == RULE_WINDOW + RULE_EVALUATION and "assumed" in assumed.basis
    ranged = query_reach("rate(job:http_requests:sum[2m])")  # a range over a rule reads both windows
    assert ranged.seconds == 120 + RULE_WINDOW + RULE_EVALUATION


def test_a_query_the_parser_cannot_read_gets_a_conservative_default() -> None:
    reach = query_reach("rate(a[5m)")
    assert not reach.visible and reach.seconds == RULE_WINDOW and "not readable" in reach.basis


def spec(query: str, **fields: Any) -> PolicySpec:
    playbook = fields.pop("playbook", {"verify": "30s", "steps": [{"action": "rollback"}]})
    return PolicySpec.model_validate({"target": {"kind": "Deployment", "name": "web"},
                                      "signals": [{"name": "error-ratio", "query": query}],
                                      "playbook": playbook, **fields})


def test_settling_is_the_window_plus_the_evaluation_delay_plus_one_interval() -> None:
    settling = settling_time(spec(ERRORS_30S, interval="1s").signals[0], spec=spec(ERRORS_30S, interval="1s"))
    assert settling.seconds == 30 + 10 + 1  # evaluationDelay defaults to 10s
    assert settling.explain().startswith("41s = window 30s (rate(")
    slow = spec("sum(rate(a[5m]))", interval="30s", evaluationDelay="15s")
    assert settling_time(slow.signals[0], spec=slow).seconds == 300 + 15 + 30


def test_a_verify_shorter_than_the_settling_time_is_named_with_its_field_and_query() -> None:
    policy = spec(ERRORS_30S, interval="1s")
    settling = {"error-ratio": settling_time(policy.signals[0], spec=policy)}
    (message,) = verify_shortfalls(policy, settling)
    assert message.startswith("spec.playbook.verify 30s is shorter than the settling time of signal 'error-ratio'")
    assert ERRORS_30S in message and "waits 41s" in message
    per_step = spec(ERRORS_30S, interval="1s", playbook={"verify": "2m", "steps": [
        {"action": "rollback", "verify": "20s"}, {"action": "restart"}]})
    (message,) = verify_shortfalls(per_step, settling)
    assert message.startswith("spec.playbook.steps[0].verify 20s")
    long_enough = spec(ERRORS_30S, interval="1s", playbook={"verify": "2m", "steps": [{"action": "rollback"}]})
    assert verify_shortfalls(long_enough, settling) == []
