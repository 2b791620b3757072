"""The demo's incident report (homeostat.lab.report): PNGs per incident, an index.html embedding them."""

from __future__ import annotations

import base64
import html
import json
import re
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from homeostat.api.times import format_time
from homeostat.lab.report import DPI, FIGSIZE, figure_size, main, write_report
from homeostat.lab.timeline import IncidentRecord, Marker, PolicyRecord, Recording, Sample, SeriesRecord, series_key

T0 = 1_800_000_000.0  # the first fault
T1 = T0 + 300  # the second
NS = "shop"


def _samples(start: float, end: float, fault: tuple[float, float], level: float) -> list[Sample]:
    samples = []
    t = start
    while t <= end:
        faulty = fault[0] + 3 <= t <= fault[1] + 1
        value = level * 4 if faulty else level * (1 + 0.03 * ((t // 2) % 3 - 1))
        samples.append(Sample(t=t, value=value, expected=level, lower=level * 0.8, upper=level * 1.2,
                              verdict="anomalous" if faulty else "normal", score=0.99 if faulty else 0.1,
                              reason="beyond the band" if faulty else ""))
        t += 2
    return samples


def _incident(name: str, policy: str, *, detected: float, entries: list[tuple[float, str, str, str]],
              actions: list[dict[str, Any]], phase: str, observed: float, level: float,
              band: tuple[float, float], **status: Any) -> IncidentRecord:
    spec = {"policy": policy, "target": {"kind": "Deployment", "name": policy.split("-")[0]},
            "detectedAt": format_time(detected), "anomalyStartedAt": format_time(detected - 4),
            "signal": "latency-p99",
            "involved": [{"signal": "latency-p99", "labels": {}, "observed": observed, "expected": level,
                          "lower": band[0], "upper": band[1], "score": 0.996}]}
    return IncidentRecord(namespace=NS, name=name, first_seen=detected + 0.5, spec=spec, status={
        "phase": phase, "actions": actions, **status,
        "timeline": [{"time": format_time(t), "event": e, "phase": p, "message": m} for t, e, p, m in entries]})


def _policy(name: str) -> PolicyRecord:
    spec = {"target": {"kind": "Deployment", "name": name.split("-")[0]}, "evaluationDelay": "1s",
            "signals": [{"name": "latency-p99", "query": f'p99{{service="{name}"}}', "direction": "up"}]}
    return PolicyRecord(namespace=NS, name=name, spec=spec, phases=[(T0 - 60, "Healthy")])


def make_recording() -> Recording:
    """Two scenarios: checkout's latency fault resolved by a restart; payments' escalated."""
    recording = Recording(started=T0 - 80)
    recording.markers = [
        Marker(t=T0 - 30, kind="scenario", text="1. slow dependency"),
        Marker(t=T0, kind="fault", text="checkout latency x4"),
        Marker(t=T0 + 12, kind="clear", text="fault cleared"),
        Marker(t=T1 - 30, kind="scenario", text="2. saturation"),
        Marker(t=T1, kind="fault", text="payments latency x4"),
        Marker(t=T1 + 200, kind="scenario", text="3. noisy but healthy"),
    ]
    faults = {"checkout-latency": (0.175, (T0, T0 + 12)), "payments-latency": (0.25, (T1, T1 + 1e9))}
    for policy, (level, fault) in faults.items():
        recording.policies[f"{NS}/{policy}"] = _policy(policy)
        key = series_key(NS, policy, "latency-p99", {})
        recording.series[key] = SeriesRecord(namespace=NS, policy=policy, signal="latency-p99", labels={},
                                             samples=_samples(T0 - 60, T1 + 60, fault, level))
    key = "checkout-latency-20270115-080008"
    restart = {"key": f"{key}/0/1", "step": 0, "action": "restart", "state": "Succeeded",
               "startedAt": format_time(T0 + 8), "finishedAt": format_time(T0 + 9),
               "message": "restarted Deployment shop/checkout"}
    recording.incidents[f"{NS}/{key}"] = _incident(
        key, "checkout-latency", detected=T0 + 8, observed=0.709, level=0.1754, band=(0.1364, 0.2145),
        phase="Resolved", actions=[restart],
        resolvedAt=format_time(T0 + 20),
        entries=[(T0 + 8, "Detected", "Detected", "anomaly confirmed on latency-p99"),
                 (T0 + 8, "ActionIntended", "Remediating", f"step 1/1: restart ({key}/0/1)"),
                 (T0 + 9, "ActionSucceeded", "Verifying", "step 1 restart: restarted Deployment shop/checkout"),
                 (T0 + 20, "Resolved", "Resolved", "latency-p99 back within the band recorded at detection")])
    key2 = "payments-latency-20270115-081008"
    scale = {"key": f"{key2}/0/1", "step": 0, "action": "scale-out", "state": "DryRun",
             "startedAt": format_time(T1 + 8), "finishedAt": format_time(T1 + 8), "dryRun": True,
             "message": "would scale 3 -> 4"}
    notify = {"key": f"{key2}/escalation/1", "step": 1, "action": "notify", "state": "Failed",
              "startedAt": format_time(T1 + 24), "finishedAt": format_time(T1 + 24), "purpose": "Escalation",
              "message": "webhook answered 500"}
    load = series_key(NS, "payments-latency", "load-per-pod", {"pod": "payments-1"})
    recording.series[load] = SeriesRecord(namespace=NS, policy="payments-latency", signal="load-per-pod",
                                          labels={"pod": "payments-1"},
                                          samples=_samples(T0 - 60, T1 + 60, (T1 + 10, T1 + 1e9), 20.0))
    payments = recording.incidents[f"{NS}/{key2}"] = _incident(
        key2, "payments-latency", detected=T1 + 8, observed=1.02, level=0.25, band=(0.2, 0.3), phase="Escalated",
        actions=[scale, notify], message="the playbook's steps are exhausted",
        entries=[(T1 + 8, "Detected", "Detected", "anomaly confirmed on latency-p99"),
                 (T1 + 8, "ActionDryRun", "Verifying", "step 1 scale-out: would scale 3 -> 4"),
                 (T1 + 16, "SeriesInvolved", "Verifying", "also confirmed: load-per-pod{pod=payments-1}"),
                 (T1 + 24, "NotRecovered", "Remediating", "not recovered after step 1"),
                 (T1 + 24, "Escalated", "Escalated", "the playbook's steps are exhausted"),
                 (T1 + 24, "ActionFailed", "Escalated", "escalation notice: webhook answered 500")])
    payments.spec["involved"].append({"signal": "load-per-pod", "labels": {"pod": "payments-1"}, "observed": 80.0,
                                      "expected": 20.0, "lower": 16.0, "upper": 24.0, "score": 0.9})
    recording.lines = ["08:00:00    +0.0s  FAULT      checkout latency x4"]
    return recording


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_report_has_one_plot_per_incident_embedded_with_its_numbers(tmp_path: Path) -> None:
    index = write_report(recording=make_recording(), out_dir=tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert [p.name for p in pngs] == ["01-checkout-latency-20270115-080008.png",
                                      "02-payments-latency-20270115-081008.png"]
    # one panel for checkout's latency; two for payments: its latency, and the load of a pod involved later
    assert png_size(pngs[0]) == (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))
    assert png_size(pngs[1]) == tuple(round(inches * DPI) for inches in figure_size(2))
    assert png_size(pngs[1])[1] > png_size(pngs[0])[1]
    for png in pngs:
        assert png.stat().st_size > 10_000  # a drawn plot, not an empty canvas
    page = index.read_text()
    for png in pngs:  # embedded, so the page stands alone
        assert f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" in page
    first, second = page.split("<h2 id='inc-2'>")
    # the first incident: observed vs expected, band, durations from the fault, the action, the outcome
    for text in ("1. slow dependency", "checkout latency x4", "observed 0.709 vs expected 0.1754",
                 "band [0.1364, 0.2145], score 0.996", "<th>fault -&gt; detection</th><td>8s</td>",
                 "<th>fault -&gt; first anomalous point</th><td>4s</td>",
                 "<th>detection -&gt; first action</th><td>0s</td>", "<th>fault -&gt; resolved</th><td>20s</td>",
                 "<th>detection -&gt; resolved</th><td>12s</td>", "<span class=Resolved>Resolved</span>",
                 "restart Succeeded", "restarted Deployment shop/checkout", "cleared at"):
        assert text in first, text
    # the second: escalated, a dry run and a failed notice, the fault never cleared
    for text in ("2. saturation", "<span class=Escalated>Escalated</span>",
                 "<th>fault -&gt; escalated</th><td>24s</td>", "scale-out DryRun", "notify Failed",
                 "webhook answered 500", "not cleared", "NotRecovered",
                 "also load-per-pod{pod=&quot;payments-1&quot;}</th><td>involved at +16s: observed 80 vs "
                 "expected 20, band [16, 24], score 0.9"):
        assert text in second, text
    # the summary, the markers and the live lines
    summary = page.split("<h2")[0]
    assert re.search(r"checkout-latency-20270115-080008</a></td><td>latency-p99</td><td class=num>8s</td>"
                     r"<td class=Resolved>Resolved</td><td class=num>20s</td><td>restart Succeeded</td>", summary)
    assert "Scenarios without an incident: 3. noisy but healthy." in page
    assert "08:00:00    +0.0s  FAULT      checkout latency x4" in page
    assert json.loads((tmp_path / "report" / "recording.json").read_text())["markers"][1]["text"] == \
        "checkout latency x4"


def test_a_run_without_incidents_says_so(tmp_path: Path) -> None:
    recording = make_recording()
    recording.incidents.clear()
    index = write_report(recording=recording, out_dir=tmp_path)
    page = index.read_text()
    assert "No incident was opened during this run." in page
    assert "<img" not in page and list(tmp_path.glob("*.png")) == []
    assert "0 incidents" in page
    assert "Scenarios without an incident: 1. slow dependency; 2. saturation; 3. noisy but healthy." in page


class FakePrometheus(BaseHTTPRequestHandler):
    queries: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        params = parse_qs(url.query)
        FakePrometheus.queries.append(params)
        start, end, step = (float(params[k][0]) for k in ("start", "end", "step"))
        values = []
        t = start
        while t <= end:
            values.append([t, "0.3"])
            t += step
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"service": "checkout"}, "values": values}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_raw_series_is_queried_over_the_plotted_window(tmp_path: Path, prometheus: str) -> None:
    FakePrometheus.queries.clear()
    page = write_report(recording=make_recording(), out_dir=tmp_path, prometheus_url=prometheus).read_text()
    assert [q["query"][0] for q in FakePrometheus.queries] == ['p99{service="checkout-latency"}',
                                                              'p99{service="payments-latency"}']
    assert html.escape('load-per-pod{pod="payments-1"}: raw series not drawn, the policy\'s query is unknown') in page
    first = FakePrometheus.queries[0]
    assert float(first["start"][0]) < T0 < T0 + 20 < float(first["end"][0])  # the fault and the resolution
    assert f"latency-p99: raw, 1 series from {prometheus} (shifted by evaluationDelay 1s)" in page


def test_an_unreachable_prometheus_is_noted_not_fatal(tmp_path: Path) -> None:
    page = write_report(recording=make_recording(), out_dir=tmp_path, prometheus_url="http://127.0.0.1:9").read_text()
    assert "latency-p99: raw series not drawn, Prometheus query failed" in page
    assert len(list(tmp_path.glob("*.png"))) == 2


def test_a_saved_recording_is_drawn_again_from_the_command_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    saved = make_recording().save(tmp_path / "recording.json")
    assert main([str(saved), str(tmp_path / "again")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "again" / "index.html")
    assert len(list((tmp_path / "again").glob("*.png"))) == 2
