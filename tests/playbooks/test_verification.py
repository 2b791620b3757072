"""Verification arithmetic: which points count after an action, and what they say. Pure."""

from __future__ import annotations

from homeostat.api.incident import IncidentSpec, InvolvedSeries
from homeostat.api.policy import PolicySpec
from homeostat.playbooks.observations import Observations, SeriesNow, SignalNow
from homeostat.playbooks.verification import (
    Recovery,
    judge_verification,
    settled_points,
    verify_window,
)

LANDED = 1_800_000_000.0
SETTLING = 41.0  # rate(...[30s]) + evaluationDelay 10s + interval 1s
BAND = InvolvedSeries(signal="error-ratio", observed=0.3, expected=0.002, lower=0.0, upper=0.004431)


def policy(verify: str = "30s", k: int = 3) -> PolicySpec:
    return PolicySpec.model_validate({
        "target": {"kind": "Deployment", "name": "checkout"}, "interval": "1s",
        "signals": [{"name": "error-ratio", "query": "e"}, {"name": "latency", "query": "l"}],
        "confirm": {"k": k, "n": 5},
        "playbook": {"verify": verify, "steps": [{"action": "rollback"}, {"action": "restart"}]},
    })


def incident(*bands: InvolvedSeries) -> IncidentSpec:
    return IncidentSpec(policy="checkout", target={"kind": "Deployment", "name": "checkout"},  # type: ignore[arg-type]
                        detected_at="2027-01-15T08:00:00Z", signal="error-ratio", involved=list(bands or [BAND]))


def observe(points: list[tuple[float, float]], *, labels: dict[str, str] | None = None,
            more: tuple[SeriesNow, ...] = ()) -> Observations:
    """The error ratio's points (seconds after landing, value) as the operator saw them."""
    stamped = tuple((LANDED + t, v) for t, v in points)
    series = SeriesNow(labels=labels or {}, value=stamped[-1][1], points=stamped)
    signal = SignalNow(name="error-ratio", usable=True, series=(series, *more), settling=SETTLING)
    return Observations(at=stamped[-1][0], signals={"error-ratio": signal})


def test_only_points_whose_window_starts_after_the_landing_are_settled() -> None:
    series = observe([(39, 0.09), (40, 0.05), (41, 0.003), (42, 0.002)]).signals["error-ratio"].series[0]
    assert [t - LANDED for t, _ in settled_points(series, landed=LANDED, settling=SETTLING)] == [41, 42]


def test_the_users_rollback_pre_action_errors_in_the_window_are_not_held_against_it() -> None:
    # 31 s after the rollback the point still averages ~10 s of the bad release: not settled, not judged.
    early = judge_verification(incident(), observe([(29, 0.11), (30, 0.10), (31, 0.09248)]), policy(), landed=LANDED)
    assert early[0] == Recovery.PENDING and "no point yet" in early[1]
    settled = observe([(40, 0.01), (41, 0.002), (42, 0.0021), (43, 0.0019)])
    state, why = judge_verification(incident(), settled, policy(), landed=LANDED)
    assert state == Recovery.RECOVERED and "error-ratio back in the band" in why


def test_not_recovered_needs_k_settled_points_out_of_the_recorded_band() -> None:
    one = observe([(41, 0.2)])
    assert judge_verification(incident(), one, policy(), landed=LANDED)[0] == Recovery.PENDING
    two = observe([(41, 0.2), (42, 0.25)])
    state, why = judge_verification(incident(), two, policy(), landed=LANDED)
    assert state == Recovery.PENDING and "2 of 2 settled points; 3 make it not recovered" in why
    three = observe([(41, 0.2), (42, 0.25), (43, 0.3)])
    state, why = judge_verification(incident(), three, policy(), landed=LANDED)
    assert state == Recovery.NOT_RECOVERED and "0.3 > 0.004431 (3 of 3 settled points)" in why
    assert judge_verification(incident(), three, policy(k=1), landed=LANDED)[0] == Recovery.NOT_RECOVERED


