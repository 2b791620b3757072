"""The demo's incident report: one plot per Incident and an `index.html` that embeds them all.

    from homeostat.lab.report import write_report
    index = write_report(recording=timeline.snapshot(), out_dir=workdir / "report",
                         prometheus_url=prometheus.url)   # optional: also draw the raw PromQL series
    print(f"incident report: {index}")

`write_report(*, recording, out_dir, prometheus_url=None, title=...) -> Path` writes, in `out_dir`
(created if missing):

- `NN-<incident>.png` for each Incident (in order of detection): the signal's observed values
  (anomalous points in red), the detectors' expected value and band (shaded lower..upper), the
  band recorded on the Incident at detection (dotted: what verification compares with), the
  fault (shaded from its mark to its clearing), the first anomalous point, the detection point
  (a star at the observed value), every action (a vertical line labelled `action State`), the
  verification outcomes, and the end (Resolved, Escalated, Failed). The x axis is seconds since
  the scenario's fault (since detection when no fault was marked). With `prometheus_url`, the
  signal's PromQL is also queried over the plotted window (`/api/v1/query_range`) and drawn in
  grey, shifted by the policy's `evaluationDelay` so it lines up with the operator's samples
  (each sample is plotted at the evaluation that produced it, which read the value that much
  earlier).
- `index.html`: a summary table, then per Incident its facts (scenario, fault, phase, signal,
  observed vs expected and band at detection, fault->first anomalous point, fault->detection,
  detection->first action, fault->resolved/escalated), the plot embedded as base64 (the file
  stands alone), its actions and its timeline; then the markers and the live timeline's lines.
  A run without Incidents gets a report that says so.
- `recording.json`: the recording itself (`Recording.load` reads it back), so the report can
  be drawn again: `python -m homeostat.lab.report recording.json OUT_DIR [--prometheus URL]`.

matplotlib (the `lab` and `dev` extras) draws with the Agg backend through `Figure`, never
pyplot: no display, no global state, safe in any thread. Without matplotlib the HTML is still
written, with a note instead of plots.
"""

from __future__ import annotations

import argparse
import base64
import html
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeostat.lab.timeline import (
    Context,
    IncidentRecord,
    Recording,
    SeriesRecord,
    describe_series,
    duration_text,
    labels_text,
    num,
    parse_time,
)
from homeostat.playbooks.verification import series_label

logger = logging.getLogger(__name__)

FIGSIZE = (10.0, 4.8)  # inches, with one panel
PANEL_HEIGHT = 2.6  # inches added per further panel
MAX_PANELS = 4  # involved series drawn per incident (the rest are listed)
DPI = 100  # so a one-panel PNG is 1000 x 480 pixels
STATE_COLOURS = {"Succeeded": "tab:green", "DryRun": "tab:cyan", "Failed": "tab:red", "Skipped": "tab:gray",
                 "Intended": "tab:blue"}
END_COLOURS = {"Resolved": "tab:green", "Escalated": "tab:purple", "Failed": "tab:red"}


@dataclass
class RawSeries:
    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass
class Panel:
    """One involved series of an Incident: its band at detection, its recorded samples, its raw series."""

    involved: dict[str, Any]
    series: SeriesRecord | None
    since: float  # when it was involved (detection, or the SeriesInvolved entry naming it)
    raw: list[RawSeries] = field(default_factory=list)

    @property
    def signal(self) -> str:
        return str(self.involved.get("signal", ""))

    @property
    def title(self) -> str:
        return f"{self.signal}{labels_text(self.involved.get('labels'))}"


