"""The demo's live timeline: what the operator does, one readable line per change, and a recording.

`Timeline` polls the API server (the emulated one, or anything with the two read calls of
`ClusterReader`) and prints one line for each thing that changed since the last poll:

    20:51:08    +0.0s  FAULT      checkout latency x4 (a slow dependency)
    20:51:11    +3.0s  ANOMALY    checkout-latency latency-p99: observed 0.5167 vs expected 0.1818, band [...
    20:51:15    +7.0s  DETECTED   checkout-latency latency-p99 confirmed: observed 0.7126 vs expected 0.1818, ...
    20:51:15    +7.0s  INCIDENT   checkout-latency-20261123-205114 opened on latency-p99: observed 0.7126 vs ...
    20:51:15    +7.0s  ACTION     checkout-latency step 1 restart Intended
    20:51:15    +7.5s  POLICY     checkout-latency Healthy -> Anomalous (1/2 anomalous)
    20:51:15    +7.5s  ACTION     checkout-latency step 1 restart Succeeded: restarted Deployment shop/checkout ...
    20:51:25   +17.0s  VERIFY     checkout-latency NotRecovered: not recovered after step 1: latency-p99 still ...
    20:51:35   +27.1s  ESCALATED  checkout-latency-20261123-205114 escalated: ...; fault->detection 6s, ...

The first column is the wall clock, the second the seconds since the current scenario's fault
(blank before the fault). Lines come from state changes only (a phase that changed, a signal
that turned anomalous, a new Incident timeline entry, a new Event), never from re-printing a
state, so no line is printed twice. Colours are used only when `out` is a TTY (and `NO_COLOR`
is unset).

What each line is made from:

- `SCENARIO`, `FAULT`, `CLEARED`, `NOTE`: the caller's `mark()` (and `scenario()`, `fault()`,
  `fault_cleared()`); a fault starts the `+s` clock of the current scenario.
- `POLICY`: a policy seen for the first time, its `status.phase` changing, or it disappearing.
- `ANOMALY`: a signal's verdict turning `anomalous` before confirmation (its most anomalous
  series: observed vs expected, band, score, `k/n` points, the detector's reason); `NORMAL`
  when it turns normal again without having been confirmed; `NO DATA` / `DATA` likewise.
- `DETECTED`: a signal's `confirmed` turning true (from the policy status, or from a new
  Incident naming it, whichever is seen first); `NORMAL ... back to normal` when it turns false
  again with a normal verdict (a confirmed signal with an unconfirmed anomalous point or no
  data is not back yet).
- `INCIDENT`, `ACTION`, `HELD`, `VERIFY`, `RESOLVED`, `ESCALATED`, `FAILED`, `REOPENED`,
  `INVOLVED`, `HOLD`, `FEEDBACK`: the Incident's `status.timeline` entries, each once
  (`VERIFY Recovered` precedes a `RESOLVED` that ends a verification window).
- `EVENT`: Events on the policy that the lines above do not already tell (`MonitorStarted`,
  `PrometheusUnavailable`, `TargetNotFound`, `InvalidSpec`, `RemediationError`, ...).

It also records, for the report (`homeostat.lab.report.write_report`): every sample of every
series it saw in a policy status (time, value, expected, lower, upper, verdict, score,
reason), each policy's spec and phase changes, every Incident's latest spec and status (its
timeline and action records), the Events about policies and Incidents, the markers, and the
printed lines. A `Recording` is plain data and round-trips through JSON (`save`/`load`).

Public API::

    timeline = Timeline(cluster, namespace="shop", out=sys.stdout)   # cluster: a ClusterReader
    timeline.start()                         # polls every `interval` s in a daemon thread
    timeline.scenario("latency", "a slow dependency")   # or mark("SCENARIO ...")
    timeline.mark("FAULT checkout latency x4")          # a FAULT... mark starts the fault clock
    timeline.mark("fault cleared")                      # "fault cleared/over/ended": the fault is over
    timeline.mark("operator restarted")                 # anything else: a note
    # explicit forms: mark(text, kind="scenario"|"fault"|"clear"|"note"), fault(text), fault_cleared()
    timeline.stop()                          # joins the thread, then polls once more
    recording = timeline.snapshot()          # a deep copy, safe to use while polling goes on

or drive it yourself: `timeline.poll_once()` returns the plain lines it printed. `Timeline` is
also a context manager (start on enter, stop on exit).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TextIO

logger = logging.getLogger(__name__)

API = "homeostat.dev/v1alpha1"
POLICIES = "anomalypolicies"
INCIDENTS = "incidents"
MAX_TEXT = 300

# The Events on a policy that the status and the Incidents' timelines already tell.
_TOLD_ELSEWHERE = ("Incident", "Action", "AnomalyConfirmed", "AnomalyCleared", "HoldReleased", "FalsePositive",
                   "NotRecovered", "Inconclusive")


Objects = list[dict[str, Any]]


class ClusterReader(Protocol):
    """What the timeline reads: `EmulatedCluster` fits; so does a thin adapter over a real client."""

    def list(self, api_version: str, kind_or_plural: str, namespace: str | None = None) -> Objects:
        """Every object of a resource, in one namespace or (None) in all."""
        ...

    def events(self, namespace: str | None = None) -> Objects:
        """core/v1 (and events.k8s.io/v1) Events, oldest first."""
        ...


# --- the recording -------------------------------------------------------------------------------


@dataclass
class Sample:
    """One evaluation of one series, as the policy status showed it (`t`: its `lastEvaluation`)."""

    t: float
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    verdict: str
    score: float | None = None
    reason: str = ""


@dataclass
class SeriesRecord:
    namespace: str
    policy: str
    signal: str
    labels: dict[str, str]
    samples: list[Sample] = field(default_factory=list)


@dataclass
class Marker:
    """A caller's mark: kind is `scenario`, `fault`, `clear` or `note`."""

    t: float
    kind: str
    text: str


