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


BACK_AT = 2000  # the point whose timestamp goes back
BACK_STEPS = 12  # by an hour of five-minute points, as NAB's machine_temperature file does


@pytest.mark.parametrize("name", ALL)
def test_time_going_back_is_taken_in_stream_order(name):
    """A point stamped before the one it follows is scored and learned like any other, in the
    order it comes (seasonal detectors file it by its own time of day; elapsed-time decay
    counts a step back as no time). Nothing raises, scores stay in [0, 1], the state stays
    strict JSON and restores to identical verdicts, the step back raises no alarm that the
    same values with time in order do not, and a later spike still alarms."""
    xs = _series(3000, seed=5)
    xs[2500] += 80.0
    times = [STEP * (i - BACK_STEPS if i >= BACK_AT else i) for i in range(len(xs))]
    det, ordered = create(name, direction="both"), create(name, direction="both")
    twin = None
    alarms, ordered_alarms = [], []
    for i, (t, x) in enumerate(zip(times, xs, strict=True)):
        if i == BACK_AT + 5:
            twin = create(name, direction="both")
            twin.restore_state(json.loads(json.dumps(det.export_state(), allow_nan=False)))
        v = det.update_one(t, x)
        assert 0.0 <= v.score <= 1.0
        assert not (v.alarm and not v.warm)
        if twin is not None:
            w = twin.update_one(t, x)
            assert v == w or repr(v) == repr(w)
        alarms += [i] if v.alarm else []
        ordered_alarms += [i] if ordered.update_one(STEP * i, x).alarm else []
    assert 2500 in alarms
    assert {i for i in alarms if i >= BACK_AT} <= set(ordered_alarms)
    json.dumps(det.export_state(), allow_nan=False)