@dataclass
class IncidentFacts:
    """What the report says of one Incident: computed once, used by the plot and the HTML."""

    number: int
    incident: IncidentRecord
    ctx: Context
    policy_spec: dict[str, Any]
    panels: list[Panel]  # the first is the incident's signal; at most MAX_PANELS
    origin: float
    origin_label: str
    start: float
    end: float
    durations: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    png: Path | None = None

    @property
    def involved(self) -> dict[str, Any]:
        return self.panels[0].involved

    @property
    def fault_at(self) -> float | None:
        return self.ctx.fault.t if self.ctx.fault is not None else None

    def rel(self, t: float | None) -> str:
        """`+12s` relative to the plot's origin (the fault, or detection)."""
        if t is None:
            return "-"
        d = t - self.origin
        return f"{'+' if d >= 0 else '-'}{duration_text(abs(d))}"


# --- the facts -----------------------------------------------------------------------------------


def _facts(number: int, incident: IncidentRecord, recording: Recording, nxt: float | None) -> IncidentFacts:
    """`nxt`: when the policy's next incident was detected (this one's plot stops there)."""
    detected = incident.detected_at or incident.first_seen
    ctx = recording.context(detected)
    policy = recording.policies.get(f"{incident.namespace}/{incident.policy}")
    spec = dict(policy.spec) if policy is not None else {}
    panels = _panels(incident, recording, detected)
    series = panels[0].series
    fault = ctx.fault.t if ctx.fault is not None else None
    first_action = min((t for a in incident.actions if (t := parse_time(a.get("startedAt"))) is not None),
                       default=None)
    ended = incident.ended
    end_t = ended[1] if ended else None
    moments = [t for t in (fault, incident.anomaly_started_at, detected, first_action, end_t,
                           ctx.cleared.t if ctx.cleared is not None and ctx.fault is not None else None)
               if t is not None]
    moments += [t for a in incident.actions for key in ("startedAt", "finishedAt")
                if (t := parse_time(a.get(key))) is not None]
    moments += [t for e in incident.timeline if (t := parse_time(e.get("time"))) is not None]
    if ended is None and series is not None:  # still open: show what was seen up to the next incident
        moments += [s.t for s in series.samples if s.t >= detected and (nxt is None or s.t < nxt)][-1:]
    settled_from = max([t for t in (end_t, ctx.cleared.t if ctx.cleared is not None else None) if t is not None],
                       default=None)
    if settled_from is not None and series is not None:  # show the signal back to normal, if it came back soon
        back = next((s.t for s in series.samples
                     if s.t > settled_from and s.verdict == "normal" and (nxt is None or s.t < nxt)), None)
        if back is not None and back - max(moments) <= 120:
            moments.append(back)
    lo, hi = min(moments), max(moments)
    span = max(hi - lo, 10.0)
    start, end = lo - max(20.0, 0.3 * span), hi + max(10.0, 0.15 * span)
    if nxt is not None:
        end = max(hi, min(end, nxt))
    origin = fault if fault is not None else detected
    durations: dict[str, float | None] = {
        "fault -> first anomalous point": _minus(incident.anomaly_started_at, fault),
        "fault -> detection": _minus(detected, fault),
        "detection -> first action": _minus(first_action, detected),
    }
    if ended is not None:
        word = ended[0].lower()
        durations[f"fault -> {word}"] = _minus(ended[1], fault)
        durations[f"detection -> {word}"] = _minus(ended[1], detected)
    return IncidentFacts(number=number, incident=incident, ctx=ctx, policy_spec=spec, panels=panels, origin=origin,
                         origin_label="the fault" if fault is not None else "detection", start=start, end=end,
                         durations=durations)


def _panels(incident: IncidentRecord, recording: Recording, detected: float) -> list[Panel]:
    """The involved series, the incident's own signal first, each once; a placeholder if none is known."""
    involved = sorted(incident.involved, key=lambda s: s.get("signal") != incident.signal) or [
        {"signal": incident.signal, "labels": {}}]
    panels: list[Panel] = []
    seen: set[str] = set()
    for inv in involved:
        title = f"{inv.get('signal', '')}{labels_text(inv.get('labels'))}"
        if title in seen:
            continue
        seen.add(title)
        since = detected
        for entry in incident.timeline:  # a series confirmed later: its band was recorded then
            bare = f"{inv.get('signal', '')}{series_label(inv.get('labels') or {})}"
            t = parse_time(entry.get("time"))
            if entry.get("event") == "SeriesInvolved" and t is not None and bare in str(entry.get("message", "")):
                since = t
                break
        series = recording.find_series(incident.namespace, incident.policy, str(inv.get("signal", "")),
                                       inv.get("labels") or {})
        panels.append(Panel(involved=dict(inv), series=series, since=since))
    return panels


