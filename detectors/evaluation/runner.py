"""Stream every file of a corpus through a fresh detector, point by point, then score it.

Each file gets a new detector that sees one ``(t, x)`` at a time, in file order, scores it
and only then learns it: nothing about the file (its length, range or future) reaches the
detector, as in production. A file whose time goes back is streamed as it stands, as NAB
streams it; the result lists it (``time_goes_back``). Files run in parallel processes
with ``jobs > 1``; results do not depend on ``jobs``.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from .corpus import CorpusError, LabelsError, find_csv_files, read_labels, read_series
from .results import EvaluationResult
from .scorecard import DetectedSeries, score_detections
from .scoring import PROFILES, Profile
from .windows import PROBATION_FRACTION

if TYPE_CHECKING:
    from homeostat.detectors.base import Verdict
    from homeostat.detectors.confirmation import ConfirmRule

__all__ = [
    "DetectorError",
    "DetectorFactory",
    "OutputError",
    "RegistryDetector",
    "evaluate_corpus",
    "run_file",
]

#: Serial runs move the progress bar every this many points.
PROGRESS_STEP = 1000


class DetectorError(ValueError):
    """The detector cannot be built, or broke its contract (a score outside [0, 1])."""


class OutputError(ValueError):
    """The results folder cannot be used."""


class VerdictLike(Protocol):
    """The part of `homeostat.detectors.Verdict` the evaluation reads."""

    @property
    def score(self) -> float: ...

    @property
    def alarm(self) -> bool: ...


class StreamingDetector(Protocol):
    """The part of `homeostat.detectors.Detector` the evaluation calls."""

    def score_one(self, t: float, x: float) -> VerdictLike: ...

    def learn_one(self, t: float, x: float) -> None: ...


#: Builds one fresh detector per file; must be picklable when ``jobs > 1`` under "spawn".
DetectorFactory = Callable[[], StreamingDetector]


@dataclass(frozen=True, slots=True)
class RegistryDetector:
    """A picklable factory for a registered detector: ``create(name, direction=..., sensitivity=...)``."""

    name: str
    direction: str = "both"
    sensitivity: str = "medium"

    def __call__(self) -> StreamingDetector:
        from homeostat.detectors import create

        detector: StreamingDetector = create(self.name, direction=self.direction, sensitivity=self.sensitivity)
        return detector


def run_file(
    *,
    root: Path,
    path: str,
    make: DetectorFactory,
    out: Path | None = None,
    on_points: Callable[[int], None] | None = None,
    confirm: ConfirmRule | None = None,
    direction: str = "both",
) -> DetectedSeries:
    """Score ``root/path`` with a fresh detector and write ``out/path`` (``timestamp,value,anomaly_score``).

    With ``confirm``, every point also goes through the operator's confirmation rule
    (`homeostat.detectors.confirmation`, watching ``direction``) and the result says which
    points the operator would have confirmed. The detector then must return full Verdicts
    (``expected``, ``lower``, ``upper``, ``warm``).
    """
    from homeostat.detectors.confirmation import is_confirmed, judge_point, record_point

    series = read_series(root=root, path=path)
    detector = make()
    times = (series.times_us / 1e6).tolist()
    values = series.values.tolist()
    scores: list[float] = []
    alarms: list[bool] = []
    confirmed: list[bool] = []
    window: deque[bool] = deque(maxlen=confirm.n if confirm else 1)
    alarmed: deque[bool] = deque(maxlen=confirm.n if confirm else 1)
    for i, (t, x) in enumerate(zip(times, values, strict=True)):
        verdict = detector.score_one(t, x)
        detector.learn_one(t, x)
        scores.append(float(verdict.score))
        alarms.append(bool(verdict.alarm))
        if confirm is not None:
            if math.isfinite(x):  # no data is never anomalous and breaks a run, as in the operator
                point = judge_point(value=x, verdict=cast("Verdict", verdict), direction=direction,
                                    min_change=confirm.min_change, breach=False)
                record_point(window, alarmed, anomalous=point.anomalous, alarm=point.alarm)
                confirmed.append(is_confirmed(anomalous_now=point.anomalous, window=window, alarms=alarmed,
                                              k=confirm.k))
            else:
                record_point(window, alarmed, anomalous=False)
                confirmed.append(False)
        if on_points is not None and i % PROGRESS_STEP == PROGRESS_STEP - 1:
            on_points(PROGRESS_STEP)
    if on_points is not None:
        on_points(len(times) % PROGRESS_STEP)
    score_array = np.array(scores, dtype=np.float64)
    bad = np.flatnonzero(~((score_array >= 0.0) & (score_array <= 1.0)))
    if bad.size:
        row = int(bad[0])
        raise DetectorError(
            f"{path}: row {row + 2} ({series.stamps[row]}): the detector returned score "
            f"{score_array[row]!r}; scores must be in [0, 1]"
        )
    if out is not None:
        _write_results(target=out / path, stamps=series.stamps, values=series.raw_values, scores=scores)
    return DetectedSeries(
        path=path,
        times_us=series.times_us,
        scores=score_array,
        alarms=np.array(alarms, dtype=bool),
        backstep=series.backstep,
        confirmed=np.array(confirmed, dtype=bool) if confirm is not None else None,
    )


def _write_results(*, target: Path, stamps: list[str], values: list[str], scores: list[float]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("timestamp", "value", "anomaly_score"))
            writer.writerows(zip(stamps, values, map(repr, scores), strict=True))
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror})") from exc


def evaluate_corpus(
    *,
    data: str | Path,
    labels: str | Path,
    detector: str | DetectorFactory = "default",
    direction: str = "both",
    sensitivity: str = "medium",
    jobs: int = 1,
    out: str | Path | None = None,
    progress: bool = False,
    profiles: Sequence[Profile] = PROFILES,
    probation_fraction: float = PROBATION_FRACTION,
    confirm: ConfirmRule | None = None,
) -> EvaluationResult:
    """Run ``detector`` over every CSV under ``data`` and score it against ``labels`` (NAB layout).

    With ``confirm`` the operator's confirmation rule is applied too (watching ``direction``)
    and the result's ``incidents`` holds incident-level precision, recall and delay
    (`homeostat.detectors.evaluation.incidents`).

    ``detector`` is a registered name (built with ``direction`` and ``sensitivity``) or a
    zero-argument factory returning a fresh detector (then those two are only labels in
    the result). Raises `CorpusError`, `LabelsError`, `DetectorError` or `OutputError`
    with a message that names the culprit. Files whose timestamps go back are scored in
    file order, as NAB does, and listed in ``time_goes_back`` (no warning is raised here;
    ``homeostat eval`` prints one per file).
    """
    started = time.perf_counter()
    root = Path(data)
    windows = read_labels(path=Path(labels))
    paths = find_csv_files(root=root)
    if not paths:
        raise CorpusError(f"{root}: no .csv file in it or below it")
    if windows and not set(paths) & set(windows):
        raise LabelsError(_mismatch(labels=labels, root=root, keys=list(windows), paths=paths))
    results = None if out is None else Path(out)
    if results is not None and (results.resolve() == root.resolve() or root.resolve() in results.resolve().parents):
        raise OutputError(f"{results}: inside the data folder {root}; results would be read as data next time")
    make = _factory(detector=detector, direction=direction, sensitivity=sensitivity)

    detected = _run_all(
        root=root, paths=paths, make=make, out=results, jobs=jobs, progress=progress, confirm=confirm,
        direction=direction,
    )
    result = score_detections(
        detected=detected,
        labels=windows,
        detector=detector if isinstance(detector, str) else getattr(detector, "__name__", repr(detector)),
        direction=direction,
        sensitivity=sensitivity,
        profiles=profiles,
        probation_fraction=probation_fraction,
        confirm=confirm,
    )
    return _with_seconds(result, time.perf_counter() - started)


def _mismatch(*, labels: str | Path, root: Path, keys: list[str], paths: list[str]) -> str:
    """Explain labels keys that match no file, and spot the usual cause: --data one level too high."""
    message = (
        f"{labels}: none of its {len(keys)} keys (e.g. {keys[0]!r}) is a CSV path relative to {root} "
        f"(e.g. {paths[0]!r})"
    )
    for path in paths:
        for key in keys:
            if path.endswith("/" + key):
                return f"{message}; pass --data {root / path[: -len(key) - 1]}, the folder the keys are relative to"
    return message


def _factory(*, detector: str | DetectorFactory, direction: str, sensitivity: str) -> DetectorFactory:
    make: DetectorFactory = (
        RegistryDetector(name=detector, direction=direction, sensitivity=sensitivity)
        if isinstance(detector, str)
        else detector
    )
    try:
        make()  # fail here, once, rather than in every worker
    except KeyError as exc:
        raise DetectorError(str(exc.args[0]) if exc.args else repr(exc)) from None
    except ValueError as exc:
        raise DetectorError(str(exc)) from None
    return make


def _run_all(
    *,
    root: Path,
    paths: list[str],
    make: DetectorFactory,
    out: Path | None,
    jobs: int,
    progress: bool,
    confirm: ConfirmRule | None = None,
    direction: str = "both",
) -> list[DetectedSeries]:
    from tqdm import tqdm

    total = sum(_count_rows(root / path) for path in paths) if progress else None
    with tqdm(total=total, unit="pt", unit_scale=True, disable=not progress, file=sys.stderr) as bar:
        if jobs <= 1 or len(paths) == 1:
            return [
                run_file(root=root, path=path, make=make, out=out, on_points=bar.update, confirm=confirm,
                         direction=direction)
                for path in paths
            ]
        # Largest files first, so that one long file does not start last.
        by_size = sorted(paths, key=lambda p: (root / p).stat().st_size, reverse=True)
        detected: list[DetectedSeries] = []
        with multiprocessing.Pool(
            processes=min(jobs, len(paths)), initializer=_init_worker,
            initargs=(root, make, out, confirm, direction),
        ) as pool:
            for one in pool.imap_unordered(_run_in_worker, by_size):
                detected.append(one)
                bar.update(one.times_us.size)
        return sorted(detected, key=lambda d: d.path)


_WORKER: tuple[Path, DetectorFactory, Path | None, ConfirmRule | None, str] | None = None


def _init_worker(root: Path, make: DetectorFactory, out: Path | None, confirm: ConfirmRule | None,
                 direction: str) -> None:
    global _WORKER
    _WORKER = (root, make, out, confirm, direction)


def _run_in_worker(path: str) -> DetectedSeries:
    assert _WORKER is not None, "worker used before _init_worker"
    root, make, out, confirm, direction = _WORKER
    return run_file(root=root, path=path, make=make, out=out, confirm=confirm, direction=direction)


def _count_rows(path: Path) -> int:
    """Data rows, for the progress bar's total (the last line may lack its newline)."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(lines + (last != b"\n") - 1, 0)


def _with_seconds(result: EvaluationResult, seconds: float) -> EvaluationResult:
    from dataclasses import replace

    return replace(result, seconds=seconds)
