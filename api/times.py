"""Timestamps as Kubernetes writes them (RFC 3339, UTC, `Z`), and back to unix seconds."""

from __future__ import annotations

import datetime as dt
import math
import time


def format_time(t: float, *, round_up: bool = False) -> str:
    """`2026-11-23T18:45:08Z`; `round_up` for deadlines, so a window is never cut short."""
    seconds = math.ceil(t) if round_up else math.floor(t)
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    """Now, as Kubernetes writes a timestamp (whole seconds)."""
    return format_time(time.time())


def parse_time(text: str) -> float:
    """Unix seconds of an RFC 3339 timestamp (`Z` or an offset, fractions allowed)."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def compact_time(t: float) -> str:
    """`20261123-184508` (UTC): the suffix of an Incident's name."""
    return dt.datetime.fromtimestamp(math.floor(t), tz=dt.UTC).strftime("%Y%m%d-%H%M%S")
