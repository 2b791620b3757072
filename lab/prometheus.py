"""A real Prometheus server for the lab, the tests and the benchmarks.

Starts the Debian `prometheus` binary on 127.0.0.1 with a throwaway data directory and a
short scrape interval. Targets are given through a file_sd file that Prometheus watches, so
exporters can come and go without a reload. Nothing here is imported by the operator.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

INSTALL_HINT = "install it with `apt-get install -y prometheus` (Debian/Ubuntu), or put it on PATH"


class PrometheusMissing(RuntimeError):
    """The `prometheus` binary is not installed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_prometheus() -> str:
    """Path of the `prometheus` binary ($HOMEOSTAT_PROMETHEUS when set), or PrometheusMissing."""
    override = os.environ.get("HOMEOSTAT_PROMETHEUS")
    if override is not None:
        path: str | None = override if os.access(override, os.X_OK) else None
    else:
        path = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if path is None:
        raise PrometheusMissing(f"the `prometheus` binary was not found; {INSTALL_HINT}")
    return path


class PrometheusServer:
    """One Prometheus process; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        scrape_interval: float = 1.0,
        targets: list[str] | None = None,
        port: int | None = None,
        data_dir: Path | None = None,
        extra_flags: list[str] | None = None,
    ) -> None:
        self.scrape_interval = scrape_interval
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="homeostat-prometheus-"))
        self._targets: dict[str, dict[str, str]] = {}
        self._extra_flags = extra_flags or []
        self._process: subprocess.Popen[bytes] | None = None
        for target in targets or []:
            self._targets[target] = {}

    # -- targets -------------------------------------------------------------------------
    def set_targets(self, targets: dict[str, dict[str, str]]) -> None:
        """Scrape exactly these `host:port` targets, each with extra labels."""
        self._targets = dict(targets)
        self._write_targets()

    def add_target(self, target: str, labels: dict[str, str] | None = None) -> None:
        self._targets[target] = labels or {}
        self._write_targets()

    def remove_target(self, target: str) -> None:
        self._targets.pop(target, None)
        self._write_targets()

    def _write_targets(self) -> None:
        groups = [{"targets": [target], "labels": labels} for target, labels in self._targets.items()]
        tmp = self.dir / "targets.json.tmp"
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.dir / "targets.json")  # atomic: Prometheus never reads half a file

    # -- history -------------------------------------------------------------------------
    def import_history(self, series: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]]) -> None:
        """Write past samples into the TSDB before start, with `promtool tsdb create-blocks-from`.

        `series` maps (metric name, sorted label pairs) to (unix time, value) points, oldest
        first. Include the `job` and `instance` labels of the scrape target so that live
        scrapes continue the same series: detectors back-fill hours of history at once
        instead of waiting for it.
        """
        if self._process is not None:
            raise RuntimeError("import history before start()")
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        lines: list[str] = []
        by_name: dict[str, list[str]] = {}
        for (name, labels), points in series.items():
            rendered = ",".join(f'{key}="{value}"' for key, value in labels)
            by_name.setdefault(name, []).extend(f"{name}{{{rendered}}} {value!r} {t:.3f}" for t, value in points)
        for name, samples in by_name.items():
            lines.append(f"# TYPE {name} gauge")
            lines.extend(samples)
        lines.append("# EOF")
        source = self.dir / "history.om"
        source.write_text("\n".join(lines) + "\n")
        (self.dir / "data").mkdir(exist_ok=True)
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(self.dir / "data")],
            capture_output=True, text=True, timeout=300,
        )
        source.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"promtool could not import history: {done.stderr.strip() or done.stdout.strip()}")

    # -- life cycle ----------------------------------------------------------------------
    def start(self, *, timeout: float = 30.0) -> PrometheusServer:
        binary = find_prometheus()
        interval = f"{max(int(self.scrape_interval * 1000), 100)}ms"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": "lab",
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "file_sd_configs": [{"files": [str(self.dir / "targets.json")], "refresh_interval": "1s"}],
                }
            ],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._write_targets()
        log = open(self.dir / "prometheus.log", "wb")  # noqa: SIM115 - owned by the process
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
                *self._extra_flags,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the demo is ours to handle, not Prometheus'
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"prometheus did not become ready within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        path = self.dir / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its data when we made it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- queries, for tests and the demo ---------------------------------------------------
    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def wait_for(self, promql: str, *, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until `promql` returns at least `count` series."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if len(result) >= count:
                return result
            time.sleep(0.2)
        raise TimeoutError(f"{promql!r} returned {len(result)} series after {timeout}s, wanted {count}")
