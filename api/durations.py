"""Durations as SREs write them (`30s`, `5m`, `1h30m`), kept as strings in the resources.

Kubernetes users expect Go-style duration strings; the CRD schema checks the pattern and the
models turn them into seconds where the operator needs numbers.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
"""A duration such as `30s`, `5m`, `1h30m`, `250ms` or `7d`."""


def parse_duration(text: str) -> float:
    """Return the number of seconds in a duration string; raise ValueError when malformed."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration; write it like 30s, 5m, 1h30m or 250ms")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """Render seconds in the same notation, for messages and status."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    parts = []
    remaining = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(parts) or "0s"
