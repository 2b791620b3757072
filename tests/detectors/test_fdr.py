"""Benjamini-Hochberg on known p-values and under the global null."""

from __future__ import annotations

import math

import numpy as np
import pytest

from homeostat.detectors.fdr import benjamini_hochberg, bh_adjusted


def test_textbook_example():
    # Benjamini & Hochberg (1995), section 3.2: 15 p-values, q = 0.05 rejects the 4 smallest
    p = [
        0.0001,
        0.0004,
        0.0019,
        0.0095,
        0.0201,
        0.0278,
        0.0298,
        0.0344,
        0.0459,
        0.3240,
        0.4262,
        0.5719,
        0.6528,
        0.7590,
        1.0000,
    ]
    assert benjamini_hochberg(p, 0.05).tolist() == [True] * 4 + [False] * 11


def test_step_up_rejects_below_the_largest_passing_rank():
    # m = 4, alpha = .05: bounds .0125 .025 .0375 .05; sorted .001 (ok) .03 (> .025) .032 (ok) .9
    # step-up: the largest passing rank is 3, so .03 is rejected too
    p = [0.032, 0.001, 0.03, 0.9]
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True, True, False]


def test_nan_is_never_rejected_and_order_is_kept():
    out = benjamini_hochberg([math.nan, 1e-9, 0.5], 0.05)
    assert out.tolist() == [False, True, False]


def test_adjusted_pvalues_agree_with_the_mask():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=480), rng.uniform(0, 1e-4, size=20)])
    for alpha in (0.01, 0.05, 0.1):
        assert np.array_equal(bh_adjusted(p) <= alpha, benjamini_hochberg(p, alpha))
    assert np.all(bh_adjusted(p) >= p)


def test_500_healthy_pods_do_not_yield_25_alarms():
    rng = np.random.default_rng(1)
    cycles, pods, alpha = 400, 500, 0.05
    naive = bh = any_rejection = 0
    for _ in range(cycles):
        p = rng.uniform(size=pods)
        naive += int((p <= alpha).sum())
        r = int(benjamini_hochberg(p, alpha).sum())
        bh += r
        any_rejection += r > 0
    assert naive / cycles == pytest.approx(25, rel=0.1)
    assert bh / cycles < 0.2
    assert any_rejection / cycles <= alpha + 0.03  # under the global null FDR = P(any rejection)


def test_dependent_variant_is_more_conservative():
    p = np.linspace(1e-4, 0.05, 50)
    assert benjamini_hochberg(p, 0.05, dependent=True).sum() <= benjamini_hochberg(p, 0.05).sum()


def test_bad_alpha():
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1], 1.5)
