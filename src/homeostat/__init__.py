"""Homeostat: a Kubernetes operator that keeps microservices healthy.

Data flows one way: policy (`homeostat.api`) -> queries and series (`homeostat.operator`)
-> detector and verdict (`homeostat.detectors`) -> incident, playbook, action and verification
(`homeostat.playbooks`). `homeostat.lab` is the embedded world for the demo, tests and benchmarks.
"""

__version__ = "0.1.0"
