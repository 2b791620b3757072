"""`homeostat demo`, the README's first command, end to end at a small scale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _processes_in(folder: Path) -> list[str]:
    """Command lines of live processes whose working directory is `folder`.

    The demo runs in `folder`, so Prometheus and the operator it starts inherit it; processes
    of other tests on the same machine do not.
    """
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(proc / "cwd").resolve() == folder.resolve():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def test_demo_detects_the_fault_and_leaves_no_process_behind(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "homeostat", "demo", "--history", "900", "--warmup", "6", "--fault", "16",
         "--recovery", "14", "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "FAULT: checkout latency x4" in out
    assert "Anomalous" in out and "AnomalyConfirmed" in out and "AnomalyCleared" in out
    assert "done; no process left behind" in out
    assert _processes_in(tmp_path) == [], "the demo left Prometheus or the operator running"
    log = (tmp_path / "operator.log").read_text()
    assert "Operator is stopping" in log


def test_demo_without_prometheus_exits_non_zero_naming_the_fix(tmp_path: Path) -> None:
    env = {**os.environ, "HOMEOSTAT_PROMETHEUS": str(tmp_path / "no-such-prometheus")}
    done = subprocess.run([sys.executable, "-m", "homeostat", "demo"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 3
    assert "apt-get install -y prometheus" in done.stderr
