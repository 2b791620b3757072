"""An API-server outage end to end: the operator reaches the emulated API server through a TCP
proxy that the test stalls (requests go unanswered) and then cuts (connections reset, new ones
refused), with a real Prometheus that stays up. The policy's monitor must ride it out: no
daemon restart, no second back-fill, detection going on, the status resuming once the API
answers again, and nothing acted on meanwhile."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from homeostat.api.times import parse_time
from homeostat.lab.harness import OperatorProcess, deployment, policy, retry_port_clash, wait_until
from homeostat.lab.prometheus import PrometheusServer

API = "homeostat.dev/v1alpha1"
WRITES = ("POST", "PUT", "PATCH", "DELETE")

pytestmark = pytest.mark.slow


class FlakyProxy:
    """A TCP proxy in front of the API server: `stall()` forwards nothing more (connections are
    accepted, requests go unanswered), `cut()` resets every connection and every new one, `heal()`
    forwards again. It counts the requests it held and the connections it refused."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.mode = "pass"
        self.held = 0  # chunks that arrived while stalled and were never forwarded
        self.refused = 0  # connections reset on arrival while cut
        self._changed = threading.Condition()
        self._open: set[socket.socket] = set()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self._set("stall")

    def cut(self) -> None:
        self._set("cut")
        with self._changed:
            for sock in list(self._open):
                _reset(sock)
            self._open.clear()

    def heal(self) -> None:
        self._set("pass")

    def close(self) -> None:
        self._closing = True
        self.cut()
        self.listener.close()

    def _set(self, mode: str) -> None:
        with self._changed:
            self.mode = mode
            self._changed.notify_all()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "cut":
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._changed:
                self._open |= {client, server}
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([src], [], [], 0.2)
                if self.mode == "cut":
                    return
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    return
                with self._changed:  # a stalled proxy keeps what it got and forwards nothing
                    if self.mode == "stall":
                        self.held += 1
                    while self.mode == "stall":
                        self._changed.wait(0.2)
                    if self.mode == "cut":
                        return
                dst.sendall(data)
        except OSError:
            return
        finally:
            with self._changed:
                for sock in (src, dst):
                    if sock in self._open:
                        self._open.discard(sock)
                        _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (linger 0), as a dead load balancer or a killed API server does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


@pytest.fixture
def proxy(cluster: Any) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(cluster.url)
    yield flaky
    flaky.close()


