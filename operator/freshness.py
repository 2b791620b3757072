"""How old is the data behind a signal's answer? `spec.staleness` applied to the samples' own times.

An instant query answers with the evaluation time, whatever the age of the data: Prometheus
takes the newest sample of each series within its lookback (5 minutes), so a frozen exporter,
a stalled recording rule or a dead remote-write pipeline still answers, with old data. And
`timestamp()` of a computed expression (`sum(rate(x[1m]))`) is the evaluation time too; only
`timestamp(<plain selector>)` gives the samples' own time.

So for each distinct vector selector that a signal's query reads (those in range selectors and
subqueries too, without their range, offset or `@`), one extra instant query per signal and
cycle asks for the oldest of the newest samples of that selector's series, grouped by the
labels of the signal's answer:

    label_replace(min by (pod) (timestamp(sel0)), "__homeostat_selector", "0", "", "")
    or label_replace(min by (pod) (timestamp(sel1)), "__homeostat_selector", "1", "", "")

A series of the answer is stale when, for any selector, that time (its own group's when the
selector carries the answer's labels, the selector's oldest otherwise) is older than
`spec.staleness` at the evaluation time, or when the selector has no sample at all within the
lookback. The oldest, not the newest: a sum over pods of which one pod's exporter froze is
computed from that frozen pod's data too (or, once its samples leave the range window, without
it: a drop that is no drop). docs/safety.md says what this does and does not cover.
"""

from __future__ import annotations

import datetime  # noqa: F401 - promql_parser (pyo3) needs the datetime C API loaded before it
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import promql_parser

from homeostat.operator import promql
from homeostat.operator.prometheus import Sample

SELECTOR_LABEL = "__homeostat_selector"
"""Which selector a row of the freshness answer is about (its index in `FreshnessCheck.selectors`)."""

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def _matchers(matchers: Sequence[promql_parser.Matcher]) -> str:
    # json.dumps quotes as PromQL wants: `"` and `\` escaped, the rest Go-compatible.
    return ",".join(f"{m.name}{_OPS[str(m.op)]}{json.dumps(m.value)}" for m in matchers)


def render_selector(node: promql_parser.VectorSelector) -> str:
    """The plain selector: metric name and matchers, no offset, no `@`."""
    groups = [group for group in (node.matchers.matchers, *node.matchers.or_matchers) if group]
    return f"{node.name or ''}{{{' or '.join(_matchers(group) for group in groups)}}}"


def selectors_of(query: str) -> tuple[str, ...]:
    """The distinct plain vector selectors that `query` reads, in order; ValueError if it does not parse."""
    found: dict[str, None] = {}

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.setdefault(render_selector(node), None)

    promql_parser.walk(promql.parse(query), visit)
    return tuple(found)


def grouping_of(samples: Sequence[Sample]) -> tuple[str, ...]:
    """The label names of the answer (`__name__` and names PromQL cannot group by left out)."""
    names = {name for sample in samples for name in sample.labels}
    return tuple(sorted(name for name in names if name != "__name__" and _LABEL_NAME.match(name)))


@dataclass(frozen=True, slots=True)
class FreshnessCheck:
    """The freshness of one signal's data."""

    selectors: tuple[str, ...]

    @classmethod
    def of(cls, query: str) -> FreshnessCheck:
        return cls(selectors=selectors_of(query))

    def query(self, by: Sequence[str]) -> str:
        """The one instant query that answers for every selector, grouped `by` the answer's labels."""
        grouping = f" by ({', '.join(by)})" if by else ""
        return " or ".join(
            f'label_replace(min{grouping} (timestamp({selector})), "{SELECTOR_LABEL}", "{index}", "", "")'
            for index, selector in enumerate(self.selectors)
        )

    def assess(
        self, samples: Sequence[Sample], *, rows: Sequence[Sample], by: Sequence[str], at: float, staleness: float
    ) -> list[Sample]:
        """`samples`, each stale one with its reason in `stale`; `rows` is the answer to `query(by)`."""
        newest: list[dict[tuple[str, ...], float]] = [{} for _ in self.selectors]
        for row in rows:
            index = row.labels.get(SELECTOR_LABEL, "")
            if index.isdigit() and int(index) < len(newest) and math.isfinite(row.value):
                newest[int(index)][_key(row.labels, by)] = row.value
        assessed = []
        for sample in samples:
            key = _key(sample.labels, by)
            worst: tuple[float, str] | None = None
            for selector, groups in zip(self.selectors, newest, strict=True):
                t = groups.get(key, min(groups.values(), default=None))  # its own group, else the selector's oldest
                age = math.inf if t is None else at - t
                if age > staleness and (worst is None or age > worst[0]):
                    worst = (age, selector)
            if worst is not None:
                sample = replace(sample, stale=_reason(*worst, staleness))
            assessed.append(sample)
        return assessed


def _key(labels: Mapping[str, str], by: Sequence[str]) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in by)


def _reason(age: float, selector: str, staleness: float) -> str:
    if math.isinf(age):
        return f"stale: {selector} has no sample within Prometheus' lookback"
    return f"stale: {selector} has a series whose newest sample is {age:.0f}s old (spec.staleness {staleness:g}s)"