def _minus(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


# --- Prometheus ----------------------------------------------------------------------------------


def query_range(url: str, query: str, *, start: float, end: float, step: float,
                timeout: float = 10.0) -> list[RawSeries]:
    """`/api/v1/query_range` of one PromQL expression; raises on any failure."""
    import httpx

    answer = httpx.get(f"{url.rstrip('/')}/api/v1/query_range", timeout=timeout,
                       params={"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:.3f}"})
    answer.raise_for_status()
    body = answer.json()
    if body.get("status") != "success":
        raise RuntimeError(body.get("error") or "query failed")
    found = []
    for item in body["data"].get("result") or []:
        points = []
        for t, v in item.get("values") or []:
            value = float(v)
            if math.isfinite(value):
                points.append((float(t), value))
        found.append(RawSeries(labels=dict(item.get("metric") or {}), points=points))
    return found


def _raw(facts: IncidentFacts, prometheus_url: str) -> None:
    """Query each panel's signal over the plotted window; what happened goes to `facts.notes`."""
    from homeostat.api.durations import parse_duration

    try:
        delay = float(parse_duration(str(facts.policy_spec.get("evaluationDelay") or "10s")))
    except ValueError:
        delay = 0.0
    step = max(0.5, (facts.end - facts.start) / 600)
    for panel in facts.panels:
        query = next((s.get("query") for s in facts.policy_spec.get("signals") or []
                      if s.get("name") == panel.signal), None)
        if not query:
            facts.notes.append(f"{panel.title}: raw series not drawn, the policy's query is unknown")
            continue
        try:
            found = query_range(prometheus_url, str(query), start=facts.start - delay, end=facts.end - delay,
                                step=step)
        except Exception as exc:  # a report without the raw series is still a report
            facts.notes.append(f"{panel.title}: raw series not drawn, Prometheus query failed "
                               f"({type(exc).__name__}: {exc})"[:300])
            continue
        wanted = panel.involved.get("labels") or {}
        matching = [r for r in found if all(r.labels.get(k) == v for k, v in wanted.items())] or found
        panel.raw = [RawSeries(labels=r.labels, points=[(t + delay, v) for t, v in r.points]) for r in matching[:10]]
        facts.notes.append(
            f"{panel.title}: raw, {len(panel.raw)} series from {prometheus_url} (shifted by evaluationDelay {delay:g}s)"
            if panel.raw else f"{panel.title}: raw, the query returned no series from {prometheus_url}")


# --- the plot ------------------------------------------------------------------------------------


def figure_size(panels: int) -> tuple[float, float]:
    """Inches of a plot with this many panels (at DPI 100: 1000 x 480 pixels for one)."""
    return FIGSIZE[0], FIGSIZE[1] + PANEL_HEIGHT * (max(1, panels) - 1)


def _plot(facts: IncidentFacts, path: Path) -> None:
    from matplotlib.figure import Figure

    panels = facts.panels[:MAX_PANELS]
    size = figure_size(len(panels))
    fig = Figure(figsize=size, dpi=DPI)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for index, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        _draw_panel(ax, facts, panel, labelled=index == 0)
    inc = facts.incident
    axes[0].set_title(f"{inc.name}: {facts.panels[0].title} ({inc.phase})", fontsize=10, loc="left")
    axes[-1].set_xlabel(f"seconds since {facts.origin_label} "
                        f"({time.strftime('%H:%M:%S', time.localtime(facts.origin))})", fontsize=8)
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncols=4, fontsize=7, frameon=False)
    legend_inches = 0.95  # the legend's two rows and the x label, whatever the figure's height
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.34 / size[1], bottom=legend_inches / size[1],
                        hspace=0.12)
    fig.savefig(path, format="png", dpi=DPI)


