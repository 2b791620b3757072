"""`homeostat crds`: print (or write) the CRDs generated from the models."""

from __future__ import annotations

import argparse
import pathlib

from homeostat.api.crds import KINDS, crd_manifest, render_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=pathlib.Path, default=None,
        help="write one file per CRD into this folder (e.g. crds/) instead of printing",
    )


def run(args: argparse.Namespace) -> int:
    out: pathlib.Path | None = args.out
    documents = [(resource.crd_name, render_yaml(crd_manifest(resource))) for resource in KINDS]
    if out is None:
        print("---\n".join(text for _, text in documents), end="")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in documents:
        (out / f"{name}.yaml").write_text(text)
    return 0
