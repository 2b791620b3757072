"""`evaluate_corpus` on a tiny synthetic corpus: streaming order, outputs, scores, parallelism."""

from __future__ import annotations

import csv
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from homeostat.detectors.evaluation import (
    DetectorError,
    LabelsError,
    OutputError,
    RegistryDetector,
    evaluate_corpus,
)


def _load_support() -> ModuleType:
    """The shared corpus builder; a plain import does not work under --import-mode=importlib."""
    name = "homeostat_test_eval_support"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("test_eval_support.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fixtures = _load_support()

LABELLED = ["artificial/spike.csv", "quiet.csv", "real/deep/nested.csv"]


def test_scores_match_the_hand_computed_values(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    result = evaluate_corpus(data=data, labels=labels, detector=fixtures.StepFactory(), out=tmp_path / "out")

    assert [f.path for f in result.files] == LABELLED
    assert result.unlabeled == ["unlabeled/extra.csv"]
    assert result.labels_without_file == ["ghost/missing.csv"]
    standard = result.profiles["standard"]
    assert (standard.threshold, standard.null_raw, standard.perfect_raw) == (1.0, -2.0, 2.0)
    assert standard.score == pytest.approx(fixtures.EXPECTED_STANDARD)
    assert result.score("reward_low_FP_rate") == pytest.approx(fixtures.EXPECTED_STANDARD)  # no FP to punish
    assert result.score("reward_low_FN_rate") == pytest.approx(fixtures.EXPECTED_LOW_FN)
    assert result.alarms.as_dict() == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "alarms": 2,
        "alarms_in_windows": 2,
        "windows": 2,
        "windows_alarmed": 2,
    }
    quiet = result.files[1]
    assert (quiet.windows, quiet.alarms.recall, quiet.alarms.precision) == (0, None, None)
    assert result.files[0].probation == 30 and result.files[2].probation == 15


def test_each_file_gets_a_fresh_detector_that_scores_before_it_learns(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    factory = fixtures.StepFactory()
    evaluate_corpus(data=data, labels=labels, detector=factory)

    streamed = [d for d in factory.built if d.calls]
    assert len(streamed) == 4  # one per CSV (hidden folder skipped); the probe instance saw nothing
    assert sorted(len(d.calls) // 2 for d in streamed) == [60, 80, 100, 200]
    for detector in streamed:
        kinds = [kind for kind, _, _ in detector.calls]
        assert kinds == ["score", "learn"] * (len(kinds) // 2)
        scored, learned = detector.calls[0::2], detector.calls[1::2]
        assert [(t, x) for _, t, x in scored] == [(t, x) for _, t, x in learned]
        times = [t for _, t, _ in scored]
        assert times == sorted(times) and times[0] == 1396310400.0  # 2014-04-01 00:00:00 UTC


def test_a_file_whose_time_goes_back_is_streamed_in_file_order_and_scored(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path, back_at=70)
    factory = fixtures.StepFactory()
    result = evaluate_corpus(data=data, labels=labels, detector=factory, out=tmp_path / "out")

    (nested,) = [d for d in factory.built if len(d.calls) == 200]  # 100 points, scored then learned
    times = [t for kind, t, _ in nested.calls if kind == "score"]
    step = fixtures.STEP.total_seconds()
    assert times[69] - times[70] == (fixtures.BACK_ROWS - 1) * step  # back 55 minutes, as in the file
    assert times[:70] == sorted(times[:70]) and times[70:] == sorted(times[70:])
    # Same score as the sorted corpus: the window is rows 50..59, as NAB places it; rows 70
    # and 71 repeat its last timestamps but come after it closed (see window_spans).
    assert result.score("standard") == pytest.approx(fixtures.EXPECTED_STANDARD)
    assert list(result.time_goes_back) == ["real/deep/nested.csv"]
    step_back = result.time_goes_back["real/deep/nested.csv"]
    assert (step_back.line, step_back.back_us, step_back.rows) == (72, (fixtures.BACK_ROWS - 1) * 300_000_000, 1)
    assert result.as_dict()["time_goes_back"] == [
        {"file": "real/deep/nested.csv", "line": 72, "back_seconds": 3300.0, "rows_going_back": 1}
    ]
    with (tmp_path / "out" / "real/deep/nested.csv").open() as handle, (data / "real/deep/nested.csv").open() as src:
        assert [r[:2] for r in csv.reader(handle)][1:] == list(csv.reader(src))[1:]  # written in file order


def test_results_csv_per_input_at_the_same_relative_path(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    out = tmp_path / "results"
    evaluate_corpus(data=data, labels=labels, detector=fixtures.StepFactory(), out=out)

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert written == ["artificial/spike.csv", "quiet.csv", "real/deep/nested.csv", "unlabeled/extra.csv"]
    with (out / "real/deep/nested.csv").open() as handle:
        rows = list(csv.reader(handle))
    with (data / "real/deep/nested.csv").open() as handle:
        source = list(csv.reader(handle))
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert [r[:2] for r in rows[1:]] == source[1:]
    assert [float(r[2]) for r in rows[1:]] == [1.0 if i == 55 else 0.0 for i in range(100)]


def test_parallel_jobs_give_the_same_result(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    serial = evaluate_corpus(data=data, labels=labels, detector=RegistryDetector(name="default"))
    parallel = evaluate_corpus(data=data, labels=labels, detector=RegistryDetector(name="default"), jobs=3)
    assert serial.as_dict(per_file=True) | {"seconds": 0} == parallel.as_dict(per_file=True) | {"seconds": 0}


def test_registered_detector_by_name(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    result = evaluate_corpus(data=data, labels=labels, detector="default", direction="both", sensitivity="high")
    assert (result.detector, result.direction, result.sensitivity) == ("default", "both", "high")
    assert set(result.profiles) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert all(0.0 <= f.alarms.alarms <= f.points - f.probation for f in result.files)


def test_unknown_detector_is_reported(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    with pytest.raises(DetectorError, match="valid names"):
        evaluate_corpus(data=data, labels=labels, detector="no_such_detector")


@dataclass(frozen=True)
class TooHigh:
    score: float = 1.5
    alarm: bool = False


class Broken:
    def score_one(self, t: float, x: float) -> TooHigh:
        return TooHigh()

    def learn_one(self, t: float, x: float) -> None:
        return None


def test_scores_outside_unit_interval_are_a_detector_error(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    with pytest.raises(DetectorError, match=r"row 2 .*must be in \[0, 1\]"):
        evaluate_corpus(data=data, labels=labels, detector=Broken)


def test_labels_that_match_no_file_are_refused(tmp_path: Path) -> None:
    data, _ = fixtures.make_corpus(tmp_path)
    labels = tmp_path / "other.json"
    labels.write_text('{"data/quiet.csv": []}')
    with pytest.raises(LabelsError, match="none of its 1 keys"):
        evaluate_corpus(data=data, labels=labels, detector=fixtures.StepFactory())


def test_results_inside_the_data_folder_are_refused(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    with pytest.raises(OutputError, match="inside the data folder"):
        evaluate_corpus(data=data, labels=labels, detector=fixtures.StepFactory(), out=data / "results")


def test_labels_relative_to_a_subfolder_suggest_the_right_data_folder(tmp_path: Path) -> None:
    data, labels = fixtures.make_corpus(tmp_path)
    with pytest.raises(LabelsError, match=f"pass --data {data}, the folder the keys are relative to"):
        evaluate_corpus(data=tmp_path, labels=labels, detector=fixtures.StepFactory())