def _draw_panel(ax: Any, facts: IncidentFacts, panel: Panel, *, labelled: bool) -> None:
    """One involved series with every moment of the incident; the moments are named on the top panel only."""
    import numpy as np
    from matplotlib.transforms import blended_transform_factory

    inc = facts.incident
    x0 = facts.origin

    def x(t: float) -> float:
        return t - x0

    samples = [s for s in (panel.series.samples if panel.series else []) if facts.start <= s.t <= facts.end]
    xs = np.array([x(s.t) for s in samples], dtype=float)

    def column(name: str) -> Any:
        return np.array([getattr(s, name) if getattr(s, name) is not None else np.nan for s in samples], dtype=float)

    for raw in panel.raw:
        pts = [(x(t), v) for t, v in raw.points if facts.start <= t <= facts.end]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color="0.55", lw=0.8, alpha=0.9,
                    label="raw PromQL (Prometheus)", zorder=1)
    if samples:
        lower, upper, expected, value = column("lower"), column("upper"), column("expected"), column("value")
        band = np.isfinite(lower) & np.isfinite(upper)
        if band.any():
            ax.fill_between(xs, np.where(band, lower, 0.0), np.where(band, upper, 0.0), where=band,
                            color="tab:blue", alpha=0.15, lw=0, label="expected band (detector)", zorder=2)
        if np.isfinite(expected).any():
            ax.plot(xs, expected, "--", color="tab:blue", lw=1, label="expected", zorder=3)
        ax.plot(xs, value, "-o", color="black", lw=1.2, ms=2.5, label="observed", zorder=4)
        bad = np.array([s.verdict == "anomalous" for s in samples]) & np.isfinite(value)
        if bad.any():
            ax.scatter(xs[bad], value[bad], color="tab:red", s=16, zorder=5, label="anomalous point")
    else:
        ax.text(0.5, 0.5, "no samples of this series were recorded", transform=ax.transAxes, ha="center",
                color="0.4")

    detected = inc.detected_at or inc.first_seen
    ended = inc.ended
    right = x(facts.end)
    levels = [v for v in (panel.involved.get("lower"), panel.involved.get("upper")) if v is not None]
    if levels:
        ax.hlines(levels, x(panel.since), x(ended[1]) if ended else right, colors="tab:purple", linestyles=":",
                  lw=1.2, label="band recorded at detection", zorder=3)

    top = blended_transform_factory(ax.transData, ax.transAxes)
    placed: list[float] = []
    width = max(right - x(facts.start), 1.0)

    def vline(t: float, text: str, colour: str, *, ls: str = "-", lw: float = 1.2) -> None:
        xt = x(t)
        ax.axvline(xt, color=colour, ls=ls, lw=lw, zorder=6)
        if not labelled:
            return
        crowded = sum(1 for p in placed if abs(p - xt) < 0.025 * width)
        placed.append(xt)
        # a crowded label goes to the other side of its line, then lower down
        ax.text(xt, 0.98 - 0.35 * (crowded // 2 % 2), text, transform=top, rotation=90, va="top",
                ha="left" if crowded % 2 else "right", fontsize=7, color=colour, zorder=7,
                bbox={"facecolor": "white", "alpha": 0.75, "linewidth": 0, "pad": 1.0})

    if facts.ctx.fault is not None:
        fault = facts.ctx.fault
        cleared = facts.ctx.cleared.t if facts.ctx.cleared is not None else facts.end
        ax.axvspan(x(fault.t), x(min(cleared, facts.end)), color="tab:red", alpha=0.07, lw=0, label="fault active")
        vline(fault.t, "fault", "tab:red", ls="--", lw=1.0)
        if facts.ctx.cleared is not None and facts.ctx.cleared.t <= facts.end:
            vline(facts.ctx.cleared.t, "fault cleared", "tab:red", ls="--", lw=0.8)
    if inc.anomaly_started_at is not None:
        vline(inc.anomaly_started_at, "first anomalous point", "tab:orange", ls=":", lw=1.0)
    vline(detected, "detected", "tab:red", lw=1.6)
    observed = panel.involved.get("observed")
    if observed is not None:
        ax.plot([x(panel.since)], [observed], marker="*", ms=14, color="tab:red", ls="none", zorder=8,
                label="detection (observed value)")
        ax.annotate(num(observed), (x(panel.since), observed), xytext=(8, -4), textcoords="offset points",
                    fontsize=7, color="tab:red", zorder=8)
    if ended is not None:
        vline(ended[1], ended[0], END_COLOURS.get(ended[0], "tab:green"), lw=2.2)
    for action in inc.actions:
        t = parse_time(action.get("startedAt"))
        if t is None:
            continue
        state = str(action.get("state", ""))
        name = "scale-back" if action.get("purpose") == "ScaleBack" else str(action.get("action", "action"))
        vline(t, f"{name} {state}", STATE_COLOURS.get(state, "tab:blue"), ls="-.")
    for entry in inc.timeline:
        event = entry.get("event")
        t = parse_time(entry.get("time"))
        if t is not None and event in ("NotRecovered", "Inconclusive", "Reopened"):
            vline(t, str(event), "tab:olive", ls=":", lw=1.0)

    ax.set_xlim(x(facts.start), right)
    low, high = ax.get_ylim()
    if labelled:
        ax.set_ylim(low, high + 0.4 * (high - low))  # headroom for the labels of the vertical lines
    ax.set_ylabel(panel.title, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.25)


# --- the HTML ------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2.2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: 12px; }
.Resolved { color: #1a7f37; font-weight: 600; } .Escalated, .Failed { color: #b42318; font-weight: 600; }
.note { color: #666; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _clock(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t is not None else "-"


def _actions_text(inc: IncidentRecord) -> str:
    """`restart DryRun, notify Succeeded`."""
    return ", ".join(f"{a.get('action')} {a.get('state')}" for a in inc.actions)


def _facts_table(f: IncidentFacts) -> str:
    inc = f.incident
    rows: list[tuple[str, str]] = []
    if f.ctx.scenario is not None:
        rows.append(("scenario", _e(f.ctx.scenario.text)))
    if f.ctx.fault is not None:
        cleared = (f", cleared at {_clock(f.ctx.cleared.t)} ({f.rel(f.ctx.cleared.t)})"
                   if f.ctx.cleared is not None else ", not cleared")
        rows.append(("fault", f"{_e(f.ctx.fault.text)} <span class=note>at {_clock(f.ctx.fault.t)}{cleared}</span>"))
    else:
        rows.append(("fault", "<span class=note>none marked</span>"))
    target = inc.spec.get("target") or {}
    rows.append(("policy / target", _e(f"{inc.namespace}/{inc.policy} -> {target.get('kind', '?')} "
                                       f"{target.get('name', '?')}")))
    direction = next((s.get("direction") for s in f.policy_spec.get("signals") or []
                      if s.get("name") == f.panels[0].signal), None)
    rows.append(("signal", _e(f.panels[0].title + (f" (bad when {direction})" if direction else ""))))
    rows.append(("at detection", _e(describe_series(f.involved))))
    for panel in f.panels[1:]:
        when = "at detection" if panel.since == f.panels[0].since else f"involved at {f.rel(panel.since)}"
        rows.append((f"also {panel.title}", _e(f"{when}: {describe_series(panel.involved)}")))
    if len(f.panels) > MAX_PANELS:
        rows.append(("not drawn", _e(", ".join(panel.title for panel in f.panels[MAX_PANELS:]))))
    rows.append(("detected at", _e(f"{_clock(inc.detected_at)} ({f.rel(inc.detected_at)})")))
    ended = inc.ended
    outcome = f"<span class={_e(inc.phase)}>{_e(inc.phase)}</span>"
    if ended is not None:
        outcome += _e(f" at {_clock(ended[1])} ({f.rel(ended[1])})")
    if inc.status.get("reopened"):
        outcome += _e(f", reopened {inc.status['reopened']} time(s)")
    rows.append(("outcome", outcome))
    if inc.status.get("message"):
        rows.append(("message", _e(inc.status["message"])))
    for name, value in f.durations.items():
        rows.append((name, _e(duration_text(value))))
    rows.append(("actions", _e(_actions_text(inc) or "none")))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class=facts>{body}</table>"


def _actions_table(f: IncidentFacts) -> str:
    actions = f.incident.actions
    if not actions:
        return "<p class=note>No action was taken.</p>"
    rows = "".join(
        f"<tr><td>{_e(f.rel(parse_time(a.get('startedAt'))))}</td><td>{_e(a.get('action'))}</td>"
        f"<td>{_e(a.get('purpose') or 'Step')}</td><td>{_e(int(a.get('step', 0)) + 1)}</td>"
        f"<td>{_e(a.get('state'))}{' (dry run)' if a.get('dryRun') and a.get('state') != 'DryRun' else ''}</td>"
        f"<td>{_e(duration_text(_minus(parse_time(a.get('finishedAt')), parse_time(a.get('startedAt')))))}</td>"
        f"<td>{_e(a.get('message') or '')}</td></tr>"
        for a in actions
    )
    return ("<table><tr><th>at</th><th>action</th><th>purpose</th><th>step</th><th>state</th><th>took</th>"
            f"<th>message</th></tr>{rows}</table>")


def _timeline_table(f: IncidentFacts) -> str:
    rows = "".join(
        f"<tr><td>{_e(f.rel(parse_time(e.get('time'))))}</td><td>{_e(e.get('event'))}</td>"
        f"<td>{_e(e.get('phase') or '')}</td><td>{_e(e.get('message') or '')}</td></tr>"
        for e in f.incident.timeline
    )
    return f"<table><tr><th>at</th><th>event</th><th>phase</th><th>message</th></tr>{rows}</table>"


def _summary(all_facts: Sequence[IncidentFacts]) -> str:
    rows = []
    for f in all_facts:
        inc = f.incident
        ended = inc.ended
        end_key = f"fault -> {ended[0].lower()}" if ended else None
        rows.append(
            f"<tr><td class=num>{f.number}</td><td>{_e(f.ctx.scenario.text if f.ctx.scenario else '-')}</td>"
            f"<td><a href='#inc-{f.number}'>{_e(inc.name)}</a></td>"
            f"<td>{_e(', '.join(panel.title for panel in f.panels))}</td>"
            f"<td class=num>{_e(duration_text(f.durations.get('fault -> detection')))}</td>"
            f"<td class={_e(inc.phase)}>{_e(inc.phase)}</td>"
            f"<td class=num>{_e(duration_text(f.durations.get(end_key) if end_key else None))}</td>"
            f"<td>{_e(_actions_text(inc) or '-')}</td>"
            "</tr>")
    return ("<table><tr><th>#</th><th>scenario</th><th>incident</th><th>signal</th><th>fault -&gt; detection</th>"
            f"<th>outcome</th><th>fault -&gt; outcome</th><th>actions</th></tr>{''.join(rows)}</table>")


def write_report(*, recording: Recording, out_dir: Path | str, prometheus_url: str | None = None,
                 title: str = "Homeostat demo: incident report") -> Path:
    """Write the PNGs, `index.html` and `recording.json` into `out_dir`; return the path of `index.html`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recording.save(out / "recording.json")
    incidents = recording.incidents_in_order()
    all_facts = []
    for n, inc in enumerate(incidents):
        later = [i.detected_at or i.first_seen for i in incidents[n + 1:]
                 if (i.namespace, i.policy) == (inc.namespace, inc.policy)]
        all_facts.append(_facts(n + 1, inc, recording, later[0] if later else None))
    try:
        import matplotlib  # noqa: F401
        plotting, plot_note = True, ""
    except ImportError:
        plotting, plot_note = False, "Plots need matplotlib: pip install 'homeostat[lab]'."
    for f in all_facts:
        if prometheus_url:
            _raw(f, prometheus_url)
        if plotting:
            path = out / f"{f.number:02d}-{f.incident.name}.png"
            try:
                _plot(f, path)
                f.png = path
            except Exception as exc:  # one bad plot must not lose the report
                logger.exception("plot of %s failed", f.incident.name)
                f.notes.append(f"plot failed: {type(exc).__name__}: {exc}")

    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>{_e(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"]
    last = max([recording.started, *(m.t for m in recording.markers),
                *(s.samples[-1].t for s in recording.series.values() if s.samples),
                *(i.first_seen for i in incidents), *(e[1] for i in incidents if (e := i.ended) is not None)])
    span = f"{_clock(recording.started)} to {_clock(last)}"
    parts.append(f"<p class=note>Recorded from {_e(span)}; {len(recording.policies)} polic"
                 f"{'y' if len(recording.policies) == 1 else 'ies'}, {len(recording.series)} series, "
                 f"{len(incidents)} incident{'' if len(incidents) == 1 else 's'}.</p>")
    if plot_note:
        parts.append(f"<p class=note>{_e(plot_note)}</p>")
    if not all_facts:
        parts.append("<p><strong>No incident was opened during this run.</strong> Nothing was confirmed "
                     "anomalous, so nothing was done.</p>")
    else:
        parts.append(_summary(all_facts))
    quiet = [m.text for m in recording.markers
             if m.kind == "scenario" and not any(f.ctx.scenario == m for f in all_facts)]
    if quiet:
        parts.append(f"<p>Scenarios without an incident: {_e('; '.join(quiet))}.</p>")
    for f in all_facts:
        parts.append(f"<h2 id='inc-{f.number}'>{f.number}. {_e(f.incident.name)}</h2>")
        parts.append(_facts_table(f))
        if f.png is not None:
            data = base64.b64encode(f.png.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{_e(f.incident.name)}' src='data:image/png;base64,{data}'>")
        for note in f.notes:
            parts.append(f"<p class=note>{_e(note)}</p>")
        parts.append("<h3>Actions</h3>" + _actions_table(f))
        parts.append(f"<h3>Timeline of the incident (times since {_e(f.origin_label)})</h3>" + _timeline_table(f))
    if recording.markers:
        rows = "".join(f"<tr><td>{_clock(m.t)}</td><td>{_e(m.kind)}</td><td>{_e(m.text)}</td></tr>"
                       for m in recording.markers)
        parts.append(f"<h2>Markers</h2><table><tr><th>at</th><th>kind</th><th>text</th></tr>{rows}</table>")
    if recording.lines:
        parts.append("<h2>The live timeline</h2><pre>" + _e("\n".join(recording.lines)) + "</pre>")
    parts.append("</body></html>\n")
    index = out / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m homeostat.lab.report recording.json OUT_DIR [--prometheus URL]`: draw a report again."""
    parser = argparse.ArgumentParser(prog="python -m homeostat.lab.report", description=main.__doc__)
    parser.add_argument("recording", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--prometheus", default=None, help="also draw the raw series from this Prometheus")
    args = parser.parse_args(argv)
    index = write_report(recording=Recording.load(args.recording), out_dir=args.out_dir,
                         prometheus_url=args.prometheus)
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
