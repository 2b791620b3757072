"""Leave-one-category-out and ``--confirm`` on tiny synthetic corpora whose results are known by hand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from homeostat.detectors import Verdict
from homeostat.detectors.confirmation import ConfirmRule
from homeostat.detectors.evaluation import evaluate_corpus
from homeostat.detectors.evaluation.command import add_arguments, run
from homeostat.detectors.evaluation.generalisation import Corpus, evaluate_generalisation, markdown
from homeostat.detectors.evaluation.incidents import incident_spans
from homeostat.detectors.evaluation.windows import scaled_sigmoid

START = datetime(2020, 1, 1)


def stamp(row: int) -> str:
    return (START + timedelta(minutes=row)).strftime("%Y-%m-%d %H:%M:%S")


def write(path: Path, values: dict[int, float], points: int = 100, base: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{stamp(i)},{values.get(i, base)}" for i in range(points)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")


class ValueIsScore:
    """Scores each point with its own value (so the CSV sets the scores); band [lower, upper] around
    ``expected``; alarms above the band; warm after 2 points."""

    def __init__(self, expected: float = 0.0, lower: float = -1.0, upper: float = 0.5) -> None:
        self.expected, self.lower, self.upper, self.seen = expected, lower, upper, 0

    def score_one(self, t: float, x: float) -> Verdict:
        warm = self.seen >= 2
        return Verdict(score=min(max(x, 0.0), 1.0), expected=self.expected, lower=self.lower, upper=self.upper,
                       alarm=warm and x > self.upper, reason="", warm=warm)

    def learn_one(self, t: float, x: float) -> None:
        self.seen += 1


# Three categories, one 100-point file each, window rows 40..49, probation 15 points:
# A and B find their window at its first point with score 0.9 and have a false positive of
# 0.7 at row 70; C finds its window at its first point with score 0.6 only, no false positive.
# `quiet` has no window (and a false positive of 0.8).
FP_COST = -float(scaled_sigmoid(np.array([(70 - 49) / 9]))[0])  # |S| 21 rows after a 10-point window


def make_categories(root: Path) -> Corpus:
    data = root / "data"
    write(data / "A" / "a.csv", {40: 0.9, 70: 0.7})
    write(data / "B" / "b.csv", {40: 0.9, 70: 0.7})
    write(data / "C" / "c.csv", {40: 0.6})
    write(data / "quiet" / "q.csv", {60: 0.8})
    window = [[stamp(40), stamp(49)]]
    labels = {"A/a.csv": window, "B/b.csv": window, "C/c.csv": window, "quiet/q.csv": []}
    (root / "combined_windows.json").write_text(json.dumps(labels))
    return Corpus.folder(root)


def test_the_left_out_category_is_scored_at_the_threshold_swept_on_the_others(tmp_path: Path) -> None:
    corpus = make_categories(tmp_path / "dev")
    result = evaluate_generalisation(corpora=[corpus], detector=ValueIsScore)
    rows = {c.category: c for c in result.categories}
    assert list(rows) == ["dev/A", "dev/B", "dev/C", "dev/quiet"]

    c = rows["dev/C"].profiles["standard"]
    # A and B pooled (and quiet): 0.9 finds both windows on time, lower only adds false positives.
    assert c.threshold == 0.9 and c.own_threshold == 0.6 and c.threshold != c.own_threshold
    assert c.score == pytest.approx(0.0) and c.windows_detected == 0  # C's 0.6 is missed at 0.9
    assert c.in_sample == pytest.approx(100.0)

    a = rows["dev/A"].profiles["standard"]
    # B, C and quiet pooled: 0.6 finds C's window too, for one false positive of B (0.7) -- worth it.
    assert a.threshold == 0.6 and a.own_threshold == 0.9
    assert a.false_positives == 1 and a.windows_detected == 1
    assert a.score == pytest.approx(100 * (1 - 0.11 * FP_COST + 1) / 2)
    assert a.in_sample == pytest.approx(100.0)

    quiet = rows["dev/quiet"]
    assert quiet.windows == 0 and quiet.profiles["standard"].score is None  # NAB's formula: 0/0
    # Left out, quiet is scored at 0.6 (swept on A, B and C): its 0.8 is one false positive,
    # before any window (S = -1): raw -0.11, a ninth of a window missed.
    assert quiet.profiles["standard"].threshold == 0.6
    assert (quiet.profiles["standard"].false_positives, quiet.profiles["standard"].raw) == (1, pytest.approx(-0.11))
    assert result.scored("standard") == [a.score, rows["dev/B"].profiles["standard"].score, c.score]
    assert result.mean("standard") == pytest.approx((2 * a.score + 0.0) / 3)
    assert result.minimum("standard") == pytest.approx(0.0)
    assert result.as_dict()["excluded_from_mean"] == ["dev/quiet"]
    # In-sample over everything pooled: one threshold (0.6) for all, as `homeostat eval` does.
    assert result.pooled["standard"].threshold == 0.6
    assert "| dev/C | 1 | 0.0 |" in markdown(result)
    for row in result.categories:  # a threshold chosen elsewhere never beats the category's own best
        for held in row.profiles.values():
            assert held.score is None or held.in_sample is None or held.score <= held.in_sample + 1e-9


def test_categories_span_corpora_and_a_flat_corpus_is_one_category(tmp_path: Path) -> None:
    dev = make_categories(tmp_path / "dev")
    flat = tmp_path / "flat"
    write(flat / "data" / "f.csv", {40: 0.9})
    (flat / "combined_windows.json").write_text(json.dumps({"f.csv": [[stamp(40), stamp(49)]]}))
    result = evaluate_generalisation(corpora=[dev, Corpus.folder(flat)], detector=ValueIsScore)
    assert [c.category for c in result.categories] == ["dev/A", "dev/B", "dev/C", "dev/quiet", "flat"]
    assert set(result.corpora) == {"dev", "flat"}


# --confirm: 200 points at 1.0, band [0, 2] around 1.0, window rows 100..119, probation 30 points.
# A shift to 5.0 from row 105 to 130 is confirmed 3/5 at row 107 (delay 7) and stays confirmed;
# a run of 2.5 at rows 160..162 is a false incident (confirmed at 162); a lone 5.0 at 180 is not.


def make_shift(root: Path) -> tuple[Path, Path]:
    values = {i: 5.0 for i in range(105, 131)} | {160: 2.5, 161: 2.5, 162: 2.5, 180: 5.0}
    write(root / "data" / "s" / "shift.csv", values, points=200, base=1.0)
    labels = root / "labels.json"
    labels.write_text(json.dumps({"s/shift.csv": [[stamp(100), stamp(119)]]}))
    return root / "data", labels


class Banded(ValueIsScore):
    def __init__(self) -> None:
        super().__init__(expected=1.0, lower=0.0, upper=2.0)


def test_confirm_counts_incidents_recall_and_delay(tmp_path: Path) -> None:
    data, labels = make_shift(tmp_path)
    result = evaluate_corpus(data=data, labels=labels, detector=Banded, confirm=ConfirmRule(k=3, n=5))
    assert result.incidents is not None
    assert result.incidents.as_dict() == {
        "precision": 0.5,
        "recall": 1.0,
        "delay_median": 7.0,
        "delay_p90": 7.0,
        "false_per_1000_points": pytest.approx(1000 / 170),
        "window_points_median": 20.0,
        "incidents": 2,
        "true_incidents": 1,
        "windows": 1,
        "windows_found": 1,
        "points": 170,
    }
    summary = result.as_dict()["confirm"]
    assert summary["rule"] == "3/5" and summary["incidents"] == 2


def test_min_change_makes_a_trivial_move_no_incident(tmp_path: Path) -> None:
    data, labels = make_shift(tmp_path)
    # 2.5 is within 200 % of the expected 1.0, 5.0 is not: only the shift is an incident.
    result = evaluate_corpus(data=data, labels=labels, detector=Banded,
                             confirm=ConfirmRule(k=3, n=5, min_change=2.0))
    assert result.incidents is not None
    assert (result.incidents.incidents, result.incidents.true_incidents, result.incidents.delays) == (1, 1, (7,))


def test_confirmations_closer_than_n_points_are_one_incident() -> None:
    confirmed = np.zeros(30, dtype=bool)
    confirmed[[3, 4, 8, 13, 20]] = True  # 4 -> 8 is 4 < 5 apart; 8 -> 13 is 5: a new incident
    assert incident_spans(confirmed, n=5) == [(3, 8), (13, 13), (20, 20)]
    assert incident_spans(np.zeros(3, dtype=bool), n=5) == []


def test_the_command_prints_the_confirm_block_and_refuses_a_bad_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    data, labels = make_shift(tmp_path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--data", str(data), "--labels", str(labels), "--out", str(tmp_path / "out"), "--no-progress"]
    assert run(parser.parse_args([*base, "--confirm", "5/3"])) == 2
    assert "--confirm: confirm K/N must have 1 <= K <= N" in capsys.readouterr().err
    assert run(parser.parse_args([*base, "--min-change", "0.5"])) == 2
    assert "pass --confirm K/N too" in capsys.readouterr().err
    assert run(parser.parse_args([*base, "--confirm", "3/5", "--detector", "robust_zscore"])) == 0
    block = json.loads(capsys.readouterr().out)["confirm"]
    assert (block["rule"], block["min_change"], block["windows"], block["points"]) == ("3/5", 0.0, 1, 170)