def test_back_in_band_on_the_newest_settled_point_with_fewer_than_k_out_is_recovered() -> None:
    blip = observe([(41, 0.2), (42, 0.003)])
    assert judge_verification(incident(), blip, policy(), landed=LANDED)[0] == Recovery.RECOVERED
    # At the end of the window the newest settled point decides: a step that helped late still helped.
    back = observe([(41, 0.2), (42, 0.2), (43, 0.2), (44, 0.003)])
    assert judge_verification(incident(), back, policy(), landed=LANDED)[0] == Recovery.RECOVERED


def test_no_post_action_data_is_never_recovered() -> None:
    # kubernaut#722: success declared from no post-action data. Points only from before settling: pending.
    before = observe([(10, 0.001), (20, 0.001), (30, 0.001)])
    assert judge_verification(incident(), before, policy(), landed=LANDED)[0] == Recovery.PENDING
    gone = Observations(at=LANDED + 60, signals={"error-ratio": SignalNow(
        name="error-ratio", usable=False, verdict="no-data", reason="the query returned no series")})
    state, why = judge_verification(incident(), gone, policy(), landed=LANDED)
    assert state == Recovery.NO_DATA and "the query returned no series" in why


def test_replacement_series_are_judged_against_the_widest_band_recorded_for_their_signal() -> None:
    # A restart replaced the involved pods: their series are gone, the new pods' are judged instead.
    old = [InvolvedSeries(signal="error-ratio", labels={"pod": p}, lower=0.0, upper=u) for p, u in (("a", 0.004),
                                                                                                  ("b", 0.006))]
    healthy = observe([(41, 0.005), (42, 0.005), (43, 0.005)], labels={"pod": "c"})
    state, why = judge_verification(incident(*old), healthy, policy(), landed=LANDED)
    assert state == Recovery.RECOVERED
    still_bad = observe([(41, 0.3), (42, 0.3), (43, 0.3)], labels={"pod": "c"})
    state, why = judge_verification(incident(*old), still_bad, policy(), landed=LANDED)
    assert state == Recovery.NOT_RECOVERED and "{pod=c} (replacing the involved series)" in why


def test_an_involved_series_that_is_gone_while_another_answers_is_not_held_against_the_signal() -> None:
    old = [InvolvedSeries(signal="error-ratio", labels={"pod": p}, lower=0.0, upper=0.004) for p in ("a", "b")]
    only_b = observe([(41, 0.001), (42, 0.001), (43, 0.001)], labels={"pod": "b"})
    assert judge_verification(incident(*old), only_b, policy(), landed=LANDED)[0] == Recovery.RECOVERED


def test_the_verify_window_is_extended_to_the_longest_settling_time_of_the_incidents_signals() -> None:
    spec = policy(verify="30s")
    window = verify_window(spec.playbook.steps[0], spec, incident(), observe([(0, 0.3)]))
    assert (window.seconds, window.requested, window.extended_for) == (41.0, 30.0, "error-ratio")
    assert window.describe() == "41s (verify 30s extended to the settling time of error-ratio)"
    longer = policy(verify="2m")
    window = verify_window(longer.playbook.steps[0], longer, incident(), observe([(0, 0.3)]))
    assert (window.seconds, window.extended_for) == (120.0, None)


def test_a_move_within_min_change_of_the_recorded_expected_value_is_no_anomaly_after_the_action_either() -> None:
    # The policy says errors must at least double to count (minChange 1.0): 0.0035 against an expected
    # 0.002 is outside the recorded band (upper 0.003) but no anomaly, as it was none at detection.
    band = InvolvedSeries(signal="error-ratio", observed=0.3, expected=0.002, lower=0.0, upper=0.003)
    spec = PolicySpec.model_validate({
        "target": {"kind": "Deployment", "name": "checkout"}, "interval": "1s",
        "signals": [{"name": "error-ratio", "query": "e", "minChange": 1.0}],
        "playbook": {"steps": [{"action": "rollback"}]}})
    trivial = observe([(41, 0.0035), (42, 0.0035), (43, 0.0035)])
    assert judge_verification(incident(band), trivial, spec, landed=LANDED)[0] == Recovery.RECOVERED
    doubled = observe([(41, 0.0045), (42, 0.0045), (43, 0.0045)])
    assert judge_verification(incident(band), doubled, spec, landed=LANDED)[0] == Recovery.NOT_RECOVERED
