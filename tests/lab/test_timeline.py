"""The demo's live timeline (homeostat.lab.timeline): one line per change, in order, once; and a recording.

The policy and Incident statuses are written through the emulated API exactly as the operator
writes them (status subresource shapes from api/status.py and api/incident.py), without an
operator: each step below is one thing the operator would have done.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest

from homeostat.api.crds import crd_manifests
from homeostat.api.times import format_time
from homeostat.lab.kube import EmulatedCluster
from homeostat.lab.timeline import Recording, Timeline

API = "homeostat.dev/v1alpha1"
NS = "shop"
T0 = 1_800_000_000.0  # the fault, on the timeline's (fake) clock
INCIDENT = "checkout-latency-20270115-080008"


@pytest.fixture
def kube() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(crds=crd_manifests(), controllers=False) as emulated:
        emulated.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        yield emulated


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def parts(line: str) -> tuple[str, str, str]:
    """(seconds since the fault, tag, text) of a plain line `HH:MM:SS  +12.3s  TAG        text`."""
    return line[9:17].strip(), line[19:28].strip(), line[30:]


def policy() -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "AnomalyPolicy",
        "metadata": {"name": "checkout-latency", "namespace": NS},
        "spec": {
            "target": {"kind": "Deployment", "name": "checkout"},
            "interval": "2s", "lookback": "20m", "evaluationDelay": "1s",
            "signals": [{"name": "latency-p99", "query": "p99", "direction": "up"},
                        {"name": "error-ratio", "query": "errors", "direction": "up"}],
            "confirm": {"k": 3, "n": 4},
            "playbook": {"steps": [{"action": "restart"}], "verify": "10s"},
        },
    }


def series(value: float | None, verdict: str, *, expected: float | None = 0.175, lower: float | None = 0.136,
           upper: float | None = 0.215, score: float | None = 0.2, reason: str = "", points: str = "0/4",
           labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"labels": labels or {}, "value": value, "expected": expected, "lower": lower, "upper": upper,
            "score": score, "verdict": verdict, "reason": reason, "anomalousPoints": points}


def signal(name: str, rows: list[dict[str, Any]], *, confirmed: bool = False) -> dict[str, Any]:
    verdict = "anomalous" if any(r["verdict"] == "anomalous" for r in rows) else rows[0]["verdict"]
    return {"name": name, "verdict": verdict, "confirmed": confirmed, "seriesCount": len(rows),
            "anomalousSeries": sum(r["verdict"] == "anomalous" for r in rows), "series": rows}


def with_status(obj: dict[str, Any], phase: str, at: float, signals: list[dict[str, Any]],
                summary: str, incident: str | None = None) -> dict[str, Any]:
    return {**obj, "status": {"phase": phase, "lastEvaluation": format_time(at), "signalsSummary": summary,
                              "activeIncident": incident, "conditions": [], "signals": signals}}


def errors_normal(value: float = 0.01) -> dict[str, Any]:
    return signal("error-ratio", [series(value, "normal", expected=0.01, lower=0.0, upper=0.03)])


def incident(entries: list[tuple[float, str, str, str]], actions: list[dict[str, Any]], phase: str,
             **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "Incident",
        "metadata": {"name": INCIDENT, "namespace": NS, "labels": {"homeostat.dev/policy": "checkout-latency"}},
        "spec": {
            "policy": "checkout-latency", "target": {"kind": "Deployment", "name": "checkout"},
            "detectedAt": format_time(T0 + 8), "anomalyStartedAt": format_time(T0 + 4), "signal": "latency-p99",
            "involved": [{"signal": "latency-p99", "labels": {}, "observed": 0.709, "expected": 0.1754,
                          "lower": 0.1364, "upper": 0.2145, "score": 0.996}],
        },
        "status": {"phase": phase, "phaseSince": format_time(entries[-1][0]), "actions": actions,
                   "timeline": [{"time": format_time(t), "event": e, "phase": p, "message": m}
                                for t, e, p, m in entries], **status},
    }


KEY = f"{INCIDENT}/0/1"


def test_the_timeline_tells_each_change_once_in_order_and_records_it(kube: EmulatedCluster) -> None:
    out = io.StringIO()
    clock = Clock(T0 - 20)
    timeline = Timeline(kube, namespace=NS, out=out, clock=clock)
    said: list[tuple[str, str, str]] = []

    def step(t: float, *objects: dict[str, Any]) -> list[tuple[str, str, str]]:
        for obj in objects:
            kube.apply(obj)
        clock.t = t
        lines = [parts(line) for line in timeline.poll_once()]
        said.extend(lines)
        return lines

    # the policy is applied, then the operator back-fills and learns
    assert step(T0 - 20, policy()) == [
        ("", "POLICY", "checkout-latency applied: Deployment checkout, signals latency-p99, error-ratio")]
    learning = [signal("latency-p99", [series(None, "learning", expected=None, lower=None, upper=None)]),
                signal("error-ratio", [series(None, "learning", expected=None, lower=None, upper=None)])]
    assert step(T0 - 18, with_status(policy(), "Learning", T0 - 18, learning, "2/2 learning")) == [
        ("", "POLICY", "checkout-latency Learning (2/2 learning)")]
    for i, t in enumerate((T0 - 16, T0 - 14, T0 - 12)):
        healthy = [signal("latency-p99", [series(0.17 + i * 0.001, "normal")]), errors_normal()]
        lines = step(t, with_status(policy(), "Healthy", t, healthy, "2/2 normal"))
        assert lines == ([("", "POLICY", "checkout-latency Learning -> Healthy (2/2 normal)")] if i == 0 else [])
    assert step(T0 - 11) == []  # nothing changed: nothing said

    # the operator's own Event on the policy
    kube.apply({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "checkout-latency.1", "namespace": NS},
                "involvedObject": {"apiVersion": API, "kind": "AnomalyPolicy", "name": "checkout-latency",
                                   "namespace": NS},
                "reason": "MonitorStarted", "message": "back-filled 600 points", "type": "Normal"})
    assert step(T0 - 10) == [("", "EVENT", "checkout-latency Normal MonitorStarted: back-filled 600 points")]

    # the fault: its mark starts the clock
    clock.t = T0
    assert parts(timeline.mark("FAULT: checkout latency x4 (a slow dependency)")) == (
        "+0.0s", "FAULT", "checkout latency x4 (a slow dependency)")

    # a first anomalous point, then the confirmation
    reason = "seasonal residual 96.7 MAE beyond normal 8.7 (upper)"
    first = [signal("latency-p99", [series(0.52, "anomalous", score=0.97, reason=reason, points="1/4")]),
             errors_normal()]
    assert step(T0 + 4.5, with_status(policy(), "Healthy", T0 + 4, first, "2/2 normal")) == [
        ("+4.5s", "ANOMALY", "checkout-latency latency-p99: observed 0.52 vs expected 0.175, band [0.136, 0.215], "
                             f"score 0.97, 1/4 points - {reason}")]
    confirmed = [signal("latency-p99", [series(0.709, "anomalous", expected=0.1754, lower=0.1364, upper=0.2145,
                                               score=0.996, reason=reason, points="3/4")], confirmed=True),
                 errors_normal()]
    assert step(T0 + 8.5, with_status(policy(), "Anomalous", T0 + 8, confirmed, "1/2 anomalous")) == [
        ("+8.5s", "DETECTED", "checkout-latency latency-p99 confirmed (3/4 points): value observed 0.709 vs "
                              f"expected 0.1754, band [0.1364, 0.2145], score 0.996 - {reason}"),
        ("+8.5s", "POLICY", "checkout-latency Healthy -> Anomalous (1/2 anomalous)")]

    # the incident: opened, then the restart intended and done (two writes of its status)
    detected = (T0 + 8, "Detected", "Detected", "anomaly confirmed on latency-p99")
    assert step(T0 + 9, incident([detected], [], "Detected")) == [
        ("+9.0s", "INCIDENT", f"{INCIDENT} opened on latency-p99: observed 0.709 vs expected 0.1754, "
                              "band [0.1364, 0.2145], score 0.996")]
    intended = (T0 + 8, "ActionIntended", "Remediating", f"step 1/1: restart ({KEY})")
    record = {"key": KEY, "step": 0, "action": "restart", "state": "Intended", "startedAt": format_time(T0 + 8)}
    assert step(T0 + 9.5, incident([detected, intended], [record], "Remediating")) == [
        ("+9.5s", "ACTION", "checkout-latency step 1 restart Intended")]
    done = (T0 + 9, "ActionSucceeded", "Verifying", "step 1 restart: restarted Deployment shop/checkout")
    record = {**record, "state": "Succeeded", "finishedAt": format_time(T0 + 9),
              "message": "restarted Deployment shop/checkout"}
    verifying = incident([detected, intended, done], [record], "Verifying", verifyUntil=format_time(T0 + 19),
                         lastAction="restart Succeeded")
    assert step(T0 + 10, verifying) == [
        ("+10.0s", "ACTION", "checkout-latency step 1 restart Succeeded: restarted Deployment shop/checkout")]
    assert step(T0 + 10.5, verifying) == []  # the same Incident read again

    # the fault clears, the signal comes back, verification passes
    clock.t = T0 + 12
    assert parts(timeline.mark("fault cleared")) == ("+12.0s", "CLEARED", "fault cleared")
    back = [signal("latency-p99", [series(0.18, "normal", points="2/4")]), errors_normal()]
    assert step(T0 + 14.5, with_status(policy(), "Healthy", T0 + 14, back, "2/2 normal", INCIDENT)) == [
        ("+14.5s", "NORMAL", "checkout-latency latency-p99 back to normal: observed 0.18 vs expected 0.175, "
                              "band [0.136, 0.215]"),
        ("+14.5s", "POLICY", "checkout-latency Anomalous -> Healthy (2/2 normal)")]
    resolved = (T0 + 20, "Resolved", "Resolved", "latency-p99 back within the band recorded at detection")
    assert step(T0 + 20.5, incident([detected, intended, done, resolved], [record], "Resolved",
                                    resolvedAt=format_time(T0 + 20))) == [
        ("+20.5s", "VERIFY", "checkout-latency Recovered: latency-p99 back within the band recorded at detection"),
        ("+20.5s", "RESOLVED", f"{INCIDENT} resolved; fault->detection 8s, fault->resolved 20s")]

    # the operator's Events about the incident are already told by its timeline
    kube.apply({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "checkout-latency.2", "namespace": NS},
                "involvedObject": {"apiVersion": API, "kind": "AnomalyPolicy", "name": "checkout-latency",
                                   "namespace": NS},
                "reason": "IncidentResolved", "message": f"{INCIDENT}: recovered", "type": "Normal"})
    timeline.stop()  # not started: just the final poll
    assert step(T0 + 22) == []

    # every line once, all of them kept (plain) for the report, the output is the same text
    assert len(timeline.lines) == len(set(timeline.lines)) == len(said) + 2  # + the two marks
    assert out.getvalue().splitlines() == timeline.lines
    assert "\x1b[" not in out.getvalue()  # a StringIO is no terminal

    # the recording: every evaluation of every series, the incident as last seen, the marks
    recording = timeline.snapshot()
    latency = recording.find_series(NS, "checkout-latency", "latency-p99", {})
    assert latency is not None
    assert [s.t for s in latency.samples] == [T0 - 18, T0 - 16, T0 - 14, T0 - 12, T0 + 4, T0 + 8, T0 + 14]
    assert [s.verdict for s in latency.samples][-3:] == ["anomalous", "anomalous", "normal"]
    assert latency.samples[5].value == 0.709 and latency.samples[5].upper == 0.2145
    assert latency.samples[5].reason == reason and latency.samples[5].score == 0.996
    assert len(recording.find_series(NS, "checkout-latency", "error-ratio").samples) == 7
    inc = recording.incidents[f"{NS}/{INCIDENT}"]
    assert inc.phase == "Resolved" and inc.ended == ("Resolved", T0 + 20)
    assert [a["state"] for a in inc.actions] == ["Succeeded"]
    assert [e["event"] for e in inc.timeline] == ["Detected", "ActionIntended", "ActionSucceeded", "Resolved"]
    assert [(m.kind, m.t) for m in recording.markers] == [("fault", T0), ("clear", T0 + 12)]
    ctx = recording.context(T0 + 8)
    assert ctx.fault is not None and ctx.fault.t == T0 and ctx.cleared is not None and ctx.cleared.t == T0 + 12
    assert [e["reason"] for e in recording.events] == ["MonitorStarted", "IncidentResolved"]
    assert recording.policies[f"{NS}/checkout-latency"].spec["interval"] == "2s"
    assert Recording.from_dict(recording.to_dict()) == recording


class FakeCluster:
    """A ClusterReader without a server: the objects are set by the test."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {"anomalypolicies": [], "incidents": []}
        self.posted: list[dict[str, Any]] = []

    def list(self, api_version: str, kind_or_plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.objects[kind_or_plural] if namespace in (None, o["metadata"]["namespace"])]

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return list(self.posted)