@dataclass
class PolicyRecord:
    namespace: str
    name: str
    spec: dict[str, Any]
    phases: list[tuple[float, str]] = field(default_factory=list)  # (seen at, phase), on every change


@dataclass
class IncidentRecord:
    """The latest spec and status seen of one Incident (its timeline and action records in it)."""

    namespace: str
    name: str
    first_seen: float
    spec: dict[str, Any]
    status: dict[str, Any]

    @property
    def policy(self) -> str:
        return str(self.spec.get("policy", ""))

    @property
    def signal(self) -> str:
        return str(self.spec.get("signal", ""))

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "Detected")

    @property
    def involved(self) -> list[dict[str, Any]]:
        return list(self.spec.get("involved") or [])

    @property
    def actions(self) -> list[dict[str, Any]]:
        return list(self.status.get("actions") or [])

    @property
    def timeline(self) -> list[dict[str, Any]]:
        return list(self.status.get("timeline") or [])

    @property
    def detected_at(self) -> float | None:
        return parse_time(self.spec.get("detectedAt"))

    @property
    def anomaly_started_at(self) -> float | None:
        return parse_time(self.spec.get("anomalyStartedAt"))

    @property
    def resolved_at(self) -> float | None:
        return parse_time(self.status.get("resolvedAt"))

    @property
    def ended(self) -> tuple[str, float] | None:
        """How and when it ended: the last Resolved, Escalated or Failed entry (None while open)."""
        if self.phase not in ("Resolved", "Escalated", "Failed"):
            return None
        for entry in reversed(self.timeline):
            if entry.get("event") in ("Resolved", "Escalated", "Failed"):
                t = parse_time(entry.get("time"))
                if t is not None:
                    return str(entry["event"]), t
        if self.phase == "Resolved" and self.resolved_at is not None:
            return "Resolved", self.resolved_at
        return None


@dataclass
class Context:
    """Where a moment sits among the markers: its scenario, and the fault of that scenario."""

    scenario: Marker | None = None
    fault: Marker | None = None
    cleared: Marker | None = None


