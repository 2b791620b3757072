"""Adaptive and its drift-channel variant (the default): record-relative score, normal band, batch
equivalence, feedback, shifts."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from homeostat.detectors import create
from homeostat.detectors.adaptive import DRIFT_ALPHA, VARIANTS, Adaptive
from homeostat.detectors.batch import BatchAdaptive, DetectorBank, create_batch, update_series

STEP = 300.0


def _noise(n: int, seed: int = 0, level: float = 100.0, sd: float = 2.0) -> list[float]:
    rng = random.Random(seed)
    return [level + 10.0 * math.sin(i / 30.0) + rng.gauss(0.0, sd) for i in range(n)]


def _warm(det: Adaptive, xs: list[float]) -> None:
    for i, x in enumerate(xs):
        det.update_one(STEP * i, x)


def test_default_is_adaptive_with_the_drift_channel():
    det = create()
    assert isinstance(det, Adaptive) and det.drift_alpha == DRIFT_ALPHA
    assert create("adaptive").drift_alpha == 0.0  # type: ignore[attr-defined]


def _seasonal(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [100.0 + 20.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0.0, 2.0) for i in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_drift_channel_ranks_a_creeping_shift_and_leaves_alarms_and_band_alone(seed):
    """A +3 shift (about 2 MAE) that the seasonal forecaster does not follow: the drift mean breaks
    its record while no point does; alarm, band and expected are exactly those of ``adaptive``."""
    plain, drift = Adaptive(direction="up"), Adaptive(direction="up", drift_alpha=DRIFT_ALPHA)
    xs = _seasonal(288 * 5, seed)
    start = 288 * 4
    plain_scores, drift_scores = [], []
    for i, x in enumerate(xs):
        x += 3.0 if i >= start else 0.0
        a, b = plain.update_one(STEP * i, x), drift.update_one(STEP * i, x)
        assert (a.alarm, a.expected, a.lower, a.upper, a.warm) == (b.alarm, b.expected, b.lower, b.upper, b.warm)
        assert b.score >= a.score
        assert not (b.score > 0.5 and not b.alarm)
        if i >= start:
            plain_scores.append(a.score)
            drift_scores.append(b.score)
    assert drift.drift_record > drift.drift_floor  # the shift's mean set a record
    # the drift channel ranks the points of the shift above what the point channel gives them
    assert sum(d > p for d, p in zip(drift_scores, plain_scores, strict=True)) >= 20


def test_no_alarm_while_learning_even_for_huge_values():
    det = Adaptive(direction="both")
    for i in range(det.min_history):
        v = det.update_one(STEP * i, 1e9 if i % 7 == 0 else 1.0)
        assert not v.warm and not v.alarm and v.score == 0.0


def test_a_repeated_spike_of_the_same_size_rarely_fires_again():
    """Once such a spike is on record, its repeats are not news (a z-score chart fires on all)."""
    det, chart = Adaptive(direction="up"), create("ewma", direction="up")
    xs = _noise(3000)
    fired, charted = [], []
    for i, x in enumerate(xs):
        spike = i >= 1000 and i % 100 == 0
        v = det.update_one(STEP * i, x + (80.0 if spike else 0.0))
        c = chart.update_one(STEP * i, x + (80.0 if spike else 0.0))
        if spike:
            fired.append(v.alarm)
            charted.append(c.alarm)
    assert fired[0]
    assert sum(fired) <= 3  # of 20: only repeats that happen to beat the decayed record by the margin
    assert all(charted)


def test_a_bigger_spike_fires_again():
    det = Adaptive(direction="up")
    xs = _noise(2000)
    _warm(det, xs[:1000])
    assert det.update_one(STEP * 1000, xs[1000] + 60.0).alarm
    for i in range(1001, 1100):
        det.update_one(STEP * i, xs[i])
    assert det.update_one(STEP * 1100, xs[1100] + 200.0).alarm


def test_level_shift_alarms_until_the_deliberate_rebaselining_then_is_the_new_normal():
    det, twin = Adaptive(direction="up"), Adaptive(direction="up")
    xs = _noise(3000)
    _warm(det, xs[:1500])
    _warm(twin, xs[:1500])
    verdicts = [det.update_one(STEP * i, xs[i] + 100.0) for i in range(1500, 3000)]
    healthy = [twin.update_one(STEP * i, xs[i]).alarm for i in range(1500, 3000)]
    alarms = [v.alarm for v in verdicts]
    n = det.shift_after
    assert all(alarms[:n])  # every point of the shift ...
    assert not alarms[n]  # ... until the deliberate re-baselining
    assert verdicts[0].score > 0.5 and all(v.score < 0.5 for v in verdicts[1:])  # the score marks the onset
    # from then on the shifted series is judged like the unshifted one (the same rare single points)
    assert sum(a != h for a, h in zip(alarms[n + 1 :], healthy[n + 1 :], strict=True)) <= 2
    v = det.score_one(STEP * 3000, xs[-1] + 100.0)
    assert v.expected == pytest.approx(xs[-1] + 100.0, abs=25.0)


@pytest.mark.parametrize("step", [2.0, 30.0, 300.0])
def test_a_sustained_step_stays_out_of_the_band_of_before_at_any_sampling_interval(step):
    """The operator's case: 0.1 s latency with +-6 % noise stepped to 1.0 s, polled every 2 s to 5 min.

    Every point alarms against the band of before (not widened by the step) until the
    re-baselining; several points a seasonal slot (fast polling) do not let it follow the step.
    """
    det = Adaptive(direction="up")
    for i in range(600):
        det.update_one(step * i, 0.1 * (1 + 0.02 * ((i * 3) % 7 - 3)))
    before = det.score_one(step * 600, 1.0)
    assert before.upper < 0.12
    verdicts = [det.update_one(step * (600 + k), 1.0) for k in range(det.shift_after + 3)]
    for k, v in enumerate(verdicts[: det.shift_after]):
        assert v.alarm and v.upper < 0.12, f"point {k + 1}: {v}"
        # only the Huber-clipped error scale moves: at most 0.5 % a point, 1.005 ** 30 < 1.2
        assert v.upper - v.lower <= 1.2 * (before.upper - before.lower)
        assert v.expected == pytest.approx(before.expected, rel=0.01)
    assert not verdicts[det.shift_after].alarm
    assert verdicts[det.shift_after].expected == pytest.approx(1.0, rel=0.01)


def test_a_remediated_incident_is_not_learned_as_normal():
    """An excursion longer than ``spike_len`` that ends is not put on the band's record: it alarms again."""
    det = Adaptive(direction="up")
    xs = _noise(1400)
    _warm(det, xs[:1000])
    for attempt in range(2):
        start = 1000 + 200 * attempt
        incident = [det.update_one(STEP * i, xs[i] + 60.0).alarm for i in range(start, start + 6)]
        assert all(incident), f"incident {attempt + 1}: {incident}"
        for i in range(start + 6, start + 200):
            det.update_one(STEP * i, xs[i])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_score_above_one_half_is_always_an_alarm(variant):
    det = Adaptive(direction="both", **VARIANTS[variant])
    rng = random.Random(4)
    xs = _noise(4000, seed=4)
    for i, x in enumerate(xs):
        x += 80.0 if i % 211 == 0 else 0.0
        x += 50.0 if 2000 <= i < 2100 else 0.0
        v = det.update_one(STEP * i + rng.random(), x)
        assert not (v.score > 0.5 and not v.alarm), (i, v)


