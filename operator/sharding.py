"""Sharding: N operator instances, each owning a stable subset of the policies.

A policy belongs to shard `sha256("<namespace>/<name>") mod N`: stable for as long as N is, the
same in every process and on every restart, and needing no coordination between shards. Each
shard runs only its own policies' monitors (a Kopf filter) and elects its own leader on its own
Lease, so each shard can itself run several replicas. docs/ha.md lists the limits (no automatic
rebalancing; changing N moves about (N-1)/N of the policies, whose monitors start over).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def shard_of(*, namespace: str, name: str, count: int) -> int:
    """The shard (0..count-1) that owns the policy `namespace/name`."""
    if count < 1:
        raise ValueError(f"the shard count must be at least 1, not {count}")
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True, kw_only=True)
class Shard:
    """This instance's shard: `index` of `count` (0 of 1 owns every policy)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is not within 0..{self.count - 1} "
                             "(--shard-index I --shard-count N needs 0 <= I < N)")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, *, namespace: str | None, name: str | None) -> bool:
        """Whether this shard runs the policy `namespace/name`."""
        if not self.sharded:
            return True
        return shard_of(namespace=namespace or "", name=name or "", count=self.count) == self.index

    def lease_name(self, base: str) -> str:
        """This shard's Lease: `base` unsharded, `base-shard-<index>` with several shards."""
        return f"{base}-shard-{self.index}" if self.sharded else base

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"
