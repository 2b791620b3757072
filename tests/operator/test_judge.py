"""Judging one signal's series in a cycle: no data is never anomalous, guards, k of n, limits."""

from __future__ import annotations

import math
from typing import Any

from homeostat.api.policy import GuardSpec, Signal
from homeostat.detectors import Verdict
from homeostat.operator.judge import backfill_series, judge_signal
from homeostat.operator.prometheus import Sample
from homeostat.operator.series import SeriesTable
from homeostat.operator.settling import QueryReach, Settling

SETTLING = Settling(signal="s", seconds=1.0, reach=QueryReach(0.0, True, ""), delay=0.0, interval=1.0)


class ThresholdDetector:
    """A transparent stand-in behind the detector seam: alarms above 10 once it saw 2 points."""

    def __init__(self) -> None:
        self.learned: list[float] = []

    def score_one(self, t: float, x: float) -> Verdict:
        warm = len(self.learned) >= 2
        return Verdict(score=min(x / 20, 1.0), expected=5.0, lower=0.0, upper=10.0,
                       alarm=warm and x > 10, reason="x > 10" if x > 10 else "ok", warm=warm)

    def learn_one(self, t: float, x: float) -> None:
        self.learned.append(x)

    def update_one(self, t: float, x: float) -> Verdict:
        verdict = self.score_one(t, x)
        self.learn_one(t, x)
        return verdict

    def export_state(self) -> dict[str, Any]:
        return {"learned": self.learned}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.learned = list(state["learned"])

    def mark_false_positive(self, t: float, x: float) -> None:
        pass


def _table(max_series: int = 10) -> SeriesTable:
    return SeriesTable(make_detector=ThresholdDetector, window_size=3, ttl=10.0, max_series=max_series)


def _judge(table: SeriesTable, samples: list[Sample] | None, now: float, signal: Signal | None = None,
           reason: str = "") -> Any:
    return judge_signal(signal=signal or Signal(name="s", query="q"), table=table, samples=samples,
                        no_data_reason=reason, now=now, staleness=3.0, confirm_k=2, settling=SETTLING)


def _sample(value: float, pod: str = "a", t: float = 0.0) -> Sample:
    return Sample(labels={"pod": pod}, t=t, value=value)


def test_learning_then_normal_then_confirmed_after_k_of_n() -> None:
    table = _table()
    verdicts = [_judge(table, [_sample(v, t=i)], now=i).status for i, v in enumerate([5, 5, 5, 50, 5, 50])]
    assert [v.verdict for v in verdicts] == ["learning", "learning", "normal", "anomalous", "normal", "anomalous"]
    assert [v.confirmed for v in verdicts] == [False, False, False, False, False, True]  # 2 of the last 3
    assert verdicts[-1].series[0].anomalous_points == "2/3"
    assert verdicts[-1].series[0].expected == 5.0 and verdicts[-1].series[0].upper == 10.0


class EdgeDetector(ThresholdDetector):
    """Alarms only above 30; the band ends at 10: points in (10, 30] are out of band without an alarm."""

    def score_one(self, t: float, x: float) -> Verdict:
        warm = len(self.learned) >= 2
        return Verdict(score=min(x / 60, 1.0), expected=5.0, lower=0.0, upper=10.0,
                       alarm=warm and x > 30, reason="x > 30" if x > 30 else "ok", warm=warm)


def test_points_out_of_band_confirm_only_with_an_alarm_among_them() -> None:
    table = SeriesTable(make_detector=EdgeDetector, window_size=3, ttl=10.0, max_series=10)
    edge = [_judge(table, [_sample(v, t=i)], now=i).status for i, v in enumerate([5, 5, 12, 12, 12])]
    assert [v.verdict for v in edge[2:]] == ["anomalous"] * 3  # shown as out of band ...
    assert not any(v.confirmed for v in edge)  # ... but a run at the band's edge is not an incident
    onset = [_judge(table, [_sample(v, t=i)], now=i).status for i, v in enumerate([40, 12], start=5)]
    assert [v.confirmed for v in onset] == [True, True]  # an alarm at the onset, then still out of band
    later = [_judge(table, [_sample(v, t=i)], now=i).status for i, v in enumerate([12, 12, 12], start=7)]
    assert [v.confirmed for v in later] == [True, False, False]  # the alarm has left the window of 3


