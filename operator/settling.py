"""How long after an action a signal's data can reflect it: the signal's *settling time*.

A point of `sum(rate(errors[30s]))` evaluated at time t is computed from samples in
`[t - 30s, t]`; the operator evaluates `evaluationDelay` behind now and samples arrive one
scrape after they happen. So a point can say nothing about an action that landed at `a` until

    settling = reach(query) + evaluationDelay + interval

has passed: `reach` is how far back from its evaluation time the query reads (the longest range
window, a subquery's range on top of its inner expression's reach, plus any `offset`). Judging a
point before that judges a window that is partly pre-action data (docs/playbooks.md).

The query is read with `promql-parser` (the Rust parser of GreptimeDB, compiled for Python),
parsed once for this and the freshness check (`promql.py`).
A name that follows the recording-rule convention `level:metric:operations` has its window out
of sight in a rule file; when the operations end in a duration (`job:errors:rate5m`) that is
taken, otherwise `RULE_WINDOW`; both get `RULE_EVALUATION` added for the rule's own cycle.

    >>> query_reach('sum(rate(http_requests_total{code=~"5.."}[30s])) / sum(rate(http_requests_total[30s]))')
    QueryReach(seconds=30.0, visible=True, basis='rate(http_requests_total{code=~"5.."}[30s])')
    >>> query_reach("max_over_time(rate(x[1m])[10m:30s] offset 1m)").seconds
    720.0
    >>> query_reach("job:http_errors:ratio_rate5m").seconds
    360.0
"""

from __future__ import annotations

import datetime  # before promql_parser: its Rust side needs the datetime C API loaded first
import re
from dataclasses import dataclass
from typing import Any

import promql_parser

from homeostat.api.durations import format_duration, parse_duration
from homeostat.api.policy import PolicySpec, Signal
from homeostat.operator import promql

RULE_WINDOW = 300.0
"""Assumed window of a recording rule whose name does not give one (Prometheus' usual `[5m]`)."""
RULE_EVALUATION = 60.0
"""A recorded series moves once per rule evaluation: Prometheus' default `evaluation_interval`."""
_RULE_NAME_WINDOW = re.compile(r"(\d+(?:ms|s|m|h|d|w|y))$")


@dataclass(frozen=True)
class QueryReach:
    """How far back from its evaluation time a query reads, and what decided it."""

    seconds: float
    visible: bool  # False: the window is hidden in a recording rule (or the query could not be read)
    basis: str  # the part of the query that sets the reach, or why a default was taken


@dataclass(frozen=True)
class Settling:
    """A signal's settling time and its parts, for status, conditions and verification."""

    signal: str
    seconds: float
    reach: QueryReach
    delay: float
    interval: float

    def explain(self) -> str:
        """`41s = window 30s (rate(...[30s])) + evaluationDelay 10s + interval 1s`."""
        what = "window" if self.reach.visible else "assumed window"
        return (f"{format_duration(self.seconds)} = {what} {format_duration(self.reach.seconds)} "
                f"({self.reach.basis}) + evaluationDelay {format_duration(self.delay)} "
                f"+ interval {format_duration(self.interval)}")


def _seconds(value: datetime.timedelta | None) -> float:
    return max(0.0, value.total_seconds()) if value is not None else 0.0


def _rule_window(name: str) -> QueryReach:
    operations = name.rsplit(":", 1)[-1]
    match = _RULE_NAME_WINDOW.search(operations)
    if match:
        window = parse_duration(match.group(1))
        return QueryReach(window + RULE_EVALUATION, False,
                          f"recording rule {name}: window {match.group(1)} from its name "
                          f"+ {format_duration(RULE_EVALUATION)} rule evaluation")
    return QueryReach(RULE_WINDOW + RULE_EVALUATION, False,
                      f"recording rule {name}: no window visible, assumed {format_duration(RULE_WINDOW)} "
                      f"+ {format_duration(RULE_EVALUATION)} rule evaluation")


def _text(node: Any) -> str:
    return str(node).replace("{}", "")  # the parser prints `x{}` for a bare name


