"""Leave-one-category-out: what a detector scores on a category it was not tuned on.

The only constant fitted on data by the evaluation is NAB's score threshold, one per
profile, swept over the corpus it is scored on (`sweep`): the NAB score is in-sample. Here
each category (a top-level folder of a corpus: NAB's ``realTweets``, kpi-dev's ``donut``)
is left out in turn: the threshold is swept over the files of all the *other* categories,
pooled as NAB's optimizer pools a corpus, and the left-out category is scored at that
threshold, normalised with its own null and perfect scores. Its own best threshold and
score (in-sample) are kept beside it for contrast.

A category without any window (NAB's ``artificialNoAnomaly``) has nothing to normalise
against: NAB's formula gives 0/0, so its score is None. Its raw score (the false
positives' penalties, in units of one window found on time) and its false-positive count at
the left-out threshold are reported; it is left out of the mean and the minimum.

Detectors run once per file; every left-out score comes from the same detections.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .corpus import CorpusError, Window, find_csv_files, read_labels
from .incidents import IncidentCounts
from .results import EvaluationResult, ProfileResult
from .runner import DetectorFactory, _factory, _run_all
from .scorecard import NULL_SCORE, DetectedSeries, score_detections
from .scoring import PROFILES, Profile, ScorableSeries, normalised_score, prepare_series, score_at_threshold
from .sweep import sweep_corpus
from .windows import PROBATION_FRACTION

if TYPE_CHECKING:
    from homeostat.detectors.confirmation import ConfirmRule

__all__ = [
    "CategoryResult",
    "Corpus",
    "GeneralisationResult",
    "HeldOut",
    "category_of",
    "evaluate_generalisation",
    "leave_one_category_out",
    "markdown",
    "summary_markdown",
]


@dataclass(frozen=True, slots=True)
class Corpus:
    """A labelled corpus in NAB layout: ``data`` folder and ``labels`` file, known by ``name``."""

    name: str
    data: Path
    labels: Path

    @classmethod
    def folder(cls, path: str | Path) -> Corpus:
        """``path/data`` and ``path/combined_windows.json``, named after the folder (nab-dev, kpi-dev)."""
        root = Path(path)
        return cls(name=root.name, data=root / "data", labels=root / "combined_windows.json")


def category_of(path: str) -> str:
    """``corpus/category`` of a ``corpus/category/.../name.csv`` key (``corpus`` for files at its top)."""
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else parts[0]


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One profile's result on a left-out category."""

    threshold: float  # swept on the other categories, pooled
    score: float | None  # normalised, at that threshold; None when the category has no window
    raw: float
    null_raw: float
    perfect_raw: float
    windows_detected: int
    false_positives: int
    own_threshold: float  # the category's own best threshold (in-sample)
    in_sample: float | None  # its score at its own best threshold

    def as_dict(self) -> dict[str, Any]:
        """For JSON: every field, in order."""
        return asdict(self)


def leave_one_category_out(
    *, categories: Mapping[str, Sequence[ScorableSeries]], profiles: Sequence[Profile] = PROFILES
) -> dict[str, dict[str, HeldOut]]:
    """Per category and profile: the score at the threshold swept on all the other categories."""
    held: dict[str, dict[str, HeldOut]] = {}
    for name, series in categories.items():
        others = [s for other, members in categories.items() if other != name for s in members]
        constant = [replace(s, scores=np.full(s.scores.size, NULL_SCORE)) for s in series]
        perfect = sum(s.windows for s in series)
        held[name] = {}
        for profile in profiles:
            threshold, _ = sweep_corpus(series=others, profile=profile).best()
            own_threshold, own_raw = sweep_corpus(series=series, profile=profile).best()
            _, null_raw = sweep_corpus(series=constant, profile=profile).best()
            at = [score_at_threshold(series=s, profile=profile, threshold=threshold) for s in series]
            raw = sum(f.raw for f in at)
            perfect_raw = profile.tp * perfect
            held[name][profile.name] = HeldOut(
                threshold=threshold,
                score=normalised_score(raw=raw, null=null_raw, perfect=perfect_raw),
                raw=raw,
                null_raw=null_raw,
                perfect_raw=perfect_raw,
                windows_detected=sum(f.windows_detected for f in at),
                false_positives=sum(f.false_positives for f in at),
                own_threshold=own_threshold,
                in_sample=normalised_score(raw=own_raw, null=null_raw, perfect=perfect_raw),
            )
    return held


