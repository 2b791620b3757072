"""The baseline Homeostat is measured against: a static-threshold analysis in the style of
Flagger and Argo Rollouts.

Both projects judge a release by querying Prometheus every `interval` for a few fixed
metrics, calling a measurement *failed* when it leaves a fixed range (or returns nothing), and
rolling back once the failures reach a limit. Their documented defaults, which the presets
below copy:

- Flagger (`analysis.interval: 1m`, `threshold: 5`, builtin checks `request-success-rate`
  `thresholdRange.min: 99` (percent, non-5xx) and `request-duration` `thresholdRange.max: 500`
  (milliseconds, P99), each over a 1m window). A query with no value fails the check, and the
  canary is rolled back when the failed checks reach `threshold`.
- Argo Rollouts (the `success-rate` AnalysisTemplate of its documentation:
  `successCondition: result[0] >= 0.95` over a 5m `irate`, `interval: 5m`; `failureLimit`
  defaults to 0, so the first failed measurement fails the analysis; a query error is not a
  failure but counts toward `consecutiveErrorLimit`, default 4).

The analysis here is the pure bookkeeping (no Prometheus, no Kubernetes): the caller queries,
hands each check's value to `measure`, and acts when it returns True. Its one remedy is the
one those projects have: roll back.

Example:

>>> analysis = StaticAnalysis(profile=FLAGGER)
>>> ok = {"request-success-rate": 99.8, "request-duration": 120.0}
>>> bad = {"request-success-rate": 91.0, "request-duration": 120.0}
>>> [analysis.measure(values) for values in (ok, bad, bad, ok, bad, bad)]
[False, False, False, False, False, False]
>>> analysis.measure(bad), analysis.failed_checks
(True, 5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class MetricCheck:
    """One metric of the analysis: a PromQL query for one value and its accepted range.

    `query` holds `$namespace` and `$service` placeholders, filled by `promql`.
    """

    name: str
    query: str
    minimum: float | None = None
    maximum: float | None = None

    def promql(self, *, namespace: str, service: str) -> str:
        return self.query.replace("$namespace", namespace).replace("$service", service)

    def passes(self, value: float) -> bool:
        if self.minimum is not None and value < self.minimum:
            return False
        return not (self.maximum is not None and value > self.maximum)


@dataclass(frozen=True, kw_only=True)
class AnalysisProfile:
    """How often to measure, what, and how many failures end the analysis."""

    name: str
    interval: float  # seconds between measurements
    checks: tuple[MetricCheck, ...]
    act_at_failures: int  # failed measurements at which the analysis fails and rolls back
    no_data_fails: bool  # Flagger: no value is a failed check; Argo: an error (see module doc)
    error_limit: int = 0  # consecutive errors that fail the analysis (Argo: 4); 0 = not counted


def _success_percent(window: str) -> str:
    return (f'100 * sum(rate(http_requests_total{{namespace="$namespace", service="$service", code!~"5.."}}[{window}]))'
            f' / sum(rate(http_requests_total{{namespace="$namespace", service="$service"}}[{window}]))')


def _p99_milliseconds(window: str) -> str:
    return (f'1000 * histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket'
            f'{{namespace="$namespace", service="$service"}}[{window}])))')


def _success_ratio(window: str) -> str:
    return (f'sum(irate(http_requests_total{{namespace="$namespace", service="$service", code!~"5.."}}[{window}]))'
            f' / sum(irate(http_requests_total{{namespace="$namespace", service="$service"}}[{window}]))')


FLAGGER = AnalysisProfile(
    name="flagger",
    interval=60.0,
    checks=(
        MetricCheck(name="request-success-rate", query=_success_percent("1m"), minimum=99.0),
        MetricCheck(name="request-duration", query=_p99_milliseconds("1m"), maximum=500.0),
    ),
    act_at_failures=5,
    no_data_fails=True,
)

ARGO_ROLLOUTS = AnalysisProfile(
    name="argo-rollouts",
    interval=300.0,
    checks=(MetricCheck(name="success-rate", query=_success_ratio("5m"), minimum=0.95),),
    act_at_failures=1,
    no_data_fails=False,
    error_limit=4,
)

PROFILES = {profile.name: profile for profile in (FLAGGER, ARGO_ROLLOUTS)}


@dataclass(kw_only=True)
class StaticAnalysis:
    """The running tally of one analysis; `measure` once per interval."""

    profile: AnalysisProfile
    failed_checks: int = 0
    consecutive_errors: int = 0
    measurements: int = 0
    history: list[tuple[int, bool]] = field(default_factory=list)  # (measurement, failed)

    def measure(self, values: dict[str, float | None]) -> bool:
        """Record one measurement of every check; True when the analysis has now failed.

        `values` maps each check's name to its value, None (or NaN) when the query returned
        nothing or failed.
        """
        self.measurements += 1
        failed = False
        errored = False
        for check in self.profile.checks:
            value = values.get(check.name)
            if value is None or math.isnan(value):
                if self.profile.no_data_fails:
                    failed = True
                else:
                    errored = True
            elif not check.passes(value):
                failed = True
        self.consecutive_errors = self.consecutive_errors + 1 if errored else 0
        if failed:
            self.failed_checks += 1
        self.history.append((self.measurements, failed))
        too_many_errors = self.profile.error_limit > 0 and self.consecutive_errors > self.profile.error_limit
        return self.failed_checks >= self.profile.act_at_failures or too_many_errors
