"""``homeostat eval``: score a detector on a NAB-layout corpus and print the scores as JSON.

Wired by ``homeostat.cli`` through `add_arguments` and `run`. Input errors print one line
on stderr naming the option and the fix, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import EvaluationResult

__all__ = ["add_arguments", "run"]

USAGE_ERROR = 2

_FIXES = {
    "--data": "pass the folder that holds the series as <category>/<name>.csv with a 'timestamp,value' header",
    "--labels": "pass a JSON file mapping each CSV path relative to --data to [[start, end], ...] "
    "(NAB's combined_windows.json)",
    "--out": "pass a folder outside --data for the results CSVs",
    "--per-file": "pass a writable file path ending in .csv or .json",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` options to ``parser``."""
    parser.add_argument("--data", required=True, metavar="DIR", help="folder of CSV series (NAB layout)")
    parser.add_argument(
        "--labels", required=True, metavar="FILE", help="windows JSON: relative CSV path -> [[start, end], ...]"
    )
    parser.add_argument(
        "--detector", default="default", metavar="NAME", help="registered detector (default: %(default)s)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for one results CSV per input file")
    parser.add_argument(
        "--direction", default="both", help="up, down or both (default: %(default)s; NAB anomalies go both ways)"
    )
    parser.add_argument("--sensitivity", default="medium", help="low, medium or high (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="files scored in parallel (default: 1)")
    parser.add_argument("--per-file", metavar="FILE", help="also write a per-file breakdown (.json, else CSV) to FILE")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--confirm",
        metavar="K/N",
        help="also apply the operator's confirmation rule (K anomalous of the last N, an alarm among them) and "
        "report incident precision, recall and delay in points (the JSON's 'confirm')",
    )
    parser.add_argument(
        "--min-change",
        type=float,
        default=0.0,
        metavar="X",
        help="with --confirm: the signal's minChange, relative (default: %(default)s, off)",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the summary JSON on stdout; 0 on success, 2 on an input error."""
    from homeostat.detectors.base import parse_direction, parse_sensitivity

    from .corpus import CorpusError, LabelsError
    from .runner import DetectorError, OutputError, evaluate_corpus

    def fail(option: str, message: str) -> int:
        fix = _FIXES.get(option)
        if fix and "; pass " not in message:
            message = f"{message}; {fix}"
        print(f"homeostat eval: {option}: {message}", file=sys.stderr)
        return USAGE_ERROR

    data, labels = Path(args.data), Path(args.labels)
    if not data.is_dir():
        return fail("--data", f"{data} is not a directory")
    if not labels.is_file():
        return fail("--labels", f"{labels} is not a file")
    try:
        parse_direction(args.direction)
    except ValueError as exc:
        return fail("--direction", str(exc))
    try:
        parse_sensitivity(args.sensitivity)
    except ValueError as exc:
        return fail("--sensitivity", str(exc))
    if args.jobs < 1:
        return fail("--jobs", f"{args.jobs} is not a number of processes; pass 1 or more")
    confirm = None
    if args.confirm is not None:
        from homeostat.detectors.confirmation import ConfirmRule

        try:
            confirm = ConfirmRule.parse(args.confirm, min_change=args.min_change)
        except ValueError as exc:
            return fail("--min-change" if "min-change" in str(exc) else "--confirm", str(exc))
    elif args.min_change:
        return fail("--min-change", "applies to the confirmation rule only; pass --confirm K/N too")

    try:
        result = evaluate_corpus(
            data=data,
            labels=labels,
            detector=args.detector,
            direction=args.direction,
            sensitivity=args.sensitivity,
            jobs=args.jobs,
            out=Path(args.out),
            progress=not args.no_progress,
            confirm=confirm,
        )
    except CorpusError as exc:
        return fail("--data", str(exc))
    except LabelsError as exc:
        return fail("--labels", str(exc))
    except DetectorError as exc:
        return fail("--detector", str(exc))
    except OutputError as exc:
        return fail("--out", str(exc))

    _warn(result, data=data)
    if args.per_file:
        try:
            _write_per_file(Path(args.per_file), result)
        except OSError as exc:
            return fail("--per-file", f"{args.per_file}: cannot write ({exc.strerror})")
    summary: dict[str, Any] = {"data": str(data), "labels": str(labels), "out": str(args.out)}
    summary.update(result.as_dict())
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _warn(result: EvaluationResult, *, data: Path) -> None:
    """Say on stderr what was not scored, so that a mislabelled corpus is noticed, and which
    files' time goes back (once per file, at the first row that does)."""
    for path, step in result.time_goes_back.items():
        print(
            f"homeostat eval: warning: {data / path}:{step.line}: {step.describe()}; scored in file order, as NAB does",
            file=sys.stderr,
        )
    notes = []
    if result.unlabeled:
        notes.append(f"{len(result.unlabeled)} CSV file(s) have no labels entry and were not scored (unlabeled_files)")
    if result.labels_without_file:
        notes.append(f"{len(result.labels_without_file)} labels key(s) have no CSV file (labels_without_file)")
    in_probation = sum(f.windows_in_probation for f in result.files)
    if in_probation:
        notes.append(f"{in_probation} window(s) end inside the probationary period and were not scored (--per-file)")
    without_points = sum(f.windows_without_points for f in result.files)
    if without_points:
        notes.append(f"{without_points} window(s) contain no point of their file and were not scored (--per-file)")
    for note in notes:
        print(f"homeostat eval: note: {note}", file=sys.stderr)


def _write_per_file(path: Path, result: EvaluationResult) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([f.as_dict() for f in result.files], indent=2) + "\n", encoding="utf-8")
        return
    rows = [f.flat() for f in result.files]
    with path.open("w", newline="", encoding="utf-8") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
