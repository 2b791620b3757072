"""``python -m homeostat.lab.kube --port N --crds DIR``: serve the emulated API until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import signal
import threading
from typing import Any

import yaml

from homeostat.lab.kube.cluster import EmulatedCluster


def load_crds(directory: pathlib.Path | None) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the ``*.yaml``/``*.yml``/``*.json`` files of a directory."""
    if directory is None:
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append(doc)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m homeostat.lab.kube", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--crds", type=pathlib.Path, default=None, help="a directory of CRD manifests")
    parser.add_argument("--no-controllers", action="store_true", help="do not run the workload controllers")
    parser.add_argument("--pod-ready-delay", type=float, default=1.0, help="seconds until a new Pod is Ready")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmulatedCluster(crds=load_crds(args.crds), port=args.port, controllers=not args.no_controllers,
                         pod_ready_delay=args.pod_ready_delay) as cluster:
        print(f"Emulated Kubernetes API on {cluster.url}", flush=True)
        print(f"export KUBECONFIG={cluster.kubeconfig_path}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
