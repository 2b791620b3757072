from __future__ import annotations

import pytest

from homeostat.api.durations import format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("7d", 604800), ("1.5s", 1.5), ("0s", 0),
])
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "1h 30m", "-5s"])
def test_parse_rejects_with_the_fix(text: str) -> None:
    with pytest.raises(ValueError, match="write it like 30s"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.25, 1, 59, 60, 3600, 5400, 90061])
def test_format_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
