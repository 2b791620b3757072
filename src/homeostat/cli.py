"""The `homeostat` command: a thin dispatcher over the packages.

Each subcommand lives in the package that owns its work and exposes two functions,
`add_arguments(parser)` and `run(args) -> int`; this module only wires them to names.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Only the chosen module is imported, so that `homeostat crds`
# does not pay for Kopf, and `homeostat eval` does not need Kubernetes at all.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("homeostat.operator.command", "run the operator against a cluster"),
    "demo": ("homeostat.lab.demo", "run the embedded demo: emulated cluster, fleet, Prometheus, operator"),
    "crds": ("homeostat.api.command", "print the CRD YAML generated from the models"),
    "eval": ("homeostat.detectors.evaluation.command", "score a detector on a NAB-layout corpus"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="homeostat", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in arguments if not word.startswith("-")), None)
    args = build_parser(command).parse_args(arguments)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
