"""Helpers to drive the operator in tests and the demo: manifests, the operator process, polling.

Kept in the package (like `kopf.testing`) so that tests, the demo and the benchmarks share one
way of starting the operator against the lab.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from homeostat.lab.prometheus import PrometheusServer, free_port

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition polled by `wait_until` never became true."""


def deployment(name: str, namespace: str = "shop", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": f"example.com/{name}:1.0"}]},
            },
        },
    }


def policy(name: str, spec: dict[str, Any], namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "homeostat.dev/v1alpha1",
        "kind": "AnomalyPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


class OperatorProcess:
    """`homeostat run --dev` as a child process, with its log kept for failures."""

    def __init__(self, *, kubeconfig: Path, prometheus_url: str | None, log_path: Path, extra: list[str]) -> None:
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        while self.liveness_port == self.metrics_port:  # both were free: the same one may come twice
            self.liveness_port = free_port()
        self.log_path = log_path
        # -P: `-m` would put the log's folder first on sys.path; if that is the repository (`homeostat
        # demo --keep .`), its operator/ folder shadows the standard library's `operator`.
        args = [
            sys.executable, "-P", "-m", "homeostat", "run", "--dev", "--kubeconfig", str(kubeconfig),
            "--metrics-port", str(self.metrics_port), "--liveness-port", str(self.liveness_port), "-v",
            # The lab's Prometheus servers, fakes and webhook receivers all listen on 127.0.0.1.
            "--allow-host", "127.0.0.1", *extra,
        ]
        if prometheus_url:
            args += ["--prometheus-url", prometheus_url]
        self._log = open(log_path, "wb")  # noqa: SIM115
        # Not the runner's own pod identity: two test operators must not share a Lease holder identity.
        env = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "POD_NAMESPACE")}
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=log_path.parent,
                                        env=env)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator not live after {timeout}s:\n{self.log()}")

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


def port_clash(exc: BaseException) -> bool:
    """Whether a server failed to start because its port was taken (the error, or its log, says so)."""
    return getattr(exc, "errno", None) == errno.EADDRINUSE or "address already in use" in str(exc).lower()


def retry_port_clash(start: Callable[[], T], *, attempts: int = 3) -> T:
    """`start()`, again when it failed because a port was taken; `start` must pick fresh ports.

    `free_port` finds a port that is free when asked; until the server binds it (a second or more
    for Prometheus or the operator, on a loaded machine) any other process may take it.
    """
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except (OSError, RuntimeError) as exc:
            if attempt == attempts or not port_clash(exc):
                raise
    raise AssertionError("unreachable")


def start_prometheus(
    *, targets: list[str], scrape_interval: float = 0.5,
    history: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] | None = None,
) -> PrometheusServer:
    """A started Prometheus scraping `targets`, with `history` imported first; on a new port if its
    port was taken before it could bind. The caller stops it."""

    def start() -> PrometheusServer:
        server = PrometheusServer(scrape_interval=scrape_interval, targets=targets)
        try:
            if history is not None:
                server.import_history(history)
            return server.start()
        except BaseException:
            server.stop()  # the process if any, and its data folder
            raise

    return retry_port_clash(start)


def wait_until(predicate: Callable[[], Any], *, timeout: float, message: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `message` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise WaitTimeout(f"{message} (after {timeout}s; last: {last!r})")


def load_example(name: str) -> dict[str, Any]:
    import yaml

    root = Path(__file__).resolve().parent.parent
    loaded: dict[str, Any] = yaml.safe_load((root / "examples" / name).read_text())
    return loaded


LAB_PODS = ("a", "b", "c")
"""The pods of the gauge `lab_latency_seconds` that the end-to-end tests drive."""


def noise(level: float, step: int, pod_index: int) -> float:
    """A deterministic wobble of +-6 % around `level`, different for each pod."""
    return level * (1 + 0.02 * ((step * (pod_index + 3)) % 7 - 3))


def noise_history(
    target: str, *, seconds: int = 900, level: float = 0.1
) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]]:
    """`seconds` of healthy `lab_latency_seconds` per pod, up to 5 s ago, for `import_history`,
    labelled as the scrape of `target` so live data continues the same series."""
    now = time.time()
    return {
        ("lab_latency_seconds", (("instance", target), ("job", "lab"), ("pod", pod))): [
            (now - seconds + step, noise(level, step, index)) for step in range(0, seconds - 5)
        ]
        for index, pod in enumerate(LAB_PODS)
    }
