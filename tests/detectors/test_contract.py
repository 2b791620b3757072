"""The public detector contract, checked for every registered detector."""

from __future__ import annotations

import json
import math
import random

import pytest

from homeostat.detectors import Detector, Direction, Verdict, create, names


def _series(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [100.0 + 10.0 * math.sin(i / 20.0) + rng.gauss(0.0, 2.0) for i in range(n)]


ALL = names()
STEP = 300.0  # five-minute points: the seasonal detector warms up after two days


def test_names_include_default_and_robust_zscore():
    assert "default" in ALL
    assert "robust_zscore" in ALL


def test_unknown_name_lists_choices():
    with pytest.raises(KeyError, match="valid names"):
        create("no-such-detector")


@pytest.mark.parametrize("bad", [{"direction": "sideways"}, {"sensitivity": "extreme"}])
def test_bad_options_list_choices(bad):
    with pytest.raises(ValueError, match="valid"):
        create("default", **bad)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("direction", list(Direction))
def test_scores_in_unit_interval_and_no_alarm_while_learning(name, direction):
    det = create(name, direction=direction)
    assert isinstance(det, Detector)
    xs = _series(1500)
    xs[1000] += 80.0
    xs[1200] -= 80.0
    for i, x in enumerate(xs):
        v = det.update_one(STEP * i, x)
        assert isinstance(v, Verdict)
        assert 0.0 <= v.score <= 1.0
        if not v.warm:
            assert not v.alarm
            assert v.score == 0.0
    assert det.score_one(STEP * 1500, 100.0).warm


@pytest.mark.parametrize("name", ALL)
def test_score_one_does_not_mutate(name):
    det = create(name, direction="both")
    xs = _series(300)
    for i, x in enumerate(xs):
        det.update_one(STEP * i, x)
    before = json.dumps(det.export_state(), sort_keys=True)
    for probe in (0.0, 100.0, 1e6):
        det.score_one(STEP * 300, probe)
    assert json.dumps(det.export_state(), sort_keys=True) == before


@pytest.mark.parametrize("name", ALL)
def test_non_finite_never_alarms_nor_learned(name):
    det = create(name, direction="both")
    for i, x in enumerate(_series(300)):
        det.update_one(STEP * i, x)
    before = json.dumps(det.export_state(), sort_keys=True)
    for bad in (math.nan, math.inf, -math.inf):
        v = det.update_one(STEP * 300, bad)
        assert not v.alarm
        assert v.score == 0.0
    assert json.dumps(det.export_state(), sort_keys=True) == before


@pytest.mark.parametrize("name", ALL)
def test_state_round_trip_gives_identical_future_verdicts(name):
    xs = _series(2000, seed=7)
    xs[1500] += 50.0
    a = create(name, direction="both")
    for i, x in enumerate(xs[:1000]):
        a.update_one(STEP * i, x)
    state = json.loads(json.dumps(a.export_state()))
    b = create(name, direction="both")
    b.restore_state(state)
    for i, x in enumerate(xs[1000:], start=1000):
        va, vb = a.update_one(STEP * i, x), b.update_one(STEP * i, x)
        assert va == vb or (repr(va) == repr(vb))


@pytest.mark.parametrize("name", ALL)
def test_state_is_bounded(name):
    """Exported state stops growing once the detector's buffers are full; the default fits 4 KiB."""
    det = create(name, direction="both")
    sizes = {}
    for i, x in enumerate(_series(12000, seed=3)):
        det.update_one(STEP * i, x)
        if i + 1 in (8000, 12000):
            sizes[i + 1] = len(json.dumps(det.export_state()))
    assert abs(sizes[12000] - sizes[8000]) <= 64
    assert sizes[12000] <= (4096 if name in ("default", "adaptive", "multiscale") else 8192)