@dataclass
class Recording:
    """Everything the timeline saw; plain data (JSON via `to_dict`/`save`, back via `from_dict`/`load`)."""

    started: float = 0.0
    markers: list[Marker] = field(default_factory=list)
    policies: dict[str, PolicyRecord] = field(default_factory=dict)  # "ns/name"
    series: dict[str, SeriesRecord] = field(default_factory=dict)  # series_key()
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)  # "ns/name"
    events: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what was printed, without colour

    # -- look-ups --------------------------------------------------------------------------------

    def series_of(self, namespace: str, policy: str, signal: str) -> list[SeriesRecord]:
        return [s for s in self.series.values() if (s.namespace, s.policy, s.signal) == (namespace, policy, signal)]

    def find_series(self, namespace: str, policy: str, signal: str,
                    labels: Mapping[str, str] | None = None) -> SeriesRecord | None:
        """The series with exactly these labels; else the one of the signal with the most samples."""
        if labels is not None:
            exact = self.series.get(series_key(namespace, policy, signal, labels))
            if exact is not None:
                return exact
        candidates = self.series_of(namespace, policy, signal)
        return max(candidates, key=lambda s: len(s.samples), default=None)

    def context(self, t: float) -> Context:
        """The latest scenario marker at or before `t`, the fault of that scenario at or before `t`,
        and the marker that cleared that fault (possibly after `t`)."""
        ctx = Context()
        for marker in sorted(self.markers, key=lambda m: m.t):
            if marker.t > t:
                if marker.kind in ("scenario", "fault"):
                    break
                if marker.kind == "clear" and ctx.fault is not None and ctx.cleared is None:
                    ctx.cleared = marker
                continue
            if marker.kind == "scenario":
                ctx = Context(scenario=marker)
            elif marker.kind == "fault":
                ctx.fault, ctx.cleared = marker, None
            elif marker.kind == "clear" and ctx.fault is not None:
                ctx.cleared = marker
        return ctx

    def incidents_in_order(self) -> list[IncidentRecord]:
        return sorted(self.incidents.values(), key=lambda i: (i.detected_at or i.first_seen, i.name))

    # -- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recording:
        return cls(
            started=float(data.get("started", 0.0)),
            markers=[Marker(**m) for m in data.get("markers", [])],
            policies={k: PolicyRecord(namespace=p["namespace"], name=p["name"], spec=p["spec"],
                                      phases=[(float(t), str(ph)) for t, ph in p.get("phases", [])])
                      for k, p in data.get("policies", {}).items()},
            series={k: SeriesRecord(namespace=s["namespace"], policy=s["policy"], signal=s["signal"],
                                    labels=dict(s["labels"]), samples=[Sample(**x) for x in s["samples"]])
                    for k, s in data.get("series", {}).items()},
            incidents={k: IncidentRecord(**i) for k, i in data.get("incidents", {}).items()},
            events=list(data.get("events", [])),
            lines=list(data.get("lines", [])),
        )

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path | str) -> Recording:
        return cls.from_dict(json.loads(Path(path).read_text()))


# --- helpers -------------------------------------------------------------------------------------


def parse_time(text: Any) -> float | None:
    """Unix seconds of an RFC 3339 timestamp; None for None or garbage."""
    if not text:
        return None
    from homeostat.api.times import parse_time as parse

    try:
        return parse(str(text))
    except ValueError:
        return None


def series_key(namespace: str, policy: str, signal: str, labels: Mapping[str, str]) -> str:
    return f"{namespace}/{policy}/{signal}/{json.dumps(dict(sorted(labels.items())), separators=(',', ':'))}"


