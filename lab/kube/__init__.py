"""An emulated Kubernetes API server for tests, the demo and benchmarks (built on KMock).

Placeholder docstring; see docs/emulator.md.
"""

from homeostat.lab.kube.cluster import EmulatedCluster

__all__ = ["EmulatedCluster"]
