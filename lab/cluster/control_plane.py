"""``ControlPlane``: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on
127.0.0.1, from the binaries ``build.py`` made, with a throwaway data folder and PKI.

    with ControlPlane(nodes=2) as cluster:
        cluster.kubectl("get", "nodes")          # /usr/bin/kubectl with cluster.kubeconfig (admin)
        cluster.kubeconfig                       # a Path: hand it to the operator, the client, Kopf

Every process runs in its own process group (``start_new_session``); leaving the ``with`` block
(or ``stop()``) sends SIGTERM to each group, newest first, SIGKILL after a grace period, and waits
until every group is empty. On Linux each process also gets SIGKILL if the thread that started it
dies (``PR_SET_PDEATHSIG``): a test run killed with SIGKILL leaves nothing behind either (so start
a ControlPlane from a thread that outlives it, e.g. the main thread). Nothing is written in the
repository; the data folder is removed unless ``keep=True``. What runs, and what kwok fakes, is in docs/cluster.md.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import yaml

from homeostat.lab.cluster import build, certs

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """A component did not start or did not become ready; the message has its log's tail."""


@dataclass
class Process:
    name: str
    command: list[str]
    log: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A `preexec_fn` that has Linux SIGKILL the child when the thread that started it dies (a test
    run killed with SIGKILL leaves nothing behind either); None where ``prctl`` is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl
            os._exit(1)

    return preexec