def labels_text(labels: Mapping[str, str] | None) -> str:
    """`{pod="a",zone="b"}`, or nothing for the single series of an aggregate."""
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def num(value: Any) -> str:
    """A number for humans (4 significant digits); `-` for none."""
    if value is None:
        return "-"
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def duration_text(seconds: float | None) -> str:
    """`8s`, `2m05s`, `1h02m`; `-` for unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"


def describe_series(series: Mapping[str, Any], *, score: bool = True) -> str:
    """`observed 0.71 vs expected 0.175, band [0.136, 0.215], score 0.99` (from status or involved)."""
    observed = series.get("value", series.get("observed"))
    text = f"observed {num(observed)} vs expected {num(series.get('expected'))}"
    if series.get("lower") is not None or series.get("upper") is not None:
        text += f", band [{num(series.get('lower'))}, {num(series.get('upper'))}]"
    if score and series.get("score") is not None:
        text += f", score {num(series.get('score'))}"
    return text


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- colours -------------------------------------------------------------------------------------

_RESET = "\x1b[0m"
_STYLE = {
    "SCENARIO": "\x1b[1;36m", "FAULT": "\x1b[1;31m", "CLEARED": "\x1b[32m", "NOTE": "\x1b[2m",
    "POLICY": "\x1b[34m", "ANOMALY": "\x1b[33m", "NORMAL": "\x1b[2m", "NO DATA": "\x1b[33m", "DATA": "\x1b[2m",
    "DETECTED": "\x1b[1;31m", "INCIDENT": "\x1b[1;35m", "ACTION": "\x1b[36m", "HELD": "\x1b[33m",
    "VERIFY": "\x1b[1;34m", "RESOLVED": "\x1b[1;32m", "ESCALATED": "\x1b[1;31m", "FAILED": "\x1b[1;31m",
    "REOPENED": "\x1b[1;33m", "INVOLVED": "\x1b[35m", "HOLD": "\x1b[2m", "FEEDBACK": "\x1b[2m",
    "EVENT": "\x1b[2m",
}
_ACTION_STYLE = {"Succeeded": "\x1b[32m", "Failed": "\x1b[1;31m", "Skipped": "\x1b[2m", "DryRun": "\x1b[36m",
                 "Intended": "\x1b[34m"}
_VERIFY_STYLE = {"Recovered": "\x1b[1;32m", "NotRecovered": "\x1b[1;33m", "Inconclusive": "\x1b[33m"}


def use_colour(out: TextIO) -> bool:
    """ANSI colours only on a terminal, and not when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


# --- the timeline --------------------------------------------------------------------------------


@dataclass
class _SignalState:
    verdict: str | None = None
    confirmed: bool = False