def test_escalation_inconclusive_held_and_reopened_are_told_once() -> None:
    fake = FakeCluster()
    clock = Clock(T0)
    timeline = Timeline(fake, out=io.StringIO(), clock=clock)  # all namespaces: policies named ns/name
    timeline.scenario("2. bad deploy", "errors after a rollout")
    timeline.mark("FAULT: error ratio 20%")
    detected = (T0 + 8, "Detected", "Detected", "anomaly confirmed on latency-p99")
    dry = (T0 + 8, "ActionDryRun", "Verifying", "step 1 restart: would restart Deployment shop/checkout")
    inconclusive = (T0 + 10, "Inconclusive", "Verifying", "cannot verify: latency-p99 has no data; waiting for data")
    not_recovered = (T0 + 16, "NotRecovered", "Remediating", "not recovered after step 1: latency-p99 0.7 > 0.21")
    held = (T0 + 16, "ActionHeld", "Remediating", "scale-out (step 2) held: cooldown 10m not passed")
    escalated = (T0 + 30, "Escalated", "Escalated", "the playbook's steps are exhausted and the anomaly persists")
    notified = (T0 + 30, "ActionSucceeded", "Escalated", "escalation notice: sent to 1 webhook")
    entries = [detected, dry, inconclusive, not_recovered, held, escalated, notified]
    actions = [{"key": KEY, "step": 0, "action": "restart", "state": "DryRun", "startedAt": format_time(T0 + 8),
                "message": "would restart Deployment shop/checkout", "dryRun": True},
               {"key": f"{INCIDENT}/escalation/1", "step": 2, "action": "notify", "state": "Succeeded",
                "startedAt": format_time(T0 + 30), "purpose": "Escalation", "message": "sent to 1 webhook"}]
    seen = []
    for upto in range(1, len(entries) + 1):
        fake.objects["incidents"] = [incident(entries[:upto], actions, entries[upto - 1][2])]
        clock.t = T0 + 40
        seen += [parts(line)[1:] for line in timeline.poll_once()]
        assert timeline.poll_once() == []
    reopened = (T0 + 50, "Reopened", "Detected", "latency-p99 anomalous again 20s after resolution")
    fake.objects["incidents"] = [incident([*entries, reopened], actions, "Detected", reopened=1)]
    seen += [parts(line)[1:] for line in timeline.poll_once()]
    policy_name = "shop/checkout-latency"
    assert seen == [
        ("DETECTED", f"{policy_name} latency-p99 confirmed: observed 0.709 vs expected 0.1754, "
                     "band [0.1364, 0.2145], score 0.996"),
        ("INCIDENT", f"{INCIDENT} opened on latency-p99: observed 0.709 vs expected 0.1754, "
                     "band [0.1364, 0.2145], score 0.996"),
        ("ACTION", f"{policy_name} step 1 restart DryRun: would restart Deployment shop/checkout"),
        ("VERIFY", f"{policy_name} Inconclusive: cannot verify: latency-p99 has no data; waiting for data"),
        ("VERIFY", f"{policy_name} NotRecovered: not recovered after step 1: latency-p99 0.7 > 0.21"),
        ("HELD", f"{policy_name} scale-out (step 2) held: cooldown 10m not passed"),
        ("ESCALATED", f"{INCIDENT} escalated: the playbook's steps are exhausted and the anomaly persists; "
                      "fault->detection 8s, fault->escalated 30s"),
        ("ACTION", f"{policy_name} notify (escalation) Succeeded: sent to 1 webhook"),
        ("REOPENED", f"{INCIDENT} latency-p99 anomalous again 20s after resolution"),
    ]
    recording = timeline.snapshot()
    assert recording.markers[0].kind == "scenario" and recording.markers[1].kind == "fault"
    assert recording.context(T0 + 8).scenario == recording.markers[0]


