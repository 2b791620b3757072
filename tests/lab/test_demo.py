"""`homeostat demo`, the README's first command, end to end at a small scale."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _processes_in(folder: Path) -> dict[int, str]:
    """Live processes whose working directory is `folder`: pid -> command line.

    The demo runs in `folder`, so Prometheus and the operator it starts inherit it; processes
    of other tests on the same machine do not.
    """
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(proc / "cwd").resolve() == folder.resolve():
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


@pytest.fixture
def demo_folder(tmp_path: Path) -> Iterator[Path]:
    """The demo's folder; whatever still runs in it afterwards (the demo failed or timed out: its
    Prometheus and operator outlive it) is killed, so it cannot load the machine for later tests."""
    yield tmp_path
    for pid in _processes_in(tmp_path):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_demo_heals_every_scenario_writes_the_report_and_leaves_no_process_behind(demo_folder: Path) -> None:
    # Every scenario of lab/scenarios.py on its own service, at the demo's default pace (3 s
    # evaluations over 4 s windows, 3 of 4 to confirm, 15 s verification); ~4 minutes on an idle machine.
    done = subprocess.run(
        [sys.executable, "-m", "homeostat", "demo", "--quiet-for", "25", "--timeout", "150",
         "--keep", str(demo_folder)],
        capture_output=True, text=True, timeout=900, cwd=demo_folder,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    episodes = {e["scenario"]: e for e in json.loads((demo_folder / "report" / "episodes.json").read_text())}
    got = {name: (e["first_action"], e["actions"], e["end"]) for name, e in episodes.items()}
    assert got == {
        "bad-release": ("rollback", 1, "Resolved"),
        "memory-leak": ("restart", 1, "Resolved"),
        "traffic-surge": ("scale-out", 1, "Resolved"),
        "dependency-outage": (None, 0, "Escalated"),  # nothing can fix it: escalated once, no loop
        "noisy-healthy": (None, 0, "Quiet"),
    }, out[-6000:]
    for line in ("FAULT      bad-release on checkout", "DETECTED", "rollback Succeeded", "VERIFY", "RESOLVED",
                 "ESCALATED"):
        assert line in out, line
    # The report: one plot per incident (four: the quiet scenario has none), all embedded in index.html.
    report = demo_folder / "report"
    pngs = sorted(report.glob("*.png"))
    assert len(pngs) == 4 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert (report / "index.html").read_text().count("data:image/png;base64,") == 4
    assert f"incident report: {report / 'index.html'}" in out
    assert "done; no process left behind" in out
    assert list(_processes_in(demo_folder).values()) == [], "the demo left Prometheus or the operator running"
    assert "Operator is stopping" in (demo_folder / "operator.log").read_text()


def test_demo_names_the_known_scenarios_when_given_an_unknown_one(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "homeostat", "demo", "--scenarios", "bad-release,meteor"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "meteor" in done.stderr and "memory-leak" in done.stderr


def test_demo_without_prometheus_exits_non_zero_naming_the_fix(tmp_path: Path) -> None:
    env = {**os.environ, "HOMEOSTAT_PROMETHEUS": str(tmp_path / "no-such-prometheus")}
    done = subprocess.run([sys.executable, "-m", "homeostat", "demo"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 3
    assert "apt-get install -y prometheus" in done.stderr
