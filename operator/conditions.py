"""Standard Kubernetes conditions on a policy's status, with honest transition times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from homeostat.api.status import Condition

ConditionStatus = Literal["True", "False", "Unknown"]


def now_iso() -> str:
    """RFC 3339 UTC timestamp, second precision, as Kubernetes writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    generation: int | None = None,
) -> list[Condition]:
    """Return `conditions` with one set; the transition time only moves when status changes."""
    previous = next((c for c in conditions if c.type == type), None)
    changed_at = previous.last_transition_time if previous and previous.status == status else now_iso()
    updated = Condition(
        type=type, status=status, reason=reason, message=message,
        last_transition_time=changed_at, observed_generation=generation,
    )
    return [c for c in conditions if c.type != type] + [updated] if previous is None else [
        updated if c.type == type else c for c in conditions
    ]


def get_condition(conditions: list[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)
