"""The operator's runtime, the part Kopf runs: one loop per AnomalyPolicy that validates it, queries
Prometheus, judges each series and writes the policy's status, then hands the cycle's observations
to the incident runner. Kopf is confined to `handlers.py` (the daemon per policy), and `command.py`
(`homeostat run`) wires everything, playbooks included; `loop.py` runs one policy's life
(`validation.py`, `tenancy.py`, `prometheus.py`, Events, leadership), `monitor.py` its evaluation cycle (back-fill,
`freshness.py`, `judge.py` over `series.py`, `settling.py`), `policy_status.py` its status and
conditions, `metrics.py` what it exports. It may import `homeostat.api`, `homeostat.detectors` and
`homeostat.playbooks`; never `homeostat.lab`, and nothing of it is imported by `detectors/` or
`playbooks/`: what playbooks needs of it (a fence, metrics) it asks through its own protocols
(`playbooks/remediator.py`), which `leadership.py` and `metrics.py` fulfil.
"""
