"""Score streaming detectors on labelled series the way the Numenta Anomaly Benchmark does.

>>> from homeostat.detectors.evaluation import evaluate_corpus
>>> result = evaluate_corpus(data="nab/data", labels="nab/combined_windows.json",
...                          detector="robust_zscore", jobs=4)  # doctest: +SKIP
>>> result.score("standard"), result.alarms.f1  # doctest: +SKIP

The pieces, one job each: `corpus` reads files and labels, `windows` places points
relative to anomaly windows, `scoring` holds the profiles and scores one file, `sweep`
finds the best threshold over a corpus, `alarms` measures the detector's own alarms,
`scorecard` puts these together, `runner` streams files through detectors,
`incidents` counts what the operator's confirmation rule would open (``--confirm``),
`generalisation` scores each category left out, and `command` is ``homeostat eval``. See docs/evaluation.md.

Names are imported lazily so that ``homeostat eval --help`` does not load numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .alarms import AlarmCounts
    from .corpus import CorpusError, LabelsError
    from .generalisation import Corpus, GeneralisationResult, evaluate_generalisation
    from .incidents import IncidentCounts
    from .results import EvaluationResult, FileResult, ProfileResult
    from .runner import DetectorError, DetectorFactory, OutputError, RegistryDetector, evaluate_corpus
    from .scorecard import DetectedSeries, score_detections
    from .scoring import PROFILES, Profile

__all__ = [
    "PROFILES",
    "AlarmCounts",
    "Corpus",
    "CorpusError",
    "DetectedSeries",
    "DetectorError",
    "DetectorFactory",
    "EvaluationResult",
    "FileResult",
    "GeneralisationResult",
    "IncidentCounts",
    "LabelsError",
    "OutputError",
    "Profile",
    "ProfileResult",
    "RegistryDetector",
    "evaluate_corpus",
    "evaluate_generalisation",
    "score_detections",
]

_HOMES = {
    "AlarmCounts": ".alarms",
    "CorpusError": ".corpus",
    "LabelsError": ".corpus",
    "Corpus": ".generalisation",
    "GeneralisationResult": ".generalisation",
    "evaluate_generalisation": ".generalisation",
    "IncidentCounts": ".incidents",
    "EvaluationResult": ".results",
    "FileResult": ".results",
    "ProfileResult": ".results",
    "DetectorError": ".runner",
    "DetectorFactory": ".runner",
    "OutputError": ".runner",
    "RegistryDetector": ".runner",
    "evaluate_corpus": ".runner",
    "DetectedSeries": ".scorecard",
    "score_detections": ".scorecard",
    "PROFILES": ".scoring",
    "Profile": ".scoring",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
