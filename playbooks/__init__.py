"""Remediation: what Homeostat does about an anomaly once the operator has confirmed it.

Each cycle the policy loop hands `runner.remediate` the policy, its target and its observations;
the runner reads the policy's Incidents from the API, asks the pure state machine (`machine`,
with the guardrails of `guards` and the verdicts of `verification`) for the next decision, and
carries it out (`transitions`, `acting`): Incidents written through `incidents`, actions of
`actions/` on the workload through `kube`, intent before action, outcome after. The package may
import `homeostat.api` and its own modules, and libraries (the Kubernetes client, httpx); never
`homeostat.operator` nor `homeostat.lab`. What it needs from the operator (the Incident store's
client, a leadership fence, metrics) is passed in as a `remediator.Remediator`, through protocols
that playbooks owns (`remediator.Fence`, `remediator.RemediationMetrics`).
"""
