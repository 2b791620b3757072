"""Streaming anomaly detectors for service metrics (stands alone: no Kubernetes, no Prometheus).

>>> from homeostat.detectors import create
>>> det = create("default", direction="up", sensitivity="medium")
>>> verdict = det.update_one(0.0, 1.0)
>>> verdict.warm
False
"""

from .base import BaseDetector, Detector, Direction, Verdict
from .registry import DEFAULT, create, names, register

__all__ = ["DEFAULT", "BaseDetector", "Detector", "Direction", "Verdict", "create", "names", "register"]