def test_marks_are_read_from_their_words() -> None:
    clock = Clock(T0)
    timeline = Timeline(FakeCluster(), out=io.StringIO(), clock=clock)
    timeline.mark("SCENARIO 1: latency")
    clock.t = T0 + 1
    timeline.mark("FAULT checkout latency x4")
    clock.t = T0 + 3
    timeline.mark("FAULT cleared: latency back to x1")
    timeline.mark("operator restarted")
    timeline.scenario("2: errors")
    timeline.mark("FAULT: dependency removed")
    timeline.mark("fault over")
    assert [(m.kind, m.t) for m in timeline.recording.markers] == [
        ("scenario", T0), ("fault", T0 + 1), ("clear", T0 + 3), ("note", T0 + 3), ("scenario", T0 + 3),
        ("fault", T0 + 3), ("clear", T0 + 3)]
    assert [parts(line) for line in timeline.lines] == [
        ("", "SCENARIO", "1: latency"), ("+0.0s", "FAULT", "checkout latency x4"),
        ("+2.0s", "CLEARED", "FAULT cleared: latency back to x1"), ("+2.0s", "NOTE", "operator restarted"),
        ("", "SCENARIO", "2: errors"),  # a new scenario stops the fault clock
        ("+0.0s", "FAULT", "dependency removed"), ("+0.0s", "CLEARED", "fault over")]
    with pytest.raises(ValueError, match="unknown marker kind"):
        timeline.mark("x", kind="oops")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = Terminal()
    timeline = Timeline(FakeCluster(), out=tty)
    timeline.mark("FAULT x4")
    assert "\x1b[1;31mFAULT" in tty.getvalue()
    assert "\x1b[" not in timeline.lines[0]  # the recording keeps plain text
    monkeypatch.setenv("NO_COLOR", "1")
    assert Timeline(FakeCluster(), out=Terminal()).colour is False


