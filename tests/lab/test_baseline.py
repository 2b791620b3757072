"""The static-threshold baseline counts failures the way Flagger and Argo Rollouts do."""

from __future__ import annotations

import math

from homeostat.lab.baseline import ARGO_ROLLOUTS, FLAGGER, StaticAnalysis

GOOD = {"request-success-rate": 99.9, "request-duration": 80.0}


def test_flagger_rolls_back_at_the_fifth_failed_check_counted_not_consecutive() -> None:
    analysis = StaticAnalysis(profile=FLAGGER)
    slow = {**GOOD, "request-duration": 640.0}
    decisions = [analysis.measure(v) for v in (slow, GOOD, slow, slow, GOOD, slow)]
    assert decisions == [False] * 6 and analysis.failed_checks == 4
    assert analysis.measure(slow) is True and analysis.failed_checks == 5


def test_flagger_counts_a_missing_value_as_a_failed_check() -> None:
    analysis = StaticAnalysis(profile=FLAGGER)
    for _ in range(4):
        assert not analysis.measure({"request-success-rate": None, "request-duration": 80.0})
    assert analysis.measure({"request-success-rate": math.nan, "request-duration": 80.0})


def test_thresholds_are_inclusive_at_the_documented_limits() -> None:
    analysis = StaticAnalysis(profile=FLAGGER)
    for _ in range(10):
        assert not analysis.measure({"request-success-rate": 99.0, "request-duration": 500.0})
    assert analysis.failed_checks == 0


def test_argo_fails_at_the_first_failed_measurement_and_tolerates_four_errors() -> None:
    analysis = StaticAnalysis(profile=ARGO_ROLLOUTS)
    assert not analysis.measure({"success-rate": 0.97})
    assert [analysis.measure({"success-rate": None}) for _ in range(5)] == [False] * 4 + [True]
    fresh = StaticAnalysis(profile=ARGO_ROLLOUTS)
    assert fresh.measure({"success-rate": 0.94})


def test_queries_name_the_service_and_use_the_documented_windows() -> None:
    queries = [c.promql(namespace="shop", service="cart") for c in FLAGGER.checks]
    assert all('namespace="shop", service="cart"' in q and "[1m]" in q for q in queries)
    assert "$" not in "".join(queries)
    (argo,) = ARGO_ROLLOUTS.checks
    assert "[5m]" in argo.promql(namespace="shop", service="cart") and ARGO_ROLLOUTS.interval == 300