@dataclass(frozen=True, slots=True)
class CategoryResult:
    """A left-out category: its size, its left-out results per profile, its incidents (with --confirm)."""

    category: str
    files: int
    points: int
    windows: int
    profiles: dict[str, HeldOut]
    incidents: IncidentCounts | None = None

    def as_dict(self) -> dict[str, Any]:
        """For JSON."""
        out: dict[str, Any] = {
            "category": self.category,
            "files": self.files,
            "points": self.points,
            "windows": self.windows,
            "nab": {name: p.as_dict() for name, p in self.profiles.items()},
        }
        if self.incidents is not None:
            out["confirm"] = self.incidents.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class GeneralisationResult:
    """Leave-one-category-out results of one detector over several corpora."""

    detector: str
    direction: str
    sensitivity: str
    categories: list[CategoryResult]
    pooled: dict[str, ProfileResult]  # in-sample: all categories, one threshold swept on all of them
    corpora: dict[str, EvaluationResult]  # each corpus on its own, in-sample, as `homeostat eval` reports it
    confirm: str | None = None
    seconds: float = 0.0
    profiles: tuple[str, ...] = field(default=tuple(p.name for p in PROFILES))

    def scored(self, profile: str) -> list[float]:
        """Left-out scores of the categories that have windows (the mean's and minimum's terms)."""
        return [s for c in self.categories if (s := c.profiles[profile].score) is not None]

    def mean(self, profile: str = "standard") -> float | None:
        """Mean left-out score over the categories with windows."""
        scores = self.scored(profile)
        return sum(scores) / len(scores) if scores else None

    def minimum(self, profile: str = "standard") -> float | None:
        """Lowest left-out score over the categories with windows."""
        scores = self.scored(profile)
        return min(scores) if scores else None

    def as_dict(self) -> dict[str, Any]:
        """For JSON."""
        return {
            "detector": self.detector,
            "direction": self.direction,
            "sensitivity": self.sensitivity,
            "protocol": "leave-one-category-out: threshold swept on the other categories pooled, "
            "left-out category scored at it; mean and min over categories with windows",
            "categories": [c.as_dict() for c in self.categories],
            "left_out_mean": {p: self.mean(p) for p in self.profiles},
            "left_out_min": {p: self.minimum(p) for p in self.profiles},
            "excluded_from_mean": [c.category for c in self.categories if c.windows == 0],
            "in_sample_pooled": {name: p.as_dict() for name, p in self.pooled.items()},
            "in_sample_corpora": {
                name: {
                    "nab": {p: r.as_dict() for p, r in result.profiles.items()},
                    **({} if result.incidents is None else {"confirm": result.incidents.as_dict()}),
                }
                for name, result in self.corpora.items()
            },
            "confirm": self.confirm,
            "seconds": round(self.seconds, 3),
        }


def evaluate_generalisation(
    *,
    corpora: Sequence[Corpus],
    detector: str | DetectorFactory = "default",
    direction: str = "both",
    sensitivity: str = "medium",
    jobs: int = 1,
    confirm: ConfirmRule | None = None,
    progress: bool = False,
    profiles: Sequence[Profile] = PROFILES,
    probation_fraction: float = PROBATION_FRACTION,
) -> GeneralisationResult:
    """Run ``detector`` over every corpus once, then score each category left out."""
    started = time.perf_counter()
    make = _factory(detector=detector, direction=direction, sensitivity=sensitivity)
    detected: list[DetectedSeries] = []
    labels: dict[str, list[Window]] = {}
    corpus_results: dict[str, EvaluationResult] = {}
    for corpus in corpora:
        windows = read_labels(path=corpus.labels)
        paths = [p for p in find_csv_files(root=corpus.data) if p in windows]
        if not paths:
            raise CorpusError(f"{corpus.data}: no CSV file that {corpus.labels} labels")
        run = _run_all(
            root=corpus.data, paths=paths, make=make, out=None, jobs=jobs, progress=progress, confirm=confirm,
            direction=direction,
        )
        corpus_results[corpus.name] = score_detections(
            detected=run, labels=windows, detector=str(detector), direction=direction, sensitivity=sensitivity,
            profiles=profiles, probation_fraction=probation_fraction, confirm=confirm,
        )
        for one in run:
            key = f"{corpus.name}/{one.path}"
            detected.append(replace(one, path=key))
            labels[key] = windows[one.path]

    groups: dict[str, list[DetectedSeries]] = {}
    for one in sorted(detected, key=lambda d: d.path):
        groups.setdefault(category_of(one.path), []).append(one)
    series = {
        name: [
            prepare_series(
                path=d.path, times_us=d.times_us, scores=d.scores, windows=labels[d.path],
                probation_fraction=probation_fraction,
            ).series
            for d in members
        ]
        for name, members in groups.items()
    }
    held = leave_one_category_out(categories=series, profiles=profiles)
    pooled = score_detections(
        detected=detected, labels=labels, profiles=profiles, probation_fraction=probation_fraction
    )
    categories = []
    for name, members in groups.items():
        incidents = None
        if confirm is not None:
            incidents = score_detections(
                detected=members, labels=labels, profiles=profiles[:1], probation_fraction=probation_fraction,
                confirm=confirm,
            ).incidents
        categories.append(
            CategoryResult(
                category=name,
                files=len(members),
                points=sum(int(d.times_us.size) for d in members),
                windows=sum(s.windows for s in series[name]),
                profiles=held[name],
                incidents=incidents,
            )
        )
    return GeneralisationResult(
        detector=detector if isinstance(detector, str) else getattr(detector, "__name__", repr(detector)),
        direction=direction,
        sensitivity=sensitivity,
        categories=categories,
        pooled=pooled.profiles,
        corpora=corpus_results,
        confirm=None if confirm is None else str(confirm),
        seconds=time.perf_counter() - started,
        profiles=tuple(p.name for p in profiles),
    )