class Timeline:
    """Polls the API, prints one line per change, records what it saw. See the module docstring.

    Args:
        cluster: read access to the API (`ClusterReader`: `list` and `events`).
        namespace: watch one namespace; None watches all (lines then name policies `ns/name`).
        out: where lines go (default stdout); flushed after each line.
        colour: force colours on or off; None (default) means "when `out` is a TTY".
        interval: seconds between polls of the background thread (`start`).
        clock: wall clock (unix seconds), for the stamps and the recording.
    """

    def __init__(self, cluster: ClusterReader, *, namespace: str | None = None, out: TextIO | None = None,
                 colour: bool | None = None, interval: float = 0.75,
                 clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.out = out if out is not None else sys.stdout
        self.colour = use_colour(self.out) if colour is None else colour
        self.interval = interval
        self.clock = clock
        self.recording = Recording(started=clock())
        self._out_lock = threading.RLock()  # lines and the recording
        self._poll_lock = threading.Lock()  # one poll at a time, so a stale read never follows a fresh one
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._fault_at: float | None = None
        self._phases: dict[str, str | None] = {}
        self._last_eval: dict[str, str] = {}
        self._signals: dict[tuple[str, str], _SignalState] = {}
        self._entries: set[tuple[str, tuple[Any, ...]]] = set()
        self._events: set[str] = set()
        self._errors: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Poll every `interval` seconds in a daemon thread until `stop()`."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="homeostat-timeline", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, final_poll: bool = True) -> None:
        """Stop the thread (if started), then poll once more so the last changes are told."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join(timeout=max(5.0, 4 * self.interval))
        if final_poll:
            self._poll_safely()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._poll_safely()
            self._stopping.wait(self.interval)

    def _poll_safely(self) -> None:
        try:
            self.poll_once()
        except Exception as exc:  # a timeline must never take the demo down
            logger.debug("timeline poll failed: %s", exc, exc_info=True)

    def snapshot(self) -> Recording:
        """A deep copy of the recording, consistent even while the thread polls."""
        with self._out_lock:
            return copy.deepcopy(self.recording)

    @property
    def lines(self) -> list[str]:
        """Every line printed so far, without colour."""
        with self._out_lock:
            return list(self.recording.lines)

    # -- markers ---------------------------------------------------------------------------------

    def mark(self, text: str, *, kind: str | None = None) -> str:
        """Print and record a marker; returns its line.

        `kind` is `scenario` (a new scenario: the fault clock stops), `fault` (starts the fault
        clock), `clear` (the fault is over) or `note`. Without it, it is read from the text:
        `SCENARIO...` is a scenario; `FAULT...` is a fault, unless its next word is `cleared`
        (`clear`, `over`, `ended`, `lifted`, `removed`), as in `fault cleared`, which is a clear;
        anything else is a note. `FAULT: dependency removed` is a fault.
        """
        kind = kind or _kind_of(text)
        if kind not in ("scenario", "fault", "clear", "note"):
            raise ValueError(f"unknown marker kind {kind!r}")
        now = self.clock()
        with self._out_lock:
            if kind == "scenario":
                self._fault_at = None
            elif kind == "fault":
                self._fault_at = now
            self.recording.markers.append(Marker(t=now, kind=kind, text=text))
            tag = {"scenario": "SCENARIO", "fault": "FAULT", "clear": "CLEARED", "note": "NOTE"}[kind]
            return self._say(tag, _strip_tag(text, tag), at=now)

    def scenario(self, name: str, description: str = "") -> str:
        return self.mark(f"{name}: {description}" if description else name, kind="scenario")

    def fault(self, text: str) -> str:
        return self.mark(text, kind="fault")

    def fault_cleared(self, text: str = "fault cleared") -> str:
        return self.mark(text, kind="clear")

    # -- polling ---------------------------------------------------------------------------------

    def poll_once(self) -> list[str]:
        """Read policies, Incidents and Events once; print and return the new lines (plain)."""
        with self._poll_lock:
            policies = self._read(lambda: self.cluster.list(API, POLICIES, self.namespace), "policies")
            incidents = self._read(lambda: self.cluster.list(API, INCIDENTS, self.namespace), "incidents")
            events = self._read(lambda: self.cluster.events(self.namespace), "events")
            now = self.clock()
            with self._out_lock:
                before = len(self.recording.lines)
                if policies is not None:
                    seen = {self._policy(obj, now) for obj in policies}
                    for gone in [k for k in self._phases if k not in seen]:
                        del self._phases[gone]
                        self._last_eval.pop(gone, None)
                        for signal_key in [k for k in self._signals if k[0] == gone]:
                            del self._signals[signal_key]
                        self._say("POLICY", f"{self._name_of(gone)} deleted", at=now)
                for obj in sorted(incidents or [], key=lambda i: ((i.get("spec") or {}).get("detectedAt") or "",
                                                                  (i.get("metadata") or {}).get("name") or "")):
                    self._incident(obj, now)
                for event in events or []:
                    self._event(event, now)
                return self.recording.lines[before:]

    def _read(self, call: Callable[[], list[dict[str, Any]]], what: str) -> list[dict[str, Any]] | None:
        try:
            result = call()
        except Exception as exc:  # e.g. no Incident CRD on a fake; said once, then quiet
            if what not in self._errors:
                self._errors.add(what)
                logger.info("timeline: cannot list %s: %s", what, exc)
            return None
        self._errors.discard(what)
        return result

    # -- policies --------------------------------------------------------------------------------

    def _name_of(self, key: str) -> str:
        return key.split("/", 1)[1] if self.namespace is not None else key

    def _policy(self, obj: Mapping[str, Any], now: float) -> str:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        key = f"{ns}/{name}"
        shown = self._name_of(key)
        spec = dict(obj.get("spec") or {})
        status = obj.get("status") or {}
        phase = status.get("phase")
        record = self.recording.policies.get(key)
        if record is None:
            record = self.recording.policies[key] = PolicyRecord(namespace=ns, name=name, spec=spec)
        record.spec = spec
        if key not in self._phases:
            target = spec.get("target") or {}
            signals = ", ".join(s.get("name", "?") for s in spec.get("signals") or [])
            self._phases[key] = None
            self._say("POLICY", f"{shown} applied: {target.get('kind', '?')} {target.get('name', '?')}, "
                                f"signals {signals or '-'}", at=now)
        # samples first, then signal transitions, then the phase that sums them up
        # A status is told once per evaluation: a copy read again (or a stale one) says nothing new.
        rows = list(status.get("signals") or [])
        evaluated = status.get("lastEvaluation") or json.dumps(rows, sort_keys=True)
        if rows and self._last_eval.get(key) != evaluated:
            self._last_eval[key] = evaluated
            t = parse_time(status.get("lastEvaluation"))
            if t is not None:
                self._record_samples(ns, name, t, rows)
            for row in rows:
                self._signal(key, shown, row, now)
        if phase and phase != self._phases.get(key):
            before = self._phases.get(key)
            self._phases[key] = phase
            record.phases.append((now, phase))
            summary = f" ({status['signalsSummary']})" if status.get("signalsSummary") else ""
            change = f"{before} -> {phase}" if before else phase
            self._say("POLICY", f"{shown} {change}{summary}", at=now)
        return key

    def _record_samples(self, ns: str, policy: str, t: float, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            for s in row.get("series") or []:
                labels = dict(s.get("labels") or {})
                key = series_key(ns, policy, row.get("name", ""), labels)
                record = self.recording.series.get(key)
                if record is None:
                    record = self.recording.series[key] = SeriesRecord(
                        namespace=ns, policy=policy, signal=row.get("name", ""), labels=labels)
                record.samples.append(Sample(
                    t=t, value=s.get("value"), expected=s.get("expected"), lower=s.get("lower"),
                    upper=s.get("upper"), verdict=str(s.get("verdict", "")), score=s.get("score"),
                    reason=str(s.get("reason") or "")))

    def _signal(self, key: str, shown: str, row: Mapping[str, Any], now: float) -> None:
        name = str(row.get("name", ""))
        state = self._signals.setdefault((key, name), _SignalState())
        verdict, confirmed = row.get("verdict"), bool(row.get("confirmed"))
        series = list(row.get("series") or [])
        anomalous = [s for s in series if s.get("verdict") == "anomalous"]
        top = anomalous[0] if anomalous else series[0] if series else {}
        where = f"{shown} {name}{labels_text(top.get('labels'))}"
        points = f"{top['anomalousPoints']} points" if top.get("anomalousPoints") else ""
        reason = f" - {top['reason']}" if top.get("reason") else ""
        if confirmed:
            if not state.confirmed:
                state.confirmed = True
                shown_series = anomalous or series[:1]
                details = "; ".join(f"{labels_text(s.get('labels')) or 'value'} {describe_series(s)}"
                                    for s in shown_series[:3])
                more = f" (+{len(shown_series) - 3} more series)" if len(shown_series) > 3 else ""
                self._say("DETECTED", f"{shown} {name} confirmed{f' ({points})' if points else ''}: "
                                      f"{details}{more}{reason}", at=now)
        elif state.confirmed:
            if verdict == "normal":  # anomalous-but-unconfirmed or no data keeps it standing
                state.confirmed = False
                self._say("NORMAL", f"{where} back to normal: {describe_series(top, score=False)}", at=now,
                          style="\x1b[32m")
        elif verdict != state.verdict:
            if verdict == "anomalous":
                self._say("ANOMALY", f"{where}: {describe_series(top)}{f', {points}' if points else ''}{reason}",
                          at=now)
            elif verdict == "normal" and state.verdict == "anomalous":
                self._say("NORMAL", f"{where} normal again, not confirmed: {describe_series(top, score=False)}",
                          at=now)
        if verdict == "no-data" and state.verdict not in (None, "no-data"):
            why = row.get("message") or top.get("reason") or "no data"
            self._say("NO DATA", f"{shown} {name}: {why}", at=now)
        elif state.verdict == "no-data" and verdict not in (None, "no-data"):
            self._say("DATA", f"{shown} {name}: data again ({verdict})", at=now)
        state.verdict = verdict

    # -- incidents -------------------------------------------------------------------------------

    def _incident(self, obj: Mapping[str, Any], now: float) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        key = f"{ns}/{name}"
        spec, status = dict(obj.get("spec") or {}), dict(obj.get("status") or {})
        record = self.recording.incidents.get(key)
        if record is None:
            record = self.recording.incidents[key] = IncidentRecord(
                namespace=ns, name=name, first_seen=now, spec=spec, status=status)
        record.spec, record.status = spec, status
        entries = list(status.get("timeline") or [])
        counts: Counter[tuple[Any, ...]] = Counter()
        for index, entry in enumerate(entries):
            ident = (entry.get("time"), entry.get("event"), entry.get("message"))
            counts[ident] += 1
            if (key, (*ident, counts[ident])) in self._entries:
                continue
            self._entries.add((key, (*ident, counts[ident])))
            previous = entries[index - 1] if index > 0 else None
            self._entry(record, entry, previous, now)

    def _entry(self, record: IncidentRecord, entry: Mapping[str, Any], previous: Mapping[str, Any] | None,
               now: float) -> None:
        event = str(entry.get("event", ""))
        message = str(entry.get("message") or "")
        policy = self._name_of(f"{record.namespace}/{record.policy}")
        if event == "Detected":
            involved = record.involved
            for s in involved:  # the incident tells of the confirmation if the status has not yet
                signal = self._signals.setdefault((f"{record.namespace}/{record.policy}", s.get("signal", "")),
                                                  _SignalState())
                if not signal.confirmed:
                    signal.confirmed = True
                    self._say("DETECTED", f"{policy} {s.get('signal')}{labels_text(s.get('labels'))} confirmed: "
                                          f"{describe_series(s)}", at=now)
            first = next((s for s in involved if s.get("signal") == record.signal), involved[0] if involved else {})
            details = f": {describe_series(first)}" if first else ""
            series = f"{record.signal}{labels_text(first.get('labels'))}"
            self._say("INCIDENT", f"{record.name} opened on {series}{details}", at=now)
            return
        if event.startswith("Action") or event in ("StepSkipped", "ScaleBackIntended"):
            state = {"ActionAbandoned": "Skipped", "ActionHeld": "Held", "StepSkipped": "Skipped",
                     "ScaleBackIntended": "Intended"}.get(event, event.removeprefix("Action"))
            if state != "Held":
                what, rest = _action_words(record, message)
                self._say("ACTION", f"{policy} {what} {state}" + (f": {rest}" if rest else ""), at=now,
                          style=_ACTION_STYLE.get(state))
                return
        if event in ("NotRecovered", "Inconclusive"):
            self._say("VERIFY", f"{policy} {event}: {message}", at=now, style=_VERIFY_STYLE[event])
            return
        if event == "Resolved":
            if previous is not None and previous.get("phase") == "Verifying":
                self._say("VERIFY", f"{policy} Recovered: {message}", at=now, style=_VERIFY_STYLE["Recovered"])
            self._say("RESOLVED", f"{record.name} resolved{self._durations(record, entry)}", at=now)
            return
        if event in ("Escalated", "Failed"):
            tag = "ESCALATED" if event == "Escalated" else "FAILED"
            self._say(tag, f"{record.name} {event.lower()}: {message}{self._durations(record, entry)}", at=now)
            return
        tag = {"Reopened": "REOPENED", "SeriesInvolved": "INVOLVED", "ActionHeld": "HELD", "HoldReleased": "HOLD",
               "FalsePositive": "FEEDBACK"}.get(event, "INCIDENT")
        text = f"{record.name} {message}" if event == "Reopened" else f"{policy} {message}"
        if tag == "INCIDENT":
            text = f"{record.name} {event}: {message}"
        elif tag == "HOLD":
            text = f"{record.name} hold released: {message}"
        self._say(tag, text, at=now)

    def _durations(self, record: IncidentRecord, entry: Mapping[str, Any]) -> str:
        end = parse_time(entry.get("time"))
        detected = record.detected_at
        ctx = self.recording.context(detected) if detected is not None else Context()
        parts = []
        if ctx.fault is not None and detected is not None:
            parts.append(f"fault->detection {duration_text(detected - ctx.fault.t)}")
            if end is not None:
                parts.append(f"fault->{str(entry.get('event', '')).lower()} {duration_text(end - ctx.fault.t)}")
        elif detected is not None and end is not None:
            parts.append(f"detection->{str(entry.get('event', '')).lower()} {duration_text(end - detected)}")
        return "; " + ", ".join(parts) if parts else ""

    # -- events ----------------------------------------------------------------------------------

    def _event(self, event: Mapping[str, Any], now: float) -> None:
        meta = event.get("metadata") or {}
        ident = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
        if ident in self._events:
            return
        self._events.add(ident)
        about = event.get("involvedObject") or event.get("regarding") or {}
        if about.get("kind") not in ("AnomalyPolicy", "Incident"):
            return
        reason = str(event.get("reason") or "")
        message = str(event.get("message") or event.get("note") or "")
        self.recording.events.append({
            "seen": now, "time": event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp"),
            "type": event.get("type"), "reason": reason, "message": message, "kind": about.get("kind"),
            "namespace": about.get("namespace") or meta.get("namespace"), "name": about.get("name"),
        })
        if about.get("kind") != "AnomalyPolicy" or reason.startswith(_TOLD_ELSEWHERE):
            return
        who = self._name_of(f"{about.get('namespace') or meta.get('namespace')}/{about.get('name')}")
        self._say("EVENT", f"{who} {event.get('type', 'Normal')} {reason}: {message}", at=now)

    # -- output ----------------------------------------------------------------------------------

    def _say(self, tag: str, text: str, *, at: float, style: str | None = None) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(at))
        since = f"+{at - self._fault_at:.1f}s" if self._fault_at is not None and at >= self._fault_at else ""
        text = _clip(text)
        plain = f"{stamp} {since:>8}  {tag:<9}  {text}"
        with self._out_lock:
            self.recording.lines.append(plain)
            shown = plain
            if self.colour:
                code = style or _STYLE.get(tag, "")
                shown = f"\x1b[2m{stamp} {since:>8}{_RESET}  {code}{tag:<9}{_RESET}  {text}"
            with contextlib.suppress(ValueError, OSError):  # a closed stream at shutdown
                print(shown, file=self.out, flush=True)
        return plain


_STEP_INTENT = re.compile(r"^step (\d+)/\d+: ([a-z-]+)\s*(.*)$", re.S)  # "step 1/2: restart (key)"
_STEP_OUTCOME = re.compile(r"^(step \d+ [a-z-]+|escalation notice|scale-back of step \d+): (.*)$", re.S)


def _action_words(record: IncidentRecord, message: str) -> tuple[str, str]:
    """(`step 1 restart`, the rest) from an action entry's message, without the idempotency key."""
    for action in record.actions:
        if action.get("key"):
            message = message.replace(f"({action['key']})", "").strip()
    if (m := _STEP_INTENT.match(message)) is not None:
        return f"step {m[1]} {m[2]}", m[3].strip()
    if (m := _STEP_OUTCOME.match(message)) is not None:
        return ("notify (escalation)" if m[1] == "escalation notice" else m[1]), m[2].strip()
    if message.startswith("interrupted "):
        return message.split()[1], message
    if "scaling back" in message:
        return "scale-back", message
    return "action", message


_CLEAR_WORDS = re.compile(r"^FAULTS?\W+(CLEAR|CLEARED|OVER|ENDED|LIFTED|REMOVED)\b")  # "fault cleared"


def _kind_of(text: str) -> str:
    head = text.strip().upper()
    if head.startswith("SCENARIO"):
        return "scenario"
    if head.startswith("FAULT"):
        return "clear" if _CLEAR_WORDS.match(head) else "fault"
    return "note"


def _strip_tag(text: str, tag: str) -> str:
    """`FAULT: checkout x4` is printed under the FAULT tag as `checkout x4`."""
    stripped = text.strip()
    if tag in ("SCENARIO", "FAULT") and stripped.upper().startswith(tag):
        rest = stripped[len(tag):].lstrip(" :-")
        return rest or stripped
    return stripped
