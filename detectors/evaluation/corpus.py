"""Reading a NAB-layout corpus: CSV series under a folder and a windows JSON file.

Layout (the Numenta Anomaly Benchmark's): every ``*.csv`` under the data folder holds a
``timestamp,value`` header and one row per point; the labels file maps each CSV's path
relative to the data folder to a list of ``[start, end]`` anomaly windows.

Rows are kept in file order, which is the order they are streamed and scored in. A file
whose timestamps go back (NAB's own ``realKnownCause/machine_temperature_system_failure.csv``
repeats an hour at line 10151) is read as it stands, as NAB reads, streams and scores it;
`Series.backstep` records where, so that the caller can warn. Only what cannot be read is
refused: a missing column, a value or timestamp that does not parse.

Timestamps are naive ISO 8601 (``2014-04-01 00:00:00``) and are read as UTC; ISO strings
with an offset and plain unix seconds are accepted too. Times are kept as int64
microseconds so that window edges compare exactly.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "Backstep",
    "CorpusError",
    "LabelsError",
    "Series",
    "Window",
    "find_csv_files",
    "parse_timestamps",
    "read_labels",
    "read_series",
]

#: One labelled anomaly window, ``(start, end)`` in microseconds since the epoch, inclusive.
Window = tuple[int, int]


class CorpusError(ValueError):
    """The data folder or one of its CSV files cannot be used."""


class LabelsError(ValueError):
    """The labels file cannot be used."""


@dataclass(frozen=True, slots=True)
class Backstep:
    """Where a file's timestamps first go back: its line (1 is the header) and by how much.

    ``rows`` counts every row whose timestamp is earlier than the row before it.
    """

    line: int
    back_us: int
    rows: int = 1

    def describe(self) -> str:
        """``timestamp goes back 1:00:00 from the previous row`` (and how many more rows do)."""
        text = f"timestamp goes back {timedelta(microseconds=self.back_us)} from the previous row"
        if self.rows > 1:
            text += f" ({self.rows - 1} more row(s) go back later in the file)"
        return text


@dataclass(frozen=True, slots=True)
class Series:
    """One CSV file in file order: parsed times and values, plus the original text for the results file."""

    path: str  # relative to the data folder, with forward slashes: the labels key
    stamps: list[str]
    raw_values: list[str]
    times_us: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    backstep: Backstep | None = None  # where time first goes back, if it does

    def __len__(self) -> int:
        return len(self.stamps)


def find_csv_files(*, root: Path) -> list[str]:
    """Every ``*.csv`` under ``root`` (hidden files and folders skipped), as sorted relative paths."""
    if not root.is_dir():
        raise CorpusError(f"{root}: no such directory")
    found = []
    for path in root.rglob("*.csv"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        found.append(relative.as_posix())
    return sorted(found)


def read_series(*, root: Path, path: str) -> Series:
    """Read ``root/path`` in file order; the first column is the timestamp and the second the value."""
    full = root / path
    stamps: list[str] = []
    raw_values: list[str] = []
    lines: list[int] = []  # each row's line in the file (blank lines are skipped)
    try:
        with full.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise CorpusError(f"{full}: empty file; expected a 'timestamp,value' header")
            if len(header) < 2:
                raise CorpusError(f"{full}: header {header!r} has fewer than 2 columns (timestamp,value)")
            for row in reader:
                if not row:
                    continue
                if len(row) < 2:
                    raise CorpusError(f"{full}:{reader.line_num}: expected 'timestamp,value', got {row!r}")
                stamps.append(row[0])
                raw_values.append(row[1])
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{full}: cannot read ({exc})") from exc
    values = np.empty(len(raw_values), dtype=np.float64)
    for i, text in enumerate(raw_values):
        try:
            values[i] = float(text) if text.strip() else math.nan
        except ValueError:
            raise CorpusError(f"{full}:{lines[i]}: value {text!r} is not a number") from None
    try:
        times = parse_timestamps(stamps=stamps)
    except ValueError as exc:
        raise CorpusError(f"{full}: {exc}") from None
    return Series(
        path=path,
        stamps=stamps,
        raw_values=raw_values,
        times_us=times,
        values=values,
        backstep=_first_backstep(times=times, lines=lines),
    )


def _first_backstep(*, times: npt.NDArray[np.int64], lines: Sequence[int]) -> Backstep | None:
    """The first row whose timestamp is earlier than the previous row's; None if time never goes back.

    Repeated timestamps are not a step back. Nothing is reordered: NAB streams and scores
    rows in file order, so a sorted copy would score a different series.
    """
    if times.size < 2:
        return None
    steps = np.diff(times)
    backwards = np.flatnonzero(steps < 0)
    if not backwards.size:
        return None
    first = int(backwards[0])
    return Backstep(line=lines[first + 1], back_us=-int(steps[first]), rows=int(backwards.size))


def parse_timestamps(*, stamps: Sequence[str]) -> npt.NDArray[np.int64]:
    """Timestamps as int64 microseconds since the epoch (naive ones are taken as UTC).

    Plain numbers are unix seconds. numpy parses naive ISO strings fast; anything it
    refuses (offsets, ``Z``) goes through `datetime.fromisoformat` one by one.
    """
    if not stamps:
        return np.empty(0, dtype=np.int64)
    try:
        seconds = np.array(stamps, dtype=np.float64)
    except ValueError:
        pass
    else:
        if not np.all(np.isfinite(seconds)):
            raise ValueError("a numeric timestamp is not finite")
        return np.round(seconds * 1e6).astype(np.int64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = np.array(stamps, dtype="datetime64[us]")
    except (ValueError, UserWarning, DeprecationWarning):
        return np.array([_parse_one(stamp) for stamp in stamps], dtype=np.int64)
    if np.any(np.isnat(parsed)):
        raise ValueError(f"timestamp {stamps[int(np.flatnonzero(np.isnat(parsed))[0])]!r} is empty")
    return parsed.astype(np.int64)


def _parse_one(stamp: str) -> int:
    try:
        moment = datetime.fromisoformat(stamp.strip())
    except ValueError:
        raise ValueError(f"timestamp {stamp!r} is not ISO 8601 (like 2014-04-01 00:00:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def read_labels(*, path: Path) -> dict[str, list[Window]]:
    """Read a NAB ``combined_windows.json``: relative CSV path -> sorted, disjoint windows."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"{path}: cannot read ({exc.strerror if isinstance(exc, OSError) else exc})") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelsError(f"{path}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise LabelsError(f"{path}: expected a JSON object mapping CSV paths to lists of [start, end]")
    labels: dict[str, list[Window]] = {}
    for key, raw_windows in document.items():
        name = _normalise_key(key)
        labels[name] = _parse_windows(path=path, key=key, raw_windows=raw_windows)
    return labels


