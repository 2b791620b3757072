"""Reading series and labels: timestamp forms, file discovery, and the errors users will hit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homeostat.detectors.evaluation.corpus import (
    CorpusError,
    LabelsError,
    find_csv_files,
    parse_timestamps,
    read_labels,
    read_series,
)

APRIL_FIRST_2014 = 1396310400 * 1_000_000


def test_timestamps_naive_iso_is_utc_and_other_forms_agree() -> None:
    forms = [
        ["2014-04-01 00:00:00", "2014-04-01 00:05:00.500000"],
        ["2014-04-01T00:00:00Z", "2014-04-01T02:05:00.5+02:00"],
        ["1396310400", "1396310700.5"],
    ]
    for stamps in forms:
        assert parse_timestamps(stamps=stamps).tolist() == [APRIL_FIRST_2014, APRIL_FIRST_2014 + 300_500_000]


def test_bad_timestamp_is_named() -> None:
    with pytest.raises(ValueError, match="'yesterday' is not ISO 8601"):
        parse_timestamps(stamps=["2014-04-01 00:00:00", "yesterday"])


def test_find_csv_files_recurses_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for name in ["b.csv", "a/z.csv", "a/b/c.csv", ".git/x.csv", "a/.cache.csv", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("timestamp,value\n")
    assert find_csv_files(root=tmp_path) == ["a/b/c.csv", "a/z.csv", "b.csv"]
    with pytest.raises(CorpusError, match="no such directory"):
        find_csv_files(root=tmp_path / "missing")


def test_read_series_keeps_text_and_parses_values(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("timestamp,value\n2014-04-01 00:00:00,1.50\n2014-04-01 00:05:00,\n\n")
    series = read_series(root=tmp_path, path="s.csv")
    assert series.stamps == ["2014-04-01 00:00:00", "2014-04-01 00:05:00"]
    assert series.raw_values == ["1.50", ""]
    assert series.values[0] == 1.5 and series.values[1] != series.values[1]  # empty -> nan (no data)
    assert series.times_us.tolist() == [APRIL_FIRST_2014, APRIL_FIRST_2014 + 300_000_000]


def test_read_series_allows_repeated_timestamps_but_not_going_back(tmp_path: Path) -> None:
    (tmp_path / "same.csv").write_text("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:00:00,2\n")
    assert len(read_series(root=tmp_path, path="same.csv")) == 2
    (tmp_path / "back.csv").write_text("timestamp,value\n2014-04-01 00:05:00,1\n2014-04-01 00:00:00,2\n")
    with pytest.raises(CorpusError, match=r"back.csv:3: timestamps go backwards"):
        read_series(root=tmp_path, path="back.csv")


def test_labels_are_parsed_sorted_and_keys_normalised(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(
        json.dumps(
            {
                "./a/x.csv": [
                    ["2014-04-01 01:00:00.000000", "2014-04-01 02:00:00.000000"],
                    ["2014-04-01 00:00:00.000000", "2014-04-01 00:30:00.000000"],
                ],
                "b.csv": [],
            }
        )
    )
    labels = read_labels(path=path)
    hour = 3600 * 1_000_000
    assert labels == {
        "a/x.csv": [
            (APRIL_FIRST_2014, APRIL_FIRST_2014 + hour // 2),
            (APRIL_FIRST_2014 + hour, APRIL_FIRST_2014 + 2 * hour),
        ],
        "b.csv": [],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"a.csv": {"start": 1}}', "expected a list of"),
        ('{"a.csv": [["2014-04-01 00:00:00"]]}', "is not a [start, end] pair"),
        ('{"a.csv": [["2014-04-02 00:00:00", "2014-04-01 00:00:00"]]}', "ends before it starts"),
        (
            '{"a.csv": [["2014-04-01 00:00:00", "2014-04-01 02:00:00"],'
            ' ["2014-04-01 01:00:00", "2014-04-01 03:00:00"]]}',
            "overlap",
        ),
        ('{"a.csv": [["soon", "later"]]}', "not ISO 8601"),
    ],
)
def test_bad_labels_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(text)
    with pytest.raises(LabelsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_labels(path=path)
