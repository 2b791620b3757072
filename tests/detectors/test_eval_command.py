"""`homeostat eval`: JSON on stdout, results and per-file files, one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from homeostat.detectors.evaluation import evaluate_corpus
from homeostat.detectors.evaluation.command import add_arguments, run


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


def eval_command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="homeostat eval")
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    data, labels = fixtures.make_corpus(tmp_path)
    return data, labels


def test_prints_nab_scores_and_alarm_metrics_as_json(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, labels = corpus
    out = tmp_path / "out"
    code = eval_command("--data", str(data), "--labels", str(labels), "--detector", "default", "--out", str(out))
    captured = capsys.readouterr()

    assert code == 0
    summary = json.loads(captured.out)
    api = evaluate_corpus(data=data, labels=labels, detector="default", direction="both", sensitivity="medium")
    for name in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert summary["nab"][name]["score"] == api.profiles[name].score
        assert summary["nab"][name]["threshold"] == api.profiles[name].threshold
    assert summary["alarms"] == api.alarms.as_dict()
    assert (summary["files"], summary["direction"], summary["sensitivity"]) == (3, "both", "medium")
    assert summary["unlabeled_files"] == ["unlabeled/extra.csv"]
    assert summary["labels_without_file"] == ["ghost/missing.csv"]
    assert "1 CSV file(s) have no labels entry" in captured.err
    assert (out / "real" / "deep" / "nested.csv").is_file()


def test_per_file_breakdown_as_csv_and_json(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    data, labels = corpus
    common = ["--data", str(data), "--labels", str(labels), "--out", str(tmp_path / "out"), "--no-progress"]
    assert eval_command(*common, "--per-file", str(tmp_path / "files.csv")) == 0
    assert eval_command(*common, "--per-file", str(tmp_path / "files.json")) == 0

    with (tmp_path / "files.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == ["artificial/spike.csv", "quiet.csv", "real/deep/nested.csv"]
    assert {"alarm_precision", "alarm_recall", "standard_raw", "reward_low_FN_rate_false_positives"} <= set(rows[0])
    listed = json.loads((tmp_path / "files.json").read_text())
    assert [f["file"] for f in listed] == [r["file"] for r in rows]
    assert listed[1]["windows"] == 0 and listed[0]["probation"] == 30


def test_through_the_homeostat_command(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from homeostat.cli import main

    data, labels = corpus
    code = main(["eval", "--data", str(data), "--labels", str(labels), "--out", str(tmp_path / "o"), "--jobs", "2"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["detector"] == "default"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("change", "option", "hint"),
    [
        (lambda d, lab, out: (d / "nope", lab, out), "--data", "is not a directory"),
        (lambda d, lab, out: (d, lab.with_name("nope.json"), out), "--labels", "is not a file"),
        (lambda d, lab, out: (d, _write(lab, "{not json"), out), "--labels", "not JSON"),
        (lambda d, lab, out: (d, _write(lab, '{"quiet.csv": [["x"]]}'), out), "--labels", "is not a [start, end]"),
        (lambda d, lab, out: (d, _write(lab, '{"data/quiet.csv": []}'), out), "--labels", "none of its 1 keys"),
        (lambda d, lab, out: (d, lab, d / "results"), "--out", "inside the data folder"),
    ],
)
def test_input_errors_are_one_line_naming_the_option_and_exit_2(
    corpus: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: object,
    option: str,
    hint: str,
) -> None:
    data, labels, out = change(*corpus, tmp_path / "out")  # type: ignore[operator]
    code = eval_command("--data", str(data), "--labels", str(labels), "--out", str(out), "--no-progress")
    line = one_error_line(capsys)
    assert code == 2
    assert line.startswith(f"homeostat eval: {option}: ")
    assert hint in line
    assert "; pass " in line  # the fix


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("extra", "option", "hint"),
    [
        (["--detector", "no_such_detector"], "--detector", "valid names: "),
        (["--direction", "sideways"], "--direction", "valid directions"),
        (["--sensitivity", "extreme"], "--sensitivity", "valid sensitivities"),
        (["--jobs", "0"], "--jobs", "pass 1 or more"),
    ],
)
def test_bad_choices_are_one_line_naming_the_option_and_exit_2(
    corpus: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    option: str,
    hint: str,
) -> None:
    data, labels = corpus
    code = eval_command("--data", str(data), "--labels", str(labels), "--out", str(tmp_path / "out"), *extra)
    line = one_error_line(capsys)
    assert code == 2
    assert line.startswith(f"homeostat eval: {option}: ")
    assert hint in line


def test_a_bad_csv_names_the_file_and_the_line(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, labels = corpus
    (data / "quiet.csv").write_text("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,oops\n")
    code = eval_command("--data", str(data), "--labels", str(labels), "--out", str(tmp_path / "out"), "--no-progress")
    line = one_error_line(capsys)
    assert code == 2
    assert "--data: " in line and "quiet.csv:3: value 'oops' is not a number" in line


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_file_whose_time_goes_back_is_scored_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    """As NAB's machine_temperature_system_failure.csv: scored in file order, one warning naming file and line."""
    from homeostat.cli import main

    data, labels = fixtures.make_corpus(tmp_path, back_at=70)
    argv = ["eval", "--data", str(data), "--labels", str(labels), "--out", str(tmp_path / "o"), "--jobs", jobs]
    code = main([*argv, "--no-progress"])
    captured = capsys.readouterr()

    assert code == 0
    summary = json.loads(captured.out)
    assert isinstance(summary["nab"]["standard"]["score"], float)
    assert summary["files"] == 3 and summary["points"] == 380
    assert summary["time_goes_back"] == [
        {"file": "real/deep/nested.csv", "line": 72, "back_seconds": 3300.0, "rows_going_back": 1}
    ]
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert warnings == [
        f"homeostat eval: warning: {data / 'real/deep/nested.csv'}:72: timestamp goes back 0:55:00 "
        "from the previous row; scored in file order, as NAB does"
    ]


@pytest.mark.parametrize(
    ("rows", "hint"),
    [
        ("2014-04-01 00:00:00,1\nyesterday,2\n", "quiet.csv: timestamp 'yesterday' is not ISO 8601"),
        ("2014-04-01 00:00:00,1\n2014-04-01 00:05:00\n", "quiet.csv:3: expected 'timestamp,value'"),
    ],
)
def test_what_cannot_be_read_still_fails_naming_the_file(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, hint: str
) -> None:
    data, labels = corpus
    (data / "quiet.csv").write_text("timestamp,value\n" + rows)
    code = eval_command("--data", str(data), "--labels", str(labels), "--out", str(tmp_path / "out"), "--no-progress")
    line = one_error_line(capsys)
    assert code == 2
    assert line.startswith("homeostat eval: --data: ") and hint in line
