"""What an evaluation returns: corpus scores per profile, alarm metrics, per-file details."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .alarms import AlarmCounts
from .corpus import Backstep
from .incidents import IncidentCounts
from .scoring import FileScore

__all__ = ["EvaluationResult", "FileResult", "ProfileResult"]


@dataclass(frozen=True, slots=True)
class ProfileResult:
    """One profile's corpus result at its best threshold.

    ``score`` is normalised: ``100 * (raw - null_raw) / (perfect_raw - null_raw)``; None when
    the corpus has no window after probation (nothing to normalise against).
    """

    profile: str
    score: float | None
    threshold: float
    raw: float
    null_raw: float
    perfect_raw: float
    windows_detected: int
    false_positives: int

    def as_dict(self) -> dict[str, Any]:
        """For JSON: every field but ``profile`` (the key the result is filed under), in order."""
        return {k: v for k, v in asdict(self).items() if k != "profile"}


@dataclass(frozen=True, slots=True)
class FileResult:
    """One labelled file: its share of each profile's raw score and its alarm counts."""

    path: str
    points: int
    probation: int
    windows: int  # windows scored (reaching past probation)
    windows_in_probation: int
    windows_without_points: int
    alarms: AlarmCounts
    nab: dict[str, FileScore]  # profile name -> result at that profile's corpus threshold
    incidents: IncidentCounts | None = None  # with the confirmation rule (eval --confirm)

    def _counts(self) -> dict[str, Any]:
        """The file and its counts: the first fields of both `as_dict` and `flat`."""
        return {
            "file": self.path,
            "points": self.points,
            "probation": self.probation,
            "windows": self.windows,
            "windows_in_probation": self.windows_in_probation,
            "windows_without_points": self.windows_without_points,
        }

    def as_dict(self) -> dict[str, Any]:
        """For JSON."""
        return {
            **self._counts(),
            "alarms": self.alarms.as_dict(),
            "nab": {
                name: {
                    "raw": s.raw,
                    "windows_detected": s.windows_detected,
                    "false_positives": s.false_positives,
                }
                for name, s in self.nab.items()
            },
            **({} if self.incidents is None else {"incidents": self.incidents.as_dict()}),
        }

    def flat(self) -> dict[str, Any]:
        """One CSV row: nested fields become ``alarm_*`` and ``<profile>_*`` columns."""
        row = self._counts()
        for key, value in self.alarms.as_dict().items():
            if key != "windows":
                row[f"alarm_{key}"] = value
        for name, s in self.nab.items():
            row[f"{name}_raw"] = s.raw
            row[f"{name}_windows_detected"] = s.windows_detected
            row[f"{name}_false_positives"] = s.false_positives
        if self.incidents is not None:
            for key, value in self.incidents.as_dict().items():
                row[f"incident_{key}"] = value
        return row


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """A detector's evaluation on one corpus.

    ``files`` holds the labelled files (the scored ones), sorted by path; ``unlabeled``
    were run and written but not scored; ``labels_without_file`` name labels keys with no CSV;
    ``time_goes_back`` maps every file (labelled or not) whose timestamps go back somewhere
    to where they first do; such files were streamed and scored in file order, as NAB does.
    """

    detector: str
    direction: str
    sensitivity: str
    profiles: dict[str, ProfileResult]
    alarms: AlarmCounts
    files: list[FileResult]
    points: int
    unlabeled: list[str] = field(default_factory=list)
    labels_without_file: list[str] = field(default_factory=list)
    time_goes_back: dict[str, Backstep] = field(default_factory=dict)
    seconds: float = 0.0
    confirm: str | None = None  # "K/N" when the confirmation rule was applied
    min_change: float | None = None
    incidents: IncidentCounts | None = None  # summed over the labelled files

    def score(self, profile: str = "standard") -> float | None:
        """The normalised NAB score of ``profile``."""
        return self.profiles[profile].score

    def as_dict(self, *, per_file: bool = False) -> dict[str, Any]:
        """The summary printed by ``homeostat eval`` (and the per-file list if asked)."""
        summary: dict[str, Any] = {
            "detector": self.detector,
            "direction": self.direction,
            "sensitivity": self.sensitivity,
            "files": len(self.files),
            "points": self.points,
            "windows": sum(f.windows for f in self.files),
            "nab": {name: p.as_dict() for name, p in self.profiles.items()},
            "alarms": self.alarms.as_dict(),
            "unlabeled_files": self.unlabeled,
            "labels_without_file": self.labels_without_file,
            "time_goes_back": [
                {"file": path, "line": step.line, "back_seconds": step.back_us / 1e6, "rows_going_back": step.rows}
                for path, step in self.time_goes_back.items()
            ],
            "seconds": round(self.seconds, 3),
        }
        if self.incidents is not None:
            summary["confirm"] = {"rule": self.confirm, "min_change": self.min_change, **self.incidents.as_dict()}
        if per_file:
            summary["per_file"] = [f.as_dict() for f in self.files]
        return summary
