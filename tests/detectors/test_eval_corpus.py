"""Reading series and labels: timestamp forms, file discovery, and the errors users will hit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homeostat.detectors.evaluation.corpus import (
    Backstep,
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


def test_read_series_allows_repeated_timestamps(tmp_path: Path) -> None:
    (tmp_path / "same.csv").write_text("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:00:00,2\n")
    series = read_series(root=tmp_path, path="same.csv")
    assert len(series) == 2
    assert series.backstep is None


def test_time_going_back_is_read_in_file_order_and_located(tmp_path: Path) -> None:
    """As in NAB's machine_temperature_system_failure.csv: an hour repeated mid-file."""
    rows = [f"2014-04-01 0{h}:{m:02d}:00,{i}" for i, (h, m) in enumerate([(1, 0), (1, 30), (2, 0), (2, 30)])]
    rows += ["2014-04-01 01:30:00,4", "2014-04-01 02:00:00,5", "", "2014-04-01 01:00:00,6", "2014-04-01 03:00:00,7"]
    (tmp_path / "back.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    series = read_series(root=tmp_path, path="back.csv")
    half_hour = 1800 * 1_000_000
    one = APRIL_FIRST_2014 + 2 * half_hour
    offsets = [0, 1, 2, 3, 1, 2, 0, 4]
    assert series.times_us.tolist() == [one + k * half_hour for k in offsets]  # file order, not sorted
    assert series.values.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert series.stamps[4] == "2014-04-01 01:30:00"
    # Line 6 (the header is line 1) goes back an hour; line 9 (after a blank line) goes back too.
    assert series.backstep == Backstep(line=6, back_us=2 * half_hour, rows=2)
    assert series.backstep.describe() == (
        "timestamp goes back 1:00:00 from the previous row (1 more row(s) go back later in the file)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp,value\n2014-04-01 00:05:00,1\nyesterday,2\n", "'yesterday' is not ISO 8601"),
        ("timestamp,value\n2014-04-01 00:05:00,1\n2014-04-01 00:00:00\n", r"bad.csv:3: expected 'timestamp,value'"),
        ("timestamp\n2014-04-01 00:05:00\n", "fewer than 2 columns"),
        ("timestamp,value\n2014-04-01 00:05:00,1\n\n2014-04-01 00:00:00,x\n", r"bad.csv:4: value 'x' is not a number"),
        ("", "empty file"),
    ],
)
def test_what_cannot_be_read_is_still_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(CorpusError, match=message):
        read_series(root=tmp_path, path="bad.csv")


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
