"""Leave-one-category-out over the dev corpora, per detector (run on demand; prints, asserts nothing).

    nice -n 19 .venv/bin/python bench/generalisation.py --detectors default,adaptive,robust_zscore \\
        --jobs 1 --confirm 3/5 --json /tmp/generalisation.json

For every detector: each category (a top-level folder of each corpus: NAB's five, kpi-dev's
``donut``) is left out in turn, the NAB threshold is swept on the other categories pooled and
the left-out category is scored at it (`homeostat.detectors.evaluation.generalisation`).
Prints one Markdown table per detector: left-out scores (standard / low FP / low FN), the
threshold used, the category's own in-sample score and threshold, their mean and minimum
over the categories with windows, the in-sample scores beside them, and with ``--confirm``
the operator's incident precision, recall and delay. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from homeostat.detectors import names
from homeostat.detectors.confirmation import ConfirmRule
from homeostat.detectors.evaluation.generalisation import (
    Corpus,
    GeneralisationResult,
    evaluate_generalisation,
    markdown,
    summary_markdown,
)

DEV = ["/work/shared/data/nab-dev", "/work/shared/data/kpi-dev"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--corpus", action="append", metavar="DIR",
        help="a corpus folder holding data/ and combined_windows.json (repeatable; default: nab-dev and kpi-dev)",
    )
    parser.add_argument("--detectors", default=",".join(names()), help="comma-separated (default: all registered)")
    parser.add_argument("--direction", default="both")
    parser.add_argument("--sensitivity", default="medium")
    parser.add_argument("--jobs", type=int, default=1, help="files scored in parallel per corpus (default: 1)")
    parser.add_argument("--confirm", metavar="K/N", help="also the operator's incidents under K of N")
    parser.add_argument("--min-change", type=float, default=0.0, metavar="X")
    parser.add_argument("--json", metavar="FILE", help="write every detector's full result as a JSON list")
    args = parser.parse_args()

    corpora = [Corpus.folder(path) for path in (args.corpus or DEV)]
    confirm = ConfirmRule.parse(args.confirm, min_change=args.min_change) if args.confirm else None
    results = []
    done: list[GeneralisationResult] = []
    for detector in [d.strip() for d in args.detectors.split(",") if d.strip()]:
        started = time.perf_counter()
        result = evaluate_generalisation(
            corpora=corpora, detector=detector, direction=args.direction, sensitivity=args.sensitivity,
            jobs=args.jobs, confirm=confirm,
        )
        wall = time.perf_counter() - started
        print(f"\n### {detector} (--direction {args.direction} --sensitivity {args.sensitivity}; {wall:.0f} s)\n")
        print(markdown(result))
        sys.stdout.flush()
        results.append(result.as_dict() | {"wall_seconds": round(wall, 1)})
        done.append(result)
    print("\n### Summary (left-out mean and minimum over the categories with windows)\n")
    print(summary_markdown(done))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
