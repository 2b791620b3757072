"""The command line: ``build`` the binaries, bring a control plane ``up``, print ``versions``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from homeostat.lab.cluster import build as builder


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m homeostat.lab.cluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the binaries once (a no-op when cached); prints the bin folder")
    build.add_argument("-p", "--parallel", type=int, default=None, help="go build -p (default: Go's, the CPUs)")
    up = commands.add_parser("up", help="start a control plane, print its kubeconfig, stop it on Ctrl-C")
    up.add_argument("--nodes", type=int, default=1, help="kwok Nodes to create (default 1)")
    up.add_argument("--workdir", type=Path, default=None, help="data folder (default: a temporary one, removed)")
    up.add_argument("--build", action="store_true", help="build the binaries first if they are missing")
    commands.add_parser("versions", help="print the pinned versions and the cache folder")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(builder.build(parallel=args.parallel))
        return 0
    if args.command == "versions":
        print(json.dumps({**builder.versions(), "bin": str(builder.bin_dir())}, indent=2))
        return 0
    if args.command == "up":
        from homeostat.lab.cluster.control_plane import ControlPlane, ControlPlaneError

        if args.build:
            builder.build()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGINT may be ignored (`... &`)
            signal.signal(signum, _terminate)
        try:
            with ControlPlane(nodes=args.nodes, workdir=args.workdir, keep=args.workdir is not None) as cluster:
                print(f"control plane up in {cluster.startup_seconds:.1f}s: {cluster.server}", file=sys.stderr)
                print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
                print("Ctrl-C stops it", file=sys.stderr, flush=True)
                while True:
                    time.sleep(3600)
        except ControlPlaneError as error:
            print(error, file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
            return 0
    parser.print_help(sys.stderr)
    return 2
