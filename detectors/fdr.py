"""False-discovery-rate control across many series (Benjamini-Hochberg).

Idea
----
Judging 500 pods independently at a 5 % per-series false-alarm level yields about 25 false
alarms per cycle. Benjamini-Hochberg bounds instead the *expected fraction* of false alarms
among the alarms raised in one cycle: sort the ``m`` tail probabilities ``p_(1) <= ... <=
p_(m)``, find the largest ``k`` with ``p_(k) <= k * alpha / m`` and reject the ``k`` smallest.
The procedure is valid for independent or positively dependent p-values (PRDS, the usual
case for pods of one service); ``dependent=True`` applies the Benjamini-Yekutieli correction
(divide ``alpha`` by the harmonic number of ``m``) valid under any dependence.

Detectors expose per-point tail probabilities in ``Verdict.pvalue`` (``nan`` where a detector
has no calibrated null model; nan counts as 1, never rejected).

References
----------
Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
powerful approach to multiple testing. JRSS B 57(1).
Benjamini, Y. and Yekutieli, D. (2001). The control of the false discovery rate in multiple
testing under dependency. Ann. Statist. 29(4).

Example
-------
>>> from homeostat.detectors.fdr import benjamini_hochberg
>>> benjamini_hochberg([0.01, 0.04, 0.03, 0.005, 0.5], alpha=0.05).tolist()
[True, True, True, True, False]
>>> benjamini_hochberg([0.01, 0.2, 0.3], alpha=0.05).tolist()
[True, False, False]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["benjamini_hochberg", "bh_adjusted"]


def _clean(pvalues: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    p = np.where(np.isfinite(p), p, 1.0)
    return np.clip(p, 0.0, 1.0)


def bh_adjusted(
    pvalues: Sequence[float] | npt.NDArray[np.float64], *, dependent: bool = False
) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (q-values): reject where ``adjusted <= alpha``."""
    p = _clean(pvalues)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    if dependent:
        ranked *= float(np.sum(1.0 / np.arange(1, m + 1)))
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return out


def benjamini_hochberg(
    pvalues: Sequence[float] | npt.NDArray[np.float64], alpha: float = 0.05, *, dependent: bool = False
) -> npt.NDArray[np.bool_]:
    """Which hypotheses to reject at false discovery rate ``alpha`` (a boolean mask in input order).

    ``pvalues`` may contain nan (treated as 1: no evidence). ``dependent=True`` uses the
    Benjamini-Yekutieli correction, valid under arbitrary dependence.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    p = _clean(pvalues)
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    a = alpha / float(np.sum(1.0 / np.arange(1, m + 1))) if dependent else alpha
    order = np.argsort(p, kind="stable")
    below = p[order] <= a * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if below.any():
        k = int(np.nonzero(below)[0].max())
        reject[order[: k + 1]] = True
    return reject
