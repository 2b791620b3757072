"""Support for the evaluation tests (no tests here): a tiny NAB-layout corpus and a transparent detector.

Layout (under ``data/``), with nested folders, a file without windows, an unlabelled file,
a hidden folder, and a labels key that has no file:

* ``artificial/spike.csv``: 200 points at 10, 100 at row 120; window rows 120..129;
* ``real/deep/nested.csv``: 100 points at 10, 100 at row 55; window rows 50..59;
* ``quiet.csv``: 80 points at 10; no windows;
* ``unlabeled/extra.csv``: 60 points, 100 at row 30; not in the labels;
* ``.hidden/skip.csv``: ignored;
* labels key ``ghost/missing.csv``: no such file.

`make_corpus(root, back_at=70)` writes ``real/deep/nested.csv`` with its last hour repeated
from row ``back_at`` (line ``back_at + 2``): that row is stamped like row ``back_at - 12``,
55 minutes before the row above it, as NAB's ``realKnownCause/machine_temperature_system_failure.csv``
does at line 10151. With ``back_at=70`` rows 70 and 71 repeat the window's last two
timestamps but come after it; the rows before, the window and the spike are unchanged, and
so are the scores.

With `StepDetector` (score 1 and an alarm above 50, else 0) the standard raw score is
1 (detection at a window start) + tanh(1.25)/tanh(2.5) = 0.8597926 (row 55 of a 50..59
window: y = -0.5), against null -2 and perfect 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

START = datetime(2014, 4, 1)
STEP = timedelta(minutes=5)

EXPECTED_STANDARD = 100 * (1.0 + 0.8597925669097837 + 2) / 4
EXPECTED_LOW_FN = 100 * (1.0 + 0.8597925669097837 + 4) / 6


def stamp(row: int) -> str:
    return (START + row * STEP).strftime("%Y-%m-%d %H:%M:%S")


#: Rows by which `make_corpus(back_at=...)` sets the stamps back: an hour of five-minute rows.
BACK_ROWS = 12


def write_series(path: Path, points: int, spikes: tuple[int, ...] = (), back_at: int | None = None) -> None:
    """``points`` rows five minutes apart; from row ``back_at`` on, stamped ``BACK_ROWS`` rows earlier."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,value"]
    lines += [
        f"{stamp(i - (BACK_ROWS if back_at is not None and i >= back_at else 0))},{100 if i in spikes else 10}"
        for i in range(points)
    ]
    path.write_text("\n".join(lines) + "\n")


def window(first: int, last: int) -> list[str]:
    return [stamp(first) + ".000000", stamp(last) + ".000000"]


def make_corpus(root: Path, back_at: int | None = None) -> tuple[Path, Path]:
    """Write the corpus under ``root``; returns ``(data_dir, labels_file)``."""
    data = root / "data"
    write_series(data / "artificial" / "spike.csv", 200, (120,))
    write_series(data / "real" / "deep" / "nested.csv", 100, (55,), back_at=back_at)
    write_series(data / "quiet.csv", 80)
    write_series(data / "unlabeled" / "extra.csv", 60, (30,))
    write_series(data / ".hidden" / "skip.csv", 60, (30,))
    labels = root / "combined_windows.json"
    labels.write_text(
        json.dumps(
            {
                "artificial/spike.csv": [window(120, 129)],
                "real/deep/nested.csv": [window(50, 59)],
                "quiet.csv": [],
                "ghost/missing.csv": [window(1, 2)],
            }
        )
    )
    return data, labels


@dataclass(frozen=True)
class StepVerdict:
    score: float
    alarm: bool


@dataclass
class StepDetector:
    """Score 1 and alarm when ``x > 50``; records every call to check the streaming order."""

    calls: list[tuple[str, float, float]] = field(default_factory=list)

    def score_one(self, t: float, x: float) -> StepVerdict:
        self.calls.append(("score", t, x))
        return StepVerdict(score=1.0 if x > 50 else 0.0, alarm=x > 50)

    def learn_one(self, t: float, x: float) -> None:
        self.calls.append(("learn", t, x))


@dataclass
class StepFactory:
    """Builds `StepDetector` instances and keeps them for inspection (in this process)."""

    built: list[StepDetector] = field(default_factory=list)

    def __call__(self) -> StepDetector:
        detector = StepDetector()
        self.built.append(detector)
        return detector
