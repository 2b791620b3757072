"""Build the control plane's binaries from the Go modules in ``go/`` once, cached outside the repo.

Two wrapper modules pin what is built (their go.mod and go.sum are committed; they are source):

* ``go/kubernetes``: ``k8s.io/kubernetes`` with every staging module replaced by its tag (the
  replace list generated from kubernetes' own go.mod), and ``go.etcd.io/etcd/server/v3`` at the
  version kubernetes requires: kube-apiserver, kube-controller-manager, kube-scheduler, etcd.
* ``go/kwok``: ``sigs.k8s.io/kwok`` with its own dependencies (not the kubernetes graph).

The cache is ``$HOMEOSTAT_CONTROL_PLANE_CACHE`` or ``$XDG_CACHE_HOME/homeostat/control-plane``
(``~/.cache/homeostat/control-plane``), one folder per key; the key names the versions and hashes
the go.mod/go.sum files and the Go version, so changing a pin builds a new folder. Every binary is
written to a temporary name and renamed when complete: an interrupted build resumes where it
stopped, and a warm cache is a no-op (no ``go`` process at all).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

GO_DIR = Path(__file__).resolve().parent / "go"
KUBERNETES_MODULE = GO_DIR / "kubernetes"
KWOK_MODULE = GO_DIR / "kwok"


@dataclass(frozen=True)
class Component:
    name: str
    module_dir: Path
    package: str
    ldflags: tuple[str, ...] = ()


def _require_version(go_mod: Path, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{go_mod} does not require {module}")
    return match.group(1)


def versions() -> dict[str, str]:
    """The pinned versions, read from the committed go.mod files."""
    return {
        "kubernetes": _require_version(KUBERNETES_MODULE / "go.mod", "k8s.io/kubernetes"),
        "etcd": _require_version(KUBERNETES_MODULE / "go.mod", "go.etcd.io/etcd/server/v3"),
        "kwok": _require_version(KWOK_MODULE / "go.mod", "sigs.k8s.io/kwok"),
    }


def _version_ldflags(kubernetes: str) -> tuple[str, ...]:
    # What hack/lib/version.sh stamps; unstamped binaries say v0.0.0-master.
    major, minor = kubernetes.lstrip("v").split(".")[:2]
    flags: list[str] = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={kubernetes}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=1970-01-01T00:00:00Z",
        ]
    return tuple(flags)


def components() -> list[Component]:
    pinned = versions()
    stamp = _version_ldflags(pinned["kubernetes"])
    return [
        Component("etcd", KUBERNETES_MODULE, "go.etcd.io/etcd/server/v3"),
        Component("kube-apiserver", KUBERNETES_MODULE, "k8s.io/kubernetes/cmd/kube-apiserver", stamp),
        Component("kube-controller-manager", KUBERNETES_MODULE, "k8s.io/kubernetes/cmd/kube-controller-manager", stamp),
        Component("kube-scheduler", KUBERNETES_MODULE, "k8s.io/kubernetes/cmd/kube-scheduler", stamp),
        Component(
            "kwok",
            KWOK_MODULE,
            "sigs.k8s.io/kwok/cmd/kwok",
            (f"-X sigs.k8s.io/kwok/pkg/consts.Version={pinned['kwok']}",),
        ),
    ]


def go_binary() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        raise RuntimeError("the control plane is built from Go modules: install Go (1.26+) and put `go` on PATH")
    return found


def _go_version() -> str:
    try:
        return subprocess.run([go_binary(), "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout
    except (RuntimeError, OSError, subprocess.CalledProcessError):
        return "no-go"


def cache_root() -> Path:
    explicit = os.environ.get("HOMEOSTAT_CONTROL_PLANE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "homeostat" / "control-plane"


def cache_key(go_version: str | None = None) -> str:
    """``k8s-v1.37.2-etcd-v3.7.0-kwok-v0.8.0-<hash>``: the hash covers the go.mod/go.sum files and Go."""
    digest = hashlib.sha256()
    for module in (KUBERNETES_MODULE, KWOK_MODULE):
        for name in ("go.mod", "go.sum"):
            digest.update((module / name).read_bytes())
    digest.update((go_version if go_version is not None else _go_version()).strip().encode())
    pinned = versions()
    return f"k8s-{pinned['kubernetes']}-etcd-{pinned['etcd']}-kwok-{pinned['kwok']}-{digest.hexdigest()[:12]}"


def bin_dir(go_version: str | None = None) -> Path:
    return cache_root() / cache_key(go_version) / "bin"


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
"""kwok's stages (from its module, ``kustomize/stage/``): what kwokctl's default cluster plays."""


def stages_file(bin_directory: Path) -> Path:
    return bin_directory / "kwok-stages.yaml"


def _write_stages(go: str, env: dict[str, str], target: Path) -> None:
    listed = subprocess.run(
        [go, "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
        cwd=KWOK_MODULE, env=env, capture_output=True, text=True, check=True,
    )
    root = Path(listed.stdout.strip()) / "kustomize" / "stage"
    documents = [(root / name).read_text().strip() for name in KWOK_STAGES]
    partial = target.with_name(target.name + ".partial")
    partial.write_text("\n---\n".join(documents) + "\n")
    partial.rename(target)


def _stamp_file(directory: Path) -> Path:
    return directory / ".go-version"


def built_bin_dir() -> Path | None:
    """The folder holding every binary for the pinned versions, or None if the build is missing.

    Does not run ``go`` when a build exists: the folder remembers the Go version it was built with
    and the key is recomputed from that (so tests can check without Go on PATH).
    """
    root = cache_root()
    pinned = versions()
    prefix = f"k8s-{pinned['kubernetes']}-etcd-{pinned['etcd']}-kwok-{pinned['kwok']}-"
    if not root.is_dir():
        return None
    for candidate in sorted(root.glob(prefix + "*")):
        directory = candidate / "bin"
        stamp = _stamp_file(candidate)
        if not stamp.exists() or cache_key(stamp.read_text()) != candidate.name:
            continue
        if all((directory / component.name).is_file() for component in components()) and stages_file(
            directory
        ).is_file():
            return directory
    return None


class _Progress:
    """Prints ``building NAME... 1m30s`` every `every` seconds while a build runs."""

    def __init__(self, name: str, out: TextIO, every: float) -> None:
        self.name, self.out, self.every = name, out, every
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def elapsed(self) -> str:
        seconds = int(time.monotonic() - self.start)
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            print(f"  building {self.name}... {self.elapsed()}", file=self.out, flush=True)

    def __enter__(self) -> _Progress:
        print(f"building {self.name}", file=self.out, flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def build(*, out: TextIO | None = None, parallel: int | None = None, progress_every: float = 30.0) -> Path:
    """Build what is missing for the pinned versions (a no-op when warm); return the bin folder.

    The Go builds run under ``nice -n 19`` (other work on the machine comes first) with
    ``CGO_ENABLED=0``; `parallel` (``$HOMEOSTAT_GO_PARALLEL``) is ``go build -p``, default Go's (the
    number of CPUs); ``-p 1`` halves the peak memory (one compile or link at a time).
    """
    stream = out if out is not None else sys.stderr
    existing = built_bin_dir()
    if existing is not None:
        print(f"control plane binaries up to date: {existing}", file=stream, flush=True)
        return existing
    go = go_binary()
    go_version = _go_version()
    target = bin_dir(go_version)
    target.mkdir(parents=True, exist_ok=True)
    if parallel is None and os.environ.get("HOMEOSTAT_GO_PARALLEL"):
        parallel = int(os.environ["HOMEOSTAT_GO_PARALLEL"])
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    nice = [shutil.which("nice") or "nice", "-n", "19"] if shutil.which("nice") else []
    started = time.monotonic()
    for component in components():
        final = target / component.name
        if final.is_file():
            continue
        partial = target / f".{component.name}.partial"
        command = [*nice, go, "build", "-trimpath", "-o", str(partial)]
        if parallel is not None:
            command += ["-p", str(parallel)]
        command += ["-ldflags", " ".join(("-s", "-w", *component.ldflags)), component.package]
        with _Progress(component.name, stream, progress_every) as progress:
            result = subprocess.run(command, cwd=component.module_dir, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(
                    f"building {component.name} failed ({result.returncode}): {' '.join(command)}\n"
                    f"{result.stdout}{result.stderr}"
                )
            partial.rename(final)
            print(f"  built {component.name} in {progress.elapsed()}", file=stream, flush=True)
    if not stages_file(target).is_file():
        _write_stages(go, env, stages_file(target))
    _stamp_file(target.parent).write_text(go_version)
    total = int(time.monotonic() - started)
    print(f"control plane binaries built in {total // 60}m{total % 60:02d}s: {target}", file=stream, flush=True)
    return target