def markdown(result: GeneralisationResult) -> str:
    """The left-out table of one detector, with mean, minimum and the in-sample scores beside it."""
    names = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}
    profiles = list(result.profiles)

    def fmt(value: float | None, digits: int = 1) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    head = ["left out", "windows"] + [f"{names.get(p, p)}" for p in profiles]
    head += ["threshold (others)", "in-sample std", "own threshold"]
    if result.confirm:
        head += [f"incidents {result.confirm}: P", "R", "delay p50/p90", "false/1k pts"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in result.categories:
        std = c.profiles[profiles[0]]
        cells = [c.category, str(c.windows)]
        for p in profiles:
            held = c.profiles[p]
            cells.append(
                fmt(held.score) if held.score is not None else f"n/a (raw {held.raw:.2f}, {held.false_positives} FP)"
            )
        cells += [f"{std.threshold:.4f}", fmt(std.in_sample), f"{std.own_threshold:.4f}"]
        if result.confirm and c.incidents is not None:
            cells += _incident_cells(c.incidents)
        lines.append("| " + " | ".join(cells) + " |")

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells + [""] * (len(head) - len(cells))) + " |"

    lines.append(row(["**mean**", ""] + [f"**{fmt(result.mean(p))}**" for p in profiles]))
    lines.append(row(["**min**", ""] + [f"**{fmt(result.minimum(p))}**" for p in profiles]))
    pooled_windows = sum(c.windows for c in result.categories)
    lines.append(
        row(
            ["in-sample, all pooled", str(pooled_windows)]
            + [fmt(result.pooled[p].score) for p in profiles]
            + [f"{result.pooled[profiles[0]].threshold:.4f} (own)"]
        )
    )
    for name, corpus in result.corpora.items():
        windows = sum(f.windows for f in corpus.files)
        cells = [f"in-sample, {name}", str(windows)] + [fmt(corpus.profiles[p].score) for p in profiles]
        cells += [f"{corpus.profiles[profiles[0]].threshold:.4f} (own)", "", ""]
        if result.confirm and corpus.incidents is not None:
            cells += _incident_cells(corpus.incidents)
        lines.append(row(cells))
    return "\n".join(lines)


def _incident_cells(counts: IncidentCounts) -> list[str]:
    def fmt(value: float | None, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    return [
        f"{fmt(counts.precision)} ({counts.true_incidents}/{counts.incidents})",
        f"{fmt(counts.recall)} ({counts.windows_found}/{counts.windows})",
        f"{fmt(counts.delay(50), 0)}/{fmt(counts.delay(90), 0)}",
        fmt(counts.false_per_1000, 3),
    ]


def summary_markdown(results: Sequence[GeneralisationResult]) -> str:
    """One line per detector: left-out mean and minimum per profile, the in-sample scores, incidents."""

    def fmt(value: float | None, digits: int = 1) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    corpora = list(results[0].corpora) if results else []
    head = ["detector", "left-out mean std", "min std", "mean low FP", "min low FP", "mean low FN", "min low FN"]
    head += [f"in-sample {name} std" for name in corpora]
    confirm = results[0].confirm if results else None
    if confirm:
        head += [f"{name} incidents {confirm} P / R" for name in corpora]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r.detector]
        for profile in r.profiles:
            cells += [fmt(r.mean(profile)), fmt(r.minimum(profile))]
        cells += [fmt(r.corpora[name].score(r.profiles[0])) for name in corpora]
        if confirm:
            for name in corpora:
                inc = r.corpora[name].incidents
                cells.append("n/a" if inc is None else f"{fmt(inc.precision, 2)} / {fmt(inc.recall, 2)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
