"""The `homeostat` command: a thin dispatcher over the packages.

Each subcommand lives in the package that owns its work and exposes two functions,
`add_arguments(parser)` and `run(args) -> int`; this module only wires them to names.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Modules are imported lazily so that `homeostat crds`
# does not pay for Kopf, and `homeostat eval` does not need Kubernetes at all.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("homeostat.operator.command", "run the operator against a cluster"),
    "demo": ("homeostat.lab.demo", "run the embedded demo: emulated cluster, fleet, Prometheus, operator"),
    "crds": ("homeostat.api.command", "print the CRD YAML generated from the models"),
    "eval": ("homeostat.detectors.evaluation.command", "score a detector on a NAB-layout corpus"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog="homeostat", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text)
        sub.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not exc.name or not module_name.startswith(exc.name):
                raise
            sub.set_defaults(_missing=f"{name}: not available in this build ({module_name})")
            continue
        module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = getattr(args, "_missing", None)
    if missing:
        print(f"homeostat {missing}", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