def _normalise_key(key: str) -> str:
    name = key.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _parse_windows(*, path: Path, key: str, raw_windows: object) -> list[Window]:
    where = f"{path}: {key!r}"
    if not isinstance(raw_windows, list):
        raise LabelsError(f"{where}: expected a list of [start, end] windows")
    pairs: list[tuple[str, str]] = []
    for item in raw_windows:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(v, str) for v in item)):
            raise LabelsError(f"{where}: window {item!r} is not a [start, end] pair of timestamp strings")
        pairs.append((item[0], item[1]))
    if not pairs:
        return []
    try:
        edges = parse_timestamps(stamps=[stamp for pair in pairs for stamp in pair])
    except ValueError as exc:
        raise LabelsError(f"{where}: {exc}") from None
    parsed = sorted((int(edges[2 * i]), int(edges[2 * i + 1]), pairs[i]) for i in range(len(pairs)))
    for start, end, (text_start, text_end) in parsed:
        if start > end:
            raise LabelsError(f"{where}: window [{text_start!r}, {text_end!r}] ends before it starts")
    windows = [(start, end) for start, end, _ in parsed]
    for (_, end), (start, _) in itertools.pairwise(windows):
        if start <= end:
            raise LabelsError(f"{where}: windows overlap or share a timestamp; merge or relabel them")
    return windows