@pytest.mark.parametrize("direction", ["up", "down", "both"])
def test_direction_semantics(direction):
    det = Adaptive(direction=direction)
    _warm(det, _noise(1000))
    up = det.score_one(STEP * 1000, 300.0).alarm
    down = det.score_one(STEP * 1000, -100.0).alarm
    assert up == (direction in ("up", "both"))
    assert down == (direction in ("down", "both"))


def test_score_is_one_half_at_the_alarm_boundary():
    det = Adaptive(direction="up")
    _warm(det, _noise(1000))
    v = det.score_one(STEP * 1000, 0.0)
    boundary = v.upper
    assert det.score_one(STEP * 1000, boundary).score == pytest.approx(0.5, abs=1e-9)
    assert not det.score_one(STEP * 1000, boundary - 1e-6).alarm
    assert det.score_one(STEP * 1000, boundary + 1e-6).alarm


def test_mark_false_positive_silences_that_pattern():
    det = Adaptive(direction="up")
    xs = _noise(1200)
    _warm(det, xs[:1000])
    t, x = STEP * 1000, xs[1000] + 70.0
    assert det.score_one(t, x).alarm
    det.mark_false_positive(t, x)
    assert not det.score_one(t, x).alarm
    assert not det.score_one(t, x - 10.0).alarm  # nor anything smaller
    assert det.score_one(t, x + 400.0).alarm  # a much bigger one still does


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_state_stays_under_4_kib_and_round_trips_exactly(variant):
    det = Adaptive(direction="both", **VARIANTS[variant])
    xs = _noise(5000, seed=3)
    _warm(det, xs[:4000])
    state = det.export_state()
    assert len(json.dumps(state)) <= 4096
    twin = Adaptive()
    twin.restore_state(json.loads(json.dumps(state)))
    for i in range(4000, 5000):
        assert repr(det.update_one(STEP * i, xs[i])) == repr(twin.update_one(STEP * i, xs[i]))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("step", [30.0, 300.0])