@pytest.fixture
def proxied_operator(cluster: Any, proxy: FlakyProxy, warm_prometheus: PrometheusServer,
                     tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator with a kubeconfig naming the proxy (Kopf's watches go through it too)."""
    kubeconfig = yaml.safe_load(cluster.kubeconfig_path.read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = proxy.url
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    started: list[OperatorProcess] = []

    def start() -> OperatorProcess:
        process = OperatorProcess(kubeconfig=path, prometheus_url=warm_prometheus.url,
                                  log_path=tmp_path / f"operator-{len(started)}.log",
                                  extra=["--kube-request-timeout", "1"])
        started.append(process)
        process.wait_ready()
        return process

    yield retry_port_clash(start)
    for process in started:
        process.stop()


def metric(operator: OperatorProcess, prefix: str) -> float:
    """The sum of the samples whose line starts with `prefix` (a name, or a name and labels)."""
    return sum(float(line.split()[-1]) for line in operator.metrics().splitlines() if line.startswith(prefix))


def last_evaluation(cluster: Any) -> float:
    obj = cluster.get(API, "anomalypolicies", "shop", "checkout") or {}
    stamp = (obj.get("status") or {}).get("lastEvaluation")
    return parse_time(stamp) if stamp else 0.0


@pytest.mark.parametrize("outage", ["stall-then-cut", "cut"])
def test_an_api_outage_neither_restarts_the_monitor_nor_back_fills_it_again(
    cluster: Any, warm_prometheus: PrometheusServer, latency: dict[str, float], proxy: FlakyProxy,
    proxied_operator: OperatorProcess, outage: str,
) -> None:
    operator = proxied_operator
    cluster.apply(deployment("checkout"))
    warm_prometheus.wait_for("lab_latency_seconds", count=3)
    cluster.apply(policy("checkout", {
        "target": {"kind": "Deployment", "name": "checkout"},
        "interval": "1s", "lookback": "10m", "evaluationDelay": "0s", "staleness": "3s",
        "signals": [{"name": "latency", "query": "max by (pod) (lab_latency_seconds)",
                     "detector": {"name": "robust_zscore"}}],
        "confirm": {"k": 2, "n": 3},
        "playbook": {"steps": [{"action": "restart"}], "cooldown": "3s"},
    }))
    wait_until(lambda: (cluster.get(API, "anomalypolicies", "shop", "checkout") or {}).get("status", {})
               .get("phase") == "Healthy", timeout=45, message="no healthy first evaluation")
    backfills = 'homeostat_query_duration_seconds_count{kind="range"}'
    assert metric(operator, backfills) == 1  # one signal: one range query per back-fill
    cycles = 'homeostat_evaluations_total{namespace="shop",outcome="ok",policy="checkout"}'

    def cycles_go_on(while_: str) -> None:
        """Detection goes on through the outage (Prometheus answers): two more cycles."""
        evaluated = metric(operator, cycles)
        wait_until(lambda: metric(operator, cycles) >= evaluated + 2, timeout=30,
                   message=f"cycles stopped while the API {while_}")

    if outage == "stall-then-cut":
        # The API stalls: every request (the status patch, the target read, the Incident list) is
        # accepted and never answered. A call without a timeout would wait for ever.
        proxy.stall()
        wait_until(lambda: proxy.held >= 1, timeout=30, message="the operator sent nothing to the stalled API")
        cycles_go_on("stalled (a call without a timeout?)")
    # Every connection is dropped, and new ones are refused: transport errors, not HTTP answers.
    proxy.cut()
    wait_until(lambda: proxy.refused >= 3, timeout=30, message="the operator stopped calling the API")
    cycles_go_on("refused connections")
    proxy.heal()
    healed = time.time()

    # The same monitor goes on: the status is written again, from evaluations made after the outage.
    wait_until(lambda: last_evaluation(cluster) > healed, timeout=30,
               message=f"the policy's status did not resume after the outage\n{operator.log()}")
    assert metric(operator, backfills) == 1, "the detectors were rebuilt (a second back-fill)"
    assert "failed with an exception" not in operator.log_path.read_text(errors="replace"), "the daemon crashed"
    reasons = ["timeout", "connection"] if outage == "stall-then-cut" else ["connection"]
    for call in ("status", "target"):
        for reason in reasons:
            counted = f'homeostat_kube_errors_total{{call="{call}",reason="{reason}"}}'
            assert metric(operator, counted) >= 1, counted
    # Nothing was acted on: healthy all along, no Incident, no write to the workload.
    assert cluster.list(API, "incidents", namespace="shop") == []
    assert not [r for r in cluster.requests if r.method in WRITES and "/apis/apps/" in r.path
                and (r.user_agent or "").startswith("homeostat/")]


class SlowStore:
    """An Incident store whose listing takes `delay` seconds of the runner's clock (a slow API);
    any write fails the test."""

    def __init__(self, clock: list[float], delay: float) -> None:
        self.clock, self.delay = clock, delay

    async def list_all(self, namespace: str) -> list[Any]:
        self.clock[0] += self.delay
        return []

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the runner called {name} on observations it should not have decided on")


@pytest.mark.parametrize("delay", [0.5, 12.0])
async def test_a_confirmed_anomaly_is_not_acted_on_once_the_observation_is_stale(delay: float) -> None:
    from homeostat.api.policy import PolicySpec
    from homeostat.playbooks.machine import Observations, SeriesNow, SignalNow
    from homeostat.playbooks.remediator import Remediator
    from homeostat.playbooks.runner import PolicyInfo, TargetInfo, remediate

    t0 = 1_800_000_000.0
    clock = [t0]
    spec = PolicySpec.model_validate({"target": {"kind": "Deployment", "name": "web"},
                                      "signals": [{"name": "latency", "query": "q"}],
                                      "playbook": {"steps": [{"action": "restart"}]}})
    confirmed = SignalNow(name="latency", usable=True, verdict="anomalous", series=(
        SeriesNow(labels={}, value=1.0, anomalous=True, confirmed=True, expected=0.1, lower=0.05, upper=0.15,
                  score=0.99),))
    deps = Remediator(store=SlowStore(clock, delay), actions={}, clock=lambda: clock[0])  # type: ignore[arg-type]
    run = remediate(policy=PolicyInfo(namespace="shop", name="web"), spec=spec, target=TargetInfo(found=True),
                    obs=Observations(at=t0, signals={"latency": confirmed}), deps=deps, fresh_until=t0 + 10.0)
    if delay > 10.0:  # listing the Incidents took longer than the observation is good for: nothing decided
        report = await run
        assert report.decisions == [] and report.active_incident is None
    else:  # in time: the anomaly is acted on (an Incident is opened)
        with pytest.raises(AssertionError, match="called create"):
            await run
