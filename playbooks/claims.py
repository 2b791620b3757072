"""A claim on the target, written to the workload before an action: one decision at a time per workload.

Two policies on one workload decide in the same cycle from the same list of Incidents, and
policies with the same interval run in lock-step after a start or a failover, in one process or
in different shards. So before a workload action the runner writes `homeostat.dev/claim` (the
time and the action's key) onto the workload itself, in a write that carries the resourceVersion
it read: of two racing claims the API server lets one through and answers the other 409; the
loser reads again, finds a fresh claim of another key within the cooldown, and does not act.

The claim is also the workload's memory of its last action: the cooldown counts it whatever
became of the Incident that made it (a policy deleted and re-created takes its Incidents with it,
not the workload's claim).

    >>> refusal({CLAIM: "2027-01-15T08:00:00Z shop/a-1/0/1"}, key="shop/b-1/0/1", now=1_800_000_000.0, cooldown=600)
    >>> parse_claim("2027-01-15T08:00:00Z shop/a-1/0/1")
    Claim(at=1800000000.0, key='shop/a-1/0/1')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from homeostat.api.durations import format_duration
from homeostat.api.times import format_time, parse_time

CLAIM = "homeostat.dev/claim"


@dataclass(frozen=True)
class Claim:
    at: float
    key: str  # `<namespace>/<incident>/<step>/<attempt>` of the action that claimed the workload


def claim_value(*, key: str, now: float) -> str:
    return f"{format_time(now)} {key}"


def parse_claim(value: str | None) -> Claim | None:
    """The claim an annotation holds; None when absent or unreadable (a hand-edited value)."""
    if not value or " " not in value:
        return None
    stamp, key = value.split(" ", 1)
    try:
        return Claim(at=parse_time(stamp), key=key)
    except ValueError:
        return None


def claimed_at(annotations: Mapping[str, str]) -> float | None:
    found = parse_claim(annotations.get(CLAIM))
    return found.at if found is not None else None


def refusal(annotations: Mapping[str, str], *, key: str, now: float, cooldown: float) -> str | None:
    """Why `key` may not claim a workload with these annotations now, or None when it may."""
    found = parse_claim(annotations.get(CLAIM))
    if found is None or found.key == key:
        return None  # free, or ours (an action resumed after a restart)
    age = now - found.at
    if age < cooldown:
        return (f"claimed {format_duration(max(age, 0.0))} ago by {found.key} (cooldown "
                f"{format_duration(cooldown)}): another decision on this workload came first")
    return None