PR_SET_PDEATHSIG = 1


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group `pgid` (zombies of ours are reaped first)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ControlPlane:
    def __init__(
        self,
        *,
        nodes: int = 1,
        bin_dir: Path | None = None,
        workdir: Path | None = None,
        keep: bool = False,
        timeout: float = 120.0,
        apiserver_args: Sequence[str] = (),
        kubectl: str = "/usr/bin/kubectl",
    ) -> None:
        self.node_count = nodes
        found = bin_dir if bin_dir is not None else build.built_bin_dir()
        if found is None:
            raise ControlPlaneError(
                "the control plane binaries are not built: run `python -m homeostat.lab.cluster build`"
            )
        self.bin_dir = found
        self._workdir_given = workdir
        self.keep = keep
        self.timeout = timeout
        self.apiserver_args = list(apiserver_args)
        self.kubectl_binary = kubectl if Path(kubectl).exists() else (shutil.which("kubectl") or kubectl)
        self.processes: list[Process] = []
        self.workdir = Path()
        self.kubeconfig = Path()
        self.server = ""
        self.ports: dict[str, int] = {}
        self.pki: certs.Pki | None = None
        self.node_names = [f"kwok-node-{index}" for index in range(nodes)]
        self.startup_seconds = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        self.workdir = (
            self._workdir_given
            if self._workdir_given is not None
            else Path(tempfile.mkdtemp(prefix="homeostat-control-plane-"))
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _start(self) -> None:
        self.pki = pki = certs.generate(self.workdir / "pki")
        self.ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")}
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self.kubeconfig = self._write_kubeconfig(pki)

        etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        peer_url = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._spawn("etcd", [
            "--name=n0",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=n0={peer_url}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ])
        self._wait("etcd", lambda: self._http_ok(f"{etcd_url}/health"))

        self._spawn("kube-apiserver", [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--endpoint-reconciler-type=none",
            *self.apiserver_args,
        ])
        self._wait("kube-apiserver", lambda: self._api_ok("/readyz"))

        self._spawn("kube-controller-manager", [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['kcm']}",
            "--leader-elect=false",
            f"--root-ca-file={pki.ca_cert}",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cluster-cidr={POD_CIDR}",
            "--use-service-account-credentials=true",
        ])
        self._spawn("kube-scheduler", [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['scheduler']}",
            "--leader-elect=false",
        ])
        self._spawn("kwok", [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={build.stages_file(self.bin_dir)}",
            "--manage-all-nodes=true",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            f"--node-port={self.ports['kwok']}",
            f"--server-address=127.0.0.1:{self.ports['kwok']}",
        ])
        self._wait("kube-controller-manager", lambda: self._http_ok(f"https://127.0.0.1:{self.ports['kcm']}/healthz"))
        self._wait("kube-scheduler", lambda: self._http_ok(f"https://127.0.0.1:{self.ports['scheduler']}/healthz"))

        with self.client() as client:
            for name in self.node_names:
                response = client.post("/api/v1/nodes", json=_node(name))
                response.raise_for_status()
            self._wait("kwok (Nodes Ready)", lambda: self._nodes_ready(client))
            self._wait(
                "kube-controller-manager (the default ServiceAccount)",
                lambda: client.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
            )

    def stop(self) -> None:
        """Stop every process started, newest first; wait until each process group is empty."""
        for process in reversed(self.processes):
            _stop_group(process.popen)
        for process in self.processes:
            deadline = time.monotonic() + 10
            while group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.workdir != Path() and not self.keep and self._workdir_given is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        """The process (and process group) id of every process started."""
        return [process.pid for process in self.processes]

    # -- use -----------------------------------------------------------------------------------

    def ssl_context(self, *, admin: bool = True) -> ssl.SSLContext:
        """Trusts the cluster's CA; presents the admin's client certificate when `admin`."""
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        if admin:
            context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def client(self, *, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client to the API server: as the admin (``system:masters``, by client
        certificate), or with `token` only (the certificate would win over a bearer token)."""
        if token is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token}"}
        return httpx.Client(
            base_url=self.server, verify=self.ssl_context(admin=token is None), timeout=10.0, **kwargs
        )

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl with the admin kubeconfig (or `kubeconfig`); raise with its output on failure."""
        result = subprocess.run(
            [self.kubectl_binary, f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input, capture_output=True, text=True, timeout=60,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, output=result.stdout, stderr=result.stderr
            )
        return result

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """A kubeconfig that authenticates with a bearer `token` (a ServiceAccount's)."""
        assert self.pki is not None
        path.write_text(yaml.safe_dump(_kubeconfig(self.server, self.pki.ca_cert, {"token": token}, "token")))
        path.chmod(0o600)
        return path

    def logs(self, name: str, tail: int = 40) -> str:
        for process in self.processes:
            if process.name == name and process.log.exists():
                return "\n".join(process.log.read_text(errors="replace").splitlines()[-tail:])
        return ""

    # -- internals -----------------------------------------------------------------------------

    def _write_kubeconfig(self, pki: certs.Pki) -> Path:
        user = {
            "client-certificate-data": _b64(pki.admin_cert),
            "client-key-data": _b64(pki.admin_key),
        }
        path = self.workdir / "admin.kubeconfig"
        path.write_text(yaml.safe_dump(_kubeconfig(self.server, pki.ca_cert, user, "admin")))
        path.chmod(0o600)
        return path

    def _spawn(self, name: str, args: list[str]) -> None:
        log = self.workdir / f"{name}.log"
        command = [str(self.bin_dir / name), *args]
        with log.open("wb") as out:
            popen = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.workdir, preexec_fn=_die_with_parent(os.getpid()),
            )
        self.processes.append(Process(name, command, log, popen))

    def _wait(self, what: str, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                code = process.popen.poll()
                if code is not None:
                    raise ControlPlaneError(
                        f"{process.name} exited with {code} while waiting for {what}:\n{self.logs(process.name)}"
                    )
            with contextlib.suppress(httpx.HTTPError, OSError):
                if predicate():
                    return
            time.sleep(0.2)
        name = what.split(" ")[0]
        raise ControlPlaneError(f"{what}: not ready after {self.timeout}s:\n{self.logs(name)}")

    @staticmethod
    def _http_ok(url: str) -> bool:
        return httpx.get(url, verify=False, timeout=2.0).status_code == 200

    def _api_ok(self, path: str) -> bool:
        return httpx.get(self.server + path, verify=self.ssl_context(), timeout=2.0).status_code == 200

    def _nodes_ready(self, client: httpx.Client) -> bool:
        items = client.get("/api/v1/nodes").json().get("items", [])
        ready = {
            item["metadata"]["name"]
            for item in items
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in item.get("status", {}).get("conditions", [])
            )
        }
        return set(self.node_names) <= ready


def _stop_group(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(grace)
    # The leader may be gone while others of its group are not: SIGKILL whatever is left.
    if group_alive(popen.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(5)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _kubeconfig(server: str, ca: Path, user: dict[str, str], user_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "homeostat-lab", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "homeostat-lab", "context": {"cluster": "homeostat-lab", "user": user_name}}],
        "current-context": "homeostat-lab",
    }


def _node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }
