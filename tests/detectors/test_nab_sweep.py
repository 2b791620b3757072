"""The threshold sweep: hand-computed candidates, NAB's tie rule, and agreement with brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from homeostat.detectors.evaluation.scoring import PROFILES, ScorableSeries, prepare_series, score_at_threshold
from homeostat.detectors.evaluation.sweep import NOTHING_DETECTED, sweep_corpus

MINUTE_US = 60_000_000
STANDARD = PROFILES[0]


def series(scores: np.ndarray, windows: list[tuple[int, int]], path: str = "f.csv") -> ScorableSeries:
    times = np.arange(scores.size, dtype=np.int64) * MINUTE_US
    spans = [(a * MINUTE_US, b * MINUTE_US) for a, b in windows]
    return prepare_series(path=path, times_us=times, scores=scores, windows=spans, probation_fraction=0.15).series


def tiny() -> np.ndarray:
    """100 points, window on rows 40..49; an FP after the window scores highest, then the TP, then an FP before."""
    scores = np.zeros(100)
    scores[60] = 0.95  # 11 rows after the window: y = 11/9, 0.11 * tanh(-55/18) = -0.1095131
    scores[45] = 0.9  # in the window: y = -0.5, tanh(1.25) / tanh(2.5) = 0.8597926
    scores[20] = 0.6  # before any window: -0.11
    return scores


def test_sweep_candidates_by_hand() -> None:
    sweep = sweep_corpus(series=[series(tiny(), [(40, 49)])], profile=STANDARD)
    assert sweep.thresholds.tolist() == [NOTHING_DETECTED, 0.95, 0.9, 0.6, 0.0]
    assert sweep.raw[:4] == pytest.approx([-1.0, -1.1095131, 0.7502795, 0.6402795], abs=1e-7)
    # Threshold 0: every point after probation is a detection; the window's best is row 40 (1.0).
    before = 25 * -0.11  # rows 15..39
    after = sum(0.11 * math.tanh(-2.5 * (i - 49) / 9) if (i - 49) / 9 <= 3 else -0.11 for i in range(50, 100))
    assert sweep.raw[4] == pytest.approx(1.0 + before + after, abs=1e-9)
    threshold, best = sweep.best()
    assert threshold == 0.9
    assert best == pytest.approx(0.7502795, abs=1e-7)


def test_ties_go_to_the_highest_threshold() -> None:
    scores = tiny()
    scores[47] = 0.8  # a later point of an already detected window adds nothing
    sweep = sweep_corpus(series=[series(scores, [(40, 49)])], profile=STANDARD)
    at = dict(zip(sweep.thresholds.tolist(), sweep.raw.tolist(), strict=True))
    assert at[0.8] == at[0.9]
    assert sweep.best()[0] == 0.9


def test_each_profile_can_pick_its_own_threshold() -> None:
    # A window caught late only by many FPs: worth it when misses cost 2, not when FPs cost 0.22.
    scores = np.zeros(100)
    scores[[20, 21, 22, 23, 24, 25]] = 0.7  # six FPs before the window: 6 * -0.11 or 6 * -0.22
    scores[48] = 0.7  # y = -0.2: tanh(0.5) / tanh(2.5) = 0.4683
    scored = [series(scores, [(40, 49)])]
    picks = {p.name: sweep_corpus(series=scored, profile=p).best()[0] for p in PROFILES}
    # standard: -0.66 + 0.4683 + 1 = +0.81 gain; low FP: -1.32 + 1.4683 = +0.15; both detect.
    assert picks == {"standard": 0.7, "reward_low_FP_rate": 0.7, "reward_low_FN_rate": 0.7}
    scores[[26, 27]] = 0.7  # eight FPs: low FP loses (-1.76 + 1.4683 < 0), the others still gain
    scored = [series(scores, [(40, 49)])]
    picks = {p.name: sweep_corpus(series=scored, profile=p).best()[0] for p in PROFILES}
    assert picks == {"standard": 0.7, "reward_low_FP_rate": NOTHING_DETECTED, "reward_low_FN_rate": 0.7}


def test_sweep_agrees_with_scoring_each_threshold_directly() -> None:
    rng = np.random.default_rng(7)
    corpus = [
        series(np.round(rng.random(300), 2), [(30, 40), (120, 150), (260, 262)], "a.csv"),
        series(np.round(rng.random(250) ** 3, 3), [], "b.csv"),
        series(np.round(rng.random(6000), 2), [(100, 400), (2000, 2300), (5990, 5999)], "c.csv"),
        series(np.zeros(50), [(20, 30)], "d.csv"),
    ]
    for profile in PROFILES:
        sweep = sweep_corpus(series=corpus, profile=profile)
        assert np.all(np.diff(sweep.thresholds) < 0)
        for threshold, raw in zip(sweep.thresholds, sweep.raw, strict=True):
            direct = sum(score_at_threshold(series=s, profile=profile, threshold=threshold).raw for s in corpus)
            assert raw == pytest.approx(direct, abs=1e-9)


def test_empty_corpus_has_one_candidate() -> None:
    sweep = sweep_corpus(series=[], profile=STANDARD)
    assert sweep.best() == (NOTHING_DETECTED, 0.0)