@pytest.mark.parametrize("direction", ["up", "down", "both"])
def test_batch_equals_per_series(direction, step, variant):
    rng = np.random.default_rng(0)
    n, steps = 5, 1500
    xs = 100 + 10 * np.sin(np.arange(steps)[:, None] / 30.0 + np.arange(n)) + rng.normal(0, 2, (steps, n))
    xs[900:, 1] += 60.0
    xs[700, 2] = np.nan
    xs[800, 3] = 500.0
    xs[1000, 4] = -400.0
    xs[1100:1104, 0] += 50.0  # an excursion that ends, a spike, a shift that re-baselines
    params = VARIANTS[variant]
    batch = BatchAdaptive(n, direction, **params)
    singles = [Adaptive(direction, **params) for _ in range(n)]
    for k in range(steps):
        out = batch.update_many(step * k, xs[k])
        for i, det in enumerate(singles):
            v = det.update_one(step * k, float(xs[k, i]))
            assert v.alarm == bool(out.alarm[i]) and v.warm == bool(out.warm[i])
            for name in ("score", "expected", "lower", "upper", "pvalue"):
                a, b = getattr(v, name), float(getattr(out, name)[i])
                assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12), name
    for i, det in enumerate(singles):
        assert batch.export_series(i) == det.export_state()
    # and a series moves from per-series to batch
    other = BatchAdaptive(n, direction, **params)
    other.import_series(0, singles[0].export_state())
    assert other.export_series(0) == singles[0].export_state()


def test_create_batch_and_backfill():
    default = create_batch("default", 3)
    assert isinstance(default, BatchAdaptive) and default.proto.drift_alpha == DRIFT_ALPHA
    bank = create_batch("ewma", 2, direction="both")
    assert isinstance(bank, DetectorBank)
    out = bank.update_many(0.0, np.array([1.0, 2.0]))
    assert out.score.shape == (2,)
    cols = update_series(Adaptive(), np.arange(400) * STEP, np.asarray(_noise(400)))
    assert cols.warm.sum() == 400 - Adaptive().min_history
    assert not cols.alarm[: Adaptive().min_history].any()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_update_one_equals_score_then_learn(variant):
    """Adaptive.update_one shares the forecast between scoring and learning: same result."""
    a, b = Adaptive(direction="both", **VARIANTS[variant]), Adaptive(direction="both", **VARIANTS[variant])
    xs = _noise(1500, seed=9)
    xs[900] += 90.0
    xs[1000] = math.nan
    for i, x in enumerate(xs):
        va = a.update_one(STEP * i, x)
        vb = b.score_one(STEP * i, x)
        b.learn_one(STEP * i, x)
        assert repr(va) == repr(vb)
    assert a.export_state() == b.export_state()


def test_tail_probabilities_are_calibrated_enough_for_fdr():
    """500 healthy series: about 5 % of p-values below .05, BH at 5 % almost never fires."""
    from homeostat.detectors.fdr import benjamini_hochberg

    rng = np.random.default_rng(0)
    n, steps = 500, 1600
    batch = BatchAdaptive(n, "up")
    below, rejected, cycles = 0, 0, 0
    for k in range(steps):
        x = 100 + 10 * np.sin(2 * np.pi * k / 288 + np.arange(n)) + 3 * rng.normal(size=n)
        out = batch.update_many(STEP * k, x)
        if k > 1000:
            cycles += 1
            below += int((out.pvalue <= 0.05).sum())
            rejected += int(benjamini_hochberg(out.pvalue, 0.05).sum())
    assert 0.02 <= below / (cycles * n) <= 0.08
    assert rejected / cycles < 0.05


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_batch_feedback_matches_per_series(variant):
    xs = _noise(1100)
    det = Adaptive(direction="up", **VARIANTS[variant])
    batch = BatchAdaptive(2, "up", **VARIANTS[variant])
    for i, x in enumerate(xs[:1000]):
        det.update_one(STEP * i, x)
        batch.update_many(STEP * i, np.array([x, x]))
    t, x = STEP * 1000, xs[1000] + 70.0
    det.mark_false_positive(t, x)
    batch.mark_false_positive(0, t, x)
    assert batch.export_series(0) == det.export_state()
    out = batch.update_many(t, np.array([x, x]))
    assert out.alarm.tolist() == [False, True]


def test_time_going_back_neither_decays_nor_inflates_the_record():
    """A point stamped before the last learned one counts as no elapsed time (decay 1), and
    the clock then runs on from it."""
    det = create("adaptive", direction="both")
    assert isinstance(det, Adaptive)
    _warm(det, _noise(600))
    last = det.last_t
    assert det._record_decay(last - 3600.0) == 1.0
    assert det._record_decay(last) == 1.0
    assert det._record_decay(last + 3600.0) < 1.0
    det.update_one(last - 3600.0, 100.0)
    assert det.last_t == last - 3600.0
