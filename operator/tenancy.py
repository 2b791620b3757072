"""What a policy may read from a Prometheus that several teams share: its own namespace only.

With `--require-namespace-matcher`, every selector of every signal query must carry the matcher
`namespace="<the policy's namespace>"`: prom-label-proxy's convention, which a tenant can check
by reading its own query. A query that selects anything else (no namespace matcher, a regex, or
another namespace) is refused with the signal, the selector and the fix, before it is sent.
Off by default: a single-team cluster's policies often read cluster-wide series on purpose.
"""

from __future__ import annotations

import datetime  # noqa: F401 - promql_parser (pyo3) needs the datetime C API loaded before it

import promql_parser

from homeostat.api.policy import PolicySpec
from homeostat.operator.freshness import render_selector
from homeostat.operator.validation import SpecProblem


def unconfined_selectors(query: str, *, namespace: str) -> list[str]:
    """The selectors of `query` that could read series outside `namespace`, as written back."""
    found: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            groups = [group for group in (node.matchers.matchers, *node.matchers.or_matchers) if group] or [[]]
            if not all(_confined(group, namespace) for group in groups):
                found.append(render_selector(node))

    promql_parser.walk(promql_parser.parse(query), visit)
    return list(dict.fromkeys(found))


def _confined(matchers: list[promql_parser.Matcher], namespace: str) -> bool:
    return any(m.name == "namespace" and str(m.op) == "MatchOp.Equal" and m.value == namespace for m in matchers)


def namespace_problems(spec: PolicySpec, *, namespace: str) -> list[SpecProblem]:
    """One problem per signal whose query could read another namespace's series."""
    problems = []
    for index, signal in enumerate(spec.signals):
        try:
            loose = unconfined_selectors(signal.query, namespace=namespace)
        except ValueError:
            continue  # not PromQL: Prometheus rejects it, and the policy's status says so
        if loose:
            problems.append(SpecProblem(
                f"spec.signals[{index}].query",
                f"signal {signal.name!r} reads {', '.join(loose)} without namespace={namespace!r}; this operator "
                f"confines queries to the policy's namespace (--require-namespace-matcher): add "
                f'namespace="{namespace}" to every selector',
            ))
    return problems