def test_the_background_thread_polls_until_stopped(kube: EmulatedCluster) -> None:
    out = io.StringIO()
    with Timeline(kube, namespace=NS, out=out, interval=0.05) as timeline:
        kube.apply(policy())
        deadline = time.monotonic() + 5
        while not any("applied" in line for line in timeline.lines) and time.monotonic() < deadline:
            time.sleep(0.02)
        healthy = [signal("latency-p99", [series(0.17, "normal")]), errors_normal()]
        kube.apply(with_status(policy(), "Healthy", time.time(), healthy, "2/2 normal"))
    # stopped: the final poll told the last change even if the thread had not seen it yet
    assert [parts(line)[1:] for line in timeline.lines] == [
        ("POLICY", "checkout-latency applied: Deployment checkout, signals latency-p99, error-ratio"),
        ("POLICY", "checkout-latency Healthy (2/2 normal)")]
    kube.apply(with_status(policy(), "Anomalous", time.time() + 5, healthy, "1/2 anomalous"))
    time.sleep(0.2)
    assert len(timeline.lines) == 2  # no thread left polling


def test_a_deleted_policy_is_told_and_a_new_one_of_the_same_name_starts_afresh() -> None:
    fake = FakeCluster()
    timeline = Timeline(fake, namespace=NS, out=io.StringIO(), clock=Clock(T0))
    confirmed = [signal("latency-p99", [series(0.7, "anomalous", points="3/4")], confirmed=True), errors_normal()]
    fake.objects["anomalypolicies"] = [with_status(policy(), "Anomalous", T0, confirmed, "1/2 anomalous")]
    assert [parts(line)[1] for line in timeline.poll_once()] == ["POLICY", "DETECTED", "POLICY"]
    fake.objects["anomalypolicies"] = []
    assert [parts(line)[1:] for line in timeline.poll_once()] == [("POLICY", "checkout-latency deleted")]
    fake.objects["anomalypolicies"] = [with_status(policy(), "Anomalous", T0 + 2, confirmed, "1/2 anomalous")]
    assert [parts(line)[1] for line in timeline.poll_once()] == ["POLICY", "DETECTED", "POLICY"]