def test_a_move_within_min_change_of_expected_is_normal_whatever_the_detector_says() -> None:
    table = _table()
    signal = Signal(name="s", query="q", min_change=2.0)  # expected is 5: normal within [-5, 15]
    small = [_judge(table, [_sample(v, t=i)], now=i, signal=signal).status for i, v in enumerate([5, 5, 12, 14, 12])]
    assert [v.verdict for v in small[2:]] == ["normal"] * 3 and not any(v.confirmed for v in small)
    large = [_judge(table, [_sample(v, t=i)], now=i, signal=signal).status for i, v in enumerate([40, 40], start=5)]
    assert [v.confirmed for v in large] == [False, True]
    guarded = Signal(name="s", query="q", min_change=2.0, guard=GuardSpec(above=11))  # guards are not affected
    assert _judge(_table(), [_sample(12)], now=0, signal=guarded).status.verdict == "anomalous"


def test_nan_and_inf_are_no_data_never_learned_and_break_confirmation() -> None:
    table = _table()
    for i, v in enumerate([5, 5, 50, 50]):
        _judge(table, [_sample(v, t=i)], now=i)
    state = next(iter(table))
    assert state.anomalous_count == 2
    for i, bad in enumerate([math.nan, math.inf, -math.inf]):
        status = _judge(table, [_sample(bad, t=10 + i)], now=10 + i).status
        assert status.verdict == "no-data" and not status.confirmed
        assert status.series[0].value is None  # JSON has no NaN
    assert state.anomalous_count == 0 and len(state.detector.learned) == 4  # type: ignore[attr-defined]


def test_query_failure_makes_every_series_no_data_with_the_reason() -> None:
    table = _table()
    for i in range(4):
        _judge(table, [_sample(50, "a", i), _sample(5, "b", i)], now=i)
    judged = _judge(table, None, now=5, reason="Prometheus at x is unreachable")
    assert judged.status.verdict == "no-data" and not judged.status.confirmed and not judged.confirmed
    assert {s.verdict for s in judged.status.series} == {"no-data"}
    assert all("unreachable" in s.reason for s in judged.status.series)


def test_guard_is_anomalous_regardless_of_baseline_even_while_learning() -> None:
    signal = Signal.model_validate({"name": "s", "query": "q", "guard": {"above": 0.5}})
    table = _table()
    status = _judge(table, [_sample(0.7)], now=0, signal=signal).status
    assert status.verdict == "anomalous" and status.series[0].reason == "guard: 0.7 > 0.5"


def test_vanished_series_is_stale_then_forgotten_after_ttl() -> None:
    table = _table()
    _judge(table, [_sample(5, "a"), _sample(5, "b")], now=0)
    assert [s.verdict for s in _judge(table, [_sample(5, "a")], now=1).status.series] == ["learning"]
    stale = _judge(table, [_sample(5, "a")], now=4).status
    assert any(
        s.labels == {"pod": "b"} and s.verdict == "no-data" and s.reason.startswith("stale") for s in stale.series
    )
    table.expire(now=11)
    assert len(table) == 1


def test_series_limit_is_reported_with_the_field_to_raise() -> None:
    table = _table(max_series=2)
    status = _judge(table, [_sample(5, p) for p in "abcd"], now=0).status
    assert status.series_count == 2 and "spec.maxSeriesPerSignal" in status.message


def test_backfill_learns_without_counting_towards_confirmation() -> None:
    table = _table()
    learned = backfill_series(table=table, labels={"pod": "a"}, points=[(0, 5), (1, 50), (2, 50), (3, math.nan)],
                              now=3)
    assert learned == 3
    state = next(iter(table))
    assert state.anomalous_count == 0 and len(state.detector.learned) == 3  # type: ignore[attr-defined]