def _children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return [node.expr]
    return []


def _reach(node: Any) -> QueryReach:
    """The reach of one node of the AST: the largest of its children's where it has several."""
    if isinstance(node, promql_parser.MatrixSelector):
        selector = node.vector_selector
        seconds = _seconds(node.range) + _seconds(selector.offset)
        inner = _reach(selector)  # a recording rule under a range reads further still
        if not inner.visible:
            return QueryReach(seconds + inner.seconds, False, inner.basis)
        return QueryReach(seconds, True, _text(node))
    if isinstance(node, promql_parser.VectorSelector):
        name = node.name or ""
        if ":" in name:
            found = _rule_window(name)
            return QueryReach(found.seconds + _seconds(node.offset), False, found.basis)
        offset = _seconds(node.offset)
        return QueryReach(offset, True, _text(node) if offset else "")
    if isinstance(node, promql_parser.SubqueryExpr):
        inner = _reach(node.expr)
        seconds = _seconds(node.range) + _seconds(node.offset) + inner.seconds
        return QueryReach(seconds, inner.visible, _text(node) if inner.visible else inner.basis)
    best = QueryReach(0.0, True, "")
    for child in _children(node):
        found = _reach(child)
        if found.seconds > best.seconds or (found.seconds == best.seconds and best.visible and not found.visible):
            best = found
            if isinstance(node, promql_parser.Call) and isinstance(child, promql_parser.MatrixSelector) \
                    and found.visible:
                best = QueryReach(found.seconds, True, _text(node))  # `rate(x[30s])`, not `x[30s]`
    return best


def query_reach(query: str) -> QueryReach:
    """How far back from its evaluation time `query` reads (see the module docstring)."""
    try:
        tree = promql.parse(query)
    except ValueError as exc:
        # Prometheus itself is the judge of the PromQL (a rejected query is reported as such);
        # extensions the parser does not know (MetricsQL) still get a conservative reach.
        return QueryReach(RULE_WINDOW, False, f"query not readable here ({exc}); assumed "
                                              f"{format_duration(RULE_WINDOW)}")
    found = _reach(tree)
    if found.visible and not found.basis:
        return QueryReach(found.seconds, True, "no range window: the newest sample")
    return found


def settling_time(signal: Signal, *, spec: PolicySpec) -> Settling:
    """The settling time of one signal of a policy."""
    reach = query_reach(signal.query)
    delay = parse_duration(spec.evaluation_delay)
    interval = spec.interval_seconds
    return Settling(signal=signal.name, seconds=reach.seconds + delay + interval, reach=reach, delay=delay,
                    interval=interval)


def settling_times(spec: PolicySpec) -> dict[str, Settling]:
    """Every signal's settling time, by signal name."""
    return {signal.name: settling_time(signal, spec=spec) for signal in spec.signals}


def verify_shortfalls(spec: PolicySpec, settling: dict[str, Settling]) -> list[str]:
    """Every `verify` of the playbook shorter than the longest settling time, as a message naming
    the field, the signal and its query: verification is extended to the settling time."""
    if not spec.playbook.steps or not settling:
        return []
    longest = max(settling.values(), key=lambda s: s.seconds)
    query = next(s.query for s in spec.signals if s.name == longest.signal)
    fields: list[tuple[str, str]] = []
    if any(step.verify is None for step in spec.playbook.steps):
        fields.append(("spec.playbook.verify", spec.playbook.verify))
    fields += [(f"spec.playbook.steps[{i}].verify", step.verify) for i, step in enumerate(spec.playbook.steps)
               if step.verify is not None]
    found = []
    for field, verify in fields:
        if parse_duration(verify) < longest.seconds:
            found.append(f"{field} {verify} is shorter than the settling time of signal {longest.signal!r} "
                         f"({longest.explain()}; query `{query}`): verification waits "
                         f"{format_duration(longest.seconds)} after each action instead; raise {field} "
                         "or shorten the query's window to silence this")
    return found
